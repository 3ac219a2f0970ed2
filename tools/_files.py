"""Reading recorded data files: gzip or plain, line by line, fast, with progress hooks."""

from __future__ import annotations

import hashlib
import queue
import threading
import zlib
from collections.abc import Callable, Iterator
from pathlib import Path
from types import ModuleType

# ISA-L's inflate is ~2.4x faster than zlib's on the recorded files (0.03 s against 0.07 s for
# btcusdt_20240808.gz, measured) with the same API; zlib stays the fallback where no wheel
# exists
_inflater: ModuleType
try:
    from isal import isal_zlib as _inflater
except ImportError:  # pragma: no cover - isal is a dependency; a platform may lack a wheel
    _inflater = zlib

__all__ = ["file_digest", "iter_line_batches", "iter_lines"]

#: compressed bytes read (and inflated) at a time: ~1 MB of lines from a recorded file, so
#: an import's parse workers get a batch each early and the pipeline drains in small steps
#: (1 MB compressed, ~7.6 MB of lines, left 2 workers idle at the ends: 191k -> 217k lines/s)
_CHUNK = 1 << 17
_FIRST_CHUNK = 1 << 14
_DONE = b""


def _inflate_chunks(
    path: Path,
    out: queue.Queue[tuple[int, bytes] | bytes | BaseException],
    stop: threading.Event,
) -> None:
    """Producer thread: read and decompress ``path`` in chunks (zlib releases the GIL)."""
    try:
        with open(path, "rb") as f:
            gz = f.read(2) == b"\x1f\x8b"
            f.seek(0)
            inflate = _inflater.decompressobj(wbits=31) if gz else None
            # small chunks first, so a consumer that needs only the first lines (the symbol
            # prescan) gets them without waiting for a whole 1 MB chunk to inflate
            chunk = _FIRST_CHUNK
            while not stop.is_set() and (raw := f.read(chunk)):
                chunk = min(chunk * 4, _CHUNK)
                size = len(raw)
                if inflate is not None:
                    data = inflate.decompress(raw)
                    # concatenated gzip members: start a new decompressor on the leftovers
                    while inflate.eof and inflate.unused_data:
                        leftover = inflate.unused_data
                        inflate = _inflater.decompressobj(wbits=31)
                        data += inflate.decompress(leftover)
                else:
                    data = raw
                out.put((size, data))
            if inflate is not None and (tail := inflate.flush()):
                out.put((0, tail))
        out.put(_DONE)
    except BaseException as e:  # handed to the consumer, which re-raises it
        out.put(e)


def iter_line_batches(
    path: Path, on_bytes: Callable[[int], None] | None = None
) -> Iterator[list[bytes]]:
    """Lines of ``path`` without their newline, in lists (one per chunk); gzip is detected by
    its magic bytes.

    A helper thread reads and decompresses chunks ahead of the consumer (zlib runs
    without the GIL, so this overlaps with parsing on a second core). ``on_bytes`` is told
    how many file bytes each chunk consumed, to drive a progress bar.
    """
    chunks: queue.Queue[tuple[int, bytes] | bytes | BaseException] = queue.Queue(maxsize=8)
    # set when the consumer stops early (the symbol prescan reads 200 lines): without it the
    # producer would inflate the whole file while the consumer drains the queue
    stop = threading.Event()
    worker = threading.Thread(target=_inflate_chunks, args=(path, chunks, stop), daemon=True)
    worker.start()
    rest = b""
    try:
        while True:
            item = chunks.get()
            if isinstance(item, BaseException):
                raise item
            if not isinstance(item, tuple):
                break
            size, data = item
            if on_bytes is not None:
                on_bytes(size)
            if rest:
                data = rest + data
            lines = data.split(b"\n")
            rest = lines.pop()
            if lines:
                yield lines
        if rest:
            yield [rest]
    finally:
        # a consumer that stops early must not leave the producer blocked on a full queue
        stop.set()
        while worker.is_alive():
            try:
                chunks.get_nowait()
            except queue.Empty:
                worker.join(0.01)


def iter_lines(path: Path, on_bytes: Callable[[int], None] | None = None) -> Iterator[bytes]:
    """Lines of ``path`` without their newline (see ``iter_line_batches``)."""
    for lines in iter_line_batches(path, on_bytes):
        yield from lines


def file_digest(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()[:16]
