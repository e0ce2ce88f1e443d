"""Validation as properties, through the HTTP API of both dialects (SPEC.md section 3).

- Any valid body is accepted (201/200) and comes back unchanged from create and from get, with the
  documented normalisations only (configName trimmed, Reporter type upper-case, Chartbrew port a
  string). The password never comes back.
- Any body breaking exactly one rule is a 400 in the JSON error shape whose `fields` names that
  field, and only that field.
"""

from __future__ import annotations

import base64
import hashlib
import os
import string
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from connhub.config import Settings
from connhub.store.migrate import migrate
from tests.conftest import client_for
from tests.reliability.conftest import Figures
from tests.support.pki import self_signed
from tests.support.reliability import is_problem

BASE = "/v1/management/connections"
TEAM = "/team/props/connections"
CERT, KEY = self_signed("property-ca")
PROPERTY = settings(
    max_examples=int(os.environ.get("CONNHUB_PROPERTY_EXAMPLES", "80")),
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)

# -- what a valid body is made of ---------------------------------------------------------------

# Printable text without control characters (Cc) or lone surrogates (not encodable in UTF-8 JSON).
text_chars = st.characters(codec="utf-8", exclude_categories=["Cc"])
any_chars = st.characters(codec="utf-8")


def bounded_text(low: int, high: int) -> st.SearchStrategy[str]:
    return st.text(text_chars, min_size=low, max_size=high)


# Names: no invisible characters either (Cf: zero-width spaces, bidi controls), issue 14.9.
name_chars = st.characters(codec="utf-8", exclude_categories=["Cc", "Cf"])
config_names = st.text(name_chars, min_size=3, max_size=100).filter(lambda name: 3 <= len(name.strip()) <= 100)
label = st.text(string.ascii_letters + string.digits + "-", min_size=1, max_size=63).filter(
    lambda text: not text.startswith("-") and not text.endswith("-")
)
hostnames = st.lists(label, min_size=1, max_size=4).map(".".join).filter(lambda name: len(name) <= 253)
hosts = st.one_of(hostnames, st.ip_addresses(v=4).map(str), st.ip_addresses(v=6).map(str))
engines = st.sampled_from(["ORACLE", "SQL_SERVER", "POSTGRESQL", "MONGODB", "MYSQL"])
# Metadata keys hold no control characters, values no NUL (PostgreSQL cannot store one), issue 14.5.
metadata = st.dictionaries(
    st.text(text_chars, min_size=1, max_size=100),
    st.text(st.characters(codec="utf-8", exclude_characters="\x00"), max_size=2000),
    max_size=50,
)
ssl = st.fixed_dictionaries(
    {"mode": st.sampled_from(["disable", "allow", "prefer", "require", "verify-ca", "verify-full"])},
    optional={"ca": st.just(CERT)},
)


@st.composite
def reporter_bodies(draw: st.DrawFn) -> dict[str, Any]:
    body: dict[str, Any] = {
        "configName": draw(config_names),
        "type": draw(engines.flatmap(lambda engine: st.sampled_from([engine, engine.lower(), engine.title()]))),
        "host": draw(hosts),
        "port": draw(st.integers(1, 65535)),
        "databaseName": draw(bounded_text(1, 128)),
        "userName": draw(bounded_text(1, 128)),
        "password": draw(st.text(any_chars, min_size=1, max_size=1024)),
    }
    optional = {"schema": bounded_text(1, 128), "ssl": ssl, "metadata": metadata}
    for name, strategy in optional.items():
        if draw(st.booleans()):
            body[name] = draw(strategy)
    return body


@st.composite
def chartbrew_bodies(draw: st.DrawFn) -> dict[str, Any]:
    port = draw(st.integers(1, 65535))
    return {
        "name": draw(config_names),
        "type": draw(st.sampled_from(["postgres", "mysql", "mongodb", "mssql", "oracle"])),
        "host": draw(hosts),
        "port": draw(st.sampled_from([port, str(port)])),
        "dbName": draw(bounded_text(1, 128)),
        "username": draw(bounded_text(1, 128)),
        "password": draw(st.text(any_chars, min_size=1, max_size=1024)),
    }


# -- one rule broken ------------------------------------------------------------------------------

# (field the error must name, how to break it): each changes one field of a valid body.
REPORTER_BREAKERS: list[tuple[str, st.SearchStrategy[dict[str, Any]]]] = [
    (
        "configName",
        st.sampled_from(["", "ab", "  ab  ", "x" * 101, "bad\x07name", 123, None]).map(lambda v: {"configName": v}),
    ),
    ("type", st.sampled_from(["DB2", "", 5, None, "postgres"]).map(lambda v: {"type": v})),
    (
        "host",
        st.sampled_from(
            ["", "db.example.com:5432", "postgres://db", "db example.com", "db/path", "-bad.com", "a" * 64 + ".com", 7]
        ).map(lambda v: {"host": v}),
    ),
    ("port", st.sampled_from([0, 65536, -1, "5432", 54.5, True, None, [5432]]).map(lambda v: {"port": v})),
    ("databaseName", st.sampled_from(["", "d" * 129, "a\x00b", None, 1]).map(lambda v: {"databaseName": v})),
    ("userName", st.sampled_from(["", "u" * 129, "a\nb", None, {}]).map(lambda v: {"userName": v})),
    ("password", st.sampled_from(["", "p" * 1025, None, 12345]).map(lambda v: {"password": v})),
    ("schema", st.sampled_from(["", "s" * 129, 3]).map(lambda v: {"schema": v})),
    ("ssl", st.sampled_from(["require", 1, []]).map(lambda v: {"ssl": v})),
    ("ssl.mode", st.sampled_from([{}, {"mode": "on"}, {"mode": None}]).map(lambda v: {"ssl": v})),
    ("ssl.ca", st.just({"ssl": {"mode": "require", "ca": "not a pem"}})),
    ("ssl.key", st.just({"ssl": {"mode": "require", "cert": CERT}})),
    ("ssl.cert", st.just({"ssl": {"mode": "require", "key": KEY}})),
    (
        "metadata",
        st.sampled_from([[], "x", {f"k{i}": "v" for i in range(51)}, {"": "v"}]).map(lambda v: {"metadata": v}),
    ),
    ("metadata.deep", st.sampled_from([{"a": 1}, ["x"], 3, None, "x" * 2001]).map(lambda v: {"metadata": {"deep": v}})),
    ("surprise", st.sampled_from([1, "x", None, {}]).map(lambda v: {"surprise": v})),
]
CHARTBREW_BREAKERS: list[tuple[str, st.SearchStrategy[dict[str, Any]]]] = [
    ("name", st.sampled_from(["", "ab", "x" * 101, 5]).map(lambda v: {"name": v})),
    ("type", st.sampled_from(["api", "firestore", "postgresql", 1]).map(lambda v: {"type": v})),
    ("host", st.sampled_from(["db.example.com:5432", "db example.com", "-bad.com"]).map(lambda v: {"host": v})),
    ("port", st.sampled_from([0, 65536, "54a", "", "-1", 1.5, True]).map(lambda v: {"port": v})),
    ("dbName", st.sampled_from(["d" * 129, "a\x00b", 1]).map(lambda v: {"dbName": v})),
    ("username", st.sampled_from(["u" * 129, "a\nb", 1]).map(lambda v: {"username": v})),
    ("password", st.sampled_from(["p" * 1025, 12345]).map(lambda v: {"password": v})),
    ("sslMode", st.sampled_from(["on", "strict"]).map(lambda v: {"ssl": True, "sslMode": v})),
    ("sslCa", st.just({"ssl": True, "sslCa": "not a pem"})),
    ("surprise", st.sampled_from([1, "x"]).map(lambda v: {"surprise": v})),
]


def breaking(valid: st.SearchStrategy[dict[str, Any]], breakers: list[tuple[str, Any]]) -> st.SearchStrategy[Any]:
    @st.composite
    def build(draw: st.DrawFn) -> tuple[str, dict[str, Any]]:
        body = draw(valid)
        field, change = draw(st.sampled_from(breakers))
        return field, {**body, **draw(change)}  # a null is sent as null: "required" for required fields

    return build()


# -- the API ----------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
async def api(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[httpx.AsyncClient]:
    workdir: Path = tmp_path_factory.mktemp("properties")
    url = f"sqlite:///{workdir / 'props.db'}"
    migrate(url)
    settings_ = Settings(
        database_url=url,
        encryption_keys="props:" + base64.b64encode(os.urandom(32)).decode(),
        data_dir=workdir / "data",
    )
    async with client_for(settings_) as http:
        yield http


def expected_reporter(body: dict[str, Any]) -> dict[str, Any]:
    expected = {name: value for name, value in body.items() if name not in ("password", "ssl")}
    expected["configName"] = body["configName"].strip()
    expected["type"] = body["type"].upper()
    if "ssl" in body:
        ssl_in = body["ssl"]
        expected["ssl"] = {"mode": ssl_in["mode"], "hasCa": "ca" in ssl_in, "hasCert": False, "hasKey": False}
    return expected


@PROPERTY
@given(body=reporter_bodies())
async def test_any_valid_reporter_body_round_trips(
    api: httpx.AsyncClient, body: dict[str, Any], figures: Figures
) -> None:
    created = await api.post(BASE, json=body, headers={"X-Product-Name": "props"})
    assert created.status_code == 201, created.text
    fetched = await api.get(f"{BASE}/{created.json()['id']}")
    figures.requests += 2
    for answer in (created.json(), fetched.json()):
        assert {name: answer.get(name) for name in expected_reporter(body)} == expected_reporter(body)
        assert "password" not in answer
    assert fetched.json() == created.json()
    figures.verified += 1
    assert (await api.delete(f"{BASE}/{created.json()['id']}")).status_code == 204  # frees the name


@PROPERTY
@given(body=chartbrew_bodies())
async def test_any_valid_chartbrew_body_round_trips(
    api: httpx.AsyncClient, body: dict[str, Any], figures: Figures
) -> None:
    created = await api.post(TEAM, json=body)
    assert created.status_code == 200, created.text
    fetched = await api.get(f"{TEAM}/{created.json()['id']}")
    figures.requests += 2
    expected = {**body, "name": body["name"].strip(), "port": str(body["port"]), "password": None}
    for answer in (created.json(), fetched.json()):
        assert {name: answer.get(name) for name in expected} == expected
        assert answer["hasPassword"] is True
    assert fetched.json() == created.json()
    figures.verified += 1
    assert (await api.delete(f"{TEAM}/{created.json()['id']}")).status_code == 200


@PROPERTY
@given(case=breaking(reporter_bodies(), REPORTER_BREAKERS))
async def test_one_broken_reporter_rule_is_a_400_naming_that_field(
    api: httpx.AsyncClient, case: tuple[str, dict[str, Any]], figures: Figures
) -> None:
    field, body = case
    if field != "password" and isinstance(body.get("password"), str):
        body["password"] = unmistakable(body["password"])
    response = await api.post(BASE, json=body, headers={"X-Product-Name": "props"})
    figures.requests += 1
    figures.faults += 1
    assert response.status_code == 400, (field, response.text)
    problem = response.json()
    assert is_problem(problem) and problem["code"] == "CONN-1001"
    assert set(problem["fields"]) == {field}, (body, problem)
    password = body.get("password")
    if isinstance(password, str) and len(password) >= 8:
        assert password not in response.text
        assert password[:PASSWORD_MARK] not in response.text  # the marker alone is a leak too


PASSWORD_MARK = 36  # "pw-" + 32 hex digits + "-"


def unmistakable(password: str) -> str:
    """The generated password behind a marker that no error text can hold by chance.

    A generated password can be text an error quotes for another field ("POSTGRESQL" in the list of
    types, a name...), which reported a leak that was none. The marker is a digest of the password,
    so a run stays reproducible; the result stays within the 1,024-character limit, so the body
    breaks only the rule its case breaks.
    """
    marker = f"pw-{hashlib.sha256(password.encode()).hexdigest()[:32]}-"
    assert len(marker) == PASSWORD_MARK
    return marker + password[: MAX_PASSWORD - PASSWORD_MARK]


MAX_PASSWORD = 1024


@PROPERTY
@given(case=breaking(chartbrew_bodies(), CHARTBREW_BREAKERS))
async def test_one_broken_chartbrew_rule_is_a_400_naming_that_field(
    api: httpx.AsyncClient, case: tuple[str, dict[str, Any]], figures: Figures
) -> None:
    field, body = case
    response = await api.post(TEAM, json=body)
    figures.requests += 1
    figures.faults += 1
    assert response.status_code == 400, (field, response.text)
    problem = response.json()
    assert is_problem(problem) and set(problem["fields"]) == {field}, (body, problem)


@pytest.mark.parametrize("header", [None, "", "   ", "bad name", "x" * 101, "ünïcode", "a/b"])
async def test_a_bad_product_header_is_a_400_naming_it(api: httpx.AsyncClient, header: str | None) -> None:
    body = {
        "configName": "header-check",
        "type": "MYSQL",
        "host": "db.example.com",
        "port": 3306,
        "databaseName": "d",
        "userName": "u",
        "password": "p",
    }
    headers = {} if header is None else {b"X-Product-Name": header.encode()}  # raw UTF-8 bytes
    response = await api.post(BASE, json=body, headers=headers)
    assert response.status_code == 400 and set(response.json()["fields"]) == {"X-Product-Name"}
