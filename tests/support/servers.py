"""The machine's real database servers, for tests that need them.

Under CI=true a missing server fails the test (a green run must mean it ran); elsewhere it skips.
"""

from __future__ import annotations

import os
import socket

import pytest

POSTGRES_URL = os.environ.get("CONNHUB_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test")
MARIADB_HOST, MARIADB_PORT = "127.0.0.1", 3306


def port_open(host: str, port: int, timeout: float = 1.0) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def require_server(name: str, host: str, port: int) -> None:
    """Skip, or under CI fail, when the named server does not listen."""
    if port_open(host, port):
        return
    message = f"{name} is not listening on {host}:{port}"
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(message + " (CI=true: tests that need it must run)")
    pytest.skip(message)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])
