"""Console helpers: one rich console, progress bars, error lines, money formatting."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from decimal import Decimal

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeRemainingColumn,
    TransferSpeedColumn,
)

__all__ = ["console", "err_console", "fmt_money", "fmt_rate", "progress_bytes", "progress_count"]


def _console(stderr: bool = False) -> Console:
    c = Console(stderr=stderr, highlight=False, soft_wrap=True)
    if not c.is_terminal:  # piped or captured: don't squeeze tables into 80 columns
        c = Console(stderr=stderr, highlight=False, soft_wrap=True, width=140)
    return c


console = _console()
err_console = _console(stderr=True)


@contextlib.contextmanager
def progress_bytes(label: str, total: int, enabled: bool = True) -> Iterator[Callable[[int], None]]:
    """A progress bar over ``total`` bytes; yields the ``advance(n)`` callback."""
    if not enabled or not console.is_terminal:
        yield lambda n: None
        return
    with Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        TransferSpeedColumn(),
        TimeRemainingColumn(),
        console=console,
        transient=True,
    ) as p:
        task = p.add_task(label, total=total)
        yield lambda n: p.advance(task, n)


@contextlib.contextmanager
def progress_count(
    label: str, total: int | None, enabled: bool = True
) -> Iterator[Callable[[int], None]]:
    """A progress bar over a count; the callback receives the *absolute* count done."""
    if not enabled or not console.is_terminal:
        yield lambda n: None
        return
    with Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeRemainingColumn(),
        console=console,
        transient=True,
    ) as p:
        task = p.add_task(label, total=total)
        yield lambda n: p.update(task, completed=n)


def fmt_money(value: Decimal, places: int = 4) -> str:
    q = Decimal(1).scaleb(-places)
    return f"{value.quantize(q):,}"


def fmt_rate(value: float) -> str:
    if value >= 1e6:
        return f"{value / 1e6:.2f} M"
    if value >= 1e3:
        return f"{value / 1e3:.0f} k"
    return f"{value:.0f}"
