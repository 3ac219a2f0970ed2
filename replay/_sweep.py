"""Parameter sweeps: many backtests of one config over one data journal, in parallel.

Each run is an ordinary backtest without an output journal; its row keeps the exact config
it ran and the digest of everything it produced, so any row can be re-run alone
(``replaymm sweep --rerun``) and checked to give the same digest.
"""

from __future__ import annotations

import copy
import itertools
import json
import os
import time
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor, as_completed
from pathlib import Path
from typing import Any

import msgspec

from ._backtest import run_backtest

__all__ = ["SweepRow", "expand_grid", "run_sweep", "set_path"]


class SweepRow(msgspec.Struct):
    run: int
    params: dict[str, Any]
    config: dict[str, Any]
    net_pnl: float
    spread_capture: float
    inventory_pnl: float
    fees: float
    funding: float
    fills: int
    maker_fills: int
    taker_fills: int
    quote_volume: float
    max_drawdown: float
    max_inventory: float
    orders: int
    cancels: int
    rejects: int
    events: int
    seconds: float
    digest: str


def set_path(config: dict[str, Any], dotted: str, value: Any) -> dict[str, Any]:
    out = copy.deepcopy(config)
    node = out
    keys = dotted.split(".")
    for k in keys[:-1]:
        node = node.setdefault(k, {})
    node[keys[-1]] = value
    return out


def expand_grid(
    base: dict[str, Any], axes: dict[str, list[Any]]
) -> list[tuple[dict[str, Any], dict[str, Any]]]:
    """Every combination of ``axes`` applied to ``base``: [(params, config), ...] in a fixed order."""
    names = list(axes)
    out = []
    for values in itertools.product(*(axes[n] for n in names)):
        cfg = base
        params = dict(zip(names, values))
        for n, v in params.items():
            cfg = set_path(cfg, n, v)
        out.append((params, cfg))
    return out


def _one(run: int, params: dict[str, Any], config: dict[str, Any], data: str) -> SweepRow:
    r = run_backtest(config, data, None)
    s = r.summary
    ins = s.instruments
    return SweepRow(
        run=run,
        params=params,
        config=config,
        net_pnl=float(s.net_pnl),
        spread_capture=float(sum(i.spread_capture for i in ins)),
        inventory_pnl=float(sum(i.inventory_pnl for i in ins)),
        fees=float(sum(i.fees for i in ins)),
        funding=float(sum(i.funding for i in ins)),
        fills=s.fills,
        maker_fills=sum(i.maker_fills for i in ins),
        taker_fills=sum(i.taker_fills for i in ins),
        quote_volume=float(sum(i.quote_volume for i in ins)),
        max_drawdown=float(s.max_drawdown),
        max_inventory=float(max((i.max_inventory for i in ins), default=0)),
        orders=s.orders_placed,
        cancels=s.cancels_sent,
        rejects=sum(s.rejects.values()),
        events=r.events_out,
        seconds=r.seconds,
        digest=r.digest,
    )


def run_sweep(
    grid: list[tuple[dict[str, Any], dict[str, Any]]],
    data: str | Path,
    *,
    jobs: int | None = None,
    progress: Callable[[int], None] | None = None,
) -> tuple[list[SweepRow], float]:
    """Run every config of ``grid``; returns (rows in run order, wall seconds)."""
    jobs = jobs or os.cpu_count() or 1
    started = time.perf_counter()
    rows: list[SweepRow] = []
    if jobs == 1:
        for i, (params, cfg) in enumerate(grid):
            rows.append(_one(i, params, cfg, str(data)))
            if progress:
                progress(len(rows))
    else:
        with ProcessPoolExecutor(max_workers=jobs) as pool:
            futures = [
                pool.submit(_one, i, params, cfg, str(data)) for i, (params, cfg) in enumerate(grid)
            ]
            for f in as_completed(futures):
                rows.append(f.result())
                if progress:
                    progress(len(rows))
    rows.sort(key=lambda r: r.run)
    return rows, time.perf_counter() - started


def write_results(rows: list[SweepRow], db: Path, *, sweep_id: str, data: str) -> None:
    """Append the rows to table ``runs`` of the DuckDB file ``db``."""
    import duckdb

    con = duckdb.connect(str(db))
    try:
        con.execute(
            """CREATE TABLE IF NOT EXISTS runs (
                sweep_id VARCHAR, run INTEGER, data VARCHAR, params JSON, config JSON,
                net_pnl DOUBLE, spread_capture DOUBLE, inventory_pnl DOUBLE, fees DOUBLE,
                funding DOUBLE, fills BIGINT, maker_fills BIGINT, taker_fills BIGINT,
                quote_volume DOUBLE, max_drawdown DOUBLE, max_inventory DOUBLE, orders BIGINT,
                cancels BIGINT, rejects BIGINT, events BIGINT, seconds DOUBLE, digest VARCHAR)"""
        )
        con.executemany(
            "INSERT INTO runs VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            [
                (
                    sweep_id,
                    r.run,
                    data,
                    json.dumps(r.params),
                    json.dumps(r.config),
                    r.net_pnl,
                    r.spread_capture,
                    r.inventory_pnl,
                    r.fees,
                    r.funding,
                    r.fills,
                    r.maker_fills,
                    r.taker_fills,
                    r.quote_volume,
                    r.max_drawdown,
                    r.max_inventory,
                    r.orders,
                    r.cancels,
                    r.rejects,
                    r.events,
                    r.seconds,
                    r.digest,
                )
                for r in rows
            ],
        )
    finally:
        con.close()


def load_row(db: Path, run: int, sweep_id: str | None = None) -> tuple[dict[str, Any], str, str]:
    """(config, data, digest) of one stored run (the latest sweep if ``sweep_id`` is None)."""
    import duckdb

    con = duckdb.connect(str(db), read_only=True)
    try:
        if sweep_id is None:
            got = con.execute("SELECT max(sweep_id) FROM runs").fetchone()
            sweep_id = got[0] if got else None
        row = con.execute(
            "SELECT config, data, digest FROM runs WHERE sweep_id = ? AND run = ?", [sweep_id, run]
        ).fetchone()
    finally:
        con.close()
    if row is None:
        raise KeyError(f"no run {run} in sweep {sweep_id} of {db}")
    return json.loads(row[0]), row[1], row[2]
