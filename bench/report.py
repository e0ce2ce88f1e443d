"""The figures of one run: targets, the one table printed, and the JSON file written."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from bench.load import Figures

LABELS = {
    "health": "GET /health (HTTP ceiling)",
    "create": "create (POST, CA PEM, metadata)",
    "raw_insert": "raw insert (driver, same row)",
    "fill": "create while filling to N rows",
    "get": "get by id",
    "list_first": "list first page (limit 50)",
    "list_deep": "list deep page (cursor)",
    "list_deep_offset": "list deep page (page=, offset) [info]",
    "patch": "PATCH metadata",
    "patch_hot": "PATCH one row, 32 writers, no If-Match",
    "cb_create": "Chartbrew create (POST)",
    "cb_get": "Chartbrew get one",
    "cb_put": "Chartbrew PUT, distinct rows",
    "cb_list_full": "Chartbrew whole-team list",
}
PEER = (
    "Chartbrew v5.3.0 (peer, issue 19's side-by-side run on this machine): create 115-164/s, get 194-231/s, "
    "hot-row update 182-184/s, 2,000-row list 4-5/s; idle RSS 276 MB"
)
# The peer's best figures of that run: the 20x and 5x targets are measured against these.
PEER_CREATE_RPS, PEER_GET_RPS, PEER_HOT_UPDATE_RPS = 164.0, 231.0, 184.0
NAME_WIDTH = 38
FULL_TEAM_ROWS = 2000  # the team size of issue 19's side-by-side run


@dataclass
class StoreResult:
    store: str
    figures: dict[str, Figures] = field(default_factory=dict)
    rss_mb: dict[str, float] = field(default_factory=dict)
    rows: int = 0
    deep_offset: int = 0
    team_rows: int = 0  # the Chartbrew whole-team list's team size
    fill: dict[str, int] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    def rps(self, name: str) -> float | None:
        found = self.figures.get(name)
        return found.rps if found else None

    def latency(self, name: str, which: str) -> float | None:
        found = self.figures.get(name)
        return getattr(found, which) if found else None


@dataclass
class Run:
    meta: dict[str, Any]
    workers: dict[str, Any]
    stores: dict[str, StoreResult]


# -- targets (defined for the PostgreSQL store; reported, never asserted) -----------------------


@dataclass(frozen=True)
class Target:
    key: str
    label: str
    wanted: str
    value: Callable[[StoreResult], float | None]
    passes: Callable[[float], bool]
    unit: str


def _ratio(top: float | None, bottom: float | None) -> float | None:
    return None if top is None or not bottom else top / bottom


def _errors(result: StoreResult, name: str) -> float | None:
    found = result.figures.get(name)
    return None if found is None else float(found.errors)


def _full_team_list(result: StoreResult) -> float | None:
    """The whole-team list's rate, when the team had the 2,000 rows the target is set for (a
    --quick run lists --rows of them: no verdict)."""
    return result.rps("cb_list_full") if result.team_rows >= FULL_TEAM_ROWS else None


def _growth(result: StoreResult) -> float | None:
    after, idle = result.rss_mb.get("after_creates"), result.rss_mb.get("idle")
    return None if after is None or idle is None else after - idle


TARGETS = (
    Target("create_vs_health", "create / health throughput", ">= 0.40x",
           lambda r: _ratio(r.rps("create"), r.rps("health")), lambda v: v >= 0.40, "x"),
    Target("create_vs_raw", "create / raw insert throughput", ">= 0.50x",
           lambda r: _ratio(r.rps("create"), r.rps("raw_insert")), lambda v: v >= 0.50, "x"),
    Target("create_vs_peer", "create / Chartbrew's create", ">= 20x",
           lambda r: _ratio(r.rps("create"), PEER_CREATE_RPS), lambda v: v >= 20, "x"),
    Target("get_vs_peer", "get / Chartbrew's get", ">= 20x",
           lambda r: _ratio(r.rps("get"), PEER_GET_RPS), lambda v: v >= 20, "x"),
    Target("get_vs_health", "get / health throughput", ">= 0.70x",
           lambda r: _ratio(r.rps("get"), r.rps("health")), lambda v: v >= 0.70, "x"),
    Target("list_first_vs_health", "list first page / health", ">= 0.25x",
           lambda r: _ratio(r.rps("list_first"), r.rps("health")), lambda v: v >= 0.25, "x"),
    Target("create_p99", "create p99", "< 20 ms",
           lambda r: r.latency("create", "p99_ms"), lambda v: v < 20, " ms"),
    Target("get_p99", "get by id p99", "< 20 ms",
           lambda r: r.latency("get", "p99_ms"), lambda v: v < 20, " ms"),
    Target("patch_p99", "PATCH p99", "< 20 ms",
           lambda r: r.latency("patch", "p99_ms"), lambda v: v < 20, " ms"),
    Target("hot_vs_peer", "hot-row PATCH / Chartbrew's", ">= 5x",
           lambda r: _ratio(r.rps("patch_hot"), PEER_HOT_UPDATE_RPS), lambda v: v >= 5, "x"),
    Target("hot_errors", "hot-row PATCH errors (412s)", "= 0",
           lambda r: _errors(r, "patch_hot"), lambda v: v == 0, ""),
    Target("put_vs_create", "Chartbrew PUT distinct / create", ">= 0.80x",
           lambda r: _ratio(r.rps("cb_put"), r.rps("create")), lambda v: v >= 0.80, "x"),
    Target("cb_create_cost", "create: Reporter / Chartbrew rps", "<= 1.20x",
           lambda r: _ratio(r.rps("create"), r.rps("cb_create")), lambda v: v <= 1.20, "x"),
    Target("cb_get_cost", "get: Reporter / Chartbrew rps", "<= 1.20x",
           lambda r: _ratio(r.rps("get"), r.rps("cb_get")), lambda v: v <= 1.20, "x"),
    Target("cb_list_full_rps", "Chartbrew 2,000-row list", ">= 100/s",
           _full_team_list, lambda v: v >= 100, "/s"),
    Target("deep_vs_first_p50", "deep page / first page p50", "<= 1.50x",
           lambda r: _ratio(r.latency("list_deep", "p50_ms"), r.latency("list_first", "p50_ms")),
           lambda v: v <= 1.5, "x"),
    Target("idle_rss", "RSS idle (master + workers)", "< 120 MB",
           lambda r: r.rss_mb.get("idle"), lambda v: v < 120, " MB"),
    Target("rss_growth", "RSS growth after the fill", "< 30 MB", _growth, lambda v: v < 30, " MB"),
)  # fmt: skip


def verdicts(result: StoreResult) -> dict[str, dict[str, Any]]:
    found: dict[str, dict[str, Any]] = {}
    for target in TARGETS:
        value = target.value(result)
        verdict = None if value is None else ("PASS" if target.passes(value) else "MISS")
        found[target.key] = {"value": _round(value), "wanted": target.wanted, "verdict": verdict}
    return found


def missed(run: Run) -> list[str]:
    """`store: target` for every MISS verdict of the run."""
    return [
        f"{name}: {target.label}"
        for name, result in run.stores.items()
        for target in TARGETS
        if (value := target.value(result)) is not None and not target.passes(value)
    ]


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 3)


# -- the table ----------------------------------------------------------------------------------


def table(run: Run) -> str:
    stores = list(run.stores.values())
    lines = [*_title(run), _header(stores), "-" * len(_header(stores))]
    lines += [_measurement_row(name, stores) for name in LABELS if any(name in s.figures for s in stores)]
    lines.append("-" * len(_header(stores)))
    lines += [_target_row(target, stores) for target in TARGETS]
    lines.append(_info_row("RSS after the fill / at end [info]", stores, _rss_after))
    lines.append(_info_row("rows listed [info]", stores, _rows))
    lines += ["-" * len(_header(stores)), PEER, *_notes(run)]
    return "\n".join(lines)


def _title(run: Run) -> list[str]:
    meta = run.meta
    return [
        f"Connhub benchmark {meta['date']} rev {meta['git_rev']}: {meta['cpus']} cores, "
        f"concurrency {meta['concurrency']}, {meta['duration_s']:g} s per measurement, "
        f"{meta['rows']:,} rows asked, {run.workers['summary']}",
    ]


def _header(stores: list[StoreResult]) -> str:
    columns = f"{'req/s':>9}{'p50 ms':>8}{'p99 ms':>8}{'err':>5}{'cpu%':>5}{'ms/rq':>6}{'db%':>5}{'oth%':>5}"
    cells = "".join(f" | {s.store:<10}{columns}" for s in stores)
    return f"{'measurement':<{NAME_WIDTH}}{cells} | target"


def _measurement_row(name: str, stores: list[StoreResult]) -> str:
    label = LABELS[name]
    cells = ""
    for result in stores:
        figures = result.figures.get(name)
        if figures is None:
            cells += f" | {'':<10}{'-':>9}{'':>42}"
            continue
        cells += (
            f" | {'':<10}{figures.rps:>9.1f}{figures.p50_ms:>8.2f}{figures.p99_ms:>8.2f}"
            f"{figures.errors:>5}{figures.server_cpu_pct:>5.0f}{figures.server_cpu_ms:>6.2f}"
            f"{figures.store_cpu_pct:>5.0f}{figures.other_cpu_pct:>5.0f}"
        )
    return f"{label:<{NAME_WIDTH}}{cells} |"


def _target_row(target: Target, stores: list[StoreResult]) -> str:
    cells = ""
    for result in stores:
        value = target.value(result)
        text = "-" if value is None else f"{value:.2f}{target.unit}"
        verdict = "" if value is None else ("PASS" if target.passes(value) else "MISS")
        cells += f" | {verdict:<10}{text:>41}"
    return f"{target.label:<{NAME_WIDTH}}{cells} | {target.wanted}"


def _info_row(label: str, stores: list[StoreResult], value: Callable[[StoreResult], str]) -> str:
    cells = "".join(f" | {'':<10}{value(result):>41}" for result in stores)
    return f"{label:<{NAME_WIDTH}}{cells} |"


def _rss_after(result: StoreResult) -> str:
    return f"{result.rss_mb.get('after_creates', 0):.1f} / {result.rss_mb.get('end', 0):.1f} MB"


def _rows(result: StoreResult) -> str:
    api, sql = result.fill.get("api_creates", result.rows), result.fill.get("sql_rows", 0)
    return f"{result.rows:,} = {api:,} API + {sql:,} SQL; deep page after {result.deep_offset:,}"


def _notes(run: Run) -> list[str]:
    notes = [f"note: {note}" for note in run.meta.get("notes", [])]
    for result in run.stores.values():
        notes += [f"note ({result.store}): {note}" for note in result.notes]
    return notes


# -- the JSON file -------------------------------------------------------------------------------


def as_json(run: Run) -> dict[str, Any]:
    return {
        "meta": run.meta,
        "workers": run.workers,
        "stores": {
            name: {
                "figures": {key: asdict(value) for key, value in result.figures.items()},
                "rss_mb": {key: round(value, 1) for key, value in result.rss_mb.items()},
                "rows": result.rows,
                "deep_page_offset": result.deep_offset,
                "team_rows": result.team_rows,
                "fill": result.fill,
                "targets": verdicts(result),
                "notes": result.notes,
            }
            for name, result in run.stores.items()
        },
        "targets_defined_for": "postgresql",
        "peer": PEER,
    }


def write_json(run: Run, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(as_json(run), indent=2) + "\n")
    return path
