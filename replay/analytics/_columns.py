"""Column builders: append during the read loop, hand over to Arrow without copying."""

from __future__ import annotations

from array import array
from collections.abc import Sequence
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

__all__ = ["IntColumns", "decimal_column", "int_column", "time_column"]


class IntColumns:
    """Named ``array('q')`` columns of one table (64-bit ints: cheap appends, zero-copy to Arrow)."""

    def __init__(self, *names: str) -> None:
        self.cols: dict[str, array[int]] = {n: array("q") for n in names}

    def __getitem__(self, name: str) -> array[int]:
        return self.cols[name]

    def __len__(self) -> int:
        return len(next(iter(self.cols.values())))

    def arrow(self, rows: tuple[int, int] | None = None) -> dict[str, pa.Array]:
        """The columns as Arrow arrays (``rows``: a copy of the rows ``[start, stop)``)."""
        return {n: int_column(c, rows) for n, c in self.cols.items()}


def int_column(values: array[int] | Sequence[int], rows: tuple[int, int] | None = None) -> pa.Array:
    """``values`` as an int64 array. An ``array('q')`` is shared, not copied (it then cannot
    grow while the Arrow array lives), unless ``rows`` is given: a copy of ``values[start:stop]``
    (for columns still being appended to)."""
    if rows is not None:
        values = values[rows[0] : rows[1]]
    if isinstance(values, array):
        return pa.Array.from_buffers(pa.int64(), len(values), [None, pa.py_buffer(values)])
    return pa.array(values, pa.int64())


def time_column(ns: pa.Array) -> pa.Array:
    """Nanoseconds since the epoch as a microsecond TIMESTAMP (what DuckDB's date functions take)."""
    return pc.divide(ns, 1000).cast(pa.timestamp("us"))


def decimal_column(units: pa.Array, factor: Any, decimals: int) -> pa.Array:
    """``units * factor`` read as a DECIMAL(18, decimals): ``factor`` turns ticks/lots/minor units
    into integers of 10**-decimals (an int, or one per row for journals of several instruments).
    The product's buffer is reinterpreted, not converted: exact and free."""
    raw = units if isinstance(factor, int) and factor == 1 else pc.multiply(units, factor)
    if isinstance(raw, pa.ChunkedArray):
        raw = raw.combine_chunks()
    if raw.offset:
        raw = pa.concat_arrays([raw])  # a copy starting at offset 0
    validity, data = raw.buffers()[:2]
    return pa.Array.from_buffers(
        pa.decimal64(18, decimals), len(raw), [validity, data], null_count=raw.null_count
    )
