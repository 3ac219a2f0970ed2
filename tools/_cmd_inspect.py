"""``replaymm replay`` and ``replaymm journal``: look inside journals, check them, mend them."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import click

from ._cli import CONTEXT, _Group, fail, main
from ._console import console, err_console, fmt_rate

# ---------------------------------------------------------------------------------------------
# replay


@main.command(context_settings=CONTEXT)
@click.argument(
    "journal_path", metavar="JOURNAL", type=click.Path(exists=True, file_okay=False, path_type=Path)
)
@click.option(
    "--verify",
    is_flag=True,
    help="Re-run the reducer and compare its intents with the journal's, byte for byte.",
)
@click.option(
    "--until", type=click.IntRange(min=1), help="Replay up to and including this sequence number."
)
@click.option(
    "--show", is_flag=True, help="Print book top, open orders, position and strategy state."
)
@click.option("--json", "as_json", is_flag=True, help="With --show: print JSON.")
@click.option(
    "--depth",
    type=click.IntRange(1, 100),
    default=5,
    show_default=True,
    help="Book levels shown per side.",
)
def replay(
    journal_path: Path, verify: bool, until: int | None, show: bool, as_json: bool, depth: int
) -> None:
    """Replay a journal: verify it bit for bit, or show the engine's state at any point."""
    from replay import describe_engine, replay_until
    from replay import verify as run_verify

    if not verify and not show:
        fail("say what to do: --verify, or --show (optionally with --until SEQ)")
    if verify:
        if until is not None:
            fail("--verify checks the whole journal; use --until with --show")
        from ._console import progress_count

        with progress_count("verifying", None) as tick:
            result = run_verify(journal_path, progress=tick)
        if result.torn:
            err_console.print(f"[yellow]note:[/] {result.torn}")
        if not result.code_digest_matches:
            err_console.print(
                "[yellow]note:[/] the journal was written by different engine code (digest differs)"
            )
        if result.divergence is not None:
            console.print(
                f"[bold red]DIVERGED[/] after {result.events:,} events: {result.divergence.describe()}"
            )
            sys.exit(1)
        console.print(
            f"[bold green]identical:[/] {result.events:,} events, {result.intents:,} intents "
            f"({result.seconds:.2f} s, {fmt_rate(result.events_per_s)} events/s)"
        )
    if show:
        engine, _header = replay_until(journal_path, until)
        state = describe_engine(engine, depth)
        if until is not None and engine.state.seq < until:
            err_console.print(f"[yellow]note:[/] the journal ends at seq {engine.state.seq}")
        if as_json:
            import msgspec

            console.print_json(msgspec.json.encode(state).decode())
        else:
            _print_state(state)


def _print_state(state: dict[str, Any]) -> None:
    from rich.table import Table

    console.print(
        f"[bold]state at seq {state['seq']:,}[/] (session {state['session']}, engine time {state['now_ns']} ns)"
    )
    for ins in state["instruments"]:
        book, top, pos = ins["book"], ins["top"], ins["position"]
        console.print(
            f"\n[bold]{ins['symbol']}[/]  book {book['sync']} (update id {book['last_update_id']}, gaps {book['gaps']})"
        )
        console.print(
            f"  top: bid {top['bid']} x {top['bid_qty']}   ask {top['ask']} x {top['ask_qty']}"
        )
        t = Table(show_edge=False, box=None)
        t.add_column("bid qty", justify="right")
        t.add_column("bid", justify="right")
        t.add_column("ask", justify="right")
        t.add_column("ask qty", justify="right")
        for i in range(max(len(book["bids"]), len(book["asks"]))):
            b = book["bids"][i] if i < len(book["bids"]) else ("", "")
            a = book["asks"][i] if i < len(book["asks"]) else ("", "")
            t.add_row(b[1], b[0], a[0], a[1])
        console.print(t)
        if pos:
            console.print(
                f"  position {pos['qty']}  realized {pos['realized']}  fees {pos['fees']}  funding {pos['funding']}  fills {pos['fills']}"
            )
        console.print(f"  open orders: {len(ins['open_orders'])}")
        for o in ins["open_orders"]:
            console.print(
                f"    {o['client_id']:<24} {o['side']:<4} {o['qty']} @ {o['price']}  {o['status']}"
                + (" cancel pending" if o["cancel_pending"] else "")
            )
    console.print("\n[bold]strategy[/]")
    for k, v in state["strategy"].items():
        console.print(f"  {k}: {v}")
    console.print("[bold]counters[/] " + ", ".join(f"{k} {v:,}" for k, v in state["stats"].items()))


# ---------------------------------------------------------------------------------------------
# journal


@main.group(cls=_Group, context_settings=CONTEXT)
def journal() -> None:
    """Check a journal's integrity, or recover one cut by a crash."""


@journal.command("check", context_settings=CONTEXT)
@click.argument("path", type=click.Path(exists=True, file_okay=False, path_type=Path))
def journal_check(path: Path) -> None:
    """Read every record: framing, CRC, decoding, sequence continuity.

    Exit status: 0 clean, 1 corrupt, 3 torn tail (repairable with `journal repair`).
    """
    from journal import check_journal, read_header

    report = check_journal(path)
    header = read_header(path)
    console.print(
        f"[bold]{path}[/]: {header.kind} journal, {report.segments} segment(s), {report.bytes:,} bytes, "
        f"{report.events:,} events (seq {report.first_seq}..{report.last_seq}), "
        f"{report.intent_records:,} intent records ({report.intents:,} intents)"
    )
    if report.corrupt:
        console.print(f"[bold red]CORRUPT:[/] {report.corrupt}")
        sys.exit(1)
    if report.torn is not None:
        console.print(f"[yellow]TORN TAIL:[/] {report.torn.describe()}")
        sys.exit(3)
    console.print("[bold green]ok[/]")


@journal.command("repair", context_settings=CONTEXT)
@click.argument("path", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option(
    "--cut-corruption",
    is_flag=True,
    help="Also cut mid-journal corruption: truncate at the bad record (cut bytes are kept aside).",
)
def journal_repair(path: Path, cut_corruption: bool) -> None:
    """Truncate a torn tail (the incomplete last record of a crash), keeping the cut bytes."""
    from journal import repair_journal

    report, side = repair_journal(path, cut_corruption=cut_corruption)
    if not side:
        console.print(
            f"[bold green]nothing to repair:[/] {report.events:,} events, last seq {report.last_seq}"
        )
        return
    console.print(
        f"[bold green]repaired[/] {path}: kept {report.events:,} events (last seq {report.last_seq})"
    )
    for p in side:
        console.print(f"  cut bytes saved in {p}")
