"""Parse recorded stream lines in worker processes while the importer reads and writes.

Why: parsing is most of an import's time (a real depth message carries ~90 price levels, each
an exact decimal-to-ticks conversion), and it is the only part that does not depend on the
lines before it. Workers turn batches of combined-stream JSON lines into msgpack-encoded
events; the parent keeps everything that has an order: the merge by receive time, sequence
numbers, instrument announcements, malformed-line reports and counters. So the journal is
byte-identical to a one-process import (a test compares them).

Anything a worker cannot settle alone (a symbol it does not know yet, a REST snapshot line, a
raw payload) comes back as "do it in the parent", which then runs the one-process code for
that line. When the parent learns a new instrument, later batches carry the new set.

The pool is forked before the importer starts its reader threads (forking a process with
threads running is unsafe), so a worker starts in milliseconds with the code already loaded.
"""

from __future__ import annotations

import multiprocessing
import os
from collections import deque
from collections.abc import Iterable, Iterator
from typing import Any, NamedTuple

import msgspec

from adapters.binance import MarketParser, UnknownSymbol
from engine import EVENT_TYPES, InstrumentLoaded

from ._import_common import to_ns

__all__ = [
    "BLANK",
    "EVENT",
    "IN_PARENT",
    "LAYOUT_ERROR",
    "MALFORMED",
    "SKIPPED",
    "HftAnswers",
    "ParsePool",
    "default_jobs",
]

# what a worker says about one line
EVENT, SKIPPED, MALFORMED, IN_PARENT, BLANK, LAYOUT_ERROR = 0, 1, 2, 3, 4, 5
_BLANK = (BLANK, 0, None)
_LAYOUT = "no '<timestamp> <json>' layout"

BATCH_LINES = 500
#: files smaller than this (compressed) import in one process: forking costs more than it saves
MIN_PARALLEL_BYTES = 1 << 20

_TYPE_INDEX = {t: i for i, t in enumerate(EVENT_TYPES)}
_DECODE_ERRORS = (msgspec.DecodeError, msgspec.ValidationError, ValueError)

# -- in the worker -----------------------------------------------------------------------

#: (setup version, parser) of this worker process
_worker: tuple[int, MarketParser] | None = None
_encode = msgspec.msgpack.Encoder().encode

Setup = tuple[int, list[InstrumentLoaded], list[tuple[str, str]]]
Answer = tuple[int, Any]


def _parser_for(setup: Setup) -> MarketParser:
    global _worker
    version, instruments, aliases = setup
    if _worker is None or _worker[0] != version:
        parser = MarketParser(instruments)
        for recorded, symbol in aliases:
            parser.alias(recorded, symbol)
        _worker = (version, parser)
    return _worker[1]


def _parse_batch(setup: Setup, payloads: list[bytes | None]) -> tuple[list[Answer], dict[str, int]]:
    parser = _parser_for(setup)
    before = dict(parser.skipped)
    parse = parser.parse_combined
    out: list[Answer] = []
    append = out.append
    for payload in payloads:
        if payload is None:
            append((IN_PARENT, None))
            continue
        try:
            ev = parse(payload)
        except UnknownSymbol:
            append((IN_PARENT, None))
            continue
        except _DECODE_ERRORS as e:
            append((MALFORMED, str(e)))
            continue
        if ev is None:
            append((SKIPPED, None))
        else:
            append((EVENT, (_encode(ev), _TYPE_INDEX[type(ev)])))
    skipped = {k: n - before.get(k, 0) for k, n in parser.skipped.items() if n != before.get(k, 0)}
    return out, skipped


class HftAnswers(NamedTuple):
    """What the workers say about a batch of hftbacktest lines, in columns (a column of small
    objects pickles several times cheaper than a tuple per line)."""

    whats: bytes  #: one of EVENT, SKIPPED, ... per line
    recvs: list[int]  #: receive time (ns) per line (0 for blank and layout errors)
    encoded: list[bytes]  #: the msgpack-encoded event of each EVENT line, in order
    errors: list[str]  #: the message of each MALFORMED and LAYOUT_ERROR line, in order
    counts: dict[int, int]  #: events per index in EVENT_TYPES
    skipped: dict[str, int]  #: messages of kinds not imported, per kind


def _parse_hft_lines(setup: Setup, lines: list[bytes]) -> HftAnswers:
    """Whole lines of an hftbacktest file (``<recv ts> <json>``) -> ``HftAnswers``.

    The same decisions as the one-process loop in ``import_ws._FileSource.items``.
    """
    parser = _parser_for(setup)
    before = dict(parser.skipped)
    parse = parser.parse_combined
    encode = _encode
    whats = bytearray()
    what = whats.append
    recvs: list[int] = []
    recv_of = recvs.append
    encoded: list[bytes] = []
    keep = encoded.append
    errors: list[str] = []
    counts: dict[type, int] = {}
    for line in lines:
        if not line or line.isspace():
            what(BLANK)
            recv_of(0)
            continue
        try:
            sp = line.index(b" ")
            recv = int(line[:sp])
        except ValueError:
            what(LAYOUT_ERROR)
            recv_of(0)
            errors.append(_LAYOUT)
            continue
        if recv < 10**17:  # not ns already (the 2023 files are in µs)
            recv = to_ns(recv)
        recv_of(recv)
        payload = line[sp + 1 :]
        if not payload.startswith(b'{"stream"'):  # a REST snapshot or a raw payload
            what(IN_PARENT)
            continue
        try:
            ev = parse(payload)
        except UnknownSymbol:
            what(IN_PARENT)
            continue
        except _DECODE_ERRORS as e:
            what(MALFORMED)
            errors.append(str(e))
            continue
        if ev is None:
            what(SKIPPED)
        else:
            what(EVENT)
            keep(encode(ev))
            t = type(ev)
            counts[t] = counts.get(t, 0) + 1
    skipped = {k: n - before.get(k, 0) for k, n in parser.skipped.items() if n != before.get(k, 0)}
    return HftAnswers(
        bytes(whats),
        recvs,
        encoded,
        errors,
        {_TYPE_INDEX[t]: n for t, n in counts.items()},
        skipped,
    )


# -- in the parent -----------------------------------------------------------------------


def default_jobs(total_bytes: int) -> int:
    """Worker processes for an import of ``total_bytes`` of files: 0 means one process."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    if (cores or 1) < 2 or total_bytes < MIN_PARALLEL_BYTES:
        return 0
    if "fork" not in multiprocessing.get_all_start_methods():
        return 0  # the workers are forked (see the module's docstring); one process elsewhere
    return cores or 1


class ParsePool:
    """Worker processes that parse stream lines in order-preserving batches."""

    def __init__(self, jobs: int) -> None:
        ctx = multiprocessing.get_context("fork")
        self._pool = ctx.Pool(jobs)
        self._window = 2 * jobs + 2  # batches in flight: enough to keep every worker busy
        self._setup: Setup = (0, [], [])
        self.skipped: dict[str, int] = {}

    def configure(
        self, instruments: list[InstrumentLoaded], aliases: list[tuple[str, str]]
    ) -> None:
        """The instruments the workers parse (again after the parent learns a new one)."""
        self._setup = (self._setup[0] + 1, list(instruments), list(aliases))

    def parse(self, items: Iterable[tuple[Any, bytes | None]]) -> Iterator[tuple[Any, int, Any]]:
        """``(item, payload or None)`` -> ``(item, what, value)`` in the same order.

        ``what`` is EVENT (value = (encoded event, index in EVENT_TYPES)), SKIPPED, MALFORMED
        (value = the error) or IN_PARENT (the caller handles the item itself).
        """
        in_flight: deque[tuple[list[Any], Any]] = deque()
        batch_items: list[Any] = []
        batch_payloads: list[bytes | None] = []
        for item, payload in items:
            batch_items.append(item)
            batch_payloads.append(payload)
            if len(batch_items) >= BATCH_LINES:
                in_flight.append(
                    (
                        batch_items,
                        self._pool.apply_async(_parse_batch, (self._setup, batch_payloads)),
                    )
                )
                batch_items, batch_payloads = [], []
                if len(in_flight) >= self._window:
                    yield from self._collect(*in_flight.popleft())
        if batch_items:
            in_flight.append(
                (batch_items, self._pool.apply_async(_parse_batch, (self._setup, batch_payloads)))
            )
        while in_flight:
            yield from self._collect(*in_flight.popleft())

    def parse_hft(self, batches: Iterable[list[bytes]]) -> Iterator[tuple[list[bytes], HftAnswers]]:
        """Batches of whole hftbacktest lines -> (the lines, what the workers said of them)."""
        in_flight: deque[tuple[list[bytes], Any]] = deque()
        for lines in batches:
            in_flight.append(
                (lines, self._pool.apply_async(_parse_hft_lines, (self._setup, lines)))
            )
            if len(in_flight) >= self._window:
                yield self._answers(*in_flight.popleft())
        while in_flight:
            yield self._answers(*in_flight.popleft())

    def _answers(self, lines: list[bytes], pending: Any) -> tuple[list[bytes], HftAnswers]:
        answers: HftAnswers = pending.get()
        for k, n in answers.skipped.items():
            self.skipped[k] = self.skipped.get(k, 0) + n
        return lines, answers

    def _collect(self, items: list[Any], pending: Any) -> Iterator[tuple[Any, int, Any]]:
        answers, skipped = pending.get()
        for k, n in skipped.items():
            self.skipped[k] = self.skipped.get(k, 0) + n
        for item, (what, value) in zip(items, answers):
            yield item, what, value

    def close(self) -> None:
        self._pool.terminate()
        self._pool.join()

    def __enter__(self) -> ParsePool:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
