"""The exported tables: raw integer columns from the read pass, plus decimals and times.

Naming rule: a raw integer column says its unit in its name (``price_ticks``, ``qty_lots``,
``fee_minor``: 1e-8 of the quote asset, ``mark_e8``, ``recv_ns``); the same value as a
DECIMAL drops the suffix (``price``, ``qty``, ``fee``, ``mark``). Times are ``*_ns`` integers
(nanoseconds since the epoch) with a ``time`` TIMESTAMP next to the receive time.
"""

from __future__ import annotations

from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from engine import QUOTE_SCALE, Instrument

from ._collect import Collected
from ._columns import decimal_column, int_column, time_column
from ._ledger import Rows
from ._mids import mid_runs

__all__ = ["MONEY_DECIMALS", "build_tables"]

MONEY_DECIMALS = 8  # QUOTE_SCALE = 1e8
assert 10**MONEY_DECIMALS == QUOTE_SCALE


class _Scales:
    """Per-instrument factors turning ticks/lots into integers of one common decimal scale."""

    def __init__(self, instruments: dict[int, Instrument]) -> None:
        ins = list(instruments.values())
        self.price_decimals = max((i.price_scale.decimals for i in ins), default=2)
        self.qty_decimals = max((i.qty_scale.decimals for i in ins), default=3)
        self._price = {
            i.inst: i.price_scale.unit * 10 ** (self.price_decimals - i.price_scale.decimals)
            for i in ins
        }
        self._qty = {
            i.inst: i.qty_scale.unit * 10 ** (self.qty_decimals - i.qty_scale.decimals) for i in ins
        }

    @staticmethod
    def _factor(factors: dict[int, int], inst: pa.Array) -> Any:
        distinct = set(factors.values())
        if len(distinct) <= 1:
            return distinct.pop() if distinct else 1
        size = max(factors) + 1
        table = pa.array([factors.get(i, 0) for i in range(size)], pa.int64())
        return table.take(inst)

    def price(self, ticks: pa.Array, inst: pa.Array) -> pa.Array:
        return decimal_column(ticks, self._factor(self._price, inst), self.price_decimals)

    def half_price(self, ticks2: pa.Array, inst: pa.Array) -> pa.Array:
        """Twice a price in ticks (a mid) as the price, at one more decimal: exact."""
        factor = self._factor(self._price, inst)
        factor = factor * 5 if isinstance(factor, int) else pc.multiply(factor, 5)
        return decimal_column(ticks2, factor, self.price_decimals + 1)

    def qty(self, lots: pa.Array, inst: pa.Array) -> pa.Array:
        return decimal_column(lots, self._factor(self._qty, inst), self.qty_decimals)


def _money(minor: pa.Array) -> pa.Array:
    return decimal_column(minor, 1, MONEY_DECIMALS)


def _columns(rows: Rows, types: dict[str, pa.DataType]) -> dict[str, pa.Array]:
    return {n: pa.array(v, types.get(n, _guess(n))) for n, v in rows.cols.items()}


_INTS = frozenset(
    {"seq", "idx", "inst", "order_id", "trade_id", "placed_seq", "fills", "maker_fills",
     "amends", "status_unknown", "reject_code", "expire_reason", "cancel_reject_code"}
)  # fmt: skip


def _guess(name: str) -> pa.DataType:
    """Column types by name, so that empty tables still get the right types."""
    if name in ("is_maker", "reduce_only"):
        return pa.bool_()
    if name in _INTS or name.endswith(("_ns", "_ticks", "_lots", "_minor", "_e8")):
        return pa.int64()
    return pa.string()


def _decorate(cols: dict[str, pa.Array], scales: _Scales) -> pa.Table:
    """Add the decimal twin of every unit-suffixed column, and ``time`` after ``recv_ns``."""
    out: dict[str, pa.Array] = {}
    inst = cols.get("inst")
    for name, arr in cols.items():
        out[name] = arr
        if name == "recv_ns":
            out["time"] = time_column(arr)
        elif name == "mid2_ticks" and inst is not None:
            out["mid"] = scales.half_price(arr, inst)
        elif name.endswith("_ticks") and inst is not None and name != "edge_half_ticks":
            out[name.removesuffix("_ticks")] = scales.price(arr, inst)
        elif name.endswith("_lots") and inst is not None:
            out[name.removesuffix("_lots")] = scales.qty(arr, inst)
        elif name.endswith("_minor") and not name.endswith("_half_minor"):
            out[name.removesuffix("_minor")] = _money(arr)
        elif name.endswith("_half_minor"):
            # twice the minor units: x5 at 9 decimals is exact
            out[name.removesuffix("_half_minor")] = decimal_column(arr, 5, MONEY_DECIMALS + 1)
        elif name.endswith("_e8"):
            out[name.removesuffix("_e8")] = decimal_column(arr, 1, 8)
    return pa.table(out)


def _decimals(values: list[Any]) -> pa.Array:
    return pa.array(values, pa.decimal128(18, 8))


def _instruments_table(c: Collected) -> pa.Table:
    ins = list(c.instruments.values())
    return pa.table(
        {
            "inst": pa.array([i.inst for i in ins], pa.int64()),
            "symbol": [i.symbol for i in ins],
            "base_asset": [i.spec.base_asset for i in ins],
            "quote_asset": [i.spec.quote_asset for i in ins],
            "margin_asset": [i.spec.margin_asset for i in ins],
            "tick_size": [i.spec.tick_size for i in ins],
            "step_size": [i.spec.step_size for i in ins],
            "tick": _decimals([i.price_scale.to_decimal(1) for i in ins]),
            "step": _decimals([i.qty_scale.to_decimal(1) for i in ins]),
            "price_decimals": [i.price_scale.decimals for i in ins],
            "qty_decimals": [i.qty_scale.decimals for i in ins],
            "minor_per_ticklot": pa.array([i.minor_per_ticklot for i in ins], pa.int64()),
            "min_qty_lots": pa.array([i.spec.min_qty for i in ins], pa.int64()),
            "min_notional_minor": pa.array([i.spec.min_notional for i in ins], pa.int64()),
        }
    )


def _orders_table(c: Collected, scales: _Scales) -> pa.Table:
    rows = c.ledger.order_rows()
    avg = rows.cols.pop("avg_fill_price_ticks")
    cols = _columns(rows, {"side": pa.int8(), "fills": pa.int64(), "amends": pa.int64()})
    t = _decorate(cols, scales)
    tick = {i.inst: float(i.price_scale.to_decimal(1)) for i in c.instruments.values()}
    t = t.append_column(
        "avg_fill_price",
        pa.array(
            [None if a is None else a * tick[i] for a, i in zip(avg, rows.cols["inst"])],
            pa.float64(),
        ),
    )
    t = t.append_column("placed_time", time_column(t["placed_ns"]))
    for lat in ("ack", "fill", "cancel"):
        ns = t[f"{lat}_latency_ns"]
        t = t.append_column(
            f"{lat}_latency_ms", pa.array([None if v is None else v / 1e6 for v in ns.to_pylist()])
        )
    return t


def _klines_table(c: Collected, scales: _Scales) -> pa.Table:
    cols = c.klines.arrow()
    closed = cols.pop("closed")
    t = _decorate(cols, scales)
    t = t.add_column(t.schema.get_field_index("open_ns"), "interval",
                     pa.array(c.kline_intervals, pa.string()))  # fmt: skip
    return t.append_column("closed", pc.cast(closed, pa.bool_()))


def build_tables(c: Collected) -> dict[str, pa.Table]:
    """Every exported table of one journal, by name."""
    scales = _Scales(c.instruments)
    events = c.events_table()
    events = events.add_column(2, "time", time_column(events["recv_ns"].combine_chunks()))
    led = c.ledger
    side = {"side": pa.int8(), "taker_side": pa.int8()}
    tables = {
        "instruments": _instruments_table(c),
        "events": events,
        "book_top": _decorate(c.book_top.arrow(), scales),
        "trades": _decorate(
            {**c.trades.arrow(), "taker_side": int_column(c.trades["taker_side"]).cast(pa.int8())},
            scales,
        ),
        "mark_prices": _decorate(c.marks.arrow(), scales),
        "klines": _klines_table(c, scales),
        "mids": _decorate(mid_runs(c.book_top.arrow()), scales),
        "intents": _decorate(_columns(led.intents, side), scales),
        "orders": _orders_table(c, scales),
        "order_events": _decorate(_columns(led.order_events, {"code": pa.int64()}), scales),
        "fills": _decorate(_columns(led.fills, side), scales),
        "positions": _decorate(_columns(led.positions_rows, {}), scales),
        "funding": _decorate(_columns(led.funding, {}), scales),
        "decisions": _decorate(_columns(led.decisions, {}), scales),
        "alerts": _decorate(_columns(led.alerts, {}), scales),
        "balances": _decorate(_columns(led.balances, {}), scales),
    }
    return tables
