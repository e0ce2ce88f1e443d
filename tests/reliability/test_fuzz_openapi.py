"""Fuzzing every operation of Connhub's own /openapi.json (both dialects) with schemathesis.

For each operation schemathesis sends schema-valid and schema-breaking requests (its examples,
coverage and fuzzing phases, derandomized so a run is reproducible). Every answer must be
documented (status code, content type, headers, body schema), never a 5xx, every error must be the
JSON shape {code, title, message}, and schema-breaking requests must be refused.

Where the traffic goes. The app runs in this process on a real loopback socket (SQLite store, auth
disabled, probe timeout 1 s, probes allowed to 127.0.0.0/8 and ::1 only, so any other *address* is
HOST_FORBIDDEN before a packet is sent). A fuzzed host *name* would still be resolved first, and
this machine's resolver (/etc/resolv.conf) is a DNS server off the machine. So:
  - bodies of the operations that test live have any valid host name replaced by 127.0.0.1 (their
    probes then really run, against loopback), and
  - the whole run sits behind `LoopbackOnlyResolver`: `socket.getaddrinfo` answers IP literals and
    localhost and refuses every other name locally (the app then reports DNS_FAILED, as for an
    unknown name). The server runs on plain asyncio, whose resolver is `socket.getaddrinfo`.
No fuzzed request can make a packet leave the machine; the figures say how many names were refused.

Crafted values (issue 14.5). JSON Schema cannot say "a NUL byte", "the last day of the calendar" or
"a cursor with a tampered timestamp", so a third of the cases get one such value in place of a
string parameter or a body's text (`craft`): NUL in filters, ids, team ids, metadata and
validate-schema names; dates at either end of the calendar; cursors with a bad timestamp or a
number of 10^30, 2^63 or -2^70. Each must be a documented 4xx (never a 5xx), on both stores:
PostgreSQL refuses a NUL in any text where SQLite stores it.
"""

from __future__ import annotations

import base64
import hashlib
import ipaddress
import json
import os
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import allow_header_conformance, positive_data_acceptance, unsupported_method

from connhub.api.app import create_app
from connhub.config import Settings
from connhub.domain.connection import is_valid_host
from connhub.store.migrate import migrate
from tests.conftest import truncate_pg
from tests.reliability.conftest import FIGURES, Figures
from tests.support.reliability import LoopbackOnlyResolver, ThreadedServer, is_problem
from tests.support.servers import free_port

EXAMPLES = int(os.environ.get("CONNHUB_FUZZ_EXAMPLES", "25"))  # per operation and phase
FIGURES_NAME = "test_every_operation_answers_as_documented"
CLOSED_PORT = free_port()
# A refusal of schema-breaking data. RFC 9110 13.2.1: preconditions are evaluated before the
# request content, so a stale If-Match with a bad body is rightly 412. Never a 5xx.
REJECTIONS = ("400", "401", "403", "404", "405", "406", "409", "412", "413", "415", "422", "428", "429")
# Two templates route the same URLs: /team/1/connections/2/test is GET (test connection 2) and POST
# (test an unsaved body of type "2"). Their 405 rightly allows both methods while each documented
# operation names one, and a GET there is the other operation, not an undeclared method.
SHARED_URLS = ("/team/{team_id}/connections/{connection_id}/test", "/team/{team_id}/connections/{type}/test")


class FuzzedApp:
    def __init__(self, server: ThreadedServer, resolver: LoopbackOnlyResolver) -> None:
        self.server = server
        self.resolver = resolver
        self.http = httpx.Client(base_url=server.base_url, timeout=10)
        self.reporter_ids: list[str] = []
        self.chartbrew_ids: list[int] = []

    def seed(self) -> None:
        """Keep a few records (seen by both dialects) for fuzzed ids to land on."""
        listed = self.http.get("/v1/management/connections", params={"limit": 20}).json()["items"]
        while len(listed) < 4:
            body = {
                "configName": f"seed-{os.urandom(4).hex()}",
                "type": "POSTGRESQL",
                "host": "127.0.0.1",
                "port": CLOSED_PORT,
                "databaseName": "db",
                "userName": "user",
                "password": "seed-password",
                "metadata": {"team": "fuzz"},
            }
            created = self.http.post("/v1/management/connections", json=body, headers={"X-Product-Name": "fuzz"})
            assert created.status_code == 201, created.text
            listed.append(created.json())
        self.reporter_ids = [item["id"] for item in listed]
        self.chartbrew_ids = [item["id"] for item in self.http.get("/team/default/connections").json()]


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def fuzzed_app(tmp_path_factory: pytest.TempPathFactory, request: pytest.FixtureRequest) -> Iterator[FuzzedApp]:
    workdir = tmp_path_factory.mktemp("fuzz")
    if request.param == "sqlite":
        url = f"sqlite:///{workdir / 'fuzz.db'}"
        migrate(url)
    else:
        url = request.getfixturevalue("pg_store_url")
        truncate_pg(url)
    app = create_app(
        Settings(
            database_url=url,
            encryption_keys="fuzz:" + base64.b64encode(os.urandom(32)).decode(),
            data_dir=workdir / "data",
            probe_timeout_s=1,
            probe_allow_cidrs="127.0.0.0/8,::1/128",
            tests_per_minute=1000,
        )
    )
    with LoopbackOnlyResolver() as resolver, ThreadedServer(app) as server:
        fuzzed = FuzzedApp(server, resolver)
        fuzzed.seed()
        yield fuzzed
        fuzzed.http.close()
    figures = request.config.stash.setdefault(FIGURES, {}).setdefault(FIGURES_NAME, Figures())
    figures.note(f"{len(resolver.refused)} fuzzed host names refused by the loopback-only resolver, 0 DNS queries")


@pytest.fixture(scope="module")
def api_schema(fuzzed_app: FuzzedApp) -> Any:
    document = fuzzed_app.http.get("/openapi.json").json()
    loaded = schemathesis.openapi.from_dict(document)
    loaded.config.update(base_url=fuzzed_app.server.base_url)
    loaded.config.checks.negative_data_rejection.expected_statuses = [*REJECTIONS]
    return loaded


schema = schemathesis.pytest.from_fixture("api_schema")


@pytest.fixture
def fuzz_figures(request: pytest.FixtureRequest) -> Figures:
    return request.config.stash.setdefault(FIGURES, {}).setdefault(FIGURES_NAME, Figures())


def keep_on_loopback(case: Any) -> None:
    """A valid host name in a body that is tested live becomes 127.0.0.1 (see the module doc)."""
    live = case.path.endswith("/test") or bool(case.query and case.query.get("validate"))
    if live and isinstance(case.body, dict):
        host = case.body.get("host")
        if isinstance(host, str) and is_valid_host(host) and not _is_ip(host):
            case.body["host"] = "127.0.0.1"


def _is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
        return True
    except ValueError:
        return False


def land_on_records(case: Any, fuzzed: FuzzedApp) -> None:
    """Half of the fuzzed ids become ids of real records, so that success paths are fuzzed too."""
    params = case.path_parameters or {}
    fuzzed_id = params.get("id")
    if isinstance(fuzzed_id, str) and len(fuzzed_id) % 2 == 0 and fuzzed.reporter_ids:
        params["id"] = fuzzed.reporter_ids[len(fuzzed_id) % len(fuzzed.reporter_ids)]
    number = params.get("connection_id")
    if isinstance(number, int) and number % 2 == 0 and fuzzed.chartbrew_ids:
        params["connection_id"] = fuzzed.chartbrew_ids[number % len(fuzzed.chartbrew_ids)]
        params["team_id"] = "default"


def _cursor(*parts: Any) -> str:
    return base64.urlsafe_b64encode(json.dumps(list(parts)).encode()).decode().rstrip("=")


_MOMENT = "2026-01-01T00:00:00+00:00"
CRAFTED_TEXT = ["a\x00b", "\x00", "x" * 10 + "\x00"]
CRAFTED_QUERY: dict[str, list[str]] = {
    "startDate": ["9999-12-31", "0001-01-01", "10000-01-01", "0000-12-31"],
    "endDate": ["9999-12-31", "0001-01-01", "10000-01-01"],
    "cursor": [
        _cursor("createdAt", "desc", "not-a-timestamp", 1),
        _cursor("createdAt", "desc", _MOMENT, 10**30),
        _cursor("createdAt", "desc", _MOMENT, 2**63),
        _cursor("createdAt", "desc", _MOMENT, -(2**70)),
        _cursor("createdAt", "desc", "9999-12-31T23:59:59.999999-23:59", 1),
        _cursor("createdAt", "desc", "2026-01-01T00:00:00", 1),
        _cursor("createdAt", "desc", _MOMENT, "1"),
    ],
}


def _pick(values: list[Any], seed: str) -> Any:
    return values[int(hashlib.sha256(seed.encode()).hexdigest(), 16) % len(values)]


def craft(case: Any) -> bool:
    """A third of the cases (chosen by a hash of the case) get one crafted value: see the module
    docstring. Returns whether this one did."""
    seed = repr((case.method, case.path, case.path_parameters, case.query, case.body))
    if int(hashlib.sha256(seed.encode()).hexdigest(), 16) % 3:
        return False
    text = _pick(CRAFTED_TEXT, seed + "text")
    query = case.query if isinstance(case.query, dict) else None
    if case.path == "/v1/management/connections" and case.method == "GET":
        case.query = query = query or {}
        name = _pick(["configName", "host", "databaseName", "metadata.team", *CRAFTED_QUERY], seed)
        query[name] = _pick(CRAFTED_QUERY[name], seed + "value") if name in CRAFTED_QUERY else text
        return True
    if case.path.endswith("/validate-schema"):
        case.body = {"mappedFields": {text: {"t": ["c"]}}}
        return True
    params = case.path_parameters or {}
    for name in ("id", "team_id"):
        if isinstance(params.get(name), str):
            params[name] = text
            return True
    if isinstance(case.body, dict) and case.method in ("POST", "PATCH", "PUT"):
        case.body["metadata"] = {"team": text}
        return True
    return False


@schema.parametrize()
@settings(
    max_examples=EXAMPLES, deadline=None, derandomize=True, database=None, suppress_health_check=list(HealthCheck)
)
def test_every_operation_answers_as_documented(case: Any, fuzzed_app: FuzzedApp, fuzz_figures: Figures) -> None:
    keep_on_loopback(case)
    land_on_records(case, fuzzed_app)
    crafted = craft(case)
    fuzz_figures.requests += 1
    if case.meta is not None and case.meta.generation.mode.is_negative:
        fuzz_figures.faults += 1  # a schema-breaking request
    response = case.call(timeout=15)
    label = f"{case.method} {case.formatted_path}"
    assert response.status_code < 500, f"{label}: {response.status_code} {response.text[:300]}"
    if crafted:
        fuzz_figures.faults += 1  # a crafted value
        assert 400 <= response.status_code < 500, f"{label} (crafted): {response.status_code} {response.text[:300]}"
    if response.status_code >= 400 and case.path != "/readyz":
        assert is_problem(response.json()), f"{label}: {response.text[:300]}"
    # Positive-data acceptance is left out: a schema-valid body is still refused by rules JSON
    # Schema does not carry (a host that is not RFC 1123, a name already taken, a database that is
    # down: 400/409/422), which is documented behaviour, not a failure.
    excluded = [positive_data_acceptance]
    if case.operation.path in SHARED_URLS:
        excluded += [allow_header_conformance, unsupported_method]
    case.validate_response(response, excluded_checks=excluded)
    if case.method == "DELETE" and response.status_code < 300:
        fuzzed_app.seed()
