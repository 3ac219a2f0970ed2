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
from ._columns import decimal_column, time_column
from ._ledger import Rows
from ._light import EVENT_NAMES
from ._mids import mid_runs

__all__ = [
    "EXPORT_VERSION",
    "MONEY_DECIMALS",
    "base_tables",
    "build_tables",
    "derived",
    "finish_tables",
]

#: bump when the exported tables or views change: SQL caches and backtests' columns files
#: (``_sidecar.py``) written by another version are then rebuilt / ignored
EXPORT_VERSION = "4"
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


def _orders_table(t: pa.Table, instruments: dict[int, Instrument], scales: _Scales) -> pa.Table:
    """The orders table from its base columns (``avg_fill_price_ticks`` is replaced by
    ``avg_fill_price``; the placement time and the latencies in ms are added)."""
    avg = t["avg_fill_price_ticks"].to_pylist()
    t = _decorate(_arrays(t.drop_columns(["avg_fill_price_ticks"])), scales)
    tick = {i.inst: float(i.price_scale.to_decimal(1)) for i in instruments.values()}
    t = t.append_column(
        "avg_fill_price",
        pa.array(
            [None if a is None else a * tick[i] for a, i in zip(avg, t["inst"].to_pylist())],
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


def _arrays(t: pa.Table, lazy: bool = False) -> dict[str, Any]:
    """A table's columns as plain arrays (a base table read back from a backtest's columns
    file may come in chunks); ``lazy``: chunked columns stay as they are (only their length
    and type matter to the placeholders, and DuckDB reads chunks as well)."""
    return {
        n: c.chunk(0) if c.num_chunks == 1 else c if lazy else c.combine_chunks()
        for n, c in zip(t.column_names, t.columns)
    }


_EVENT_TYPE_NAMES = pa.array(
    [EVENT_NAMES.get(i, f"tag{i}") for i in range(max(EVENT_NAMES) + 1)], pa.string()
)


#: the base tables, in the order every export writes them
BASE_TABLES = (
    "instruments", "events", "book_top", "trades", "mark_prices", "klines", "mids", "intents",
    "orders", "order_events", "fills", "positions", "funding", "decisions", "alerts", "balances",
)  # fmt: skip
#: the market tables, which ``market_rows`` can give a part of: a backtest's column builder
#: writes them in parts while the backtest runs
MARKET_TABLES = ("events", "book_top", "trades")


def market_rows(c: Collected, name: str, rows: tuple[int, int] | None = None) -> pa.Table:
    """The base table ``name`` (one of ``MARKET_TABLES``); ``rows``: only (a copy of) its
    rows ``[start, stop)`` (the events table's rows are its seqs from the first one on)."""
    if name == "events":
        if rows is None:
            return c.events_table()
        return c.events_table((c.first_seq + rows[0], c.first_seq + rows[1]))
    if name == "book_top":
        return pa.table(c.book_top.arrow(rows))
    if name == "trades":
        cols = c.trades.arrow(rows)
        cols["taker_side"] = cols["taker_side"].cast(pa.int8())
        return pa.table(cols)
    raise KeyError(name)


def base_tables(c: Collected, skip: tuple[str, ...] = ()) -> dict[str, pa.Table]:
    """The *base* tables of one journal (``BASE_TABLES`` but ``skip``): the columns the read
    pass found (raw integers, the ledger's rows), before any decimal, time or name is added.
    ``finish_tables`` turns them into the exported tables; they are also what a backtest
    keeps next to its journal (``_sidecar.py``), so an export can start from them instead of
    the journal."""
    led = c.ledger
    side = {"side": pa.int8(), "taker_side": pa.int8()}

    def klines() -> pa.Table:
        cols = c.klines.arrow()
        closed = pc.cast(cols.pop("closed"), pa.bool_())
        kl: dict[str, Any] = {}
        for name, col in cols.items():
            if name == "open_ns":
                kl["interval"] = pa.array(c.kline_intervals, pa.string())
            kl[name] = col
        kl["closed"] = closed
        return pa.table(kl)

    def orders() -> pa.Table:
        rows = led.order_rows()
        avg = rows.cols.pop("avg_fill_price_ticks")
        cols = _columns(rows, {"side": pa.int8(), "fills": pa.int64(), "amends": pa.int64()})
        return pa.table({**cols, "avg_fill_price_ticks": pa.array(avg, pa.float64())})

    build = {
        "instruments": lambda: _instruments_table(c),
        "events": lambda: market_rows(c, "events"),
        "book_top": lambda: market_rows(c, "book_top"),
        "trades": lambda: market_rows(c, "trades"),
        "mark_prices": lambda: pa.table(c.marks.arrow()),
        "klines": klines,
        "mids": lambda: pa.table(mid_runs(c.book_top.arrow())),
        "intents": lambda: pa.table(_columns(led.intents, side)),
        "orders": orders,
        "order_events": lambda: pa.table(_columns(led.order_events, {"code": pa.int64()})),
        "fills": lambda: pa.table(_columns(led.fills, side)),
        "positions": lambda: pa.table(_columns(led.positions_rows, {})),
        "funding": lambda: pa.table(_columns(led.funding, {})),
        "decisions": lambda: pa.table(_columns(led.decisions, {})),
        "alerts": lambda: pa.table(_columns(led.alerts, {})),
        "balances": lambda: pa.table(_columns(led.balances, {})),
    }
    assert tuple(build) == BASE_TABLES
    return {name: make() for name, make in build.items() if name not in skip}


def finish_tables(
    base: dict[str, pa.Table], instruments: dict[int, Instrument], lazy: bool = False
) -> dict[str, pa.Table]:
    """The exported tables from the base tables: every unit-suffixed integer gets its
    DECIMAL twin, every receive time its TIMESTAMP, event tags their names. ``lazy``: the
    twins are ``derived`` placeholders, for DuckDB to compute."""
    scales = _Scales(instruments, lazy)
    out: dict[str, pa.Table] = {}
    for name, t in base.items():
        if name == "instruments":
            out[name] = t
        elif name == "events":
            cols = _arrays(t, lazy)
            tag = cols.pop("tag")
            if isinstance(tag, pa.ChunkedArray):
                cols["type"] = pa.chunked_array(
                    [pa.DictionaryArray.from_arrays(c, _EVENT_TYPE_NAMES) for c in tag.chunks],
                    pa.dictionary(pa.int16(), pa.string()),
                )
            else:
                cols["type"] = pa.DictionaryArray.from_arrays(tag, _EVENT_TYPE_NAMES)
            out[name] = _decorate(cols, scales)
        elif name == "orders":
            out[name] = _orders_table(t, instruments, scales)
        else:
            out[name] = _decorate(_arrays(t, lazy), scales)
    return out


def build_tables(c: Collected, lazy: bool = False) -> dict[str, pa.Table]:
    """Every exported table of one journal, by name. ``lazy``: the decimal and time twins
    are ``derived`` placeholders, for DuckDB to compute."""
    return finish_tables(base_tables(c), c.instruments, lazy)
