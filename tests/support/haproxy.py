"""HAProxy (Debian's package) in front of loopback servers, round-robin, as a load balancer would be.

The configuration is generated into a directory of the caller's; HAProxy runs in the foreground
(`-db`) in its own process group and is killed whole on exit. Every address is on 127.0.0.1.
Each answer carries `X-Served-By: <server name>` so a test can see where round-robin sent it.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from collections.abc import Iterator, Sequence
from pathlib import Path

import httpx

from tests.support.servers import free_port

HAPROXY = Path("/usr/sbin/haproxy")

_CONFIG = """\
global
    maxconn 4096
    log stdout format raw local0 notice
defaults
    mode http
    log global
    option httplog
    option dontlog-normal
    timeout connect 2s
    timeout client 60s
    timeout server 60s
    # A replica going away (stopped, killed) costs a client nothing but a retry on another one.
    retries 3
    option redispatch 1
    retry-on conn-failure empty-response
frontend connhub
    bind 127.0.0.1:{port}
    default_backend replicas
    http-response set-header X-Served-By %[srv_name]
backend replicas
    balance roundrobin
    option httpchk GET /readyz
    http-check expect status 200
    # A check slower than `timeout check` counts as a failure: on a busy 2-core machine /readyz
    # can take a second, and a replica marked down for that would turn into 503s for everyone.
    timeout check 5s
    default-server inter 500ms fall 2 rise 1
{servers}
"""


def config(port: int, backends: Sequence[int]) -> str:
    servers = "\n".join(f"    server r{n} 127.0.0.1:{backend} check" for n, backend in enumerate(backends))
    return _CONFIG.format(port=port, servers=servers)


@contextlib.contextmanager
def haproxy(workdir: Path, backends: Sequence[int]) -> Iterator[str]:
    """HAProxy balancing over `backends` (loopback ports); yields its base URL."""
    port = free_port()
    workdir.mkdir(parents=True, exist_ok=True)
    path = workdir / "haproxy.cfg"
    path.write_text(config(port, backends))
    log = (workdir / "haproxy.log").open("ab")
    process = subprocess.Popen(
        [str(HAPROXY), "-f", str(path), "-db"], stdout=log, stderr=subprocess.STDOUT, start_new_session=True
    )
    base_url = f"http://127.0.0.1:{port}"
    try:
        _wait_serving(base_url, process, len(backends))
        yield base_url
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=10)
        log.close()


def _wait_serving(base_url: str, process: subprocess.Popen[bytes], replicas: int) -> None:
    """Until every replica has passed a health check (each answers one of `replicas` requests in a row)."""
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"haproxy exited with {process.returncode}")
        with contextlib.suppress(httpx.HTTPError):
            served = {httpx.get(f"{base_url}/health", timeout=2).headers.get("x-served-by") for _ in range(replicas)}
            if len(served) == replicas:
                return
        time.sleep(0.1)
    raise RuntimeError("haproxy did not reach every replica within 30 s")
