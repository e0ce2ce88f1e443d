"""`connhub conn ...` against a real `connhub serve` on SQLite, run as a user runs them."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator

import httpx
import pytest

from tests.support.servers import free_port, require_server

PASSWORD = "Client-Canary-pw-51c2e0"


@pytest.fixture(scope="module")
def server_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    workdir = tmp_path_factory.mktemp("client")
    port = free_port()
    clean = {k: v for k, v in os.environ.items() if not k.startswith("CONNHUB_")}
    server = subprocess.Popen(
        [sys.executable, "-m", "connhub.cli", "serve", "--port", str(port), "--log-level", "WARNING"],
        cwd=workdir,
        env=clean,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"{url}/readyz", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                time.sleep(0.2)
        yield url
    finally:
        server.send_signal(signal.SIGINT)
        server.wait(timeout=20)


def conn(url: str, *args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CONNHUB_")}
    result = subprocess.run(
        [sys.executable, "-m", "connhub.cli", "conn", *args],
        env={**env, "CONNHUB_URL": url},
        input=stdin,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert PASSWORD not in result.stdout + result.stderr
    assert "Traceback" not in result.stderr
    return result


def add(url: str, name: str, *extra: str, port: int = 5432) -> subprocess.CompletedProcess[str]:
    return conn(
        url, "add", "--name", name, "--type", "POSTGRESQL", "--host", "127.0.0.1", "--port", str(port),
        "--database", "postgres", "--user", "postgres", "--product", "cli-tests", "--password-stdin", *extra,
        stdin=PASSWORD + "\n",
    )  # fmt: skip


def test_add_list_show_and_remove(server_url: str) -> None:
    created = add(server_url, "cli-orders", "--metadata", "team=data", "--json")
    assert created.returncode == 0, created.stderr
    connection_id = json.loads(created.stdout)["id"]

    listed = conn(server_url, "list")
    assert listed.returncode == 0
    head, *rows = listed.stdout.splitlines()
    assert head.split() == ["ID", "NAME", "TYPE", "HOST", "PORT", "DATABASE", "PRODUCT"]
    assert any(row.split()[:3] == [connection_id, "cli-orders", "POSTGRESQL"] for row in rows)
    as_json = json.loads(conn(server_url, "list", "--json", "--name", "cli-orders").stdout)
    assert [item["id"] for item in as_json["items"]] == [connection_id]

    shown = conn(server_url, "show", "cli-orders")  # by name, or by id
    lines = [line.split() for line in shown.stdout.splitlines()]
    assert shown.returncode == 0 and ["id", connection_id] in lines and ["metadata.team", "data"] in lines
    assert json.loads(conn(server_url, "show", connection_id, "--json").stdout)["configName"] == "cli-orders"

    removed = conn(server_url, "rm", connection_id)
    assert removed.returncode == 0 and removed.stdout.strip() == f"removed {connection_id}"
    gone = conn(server_url, "show", connection_id)
    assert gone.returncode == 1 and "HTTP 404" in gone.stderr and "request " in gone.stderr
    assert conn(server_url, "show", "cli-orders").returncode == 1


def test_a_live_test_and_a_schema(server_url: str) -> None:
    require_server("PostgreSQL", "127.0.0.1", 5432)
    assert add(server_url, "cli-live").returncode == 0
    tested = conn(server_url, "test", "cli-live")
    assert tested.returncode == 0, tested.stdout + tested.stderr
    assert tested.stdout.splitlines()[0].split() == ["status", "success"]
    described = conn(server_url, "schema", "cli-live")
    words = described.stdout.split()
    assert described.returncode == 0
    assert words[:5] == ["TABLE", "COLUMN", "TYPE", "NULL", "KEY"] or words[:3] == ["no", "tables", "in"]
    assert conn(server_url, "rm", "cli-live").returncode == 0


def test_a_failed_live_test_exits_1_naming_the_cause(server_url: str) -> None:
    assert add(server_url, "cli-closed", port=free_port()).returncode == 0
    tested = conn(server_url, "test", "cli-closed")
    assert tested.returncode == 1
    assert "PORT_CLOSED" in tested.stdout
    as_json = conn(server_url, "test", "cli-closed", "--json")
    assert as_json.returncode == 1 and json.loads(as_json.stdout)["error"]["category"] == "PORT_CLOSED"
    refused = add(server_url, "cli-never", "--test-first", port=free_port())
    assert refused.returncode == 1 and "not stored: failure" in refused.stdout
    assert conn(server_url, "show", "cli-never").returncode == 1


def test_a_password_only_from_stdin_or_a_prompt(server_url: str) -> None:
    result = conn(server_url, "add", "--name", "cli-nopw", "--type", "MYSQL", "--host", "127.0.0.1", "--port", "3306",
                  "--database", "d", "--user", "u", "--product", "cli-tests")  # fmt: skip
    assert result.returncode == 2 and "--password-stdin" in result.stderr
    flag = conn(server_url, "add", "--password", PASSWORD)
    assert flag.returncode == 2  # there is no such flag


def test_a_request_the_server_refuses_is_a_usage_error_naming_the_field(server_url: str) -> None:
    result = add(server_url, "ab")
    assert result.returncode == 2 and "configName:" in result.stderr and "HTTP 400" in result.stderr


def test_an_unreachable_server_is_exit_3_and_a_bad_url_exit_2() -> None:
    down = conn(f"http://127.0.0.1:{free_port()}", "list")
    assert down.returncode == 3 and down.stderr.startswith("connhub: cannot reach the server at http://127.0.0.1:")
    bad = conn("ftp://example", "list")
    assert bad.returncode == 2 and "CONNHUB_URL" in bad.stderr


def test_the_exit_codes_are_in_the_help() -> None:
    shown = subprocess.run([sys.executable, "-m", "connhub.cli", "conn", "--help"], capture_output=True, text=True)
    assert "3  a server could not be reached" in shown.stdout
