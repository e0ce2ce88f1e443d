"""`python -m bench --check`: a MISS verdict becomes the exit status; without it, figures only."""

from __future__ import annotations

from bench.options import parse_args
from bench.report import Run, StoreResult, missed


def test_check_is_off_unless_asked() -> None:
    assert parse_args(["--quick"]).check is False
    assert parse_args(["--quick", "--check"]).check is True


def test_missed_names_each_miss_and_nothing_else() -> None:
    within = StoreResult("sqlite", rss_mb={"idle": 90.0, "after_creates": 100.0})
    over = StoreResult("postgresql", rss_mb={"idle": 130.0, "after_creates": 200.0})
    run = Run(meta={}, workers={}, stores={"sqlite": within, "postgresql": over})
    assert missed(run) == ["postgresql: RSS idle (master + workers)", "postgresql: RSS growth after the fill"]
    assert missed(Run(meta={}, workers={}, stores={"sqlite": within})) == []
