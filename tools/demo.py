"""``replaymm demo``: the embedded default — the grid trading live against the local exchange.

No keys, no network beyond 127.0.0.1: the local exchange (a seeded synthetic BTCUSDT market)
runs in this process, and the grid of ``configs/grid-btcusdt.yaml`` trades on it through the
very adapter and runtime ``replaymm run`` uses (REST order entry, market and user streams),
with a live status line; then a clean stop (orders cancelled), the summary, a SQL query over
the live journal and ``replay --verify`` of it.
"""

from __future__ import annotations

import shutil
import sys
import time
from pathlib import Path
from typing import Any

from adapters.binance import builtin_instrument
from engine import FORMAT_VERSION, JournalHeader, registry_hash
from journal import Durability, JournalReader, JournalWriter, code_digest, code_version
from replay._synthetic import SyntheticMarket, SyntheticMarketConfig

from ._cli import fail
from ._console import console, fmt_rate

__all__ = ["DEMO_OVERRIDES", "demo_config", "run_demo", "write_synthetic_journal"]

ROOT = Path(__file__).resolve().parent.parent
GRID_CONFIG = ROOT / "configs" / "grid-btcusdt.yaml"

#: what the demo changes in ``configs/grid-btcusdt.yaml`` for a session of a minute
DEMO_OVERRIDES: dict[str, str] = {
    # the volume-spike breaker needs 5m candles and holds entries (fails closed) without them
    "strategy.risk_control.enabled": "false",
    # the synthetic market moves ~50-150 USDT a minute; 25 USDT still covers 2 x 0.02% fees
    "strategy.price_interval": "25",
    "strategy.order_quantity": "100",
    "strategy.buy_window_size": "4",
    "strategy.sell_window_size": "4",
}

#: the runtime's settings for a short session (the endpoints are filled in once the port is known)
DEMO_LIVE: dict[str, Any] = {
    "timeout_s": 5,
    "reconcile_s": 15,
    "dead_man_s": 30,
    "dead_man_refresh_s": 10,
    "kline": "",
}

SQL_FILLS = (
    "SELECT CASE side WHEN 1 THEN 'buy' ELSE 'sell' END AS side, count(*) AS fills, "
    "sum(qty) AS qty, round(avg(price), 1) AS avg_price, sum(fee) AS fees "
    "FROM fills GROUP BY ALL ORDER BY side"
)
SQL_PNL = (
    "SELECT symbol, fills, realized_pnl, unrealized_pnl, fees, funding, net_pnl FROM pnl_summary"
)


def write_synthetic_journal(
    out: Path, *, seconds: float, seed: int, symbol: str = "BTCUSDT"
) -> int:
    """A market-data journal of ``seconds`` of the seeded synthetic market; returns events."""
    spec = builtin_instrument(0, symbol)
    cfg = SyntheticMarketConfig(seed=seed)
    header = JournalHeader(
        format_version=FORMAT_VERSION,
        registry_hash=registry_hash(),
        code_version=code_version(),
        code_digest=code_digest(),
        kind="market-data",
        config={},
        instruments=[spec],
        source={"tool": "synthetic", "seed": seed, "seconds": seconds},
    )
    market = SyntheticMarket(cfg, spec)
    n = 0
    with JournalWriter.create(out, header, durability=Durability("none"), overwrite=True) as w:
        w.append_event(cfg.start_ns, spec)
        for recv, ev in market.events(seconds):
            w.append_event(recv, ev)
            n += 1
    return n + 1


def demo_config() -> dict[str, Any]:
    """``configs/grid-btcusdt.yaml`` with ``DEMO_OVERRIDES`` (validated like ``--set``)."""
    from ._cmd_run import _load

    if not GRID_CONFIG.exists():
        fail(f"{GRID_CONFIG} not found: run the demo from a clone (pip install -e .)")
    return _load(GRID_CONFIG, tuple(f"{k}={v}" for k, v in DEMO_OVERRIDES.items()))


def _fresh(path: Path) -> None:
    """Remove an earlier demo's journal at ``path``; refuse to touch anything else."""
    if not path.exists():
        return
    if path.is_dir() and not any(path.iterdir()):
        path.rmdir()
        return
    try:
        kind = JournalReader(path).header.kind
    except Exception:
        kind = "?"
    if kind not in ("demo", "local-exchange"):
        fail(f"{path} exists and is not a demo journal: choose another --out")
    shutil.rmtree(path)


def run_demo(out: Path, *, seconds: float, seed: int) -> None:
    import trio

    cfg = demo_config()
    live_path, exchange_path = out / "live", out / "exchange"
    for p in (live_path, exchange_path):
        _fresh(p)
    out.mkdir(parents=True, exist_ok=True)
    s = cfg["strategy"]
    console.print(
        f"[bold]replaymm demo[/]: the grid live for {seconds:g} s against the local exchange "
        f"(synthetic BTCUSDT, seed {seed}) on 127.0.0.1, no keys"
    )
    console.print(
        f"  grid: {GRID_CONFIG.relative_to(ROOT)} with "
        + ", ".join(f"{k.removeprefix('strategy.')}={v}" for k, v in DEMO_OVERRIDES.items())
        + f"; {s['order_quantity']} USDT per level, REST order entry"
    )
    started = time.monotonic()
    rt, report, truth = trio.run(_run_live, cfg, live_path, exchange_path, seconds, seed)
    _summary(rt, report, truth, time.monotonic() - started)
    _sql(live_path)
    _verify(live_path)
    console.print(f"\n  journals: live runtime -> {live_path}, exchange side -> {exchange_path}")
    console.print("next:")
    console.print(f'  replaymm sql {live_path} "SELECT * FROM orders"')
    console.print(f"  replaymm replay {live_path} --until 500 --show    # the grid's slots then")
    console.print(f"  replaymm report {live_path} --out demo.html")
    console.print("  replaymm exchange   # the local exchange on its own, for replaymm run")


async def _run_live(
    cfg: dict[str, Any], live_path: Path, exchange_path: Path, seconds: float, seed: int
) -> tuple[Any, Any, dict[str, Any]]:
    import msgspec

    from adapters.binance._rest import RestClient
    from adapters.binance._sign import Credentials
    from adapters.live import ExchangeVenue, LiveConfig, Runtime
    from adapters.live._config import Endpoints
    from adapters.local_exchange import ExchangeConfig, open_exchange
    from replay import load_sim_config

    # the exchange's account and fees are the config's backtest section: same as a backtest
    ex_cfg = ExchangeConfig(seed=seed, sim=load_sim_config(cfg), journal=str(exchange_path))
    async with open_exchange(ex_cfg) as ex:
        base = f"127.0.0.1:{ex.port}"
        ep = Endpoints(
            rest_url=f"http://{base}", ws_url=f"ws://{base}", ws_api_url=f"ws://{base}/ws-fapi/v1"
        )
        live_raw = {**DEMO_LIVE, "mainnet": msgspec.to_builtins(ep)}
        cfg = {**cfg, "live": live_raw}  # journaled: endpoints and settings, never the keys
        live = msgspec.convert(live_raw, LiveConfig)
        creds = Credentials(ex.config.api_key, ex.config.api_secret)
        shown = _StatusLine(seconds)
        rt = Runtime(
            config=cfg,
            journal=live_path,
            mode="demo",
            venue=ExchangeVenue(ep, live, creds),
            live=live,
            symbols=[cfg["strategy"]["symbol"]],
            status=shown.update,
            log=shown.log,
        )
        with shown:
            report = await rt.run(seconds=seconds)
        rest = RestClient(ep.rest_url, creds)
        try:
            await rest.sync_time()
            sym = rt.symbols[0]
            truth = {
                "open": msgspec.json.decode(await rest.open_orders(sym)),
                "trades": msgspec.json.decode(
                    await rest.request(
                        "GET",
                        "/fapi/v1/userTrades",
                        [("symbol", sym), ("limit", 1000)],
                        signed=True,
                    )
                ),
            }
        finally:
            await rest.aclose()
    return rt, report, truth


class _StatusLine:
    """The live status line: a rich ``Live`` on a terminal, a plain line every 10 s otherwise."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self.tty = console.is_terminal
        self.live: Any = None
        self.t0 = time.monotonic()
        self.next_print = 10.0

    def __enter__(self) -> _StatusLine:
        if self.tty:
            from rich.live import Live

            self.live = Live("starting", console=console, auto_refresh=False, transient=True)
            self.live.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        if self.live is not None:
            self.live.__exit__(None, None, None)

    def update(self, rt: Any) -> None:
        from ._cmd_live import status_line

        elapsed = time.monotonic() - self.t0
        text = f"{min(elapsed, self.seconds):4.0f}/{self.seconds:g} s  {status_line(rt)}"
        if self.live is not None:
            from rich.text import Text

            self.live.update(Text(text, style="bold cyan", no_wrap=True), refresh=True)
        elif elapsed >= self.next_print and not rt.stopping:
            self.next_print += 10.0
            console.print(f"  {text}")

    def log(self, text: str) -> None:
        # stream up/down and the grid's decisions; a terminal shows them above the status line
        if self.tty:
            console.print(f"  [dim]{text}[/]")


def _summary(rt: Any, report: Any, truth: dict[str, Any], wall_s: float) -> None:
    from ._cmd_live import status_line

    st = rt.engine.state
    inst = rt.inst_by_symbol[rt.symbols[0]]
    ins = st.instruments[inst]
    pos = st.position(inst)
    venue = report.venue
    console.print(
        f"  stopped ({report.stop_reason}) in {wall_s:.1f} s: {report.events:,} events, "
        f"{report.intents:,} intents, orders sent {venue.get('orders_sent', 0):,}, "
        f"fills {pos.fills:,} ({len(truth['trades']):,} on the exchange)"
    )
    console.print(f"  final: {status_line(rt)}")
    left = len(truth["open"])
    console.print(
        f"  cancel on exit: {left} order{'s' * (left != 1)} left open on the exchange"
        + ("" if left == 0 else " [bold red](expected 0)[/]")
        + f"; position {ins.qty_text(pos.qty)} {ins.spec.base_asset} kept (a grid holds its inventory)"
    )
    lat = report.latency_summary()
    if lat:
        console.print(
            f"  tick-to-order: p50 {lat['p50_ms']:.2f} ms, p99 {lat['p99_ms']:.2f} ms over "
            f"{lat['n']:,} requests (loopback)"
        )
    if left:
        raise SystemExit(1)


def _sql(journal: Path) -> None:
    from rich.padding import Padding
    from rich.table import Table

    from replay.analytics import connect

    from ._cmd_analytics import _cell

    con = connect([journal])
    for query in (SQL_FILLS, SQL_PNL):
        console.print(f'\n  replaymm sql {journal} "{query}"')
        rel = con.sql(query)
        t = Table(*rel.columns, show_edge=False, header_style="bold")
        for row in rel.fetchall():
            t.add_row(*(_cell(v) for v in row))
        console.print(Padding(t, (0, 0, 0, 2), expand=False))


def _verify(journal: Path) -> None:
    from replay import verify

    v = verify(journal)
    if not v.identical:
        console.print(
            f"[bold red]  replay --verify diverged:[/] {v.divergence.describe() if v.divergence else ''}"
        )
        raise SystemExit(1)
    console.print(
        f"\n  replay --verify: [bold green]identical[/], {v.events:,} events, {v.intents:,} intents "
        f"({fmt_rate(v.events_per_s)} events/s)"
    )
    sys.stdout.flush()
