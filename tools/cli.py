"""``replaymm``: the command line.

Every command prints what it did and where its output is. Errors are one line saying what
is wrong and what to do (``--debug`` shows the traceback). Heavy imports happen inside the
commands so ``replaymm --help`` and short commands start fast.
"""

from __future__ import annotations

from pathlib import Path

import click

from . import _cmd_analytics, _cmd_data, _cmd_exchange, _cmd_inspect, _cmd_live, _cmd_run  # noqa: F401 - they register their commands
from ._cli import CONTEXT, main

__all__ = ["main"]

# ---------------------------------------------------------------------------------------------
# demo


@main.command(context_settings=CONTEXT)
@click.option(
    "--out",
    type=click.Path(path_type=Path),
    default=Path("runs/demo"),
    show_default=True,
    help="Directory for the demo's journals.",
)
@click.option(
    "--seconds",
    type=click.FloatRange(1, 3600),
    default=45,
    show_default=True,
    help="How long the grid trades before the clean stop.",
)
@click.option(
    "--seed", type=int, default=5, show_default=True, help="Seed of the synthetic market."
)
def demo(out: Path, seconds: float, seed: int) -> None:
    """Run the embedded default: the grid live against the local exchange, no keys, no network.

    Starts the local exchange (a seeded synthetic BTCUSDT market) in-process on 127.0.0.1,
    runs configs/grid-btcusdt.yaml live against it through the same adapter and runtime as
    `replaymm run` with a live status line, stops cleanly (orders cancelled), prints the
    summary and a SQL result from the journal, verifies it replays bit for bit and says
    where the journals are.
    """
    from .demo import run_demo

    run_demo(out, seconds=seconds, seed=seed)


# ---------------------------------------------------------------------------------------------
# bench


@main.command(context_settings=CONTEXT)
@click.option(
    "--data",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="Recorded session to measure on (default: ../shared/data/.../btcusdt_20240808.gz).",
)
@click.option(
    "--events",
    "min_events",
    type=click.IntRange(10_000),
    default=1_000_000,
    show_default=True,
    help="Repeat the session until the journal holds at least this many events.",
)
@click.option(
    "--runs",
    type=click.IntRange(1, 50),
    default=5,
    show_default=True,
    help="Repetitions per figure; the median is reported.",
)
@click.option(
    "--only",
    multiple=True,
    help="Run only these sections (import, journal, replay, step, backtest, grid, analytics, live, memory).",
)
def bench(data: Path | None, min_events: int, runs: int, only: tuple[str, ...]) -> None:
    """Measure the performance figures (medians of repeated runs, with ratios)."""
    from .bench import run_bench

    run_bench(data, min_events=min_events, runs=runs, only=set(only))


if __name__ == "__main__":  # pragma: no cover
    main()
