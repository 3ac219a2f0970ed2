"""``replaymm import binance-ws``: recorded Binance WebSocket files -> a market-data journal.

Understands three line layouts, detected per file from its first line:

* hftbacktest's collector (``<recv ts> <json>``; ts in ns, or µs in the 2023 ``.dat.gz``
  files); the JSON is a combined-stream envelope, except one line per file that is the raw
  REST depth snapshot;
* cryptofeed's raw WS capture (first line = the subscribed URL, then ``<recv secs>: <json>``);
* cryptofeed's REST snapshot log (``<url> -> <recv secs>: <json>``).

Several files are merged into one journal by receive time (ties keep file order), so the two
halves of a session split at midnight, or BTC and ETH recorded side by side, become one
stream. Each event's receive time is the recorder's own timestamp.
"""

from __future__ import annotations

import heapq
import re
import time
from collections.abc import Callable, Generator, Iterator
from decimal import Decimal
from itertools import chain
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlparse

import msgspec

from adapters.binance import MarketParser, UnknownSymbol
from engine import EVENT_TYPES, Event, EventRecord, InstrumentLoaded

from ._files import file_digest, iter_line_batches, iter_lines
from ._import_common import ImportFailed, ImportReport, ImportSink, InstrumentTable, to_ns
from ._import_parallel import (
    BLANK,
    EVENT,
    LAYOUT_ERROR,
    MALFORMED,
    SKIPPED,
    ParsePool,
    default_jobs,
)

__all__ = ["RecordedStream", "import_binance_ws"]

_SYMBOL_IN_STREAM = re.compile(rb'"stream"\s*:\s*"([a-z0-9_]+)@')
_SYMBOL_IN_URL = re.compile(rb"[/=]([a-z0-9]+)@")
_FILENAME_SYMBOL = re.compile(r"^([a-z0-9]+?)_\d{8}", re.I)

# (recv_ns, file index, line number, kind, payload, snapshot symbol)
Item = tuple[int, int, int, int, bytes, str]
_STREAM, _SNAPSHOT, _RAW = 0, 1, 2


def _secs_to_ns(text: bytes) -> int:
    whole, _, frac = text.strip().partition(b".")
    return int(whole) * 1_000_000_000 + int(frac[:9].ljust(9, b"0") or b"0")


def _classify(payload: bytes) -> int:
    head = payload[:24]
    if head.startswith(b'{"stream"'):
        return _STREAM
    if b"lastUpdateId" in head:
        return _SNAPSHOT
    return _RAW


class _FileSource:
    """One recorded file as a stream of items, plus what it says about its symbols."""

    def __init__(
        self, index: int, path: Path, on_bytes: Callable[[int], None], sink: ImportSink
    ) -> None:
        self.index = index
        self.path = path
        self.name = path.name
        self.on_bytes = on_bytes
        self.sink = sink
        self.symbols: list[str] = []
        m = _FILENAME_SYMBOL.match(path.name)
        self.filename_symbol = m.group(1).upper() if m else ""

    def _seen(self, payload: bytes) -> None:
        m = _SYMBOL_IN_STREAM.search(payload[:64])
        if m:
            sym = m.group(1).decode().upper()
            if sym not in self.symbols:
                self.symbols.append(sym)

    def _snapshot_symbol(self) -> str:
        if len(self.symbols) == 1:
            return self.symbols[0]
        if self.filename_symbol:
            return self.filename_symbol
        return ""

    def items(self) -> Iterator[Item]:
        lines: Iterator[tuple[int, bytes]] = enumerate(iter_lines(self.path, self.on_bytes), 1)
        idx = self.index
        layout = "hft"
        for lineno, line in lines:  # the first non-blank line tells the layout
            if not line or line.isspace():
                continue
            if line.startswith((b"wss://", b"ws://")):
                layout = "cf-ws"
                for m in _SYMBOL_IN_URL.finditer(line):
                    sym = m.group(1).decode().upper()
                    if sym not in self.symbols:
                        self.symbols.append(sym)
            else:
                if line.startswith((b"https://", b"http://")):
                    layout = "cf-rest"
                lines = chain(((lineno, line),), lines)
            break
        if layout == "hft":
            # The hot loop of an import (hftbacktest's files, ~1 M lines a day): one loop per
            # layout, ``_classify`` and ``to_ns`` inlined, no per-line copy for the blank test.
            seen = self._seen
            malformed = self.sink.malformed
            for lineno, line in lines:
                if not line or line.isspace():
                    continue
                try:
                    sp = line.index(b" ")
                    recv = int(line[:sp])
                    if recv < 10**17:  # not ns already (the 2023 files are in µs)
                        recv = to_ns(recv)
                    payload = line[sp + 1 :]
                except ValueError:
                    malformed(self.name, lineno, "no '<timestamp> <json>' layout", line)
                    continue
                if payload.startswith(b'{"stream"'):
                    if lineno <= 2000:  # enough to learn which symbols a file carries
                        seen(payload)
                    yield recv, idx, lineno, _STREAM, payload, ""
                elif b"lastUpdateId" in payload[:24]:
                    yield recv, idx, lineno, _SNAPSHOT, payload, self._snapshot_symbol()
                else:
                    yield recv, idx, lineno, _RAW, payload, ""
            return
        for lineno, line in lines:
            if not line or line.isspace():
                continue
            try:
                if layout == "cf-ws":
                    i = line.index(b": ")
                    recv = _secs_to_ns(line[:i])
                    payload = line[i + 2 :]
                    symbol = ""
                else:
                    url, _, rest = line.partition(b" -> ")
                    i = rest.index(b": ")
                    recv = _secs_to_ns(rest[:i])
                    payload = rest[i + 2 :]
                    q = parse_qs(urlparse(url.decode()).query)
                    symbol = q.get("symbol", [""])[0].upper()
            except ValueError:
                self.sink.malformed(self.name, lineno, "no '<timestamp> <json>' layout", line)
                continue
            kind = _classify(payload)
            if kind == _STREAM:
                if lineno <= 2000:
                    self._seen(payload)
            elif kind == _SNAPSHOT and not symbol:
                symbol = self._snapshot_symbol()
            yield recv, idx, lineno, kind, payload, symbol


def import_binance_ws(
    files: list[Path],
    out: Path,
    *,
    exchange_info: list[Path] | None = None,
    infer_filters: bool = False,
    strict: bool = False,
    overwrite: bool = False,
    progress: Callable[[int], None] | None = None,
    renames: dict[str, str] | None = None,
    jobs: int | None = None,
) -> ImportReport:
    """Import recorded combined-stream files into a new journal at ``out``; ``renames``
    imports a recorded symbol as another contract (its tick/step/min notional and name).

    ``jobs`` parse worker processes (None: all cores for files of 1 MB and more; 0 or 1: one
    process). The journal is the same whatever ``jobs`` is.
    """
    _check_files(files)
    started = time.perf_counter()
    # forked before any reader thread starts (the prescan in ``_run`` starts some)
    pool = _pool_for(files, jobs)

    def journal_sink(instruments: list[InstrumentLoaded], source: dict[str, Any]) -> ImportSink:
        return ImportSink(
            out, instruments=instruments, source=source, strict=strict, overwrite=overwrite
        )

    try:
        report = _to_the_end(
            _run(files, pool, journal_sink, exchange_info, infer_filters, progress, renames)
        )
    finally:
        if pool is not None:
            pool.close()
    report.seconds = time.perf_counter() - started
    return report


class RecordedStream:
    """Recorded files read as market events for an in-process backtest: the import's parsing
    (worker processes included) feeds the backtest directly, with no scratch journal to
    encode, write, read back and decode.

    ``header`` is what the journal's header would be; ``records()`` yields
    ``(EventRecord, None)`` like ``JournalReader.events_with_payload``, with the same
    sequence numbers and events the journal would hold; ``report`` is there once it is done.
    """

    def __init__(
        self,
        files: list[Path],
        *,
        jobs: int | None = None,
        progress: Callable[[int], None] | None = None,
        renames: dict[str, str] | None = None,
    ) -> None:
        _check_files(files)
        self.name = files[0].name if len(files) == 1 else f"{len(files)} files"
        self.report: ImportReport | None = None
        self._started = time.perf_counter()
        self._pool = _pool_for(files, jobs)
        self._collected = _Collected()
        self._sink: ImportSink | None = None

        def stream_sink(instruments: list[InstrumentLoaded], source: dict[str, Any]) -> ImportSink:
            self._sink = ImportSink(
                None, instruments=instruments, source=source, strict=False, writer=self._collected
            )
            return self._sink

        self._run = _run(files, self._pool, stream_sink, None, False, progress, renames)
        try:
            next(self._run)  # up to the sink: the header is known
        except BaseException:
            self.close()
            raise
        assert self._sink is not None
        self.header = self._sink.header

    def records(self) -> Iterator[tuple[EventRecord, None]]:
        taken = self._collected.records
        try:
            while self.report is None:
                try:
                    next(self._run)  # one more batch of lines
                except StopIteration as done:
                    self.report = done.value
                    self.report.seconds = time.perf_counter() - self._started
                batch = taken[:]
                taken.clear()
                for rec in batch:
                    yield rec, None
        finally:
            self.close()

    def close(self) -> None:
        self._run.close()
        if self._pool is not None:
            self._pool.close()
            self._pool = None


class _Collected:
    """Stands in for the journal writer of a ``RecordedStream``: keeps the records."""

    def __init__(self) -> None:
        self.records: list[EventRecord] = []
        self.next_seq = 1
        self._decode = msgspec.msgpack.Decoder(Event).decode

    def append_event(self, recv_ns: int, ev: Event) -> EventRecord:
        rec = EventRecord(self.next_seq, recv_ns, ev)
        self.next_seq += 1
        self.records.append(rec)
        return rec

    def append_encoded(self, recv_ns: int, encoded: bytes) -> None:
        self.append_event(recv_ns, self._decode(encoded))

    def close(self) -> None:
        pass


def _to_the_end(run: Generator[None, None, ImportReport]) -> ImportReport:
    while True:
        try:
            next(run)
        except StopIteration as done:
            return done.value


def _check_files(files: list[Path]) -> None:
    if not files:
        raise ImportFailed("no files to import")
    for f in files:
        if not f.is_file():
            raise ImportFailed(f"{f}: no such file")


def _pool_for(files: list[Path], jobs: int | None) -> ParsePool | None:
    if jobs is None:
        jobs = default_jobs(sum(f.stat().st_size for f in files))
    return ParsePool(jobs) if jobs > 1 else None


def _run(
    files: list[Path],
    pool: ParsePool | None,
    make_sink: Callable[[list[InstrumentLoaded], dict[str, Any]], ImportSink],
    exchange_info: list[Path] | None,
    infer_filters: bool,
    progress: Callable[[int], None] | None,
    renames: dict[str, str] | None,
) -> Generator[None, None, ImportReport]:
    """The import, as a generator that pauses after the sink is made and then after every
    batch of lines (so a backtest can consume what a batch produced); returns the report."""
    started = time.perf_counter()
    table = InstrumentTable(
        exchange_info or [], _infer_filters(files) if infer_filters else None, renames
    )
    # Symbols known up front go into the header; a symbol first seen later is announced
    # by an InstrumentLoaded event just before its first message.
    for sym in _prescan_symbols(files):
        table.get(sym)
    parser = MarketParser(list(table.loaded.values()))
    for recorded, spec in table.loaded.items():
        if spec.symbol != recorded:
            parser.alias(recorded, spec.symbol)
    source = {
        "tool": "import binance-ws",
        "files": [f.name for f in files],
        "sha256": [file_digest(f) for f in files],
    }
    sink = make_sink(list(table.loaded.values()), source)
    yield
    tick = progress or (lambda n: None)
    sources = [_FileSource(i, f, tick, sink) for i, f in enumerate(files)]
    stream: Iterator[Item]
    if len(sources) == 1:
        stream = sources[0].items()
    else:
        stream = heapq.merge(*(s.items() for s in sources))
    names = [f.name for f in files]
    lines = 0
    parse_combined = parser.parse_combined
    emit = sink.event
    decode_error = (msgspec.DecodeError, msgspec.ValidationError, ValueError)

    def one_line(recv: int, fidx: int, lineno: int, kind: int, payload: bytes, symbol: str) -> None:
        try:
            if kind == _STREAM:
                ev = parse_combined(payload)
            elif kind == _SNAPSHOT:
                if not symbol:
                    sink.malformed(
                        names[fidx],
                        lineno,
                        "depth snapshot for an unknown symbol (file has several)",
                        payload,
                    )
                    return
                _ensure(parser, table, sink, symbol)
                ev = parser.parse_snapshot(symbol, payload)
            else:
                ev = parser.parse_payload(payload)
        except UnknownSymbol as e:
            _ensure(parser, table, sink, e.args[0])
            ev = (
                parser.parse_combined(payload) if kind == _STREAM else parser.parse_payload(payload)
            )
        except decode_error as e:
            sink.malformed(names[fidx], lineno, str(e), payload)
            return
        if ev is not None:
            emit(recv, ev)

    def configure(pool: ParsePool) -> None:
        aliases = [(r, s.symbol) for r, s in table.loaded.items() if s.symbol != r]
        pool.configure(list(table.loaded.values()), aliases)

    try:
        if pool is None:
            for item in stream:
                lines += 1
                one_line(*item)
                if not lines & 1023:
                    yield
        elif len(files) == 1 and _layout(files[0]) == "hft":
            # the common case (one recorder file) goes whole lines to the workers: the
            # parent only reads, frames and writes
            configure(pool)
            source = sources[0]
            first_seen: list[tuple[int, str]] = []

            def snapshot_symbol(lineno: int) -> str:
                # what ``_FileSource._snapshot_symbol`` says at this line of the file
                seen = [sym for at, sym in first_seen if at < lineno]
                return seen[0] if len(seen) == 1 else source.filename_symbol

            batches = _scan_symbols(iter_line_batches(files[0], tick), first_seen)
            emit_encoded = sink.event_encoded
            name = names[0]
            lineno = 0
            for batch, answers in pool.parse_hft(batches):
                encoded = iter(answers.encoded)
                errors = iter(answers.errors)
                for line, what, recv in zip(batch, answers.whats, answers.recvs):
                    lineno += 1
                    if what == EVENT:
                        lines += 1
                        emit_encoded(recv, next(encoded))
                    elif what == SKIPPED:
                        lines += 1
                    elif what == BLANK:
                        continue
                    elif what == LAYOUT_ERROR:
                        sink.malformed(name, lineno, next(errors), line)
                    else:
                        lines += 1
                        payload = line[line.index(b" ") + 1 :]
                        if what == MALFORMED:
                            sink.malformed(name, lineno, next(errors), payload)
                            continue
                        kind = _classify(payload)  # a new symbol, a snapshot or a raw payload
                        symbol = snapshot_symbol(lineno) if kind == _SNAPSHOT else ""
                        known = len(table.loaded)
                        one_line(recv, 0, lineno, kind, payload, symbol)
                        if len(table.loaded) != known:
                            configure(pool)
                sink.count({EVENT_TYPES[i]: n for i, n in answers.counts.items()})
                yield
        else:
            configure(pool)
            emit_encoded = sink.event_encoded
            with_payloads = ((item, item[4] if item[3] == _STREAM else None) for item in stream)
            for item, what, value in pool.parse(with_payloads):
                lines += 1
                if what == EVENT:
                    emit_encoded(item[0], value[0])
                    sink.count({EVENT_TYPES[value[1]]: 1})
                elif what == SKIPPED:
                    continue
                elif what == MALFORMED:
                    sink.malformed(names[item[1]], item[2], value, item[4])
                else:  # the parent's own parse: a snapshot, a raw payload, a new symbol
                    known = len(table.loaded)
                    one_line(*item)
                    if len(table.loaded) != known:
                        configure(pool)
                if not lines & 1023:
                    yield
    finally:
        skipped = dict(parser.skipped)
        if pool is not None:
            for k, n in pool.skipped.items():
                skipped[k] = skipped.get(k, 0) + n
        for k, n in skipped.items():
            sink.skip(k, n)
        report = sink.close(time.perf_counter() - started)
    report.lines = lines
    report.instruments = [s.symbol for s in table.loaded.values()]
    return report


def _layout(path: Path) -> str:
    """ "hft", "cf-ws" or "cf-rest": what the first non-blank line of ``path`` says."""
    for line in iter_lines(path):
        if line and not line.isspace():
            if line.startswith((b"wss://", b"ws://")):
                return "cf-ws"
            return "cf-rest" if line.startswith((b"https://", b"http://")) else "hft"
    return "hft"


def _scan_symbols(
    batches: Iterator[list[bytes]], first_seen: list[tuple[int, str]]
) -> Iterator[list[bytes]]:
    """Pass ``batches`` through, noting (line, symbol) of the symbols named in the first 2000
    lines' stream messages, as ``_FileSource._seen`` does."""
    lineno = 0
    for batch in batches:
        if lineno < 2000:
            for at, line in enumerate(batch[: 2000 - lineno], lineno + 1):
                sp = line.find(b" ")
                if sp <= 0 or not line.startswith(b'{"stream"', sp + 1):
                    continue
                m = _SYMBOL_IN_STREAM.search(line, sp + 1, sp + 65)
                if m:
                    sym = m.group(1).decode().upper()
                    if all(sym != s for _, s in first_seen):
                        first_seen.append((at, sym))
        lineno += len(batch)
        yield batch


def _decimals(text: str) -> int:
    frac = text.partition(".")[2]
    return len(frac.rstrip("0"))


def _infer_filters(files: list[Path], lines: int = 5000) -> dict[str, tuple[str, str]]:
    """symbol -> (tickSize, stepSize) guessed from the decimals in each file's first lines.

    The guess (10^-decimals seen) is a grid every recorded value lies on, which is what a
    replay needs; the real tick can be coarser (e.g. 0.5). Use it only when no exchangeInfo
    of the recording's date is at hand: filters change over the years.
    """
    price_dec: dict[str, int] = {}
    qty_dec: dict[str, int] = {}

    def see(sym: str, prices: list[str], qtys: list[str]) -> None:
        price_dec[sym] = max([price_dec.get(sym, 0), *map(_decimals, prices)])
        qty_dec[sym] = max([qty_dec.get(sym, 0), *map(_decimals, qtys)])

    for f in files:
        for n, line in enumerate(iter_lines(f)):
            if n >= lines:
                break
            start = line.find(b"{")
            if start < 0:
                continue
            try:
                msg = msgspec.json.decode(line[start:])
            except msgspec.DecodeError:
                continue
            data = msg.get("data", msg) if isinstance(msg, dict) else None
            if not isinstance(data, dict) or "s" not in data:
                continue
            sym = str(data["s"])
            e = data.get("e")
            if e == "bookTicker":
                see(sym, [data["b"], data["a"]], [data["B"], data["A"]])
            elif e == "depthUpdate":
                levels = data.get("b", []) + data.get("a", [])
                see(sym, [p for p, _ in levels], [q for _, q in levels])
            elif e in ("trade", "aggTrade"):
                see(sym, [data["p"]], [data["q"]])
    return {
        s: (
            format(Decimal(1).scaleb(-price_dec[s]), "f"),
            format(Decimal(1).scaleb(-qty_dec[s]), "f"),
        )
        for s in price_dec
    }


def _ensure(parser: MarketParser, table: InstrumentTable, sink: ImportSink, symbol: str) -> None:
    if not parser.knows(symbol):
        spec = table.get(symbol)
        parser.add_instrument(spec)
        if spec.symbol != symbol:
            parser.alias(symbol, spec.symbol)
        sink.instrument(spec)


def _prescan_symbols(files: list[Path]) -> list[str]:
    """Symbols named in each file's first lines (and its name), in a stable order."""
    found: list[str] = []
    for f in files:
        m = _FILENAME_SYMBOL.match(f.name)
        names = [m.group(1).upper()] if m else []
        for n, line in enumerate(iter_lines(f)):
            if n >= 200:
                break
            pattern = _SYMBOL_IN_URL if n == 0 and line.startswith(b"ws") else _SYMBOL_IN_STREAM
            for hit in pattern.finditer(line[:4096] if n == 0 else line[:64]):
                names.append(hit.group(1).decode().upper())
        for s in names:
            if s not in found:
                found.append(s)
    return found
