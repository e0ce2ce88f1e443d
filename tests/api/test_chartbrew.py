"""The Chartbrew dialect, end to end over HTTP: /team/{team_id}/connections.

Every route is driven with the Chartbrew seed's body (placeholders filled in). Every response of
every test is searched for the canary password and the uploaded private key: a secret never
leaves the service.
"""

from __future__ import annotations

import secrets
import sqlite3
import time
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any
from urllib.parse import quote

import httpx
import jwt
import psycopg
import pymysql
import pytest

from connhub.config import Settings
from connhub.domain import connstring
from tests.conftest import CANARY_PASSWORD, PRODUCT, client_for, seed_body
from tests.support.pki import self_signed
from tests.support.servers import MARIADB_HOST, MARIADB_PORT, free_port, require_server

TEAM = "/team/123/connections"
REPORTER = "/v1/management/connections"
CANARY_TOKEN = "Canary-token-4b1d2e"  # sent in the ignored `authentication` object
CA_PEM, _ = self_signed("chartbrew-test-ca")
CLIENT_CERT_PEM, CLIENT_KEY_PEM = self_signed("chartbrew-test-client")
KEY_LINE = CLIENT_KEY_PEM.splitlines()[1]  # a line of the key's base64: JSON escapes the newlines
SUPPORTED = ["postgres", "mysql", "mongodb", "mssql", "oracle"]
NASTY_PASSWORD = "Cb-p@ss:w/rd?#%25é日本-"  # every character a URI must percent-encode, and more


def chartbrew_body(**overrides: Any) -> dict[str, Any]:
    """The Chartbrew seed's create body, placeholders filled in, plus the required `dbName`.

    `overrides` replace fields; a value of None removes the field.
    """
    body: dict[str, Any] = {
        "name": "Analytics warehouse",
        "type": "mongodb",
        "subType": "timescaledb",
        "team_id": 123,
        "host": "db.example.com",
        "port": "27017",
        "username": "chartbrew",
        "password": CANARY_PASSWORD,
        "options": {},
        "authentication": {
            "type": "bearer_token",
            "token": CANARY_TOKEN,
            "user": "api-user",
            "pass": CANARY_PASSWORD,
        },
        "firebaseServiceAccount": {},
        "ssl": False,
        "sslMode": "require",
        "schema": {},
        "dbName": "analytics",
    }
    for name, value in overrides.items():
        if value is None:
            body.pop(name, None)
        else:
            body[name] = value
    return body


def postgres_body(**overrides: Any) -> dict[str, Any]:
    return chartbrew_body(**{"type": "postgres", "port": "5432", **overrides})


class SecretWatch:
    """Keeps every response body of a client, to prove none holds a secret."""

    def __init__(self) -> None:
        self.secrets = {CANARY_PASSWORD, quote(CANARY_PASSWORD, safe=""), CANARY_TOKEN, KEY_LINE}
        self.bodies: list[str] = []

    def watch(self, http: httpx.AsyncClient) -> httpx.AsyncClient:
        http.event_hooks["response"].append(self._keep)
        return http

    async def _keep(self, response: httpx.Response) -> None:
        await response.aread()
        self.bodies.append(response.text)

    def assert_no_secret_shown(self) -> None:
        assert self.bodies, "no response was watched"
        for body in self.bodies:
            for secret in self.secrets:
                assert secret not in body


@pytest.fixture
def watch() -> Iterator[SecretWatch]:
    found = SecretWatch()
    yield found
    found.assert_no_secret_shown()


@pytest.fixture
def api(client: httpx.AsyncClient, watch: SecretWatch) -> httpx.AsyncClient:
    """The API on SQLite and on PostgreSQL, every response searched for secrets."""
    return watch.watch(client)


@pytest.fixture
def lite(sqlite_client: httpx.AsyncClient, watch: SecretWatch) -> httpx.AsyncClient:
    """The API on SQLite only (the subject is not the store), every response searched for secrets."""
    return watch.watch(sqlite_client)


async def create(http: httpx.AsyncClient, body: dict[str, Any], team: str = TEAM) -> dict[str, Any]:
    response = await http.post(team, json=body)
    assert response.status_code == 200, response.text
    created: dict[str, Any] = response.json()
    return created


def assert_error(response: httpx.Response, status: int, *fields: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    body: dict[str, Any] = response.json()
    assert {"code", "title", "message"} <= set(body)
    if fields:
        assert set(body["fields"]) == set(fields), body
    return body


def pem_files(**files: str) -> dict[str, tuple[str, bytes, str]]:
    return {name: (f"{name}.pem", text.encode(), "application/x-pem-file") for name, text in files.items()}


# -- the seed's body, every route -------------------------------------------------------------


async def test_create_answers_chartbrews_shape(api: httpx.AsyncClient) -> None:
    created = await create(api, chartbrew_body())

    assert isinstance(created["id"], int)
    assert {key: value for key, value in created.items() if key not in ("id", "createdAt", "updatedAt")} == {
        "team_id": 123,
        "name": "Analytics warehouse",
        "type": "mongodb",
        "subType": "timescaledb",
        "host": "db.example.com",
        "port": "27017",
        "dbName": "analytics",
        "username": "chartbrew",
        "password": None,
        "hasPassword": True,
        "connectionString": None,
        "srv": False,
        "options": [],
        "ssl": False,
        "sslMode": "disable",
        "hasSslCa": False,
        "hasSslCert": False,
        "hasSslKey": False,
        "useSsh": False,
        "sshHost": None,
        "sshPort": None,
        "sshUsername": None,
        "sshHostKey": None,
        "hasSshPassword": False,
        "hasSshPrivateKey": False,
        "hasSshPassphrase": False,
        "sshJumpHost": None,
        "sshJumpPort": None,
        "schema": None,
        "health": "unknown",  # scheduled health: not checked (the scheduler is off)
    }
    assert created["createdAt"].endswith("Z") and created["updatedAt"].endswith("Z")


async def test_the_seed_body_as_is_lacks_only_dbname(api: httpx.AsyncClient) -> None:
    response = await api.post(TEAM, json=chartbrew_body(dbName=None))

    assert_error(response, 400, "dbName")


async def test_get_and_list_answer_what_create_did(api: httpx.AsyncClient) -> None:
    first = await create(api, chartbrew_body())
    second = await create(api, postgres_body(name="Orders replica"))

    assert (await api.get(f"{TEAM}/{first['id']}")).json() == first
    listed = await api.get(TEAM)
    assert listed.status_code == 200
    assert listed.json() == [second, first]  # newest first


async def test_put_is_a_partial_update(api: httpx.AsyncClient) -> None:
    created = await create(api, postgres_body())

    response = await api.put(f"{TEAM}/{created['id']}", json={"port": 6543, "subType": "rdsPostgres"})

    assert response.status_code == 200, response.text
    updated = response.json()
    assert (updated["port"], updated["subType"]) == ("6543", "rdsPostgres")
    unchanged = ("name", "host", "dbName", "username", "hasPassword", "createdAt", "id")
    assert {key: updated[key] for key in unchanged} == {key: created[key] for key in unchanged}
    assert (await api.get(f"{TEAM}/{created['id']}")).json() == updated


async def test_put_of_what_a_read_answered_changes_nothing(api: httpx.AsyncClient) -> None:
    uri = connstring.build("postgresql", "db.example.com", 5432, "chartbrew", CANARY_PASSWORD, "sales")
    created = await create(api, postgres_body(connectionString=uri, host=None, port=None, dbName=None))
    assert created["connectionString"] == "postgresql://chartbrew:****@db.example.com:5432/sales"

    # A client sends back the whole object it read: password null, the string masked.
    echoed = await api.put(f"{TEAM}/{created['id']}", json=created)

    assert echoed.status_code == 200, echoed.text
    assert {**echoed.json(), "updatedAt": None} == {**created, "updatedAt": None}


async def test_put_of_a_new_connection_string_replaces_what_it_carries(api: httpx.AsyncClient) -> None:
    old = connstring.build("postgresql", "old.example.com", 5432, "chartbrew", CANARY_PASSWORD, "sales")
    created = await create(api, postgres_body(connectionString=old, host=None, port=None, dbName=None))
    new = connstring.build("postgresql", "new.example.com", 6432, "reader", CANARY_PASSWORD + "2", "sales_eu")

    # As a Chartbrew form does: the whole object read before, with only the string edited.
    response = await api.put(f"{TEAM}/{created['id']}", json={**created, "connectionString": new})

    assert response.status_code == 200, response.text
    updated = response.json()
    assert [updated[name] for name in ("host", "port", "dbName", "username")] == [
        "new.example.com",
        "6432",
        "sales_eu",
        "reader",
    ]
    assert updated["connectionString"] == "postgresql://reader:****@new.example.com:6432/sales_eu"


async def test_delete_answers_removed_and_frees_the_name(api: httpx.AsyncClient) -> None:
    created = await create(api, postgres_body())

    response = await api.delete(f"{TEAM}/{created['id']}")

    assert response.status_code == 200
    assert response.json() == {"removed": True}
    assert_error(await api.get(f"{TEAM}/{created['id']}"), 404)
    assert (await api.get(TEAM)).json() == []
    await create(api, postgres_body())


async def test_duplicate_copies_secrets_under_fresh_ciphertexts(api: httpx.AsyncClient, store_url: str) -> None:
    created = await create(api, postgres_body(ssl=True))
    files = pem_files(sslCa=CA_PEM, sslCert=CLIENT_CERT_PEM, sslKey=CLIENT_KEY_PEM)
    assert (await api.post(f"{TEAM}/{created['id']}/files", files=files)).status_code == 200

    response = await api.post(f"{TEAM}/{created['id']}/duplicate", json={"name": "Warehouse copy"})

    assert response.status_code == 200, response.text
    copy = response.json()
    assert copy["id"] != created["id"] and copy["name"] == "Warehouse copy"
    assert (copy["hasPassword"], copy["hasSslCa"], copy["hasSslCert"], copy["hasSslKey"]) == (True,) * 4
    assert (copy["ssl"], copy["sslMode"], copy["host"]) == (True, "require", created["host"])
    stored = stored_ciphertexts(store_url)
    fields = {"password", "ssl.ca", "ssl.cert", "ssl.key"}
    assert set(stored[created["id"]]) == set(stored[copy["id"]]) == fields
    for field in fields:  # the copy is sealed for its own record, not a copied blob
        assert stored[created["id"]][field] != stored[copy["id"]][field]


async def test_duplicate_without_a_name_takes_one(api: httpx.AsyncClient) -> None:
    created = await create(api, postgres_body())

    response = await api.post(f"{TEAM}/{created['id']}/duplicate")

    assert response.status_code == 200, response.text
    assert response.json()["name"] == "Analytics warehouse (copy)"
    clash = await api.post(f"{TEAM}/{created['id']}/duplicate", json={"name": "analytics WAREHOUSE"})
    assert_error(clash, 409)


def stored_ciphertexts(store_url: str) -> dict[int, dict[str, bytes]]:
    """connection number -> field -> ciphertext, read straight from the store."""
    query = "SELECT connection_number, field, ciphertext FROM connection_secrets"
    if store_url.startswith("sqlite"):
        with sqlite3.connect(store_url.removeprefix("sqlite:///")) as db:
            rows = db.execute(query).fetchall()
    else:
        with psycopg.connect(store_url) as db:
            rows = db.execute(query).fetchall()
    found: dict[int, dict[str, bytes]] = {}
    for number, field, ciphertext in rows:
        found.setdefault(number, {})[field] = bytes(ciphertext)
    return found


# -- translation --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "kind", ["api", "firestore", "realtimedb", "googleAnalytics", "customerio", "clickhouse", "strapi"]
)
async def test_other_chartbrew_sources_are_refused_listing_the_supported(lite: httpx.AsyncClient, kind: str) -> None:
    body = assert_error(await lite.post(TEAM, json=chartbrew_body(type=kind)), 400, "type")

    assert all(name in body["fields"]["type"] for name in SUPPORTED)


@pytest.mark.parametrize(("kind", "engine"), [("postgres", "POSTGRESQL"), ("mssql", "SQL_SERVER")])
async def test_types_map_to_engines_both_ways(lite: httpx.AsyncClient, kind: str, engine: str) -> None:
    created = await create(lite, chartbrew_body(type=kind, team_id=None), team="/team/default/connections")

    assert created["type"] == kind
    assert (await lite.get(REPORTER)).json()["items"][0]["type"] == engine


@pytest.mark.parametrize(("port", "shown"), [("5433", "5433"), (5433, "5433"), (" 6000 ", "6000")])
async def test_port_is_accepted_as_string_or_integer_and_answered_as_string(
    lite: httpx.AsyncClient, port: Any, shown: str
) -> None:
    assert (await create(lite, postgres_body(port=port)))["port"] == shown


@pytest.mark.parametrize("port", ["abc", "54a", "-1", "70000", "0", 5.5, True])
async def test_a_bad_port_is_a_400_naming_port(lite: httpx.AsyncClient, port: Any) -> None:
    assert_error(await lite.post(TEAM, json=postgres_body(port=port)), 400, "port")


async def test_errors_name_chartbrews_fields(lite: httpx.AsyncClient) -> None:
    body = postgres_body(name="x", username=None, dbName="", ssl=True, sslMode="sometimes", extra=1)

    assert_error(await lite.post(TEAM, json=body), 400, "name", "username", "dbName", "sslMode", "extra")


async def test_ssl_true_without_a_mode_means_require(lite: httpx.AsyncClient) -> None:
    created = await create(lite, postgres_body(ssl=True, sslMode=None))

    assert (created["ssl"], created["sslMode"]) == (True, "require")
    # The form offers Disable with the SSL switch on: that is disable, not a contradiction.
    picked_disable = await lite.put(f"{TEAM}/{created['id']}", json={"ssl": True, "sslMode": "disable"})
    assert (picked_disable.json()["ssl"], picked_disable.json()["sslMode"]) == (False, "disable")
    await lite.put(f"{TEAM}/{created['id']}", json={"ssl": True, "sslMode": "require"})
    switched_off = await lite.put(f"{TEAM}/{created['id']}", json={"ssl": False})
    assert (switched_off.json()["ssl"], switched_off.json()["sslMode"]) == (False, "disable")


async def test_options_as_a_list_and_srv(lite: httpx.AsyncClient) -> None:
    body = chartbrew_body(options=[{"authSource": "admin"}, {"retryWrites": True}], srv=True, port=None)

    created = await create(lite, body)

    assert created["options"] == [{"authSource": "admin"}, {"retryWrites": "true"}]
    assert created["srv"] is True
    only_options = await lite.put(f"{TEAM}/{created['id']}", json={"options": {"authSource": "users"}})
    assert (only_options.json()["options"], only_options.json()["srv"]) == ([{"authSource": "users"}], True)


async def test_connection_string_fills_the_fields_and_is_shown_masked(lite: httpx.AsyncClient) -> None:
    uri = connstring.build("mysql", "mysql.example.com", 3307, "report er", CANARY_PASSWORD, "sales/eu")
    body = chartbrew_body(type="mysql", connectionString=uri, host="", port="", dbName=None, username=None)
    body.pop("password")

    created = await create(lite, body)

    assert created["connectionString"] == "mysql://report%20er:****@mysql.example.com:3307/sales%2Feu"
    fields = ("type", "host", "port", "dbName", "username", "hasPassword")
    assert [created[name] for name in fields] == ["mysql", "mysql.example.com", "3307", "sales/eu", "report er", True]


async def test_a_connection_string_of_another_type_is_refused(lite: httpx.AsyncClient) -> None:
    body = postgres_body(connectionString="mysql://u:p@mysql.example.com/db")

    assert_error(await lite.post(TEAM, json=body), 400, "connectionString")


async def test_team_id_in_the_body_is_ignored_for_the_path(lite: httpx.AsyncClient) -> None:
    created = await create(lite, postgres_body(team_id=999), team="/team/7/connections")

    assert created["team_id"] == 7
    assert (await lite.get("/team/999/connections")).json() == []
    assert [item["id"] for item in (await lite.get("/team/7/connections")).json()] == [created["id"]]


# -- tenancy ------------------------------------------------------------------------------------


async def test_both_dialects_see_the_same_records(api: httpx.AsyncClient) -> None:
    from_chartbrew = await create(api, postgres_body(), team="/team/default/connections")
    from_reporter = await api.post(REPORTER, json=seed_body(), headers=PRODUCT)
    assert from_reporter.status_code == 201

    reporter_view = (await api.get(REPORTER)).json()["items"]
    chartbrew_view = (await api.get("/team/default/connections")).json()

    assert {item["configName"] for item in reporter_view} == {"Analytics warehouse", "production-db"}
    assert {item["name"] for item in chartbrew_view} == {"Analytics warehouse", "production-db"}
    reporter_made = next(item for item in chartbrew_view if item["name"] == "production-db")
    assert (reporter_made["type"], reporter_made["port"], reporter_made["ssl"]) == ("postgres", "5432", False)
    got = await api.get(f"{REPORTER}/{reporter_view[-1]['id']}")
    assert (got.json()["configName"], got.json()["ssl"]) == (
        from_chartbrew["name"],
        {"mode": "disable", "hasCa": False, "hasCert": False, "hasKey": False},
    )


async def test_another_teams_connection_is_404_on_every_route(api: httpx.AsyncClient) -> None:
    created = await create(api, postgres_body(), team="/team/1/connections")
    other = f"/team/2/connections/{created['id']}"

    for method, path, kwargs in [
        ("GET", other, {}),
        ("PUT", other, {"json": {"name": "stolen"}}),
        ("DELETE", other, {}),
        ("GET", f"{other}/test", {}),
        ("POST", f"{other}/files", {"files": pem_files(sslCa=CA_PEM)}),
        ("POST", f"{other}/duplicate", {"json": {"name": "stolen"}}),
    ]:
        assert_error(await api.request(method, path, **kwargs), 404)
    assert (await api.get("/team/1/connections")).json()[0]["name"] == "Analytics warehouse"


JWT_SECRET = "chartbrew-test-secret-0123456789abcdef"


def bearer(tenant: str, scope: str = "connections:read connections:write") -> dict[str, str]:
    claims = {"tenantId": tenant, "scope": scope, "exp": int(time.time()) + 300}
    return {"Authorization": f"Bearer {jwt.encode(claims, JWT_SECRET, algorithm='HS256')}"}


@pytest.fixture
async def jwt_api(
    sqlite_url: str, make_settings: Callable[..., Settings], watch: SecretWatch
) -> AsyncIterator[httpx.AsyncClient]:
    async with client_for(make_settings(sqlite_url, auth="jwt", jwt_secret=JWT_SECRET)) as http:
        yield watch.watch(http)


async def test_with_jwt_the_token_must_belong_to_the_team(jwt_api: httpx.AsyncClient) -> None:
    created = await jwt_api.post("/team/42/connections", json=postgres_body(), headers=bearer("42"))
    assert created.status_code == 200, created.text
    assert created.json()["team_id"] == 42

    mismatch = await jwt_api.get("/team/42/connections", headers=bearer("acme"))
    body = assert_error(mismatch, 403)
    assert body["code"] == "CONN-1003"
    assert_error(await jwt_api.post("/team/acme/connections", json=postgres_body(), headers=bearer("42")), 403)
    assert_error(await jwt_api.get("/team/42/connections"), 401)
    read_only = bearer("42", scope="connections:read")
    assert (await jwt_api.get("/team/42/connections", headers=read_only)).status_code == 200
    assert_error(await jwt_api.delete(f"/team/42/connections/{created.json()['id']}", headers=read_only), 403)
    reporter = await jwt_api.get(REPORTER, headers=bearer("42"))
    assert [item["configName"] for item in reporter.json()["items"]] == ["Analytics warehouse"]


async def test_a_bad_connection_id_is_a_400(lite: httpx.AsyncClient) -> None:
    assert_error(await lite.get(f"{TEAM}/abc"), 400, "connection_id")
    assert_error(await lite.get(f"{TEAM}/0"), 400, "connection_id")
    assert_error(await lite.get(f"{TEAM}/{2**63}"), 400, "connection_id")


# -- certificate files --------------------------------------------------------------------------


async def test_files_are_stored_encrypted_and_only_flagged(api: httpx.AsyncClient, store_url: str) -> None:
    created = await create(api, postgres_body(ssl=True, sslMode="verify-full"))
    files = pem_files(sslCa=CA_PEM, sslCert=CLIENT_CERT_PEM, sslKey=CLIENT_KEY_PEM)

    response = await api.post(f"{TEAM}/{created['id']}/files", files=files)

    assert response.status_code == 200, response.text
    uploaded = response.json()
    assert (uploaded["hasSslCa"], uploaded["hasSslCert"], uploaded["hasSslKey"]) == (True, True, True)
    assert (uploaded["ssl"], uploaded["sslMode"]) == (True, "verify-full")
    assert set(stored_ciphertexts(store_url)[created["id"]]) == {"password", "ssl.ca", "ssl.cert", "ssl.key"}
    # A later PUT switching TLS off and on again keeps the files.
    await api.put(f"{TEAM}/{created['id']}", json={"ssl": False})
    again = (await api.put(f"{TEAM}/{created['id']}", json={"ssl": True})).json()
    assert (again["sslMode"], again["hasSslCa"], again["hasSslKey"]) == ("require", True, True)


async def test_files_may_come_one_at_a_time(lite: httpx.AsyncClient) -> None:
    created = await create(lite, postgres_body(ssl=True))
    path = f"{TEAM}/{created['id']}/files"

    assert (await lite.post(path, files=pem_files(sslCa=CA_PEM))).json()["hasSslCa"] is True
    alone = await lite.post(path, files=pem_files(sslCert=CLIENT_CERT_PEM))
    assert_error(alone, 400, "sslKey")  # a client certificate goes with its key
    both = await lite.post(path, files=pem_files(sslCert=CLIENT_CERT_PEM, sslKey=CLIENT_KEY_PEM))
    assert [both.json()[name] for name in ("hasSslCa", "hasSslCert", "hasSslKey")] == [True, True, True]


@pytest.mark.parametrize(
    ("files", "field"),
    [
        ({"sslCa": "not a certificate"}, "sslCa"),
        ({"sslCa": CLIENT_KEY_PEM}, "sslCa"),
        (
            {"sslCert": "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n", "sslKey": CLIENT_KEY_PEM},
            "sslCert",
        ),
        ({"sslCert": CLIENT_CERT_PEM, "sslKey": CA_PEM}, "sslKey"),
        ({"sslCa": ""}, "sslCa"),
        ({"caFile": CA_PEM}, "caFile"),
    ],
)
async def test_a_file_that_is_not_the_right_pem_is_a_400_naming_it(
    lite: httpx.AsyncClient, files: dict[str, str], field: str
) -> None:
    created = await create(lite, postgres_body(ssl=True))

    response = await lite.post(f"{TEAM}/{created['id']}/files", files=pem_files(**files))

    assert_error(response, 400, field)
    assert (await lite.get(f"{TEAM}/{created['id']}")).json()["hasSslCa"] is False


async def test_a_binary_file_is_refused_naming_it(lite: httpx.AsyncClient) -> None:
    created = await create(lite, postgres_body(ssl=True))
    files = {"sslCa": ("ca.der", b"\x30\x82\xff\xfe binary", "application/octet-stream")}

    assert_error(await lite.post(f"{TEAM}/{created['id']}/files", files=files), 400, "sslCa")


async def test_files_limits_and_media_type(lite: httpx.AsyncClient) -> None:
    created = await create(lite, postgres_body(ssl=True))
    path = f"{TEAM}/{created['id']}/files"
    one_mib = 1024 * 1024

    over = await lite.post(path, files={"sslCa": ("ca.pem", b"A" * (one_mib + 1), "text/plain")})
    assert_error(over, 413)
    assert "sslCa" in over.json()["message"]
    # Three files of 1 MiB fit the route's own limit (then fail as PEMs, not as sizes)...
    three = {name: (f"{name}.pem", b"A" * one_mib, "text/plain") for name in ("sslCa", "sslCert", "sslKey")}
    assert_error(await lite.post(path, files=three), 400, "sslCa", "sslCert", "sslKey")
    # ...but not four, and every other route keeps the 1 MiB body limit.
    four = {**three, "sslExtra": ("x.pem", b"A" * one_mib, "text/plain")}
    assert_error(await lite.post(path, files=four), 413)
    assert_error(await lite.post(TEAM, json=postgres_body(subType="x" * (one_mib + 1))), 413)
    assert_error(await lite.post(path, json={"sslCa": CA_PEM}), 415)
    empty = await lite.post(path, content=b"--xyz--\r\n", headers={"Content-Type": "multipart/form-data; boundary=xyz"})
    assert_error(empty, 400, "body")
    assert_error(await lite.post(path, files=pem_files(sslCa=CA_PEM), data={"note": "hello"}), 400, "note")


# -- live tests ---------------------------------------------------------------------------------


async def test_a_failed_test_is_a_400_report_with_success_false(api: httpx.AsyncClient) -> None:
    created = await create(api, postgres_body(host="127.0.0.1", port=free_port()))

    response = await api.get(f"{TEAM}/{created['id']}/test")

    assert response.status_code == 400  # as Chartbrew: its web client colours a result by status < 400
    result = response.json()
    assert (result["success"], result["status"], result["schema"]) == (False, "failure", None)
    assert result["error"]["category"] == "PORT_CLOSED"


async def test_a_working_connection_tests_with_its_schema(api: httpx.AsyncClient) -> None:
    require_server("PostgreSQL", "127.0.0.1", 5432)
    body = postgres_body(host="127.0.0.1", username="postgres", dbName="postgres", sslMode=None)
    created = await create(api, body)

    result = (await api.get(f"{TEAM}/{created['id']}/test")).json()

    assert (result["success"], result["status"], result["error"]) == (True, "success", None)
    assert isinstance(result["schema"]["tables"], list)
    assert (await api.get(f"{TEAM}/{created['id']}")).json()["schema"] == result["schema"]


async def test_the_test_limit_is_shared_with_the_reporter_dialect(lite: httpx.AsyncClient) -> None:
    created = await create(lite, postgres_body(host="127.0.0.1", port=free_port()), "/team/default/connections")
    for _ in range(10):
        assert (await lite.get(f"/team/default/connections/{created['id']}/test")).status_code == 400  # refused

    uuid = (await lite.get(REPORTER)).json()["items"][0]["id"]
    limited = await lite.post(f"{REPORTER}/{uuid}/test")

    assert_error(limited, 429)
    assert int(limited.headers["Retry-After"]) >= 1
    assert_error(await lite.get(f"/team/default/connections/{created['id']}/test"), 429)


async def test_an_unsaved_test_stores_nothing(lite: httpx.AsyncClient) -> None:
    body = postgres_body(name=None, type="mysql", host="127.0.0.1", port=str(free_port()))

    response = await lite.post(f"{TEAM}/postgres/test", json=body)

    assert response.status_code == 400, response.text
    assert (response.json()["success"], response.json()["error"]["category"]) == (False, "PORT_CLOSED")
    assert (await lite.get(TEAM)).json() == []
    assert_error(await lite.post(f"{TEAM}/firestore/test", json=body), 400, "type")
    assert_error(await lite.post(f"{TEAM}/postgres/test", json=postgres_body(host="bad host")), 400, "host")


# -- a password full of URI delimiters, against the real MariaDB --------------------------------


@pytest.fixture
def mariadb_user() -> Iterator[tuple[str, str]]:
    """A MariaDB user whose password holds @ : / ? # % and non-ASCII characters; dropped after."""
    require_server("MariaDB", MARIADB_HOST, MARIADB_PORT)
    user = f"cb_{secrets.token_hex(4)}"
    hosts = ("%", "localhost", "127.0.0.1")
    root = pymysql.connect(host=MARIADB_HOST, port=MARIADB_PORT, user="root", password="", charset="utf8mb4")
    try:
        with root.cursor() as cursor:
            for host in hosts:
                cursor.execute("CREATE USER %s@%s IDENTIFIED BY %s", (user, host, NASTY_PASSWORD))
                cursor.execute("GRANT ALL ON test.* TO %s@%s", (user, host))
        yield user, NASTY_PASSWORD
    finally:
        with root.cursor() as cursor:
            for host in hosts:
                cursor.execute("DROP USER IF EXISTS %s@%s", (user, host))
        root.close()


async def test_a_uri_encoded_password_round_trips_into_a_working_test(
    lite: httpx.AsyncClient, watch: SecretWatch, mariadb_user: tuple[str, str]
) -> None:
    user, password = mariadb_user
    watch.secrets |= {password, quote(password, safe="")}
    uri = connstring.build("mysql", MARIADB_HOST, MARIADB_PORT, user, password, "test")
    wrong = connstring.build("mysql", MARIADB_HOST, MARIADB_PORT, user, password + "x", "test")

    works = await lite.post(f"{TEAM}/mysql/test", json={"connectionString": uri})
    refused = await lite.post(f"{TEAM}/mysql/test", json={"connectionString": wrong})

    assert works.status_code == 200, works.text
    assert (works.json()["success"], works.json()["status"]) == (True, "success"), works.json()
    assert (refused.json()["success"], refused.json()["error"]["category"]) == (False, "AUTH_FAILED")


async def test_a_saved_and_duplicated_uri_connection_still_works(
    api: httpx.AsyncClient, watch: SecretWatch, mariadb_user: tuple[str, str]
) -> None:
    user, password = mariadb_user
    watch.secrets |= {password, quote(password, safe="")}
    uri = connstring.build("mysql", MARIADB_HOST, MARIADB_PORT, user, password, "test")
    created = await create(api, {"name": "MariaDB reports", "type": "mysql", "connectionString": uri})
    assert created["connectionString"] == f"mysql://{user}:****@{MARIADB_HOST}:{MARIADB_PORT}/test"

    copy = (await api.post(f"{TEAM}/{created['id']}/duplicate", json={"name": "MariaDB copy"})).json()

    for connection in (created, copy):
        result = (await api.get(f"{TEAM}/{connection['id']}/test")).json()
        assert (result["success"], result["serverVersion"] is not None) == (True, True), result


@pytest.mark.parametrize(
    "options",
    [[{"password": "Opt-S3cret"}], {"password": "Opt-S3cret"}, [{"authSource": "a"}, {"sslpassword": "Opt-S3cret"}]],
)
async def test_secret_option_keys_are_refused_saying_where_the_password_goes(
    lite: httpx.AsyncClient, options: Any
) -> None:
    # Options are stored and answered in clear: a password among them would be shown to every reader.
    answer = await lite.post(TEAM, json=chartbrew_body(options=options))

    assert answer.status_code == 400, answer.text
    assert "password field" in answer.json()["fields"]["options"]
    assert "Opt-S3cret" not in answer.text
    assert (await lite.get(TEAM)).json() == []
