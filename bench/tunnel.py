"""Tunnel benchmark (issue 16): the same live test of the machine's PostgreSQL, direct and through an
SSH tunnel, in one run, so the latency a tunnel adds is measured rather than guessed.

    python -m bench.tunnel            # 200 rounds (direct, tunnel by password, tunnel by key); 200 at concurrency 20
    python -m bench.tunnel --quick    # 20 rounds; 20 at concurrency 5

The bastion is asyncssh's SSH server (tests/support/ssh_server.py) in a process of its own on
127.0.0.1 (no sshd on this machine); the probes run in this process through the service's
`ProbeRunner`, as a test request would. Each round tests the three ways one after the other, so
load on the shared machine hits them alike. Every tunnelled test opens and closes its own tunnel
(key exchange, login, one channel). Reported: median and p95 of each way's latency, the median
added latency and `sshMs`, the concurrent run's wall time, and fds / PostgreSQL sessions before and
after (nothing may stay open). Loopback only; figures are reported, never asserted.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench.probes import _pg_sessions
from bench.run import git_rev
from connhub.probes.base import ProbeTarget, SshHop, SshRoute
from connhub.probes.runner import ProbePolicy, ProbeRunner

RESULTS = Path(__file__).parent / "results"
USER, PASSWORD = "bench", "bench-tunnel-password"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.tunnel", description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="CI smoke: 20 rounds, 20 concurrent tests")
    parser.add_argument("--rounds", type=int, default=200)
    parser.add_argument("--concurrent", type=int, default=200)
    parser.add_argument("--concurrency", type=int, default=20)
    parser.add_argument("--bastion", action="store_true", help=argparse.SUPPRESS)  # the child process
    args = parser.parse_args(argv)
    if args.bastion:
        asyncio.run(_serve_bastion())
        return 0
    if args.quick:
        args.rounds, args.concurrent, args.concurrency = 20, 20, 5
    figures = asyncio.run(measure(args.rounds, args.concurrent, args.concurrency))
    print(table(figures))
    rev, dirty = git_rev()
    figures["revision"] = rev + ("-dirty" if dirty else "")
    suffix = "-quick" if args.quick else ""
    out = RESULTS / f"{datetime.now(UTC):%Y-%m-%d}-{rev}-tunnel{suffix}.json"
    out.write_text(json.dumps(figures, indent=2) + "\n")
    print(f"results: {out}")
    return 0


# --- the bastion (child process) ------------------------------------------------------------------


async def _serve_bastion() -> None:
    """An SSH server on 127.0.0.1 until stdin closes; first prints its port, key and client key."""
    from tests.support.ssh_server import Bastion, client_key, public_line

    key = client_key()
    async with Bastion({USER: PASSWORD}, {USER: [key.public_key]}, {"db.internal": "127.0.0.1"}) as bastion:
        print(json.dumps({"port": bastion.port, "hostKey": public_line(bastion.host_key), "key": key.private_key}))
        sys.stdout.flush()
        await asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)


# --- measuring ------------------------------------------------------------------------------------


async def measure(rounds: int, concurrent: int, concurrency: int) -> dict[str, Any]:
    bastion = subprocess.Popen(
        [sys.executable, "-m", "bench.tunnel", "--bastion"], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    try:
        assert bastion.stdout is not None
        started = json.loads(bastion.stdout.readline())
        return await _measure(started, rounds, concurrent, concurrency)
    finally:
        assert bastion.stdin is not None
        bastion.stdin.close()
        bastion.wait(timeout=10)


async def _measure(bastion: dict[str, Any], rounds: int, concurrent: int, concurrency: int) -> dict[str, Any]:
    runner = ProbeRunner(ProbePolicy(timeout_s=10))
    direct = ProbeTarget("POSTGRESQL", "127.0.0.1", 5432, "test", "postgres", "unused-with-trust-auth")
    by_password = SshHop("127.0.0.1", bastion["port"], USER, PASSWORD, host_key=bastion["hostKey"])
    by_key = replace(by_password, password=None, private_key=bastion["key"])
    ways = {
        "direct": direct,
        "tunnel_password": replace(direct, host="db.internal", ssh=SshRoute(by_password)),
        "tunnel_key": replace(direct, host="db.internal", ssh=SshRoute(by_key)),
    }
    for target in ways.values():  # warm-up: imports, pools, the bastion's first connections
        await _expect_success(runner, target)
    latency: dict[str, list[float]] = {name: [] for name in ways}
    ssh_ms: list[float] = []
    for _ in range(rounds):
        for name, target in ways.items():
            report = await _expect_success(runner, target)
            latency[name].append(report.latency_ms)
            if report.phases.ssh_ms is not None:
                ssh_ms.append(report.phases.ssh_ms)
    await asyncio.sleep(0.5)
    before = {"fds": _open_fds(), "pg_sessions": _pg_sessions()}
    slots = asyncio.Semaphore(concurrency)

    async def one() -> str:
        async with slots:
            return (await runner.test(ways["tunnel_password"])).status

    wall_started = time.perf_counter()
    statuses = await asyncio.gather(*(one() for _ in range(concurrent)))
    wall_s = time.perf_counter() - wall_started
    await asyncio.sleep(0.5)
    after = {"fds": _open_fds(), "pg_sessions": _pg_sessions()}
    medians = {name: statistics.median(values) for name, values in latency.items()}
    return {
        "date": f"{datetime.now(UTC):%Y-%m-%d}",
        "rounds": rounds,
        "latency_ms": {
            name: {"median": round(medians[name], 2), "p95": round(_p95(values), 2)} for name, values in latency.items()
        },
        "added_ms_median": {
            name: round(medians[name] - medians["direct"], 2) for name in ("tunnel_password", "tunnel_key")
        },
        "ssh_ms_median": round(statistics.median(ssh_ms), 2),
        "concurrent": {
            "tests": concurrent,
            "concurrency": concurrency,
            "wall_s": round(wall_s, 3),
            "tests_per_s": round(concurrent / wall_s, 1),
            "succeeded": statuses.count("success"),
        },
        "before": before,
        "after": after,
    }


async def _expect_success(runner: ProbeRunner, target: ProbeTarget) -> Any:
    report = await runner.test(target)
    if not report.ok:
        raise RuntimeError(f"the benchmark's test failed: {report.message}")
    return report


def _p95(values: list[float]) -> float:
    return statistics.quantiles(values, n=20)[-1] if len(values) >= 2 else values[0]


def _open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


def table(f: dict[str, Any]) -> str:
    lat, added, conc = f["latency_ms"], f["added_ms_median"], f["concurrent"]
    left_open = f["after"]["fds"] > f["before"]["fds"] or f["after"]["pg_sessions"] > f["before"]["pg_sessions"]
    rows = [
        f"Connhub tunnel benchmark {f['date']}: {f['rounds']} rounds, the machine's PostgreSQL, asyncssh bastion",
        f"{'live test (latencyMs)':<44} | {'median':>8} | {'p95':>8} | added (median)",
        f"{'direct':<44} | {lat['direct']['median']:>8.2f} | {lat['direct']['p95']:>8.2f} |",
        f"{'through the tunnel, password login':<44} | {lat['tunnel_password']['median']:>8.2f} | "
        f"{lat['tunnel_password']['p95']:>8.2f} | +{added['tunnel_password']:.2f} ms",
        f"{'through the tunnel, ed25519 key login':<44} | {lat['tunnel_key']['median']:>8.2f} | "
        f"{lat['tunnel_key']['p95']:>8.2f} | +{added['tunnel_key']:.2f} ms",
        f"{'sshMs (open the tunnel), median':<44} | {f['ssh_ms_median']:>8.2f} |",
        f"{str(conc['tests']) + ' tunnelled tests at concurrency ' + str(conc['concurrency']):<44} | "
        f"{conc['wall_s']:>7.3f}s | {conc['tests_per_s']:>6.1f}/s | {conc['succeeded']} succeeded",
        f"{'fds / PostgreSQL sessions before -> after':<44} | "
        f"{f['before']['fds']}/{f['before']['pg_sessions']} -> {f['after']['fds']}/{f['after']['pg_sessions']} | "
        + ("nothing left open " + ("MISS" if left_open else "PASS")),
    ]
    return "\n".join(rows)


if __name__ == "__main__":
    sys.exit(main())
