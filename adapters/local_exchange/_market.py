"""Where the local exchange's market comes from: the seeded synthetic market, a journal, or a
recorded Binance WebSocket file (imported to a scratch journal first).

Each source gives the instruments and an iterator of ``(market time ns, event)`` in time
order; the server maps market time onto its own clock at the chosen speed.
"""

from __future__ import annotations

import heapq
from collections.abc import Iterator
from pathlib import Path

from engine import Event, InstrumentLoaded

__all__ = ["MarketSource", "open_market"]

#: start prices of the synthetic market per symbol (a plausible level, on the tick grid)
_START = {
    "BTCUSDT": "61800.0",
    "BTCUSDC": "61800.0",
    "ETHUSDT": "2600.00",
    "ETHUSDC": "2600.00",
    "XRPUSDT": "0.5000",
}


class MarketSource:
    def __init__(
        self,
        instruments: list[InstrumentLoaded],
        events: Iterator[tuple[int, Event]],
        description: str,
    ) -> None:
        self.instruments = instruments
        self.events = events
        self.description = description


def _synthetic(symbols: list[str], seed: int, start_ns: int) -> MarketSource:
    from adapters.binance import builtin_instrument
    from replay._synthetic import SyntheticMarket, SyntheticMarketConfig

    specs: list[InstrumentLoaded] = []
    streams: list[Iterator[tuple[int, Event]]] = []
    for i, symbol in enumerate(symbols):
        try:
            spec = builtin_instrument(i, symbol)
        except KeyError:
            raise ValueError(
                f"synthetic market: no built-in filters for {symbol} "
                "(BTCUSDT, ETHUSDT, XRPUSDT, BTCUSDC, ETHUSDC)"
            ) from None
        cfg = SyntheticMarketConfig(
            seed=seed + i, start_price=_START.get(symbol, "100.00"), start_ns=start_ns
        )
        specs.append(spec)
        streams.append(SyntheticMarket(cfg, spec).events(10 * 86_400.0))
    merged = heapq.merge(*streams, key=lambda te: te[0]) if len(streams) > 1 else streams[0]
    return MarketSource(specs, merged, f"synthetic {','.join(symbols)} (seed {seed})")


def _journal(path: Path, label: str) -> MarketSource:
    from journal import JournalReader, read_header
    from replay._backtest import MARKET_TYPES

    header = read_header(path)

    def events() -> Iterator[tuple[int, Event]]:
        for rec in JournalReader(path).events():
            if type(rec.event) in MARKET_TYPES:
                yield rec.recv_ns, rec.event

    return MarketSource(list(header.instruments), events(), label)


def open_market(
    market: str, *, symbols: list[str], seed: int, start_ns: int, scratch: Path | None
) -> MarketSource:
    """``synthetic``, a journal directory, or a recorded WebSocket file (needs ``scratch``)."""
    if market == "synthetic":
        return _synthetic(symbols, seed, start_ns)
    path = Path(market)
    if not path.exists():
        raise FileNotFoundError(2, "No such file or directory", market)
    if path.is_dir():
        return _journal(path, f"journal {path}")
    if scratch is None:
        raise ValueError("a recorded file needs a scratch directory to import it into")
    from tools.import_ws import import_binance_ws

    out = scratch / "market"
    import_binance_ws([path], out, overwrite=True)
    return _journal(out, f"recording {path.name}")
