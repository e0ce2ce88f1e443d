"""The `connhub` command as a newcomer runs it."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx

from connhub.secrets import KeyRing
from tests.support.servers import free_port


def connhub(*args: str, cwd: Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("CONNHUB_")}
    return subprocess.run(
        [sys.executable, "-m", "connhub.cli", *args],
        cwd=cwd,
        env={**clean, **(env or {})},
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_keys_generate_prints_a_usable_entry(tmp_path: Path) -> None:
    result = connhub("keys", "generate", "--id", "prod1", cwd=tmp_path)
    entry = result.stdout.strip()
    assert entry.startswith("prod1:")
    assert KeyRing.parse(entry).active_id == "prod1"


def test_production_refuses_to_start_naming_what_is_missing(tmp_path: Path) -> None:
    result = connhub("serve", cwd=tmp_path, env={"CONNHUB_ENV": "production"})
    assert result.returncode != 0
    assert "CONNHUB_ENCRYPTION_KEYS" in result.stderr and "CONNHUB_AUTH" in result.stderr
    result = connhub(
        "serve",
        cwd=tmp_path,
        env={"CONNHUB_ENV": "production", "CONNHUB_AUTH": "jwt", "CONNHUB_ENCRYPTION_KEYS": KEY_ENTRY},
    )
    assert result.returncode != 0 and "CONNHUB_JWT_SECRET" in result.stderr


KEY_ENTRY = "k1:" + "A" * 43 + "="


def test_migrate_is_idempotent(tmp_path: Path) -> None:
    env = {"CONNHUB_DATABASE_URL": f"sqlite:///{tmp_path / 'store.db'}"}
    assert connhub("migrate", cwd=tmp_path, env=env).returncode == 0
    again = connhub("migrate", cwd=tmp_path, env=env)
    assert again.returncode == 0 and "up to date" in again.stdout


def test_serve_starts_on_the_embedded_default_and_says_so(tmp_path: Path) -> None:
    port = free_port()
    clean = {k: v for k, v in os.environ.items() if not k.startswith("CONNHUB_")}
    server = subprocess.Popen(
        [sys.executable, "-m", "connhub.cli", "serve", "--port", str(port)],
        cwd=tmp_path,
        env=clean,
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
    assert "sqlite:///./.connhub/connhub.db" in output
    assert "warning: CONNHUB_ENCRYPTION_KEYS unset" in output and "CONNHUB_AUTH=disabled" in output
    key_file = tmp_path / ".connhub" / "keys"
    assert key_file.exists() and (key_file.stat().st_mode & 0o777) == 0o600
