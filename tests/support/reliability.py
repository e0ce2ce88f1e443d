"""Helpers of the reliability suite: `connhub serve` as a subprocess watched through /proc, the app
on a real socket inside the test process, create loads that remember what was acknowledged, and a
store inspector that reads the tables directly (not through the API under test).

Everything listens and connects on 127.0.0.1 only. Every server started here is stopped (its whole
process group killed) when its context ends, whatever happened.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from uuid import UUID

import httpx
import psycopg
from sqlalchemy import create_engine, text

from connhub.store.urls import sync_url
from tests.support.servers import free_port

HOST = "127.0.0.1"
START_TIMEOUT_S = 40.0
PG_ADMIN_URL = os.environ.get("CONNHUB_TEST_POSTGRES_ADMIN_URL", "postgresql://postgres@127.0.0.1:5432/postgres")


def require_binary(path: Path) -> None:
    """Skip, or under CI fail, when a program a test needs is not installed."""
    if path.exists():
        return
    import pytest

    message = f"{path} is not installed"
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(message + " (CI=true: tests that need it must run)")
    pytest.skip(message)


# --- connhub serve as a subprocess -----------------------------------------------------------


class ServerFailed(RuntimeError):
    """The server did not start, or died; the message carries its log."""


class ConnhubProcess:
    """`connhub serve` on a free loopback port: start, kill -9, restart, and look at it via /proc."""

    def __init__(
        self, workdir: Path, env: Mapping[str, str], port: int | None = None, args: Sequence[str] = ()
    ) -> None:
        self.workdir = workdir
        self.args = list(args)  # more `connhub serve` options, e.g. --workers 2
        self.port = port or free_port()
        self.env = {name: value for name, value in os.environ.items() if not name.startswith("CONNHUB_")}
        self.env.update({"CONNHUB_DATA_DIR": str(workdir / "data"), "PYTHONUNBUFFERED": "1", **env})
        self.log_path = workdir / f"serve-{self.port}.log"
        self.process: subprocess.Popen[bytes] | None = None
        self.starts = 0

    @property
    def base_url(self) -> str:
        return f"http://{HOST}:{self.port}"

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    def start(self) -> None:
        self.launch()
        self.wait_healthy()

    def launch(self) -> None:
        """Start the process without waiting for it to answer (see `wait_healthy`).

        Call it from a thread that outlives the server: the child is killed when the thread that
        started it ends (PR_SET_PDEATHSIG follows the parent thread, not the process)."""
        self.workdir.mkdir(parents=True, exist_ok=True)
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "connhub.cli", "serve", "--host", HOST, "--port", str(self.port), *self.args],
                cwd=self.workdir,
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # its own process group: killed whole, never ours
                preexec_fn=_die_with_parent,
            )
        self.starts += 1

    def wait_healthy(self) -> None:
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline:
            if not self.alive():
                raise ServerFailed(
                    f"connhub serve exited with {self.process and self.process.returncode}:\n{self.log()}"
                )
            try:
                if httpx.get(f"{self.base_url}/health", timeout=1.0).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        raise ServerFailed(f"connhub serve not healthy within {START_TIMEOUT_S:g} s:\n{self.log()}")

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def kill9(self) -> None:
        """SIGKILL, as a crash or the OOM killer would: no shutdown code runs."""
        if self.alive():
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.pid, signal.SIGKILL)
            assert self.process is not None
            self.process.wait(timeout=10)

    def stop(self) -> None:
        """SIGTERM (graceful), then SIGKILL of the whole process group if it lingers."""
        if self.process is None:
            return
        if self.alive():
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=12)
            except subprocess.TimeoutExpired:
                self.kill9()
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.pid, signal.SIGKILL)  # anything it left in its group

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    # /proc views of the running server

    def rss_kib(self) -> int:
        for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
        raise ServerFailed("no VmRSS in /proc status")

    def open_fds(self) -> int:
        return len(os.listdir(f"/proc/{self.pid}/fd"))

    def threads(self) -> int:
        return len(os.listdir(f"/proc/{self.pid}/task"))

    def sockets(self) -> int:
        count = 0
        for fd in os.listdir(f"/proc/{self.pid}/fd"):
            with contextlib.suppress(OSError):
                count += os.readlink(f"/proc/{self.pid}/fd/{fd}").startswith("socket:")
        return count


def _die_with_parent() -> None:
    """In the child: SIGKILL it when the test process dies, even by SIGKILL (Linux prctl)."""
    import ctypes

    pr_set_pdeathsig = 1
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(pr_set_pdeathsig, signal.SIGKILL)


@contextlib.contextmanager
def connhub_serve(
    workdir: Path, env: Mapping[str, str], port: int | None = None, args: Sequence[str] = ()
) -> Iterator[ConnhubProcess]:
    """A started `connhub serve`, stopped on exit even when the test fails."""
    server = ConnhubProcess(workdir, env, port, args)
    try:
        server.start()
        yield server
    finally:
        server.stop()


def run_cli(*args: str, env: Mapping[str, str], cwd: Path, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    """`connhub <args>` as a user runs it, with only the given CONNHUB_* settings."""
    clean = {name: value for name, value in os.environ.items() if not name.startswith("CONNHUB_")}
    return subprocess.run(
        [sys.executable, "-m", "connhub.cli", *args],
        env={**clean, **env},
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


# --- the app on a real socket, inside the test process ---------------------------------------


class ThreadedServer:
    """uvicorn serving `app` from a thread of this process, on its own event loop (plain asyncio,
    not uvloop, so name resolution goes through `socket.getaddrinfo`)."""

    def __init__(self, app: Any, log_level: str = "warning") -> None:
        import uvicorn

        self.port = free_port()
        config = uvicorn.Config(
            app,
            host=HOST,
            port=self.port,
            loop="asyncio",
            lifespan="on",
            log_level=log_level,
            log_config=None,  # uvicorn's loggers propagate to the root logger, where tests can see them
            access_log=True,  # (False would cut uvicorn.access off the root logger for the whole process)
        )
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, name="connhub-under-test", daemon=True)

    @property
    def base_url(self) -> str:
        return f"http://{HOST}:{self.port}"

    def __enter__(self) -> ThreadedServer:
        self.thread.start()
        deadline = time.monotonic() + START_TIMEOUT_S
        while not self.server.started:
            if time.monotonic() > deadline or not self.thread.is_alive():
                raise ServerFailed("the in-process server did not start")
            time.sleep(0.02)
        return self

    def __exit__(self, *_exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=15)


class LoopbackOnlyResolver:
    """While active, `socket.getaddrinfo` answers IP literals and `localhost` and refuses any other
    name without asking a DNS server: fuzzed host names never cause a query off the machine."""

    LOCAL_NAMES = frozenset({"localhost", "localhost."})

    def __init__(self) -> None:
        self.refused: list[str] = []
        self._original = socket.getaddrinfo

    def _getaddrinfo(self, host: Any, *args: Any, **kwargs: Any) -> Any:
        name = host.decode() if isinstance(host, bytes) else host
        if name is None or self._is_literal(name) or str(name).lower() in self.LOCAL_NAMES:
            return self._original(host, *args, **kwargs)
        self.refused.append(str(name))
        raise socket.gaierror(socket.EAI_NONAME, "Name or service not known (loopback-only test resolver)")

    @staticmethod
    def _is_literal(name: str) -> bool:
        import ipaddress

        try:
            ipaddress.ip_address(name.strip("[]").split("%", 1)[0])
            return True
        except ValueError:
            return False

    def __enter__(self) -> LoopbackOnlyResolver:
        socket.getaddrinfo = self._getaddrinfo
        return self

    def __exit__(self, *_exc: object) -> None:
        socket.getaddrinfo = self._original


# --- loads -------------------------------------------------------------------------------------


@dataclass
class LoadResult:
    """What a load saw: every acknowledged create (201) by name, and every status by count."""

    acknowledged: dict[str, str] = field(default_factory=dict)  # configName -> id
    statuses: dict[str, int] = field(default_factory=dict)  # "201", "503", "ConnectError", ...
    sent: int = 0
    slowest_s: float = 0.0
    bad_errors: list[str] = field(default_factory=list)  # error responses not in the JSON shape

    def count(self, outcome: str) -> None:
        self.statuses[outcome] = self.statuses.get(outcome, 0) + 1


def is_problem(body: Any) -> bool:
    """The documented error shape: {code, title, message} with a CONN-NNNN code."""
    return (
        isinstance(body, dict)
        and isinstance(body.get("code"), str)
        and body["code"].startswith("CONN-")
        and isinstance(body.get("title"), str)
        and isinstance(body.get("message"), str)
    )


async def create_load(
    http: httpx.AsyncClient,
    body_for: Any,
    *,
    prefix: str,
    workers: int,
    stop: asyncio.Event,
    result: LoadResult,
    headers: Mapping[str, str] | None = None,
    max_requests: int = 5000,
    pause_s: float = 0.0,
) -> None:
    """`workers` concurrent clients creating connections named `<prefix>-<n>` until `stop` is set
    (or `max_requests` were sent): each 201 is remembered as acknowledged."""
    counter = iter(range(max_requests))

    async def worker() -> None:
        while not stop.is_set():
            number = next(counter, None)
            if number is None:
                return
            name = f"{prefix}-{number:05d}"
            started = time.monotonic()
            result.sent += 1
            try:
                response = await http.post("/v1/management/connections", json=body_for(name), headers=headers)
            except httpx.HTTPError as error:
                result.count(type(error).__name__)
                await asyncio.sleep(0.05)
                continue
            finally:
                result.slowest_s = max(result.slowest_s, time.monotonic() - started)
            result.count(str(response.status_code))
            if response.status_code == 201:
                result.acknowledged[name] = response.json()["id"]
            elif response.status_code >= 400:
                try:
                    shaped = is_problem(response.json())
                except ValueError:
                    shaped = False
                if not shaped:
                    result.bad_errors.append(f"{response.status_code}: {response.text[:200]}")
            if pause_s:
                await asyncio.sleep(pause_s)

    await asyncio.gather(*(worker() for _ in range(workers)))


# --- the store, read directly ------------------------------------------------------------------


@dataclass
class StoreState:
    live: dict[UUID, tuple[int, str]]  # id -> (number, configName) of connections not deleted
    deleted: set[int]  # numbers of soft-deleted connections
    secrets: dict[int, dict[str, str]]  # number -> field -> key id
    duplicate_names: list[str]  # name keys held by more than one live connection

    @property
    def live_without_password(self) -> list[UUID]:
        return [cid for cid, (number, _) in self.live.items() if "password" not in self.secrets.get(number, {})]

    @property
    def orphan_secrets(self) -> list[int]:
        """Secret rows whose connection is gone or deleted (a deleted one has its secrets wiped)."""
        live_numbers = {number for number, _ in self.live.values()}
        return sorted(number for number in self.secrets if number not in live_numbers)

    @property
    def names(self) -> dict[str, UUID]:
        return {name: cid for cid, (_, name) in self.live.items()}

    def key_ids(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for fields in self.secrets.values():
            for key_id in fields.values():
                counts[key_id] = counts.get(key_id, 0) + 1
        return counts


def read_store(url: str) -> StoreState:
    """The store's rows as they are on disk, read with a plain synchronous driver."""
    engine = create_engine(sync_url(url))
    try:
        with engine.connect() as conn:
            rows = conn.execute(text("SELECT id, number, config_name, deleted_at FROM connections")).all()
            secret_rows = conn.execute(text("SELECT connection_number, field, key_id FROM connection_secrets")).all()
            duplicates = conn.execute(
                text(
                    "SELECT tenant || '/' || name_key FROM connections WHERE deleted_at IS NULL "
                    "GROUP BY tenant, name_key HAVING count(*) > 1"
                )
            ).all()
    finally:
        engine.dispose()
    live: dict[UUID, tuple[int, str]] = {}
    deleted: set[int] = set()
    for cid, number, name, deleted_at in rows:
        if deleted_at is None:
            live[UUID(str(cid))] = (int(number), name)
        else:
            deleted.add(int(number))
    secrets: dict[int, dict[str, str]] = {}
    for number, field_name, key_id in secret_rows:
        secrets.setdefault(int(number), {})[field_name] = key_id
    return StoreState(live, deleted, secrets, [row[0] for row in duplicates])


@contextlib.contextmanager
def scratch_pg_database(prefix: str) -> Iterator[str]:
    """A database of our own on the machine's PostgreSQL, migrated, dropped on exit (WITH FORCE)."""
    from connhub.store.migrate import migrate

    name = f"{prefix}_{os.urandom(4).hex()}"
    with psycopg.connect(PG_ADMIN_URL, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"'.encode())
    url = PG_ADMIN_URL.rsplit("/", 1)[0] + f"/{name}"
    try:
        migrate(url)
        yield url
    finally:
        with psycopg.connect(PG_ADMIN_URL, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'.encode())


def pg_sessions(database: str) -> int:
    """Sessions open on `database` (pg_stat_activity), ours excluded."""
    with psycopg.connect(PG_ADMIN_URL, autocommit=True) as admin:
        row = admin.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = %s AND pid <> pg_backend_pid()", (database,)
        ).fetchone()
    assert row is not None
    return int(row[0])
