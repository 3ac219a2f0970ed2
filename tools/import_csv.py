"""CSV imports: klines, trades and tardis files -> a market-data journal.

Layouts are recognised from the header row (or, for Binance's public archive, which may have
none, from the number of columns):

klines
  * Binance public archive: ``open_time, open, high, low, close, volume, close_time,
    quote_volume, count, taker_buy_volume, taker_buy_quote_volume, ignore`` (12 columns,
    with or without the header row)
  * freqtrade export: ``open_time_ms, date, open, high, low, close, volume``
trades
  * Binance archive aggTrades: ``agg_trade_id, price, quantity, first_trade_id,
    last_trade_id, transact_time, is_buyer_maker`` (7 columns)
  * Binance archive trades: ``id, price, qty, quote_qty, time, is_buyer_maker`` (6 columns)
  * freqtrade/ccxt trades: ``timestamp, id, type, side, price, amount, cost, date``
tardis
  * ``trades``: exchange, symbol, timestamp, local_timestamp, id, side, price, amount
  * ``quotes``: ..., ask_amount, ask_price, bid_price, bid_amount
  * ``book_snapshot_N``: ..., asks[0].price, asks[0].amount, bids[0].price, ...

The receive time of a candle is its close time (that is when it can first be known closed);
of an archive trade its trade time; tardis files carry their own ``local_timestamp``.
"""

from __future__ import annotations

import csv
import heapq
import io
import time
from collections.abc import Callable, Iterator
from decimal import Decimal
from pathlib import Path

from engine import (
    QUOTE_SCALE,
    BookSnapshotReceived,
    Event,
    Instrument,
    InstrumentLoaded,
    KlineUpdated,
    Side,
    TopOfBookUpdated,
    TradePrinted,
)
from engine._events import KLINE_INTERVAL_S
from engine._units import decimal_to_scaled

from ._files import file_digest, iter_lines
from ._import_common import ImportFailed, ImportReport, ImportSink, InstrumentTable, to_ns

__all__ = ["INTERVALS", "import_klines", "import_tardis", "import_trades"]

INTERVALS = KLINE_INTERVAL_S  # seconds per Binance kline interval

# (recv_ns, file index, line number, event) ; events built per row
Row = tuple[int, int, int, Event]


class _Bad(Exception):
    """A row that cannot be imported (counted and reported, not fatal unless --strict)."""


def _rows(path: Path, on_bytes: Callable[[int], None]) -> Iterator[tuple[int, list[str]]]:
    for lineno, line in enumerate(iter_lines(path, on_bytes), 1):
        text = line.decode("utf-8", "replace").strip()
        if not text:
            continue
        yield lineno, next(csv.reader(io.StringIO(text)))


def _is_header(cells: list[str]) -> bool:
    return any(c and not c.lstrip("-").replace(".", "", 1).isdigit() for c in cells[:2])


def _run(
    kind: str,
    files: list[Path],
    out: Path,
    instruments: list[InstrumentLoaded],
    rows_of: Callable[[int, Path, ImportSink, Callable[[int], None]], Iterator[Row]],
    *,
    strict: bool,
    overwrite: bool,
    progress: Callable[[int], None] | None,
    extra_source: dict[str, object] | None = None,
) -> ImportReport:
    for f in files:
        if not f.is_file():
            raise ImportFailed(f"{f}: no such file")
    started = time.perf_counter()
    source: dict[str, object] = {
        "tool": f"import {kind}",
        "files": [f.name for f in files],
        "sha256": [file_digest(f) for f in files],
        **(extra_source or {}),
    }
    sink = ImportSink(
        out, instruments=instruments, source=source, strict=strict, overwrite=overwrite
    )
    tick = progress or (lambda n: None)
    streams = [rows_of(i, f, sink, tick) for i, f in enumerate(files)]
    merged = (
        streams[0] if len(streams) == 1 else heapq.merge(*streams, key=lambda r: (r[0], r[1], r[2]))
    )
    lines = 0
    try:
        for recv, _fi, _ln, ev in merged:
            lines += 1
            sink.event(recv, ev)
    finally:
        report = sink.close(time.perf_counter() - started)
    report.lines = lines + report.malformed
    report.instruments = [i.symbol for i in instruments]
    return report


# ---------------------------------------------------------------------------------------------
# klines


def import_klines(
    files: list[Path],
    out: Path,
    *,
    symbol: str,
    interval: str,
    exchange_info: list[Path] | None = None,
    strict: bool = False,
    overwrite: bool = False,
    progress: Callable[[int], None] | None = None,
) -> ImportReport:
    if interval not in INTERVALS:
        raise ImportFailed(f"--interval {interval!r}: use one of {', '.join(INTERVALS)}")
    table = InstrumentTable(exchange_info or [])
    spec = table.get(symbol.upper())
    ins = Instrument(spec)
    step_ns = INTERVALS[interval] * 1_000_000_000

    def rows_of(
        fi: int, path: Path, sink: ImportSink, tick: Callable[[int], None]
    ) -> Iterator[Row]:
        layout = ""
        prev_open = -1
        for lineno, cells in _rows(path, tick):
            if not layout:
                if _is_header(cells):
                    names = [c.strip().lower() for c in cells]
                    if "open_time_ms" in names and "date" in names:
                        layout = "freqtrade"
                    elif names[:1] == ["open_time"] and len(names) >= 11:
                        layout = "archive"
                    else:
                        raise ImportFailed(
                            f"{path.name}: unknown kline layout (header {cells[:8]})"
                        )
                    continue
                layout = "archive" if len(cells) >= 11 else "freqtrade7" if len(cells) == 7 else ""
                if not layout:
                    raise ImportFailed(
                        f"{path.name}:{lineno}: a kline row has {len(cells)} columns; expected 12 (Binance archive) or 7 (freqtrade)"
                    )
            try:
                ev = _kline(layout, cells, ins, interval, step_ns)
            except (ValueError, IndexError, _Bad) as e:
                sink.malformed(path.name, lineno, str(e) or type(e).__name__, ",".join(cells))
                continue
            if prev_open >= 0 and ev.open_ns - prev_open != step_ns:
                gap = (ev.open_ns - prev_open) / 1e9
                if gap <= 0:
                    sink.malformed(
                        path.name,
                        lineno,
                        f"candle does not follow the previous one (step {gap:g}s)",
                        ",".join(cells),
                    )
                    continue
                sink.skip("kline gaps (candles missing from the file)")
            prev_open = ev.open_ns
            yield ev.close_ns, fi, lineno, ev

    return _run(
        "binance-klines",
        files,
        out,
        [spec],
        rows_of,
        strict=strict,
        overwrite=overwrite,
        progress=progress,
        extra_source={"symbol": spec.symbol, "interval": interval},
    )


def _float_tolerant(to_units: Callable[[str], int]) -> Callable[[str], int]:
    """Exact conversion, except for float64 print artifacts such as ``1.2147000000000001``.

    freqtrade stores candles as float64 (feather/JSON), so its files carry values like that;
    the exchange's value was on the grid. A value with 16+ significant digits that lies within
    1e-9 (relative) of a grid point is taken as that grid point; anything else still fails.
    """

    def convert(text: str) -> int:
        try:
            return to_units(text)
        except ValueError:
            digits = sum(ch.isdigit() for ch in text.lstrip("-+0."))
            if digits < 16:
                raise
            d = Decimal(text)
            for nd in range(0, 13):
                r = round(d, nd)
                if abs(r - d) <= abs(d) * Decimal("1e-9"):
                    return to_units(format(r.normalize(), "f"))
            raise

    return convert


def _kline(layout: str, c: list[str], ins: Instrument, interval: str, step_ns: int) -> KlineUpdated:
    px = ins.price_scale.to_units
    qty = ins.qty_scale.to_units
    if layout != "archive":
        px = _float_tolerant(px)
        qty = _float_tolerant(qty)
    if layout == "archive":
        open_ns = to_ns(int(c[0]))
        close_ns = to_ns(int(c[6]) + 1)
        if close_ns - open_ns != step_ns:
            raise _Bad(f"close_time - open_time is not {interval}")
        return KlineUpdated(
            ins.inst,
            close_ns,
            interval,
            open_ns,
            close_ns,
            px(c[1]),
            px(c[2]),
            px(c[3]),
            px(c[4]),
            qty(c[5]),
            decimal_to_scaled(c[7], 8) * (QUOTE_SCALE // 10**8),
            int(c[8]),
            qty(c[9]),
            True,
        )
    # freqtrade: open_time_ms, date, open, high, low, close, volume (no quote volume / counts)
    open_ns = to_ns(int(c[0]))
    close_ns = open_ns + step_ns
    vol = c[6] if len(c) > 6 and c[6] else "0"
    return KlineUpdated(
        ins.inst,
        close_ns,
        interval,
        open_ns,
        close_ns,
        px(c[2]),
        px(c[3]),
        px(c[4]),
        px(c[5]),
        qty(vol),
        0,
        0,
        0,
        True,
    )


# ---------------------------------------------------------------------------------------------
# trades


def import_trades(
    files: list[Path],
    out: Path,
    *,
    symbol: str,
    exchange_info: list[Path] | None = None,
    strict: bool = False,
    overwrite: bool = False,
    progress: Callable[[int], None] | None = None,
) -> ImportReport:
    table = InstrumentTable(exchange_info or [])
    spec = table.get(symbol.upper())
    ins = Instrument(spec)
    px = ins.price_scale.to_units
    qty = ins.qty_scale.to_units
    fpx, fqty = _float_tolerant(px), _float_tolerant(qty)  # ccxt exports are float64 too

    def rows_of(
        fi: int, path: Path, sink: ImportSink, tick: Callable[[int], None]
    ) -> Iterator[Row]:
        layout = ""
        for lineno, cells in _rows(path, tick):
            if not layout:
                if _is_header(cells):
                    names = [c.strip().lower() for c in cells]
                    if names[:2] == ["timestamp", "id"] and "side" in names:
                        layout = "ccxt"
                    elif names[:1] == ["agg_trade_id"]:
                        layout = "agg"
                    elif names[:1] == ["id"] and "quote_qty" in names:
                        layout = "raw"
                    else:
                        raise ImportFailed(
                            f"{path.name}: unknown trades layout (header {cells[:8]})"
                        )
                    continue
                layout = {7: "agg", 6: "raw"}.get(len(cells), "")
                if not layout:
                    raise ImportFailed(
                        f"{path.name}:{lineno}: a trade row has {len(cells)} columns; expected 7 (aggTrades) or 6 (trades)"
                    )
            try:
                if layout == "agg":
                    t = to_ns(int(cells[5]))
                    ev = TradePrinted(
                        spec.inst,
                        t,
                        int(cells[0]),
                        px(cells[1]),
                        qty(cells[2]),
                        _maker_side(cells[6]),
                    )
                elif layout == "raw":
                    t = to_ns(int(cells[4]))
                    ev = TradePrinted(
                        spec.inst,
                        t,
                        int(cells[0]),
                        px(cells[1]),
                        qty(cells[2]),
                        _maker_side(cells[5]),
                    )
                else:
                    t = to_ns(int(cells[0]))
                    side = {"buy": Side.BUY, "sell": Side.SELL}[cells[3].strip().lower()]
                    ev = TradePrinted(
                        spec.inst, t, int(cells[1]), fpx(cells[4]), fqty(cells[5]), side
                    )
            except (ValueError, IndexError, KeyError) as e:
                sink.malformed(path.name, lineno, str(e) or type(e).__name__, ",".join(cells))
                continue
            yield t, fi, lineno, ev

    return _run(
        "binance-trades",
        files,
        out,
        [spec],
        rows_of,
        strict=strict,
        overwrite=overwrite,
        progress=progress,
        extra_source={"symbol": spec.symbol},
    )


def _maker_side(is_buyer_maker: str) -> Side:
    v = is_buyer_maker.strip().lower()
    if v not in ("true", "false"):
        raise ValueError(f"is_buyer_maker must be true/false, got {is_buyer_maker!r}")
    # buyer is maker -> the seller took liquidity
    return Side.SELL if v == "true" else Side.BUY


# ---------------------------------------------------------------------------------------------
# tardis


def import_tardis(
    files: list[Path],
    out: Path,
    *,
    exchange_info: list[Path] | None = None,
    strict: bool = False,
    overwrite: bool = False,
    progress: Callable[[int], None] | None = None,
) -> ImportReport:
    table = InstrumentTable(exchange_info or [])
    # tardis files name their symbol in every row: read the first data row of each
    for f in files:
        for ln, cells in _rows(f, lambda n: None):
            if ln > 1:  # line 1 is the header
                table.get(cells[1].upper())
                break
    specs = list(table.loaded.values())
    by_symbol = {s.symbol: Instrument(s) for s in specs}
    counters = {"quote": 0}

    def rows_of(
        fi: int, path: Path, sink: ImportSink, tick: Callable[[int], None]
    ) -> Iterator[Row]:
        names: list[str] = []
        for lineno, cells in _rows(path, tick):
            if not names:
                names = [c.strip() for c in cells]
                if names[:4] != ["exchange", "symbol", "timestamp", "local_timestamp"]:
                    raise ImportFailed(f"{path.name}: not a tardis CSV (header {cells[:4]})")
                continue
            try:
                ins = by_symbol[cells[1].upper()]
                ts = to_ns(int(cells[2]))
                recv = to_ns(int(cells[3]))
                ev = _tardis_row(names, cells, ins, ts, counters)
            except (ValueError, IndexError, KeyError) as e:
                sink.malformed(path.name, lineno, str(e) or type(e).__name__, ",".join(cells))
                continue
            yield recv, fi, lineno, ev

    return _run(
        "tardis", files, out, specs, rows_of, strict=strict, overwrite=overwrite, progress=progress
    )


def _tardis_row(
    names: list[str], c: list[str], ins: Instrument, ts: int, counters: dict[str, int]
) -> Event:
    px = ins.price_scale.to_units
    qty = ins.qty_scale.to_units
    if names[4:] == ["id", "side", "price", "amount"]:
        side = {"buy": Side.BUY, "sell": Side.SELL}[c[5]]
        return TradePrinted(ins.inst, ts, int(c[4]), px(c[6]), qty(c[7]), side)
    if names[4:] == ["ask_amount", "ask_price", "bid_price", "bid_amount"]:
        # tardis quotes carry no update id: number them so each one is newer than the last
        counters["quote"] += 1
        return TopOfBookUpdated(
            ins.inst, ts, counters["quote"], px(c[6]), qty(c[7]), px(c[5]), qty(c[4])
        )
    if len(names) > 4 and names[4].startswith("asks[0]"):
        bids: list[int] = []
        asks: list[int] = []
        for i in range(4, len(names), 2):
            side = asks if names[i].startswith("asks") else bids
            if c[i]:
                side += [px(c[i]), qty(c[i + 1])]
        counters["quote"] += 1
        return BookSnapshotReceived(ins.inst, ts, counters["quote"], bids, asks)
    raise ValueError(f"unknown tardis layout: {','.join(names[:8])}")
