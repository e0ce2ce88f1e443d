"""The helpers the engine probes share (connhub.probes.support), on their own."""

from __future__ import annotations

import re
import stat
import time
from pathlib import Path

from connhub.domain.reports import Column, ErrorCategory, Table
from connhub.probes.base import ProbeContext, ProbeTarget
from connhub.probes.support import (
    causes,
    first_line,
    private_files,
    tables_from_catalog_rows,
    time_left,
    timed_out,
    where,
)


def target(host: str = "db.connhub.test") -> ProbeTarget:
    return ProbeTarget("POSTGRESQL", host, 5432, "app", "alice", "secret")


def test_private_files_are_private_and_gone_afterwards() -> None:
    with private_files(ca="CA PEM", cert=None, key="KEY PEM") as files:
        assert set(files.paths) == {"ca", "key"}  # a text not given gets no file
        assert stat.S_IMODE(files.directory.stat().st_mode) == 0o700
        for name, path in files.paths.items():
            assert stat.S_IMODE(Path(path).stat().st_mode) == 0o600
            assert Path(path).read_text(encoding="utf-8") == {"ca": "CA PEM", "key": "KEY PEM"}[name]
        directory = files.directory
    assert not directory.exists()


def test_causes_follow_cause_and_context_and_stop_at_a_cycle() -> None:
    inner, middle, outer = OSError("inner"), ValueError("middle"), RuntimeError("outer")
    outer.__cause__, middle.__context__ = middle, inner
    inner.__context__ = outer  # a cycle
    assert causes(outer) == [outer, middle, inner]


def test_first_line_drops_the_drivers_noise_and_falls_back() -> None:
    noise = re.compile(r"\s*\(CONNECTION_ID=[^)]*\)")
    assert first_line("DPY-6005: cannot connect (CONNECTION_ID=abc)\nHelp: https://x", noise, "E") == (
        "DPY-6005: cannot connect"
    )
    assert first_line("(CONNECTION_ID=abc)", noise, "OperationalError") == "OperationalError"


def test_where_names_the_dialled_address_only_when_it_differs() -> None:
    assert where(target(), ProbeContext("127.0.0.1", 5.0)) == "db.connhub.test:5432 (127.0.0.1)"
    assert where(target("127.0.0.1"), ProbeContext("127.0.0.1", 5.0)) == "127.0.0.1:5432"


def test_timed_out_states_the_budget() -> None:
    failure = timed_out(target(), ProbeContext("127.0.0.1", 2.5))
    assert failure.category is ErrorCategory.TIMEOUT
    assert failure.message == "No answer from db.connhub.test:5432 (127.0.0.1) within 2.5 s"


def test_time_left_never_drops_below_the_floor() -> None:
    assert time_left(time.monotonic() - 10, 0.5) == 0.5
    assert 9 < time_left(time.monotonic() + 10, 0.5) <= 10


def test_tables_from_catalog_rows_groups_in_order_and_decodes_bytes() -> None:
    rows = [
        (b"orders", b"id", b"int", False, True),
        ("orders", "note", "text", 1, 0),
        ("customers", "id", "bigint", 0, 1),
    ]
    assert tables_from_catalog_rows(rows) == [
        Table("orders", (Column("id", "int", False, True), Column("note", "text", True, False))),
        Table("customers", (Column("id", "bigint", False, True),)),
    ]
