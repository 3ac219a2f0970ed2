"""The simulated Binance USDⓈ-M exchange: one matching model for backtests and the local exchange.

Theory of operation
-------------------
The exchange lives on *exchange time*. It is told about the market (``apply_market``) and
about our requests (``submit``) in time order, and answers with engine events stamped with
the exchange time they happened at; when those reach us is the latency model's business
(``_scheduler.py`` in a backtest, the network for the local exchange). Everything is pure
and deterministic: integer ticks, lots and minor units; no clock; no randomness (the queue
models are deterministic expectations).

The market is the recorded (or synthetic) one. Our orders are *virtual*: they never change
the recorded book, they take a place in its queues. So:

* a resting order joins the back of its level (``ahead`` = the visible quantity there plus
  our own orders already at that price) and moves up as the queue model says (``_queue.py``);
  it fills, maker, when trades at its price exhaust what is ahead of it (partially if the
  trade leaves less than its size), when a trade prints *through* its price, or when the best
  opposite price reaches it;
* an order that can execute on arrival takes liquidity from the book's levels, taker fee,
  without depleting the recorded book; the rest rests (GTC), expires (IOC, MARKET) or the
  whole order is refused (FOK -5021); a post-only (GTX) order that would take liquidity is
  refused with -5022 and never exists;
* every request first passes Binance's rate limits (429 -1015/-1003, then 418 bans) and its
  filters (``_rules.py``), with Binance's codes;
* money is kept per margin asset: fees per fill (a negative maker fee is a rebate), funding
  at each funding time from the mark-price stream, realized PnL with average-cost accounting;
  each change is announced as an ``AccountUpdated`` event, as Binance's ACCOUNT_UPDATE does.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterable
from itertools import compress
from typing import Any

from engine import (
    PRICE_E8_SCALE,
    QUOTE_SCALE,
    RATE_SCALE,
    AccountSnapshotReceived,
    AccountUpdated,
    AmendOrder,
    AmendRejected,
    BalanceRow,
    BookDeltaReceived,
    BookSnapshotReceived,
    CancelAllOrders,
    CancelOrder,
    CancelRejected,
    Event,
    FundingSettled,
    Instrument,
    InstrumentLoaded,
    Intent,
    KlineUpdated,
    MarkPriceUpdated,
    OpenOrderRow,
    OrderAccepted,
    OrderAmended,
    OrderCanceled,
    OrderExpired,
    OrderFilled,
    OrderRejected,
    OrderType,
    PlaceOrder,
    Position,
    PositionRow,
    RequestSnapshot,
    Side,
    SnapshotKind,
    TimeInForce,
    TopOfBookUpdated,
    TradePrinted,
)
from engine._units import decimal_to_scaled, round_half_away

from ._config import SimConfig
from ._queue import PowerQueue, QueueModel, RiskAverseQueue
from ._ratelimit import RateLimiter
from ._rules import Reject, check_price_band, check_static

__all__ = ["SimExchange", "SimOrder"]

# Enum members looked up on hot paths, bound once: on CPython 3.11 `Enum.MEMBER` costs
# ~100 ns per lookup (a module constant ~10 ns)
_ORDERTYPE_LIMIT = OrderType.LIMIT
_ORDERTYPE_MARKET = OrderType.MARKET
_SIDE_BUY = Side.BUY
_SIDE_SELL = Side.SELL
_SNAPSHOTKIND_BOOK = SnapshotKind.BOOK
_TIMEINFORCE_FOK = TimeInForce.FOK
_TIMEINFORCE_GTX = TimeInForce.GTX
_TIMEINFORCE_IOC = TimeInForce.IOC


_RECENT_DIFFS = 64
_FIRST_ORDER_ID = 8_000_000_000


#: stands for "not in this diff" in a level dict while a diff is applied (``_mark``)
_UNTOUCHED: Any = object()
#: up to this many prices of ours on a side, a diff marks them without first testing whether
#: it touches any (marking costs ~4 dict operations per price; the test ~1 us per real diff)
_MARK_ALWAYS = 4


def _mark(levels: dict[int, int], ours: dict[int, list[SimOrder]]) -> list[int | None]:
    """Mark our prices' levels before a diff is applied; returns their quantities (None: no
    level) in the order of ``ours``."""
    held = []
    for p in ours:
        held.append(levels.get(p))
        levels[p] = _UNTOUCHED
    return held


def _rate(text: object) -> int:
    return decimal_to_scaled(str(text), 8) * (RATE_SCALE // 10**8)


class SimOrder:
    """One of our orders as the exchange knows it."""

    __slots__ = (
        "ahead",
        "client_id",
        "cum_quote",
        "filled",
        "inst",
        "order_id",
        "order_type",
        "price",
        "qty",
        "reduce_only",
        "side",
        "tif",
        "traded",
        "update_ns",
    )

    def __init__(self, p: PlaceOrder, order_id: int, t: int) -> None:
        self.client_id = p.client_id
        self.order_id = order_id
        self.inst = p.inst
        self.side = p.side
        self.price = p.price
        self.qty = p.qty
        self.tif = p.tif
        self.order_type = p.order_type
        self.reduce_only = p.reduce_only
        self.filled = 0
        self.cum_quote = 0  # minor units of quote traded so far
        self.ahead = 0  # lots ahead of us in the queue
        self.traded = 0  # lots traded at our level since the last level update
        self.update_ns = t

    @property
    def remaining(self) -> int:
        return self.qty - self.filled


class _Market:
    """The exchange's view of one instrument's market."""

    __slots__ = (
        "asks",
        "best_ask",
        "best_bid",
        "bids",
        "book_u",
        "buys",
        "funding_rate",
        "has_book",
        "has_ticker",
        "ins",
        "last_price",
        "mark_e8",
        "max_buy",
        "min_sell",
        "next_funding_ns",
        "recent",
        "sells",
        "settled_ns",
        "top_u",
    )

    def __init__(self, ins: Instrument) -> None:
        self.ins = ins
        # level quantities; an emptied level stays as 0 (cheaper than deleting on a hot path)
        self.bids: dict[int, int] = {}
        self.asks: dict[int, int] = {}
        self.book_u = 0
        self.recent: deque[BookDeltaReceived] = deque(maxlen=_RECENT_DIFFS)
        self.has_book = False
        self.has_ticker = False
        self.best_bid = 0
        self.best_ask = 0
        self.top_u = 0
        self.last_price = 0
        self.mark_e8 = 0
        self.funding_rate = 0
        self.next_funding_ns = 0
        self.settled_ns = (
            0  # the last funding time settled (the stream keeps announcing it a while)
        )
        # our resting orders by price, each list in arrival order
        self.buys: dict[int, list[SimOrder]] = {}
        self.sells: dict[int, list[SimOrder]] = {}
        # our highest resting buy and lowest resting sell (0 = none): the cheap test of
        # "can this market event touch any of our orders?"
        self.max_buy = 0
        self.min_sell = 0

    def level(self, side: Side, price: int) -> int:
        return (self.bids if side is _SIDE_BUY else self.asks).get(price, 0)

    def best(self) -> tuple[int, int]:
        """(best bid, best ask), from the bookTicker stream if there is one, else the book."""
        if self.has_ticker or not self.has_book:
            return self.best_bid, self.best_ask
        bid = max(compress(self.bids, self.bids.values()), default=0)
        ask = min(compress(self.asks, self.asks.values()), default=0)
        return bid, ask

    def own_at(self, side: Side, price: int) -> int:
        orders = (self.buys if side is _SIDE_BUY else self.sells).get(price)
        return sum(o.remaining for o in orders) if orders else 0


class SimExchange:
    def __init__(self, config: SimConfig, instruments: Iterable[InstrumentLoaded]) -> None:
        self.config = config
        self.markets: dict[int, _Market] = {}
        self._market_table = self.market_handlers()
        self.orders: dict[str, SimOrder] = {}  # open orders by client id
        self.queue_model: QueueModel = (
            PowerQueue(config.queue.power) if config.queue.model == "power" else RiskAverseQueue()
        )
        self.limiter = RateLimiter(config.rate_limits)
        self.wallets: dict[str, int] = {
            asset: decimal_to_scaled(str(v), 8) * (QUOTE_SCALE // 10**8)
            for asset, v in config.balances.items()
        }
        self.positions: dict[int, Position] = {}
        self.maker_fee: dict[int, int] = {}
        self.taker_fee: dict[int, int] = {}
        self.next_order_id = _FIRST_ORDER_ID
        self.next_trade_id = 1
        self.stats: dict[str, int] = {
            "orders": 0,
            "rejects": 0,
            "cancels": 0,
            "fills": 0,
            "maker_fills": 0,
            "taker_fills": 0,
            "funding_events": 0,
            "rate_limited": 0,
        }
        for spec in instruments:
            self.add_instrument(spec)

    # ------------------------------------------------------------------------------------
    # instruments and the market

    def add_instrument(self, spec: InstrumentLoaded) -> None:
        if spec.inst in self.markets:
            return
        ins = Instrument(spec)
        self.markets[spec.inst] = _Market(ins)
        self.positions[spec.inst] = Position(spec.inst)
        fees = self.config.fees
        override = fees.symbols.get(spec.symbol, {})
        self.maker_fee[spec.inst] = _rate(override.get("maker", fees.maker))
        self.taker_fee[spec.inst] = _rate(override.get("taker", fees.taker))
        self.wallets.setdefault(spec.margin_asset, 0)

    def apply_market(self, t: int, ev: Event) -> list[Event]:
        """The market moved at exchange time ``t``; returns what that did to us."""
        handler = self._market_table.get(type(ev))
        return handler(t, ev) if handler is not None else []

    def market_handlers(self) -> dict[type, Callable[[int, Any], list[Event]]]:
        """``apply_market`` as a table: event type -> handler(t, ev) -> answers.

        A backtest driver looks the handler up once per event instead of calling
        ``apply_market`` and walking its chain of type tests (a dict lookup is the cheapest
        dispatch in CPython); a type not in the table is not market data.
        """

        def snapshot(t: int, ev: BookSnapshotReceived) -> list[Event]:
            self._on_snapshot(ev)
            return []

        def instrument(t: int, ev: InstrumentLoaded) -> list[Event]:
            self.add_instrument(ev)
            return []

        return {
            TopOfBookUpdated: self._on_top,
            TradePrinted: self._on_trade,
            BookDeltaReceived: self._on_delta,
            MarkPriceUpdated: self._on_mark,
            KlineUpdated: self._on_kline,
            BookSnapshotReceived: snapshot,
            InstrumentLoaded: instrument,
        }

    def _on_top(self, t: int, ev: TopOfBookUpdated) -> list[Event]:
        m = self.markets[ev.inst]
        if ev.update_id < m.top_u:
            return []
        m.has_ticker = True
        m.top_u = ev.update_id
        m.best_bid = ev.bid
        m.best_ask = ev.ask
        if (m.max_buy and ev.ask and ev.ask <= m.max_buy) or (m.min_sell and ev.bid >= m.min_sell):
            return self._cross(t, m, ev.bid, ev.ask)
        return []

    def _on_snapshot(self, ev: BookSnapshotReceived) -> None:
        m = self.markets[ev.inst]
        m.bids = dict(zip(ev.bids[::2], ev.bids[1::2]))
        m.asks = dict(zip(ev.asks[::2], ev.asks[1::2]))
        m.book_u = ev.last_update_id
        m.has_book = True
        for d in m.recent:  # diffs that reached us before the snapshot but are newer than it
            if d.final_update_id > ev.last_update_id:
                m.bids.update(zip(d.bids[::2], d.bids[1::2]))
                m.asks.update(zip(d.asks[::2], d.asks[1::2]))
                m.book_u = d.final_update_id

    def _on_delta(self, t: int, ev: BookDeltaReceived) -> list[Event]:
        m = self.markets[ev.inst]
        m.recent.append(ev)
        if ev.final_update_id <= m.book_u:
            return []
        m.book_u = ev.final_update_id
        b, a = ev.bids, ev.asks
        out: list[Event] = []
        buys, sells = m.buys, m.sells
        bids, asks = m.bids, m.asks
        # Our levels are marked before the diff is applied: a mark the diff did not overwrite
        # is a level it did not touch. A few dict operations per price of ours instead of
        # looking for our prices in the diff (most diffs touch none of them); with many
        # prices of ours (a grid), one C-level test of the diff's prices comes first.
        held_b = held_a = None
        if buys and b and (len(buys) <= _MARK_ALWAYS or not buys.keys().isdisjoint(b[0::2])):
            held_b = _mark(bids, buys)
        if sells and a and (len(sells) <= _MARK_ALWAYS or not sells.keys().isdisjoint(a[0::2])):
            held_a = _mark(asks, sells)
        it = iter(b)  # zip(it, it): the flat list's (price, qty) pairs without two slices
        bids.update(zip(it, it))
        it = iter(a)
        asks.update(zip(it, it))
        if held_b is not None:
            self._queue_updates(bids, buys, held_b)
        if held_a is not None:
            self._queue_updates(asks, sells, held_a)
        if not m.has_ticker and (buys or sells):
            bid, ask = m.best()
            if (m.max_buy and ask and ask <= m.max_buy) or (m.min_sell and bid >= m.min_sell):
                out = self._cross(t, m, bid, ask)
        return out

    def _queue_updates(
        self, levels: dict[int, int], ours: dict[int, list[SimOrder]], held: list[int | None]
    ) -> None:
        """After a diff: move our orders up the queues of the levels it changed.

        ``held``: each of our prices' level quantity before the diff (None: no level), from
        ``_mark``; a level still marked was not in the diff and gets its quantity back.
        """
        model = self.queue_model
        for (p, orders), prev in zip(ours.items(), held):
            q = levels[p]
            if q is _UNTOUCHED:
                if prev is None:
                    del levels[p]
                else:
                    levels[p] = prev
                continue
            if prev is None:
                prev = 0
            own = 0
            for o in orders:
                o.ahead = model.on_level_change(o.ahead, prev, q, o.traded, own)
                o.traded = 0
                own += o.remaining

    def _on_trade(self, t: int, ev: TradePrinted) -> list[Event]:
        m = self.markets[ev.inst]
        m.last_price = ev.price
        # the aggressor's counterparties are the passive orders on the other side
        passive = m.sells if ev.taker_side is _SIDE_BUY else m.buys
        if not passive:
            return []
        out: list[Event] = []
        price = ev.price
        if ev.taker_side is _SIDE_BUY:
            if m.min_sell < price:  # printed through some of our sells
                for p in sorted(p for p in passive if p < price):
                    for o in list(passive.get(p, ())):
                        self._fill(t, m, o, o.remaining, o.price, maker=True, out=out)
        elif m.max_buy > price:
            for p in sorted((p for p in passive if p > price), reverse=True):
                for o in list(passive.get(p, ())):
                    self._fill(t, m, o, o.remaining, o.price, maker=True, out=out)
        at = passive.get(price)
        if at:
            qty = ev.qty
            for o in list(at):
                o.traded += qty
                o.ahead -= qty
                if o.ahead < 0:
                    take = min(o.remaining, -o.ahead)
                    o.ahead = 0
                    self._fill(t, m, o, take, o.price, maker=True, out=out)
        return out

    def _cross(self, t: int, m: _Market, bid: int, ask: int) -> list[Event]:
        """Our resting orders that the best opposite price has reached are filled (maker)."""
        out: list[Event] = []
        if m.buys and ask:
            for p in sorted((p for p in m.buys if p >= ask), reverse=True):
                for o in list(m.buys.get(p, ())):
                    self._fill(t, m, o, o.remaining, o.price, maker=True, out=out)
        if m.sells and bid:
            for p in sorted(p for p in m.sells if p <= bid):
                for o in list(m.sells.get(p, ())):
                    self._fill(t, m, o, o.remaining, o.price, maker=True, out=out)
        return out

    def _on_kline(self, t: int, ev: KlineUpdated) -> list[Event]:
        """Candle-only data: walk the candle (O, then the nearer extreme, the other, C)."""
        m = self.markets[ev.inst]
        if not ev.closed:
            return []
        m.last_price = ev.close
        if not m.has_ticker and not m.has_book:
            m.best_bid = m.best_ask = ev.close
        if not (m.buys or m.sells):
            return []
        touch = self.config.queue.kline_fill == "touch"
        path = (
            [ev.open, ev.low, ev.high, ev.close]
            if ev.close >= ev.open
            else [ev.open, ev.high, ev.low, ev.close]
        )
        out: list[Event] = []
        for x in path:
            if not ((m.max_buy and m.max_buy >= x) or (m.min_sell and m.min_sell <= x)):
                continue
            for p in sorted((p for p in m.buys if p > x or (touch and p == x)), reverse=True):
                for o in list(m.buys.get(p, ())):
                    self._fill(t, m, o, o.remaining, o.price, maker=True, out=out)
            for p in sorted(p for p in m.sells if p < x or (touch and p == x)):
                for o in list(m.sells.get(p, ())):
                    self._fill(t, m, o, o.remaining, o.price, maker=True, out=out)
        return out

    def _on_mark(self, t: int, ev: MarkPriceUpdated) -> list[Event]:
        m = self.markets[ev.inst]
        out: list[Event] = []
        due = m.next_funding_ns
        if due and ev.ts_ns >= due and due > m.settled_ns:
            m.settled_ns = due
            out = self._settle_funding(t, m, ev.mark_e8, m.funding_rate, due)
        m.mark_e8 = ev.mark_e8
        m.funding_rate = ev.funding_rate
        m.next_funding_ns = ev.next_funding_ns
        return out

    def _settle_funding(
        self, t: int, m: _Market, mark_e8: int, rate: int, funding_ns: int
    ) -> list[Event]:
        pos = self.positions[m.ins.inst]
        if not pos.qty or not rate:
            return []
        # size x mark x rate, paid by longs when the rate is positive
        step = m.ins.qty_scale
        num = pos.qty * step.unit * mark_e8 * rate
        den = 10**step.decimals * PRICE_E8_SCALE * RATE_SCALE // QUOTE_SCALE
        amount = -round_half_away(num, den)
        asset = m.ins.spec.margin_asset
        self.wallets[asset] = self.wallets.get(asset, 0) + amount
        pos.funding += amount
        self.stats["funding_events"] += 1
        return [
            FundingSettled(m.ins.inst, funding_ns, pos.qty, mark_e8, rate, amount, asset),
            self._account_update(t, "FUNDING_FEE", asset, None),
        ]

    # ------------------------------------------------------------------------------------
    # requests

    def submit(self, t: int, intent: Intent) -> list[Event]:
        """A request of ours reaches the exchange at ``t``; returns the answers."""
        kind = type(intent)
        try:
            self.limiter.check(t, intent)
        except Reject as r:
            self.stats["rate_limited"] += 1
            return [self._refusal(t, intent, r)]
        if kind is PlaceOrder:
            return self._place(t, intent)
        if kind is CancelOrder:
            return self._cancel(t, intent)
        if kind is CancelAllOrders:
            return self._cancel_all(t, intent)
        if kind is AmendOrder:
            return self._amend(t, intent)
        if kind is RequestSnapshot:
            return self._snapshot(t, intent)
        return []

    def _refusal(self, t: int, intent: Intent, r: Reject) -> Event:
        if type(intent) is PlaceOrder:
            self.stats["rejects"] += 1
            return OrderRejected(intent.inst, intent.client_id, r.code, r.message, t)
        if type(intent) is AmendOrder:
            return AmendRejected(intent.inst, intent.client_id, r.code, r.message, t)
        cid = getattr(intent, "client_id", "")
        return CancelRejected(getattr(intent, "inst", 0), cid, r.code, r.message, t)

    def _place(self, t: int, p: PlaceOrder) -> list[Event]:
        m = self.markets.get(p.inst)
        if m is None:
            return [OrderRejected(p.inst, p.client_id, -1121, "Invalid symbol.", t)]
        try:
            self._validate_new(m, p)
        except Reject as r:
            self.stats["rejects"] += 1
            return [OrderRejected(p.inst, p.client_id, r.code, r.message, t)]
        bid, ask = m.best()
        market = p.order_type is _ORDERTYPE_MARKET
        crosses = market or (
            (p.side is _SIDE_BUY and ask and p.price >= ask)
            or (p.side is _SIDE_SELL and bid and p.price <= bid)
        )
        if crosses and p.tif is _TIMEINFORCE_GTX:
            self.stats["rejects"] += 1
            return [
                OrderRejected(
                    p.inst,
                    p.client_id,
                    -5022,
                    "Due to the order could not be executed as maker, the Post Only order will "
                    "be rejected. The order will not be recorded in the order history",
                    t,
                )
            ]
        takes = self._takeable(m, p) if crosses else []
        if p.tif is _TIMEINFORCE_FOK and sum(q for _, q in takes) < p.qty:
            self.stats["rejects"] += 1
            return [
                OrderRejected(
                    p.inst,
                    p.client_id,
                    -5021,
                    "Due to the order could not be filled immediately, the FOK order has been "
                    "rejected. The order will not be recorded in the order history",
                    t,
                )
            ]
        order = SimOrder(p, self.next_order_id, t)
        self.next_order_id += 1
        self.orders[p.client_id] = order
        self.stats["orders"] += 1
        out: list[Event] = [OrderAccepted(p.inst, p.client_id, order.order_id, t)]
        for price, qty in takes:
            take = min(qty, order.remaining)
            if take <= 0:
                break
            self._fill(t, m, order, take, price, maker=False, out=out)
        if order.remaining > 0 and p.client_id in self.orders:
            if market or p.tif is _TIMEINFORCE_IOC:
                del self.orders[p.client_id]
                out.append(OrderExpired(p.inst, p.client_id, order.order_id, t, 9 if market else 2))
            else:
                self._rest(m, order)
        return out

    def _takeable(self, m: _Market, p: PlaceOrder) -> list[tuple[int, int]]:
        """(price, qty) levels an incoming order could take, best first, within its limit."""
        if p.side is _SIDE_BUY:
            levels = m.asks
            prices = sorted(
                pr
                for pr in compress(levels, levels.values())
                if p.order_type is _ORDERTYPE_MARKET or pr <= p.price
            )
        else:
            levels = m.bids
            prices = sorted(
                (
                    pr
                    for pr in compress(levels, levels.values())
                    if p.order_type is _ORDERTYPE_MARKET or pr >= p.price
                ),
                reverse=True,
            )
        out: list[tuple[int, int]] = []
        need = p.qty
        for pr in prices:
            out.append((pr, levels[pr]))
            need -= levels[pr]
            if need <= 0:
                break
        if not out:  # no book (candles, or only a bookTicker): the touch, then the last price
            bid, ask = m.best()
            px = ask if p.side is _SIDE_BUY else bid
            px = px or m.last_price
            if px and (
                p.order_type is _ORDERTYPE_MARKET
                or (px <= p.price if p.side is _SIDE_BUY else px >= p.price)
            ):
                out.append((px, p.qty))
        return out

    def _validate_new(self, m: _Market, p: PlaceOrder) -> None:
        if self.config.hedge_mode:
            raise Reject(-4061, "Order's position side does not match user's setting.")
        if p.client_id in self.orders:
            raise Reject(-4116, "ClientOrderId is duplicated.")
        ins = m.ins
        market = p.order_type is _ORDERTYPE_MARKET
        mark = (
            m.mark_e8 * 10**ins.price_scale.decimals // ins.price_scale.unit // PRICE_E8_SCALE
            if m.mark_e8
            else m.last_price or m.best_ask
        )
        check_static(ins, p.price, p.qty, market=market, reduce_only=p.reduce_only, mark_price=mark)
        if not market:
            check_price_band(ins, p.side, p.price, m.mark_e8)
        open_here = sum(1 for o in self.orders.values() if o.inst == p.inst)
        if open_here >= ins.spec.max_num_orders:
            raise Reject(-2025, "Reach max open order limit.")
        pos = self.positions[p.inst].qty
        if p.reduce_only:
            reducing = (p.side is _SIDE_SELL and pos > 0) or (p.side is _SIDE_BUY and pos < 0)
            if not reducing or p.qty > abs(pos):
                raise Reject(-2022, "ReduceOnly Order is rejected.")
            return
        self._check_margin(m, p, pos)

    def _check_margin(self, m: _Market, p: PlaceOrder, pos: int) -> None:
        """Initial margin of the exposure this order could add must fit the available balance."""
        ins = m.ins
        asset = ins.spec.margin_asset
        lev = self.config.leverage
        signed = p.qty if p.side is _SIDE_BUY else -p.qty
        adds = (
            max(0, abs(pos + signed) - abs(pos)) if (pos > 0) != (signed > 0) or not pos else p.qty
        )
        if not adds:
            return
        price = p.price or m.last_price or m.best_ask or m.best_bid
        need = ins.notional(price, adds) // lev
        if need > self.available(asset):
            raise Reject(-2019, "Margin is insufficient.")

    def available(self, asset: str) -> int:
        """Wallet + unrealized PnL - initial margin of positions and open orders (minor units)."""
        lev = self.config.leverage
        used = 0
        for o in self.orders.values():
            om = self.markets[o.inst]
            if not o.reduce_only and om.ins.spec.margin_asset == asset:
                used += om.ins.notional(o.price, o.remaining) // lev
        for inst, q in self.positions.items():
            pm = self.markets[inst]
            if q.qty and pm.ins.spec.margin_asset == asset:
                used += pm.ins.notional(pm.last_price or pm.best_bid or 1, abs(q.qty)) // lev
        return self.wallets.get(asset, 0) + self._unrealized(asset) - used

    def _unrealized(self, asset: str) -> int:
        total = 0
        for inst, pos in self.positions.items():
            m = self.markets[inst]
            if pos.qty and m.ins.spec.margin_asset == asset:
                px = m.last_price or (m.best_bid + m.best_ask) // 2
                if px:
                    total += pos.unrealized(px) * m.ins.minor_per_ticklot
        return total

    def _rest(self, m: _Market, o: SimOrder) -> None:
        o.ahead = m.level(o.side, o.price) + m.own_at(o.side, o.price)
        o.traded = 0
        if o.side is _SIDE_BUY:
            m.buys.setdefault(o.price, []).append(o)
            if o.price > m.max_buy:
                m.max_buy = o.price
        else:
            m.sells.setdefault(o.price, []).append(o)
            if not m.min_sell or o.price < m.min_sell:
                m.min_sell = o.price

    def _unrest(self, m: _Market, o: SimOrder) -> None:
        book = m.buys if o.side is _SIDE_BUY else m.sells
        lst = book.get(o.price)
        if lst is not None:
            if o in lst:
                lst.remove(o)
            if not lst:
                del book[o.price]
                if o.side is _SIDE_BUY:
                    if o.price == m.max_buy:
                        m.max_buy = max(book, default=0)
                elif o.price == m.min_sell:
                    m.min_sell = min(book, default=0)

    def _cancel(self, t: int, c: CancelOrder) -> list[Event]:
        o = self.orders.pop(c.client_id, None)
        if o is None:
            return [CancelRejected(c.inst, c.client_id, -2011, "Unknown order sent.", t)]
        self._unrest(self.markets[o.inst], o)
        self.stats["cancels"] += 1
        return [OrderCanceled(o.inst, o.client_id, o.order_id, t)]

    def _cancel_all(self, t: int, c: CancelAllOrders) -> list[Event]:
        out: list[Event] = []
        for cid in [cid for cid, o in self.orders.items() if o.inst == c.inst]:
            o = self.orders.pop(cid)
            self._unrest(self.markets[o.inst], o)
            self.stats["cancels"] += 1
            out.append(OrderCanceled(o.inst, o.client_id, o.order_id, t, "cancel all"))
        return out

    def _amend(self, t: int, a: AmendOrder) -> list[Event]:
        o = self.orders.get(a.client_id)
        if o is None:
            return [AmendRejected(a.inst, a.client_id, -2013, "Order does not exist.", t)]
        m = self.markets[o.inst]
        if o.order_type is not _ORDERTYPE_LIMIT:
            return [AmendRejected(a.inst, a.client_id, -4028, "Only limit order is supported.", t)]
        if a.price == o.price and a.qty == o.qty:
            return [AmendRejected(a.inst, a.client_id, -5027, "No need to modify the order.", t)]
        try:
            check_static(
                m.ins, a.price, a.qty, market=False, reduce_only=o.reduce_only, mark_price=0
            )
            check_price_band(m.ins, o.side, a.price, m.mark_e8)
        except Reject as r:
            return [AmendRejected(a.inst, a.client_id, r.code, r.message, t)]
        bid, ask = m.best()
        crosses = (o.side is _SIDE_BUY and ask and a.price >= ask) or (
            o.side is _SIDE_SELL and bid and a.price <= bid
        )
        if a.qty <= o.filled or (crosses and o.tif is _TIMEINFORCE_GTX):
            del self.orders[o.client_id]
            self._unrest(m, o)
            return [OrderCanceled(o.inst, o.client_id, o.order_id, t, "amend")]
        self._unrest(m, o)
        o.price, o.qty = a.price, a.qty
        o.update_ns = t
        self._rest(m, o)  # a modified order loses its place: re-queued at the back
        return [OrderAmended(o.inst, o.client_id, o.order_id, o.price, o.qty, t)]

    def _snapshot(self, t: int, r: RequestSnapshot) -> list[Event]:
        if r.kind is _SNAPSHOTKIND_BOOK:
            m = self.markets.get(r.inst)
            if m is None or not m.has_book or not self.config.serve_book_snapshots:
                return []
            bids = sorted(compress(m.bids, m.bids.values()), reverse=True)[:1000]
            asks = sorted(compress(m.asks, m.asks.values()))[:1000]
            return [
                BookSnapshotReceived(
                    r.inst,
                    t,
                    m.book_u,
                    [x for p in bids for x in (p, m.bids[p])],
                    [x for p in asks for x in (p, m.asks[p])],
                )
            ]
        return [self.account_snapshot(t)]

    def account_snapshot(self, t: int) -> AccountSnapshotReceived:
        return AccountSnapshotReceived(
            t,
            self._balances(),
            [
                PositionRow(inst, pos.qty, self._entry_e8(inst))
                for inst, pos in self.positions.items()
                if pos.qty
            ],
            [
                OpenOrderRow(
                    o.inst,
                    o.client_id,
                    o.order_id,
                    o.side,
                    o.price,
                    o.qty,
                    o.filled,
                    o.tif,
                    o.reduce_only,
                )
                for o in self.orders.values()
            ],
        )

    # ------------------------------------------------------------------------------------
    # fills and money

    def _fill(
        self,
        t: int,
        m: _Market,
        o: SimOrder,
        qty: int,
        price: int,
        *,
        maker: bool,
        out: list[Event],
    ) -> None:
        if qty <= 0:
            return
        ins = m.ins
        o.filled += qty
        notional = ins.notional(price, qty)
        o.cum_quote += notional
        rate = self.maker_fee[o.inst] if maker else self.taker_fee[o.inst]
        fee = round_half_away(notional * rate, RATE_SCALE)
        pos = self.positions[o.inst]
        realized = pos.apply_fill(o.side, price, qty) * ins.minor_per_ticklot
        pos.fees += fee
        asset = ins.spec.margin_asset
        self.wallets[asset] = self.wallets.get(asset, 0) + realized - fee
        trade_id = self.next_trade_id
        self.next_trade_id += 1
        self.stats["fills"] += 1
        self.stats["maker_fills" if maker else "taker_fills"] += 1
        out.append(
            OrderFilled(
                o.inst,
                o.client_id,
                o.order_id,
                trade_id,
                o.side,
                price,
                qty,
                o.filled,
                o.qty,
                fee,
                asset,
                maker,
                t,
            )
        )
        if o.filled >= o.qty:
            self.orders.pop(o.client_id, None)
            self._unrest(m, o)
        out.append(self._account_update(t, "ORDER", asset, o.inst))

    def _account_update(self, t: int, reason: str, asset: str, inst: int | None) -> AccountUpdated:
        wallet = self.wallets.get(asset, 0)
        positions = (
            [PositionRow(inst, self.positions[inst].qty, self._entry_e8(inst))]
            if inst is not None
            else []
        )
        return AccountUpdated(t, reason, [BalanceRow(asset, wallet, wallet)], positions)

    def _balances(self) -> list[BalanceRow]:
        return [BalanceRow(a, w, w + self._unrealized(a)) for a, w in sorted(self.wallets.items())]

    def _entry_e8(self, inst: int) -> int:
        pos = self.positions[inst]
        if not pos.qty:
            return 0
        ps = self.markets[inst].ins.price_scale
        return round_half_away(
            abs(pos.cost) * ps.unit * PRICE_E8_SCALE, abs(pos.qty) * 10**ps.decimals
        )

    def liquidation_price_e8(self, inst: int) -> int:
        """Estimated liquidation price (cross margin, this position alone), 0 if flat.

        Binance's one-way formula with no other positions: LP = (WB - side*qty*entry) /
        (qty*MMR - side*qty), all in quote units.
        """
        pos = self.positions[inst]
        if not pos.qty:
            return 0
        m = self.markets[inst]
        asset = m.ins.spec.margin_asset
        step = m.ins.qty_scale
        qty = abs(pos.qty) * step.unit / 10**step.decimals
        side = 1 if pos.qty > 0 else -1
        entry = self._entry_e8(inst) / PRICE_E8_SCALE
        wb = self.wallets.get(asset, 0) / QUOTE_SCALE
        mmr = float(self.config.maint_margin_rate)
        den = qty * mmr - side * qty
        if den == 0:
            return 0
        lp = (wb - side * qty * entry) / den
        return max(0, int(lp * PRICE_E8_SCALE))

    def describe(self) -> dict[str, Any]:
        return {
            "open_orders": len(self.orders),
            "wallets": dict(self.wallets),
            "positions": {i: p.qty for i, p in self.positions.items() if p.qty},
            **self.stats,
        }
