"""What every importer shares: instrument lookup, the output journal, malformed-line reports."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

import msgspec

from adapters.binance import builtin_instrument, load_exchange_info
from engine import FORMAT_VERSION, Event, InstrumentLoaded, JournalHeader, registry_hash
from journal import Durability, JournalWriter, code_digest, code_version

__all__ = ["ImportFailed", "ImportReport", "ImportSink", "InstrumentTable", "Malformed", "to_ns"]

#: malformed lines shown in full in the report; the rest are only counted
EXAMPLES_KEPT = 5


class ImportFailed(Exception):
    """The import cannot go on; the message says why and what to do."""


class Malformed(msgspec.Struct):
    file: str
    line: int
    error: str
    text: str


class ImportReport(msgspec.Struct):
    out: str
    files: list[str]
    lines: int = 0
    events: int = 0
    by_type: dict[str, int] = {}
    skipped: dict[str, int] = {}
    malformed: int = 0
    examples: list[Malformed] = []
    seconds: float = 0.0
    first_recv_ns: int = 0
    last_recv_ns: int = 0
    instruments: list[str] = []

    @property
    def lines_per_s(self) -> float:
        return self.lines / self.seconds if self.seconds else 0.0


def to_ns(value: int) -> int:
    """A Unix timestamp in s, ms, µs or ns -> ns (the unit is told by its magnitude)."""
    if value >= 10**17:
        return value
    if value >= 10**14:
        return value * 1_000
    if value >= 10**11:
        return value * 1_000_000
    return value * 1_000_000_000


class InstrumentTable:
    """Symbol -> InstrumentLoaded, numbering instruments in the order they are first asked for."""

    def __init__(
        self,
        exchange_info: Iterable[Path] = (),
        overrides: dict[str, tuple[str, str]] | None = None,
        renames: dict[str, str] | None = None,
    ) -> None:
        try:
            self._tables = [load_exchange_info(p) for p in exchange_info]
        except ValueError as e:
            raise ImportFailed(str(e)) from None
        #: symbol -> (tickSize, stepSize) that replace the table's (from --infer-filters)
        self.overrides = overrides or {}
        #: recorded symbol -> the symbol (and rules) it is imported as (--as)
        self.renames = renames or {}
        self.loaded: dict[str, InstrumentLoaded] = {}

    def get(self, symbol: str) -> InstrumentLoaded:
        spec = self.loaded.get(symbol)
        if spec is None:
            inst = len(self.loaded)
            target = self.renames.get(symbol, symbol)
            if target in self.overrides:
                spec = self._inferred(inst, target, *self.overrides[target])
            else:
                try:
                    spec = builtin_instrument(inst, target, self._tables)
                except KeyError:
                    raise ImportFailed(
                        f"no tick/step size known for {target}: pass --exchange-info with a saved "
                        "GET /fapi/v1/exchangeInfo answer that lists it, or --infer-filters"
                    ) from None
            self.loaded[symbol] = spec
        return spec

    def _inferred(self, inst: int, symbol: str, tick: str, step: str) -> InstrumentLoaded:
        try:
            base = builtin_instrument(inst, symbol, self._tables)
        except KeyError:
            quote = next((q for q in ("USDT", "USDC", "BUSD") if symbol.endswith(q)), "USDT")
            base = InstrumentLoaded(
                inst, symbol, symbol[: -len(quote)], quote, quote, tick, step, 1, 10**9, 5 * 10**8
            )
        return msgspec.structs.replace(
            base,
            tick_size=tick,
            step_size=step,
            min_qty=1,
            max_qty=10**12,
            min_price=0,
            max_price=0,
        )


class ImportSink:
    """The output journal of an import, plus the counters of its report."""

    def __init__(
        self,
        out: Path | None,
        *,
        instruments: list[InstrumentLoaded],
        source: dict[str, Any],
        strict: bool,
        overwrite: bool = False,
        writer: Any = None,
    ) -> None:
        """``writer``: something with ``append_event``/``append_encoded``/``close`` instead of
        a new journal at ``out`` (an in-process stream to a backtest)."""
        self.header = header = JournalHeader(
            format_version=FORMAT_VERSION,
            registry_hash=registry_hash(),
            code_version=code_version(),
            code_digest=code_digest(),
            kind="market-data",
            config={},
            instruments=instruments,
            source=source,
        )
        if writer is None:
            assert out is not None
            writer = JournalWriter.create(
                out, header, durability=Durability("none"), overwrite=overwrite
            )
        self.writer = writer
        self.report = ImportReport(str(out or ""), [str(f) for f in source.get("files", [])])
        self.strict = strict
        self._announced: set[int] = set()
        self._pending_instruments = {i.inst: i for i in instruments}
        self._by_type: dict[type, int] = {}
        self._append = writer.append_event
        self._append_encoded = writer.append_encoded
        self._last_recv_ns = 0

    def instrument(self, spec: InstrumentLoaded) -> None:
        """Make sure ``spec`` is journaled before any event that refers to it."""
        if spec.inst not in self._announced:
            self._pending_instruments[spec.inst] = spec

    def event(self, recv_ns: int, ev: Event) -> None:
        # called once per imported event: the writer's method is looked up once (in
        # __init__) and the last receive time goes to the report only at ``close``
        if self._pending_instruments:
            self._announce(recv_ns)
        self._append(recv_ns, ev)
        t = type(ev)
        by_type = self._by_type
        by_type[t] = by_type.get(t, 0) + 1
        self._last_recv_ns = recv_ns

    def event_encoded(self, recv_ns: int, encoded: bytes) -> None:
        """``event`` for an event already msgpack-encoded (by a parse worker process), whose
        type the caller counts (``count``). The writer puts the bytes into the record as they
        are, so the journal is the same as if the event object had been appended."""
        if self._pending_instruments:
            self._announce(recv_ns)
        self._append_encoded(recv_ns, encoded)
        self._last_recv_ns = recv_ns

    def count(self, by_type: dict[type, int]) -> None:
        for t, n in by_type.items():
            self._by_type[t] = self._by_type.get(t, 0) + n

    def _announce(self, recv_ns: int) -> None:
        for inst, spec in sorted(self._pending_instruments.items()):
            self._append(recv_ns, spec)
            self._announced.add(inst)
            self._count(spec)
        self._pending_instruments.clear()
        self.report.first_recv_ns = self.report.first_recv_ns or recv_ns

    def _count(self, ev: Event) -> None:
        t = type(ev)
        self._by_type[t] = self._by_type.get(t, 0) + 1

    def skip(self, kind: str, n: int = 1) -> None:
        self.report.skipped[kind] = self.report.skipped.get(kind, 0) + n

    def malformed(self, file: str, line: int, error: str, text: bytes | str) -> None:
        r = self.report
        r.malformed += 1
        if isinstance(text, bytes):
            text = text[:160].decode("utf-8", "replace")
        if len(r.examples) < EXAMPLES_KEPT:
            r.examples.append(Malformed(file, line, error, text[:160]))
        if self.strict:
            raise ImportFailed(f"{file}:{line}: {error} (stopping because of --strict)")

    def close(self, seconds: float) -> ImportReport:
        self.writer.close()
        r = self.report
        if self._last_recv_ns:
            r.last_recv_ns = self._last_recv_ns
        r.by_type = {t.__name__: n for t, n in self._by_type.items()}
        r.events = sum(self._by_type.values())
        r.seconds = seconds
        if r.malformed and r.events == r.by_type.get("InstrumentLoaded", 0):
            first = r.examples[0]
            raise ImportFailed(
                f"no line could be imported ({r.malformed:,} malformed; first: {first.file}:"
                f"{first.line}: {first.error}); is this the right file and command?"
            )
        return r
