"""`connhub serve` as a user starts it: a subprocess on a free loopback port, watched through /proc.

Every server started here is stopped when its context ends (SIGTERM, then SIGKILL of its own
process group), and `stop_all` stops any still running when the benchmark is interrupted.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager, suppress
from dataclasses import dataclass
from pathlib import Path

import aiohttp

HOST = "127.0.0.1"
START_TIMEOUT_S = 60.0
STOP_TIMEOUT_S = 15.0
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
PAGE_KB = os.sysconf("SC_PAGE_SIZE") // 1024
_running: dict[int, subprocess.Popen[bytes]] = {}


class ServerError(RuntimeError):
    """The server could not be started or did not become healthy."""


def connhub_command() -> list[str]:
    """The `connhub` console script installed next to this Python (or found on PATH)."""
    beside = Path(sys.executable).with_name("connhub")
    if beside.exists():
        return [str(beside)]
    found = shutil.which("connhub")
    return [found] if found else [sys.executable, "-m", "connhub.cli"]


def clean_environment(extra: Mapping[str, str]) -> dict[str, str]:
    """This process's environment without any CONNHUB_* setting, plus `extra`."""
    env = {name: value for name, value in os.environ.items() if not name.startswith("CONNHUB_")}
    return env | dict(extra)


def generate_key() -> str:
    """A fresh CONNHUB_ENCRYPTION_KEYS entry from `connhub keys generate`."""
    done = subprocess.run(
        [*connhub_command(), "keys", "generate"], capture_output=True, text=True, timeout=60, check=True
    )
    return done.stdout.strip().splitlines()[-1]


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind((HOST, 0))
        return int(probe.getsockname()[1])


@dataclass
class Server:
    process: subprocess.Popen[bytes]
    port: int
    workers: int
    log: Path
    store_pid: int | None = None  # PostgreSQL's postmaster, whose CPU the store costs

    @property
    def base_url(self) -> str:
        return f"http://{HOST}:{self.port}"

    def pids(self) -> list[int]:
        """The master and every process under it."""
        return process_tree(self.process.pid)

    def rss_mb(self) -> float:
        return sum(_rss_kb(pid) for pid in self.pids()) / 1024

    def cpu_s(self) -> float:
        return sum(_cpu_s(pid) for pid in self.pids())

    def store_cpu_s(self) -> float:
        return tree_cpu_s(self.store_pid) if self.store_pid else 0.0

    def log_tail(self, lines: int = 20) -> str:
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""


@asynccontextmanager
async def running_server(
    *, workers: int, cwd: Path, env: Mapping[str, str], database_url: str | None = None
) -> AsyncIterator[Server]:
    """Start `connhub serve`, wait until /health answers in every worker, stop it on exit."""
    port = free_port()
    if workers > 1 and "CONNHUB_REDIS_URL" not in env:
        # serve refuses several workers without Redis (each would keep its own test rate limit).
        redis_url = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/0")
        env = {**env, "CONNHUB_REDIS_URL": redis_url, "CONNHUB_REDIS_PREFIX": f"connhub-bench-{port}:"}
    command = [*connhub_command(), "serve", "--host", HOST, "--port", str(port), "--workers", str(workers)]
    if database_url:
        command += ["--database-url", database_url]
    log = cwd / f"server-{port}.log"
    with log.open("wb") as sink:
        process = subprocess.Popen(
            command, cwd=cwd, env=dict(env), stdout=sink, stderr=subprocess.STDOUT, start_new_session=True
        )
    _running[process.pid] = process
    server = Server(process, port, workers, log)
    try:
        await _wait_healthy(server)
        yield server
    finally:
        stop(process)


async def _wait_healthy(server: Server) -> None:
    deadline = time.monotonic() + START_TIMEOUT_S
    expected = server.workers + (1 if server.workers > 1 else 0)
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=2)) as session:
        while time.monotonic() < deadline:
            if server.process.poll() is not None:
                code = server.process.returncode
                raise ServerError(f"connhub serve exited with {code}:\n{server.log_tail()}")
            if await _healthy(session, server.base_url) and len(server.pids()) >= expected:
                await asyncio.sleep(1.0)  # let every worker finish its start-up
                return
            await asyncio.sleep(0.1)
    raise ServerError(f"connhub serve was not healthy within {START_TIMEOUT_S:.0f} s:\n{server.log_tail()}")


async def _healthy(session: aiohttp.ClientSession, base_url: str) -> bool:
    try:
        async with session.get(base_url + "/health") as response:
            return response.status == 200
    except (aiohttp.ClientError, TimeoutError):
        return False


def stop(process: subprocess.Popen[bytes]) -> None:
    """SIGTERM the master (uvicorn stops its workers), then SIGKILL its process group if it lingers."""
    _running.pop(process.pid, None)
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        with suppress(subprocess.TimeoutExpired):
            process.wait(STOP_TIMEOUT_S)
    with suppress(ProcessLookupError, PermissionError):
        os.killpg(process.pid, signal.SIGKILL)  # its own session: only what this benchmark started
    process.wait(STOP_TIMEOUT_S)


def stop_all() -> None:
    for process in list(_running.values()):
        stop(process)


# -- /proc ------------------------------------------------------------------------------------


def machine_busy_s() -> float:
    """CPU seconds every core of the machine spent busy since boot (all processes)."""
    fields = Path("/proc/stat").read_text().splitlines()[0].split()[1:]
    user, nice, system, _idle, _iowait, irq, softirq, steal = (int(v) for v in fields[:8])
    return (user + nice + system + irq + softirq + steal) / CLOCK_TICKS


def tree_cpu_s(root: int) -> float:
    """CPU seconds of `root` and the processes under it, with those of its children that exited."""
    return sum(sum(int(v) for v in _stat_fields(pid)[11:15]) / CLOCK_TICKS for pid in process_tree(root))


def process_tree(root: int) -> list[int]:
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and (parent := _parent(int(entry.name))) is not None:
            children.setdefault(parent, []).append(int(entry.name))
    found, frontier = [], [root]
    while frontier:
        pid = frontier.pop()
        found.append(pid)
        frontier.extend(children.get(pid, []))
    return found


def _stat_fields(pid: int) -> list[str]:
    """/proc/<pid>/stat after the command name (which may hold spaces): fields 3 onwards."""
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return []
    return raw[raw.rindex(")") + 2 :].split()


def _parent(pid: int) -> int | None:
    fields = _stat_fields(pid)
    return int(fields[1]) if fields else None


def _cpu_s(pid: int) -> float:
    fields = _stat_fields(pid)
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS if fields else 0.0


def _rss_kb(pid: int) -> int:
    fields = _stat_fields(pid)
    return int(fields[21]) * PAGE_KB if fields else 0
