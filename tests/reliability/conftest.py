"""The reliability suite's figures: each test records what it did (faults injected, requests sent,
records verified, records lost) and the run ends with one line per test and a total, visible even
with `pytest -q`:

    reliability: test_crash[sqlite]: 1 faults injected, 412 requests sent, 300 records verified, 0 lost
    reliability: TOTAL: 23 faults injected, 9133 requests sent, 2104 records verified, 0 lost
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field

import pytest

FIGURES = pytest.StashKey[dict[str, "Figures"]]()


@dataclass
class Figures:
    faults: int = 0
    requests: int = 0
    verified: int = 0
    lost: int = 0
    notes: list[str] = field(default_factory=list)

    def note(self, text: str) -> None:
        """A figure of its own, printed after the standard ones (e.g. `RSS +3 MiB`)."""
        self.notes.append(text)

    def line(self) -> str:
        figures = (
            f"{self.faults} faults injected, {self.requests} requests sent, "
            f"{self.verified} records verified, {self.lost} lost"
        )
        return figures + "".join(f"; {note}" for note in self.notes)


@pytest.fixture
def figures(request: pytest.FixtureRequest) -> Iterator[Figures]:
    """This test's figures, printed at the end of the run."""
    collected = request.config.stash.setdefault(FIGURES, {})
    mine = collected.setdefault(request.node.name, Figures())
    yield mine


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter, config: pytest.Config) -> None:
    collected = config.stash.get(FIGURES, {})
    if not collected:
        return
    terminalreporter.section("reliability figures")
    total = Figures()
    for name, figures in collected.items():
        terminalreporter.write_line(f"reliability: {name}: {figures.line()}")
        total.faults += figures.faults
        total.requests += figures.requests
        total.verified += figures.verified
        total.lost += figures.lost
    terminalreporter.write_line(f"reliability: TOTAL: {total.line()}")
