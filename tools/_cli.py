"""The ``replaymm`` command group and its error handling (commands live in ``_cmd_*.py``).

Every command prints what it did and where its output is. Errors are one line saying what
is wrong and what to do (``--debug`` shows the traceback). Heavy imports happen inside the
commands so ``replaymm --help`` and short commands start fast.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, NoReturn

import click

from ._console import err_console

__all__ = ["CONTEXT", "fail", "force_option", "main", "out_option"]

CONTEXT = {"help_option_names": ["-h", "--help"], "max_content_width": 100}


class _Fail(click.ClickException):
    """An error already phrased for the trader."""

    def show(self, file: Any = None) -> None:
        err_console.print(f"[bold red]error:[/] {self.message}")


def fail(message: str, code: int = 2) -> NoReturn:
    """Stop the command with ``error: message`` (one line) and exit status ``code``."""
    e = _Fail(message)
    e.exit_code = code
    raise e


class _Group(click.Group):
    """Turns the project's known errors into one clear line."""

    def invoke(self, ctx: click.Context) -> Any:
        from adapters.binance import UnknownSymbol
        from engine import ConfigError, EngineError
        from journal import JournalError
        from replay import ReplayError

        from ._import_common import ImportFailed

        known = (
            ConfigError,
            JournalError,
            ReplayError,
            ImportFailed,
            EngineError,
            UnknownSymbol,
            FileNotFoundError,
            PermissionError,
            IsADirectoryError,
            NotADirectoryError,
        )
        passed = (
            click.ClickException,
            click.exceptions.Exit,
            click.exceptions.Abort,
            KeyboardInterrupt,
        )
        try:
            return super().invoke(ctx)
        except BaseException as raised:
            if ctx.meta.get("debug"):
                raise
            # an error inside trio arrives wrapped in a group (one per nursery it crossed)
            e = raised
            while isinstance(e, BaseExceptionGroup) and len(e.exceptions) == 1:
                e = e.exceptions[0]
            if isinstance(e, passed):
                raise e from None
            if isinstance(e, known):
                fail(str(e) if not isinstance(e, OSError) else f"{e.strerror}: {e.filename}")
            if not isinstance(e, Exception):
                raise
            fail(f"unexpected {type(e).__name__}: {e} (rerun with --debug for the traceback)", 1)


@click.group(cls=_Group, context_settings=CONTEXT)
@click.option("--debug", is_flag=True, help="Show full tracebacks instead of one-line errors.")
@click.version_option(package_name="replaymm")
@click.pass_context
def main(ctx: click.Context, debug: bool) -> None:
    """replaymm: a deterministic market-making engine for Binance USDⓈ-M / USDC-M perpetuals.

    Every market, order and timer event is written to a journal and applied by a pure
    reducer, so any run can be replayed bit for bit, backtested and queried with SQL.

    Start with `replaymm demo`. Typical work:

    \b
      replaymm import binance-ws btcusdt_20240808.gz --out runs/btc
      replaymm backtest configs/simple-btcusdt.yaml --data runs/btc --out runs/bt
      replaymm replay runs/bt --verify
      replaymm replay runs/bt --until 5000 --show
    """
    ctx.meta["debug"] = debug


out_option = click.option(
    "--out",
    "-o",
    type=click.Path(path_type=Path),
    required=True,
    help="The journal directory to create.",
)
force_option = click.option("--force", is_flag=True, help="Replace an existing journal at --out.")
