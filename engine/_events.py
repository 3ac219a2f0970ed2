"""Events: facts that happened, the only input of the reducer.

Rules for editing this file (the journal depends on them):

1. Every event is a frozen, ``array_like`` msgspec Struct with an explicit integer ``tag``.
   A tag is never reused, even after its event is deleted: ``tests/test_registry.py`` holds the
   list of every tag ever issued and fails if one changes meaning.
2. Fields may only be appended at the end, with a default (msgspec schema-evolution rule for
   array-like structs). Never reorder, rename the type of, or remove a field.
3. Prices are integer ticks, quantities integer lots of the instrument; money is integer minor
   units (``QUOTE_SCALE``); rates integer ``RATE_SCALE``; mark/index prices ``PRICE_E8_SCALE``.
   ``ts_ns`` is the exchange's own time when it gave one (0 when unknown); the receive time
   lives on the journal record, not here.
4. Names are past-tense facts.

Order books travel as *flat* level lists ``[price, qty, price, qty, ...]``: decoding one list of
ints is much cheaper than a list of pairs (see ref/perf-notes.md).
"""

from __future__ import annotations

from enum import IntEnum

import msgspec

__all__ = [
    "EVENT_TYPES",
    "AccountSnapshotReceived",
    "AccountUpdated",
    "AmendRejected",
    "BalanceRow",
    "BookDeltaReceived",
    "BookSnapshotReceived",
    "CancelRejected",
    "ConnectionChanged",
    "ConnectionState",
    "Event",
    "FundingSettled",
    "InstrumentLoaded",
    "KlineUpdated",
    "MarkPriceUpdated",
    "OpenOrderRow",
    "OperatorCommanded",
    "OrderAccepted",
    "OrderAmended",
    "OrderCanceled",
    "OrderExpired",
    "OrderFilled",
    "OrderRejected",
    "OrderStatusUnknown",
    "PositionRow",
    "SessionStarted",
    "Side",
    "TimeInForce",
    "TimerFired",
    "TopOfBookUpdated",
    "TradePrinted",
]


class Side(IntEnum):
    BUY = 1
    SELL = -1


class TimeInForce(IntEnum):
    GTC = 1
    IOC = 2
    FOK = 3
    GTX = 4  # post-only


class ConnectionState(IntEnum):
    DOWN = 0
    UP = 1


class _Event(msgspec.Struct, frozen=True, array_like=True, gc=False, tag_field="t"):
    """Base of every event; not itself an event (it has no tag)."""


# ---------------------------------------------------------------------------------------------
# Market data


class InstrumentLoaded(_Event, frozen=True, tag=1):
    """An instrument's trading rules, from exchangeInfo (or an importer's built-in table)."""

    inst: int  # the journal's small integer id for this symbol
    symbol: str
    base_asset: str
    quote_asset: str
    margin_asset: str
    tick_size: str  # PRICE_FILTER.tickSize, exactly as Binance prints it
    step_size: str  # LOT_SIZE.stepSize
    min_qty: int  # lots
    max_qty: int  # lots
    min_notional: int  # MIN_NOTIONAL.notional in quote minor units
    max_num_orders: int = 200
    min_price: int = 0  # ticks
    max_price: int = 0  # ticks; 0 = no limit
    percent_up: int = 0  # PERCENT_PRICE multiplierUp, RATE_SCALE; 0 = no band
    percent_down: int = 0
    market_max_qty: int = 0  # MARKET_LOT_SIZE.maxQty in lots; 0 = same as max_qty
    contract_type: str = "PERPETUAL"


class BookSnapshotReceived(_Event, frozen=True, tag=2):
    """A REST ``GET /fapi/v1/depth`` answer (or any full-book snapshot)."""

    inst: int
    ts_ns: int
    last_update_id: int
    bids: list[int]  # flat [price, qty, ...], best first as Binance sends them
    asks: list[int]


class BookDeltaReceived(_Event, frozen=True, tag=3):
    """A ``depthUpdate`` diff: absolute level quantities, qty 0 deletes the level."""

    inst: int
    ts_ns: int
    first_update_id: int  # U
    final_update_id: int  # u
    prev_final_update_id: int  # pu (futures); -1 when the source has none (spot)
    bids: list[int]
    asks: list[int]


class TopOfBookUpdated(_Event, frozen=True, tag=4):
    """A ``bookTicker``: best bid/ask as of update id ``update_id``."""

    inst: int
    ts_ns: int
    update_id: int
    bid: int
    bid_qty: int
    ask: int
    ask_qty: int

    # The engine keeps the latest of these per instrument as its top of book (one dict store
    # per bookTicker instead of six attribute writes: this is the most frequent event).

    @property
    def valid(self) -> bool:
        """Both sides present and not crossed."""
        return 0 < self.bid < self.ask

    def mid2(self) -> int:
        """Twice the mid price, in ticks (an integer even when the spread is odd)."""
        return self.bid + self.ask


class TradePrinted(_Event, frozen=True, tag=5):
    """A public trade (``trade`` or ``aggTrade``); ``taker_side`` is the aggressor."""

    inst: int
    ts_ns: int
    trade_id: int
    price: int
    qty: int
    taker_side: Side


class MarkPriceUpdated(_Event, frozen=True, tag=6):
    inst: int
    ts_ns: int
    mark_e8: int
    index_e8: int
    funding_rate: int  # RATE_SCALE; the rate that settles at next_funding_ns
    next_funding_ns: int


class KlineUpdated(_Event, frozen=True, tag=7):
    """A candle; ``closed`` is False while it is still forming (never treat that as final)."""

    inst: int
    ts_ns: int
    interval: str  # Binance's spelling: "1m", "5m", "1h", ...
    open_ns: int
    close_ns: int
    open: int
    high: int
    low: int
    close: int
    volume: int  # lots
    quote_volume: int  # minor units
    trades: int
    taker_buy_volume: int  # lots
    closed: bool


# ---------------------------------------------------------------------------------------------
# Time, session, operator, connections


#: Binance's kline intervals (the ``interval`` of a KlineUpdated) in seconds
KLINE_INTERVAL_S: dict[str, int] = {
    "1m": 60,
    "3m": 180,
    "5m": 300,
    "15m": 900,
    "30m": 1800,
    "1h": 3600,
    "2h": 7200,
    "4h": 14400,
    "6h": 21600,
    "8h": 28800,
    "12h": 43200,
    "1d": 86400,
    "3d": 259200,
    "1w": 604800,
}


class TimerFired(_Event, frozen=True, tag=20):
    timer_id: int
    scheduled_ns: int


class SessionStarted(_Event, frozen=True, tag=21):
    """A process opened the journal for writing: a live run, a backtest, a restart."""

    session: int
    mode: str  # "backtest" | "paper" | "testnet" | "live" | "demo"


class ConnectionChanged(_Event, frozen=True, tag=22):
    stream: str  # "market", "user", "rest", "ws-api", ...
    state: ConnectionState
    reason: str = ""


class OperatorCommanded(_Event, frozen=True, tag=23):
    """A human (or script) told the engine something: pause, resume, flatten, cancel-all."""

    command: str
    args: dict[str, str] = {}


# ---------------------------------------------------------------------------------------------
# Order life cycle (answers from the exchange, or from the simulated exchange)


class OrderAccepted(_Event, frozen=True, tag=30):
    inst: int
    client_id: str
    order_id: int
    ts_ns: int


class OrderRejected(_Event, frozen=True, tag=31):
    """The exchange refused a new order; ``code`` is Binance's error code (e.g. -5022)."""

    inst: int
    client_id: str
    code: int
    message: str
    ts_ns: int


class OrderFilled(_Event, frozen=True, tag=32):
    """One execution of one of our orders (partial or final)."""

    inst: int
    client_id: str
    order_id: int
    trade_id: int
    side: Side
    price: int  # ticks
    qty: int  # lots of this fill
    cum_qty: int  # lots filled so far including this one
    order_qty: int  # the order's size
    fee: int  # minor units of fee_asset, positive = paid, negative = rebate
    fee_asset: str
    is_maker: bool
    ts_ns: int


class OrderCanceled(_Event, frozen=True, tag=33):
    inst: int
    client_id: str
    order_id: int
    ts_ns: int
    reason: str = ""


class OrderExpired(_Event, frozen=True, tag=34):
    """IOC/FOK remainder, STP, GTD, ... ; ``reason`` is Binance's ``er`` code."""

    inst: int
    client_id: str
    order_id: int
    ts_ns: int
    reason: int = 0


class OrderStatusUnknown(_Event, frozen=True, tag=35):
    """We asked and got no answer (timeout, 503 "unknown", disconnect): it may or may not exist."""

    inst: int
    client_id: str
    ts_ns: int
    reason: str


class OrderAmended(_Event, frozen=True, tag=36):
    inst: int
    client_id: str
    order_id: int
    price: int
    qty: int
    ts_ns: int


class CancelRejected(_Event, frozen=True, tag=37):
    """A cancel failed, e.g. -2011 "Unknown order sent." (the order is not open any more)."""

    inst: int
    client_id: str
    code: int
    message: str
    ts_ns: int


class AmendRejected(_Event, frozen=True, tag=38):
    """A modify (PUT /fapi/v1/order) was refused; the order stays as it was."""

    inst: int
    client_id: str
    code: int
    message: str
    ts_ns: int


# ---------------------------------------------------------------------------------------------
# Account


class BalanceRow(msgspec.Struct, frozen=True, array_like=True, gc=False):
    asset: str
    wallet: int  # minor units
    available: int


class PositionRow(msgspec.Struct, frozen=True, array_like=True, gc=False):
    inst: int
    qty: int  # signed lots (one-way mode)
    entry_e8: int  # average entry price, PRICE_E8_SCALE


class OpenOrderRow(msgspec.Struct, frozen=True, array_like=True, gc=False):
    inst: int
    client_id: str
    order_id: int
    side: Side
    price: int
    qty: int
    filled: int
    tif: TimeInForce
    reduce_only: bool


class AccountSnapshotReceived(_Event, frozen=True, tag=50):
    """Reconciliation input: balances, positions and open orders as the exchange sees them."""

    ts_ns: int
    balances: list[BalanceRow]
    positions: list[PositionRow]
    open_orders: list[OpenOrderRow]


class FundingSettled(_Event, frozen=True, tag=51):
    """Funding paid (``amount`` < 0) or received at a funding time, in the margin asset."""

    inst: int
    ts_ns: int
    position: int  # signed lots held at the funding time
    mark_e8: int
    rate: int  # RATE_SCALE
    amount: int  # minor units; negative = paid
    asset: str


class AccountUpdated(_Event, frozen=True, tag=52):
    """Balances and positions after a change (Binance's ACCOUNT_UPDATE): a fill ("ORDER"),
    funding ("FUNDING_FEE"), a deposit, ... Values are new totals, not deltas."""

    ts_ns: int
    reason: str
    balances: list[BalanceRow]
    positions: list[PositionRow]


EVENT_TYPES: tuple[type[_Event], ...] = (
    InstrumentLoaded,
    BookSnapshotReceived,
    BookDeltaReceived,
    TopOfBookUpdated,
    TradePrinted,
    MarkPriceUpdated,
    KlineUpdated,
    TimerFired,
    SessionStarted,
    ConnectionChanged,
    OperatorCommanded,
    OrderAccepted,
    OrderRejected,
    OrderFilled,
    OrderCanceled,
    OrderExpired,
    OrderStatusUnknown,
    OrderAmended,
    CancelRejected,
    AmendRejected,
    AccountSnapshotReceived,
    FundingSettled,
    AccountUpdated,
)

Event = (
    InstrumentLoaded
    | BookSnapshotReceived
    | BookDeltaReceived
    | TopOfBookUpdated
    | TradePrinted
    | MarkPriceUpdated
    | KlineUpdated
    | TimerFired
    | SessionStarted
    | ConnectionChanged
    | OperatorCommanded
    | OrderAccepted
    | OrderRejected
    | OrderFilled
    | OrderCanceled
    | OrderExpired
    | OrderStatusUnknown
    | OrderAmended
    | CancelRejected
    | AmendRejected
    | AccountSnapshotReceived
    | FundingSettled
    | AccountUpdated
)
