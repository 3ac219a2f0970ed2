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

__all__ = ["MONEY_DECIMALS", "build_tables", "derived"]

MONEY_DECIMALS = 8  # QUOTE_SCALE = 1e8
assert 10**MONEY_DECIMALS == QUOTE_SCALE


def derived(n: int, sql_type: str, expr: str) -> tuple[pa.Field, pa.Array]:
    """A placeholder column for a value DuckDB computes (a VIRTUAL generated column): all
    nulls (no buffers), its type and expression in the field's metadata."""
    meta = {b"sql_type": sql_type.encode(), b"sql": expr.encode()}
    return pa.field("", pa.null(), metadata=meta), pa.nulls(n)


def _sql_decimal(src: str, factor: str, decimals: int) -> tuple[str, str]:
    """(type, expression) of ``src * factor`` read as a DECIMAL(18, decimals) (exact)."""
    unit = f"CAST(0.{'0' * (decimals - 1)}1 AS DECIMAL(18, {decimals}))" if decimals else "1"
    ty = f"DECIMAL(18,{decimals})"
    return ty, f"CAST({src} * {factor} * {unit} AS {ty})"


def _sql_time(src: str) -> tuple[str, str]:
    return "TIMESTAMP", f"make_timestamp({src} // 1000)"


class _Scales:
    """Per-instrument factors turning ticks/lots into integers of one common decimal scale.
    ``lazy``: the decimals are left to DuckDB (``derived`` placeholders)."""

    def __init__(self, instruments: dict[int, Instrument], lazy: bool = False) -> None:
        self.lazy = lazy
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

    @staticmethod
    def _sql_factor(factors: dict[int, int], times: int = 1) -> str:
        """``_factor`` in SQL, over the row's ``inst``."""
        distinct = set(factors.values())
        if len(distinct) <= 1:
            return str((distinct.pop() if distinct else 1) * times)
        cases = " ".join(f"WHEN {i} THEN {f * times}" for i, f in sorted(factors.items()))
        return f"(CASE WHEN inst IS NULL THEN NULL {cases} ELSE 0 END)"

    def price(self, ticks: pa.Array, inst: pa.Array, src: str = "") -> Any:
        if self.lazy:
            sql = _sql_decimal(src, self._sql_factor(self._price), self.price_decimals)
            return derived(len(ticks), *sql)
        return decimal_column(ticks, self._factor(self._price, inst), self.price_decimals)

    def half_price(self, ticks2: pa.Array, inst: pa.Array, src: str = "") -> Any:
        """Twice a price in ticks (a mid) as the price, at one more decimal: exact."""
        if self.lazy:
            sql = _sql_decimal(src, self._sql_factor(self._price, 5), self.price_decimals + 1)
            return derived(len(ticks2), *sql)
        factor = self._factor(self._price, inst)
        factor = factor * 5 if isinstance(factor, int) else pc.multiply(factor, 5)
        return decimal_column(ticks2, factor, self.price_decimals + 1)

    def qty(self, lots: pa.Array, inst: pa.Array, src: str = "") -> Any:
        if self.lazy:
            sql = _sql_decimal(src, self._sql_factor(self._qty), self.qty_decimals)
            return derived(len(lots), *sql)
        return decimal_column(lots, self._factor(self._qty, inst), self.qty_decimals)

    def fixed(self, units: pa.Array, factor: int, decimals: int, src: str) -> Any:
        """``units * factor`` as a DECIMAL(18, decimals), whatever the instrument."""
        if self.lazy:
            return derived(len(units), *_sql_decimal(src, str(factor), decimals))
        return decimal_column(units, factor, decimals)

    def time(self, ns: pa.Array, src: str) -> Any:
        if self.lazy:
            return derived(len(ns), *_sql_time(src))
        return time_column(ns)


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
    out: dict[str, Any] = {}
    inst = cols.get("inst")
    for name, arr in cols.items():
        out[name] = arr
        if name == "recv_ns":
            out["time"] = scales.time(arr, name)
        elif name == "mid2_ticks" and inst is not None:
            out["mid"] = scales.half_price(arr, inst, name)
        elif name.endswith("_ticks") and inst is not None and name != "edge_half_ticks":
            out[name.removesuffix("_ticks")] = scales.price(arr, inst, name)
        elif name.endswith("_lots") and inst is not None:
            out[name.removesuffix("_lots")] = scales.qty(arr, inst, name)
        elif name.endswith("_minor") and not name.endswith("_half_minor"):
            out[name.removesuffix("_minor")] = scales.fixed(arr, 1, MONEY_DECIMALS, name)
        elif name.endswith("_half_minor"):
            # twice the minor units: x5 at 9 decimals is exact
            out[name.removesuffix("_half_minor")] = scales.fixed(arr, 5, MONEY_DECIMALS + 1, name)
        elif name.endswith("_e8"):
            out[name.removesuffix("_e8")] = scales.fixed(arr, 1, 8, name)
    return _table(out)


def _table(cols: dict[str, Any]) -> pa.Table:
    """A table of arrays and ``derived`` placeholders (named here)."""
    fields, arrays = [], []
    for name, col in cols.items():
        if isinstance(col, tuple):
            field, arr = col
            fields.append(field.with_name(name))
            arrays.append(arr)
        else:
            fields.append(pa.field(name, col.type))
            arrays.append(col)
    return pa.Table.from_arrays(arrays, schema=pa.schema(fields))


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


def build_tables(c: Collected, lazy: bool = False) -> dict[str, pa.Table]:
    """Every exported table of one journal, by name. ``lazy``: the decimal and time twins
    are ``derived`` placeholders, for DuckDB to compute."""
    scales = _Scales(c.instruments, lazy)
    events = c.events_table()
    recv = events["recv_ns"].combine_chunks()
    time = scales.time(recv, "recv_ns")
    if lazy:
        events = events.add_column(2, time[0].with_name("time"), time[1])
    else:
        events = events.add_column(2, "time", time)
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
