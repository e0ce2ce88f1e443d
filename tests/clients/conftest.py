"""Fixtures of the client replay suite: Lerian's Go decoder, and databases the flows can reach.

The Go decoder (`lerian_decode/main.go`, our own code written from Lerian's model field types) is
built once per session with the Debian `golang-go` package. Without `go` the Lerian tests skip on
a developer's machine and fail under CI=true, where golang-go is installed from .ci/debian-packages.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest

from tests.support.servers import require_server

DECODER_SOURCE = Path(__file__).parent / "lerian_decode" / "main.go"
PG = "postgresql://postgres@127.0.0.1:5432/test"


@dataclass(frozen=True)
class GoDecoder:
    """Decodes an answer into one of Lerian's models, as encoding/json does (and stricter)."""

    binary: Path

    def decode(self, model: str, response: httpx.Response) -> Any:
        """The value Go decoded, re-encoded as JSON; fails the test where Go would fail."""
        return self.decode_bytes(model, response.content)

    def decode_bytes(self, model: str, body: bytes) -> Any:
        run = subprocess.run([self.binary, model], input=body, capture_output=True, timeout=30, check=False)
        if run.returncode != 0:
            raise AssertionError(f"Go cannot decode the answer into {model}: {run.stderr.decode().strip()}")
        return json.loads(run.stdout)

    def refuses(self, model: str, body: bytes) -> str:
        """Go's reason for refusing `body` (for the tests that prove the decoder is strict)."""
        run = subprocess.run([self.binary, model], input=body, capture_output=True, timeout=30, check=False)
        assert run.returncode == 1, f"Go decoded {body!r} into {model}"
        return run.stderr.decode()


@pytest.fixture(scope="session")
def go_decoder(tmp_path_factory: pytest.TempPathFactory) -> GoDecoder:
    go = shutil.which("go")
    if go is None:
        message = "go is not installed (Debian package golang-go, listed in .ci/debian-packages)"
        if os.environ.get("CI") == "true":
            pytest.fail(message)
        pytest.skip(message)
    workdir = tmp_path_factory.mktemp("lerian_decode")
    binary = workdir / "lerian_decode"
    env = {
        **os.environ,
        "GOCACHE": str(workdir / "cache"),
        "GOPATH": str(workdir / "gopath"),
        "GOPROXY": "off",  # standard library only: nothing to download
        "GOFLAGS": "",
        "CGO_ENABLED": "0",
    }
    subprocess.run([go, "build", "-o", str(binary), str(DECODER_SOURCE)], env=env, check=True, timeout=300)
    return GoDecoder(binary)


@dataclass(frozen=True)
class PgSchemas:
    """Two schemas of our own in the machine's `test` database: the connection's, and another."""

    own: str
    other: str
    public_table: str  # a table of our own in `public`


@pytest.fixture
def pg_schemas() -> Iterator[PgSchemas]:
    require_server("PostgreSQL", "127.0.0.1", 5432)
    tag = uuid.uuid4().hex[:8]
    found = PgSchemas(own=f"replay_{tag}", other=f"accounting_{tag}", public_table=f"replay_{tag}")
    with psycopg.connect(PG, autocommit=True) as conn:
        conn.execute(f"CREATE SCHEMA {found.own}")
        conn.execute(f"CREATE SCHEMA {found.other}")
        # Columns deliberately not in alphabetical order: discovery must keep the table's order.
        conn.execute(
            f"CREATE TABLE {found.own}.orders (total numeric(10,2) NOT NULL, id bigint PRIMARY KEY, note text)"
        )
        conn.execute(f"CREATE TABLE {found.own}.customers (id int PRIMARY KEY, email text)")
        conn.execute(f"CREATE TABLE {found.other}.invoices (number text PRIMARY KEY, amount numeric)")
        conn.execute(f"CREATE TABLE public.{found.public_table} (id int)")
    yield found
    with psycopg.connect(PG, autocommit=True) as conn:
        conn.execute(f"DROP SCHEMA {found.own} CASCADE")
        conn.execute(f"DROP SCHEMA {found.other} CASCADE")
        conn.execute(f"DROP TABLE public.{found.public_table}")
