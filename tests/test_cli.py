"""The `connhub` command as a newcomer runs it: the real command in a subprocess, read from its output."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import psycopg
import pytest

from connhub.secrets import KeyRing, new_key_entry
from connhub.store.migrate import migrate
from connhub.store.revision import HEAD
from tests.conftest import PG_ADMIN_URL
from tests.support.migrations import rewind
from tests.support.servers import free_port, require_server

SECRET = "S3cretPw-4b9e"  # in the URLs and keys below: never in any output


def connhub(
    *args: str, cwd: Path, env: dict[str, str] | None = None, stdin: str | None = None
) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("CONNHUB_")}
    return subprocess.run(
        [sys.executable, "-m", "connhub.cli", *args],
        cwd=cwd,
        env={**clean, **(env or {})},
        capture_output=True,
        text=True,
        timeout=60,
        input=stdin,
    )


def one_line_error(result: subprocess.CompletedProcess[str], code: int = 2) -> str:
    """The single stderr line of a refused command, checked for what every such line must be."""
    output = result.stdout + result.stderr
    assert result.returncode == code, output
    assert result.stderr.count("\n") == 1 and result.stderr.startswith("connhub: "), output
    assert "Traceback" not in output and "listening" not in output
    assert SECRET not in output
    return result.stderr.strip()


def test_keys_generate_prints_a_usable_entry(tmp_path: Path) -> None:
    result = connhub("keys", "generate", "--id", "prod1", cwd=tmp_path)
    entry = result.stdout.strip()
    assert entry.startswith("prod1:")
    assert KeyRing.parse(entry).active_id == "prod1"


KEY_ENTRY = "k1:" + "A" * 43 + "="


def test_keys_generate_refuses_an_id_already_in_the_ring(tmp_path: Path) -> None:
    line = one_line_error(
        connhub("keys", "generate", "--id", "k1", cwd=tmp_path, env={"CONNHUB_ENCRYPTION_KEYS": KEY_ENTRY})
    )
    assert "'k1' is already in the key ring" in line


def test_keys_generate_never_reuses_an_id_of_the_ring(tmp_path: Path) -> None:
    # A ring holding every default id of the next few seconds: the new one must still be fresh.
    now = datetime.now(UTC)
    stamps = ["k" + (now + timedelta(seconds=s)).strftime("%Y%m%d%H%M%S") for s in range(-1, 30)]
    ring = ",".join(new_key_entry(stamp) for stamp in stamps)
    result = connhub("keys", "generate", cwd=tmp_path, env={"CONNHUB_ENCRYPTION_KEYS": ring})
    assert result.returncode == 0, result.stderr
    fresh = result.stdout.strip().partition(":")[0]
    assert fresh not in stamps
    KeyRing.parse(result.stdout.strip() + "," + ring)  # and the rotation step (put it first) works


def test_keys_generate_against_the_development_key_file_avoids_its_id(tmp_path: Path) -> None:
    (tmp_path / ".connhub").mkdir()
    (tmp_path / ".connhub" / "keys").write_text(new_key_entry("dev1") + "\n")
    assert "'dev1' is already" in one_line_error(connhub("keys", "generate", "--id", "dev1", cwd=tmp_path))


def test_production_refuses_to_start_naming_what_is_missing(tmp_path: Path) -> None:
    line = one_line_error(connhub("serve", cwd=tmp_path, env={"CONNHUB_ENV": "production"}))
    assert "CONNHUB_ENCRYPTION_KEYS" in line and "CONNHUB_AUTH" in line
    result = connhub(
        "serve",
        cwd=tmp_path,
        env={"CONNHUB_ENV": "production", "CONNHUB_AUTH": "jwt", "CONNHUB_ENCRYPTION_KEYS": KEY_ENTRY},
    )
    assert "CONNHUB_JWT_SECRET" in one_line_error(result)


@pytest.mark.parametrize(
    ("variable", "value", "says"),
    [
        ("CONNHUB_ENCRYPTION_KEYS", f"k1{SECRET}", "each key must be KEY_ID:BASE64"),
        ("CONNHUB_ENCRYPTION_KEYS", f"k1:{SECRET}", "'k1' is not valid base64"),
        ("CONNHUB_ENCRYPTION_KEYS", "k1:QUFBQQ==", "'k1' must be 32 bytes"),
        ("CONNHUB_ENCRYPTION_KEYS", f"{KEY_ENTRY},{new_key_entry('k1')}", "'k1' appears more than once"),
        ("CONNHUB_LOG_LEVEL", "LOUD", "must be one of DEBUG, INFO"),
        ("CONNHUB_LOG_FORMAT", "xml", "'text' or 'json'"),
        ("CONNHUB_PROBE_DENY_CIDRS", "10.0.0.0/33", "invalid CIDR '10.0.0.0/33'"),
        ("CONNHUB_PROBE_ALLOW_CIDRS", "10.0.0.0/8,office", "invalid CIDR 'office'"),
        ("CONNHUB_PROBE_DNS_SERVERS", "dns.google", "invalid DNS server 'dns.google'"),
        ("CONNHUB_JWT_PUBLIC_KEY", "/nonexistent/jwt.pem", "cannot read /nonexistent/jwt.pem"),
        ("CONNHUB_DATABASE_URL", f"mysql://root:{SECRET}@127.0.0.1/db", "names a mysql store"),
        ("CONNHUB_DATABASE_URL", f"postgresql://u:{SECRET}@host:port/db", "is not a URL"),
        ("CONNHUB_PORT", "99999", "less than or equal to 65535"),
        ("CONNHUB_AUTH", "maybe", "'disabled' or 'jwt'"),
        ("CONNHUB_PROBE_TIMEOUT_S", "soon", "valid number"),
        ("CONNHUB_TABLES_CACHE_TTL_S", "-1", "greater than or equal to 0"),
        ("CONNHUB_SCHEMA_CACHE_TTL_S", "soon", "valid number"),  # the former name, still read
    ],
)
def test_a_configuration_error_is_one_line_naming_the_variable(
    tmp_path: Path, variable: str, value: str, says: str
) -> None:
    line = one_line_error(connhub("serve", cwd=tmp_path, env={variable: value}))
    assert line.startswith(f"connhub: configuration error: {variable}: ")
    assert says in line


def test_a_jwt_key_file_that_holds_no_key_is_a_configuration_error(tmp_path: Path) -> None:
    (tmp_path / "jwt.pem").write_text("not a key\n")
    line = one_line_error(connhub("serve", cwd=tmp_path, env={"CONNHUB_JWT_PUBLIC_KEY": "jwt.pem"}))
    assert f"CONNHUB_JWT_PUBLIC_KEY: {tmp_path / 'jwt.pem'} holds no PEM public key" in line


def test_a_broken_development_key_file_names_the_file(tmp_path: Path) -> None:
    (tmp_path / ".connhub").mkdir()
    (tmp_path / ".connhub" / "keys").write_text("dev1:short\n")
    line = one_line_error(connhub("serve", cwd=tmp_path))
    assert f"the key file {tmp_path / '.connhub' / 'keys'}" in line


def test_migrate_is_idempotent(tmp_path: Path) -> None:
    env = {"CONNHUB_DATABASE_URL": f"sqlite:///{tmp_path / 'store.db'}"}
    assert connhub("migrate", cwd=tmp_path, env=env).returncode == 0
    again = connhub("migrate", cwd=tmp_path, env=env)
    assert again.returncode == 0 and "up to date" in again.stdout


def test_migrate_against_an_unreachable_store_is_one_line(tmp_path: Path) -> None:
    url = f"postgresql://postgres:{SECRET}@127.0.0.1:{free_port()}/connhub"
    line = one_line_error(connhub("migrate", cwd=tmp_path, env={"CONNHUB_DATABASE_URL": url}), code=3)
    assert "cannot use the store at postgresql://postgres:***@127.0.0.1" in line
    assert "Connection refused" in line


@pytest.fixture
def unmigrated_pg() -> Iterator[str]:
    require_server("PostgreSQL", "127.0.0.1", 5432)
    name = f"connhub_cli_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(PG_ADMIN_URL, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    yield PG_ADMIN_URL.rsplit("/", 1)[0] + f"/{name}"
    with psycopg.connect(PG_ADMIN_URL, autocommit=True) as admin:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def test_serve_refuses_a_postgresql_store_never_migrated_or_behind(tmp_path: Path, unmigrated_pg: str) -> None:
    env = {"CONNHUB_DATABASE_URL": unmigrated_pg, "CONNHUB_PORT": str(free_port())}
    line = one_line_error(connhub("serve", cwd=tmp_path, env=env))
    assert "never been migrated" in line and "run `connhub migrate`" in line
    migrate(unmigrated_pg)
    rewind(unmigrated_pg, "0001")
    line = one_line_error(connhub("serve", cwd=tmp_path, env=env))
    assert f"schema revision 0001; this connhub needs revision {HEAD}: run `connhub migrate`" in line
    assert connhub("migrate", cwd=tmp_path, env=env).returncode == 0


def test_serve_on_an_unreachable_store_is_one_line(tmp_path: Path) -> None:
    url = f"postgresql://postgres:{SECRET}@127.0.0.1:{free_port()}/connhub"
    line = one_line_error(connhub("serve", cwd=tmp_path, env={"CONNHUB_DATABASE_URL": url}), code=3)
    assert "postgresql://postgres:***@" in line


def serve_output(tmp_path: Path, *args: str, env: dict[str, str] | None = None) -> str:
    """Start `connhub serve`, wait until it is ready, stop it; everything it printed."""
    port = free_port()
    clean = {k: v for k, v in os.environ.items() if not k.startswith("CONNHUB_")}
    server = subprocess.Popen(
        [sys.executable, "-m", "connhub.cli", "serve", "--port", str(port), *args],
        cwd=tmp_path,
        env={**clean, **(env or {})},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"http://127.0.0.1:{port}/health", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                time.sleep(0.2)
        assert httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=5).status_code == 200
    finally:
        server.send_signal(signal.SIGINT)
        output, _ = server.communicate(timeout=20)
    assert f"listening on http://127.0.0.1:{port}" in output
    return output


def test_serve_starts_on_the_embedded_default_and_says_so(tmp_path: Path) -> None:
    output = serve_output(tmp_path)
    # Where its data is, absolute, before it listens; "listening" once the port is bound.
    store = f"store SQLite at {tmp_path / '.connhub' / 'connhub.db'}"
    assert store in output and output.index(store) < output.index("listening on")
    assert output.index("Application startup complete") < output.index("listening on")
    assert f"WARNING connhub: CONNHUB_ENCRYPTION_KEYS unset: using the development key in {tmp_path}" in output
    assert "CONNHUB_AUTH=disabled" in output and "not a loopback address" not in output
    key_file = tmp_path / ".connhub" / "keys"
    assert key_file.exists() and (key_file.stat().st_mode & 0o777) == 0o600


def test_serve_warns_of_a_short_hs256_secret_without_showing_it(tmp_path: Path) -> None:
    # Auth disabled off loopback is warned of by the same list (tests/unit/test_config.py): a test
    # server listens on loopback only.
    env = {"CONNHUB_AUTH": "jwt", "CONNHUB_JWT_SECRET": "short-secret"}
    output = serve_output(tmp_path, env=env)
    assert "CONNHUB_JWT_SECRET is shorter than 32 bytes" in output
    assert "short-secret" not in output


def test_serve_writes_json_lines_for_every_logger(tmp_path: Path) -> None:
    import json

    output = serve_output(tmp_path, "--log-format", "json")
    records = [json.loads(line) for line in output.splitlines()]
    loggers = {record["logger"] for record in records}
    assert {"connhub", "uvicorn", "connhub.access"} <= loggers
    access = [record for record in records if record["logger"] == "connhub.access"]
    assert {"method", "route", "status", "durationMs", "tenant", "requestId"} <= set(access[0])
    assert access[0]["route"] == "/health"


async def _store_with_secrets_under(url: str, tmp_path: Path, keys: str, count: int) -> None:
    from connhub.config import Settings
    from tests.conftest import PRODUCT, client_for, seed_body

    migrate(url)
    settings = Settings(database_url=url, encryption_keys=keys, data_dir=tmp_path / "data")
    async with client_for(settings) as http:
        for number in range(count):
            created = await http.post("/v1/management/connections", json=seed_body(configName=f"rot-{number}"),
                                      headers=PRODUCT)  # fmt: skip
            assert created.status_code == 201


async def test_keys_rotate_prints_plain_lines_off_a_terminal_and_a_count_per_key(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'rotate.db'}"
    old, new = new_key_entry("old"), new_key_entry("new")
    await _store_with_secrets_under(url, tmp_path, old, 3)
    env = {"CONNHUB_DATABASE_URL": url, "CONNHUB_ENCRYPTION_KEYS": f"{new},{old}"}
    result = connhub("keys", "rotate", "--batch-size", "2", cwd=tmp_path, env=env)
    assert result.returncode == 0, result.stderr
    assert "\r" not in result.stdout
    assert result.stdout.splitlines() == [
        "3 secret(s) to re-encrypt",
        "progress: 3/3 secret(s)",
        "active key: new",
        "re-encrypted 3 secret(s) from key old",
    ]


async def test_keys_rotate_shows_a_counter_in_place_on_a_terminal(tmp_path: Path) -> None:
    import pty

    url = f"sqlite:///{tmp_path / 'rotate.db'}"
    old, new = new_key_entry("old"), new_key_entry("new")
    await _store_with_secrets_under(url, tmp_path, old, 3)
    clean = {k: v for k, v in os.environ.items() if not k.startswith("CONNHUB_")}
    leader, follower = pty.openpty()
    process = subprocess.Popen(
        [sys.executable, "-m", "connhub.cli", "keys", "rotate", "--batch-size", "1"],
        cwd=tmp_path,
        env={**clean, "CONNHUB_DATABASE_URL": url, "CONNHUB_ENCRYPTION_KEYS": f"{new},{old}"},
        stdout=follower,
        stderr=subprocess.PIPE,
    )
    os.close(follower)
    shown = b""
    while True:
        try:
            chunk = os.read(leader, 4096)
        except OSError:  # the terminal closed with the process
            break
        if not chunk:
            break
        shown += chunk
    os.close(leader)
    assert process.wait(timeout=60) == 0
    text = shown.decode()
    assert "\rprogress: 1/3 secret(s)" in text and "\rprogress: 3/3 secret(s)" in text
    assert "re-encrypted 3 secret(s) from key old" in text
