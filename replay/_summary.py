"""The end-of-run summary of a backtest (or of any replayed journal)."""

from __future__ import annotations

from decimal import Decimal

import msgspec

from engine import QUOTE_SCALE, Engine, InstrumentLoaded

__all__ = ["InstrumentSummary", "Summary", "summarize"]


class InstrumentSummary(msgspec.Struct):
    symbol: str
    quote_asset: str
    position: Decimal  # base asset
    realized_pnl: Decimal  # quote asset, before fees
    unrealized_pnl: Decimal  # at the last mid
    fees: Decimal  # positive = paid
    funding: Decimal  # positive = received
    net_pnl: Decimal  # realized + unrealized - fees + funding
    fills: int
    buy_volume: Decimal
    sell_volume: Decimal
    last_mid: Decimal


class Summary(msgspec.Struct):
    instruments: list[InstrumentSummary]
    orders_placed: int
    cancels_sent: int
    fills: int
    alerts: int
    book_gaps: int
    bbo_checks: int
    bbo_agree: int

    @property
    def net_pnl(self) -> Decimal:
        return sum((i.net_pnl for i in self.instruments), Decimal(0))


def _money(minor: int) -> Decimal:
    return Decimal(minor) / QUOTE_SCALE


def summarize(engine: Engine, instruments: list[InstrumentLoaded]) -> Summary:
    st = engine.state
    rows = []
    for spec in instruments:
        instrument = st.instruments.get(spec.inst)
        pos = st.positions.get(spec.inst)
        if instrument is None or pos is None:
            continue
        k = instrument.minor_per_ticklot
        top = st.tops[spec.inst]
        mid2 = top.bid + top.ask if top.valid else 0
        # unrealized at the mid: qty * mid - cost, with mid = mid2 / 2 (kept exact in halves)
        unreal_half = pos.qty * mid2 - 2 * pos.cost if mid2 else 0
        realized = _money(pos.realized * k)
        unrealized = _money(unreal_half * k) / 2
        fees = _money(pos.fees)
        funding = _money(pos.funding)
        rows.append(
            InstrumentSummary(
                symbol=spec.symbol,
                quote_asset=spec.quote_asset,
                position=instrument.qty_scale.to_decimal(pos.qty),
                realized_pnl=realized,
                unrealized_pnl=unrealized,
                fees=fees,
                funding=funding,
                net_pnl=realized + unrealized - fees + funding,
                fills=pos.fills,
                buy_volume=instrument.qty_scale.to_decimal(pos.buy_qty),
                sell_volume=instrument.qty_scale.to_decimal(pos.sell_qty),
                last_mid=instrument.price_scale.to_decimal(mid2) / 2,
            )
        )
    s = st.stats
    return Summary(
        instruments=rows,
        orders_placed=s["orders_placed"],
        cancels_sent=s["cancels_sent"],
        fills=s["fills"],
        alerts=s["alerts"],
        book_gaps=s["book_gaps"],
        bbo_checks=s["bbo_checks"],
        bbo_agree=s["bbo_agree"],
    )
