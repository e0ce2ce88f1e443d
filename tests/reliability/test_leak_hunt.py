"""Leak hunt: canary secrets pushed through every endpoint of both dialects never come out.

The canaries: a password, a connection string carrying another password, a CA certificate, a client
certificate and its private key. They travel through successes, validation errors, conflicts,
failed live tests, idempotent replays and mismatches, PATCH/PUT, duplicate, file upload, oversized
and non-JSON bodies. The app runs on a real socket in this process with DEBUG logging on for every
logger (uvicorn, its access log, SQLAlchemy with statement parameters, aiosqlite, psycopg, asyncio,
connhub). Then no canary, in any encoding a slip would produce (as is, percent-encoded, JSON-escaped,
hex, base64), may appear in:
  - a response (status line aside: headers and body),
  - a log record (message, arguments and formatted traceback), or anything printed,
  - the Prometheus metrics,
  - a byte of the store (SQLite files with their WAL; every row on PostgreSQL).
"""

from __future__ import annotations

import base64
import json
import logging
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote, quote_plus

import httpx
import pytest

from connhub.api.app import create_app
from connhub.config import Settings
from connhub.logs import RequestIdField, formatter
from tests.conftest import truncate_pg
from tests.reliability.conftest import Figures
from tests.support.pki import self_signed
from tests.support.reliability import ThreadedServer
from tests.support.servers import free_port
from tests.support.store_contents import store_bytes

BASE = "/v1/management/connections"
TEAM = "/team/leaks/connections"
PRODUCT = {"X-Product-Name": "leak-hunt"}
CLOSED_PORT = free_port()

PASSWORD = "LeakCanaryPw0a1b2c:@/?#%é"  # every character a URI or a log might mangle
URI_PASSWORD = "LeakCanaryUri3d4e5f:@/?#%ü"
CONNECTION_STRING = f"postgresql://analyst:{quote(URI_PASSWORD, safe='')}@127.0.0.1:{CLOSED_PORT}/sales"
CA, _ = self_signed("leak-canary-ca")
CERT, KEY = self_signed("leak-canary-client")


def pem_line(pem: str) -> str:
    """A full base64 line from the middle of a PEM: distinctive, and what a partial dump shows."""
    return pem.splitlines()[2]


def forms(secret: str) -> set[str]:
    """How a secret looks after the slips that put secrets in logs and bodies."""
    raw = secret.encode()
    return {
        secret,
        quote(secret, safe=""),
        quote_plus(secret),
        json.dumps(secret)[1:-1],  # JSON with \\u escapes
        raw.hex(),
        base64.b64encode(raw).decode(),
    }


CANARIES: dict[str, set[str]] = {
    "password": forms(PASSWORD) | forms(PASSWORD[:19]),  # the ASCII head alone, too
    "connection string password": forms(URI_PASSWORD) | forms(URI_PASSWORD[:19]),
    "CA": {pem_line(CA)},
    "client certificate": {pem_line(CERT)},
    "private key": {pem_line(KEY), KEY.splitlines()[1], KEY.splitlines()[-2]},
}


def leaks(text: str) -> list[str]:
    return [name for name, variants in CANARIES.items() if any(variant in text for variant in variants)]


class CapturedLogs(logging.Handler):
    """Every record of every logger, formatted with its arguments and traceback, and as `connhub
    serve` writes it: its text line and its JSON line (extra fields included, such as the access
    line's), with the request id its handler adds."""

    def __init__(self) -> None:
        super().__init__(level=logging.DEBUG)
        self.lines: list[str] = []
        self.setFormatter(logging.Formatter("%(name)s %(levelname)s %(message)s"))
        self.served_as = (formatter("text"), formatter("json"))
        self.addFilter(RequestIdField())

    def emit(self, record: logging.LogRecord) -> None:
        if record.name.startswith(("httpx", "httpcore")):  # the test's own client, not the service
            return
        self.lines.append(self.format(record) + f" args={record.args!r}")
        self.lines.extend(served.format(record) for served in self.served_as)


@pytest.fixture
def debug_logs() -> Iterator[CapturedLogs]:
    captured = CapturedLogs()
    root = logging.getLogger()
    previous = root.level
    names = ("uvicorn", "uvicorn.error", "uvicorn.access", "sqlalchemy", "aiosqlite", "psycopg", "asyncio", "connhub")
    saved = {name: (logging.getLogger(name).level, logging.getLogger(name).propagate) for name in names}
    root.addHandler(captured)
    root.setLevel(logging.DEBUG)
    for name in names:  # an earlier uvicorn in this process may have cut its loggers off the root
        logging.getLogger(name).setLevel(logging.DEBUG)
        logging.getLogger(name).propagate = True
    try:
        yield captured
    finally:
        root.removeHandler(captured)
        root.setLevel(previous)
        for name, (level, propagate) in saved.items():
            logging.getLogger(name).setLevel(level)
            logging.getLogger(name).propagate = propagate


def reporter_body(name: str, **overrides: Any) -> dict[str, Any]:
    body = {
        "configName": name,
        "type": "POSTGRESQL",
        "host": "127.0.0.1",
        "port": CLOSED_PORT,
        "databaseName": "sales",
        "userName": "analyst",
        "password": PASSWORD,
        "ssl": {"mode": "verify-full", "ca": CA, "cert": CERT, "key": KEY},
        "metadata": {"team": "finance"},
    }
    body.update(overrides)
    return {name: value for name, value in body.items() if value is not None}


def chartbrew_body(name: str, **overrides: Any) -> dict[str, Any]:
    body = {"name": name, "type": "postgres", "connectionString": CONNECTION_STRING, "password": PASSWORD}
    body.update(overrides)
    return body


def pem_files() -> dict[str, tuple[str, bytes, str]]:
    texts = {"sslCa": CA, "sslCert": CERT, "sslKey": KEY}
    return {name: (f"{name}.pem", text.encode(), "application/x-pem-file") for name, text in texts.items()}


def exercise(http: httpx.Client) -> list[httpx.Response]:
    """Every endpoint of both dialects, each way it can answer, every request carrying canaries."""
    answers: list[httpx.Response] = []

    def call(method: str, url: str, **kwargs: Any) -> httpx.Response:
        answers.append(http.request(method, url, **kwargs))
        return answers[-1]

    idempotent = {**PRODUCT, "X-Idempotency": "leak-key-1"}
    created = call("POST", BASE, json=reporter_body("leaky"), headers=idempotent)
    assert created.status_code == 201, created.text
    one = f"{BASE}/{created.json()['id']}"
    call("POST", BASE, json=reporter_body("leaky"), headers=idempotent)  # replay: 201
    call("POST", BASE, json=reporter_body("leaky-other"), headers=idempotent)  # same key, other body: 409
    call("POST", BASE, json=reporter_body("leaky"), headers=PRODUCT)  # name taken: 409
    call("POST", BASE, json=reporter_body("leaky-2", port="5432"), headers=PRODUCT)  # 400
    call("POST", BASE, json=reporter_body("leaky-3", password=PASSWORD * 60), headers=PRODUCT)  # too long: 400
    call("POST", BASE, json=reporter_body("leaky-4", ssl={"mode": "require", "cert": CERT}), headers=PRODUCT)
    call("POST", BASE, json=reporter_body("leaky-5", ssl={"mode": "require", "ca": KEY}), headers=PRODUCT)
    call("POST", BASE, json=reporter_body("leaky-6", surprise=PASSWORD), headers=PRODUCT)
    call("POST", BASE, json=reporter_body("leaky-7", connectionString=CONNECTION_STRING), headers=PRODUCT)
    call("POST", BASE, json=reporter_body("leaky-8", connectionString="mysql://a:" + PASSWORD), headers=PRODUCT)
    call("POST", BASE, json=reporter_body("validated"), headers=PRODUCT, params={"validate": "true"})  # 422
    call("POST", BASE, content=json.dumps(reporter_body("x")).encode() + b"}", headers=PRODUCT | _json())  # 400
    call("POST", BASE, content=PASSWORD.encode(), headers={**PRODUCT, "Content-Type": "text/plain"})  # 415
    call("POST", BASE, json=reporter_body("huge", metadata={"pad": PASSWORD * 60_000}), headers=PRODUCT)  # 413
    call("POST", f"{BASE}/test", json=reporter_body("unsaved"))
    call("POST", f"{BASE}/test", json=reporter_body("unsaved-uri", connectionString=CONNECTION_STRING))
    call("POST", f"{one}/test")
    call("GET", f"{one}/schema")
    call("GET", one)
    call("GET", BASE, params={"configName": "leaky", "metadata.team": "finance"})
    call("PATCH", one, json={"password": PASSWORD + "-2", "port": "bad"})  # 400
    call("PATCH", one, json={"password": PASSWORD + "-2", "connectionString": CONNECTION_STRING})
    call("PATCH", one, json={"ssl": {"mode": "verify-ca", "key": KEY}})  # 400: a key without its cert
    call("PATCH", one, json={"port": 1}, headers={"If-Match": '"stale"'})  # 412
    call("GET", f"{BASE}/unassigned")
    call("POST", f"{one}/assign", headers=PRODUCT)  # already assigned: 409
    call("POST", f"{BASE}/validate-schema", json={"mappedFields": {"leaky": {"t": ["c"]}}})  # 422
    call("GET", "/v1/data-sources")
    call("GET", "/v1/data-sources/leaky")  # 422: the database cannot be read

    made = call("POST", TEAM, json=chartbrew_body("chart-leaky"))
    assert made.status_code == 200, made.text
    number = f"{TEAM}/{made.json()['id']}"
    call("POST", TEAM, json=chartbrew_body("chart-leaky"))  # 409
    call("POST", TEAM, json=chartbrew_body("chart-bad", port="54x"))  # 400
    call("POST", TEAM, json=chartbrew_body("chart-api", type="api"))  # 400
    call("GET", TEAM)
    call("GET", number)
    call("PUT", number, json={"password": PASSWORD + "-3", "sslCa": CA, "ssl": True})
    call("PUT", number, json={"connectionString": CONNECTION_STRING.replace("sales", "sales2")})
    call("PUT", number, json={"sslCert": CERT})  # 400: a certificate without its key
    call("POST", f"{number}/files", files=pem_files())
    call("POST", f"{number}/files", files={"sslKey": ("k.pem", CERT.encode(), "text/plain")})  # 400
    call("POST", f"{number}/duplicate", json={"name": "chart-copy"})
    call("POST", f"{number}/duplicate", json={"name": "chart-copy"})  # 409
    call("GET", f"{number}/test")
    call("POST", f"{TEAM}/postgres/test", json=chartbrew_body("x"))
    call("POST", f"{TEAM}/postgres/test", json=chartbrew_body("x", sslKey=KEY, sslCert=CERT, ssl=True))
    call("DELETE", number)
    call("DELETE", one)
    call("GET", "/readyz")
    return answers


def _json() -> dict[str, str]:
    return {"Content-Type": "application/json"}


@pytest.fixture
def hunted_store(store_url: str) -> Iterator[str]:
    """An empty store of each kind; the shared PostgreSQL test database is left empty again after."""
    yield store_url
    if store_url.startswith("postgresql"):
        truncate_pg(store_url)  # other tests' key rings do not hold this test's key


def test_no_canary_in_responses_logs_metrics_or_store(
    hunted_store: str, tmp_path: Path, debug_logs: CapturedLogs, capfd: pytest.CaptureFixture[str], figures: Figures
) -> None:
    app = create_app(
        Settings(
            database_url=hunted_store,
            encryption_keys="leaks:" + base64.b64encode(os.urandom(32)).decode(),
            data_dir=tmp_path / "data",
            probe_timeout_s=2,
            probe_allow_cidrs="127.0.0.0/8",
            log_level="DEBUG",
        )
    )
    with ThreadedServer(app, log_level="debug") as server, httpx.Client(base_url=server.base_url, timeout=20) as http:
        answers = exercise(http)
        metrics = http.get("/metrics").text
    statuses = sorted({answer.status_code for answer in answers})
    assert {200, 201, 204, 400, 409, 412, 413, 415, 422} <= set(statuses), statuses
    assert all(status < 500 for status in statuses), statuses

    for answer in answers:
        shown = "\n".join(f"{name}: {value}" for name, value in answer.headers.items()) + "\n" + answer.text
        assert not leaks(shown), (answer.request.method, answer.request.url, leaks(shown), answer.text[:400])
    assert not leaks(metrics)
    assert len(debug_logs.lines) > 100  # DEBUG logging really was on
    assert any(line.startswith("sqlalchemy.engine") for line in debug_logs.lines)
    assert any(line.startswith("uvicorn.access") for line in debug_logs.lines)
    access_lines = [line for line in debug_logs.lines if '"logger":"connhub.access"' in line]
    assert len(access_lines) >= len(answers)  # one JSON access line per request (and its text twin)
    leaked = [(line[:300], leaks(line)) for line in debug_logs.lines if leaks(line)]
    assert not leaked, leaked[:3]
    printed = capfd.readouterr()
    assert not leaks(printed.out + printed.err)
    at_rest = store_bytes(hunted_store).decode("latin-1")
    assert not leaks(at_rest), leaks(at_rest)
    assert "leak-canary" not in at_rest  # not even the certificates' subjects

    figures.requests += len(answers) + 1
    figures.faults += sum(answer.status_code >= 400 for answer in answers)
    figures.note(f"{len(debug_logs.lines)} log records, {len(at_rest)} store bytes searched; 0 canaries found")
