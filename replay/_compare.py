"""Counterfactual replay: what a journal's run actually did vs. what another config would do.

``actual_run`` replays a recorded run (live, paper or backtest) through its own recorded
config and events and measures it with the same ``RunStats`` a backtest uses, so both sides
are measured the same way. ``compare`` lines the two up: fills, PnL components, inventory.
"""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import msgspec

from journal import JournalReader

from ._summary import RunStats, Summary
from ._verify import engine_for, gc_paused

__all__ = ["ActualRun", "Comparison", "actual_run", "compare"]


class ActualRun(msgspec.Struct):
    summary: Summary
    inventory_path: list[tuple[int, int, int]]
    kind: str


class Comparison(msgspec.Struct):
    rows: list[tuple[str, str, str, str]]  # (what, actual, counterfactual, difference)
    inventory_rmse: Decimal  # of the two inventory paths sampled each second, base units
    inventory_corr: float


def actual_run(path: str | Path) -> ActualRun | None:
    """Measure a recorded run; None if the journal is market data only."""
    reader = JournalReader(path)
    header = reader.header
    if not header.config:
        return None
    engine = engine_for(header)
    stats = RunStats(engine)
    step = engine.step
    observe = stats.observe
    with gc_paused():
        for rec in reader.events():
            step(rec)
            observe(rec.recv_ns, rec.event)
    return ActualRun(stats.summary(), stats.inventory_path, header.kind)


def _path_at(path: list[tuple[int, int, int]], times: list[int]) -> list[int]:
    out = []
    i = 0
    pos = 0
    for t in times:
        while i < len(path) and path[i][0] <= t:
            pos = path[i][2]
            i += 1
        out.append(pos)
    return out


def compare(actual: ActualRun, summary: Summary, path: list[tuple[int, int, int]]) -> Comparison:
    rows: list[tuple[str, str, str, str]] = []

    def row(what: str, a: Decimal | int, b: Decimal | int) -> None:
        rows.append((what, str(a), str(b), str(b - a)))

    row("fills", actual.summary.fills, summary.fills)
    row("orders placed", actual.summary.orders_placed, summary.orders_placed)
    row("net PnL", actual.summary.net_pnl, summary.net_pnl)
    by_symbol = {i.symbol: i for i in actual.summary.instruments}
    for b in summary.instruments:
        a = by_symbol.get(b.symbol)
        if a is None:
            continue
        for field in (
            "spread_capture",
            "inventory_pnl",
            "fees",
            "funding",
            "net_pnl",
            "position",
            "max_inventory",
            "max_drawdown",
        ):
            row(f"{b.symbol} {field.replace('_', ' ')}", getattr(a, field), getattr(b, field))
        row(f"{b.symbol} maker fills", a.maker_fills, b.maker_fills)
        row(f"{b.symbol} taker fills", a.taker_fills, b.taker_fills)
    # inventory paths, sampled once a second over the common span
    times: list[int] = []
    paths = [p for p in (actual.inventory_path, path) if p]
    if paths:
        start = min(p[0][0] for p in paths)
        end = max(p[-1][0] for p in paths)
        step = max(1_000_000_000, (end - start) // 10_000)  # at most ~10k samples
        times = list(range(start, end + 1, step))
    xa = _path_at(actual.inventory_path, times)
    xb = _path_at(path, times)
    n = len(times)
    rmse = Decimal(0)
    corr = 0.0
    if n:
        rmse = Decimal(sum((a - b) ** 2 for a, b in zip(xa, xb)) / n).sqrt()
        ma, mb = sum(xa) / n, sum(xb) / n
        va = sum((a - ma) ** 2 for a in xa)
        vb = sum((b - mb) ** 2 for b in xb)
        if va and vb:
            corr = sum((a - ma) * (b - mb) for a, b in zip(xa, xb)) / (va * vb) ** 0.5
    return Comparison(rows, rmse, corr)
