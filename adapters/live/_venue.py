"""Venues: where the runtime's intents are carried out.

``ExchangeVenue`` is Binance (or anything that speaks its API, such as the local exchange):
REST and, optionally, the WebSocket API for orders, the market streams and the user stream.
``PaperVenue`` takes real market data from the same streams but executes on the simulated
exchange (``replay/sim``), in process: nothing is sent to the exchange.

The executor rules (ref/binance.md §7):

* a new order or an amend that times out or gets a 5xx becomes ``OrderStatusUnknown`` and is
  resolved by querying its client order id (found: adopt its state and fills; not found once
  its ``timestamp + recvWindow`` has passed on the server: it never existed) — never resent;
* a cancel is idempotent: on no answer it is sent again;
* a request refused by the rate budget comes back as a rejection with Binance's code;
* requests about one client order id go out in the order they were decided (a per-id lock),
  so a cancel can never overtake its own order;
* with ``order_entry: rest_batch`` the new orders decided for one symbol before any of them
  is sent (one step's, e.g. a grid's ladder) go out in ``batchOrders`` requests of up to 5.
  Each item's answer is handled as a single order's (an order: its ack; ``{code, msg}``:
  a rejection with that code); a batch that times out or gets a 5xx makes every one of its
  orders ``OrderStatusUnknown``, each resolved by its own query — never resent. Cancels
  decided together go out the same way, up to 10 per ``DELETE batchOrders`` (IP weight 1
  for all of them): each item's answer is handled as a single cancel's, and a batch without
  a definite answer sends each of its cancels again on its own (a cancel is idempotent).
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable, Coroutine
from functools import partial
from typing import TYPE_CHECKING, Any

import msgspec
import trio

from adapters.binance import MarketParser, instrument_from_symbol_info
from adapters.binance._orders import amend_params, place_params
from adapters.binance._rest import OutcomeUnknown, RestClient, RestError, Throttled
from adapters.binance._sign import Credentials
from adapters.binance._streams import (
    StreamConfig,
    market_stream_urls,
    run_market_stream,
    run_user_stream,
)
from adapters.binance._user import ApiError, OrderInfo, UserParser
from adapters.binance._ws_api import Started
from engine import (
    AccountSnapshotReceived,
    AccountUpdated,
    AmendOrder,
    AmendRejected,
    CancelAllOrders,
    CancelOrder,
    CancelRejected,
    Event,
    EventRecord,
    FundingSettled,
    InstrumentLoaded,
    Intent,
    OperatorCommanded,
    OrderAccepted,
    OrderAmended,
    OrderCanceled,
    OrderExpired,
    OrderFilled,
    OrderRejected,
    OrderStatus,
    OrderStatusUnknown,
    PlaceOrder,
    RequestSnapshot,
    SessionStarted,
    SnapshotKind,
)

from ._config import Endpoints, LiveConfig

if TYPE_CHECKING:
    from ._runtime import Runtime

__all__ = ["ExchangeVenue", "PaperVenue"]

_MS = 1_000_000
#: Binance's most orders in one ``batchOrders`` request
BATCH_MAX = 5
#: Binance's most cancels in one ``DELETE batchOrders`` request
CANCEL_BATCH_MAX = 10


class _Batch:
    """New orders for one symbol that go out in one ``batchOrders`` request.

    Filled by ``ExchangeVenue.begin`` in the consumer's step (each order's per-id lock is
    taken there); the first of its orders' tasks to run sends it, closing it to newcomers;
    every order's task then waits for the answer and handles its own item.
    """

    __slots__ = (
        "answers",
        "done",
        "error",
        "inst",
        "items",
        "sent",
        "sent_ms",
        "t0_ns",
        "unknown",
    )

    def __init__(self, inst: int, t0_ns: int) -> None:
        self.inst = inst
        self.t0_ns = t0_ns
        self.items: list[PlaceOrder] = []
        self.sent = False
        self.sent_ms = 0
        self.done = trio.Event()
        #: the answer's items, in request order (an order, or Binance's per-item error)
        self.answers: list[OrderInfo | ApiError] = []
        #: the whole request was refused: every order is rejected with this error
        self.error: RestError | None = None
        #: no definite answer (timeout, 5xx, unreadable): every order's status is unknown
        self.unknown = ""


class _CancelBatch:
    """Cancels for one symbol that go out in one ``DELETE batchOrders`` request (filled and
    sent like ``_Batch``)."""

    __slots__ = ("answers", "done", "failed", "inst", "items", "sent", "t0_ns")

    def __init__(self, inst: int, t0_ns: int) -> None:
        self.inst = inst
        self.t0_ns = t0_ns
        self.items: list[CancelOrder] = []
        self.sent = False
        self.done = trio.Event()
        #: the answer's items, in request order (the order, or Binance's per-item error)
        self.answers: list[OrderInfo | ApiError] = []
        #: no usable answer for the whole batch: each cancel goes again on its own
        self.failed = ""


class _MarketSide:
    """Market data for both venues: REST exchangeInfo/depth and the market streams."""

    def __init__(
        self,
        endpoints: Endpoints,
        live: LiveConfig,
        rest: RestClient,
        market: Endpoints | None = None,
    ) -> None:
        self.endpoints = endpoints
        self.live = live
        self.rest = rest
        #: market streams and depth snapshots from elsewhere (e.g. the bench's firehose);
        #: instruments, orders and the user stream stay on ``endpoints``
        self.market_endpoints = market or endpoints
        self.market_rest = RestClient(market.rest_url, None) if market is not None else rest
        self.market_parser = MarketParser()
        self.user_parser = UserParser()
        self.stream_cfg = StreamConfig(
            rotate_after_s=live.rotate_after_s,
            stale_after_s=live.stale_after_s,
            keepalive_s=live.keepalive_s,
        )
        #: stream connections replaced without a gap at the 23 h rotation, and new ones that
        #: failed (the old one kept, tried again later)
        self.stream_stats = {
            "rotations": 0,
            "rotations_failed": 0,
            "user_rotations": 0,
            "user_rotations_failed": 0,
        }
        self._market_scope = trio.CancelScope()
        self._snapshot_busy: dict[int, bool] = {}
        self._symbol_of: dict[int, str] = {}
        self.rt: Runtime | None = None

    async def instruments(self, symbols: list[str]) -> list[InstrumentLoaded]:
        info = msgspec.json.decode(await _patiently(self.rest.exchange_info))
        by_symbol = {s["symbol"]: s for s in info.get("symbols", [])}
        out = []
        for i, sym in enumerate(symbols):
            if sym not in by_symbol:
                raise RestError(400, -1121, f"Invalid symbol {sym}", "/fapi/v1/exchangeInfo")
            out.append(instrument_from_symbol_info(i, by_symbol[sym]))
        return out

    def _learn(self, rt: Runtime) -> None:
        self.rt = rt
        for inst, spec in rt.instruments.items():
            self.market_parser.add_instrument(spec)
            self.user_parser.add_instrument(spec)
            self._symbol_of[inst] = spec.symbol

    async def _start_market(self, nursery: trio.Nursery, rt: Runtime, emit: Any) -> None:
        engine = rt.engine
        assert engine is not None
        needed = engine.state.strategy.candles_needed()
        await self._load_candles(rt, needed)
        urls = market_stream_urls(
            self.market_endpoints.ws_url,
            rt.symbols,
            routed=self.endpoints.routed_streams,
            kline=self.live.kline,
            candles=[(s, interval) for s, interval, _ in needed],
        )

        async def market(task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
            with self._market_scope:
                async with trio.open_nursery() as n:
                    for name, url in urls.items():
                        await n.start(
                            partial(run_market_stream, stats=self.stream_stats),
                            name,
                            url,
                            self.market_parser,
                            emit,
                            rt.set_connection,
                            self.stream_cfg,
                        )
                    task_status.started()

        await nursery.start(market)

    async def _load_candles(self, rt: Runtime, needed: list[tuple[str, str, int]]) -> None:
        """The closed candles a strategy needs, from REST, journaled like streamed ones (the
        grid's volume breaker would otherwise hold entries for its whole window). A restart
        loads them again; candles the strategy has already seen are ignored by it."""
        for symbol, interval, count in needed:
            if symbol not in rt.inst_by_symbol:
                raise ValueError(
                    f"the strategy watches {symbol} {interval} candles but this run does not "
                    f"trade {symbol}: add it to live.symbols or stop watching it"
                )
            body = await _patiently(self.market_rest.klines, symbol, interval, count + 1)
            candles = self.market_parser.parse_klines(
                symbol, interval, body, self.rest.timestamp_ms()
            )
            for ev in candles[-count:]:
                await rt.emit(ev)
            rt.log(f"loaded {len(candles[-count:])} closed {symbol} {interval} candles")

    def stop_market(self) -> None:
        self._market_scope.cancel()

    async def _book_snapshot(self, rt: Runtime, r: RequestSnapshot) -> list[Event]:
        if self._snapshot_busy.get(r.inst):
            return []  # one in flight already answers it
        self._snapshot_busy[r.inst] = True
        try:
            sym = self._symbol_of[r.inst]
            for attempt in range(5):
                try:
                    body = await self.market_rest.depth(sym)
                    return [self.market_parser.parse_snapshot(sym, body)]
                except RestError as e:
                    rt.log(f"depth snapshot {sym} failed: {e}")
                    await trio.sleep(0.5 * 2**attempt)
            return []
        finally:
            self._snapshot_busy[r.inst] = False


async def _patiently(fn: Any, *args: Any, attempts: int = 8) -> Any:
    """A start-up request: wait out rate limits and transient failures (bounded)."""
    for attempt in range(attempts):
        try:
            return await fn(*args)
        except Throttled as e:
            if attempt == attempts - 1:
                raise
            await trio.sleep(min(60.0, max(0.5, e.until - time.monotonic())))
        except RestError as e:
            if attempt == attempts - 1 or e.status not in (0, 500, 502, 503, 504):
                raise
            await trio.sleep(0.5 * 2**attempt)
    raise AssertionError("unreachable")


#: what the simulated exchange answers with (``PaperVenue.replayed`` crosses them off)
_ANSWER_TYPES = frozenset(
    {
        OrderAccepted,
        OrderRejected,
        OrderFilled,
        OrderCanceled,
        OrderExpired,
        OrderAmended,
        AmendRejected,
        CancelRejected,
        FundingSettled,
        AccountUpdated,
    }
)


def _funding_key(ev: FundingSettled) -> tuple[int, int]:
    # the stream stamps a funding with its message time, the income row with the settlement:
    # a few ms apart, never two fundings of one symbol in a minute
    return ev.inst, ev.ts_ns // 60_000_000_000


class ExchangeVenue(_MarketSide):
    """Binance's API (or the local exchange): REST/WS-API orders, market and user streams."""

    name = "exchange"

    def __init__(
        self,
        endpoints: Endpoints,
        live: LiveConfig,
        credentials: Credentials,
        *,
        rest: RestClient | None = None,
        market: Endpoints | None = None,
    ) -> None:
        rest = rest or RestClient(
            endpoints.rest_url,
            credentials,
            recv_window_ms=live.recv_window_ms,
            timeout_s=live.timeout_s,
        )
        super().__init__(endpoints, live, rest, market)
        self.credentials = credentials
        #: one request at a time per client order id (a semaphore, not a lock: ``begin``
        #: takes it in the consumer's task and the request's own task gives it back)
        self._locks: dict[str, trio.Semaphore] = {}
        self._resolving: set[str] = set()
        self.ws_api: Any = None
        #: ``rest_batch``: the batch of each instrument still open to new orders
        self._batching = live.order_entry == "rest_batch"
        self._open_batch: dict[int, _Batch] = {}
        self._open_cancels: dict[int, _CancelBatch] = {}
        #: funding already journaled, as (inst, minute of its time): a cross-margin funding
        #: reaches the user stream without its symbol (ref/binance.md §4.4), so it is looked up
        #: in the income history, which also holds what a stream delivered itself
        self._funding_seen: set[tuple[int, int]] = set()
        #: income rows older than this are not ours to journal (before this journal's last
        #: event: the time we were away is caught up, not the account's whole history)
        self._funding_since_ns = 0
        self.stats = {
            "orders_sent": 0,
            "batches": 0,  # batchOrders requests sent
            "batched_orders": 0,  # orders sent in them
            "cancel_batches": 0,  # DELETE batchOrders requests sent
            "batched_cancels": 0,  # cancels sent in them
            "written_in_step": 0,  # WS-API requests ``begin`` put on the socket at once
            "unknown": 0,
            "resolved_found": 0,
            "resolved_absent": 0,
            "catchup_fills": 0,
            "funding_from_income": 0,  # cross-margin funding learnt from /fapi/v1/income
            "reconciliations": 0,
            "orphans": 0,
            "position_mismatches": 0,
        }

    async def start(self, nursery: trio.Nursery, rt: Runtime) -> None:
        self._learn(rt)
        self.rest.latency_sink = rt.latencies
        await _patiently(self.rest.sync_time)
        if self.live.order_entry == "ws_api":
            from adapters.binance._ws_api import WsApiClient

            self.ws_api = WsApiClient(self.endpoints.ws_api_url, self.credentials, self.rest)
            self.ws_api.latency_sink = rt.latencies
            await nursery.start(self.ws_api.run)

        if not self._funding_since_ns:
            self._funding_since_ns = rt.clock()

        async def on_connected() -> None:
            await self.reconcile(rt)
            await self._funding_catch_up(rt)

        async def emit_user(ev: Event, t0: int) -> None:
            await rt.emit(ev, t0)
            kind = type(ev)
            if kind is FundingSettled:
                self._funding_seen.add(_funding_key(ev))  # type: ignore[arg-type]
            elif kind is AccountUpdated and ev.reason == "FUNDING_FEE" and not ev.positions:  # type: ignore[attr-defined]
                rt.nursery_start(self._funding_catch_up, rt)  # cross margin: which symbol?

        await nursery.start(
            partial(run_user_stream, stats=self.stream_stats),
            self.rest,
            self.endpoints.ws_url,
            self.user_parser,
            emit_user,
            rt.set_connection,
            on_connected,
            self.stream_cfg,
        )
        await self._start_market(nursery, rt, rt.emit)
        nursery.start_soon(self._resync_clock)

    async def _resync_clock(self) -> None:
        while True:
            await trio.sleep(300)
            try:
                await self.rest.sync_time()
            except RestError:
                pass

    def replayed(self, rec: EventRecord, intents: list[Intent]) -> None:
        self._funding_since_ns = rec.recv_ns
        if type(rec.event) is FundingSettled:
            self._funding_seen.add(_funding_key(rec.event))

    async def _funding_catch_up(self, rt: Runtime) -> None:
        """Journal the funding of our symbols the income history has and we have not.

        Run after a cross-margin FUNDING_FEE update (its ``B`` row has the amount but no
        symbol) and after every user-stream (re)connection (funding settled while away)."""
        try:
            body = await self.rest.income("FUNDING_FEE", self._funding_since_ns // _MS)
        except RestError as e:
            rt.log(f"funding: income query failed ({e}); the next connection or funding retries")
            return
        for ev in sorted(self.user_parser.funding_from_income(body), key=lambda e: e.ts_ns):
            key = _funding_key(ev)
            if key in self._funding_seen or ev.ts_ns < self._funding_since_ns:
                continue
            self._funding_seen.add(key)
            self.stats["funding_from_income"] += 1
            await rt.emit(ev)

    async def aclose(self) -> None:
        await self.rest.aclose()
        if self.market_rest is not self.rest:
            await self.market_rest.aclose()

    def describe(self) -> dict[str, Any]:
        return {
            **self.stats,
            "streams": self.stream_stats,
            "rest": self.rest.stats,
            "budget": self.rest.budget.describe(),
            "user_skipped": self.user_parser.skipped,
            "market_skipped": self.market_parser.skipped,
        }

    def _lock(self, cid: str) -> trio.Semaphore:
        lock = self._locks.get(cid)
        if lock is None:
            lock = self._locks[cid] = trio.Semaphore(1, max_value=1)
        return lock

    def _unlock(self, cid: str, lock: trio.Semaphore) -> None:
        lock.release()
        if lock.value:  # nobody held or waited for it: forget it (one per order, for weeks)
            self._locks.pop(cid, None)

    def begin(self, intent: Intent, t0_ns: int) -> Coroutine[Any, Any, None] | None:
        """Write a WebSocket-API place or cancel request now, in the caller's step, so no
        scheduler round sits between the decision and its bytes; returns the coroutine that
        handles the answer (to run as a task), or None: then ``execute`` it as usual."""
        ws_api = self.ws_api
        kind = type(intent)
        if ws_api is None or (kind is not PlaceOrder and kind is not CancelOrder):
            if self._batching and kind is PlaceOrder:
                return self._join(
                    intent,  # type: ignore[arg-type]
                    self._open_batch,
                    partial(_Batch, intent.inst, t0_ns),  # type: ignore[union-attr]
                    BATCH_MAX,
                    self._batched,
                )
            if self._batching and kind is CancelOrder:
                return self._join(
                    intent,  # type: ignore[arg-type]
                    self._open_cancels,
                    partial(_CancelBatch, intent.inst, t0_ns),  # type: ignore[union-attr]
                    CANCEL_BATCH_MAX,
                    self._cancel_batched,
                )
            return None
        rt = self.rt
        assert rt is not None
        lock = self._lock(intent.client_id)
        try:
            lock.acquire_nowait()
        except trio.WouldBlock:
            return None  # a request for this id is in flight: wait for it in ``execute``
        sent_ms = self.rest.timestamp_ms()
        if kind is PlaceOrder:
            ins = self.market_parser.instrument(self._symbol_of[intent.inst])
            params = place_params(intent, ins)  # type: ignore[arg-type]
            started = ws_api.start_place(params, t0_ns)
        else:
            started = ws_api.start_cancel(self._symbol_of[intent.inst], intent.client_id, t0_ns)
        if started is None:  # not connected: the usual path waits for the connection
            self._unlock(intent.client_id, lock)
            return None
        self.stats["written_in_step"] += 1
        return self._finish_begun(rt, intent, t0_ns, lock, started, sent_ms)

    async def _finish_begun(
        self,
        rt: Runtime,
        intent: Intent,
        t0_ns: int,
        lock: trio.Semaphore,
        started: Started,
        sent_ms: int,
    ) -> None:
        try:
            if type(intent) is PlaceOrder:
                await self._place(rt, intent, t0_ns, started, sent_ms)
            else:
                await self._cancel(rt, intent, t0_ns, started)  # type: ignore[arg-type]
        except RestError as e:
            rt.log(f"{type(intent).__name__} failed: {e}")
        finally:
            self._unlock(intent.client_id, lock)

    # -- batches (order_entry: rest_batch) -----------------------------------------------

    def _join(
        self,
        intent: PlaceOrder | CancelOrder,
        open_batches: dict[int, Any],
        new_batch: Callable[[], Any],
        max_items: int,
        handle: Callable[..., Coroutine[Any, Any, None]],
    ) -> Coroutine[Any, Any, None] | None:
        """Put ``intent`` in its instrument's open batch (a new one if none is open or it is
        full); ``handle``: the coroutine that sends the batch if it runs first, then handles
        ``intent``'s answer. None if a request for its id is in flight (``execute`` then waits
        for it)."""
        rt = self.rt
        assert rt is not None
        lock = self._lock(intent.client_id)
        try:
            lock.acquire_nowait()
        except trio.WouldBlock:
            return None
        batch = open_batches.get(intent.inst)
        if batch is None or len(batch.items) >= max_items:
            batch = open_batches[intent.inst] = new_batch()
        batch.items.append(intent)
        return handle(rt, batch, len(batch.items) - 1, lock)

    async def _batched(self, rt: Runtime, batch: _Batch, i: int, lock: trio.Semaphore) -> None:
        p = batch.items[i]
        try:
            if not batch.sent:
                await self._send_batch(rt, batch)
            else:
                await batch.done.wait()
            if len(batch.items) == 1:
                return  # sent alone by ``_send_batch``, answer handled there
            if batch.unknown:
                await self._unknown_place(rt, p, batch.unknown, batch.sent_ms)
                return
            if batch.error is not None:
                e = batch.error
                await rt.emit(OrderRejected(p.inst, p.client_id, e.code, e.msg, rt.clock()))
                return
            ans = batch.answers[i] if i < len(batch.answers) else None
            if isinstance(ans, ApiError):
                if ans.code in (-1006, -1007):  # this item's status is unknown (§7.1)
                    await self._unknown_place(rt, p, f"item {ans.code}", batch.sent_ms)
                else:
                    await rt.emit(OrderRejected(p.inst, p.client_id, ans.code, ans.msg, rt.clock()))
            elif ans is None or ans.clientOrderId != p.client_id:
                # missing or not ours: the answer does not say what became of this order
                await self._unknown_place(rt, p, "batch item unreadable", batch.sent_ms)
            else:
                for ev in self.user_parser.order_events(ans):
                    await rt.emit(ev)
        except RestError as e:
            rt.log(f"PlaceOrder {p.client_id} failed: {e}")
        finally:
            self._unlock(p.client_id, lock)

    async def _send_batch(self, rt: Runtime, batch: _Batch) -> None:
        """Send ``batch`` (closing it); its answer in ``batch``, ``batch.done`` set."""
        batch.sent = True
        if self._open_batch.get(batch.inst) is batch:
            del self._open_batch[batch.inst]
        try:
            orders = batch.items
            if len(orders) == 1:
                # a batch costs 5 IP weight and 5 on the 10 s order count: one order goes alone
                await self._place(rt, orders[0], batch.t0_ns)
                return
            n = len(orders)
            self.stats["orders_sent"] += n
            self.stats["batches"] += 1
            self.stats["batched_orders"] += n
            ins = self.market_parser.instrument(self._symbol_of[batch.inst])
            items = [{k: str(v) for k, v in place_params(p, ins)} for p in orders]
            batch.sent_ms = self.rest.timestamp_ms()
            try:
                body = await self.rest.batch_orders(items, batch.t0_ns)
                batch.answers = self.user_parser.batch(body)
            except OutcomeUnknown as e:
                batch.unknown = e.reason
                batch.sent_ms = max(batch.sent_ms, e.timestamp_ms)
            except (msgspec.DecodeError, msgspec.ValidationError):
                batch.unknown = "unreadable batch answer"
            except RestError as e:
                batch.error = e
        finally:
            batch.done.set()

    async def _cancel_batched(
        self, rt: Runtime, batch: _CancelBatch, i: int, lock: trio.Semaphore
    ) -> None:
        c = batch.items[i]
        try:
            if not batch.sent:
                await self._send_cancels(rt, batch)
            else:
                await batch.done.wait()
            if len(batch.items) == 1:
                return  # sent alone by ``_send_cancels``, answer handled there
            ans = batch.answers[i] if not batch.failed and i < len(batch.answers) else None
            if isinstance(ans, ApiError) and ans.code not in (-1000, -1001, -1006, -1007):
                await rt.emit(CancelRejected(c.inst, c.client_id, ans.code, ans.msg, rt.clock()))
            elif isinstance(ans, OrderInfo) and ans.clientOrderId == c.client_id:
                if ans.status == "CANCELED":
                    await rt.emit(OrderCanceled(c.inst, c.client_id, ans.orderId, rt.clock()))
            else:
                # no answer for this item (the batch failed, an unknown item, or an item
                # that is not ours): a cancel is idempotent, so it goes again on its own
                await self._cancel(rt, c)
        except RestError as e:
            rt.log(f"CancelOrder {c.client_id} failed: {e}")
        finally:
            self._unlock(c.client_id, lock)

    async def _send_cancels(self, rt: Runtime, batch: _CancelBatch) -> None:
        """Send ``batch`` (closing it); its answer in ``batch``, ``batch.done`` set."""
        batch.sent = True
        if self._open_cancels.get(batch.inst) is batch:
            del self._open_cancels[batch.inst]
        try:
            cancels = batch.items
            if len(cancels) == 1:
                await self._cancel(rt, cancels[0], batch.t0_ns)
                return
            self.stats["cancel_batches"] += 1
            self.stats["batched_cancels"] += len(cancels)
            symbol = self._symbol_of[batch.inst]
            try:
                body = await self.rest.batch_cancel(
                    symbol, [c.client_id for c in cancels], batch.t0_ns
                )
                batch.answers = self.user_parser.batch(body)
            except OutcomeUnknown as e:
                batch.failed = e.reason
            except (msgspec.DecodeError, msgspec.ValidationError):
                batch.failed = "unreadable batch answer"
            except RestError as e:
                batch.failed = str(e)
        finally:
            batch.done.set()

    # -- intents -------------------------------------------------------------------------

    async def execute(self, intent: Intent, t0_ns: int) -> None:
        rt = self.rt
        assert rt is not None
        try:
            await self._execute(rt, intent, t0_ns)
        except RestError as e:  # a read or cancel-all that failed: logged, the engine retries
            rt.log(f"{type(intent).__name__} failed: {e}")

    async def _execute(self, rt: Runtime, intent: Intent, t0_ns: int) -> None:
        kind = type(intent)
        if kind is PlaceOrder or kind is CancelOrder or kind is AmendOrder:
            # the per-id lock, taken without a checkpoint when it is free (nearly always):
            # ``async with lock`` yields once even then, and the request waits a scheduler
            # round behind everything runnable before its bytes are written
            lock = self._lock(intent.client_id)
            try:
                lock.acquire_nowait()
            except trio.WouldBlock:
                await lock.acquire()
            try:
                if kind is PlaceOrder:
                    await self._place(rt, intent, t0_ns)  # type: ignore[arg-type]
                elif kind is CancelOrder:
                    await self._cancel(rt, intent, t0_ns)  # type: ignore[arg-type]
                else:
                    await self._amend(rt, intent, t0_ns)  # type: ignore[arg-type]
            finally:
                self._unlock(intent.client_id, lock)
        elif kind is CancelAllOrders:
            await self.cancel_all(self._symbol_of[intent.inst])
        elif kind is RequestSnapshot:
            if intent.kind is SnapshotKind.BOOK:
                for ev in await self._book_snapshot(rt, intent):
                    await rt.emit(ev)
            else:
                await self.reconcile(rt)

    async def _place(
        self,
        rt: Runtime,
        p: PlaceOrder,
        t0_ns: int,
        started: Started | None = None,
        sent_ms: int = 0,
    ) -> None:
        """``started``: the request ``begin`` already wrote (WebSocket API) at ``sent_ms``."""
        self.stats["orders_sent"] += 1
        sent_ms = sent_ms or self.rest.timestamp_ms()
        try:
            if started is not None:
                assert self.ws_api is not None
                info = self.ws_api.order_info(await self.ws_api.finish(started))
            else:
                params = place_params(p, self.market_parser.instrument(self._symbol_of[p.inst]))
                if self.ws_api is not None:
                    info = await self.ws_api.place(params, t0_ns)
                else:
                    body = await self.rest.request(
                        "POST", "/fapi/v1/order", params, signed=True, order=True, t0_ns=t0_ns
                    )
                    info = self.user_parser.order(body)
        except OutcomeUnknown as e:
            # the timestamp it was signed with (later than ``sent_ms`` after a -1021 resync)
            await self._unknown_place(rt, p, e.reason, max(sent_ms, e.timestamp_ms))
            return
        except RestError as e:
            await rt.emit(OrderRejected(p.inst, p.client_id, e.code, e.msg, rt.clock()))
            return
        for ev in self.user_parser.order_events(info):
            await rt.emit(ev)

    async def _unknown_place(self, rt: Runtime, p: PlaceOrder, reason: str, sent_ms: int) -> None:
        """A new order sent at ``sent_ms`` got no definite answer: say so, then find out."""
        self.stats["unknown"] += 1
        await rt.emit(OrderStatusUnknown(p.inst, p.client_id, rt.clock(), reason))
        await self._resolve(rt, p.inst, p.client_id, sent_ms)

    async def _cancel(
        self, rt: Runtime, c: CancelOrder, t0_ns: int = 0, started: Started | None = None
    ) -> None:
        """``started``: the first attempt, already written by ``begin`` (WebSocket API)."""
        sym = self._symbol_of[c.inst]
        for attempt in range(5):
            try:
                if started is not None and not attempt:
                    assert self.ws_api is not None
                    info = self.ws_api.order_info(await self.ws_api.finish(started))
                elif self.ws_api is not None:
                    info = await self.ws_api.cancel(sym, c.client_id, t0_ns if not attempt else 0)
                else:
                    body = await self.rest.cancel_order(
                        sym, c.client_id, t0_ns if not attempt else 0
                    )
                    info = self.user_parser.order(body)
            except OutcomeUnknown:
                await trio.sleep(0.2 * 2**attempt)
                continue
            except RestError as e:
                if e.code in (-1007, -1001) and attempt < 4:
                    await trio.sleep(0.2 * 2**attempt)
                    continue
                await rt.emit(CancelRejected(c.inst, c.client_id, e.code, e.msg, rt.clock()))
                return
            if info.status == "CANCELED":
                await rt.emit(OrderCanceled(c.inst, c.client_id, info.orderId, rt.clock()))
            return
        await rt.emit(CancelRejected(c.inst, c.client_id, -1007, "no answer", rt.clock()))

    async def _amend(self, rt: Runtime, a: AmendOrder, t0_ns: int = 0) -> None:
        ins = self.market_parser.instrument(self._symbol_of[a.inst])
        params = amend_params(a, ins)
        try:
            if self.ws_api is not None:
                info = await self.ws_api.amend(params, t0_ns)
            else:
                info = self.user_parser.order(await self.rest.amend_order(params, t0_ns))
        except OutcomeUnknown:
            self.stats["unknown"] += 1
            try:
                info = self.user_parser.order(await self.rest.query_order(ins.symbol, a.client_id))
            except RestError as e:
                await rt.emit(AmendRejected(a.inst, a.client_id, e.code, e.msg, rt.clock()))
                return
            if (
                ins.price_scale.to_units(info.price) != a.price
                or ins.qty_scale.to_units(info.origQty) != a.qty
            ):
                await rt.emit(
                    AmendRejected(a.inst, a.client_id, -1007, "amend not applied", rt.clock())
                )
                return
        except RestError as e:
            await rt.emit(AmendRejected(a.inst, a.client_id, e.code, e.msg, rt.clock()))
            return
        ev = self.user_parser.amended(info)
        if ev is not None:
            await rt.emit(ev)

    async def cancel_all(self, symbol: str) -> None:
        await self.rest.cancel_all(symbol)

    async def dead_man(self, symbol: str, countdown_ms: int) -> None:
        await self.rest.countdown_cancel_all(symbol, countdown_ms)

    # -- resolving unknown outcomes and catching up --------------------------------------

    async def _resolve(self, rt: Runtime, inst: int, cid: str, sent_ms: int) -> None:
        """Find out whether order ``cid`` exists; emit what it went through (§7.3)."""
        if cid in self._resolving:
            return
        self._resolving.add(cid)
        try:
            await trio.sleep(0.3)
            delay = 0.3
            while True:
                found = await self._lookup(rt, inst, cid)
                if found:
                    self.stats["resolved_found"] += 1
                    return
                # not found: once the server's clock is past timestamp + recvWindow (plus a
                # margin) the matching engine refuses it (-5028), so it can never exist
                server_ms = self.rest.timestamp_ms() + 100
                if server_ms > sent_ms + self.rest.recv_window_ms + 1000:
                    self.stats["resolved_absent"] += 1
                    await rt.emit(
                        OrderRejected(inst, cid, -2013, "never reached the exchange", rt.clock())
                    )
                    return
                await trio.sleep(delay)
                delay = min(delay * 2, 2.0)
        finally:
            self._resolving.discard(cid)

    async def _lookup(self, rt: Runtime, inst: int, cid: str) -> bool:
        """Query ``cid``; if it exists, emit its ack, missing fills and end. False if absent."""
        sym = self._symbol_of[inst]
        while True:
            try:
                info = self.user_parser.order(await self.rest.query_order(sym, cid))
                break
            except RestError as e:
                if e.code == -2013:
                    return False
                rt.log(f"query {cid} failed: {e}; retrying")
                await trio.sleep(1.0)
        await self._adopt(rt, info)
        return True

    async def _adopt(self, rt: Runtime, info: OrderInfo) -> None:
        engine = rt.engine
        assert engine is not None
        order = engine.state.order(info.clientOrderId)
        evs = self.user_parser.order_events(info)
        ack, end = evs[:1], evs[1:]
        if order is not None and order.order_id and ack and type(ack[0]) is not OrderRejected:
            ack = []  # the engine already knows it was accepted
        fills: list[Event] = []
        if (
            order is not None
            and info.executedQty.strip("0.")
            and order.filled
            < (self.market_parser.instrument(info.symbol).qty_scale.to_units(info.executedQty))
        ):
            trades = self.user_parser.trades(
                await _patiently(self.rest.user_trades, info.symbol, info.orderId)
            )
            fills = list(self.user_parser.fills_from_trades(info, trades, set(order.trade_ids)))
            self.stats["catchup_fills"] += len(fills)
        if order is not None and not order.is_open:
            end = []
        for ev in [*ack, *fills, *end]:
            await rt.emit(ev)

    async def reconcile(self, rt: Runtime) -> None:
        """Catch up on every order the engine believes open, then an account snapshot."""
        engine = rt.engine
        assert engine is not None
        self.stats["reconciliations"] += 1
        open_now = [
            (o.inst, o.client_id, o.status, o.updated_ns) for o in engine.state.open_orders.values()
        ]
        for inst, cid, status, updated_ns in open_now:
            if cid in self._resolving or inst not in self._symbol_of:
                continue
            found = await self._lookup(rt, inst, cid)
            if not found and status in (OrderStatus.PENDING_NEW, OrderStatus.UNKNOWN):
                # journaled but maybe never sent (killed before), or still in flight
                sent_ms = updated_ns // _MS
                rt.nursery_start(self._resolve, rt, inst, cid, sent_ms)
            elif not found:
                rt.log(f"reconcile: {cid} is open here but unknown to the exchange")
        balances = self.user_parser.balance_rows(await self.rest.balances())
        positions = self.user_parser.position_rows(await self.rest.positions())
        infos: list[OrderInfo] = []
        for sym in rt.symbols:
            infos += self.user_parser.orders(await self.rest.open_orders(sym))
        rows = self.user_parser.open_order_rows(infos)
        await rt.emit(AccountSnapshotReceived(rt.clock(), balances, positions, rows))
        self._check(rt, positions, rows)

    def _check(self, rt: Runtime, positions: list[Any], rows: list[Any]) -> None:
        """Runtime-side consistency check of a snapshot (the reducer decides repairs)."""
        engine = rt.engine
        assert engine is not None
        prefix = engine.state.client_id_prefix
        for r in rows:
            o = engine.state.order(r.client_id)
            if (o is None or not o.is_open) and r.client_id.startswith(prefix):
                self.stats["orphans"] += 1
                rt.log(f"reconcile: exchange has open order {r.client_id} the engine does not")
        exch = {p.inst: p.qty for p in positions}
        for inst in rt.instruments:
            mine = engine.state.position(inst).qty
            if exch.get(inst, 0) != mine:
                self.stats["position_mismatches"] += 1
                rt.log(f"reconcile: position {mine} here, {exch.get(inst, 0)} on the exchange")


class PaperVenue(_MarketSide):
    """Real market data, simulated execution (the shared matching model), nothing sent.

    The simulated exchange is driven by the journal, in its order: the runtime hands each
    journaled step (its event and the intents it decided) to ``after_step``, which applies
    the event and submits the orders at the step's receive time and returns the answers to
    emit. Its state is then a function of the journal alone, so recovery rebuilds it exactly
    by the same calls (``replayed``) — and the answers a ``kill -9`` caught between their
    step and their own journaling come out again: replay sets aside every answer and crosses
    it off when the journal has it; what is left is emitted at start (``start``).
    """

    name = "paper"
    #: the runtime calls ``after_step`` for every journaled step
    follows_steps = True

    def __init__(self, endpoints: Endpoints, live: LiveConfig, sim_config: Any) -> None:
        super().__init__(endpoints, live, RestClient(endpoints.rest_url, None))
        self.sim_config = sim_config
        self.sim: Any = None
        #: after a session's shutdown the runtime sends no new order or amend (it holds them)
        self._in_shutdown = False
        #: replay: the simulated exchange's answers not yet found in the journal, in order
        self._owed: deque[Event] = deque()
        #: replay: journaled answers that were not the next one owed (a journal recorded by
        #: a version that drove the simulated exchange differently): nothing is re-emitted
        self._diverged = 0

    def begin(self, intent: Intent, t0_ns: int) -> Coroutine[Any, Any, None] | None:
        return None  # the simulated exchange has the order already (``after_step``)

    def _sim(self) -> Any:
        if self.sim is None:
            from replay.sim import SimExchange

            self.sim = SimExchange(self.sim_config, [])
        return self.sim

    def after_step(self, rec: EventRecord, intents: list[Intent]) -> list[Event]:
        """Apply one journaled step to the simulated exchange; its answers."""
        from replay._backtest import MARKET_TYPES

        sim = self._sim()
        ev = rec.event
        kind = type(ev)
        t = rec.recv_ns
        out: list[Event] = []
        if kind in MARKET_TYPES:
            out += sim.apply_market(t, ev)
        elif kind is InstrumentLoaded:
            sim.add_instrument(ev)
        elif kind is SessionStarted:
            self._in_shutdown = False
        elif kind is OperatorCommanded and ev.command == "shutdown":  # type: ignore[attr-defined]
            self._in_shutdown = True
            if ev.args.get("cancel") == "true":  # type: ignore[attr-defined]
                for inst in list(sim.markets):
                    out += sim.submit(t, CancelAllOrders(inst, "shutdown"))
        for it in intents:
            k = type(it)
            if k is PlaceOrder or k is AmendOrder:
                if not self._in_shutdown:
                    out += sim.submit(t, it)
            elif k is CancelOrder or k is CancelAllOrders:
                out += sim.submit(t, it)
        return out

    def replayed(self, rec: EventRecord, intents: list[Intent]) -> None:
        """Rebuild the simulated exchange from the journal: same calls, same state."""
        owed = self._owed
        if owed and type(rec.event) in _ANSWER_TYPES:
            if rec.event == owed[0]:
                owed.popleft()
            elif not (type(rec.event) is OrderRejected and rec.event.code == -2013):
                self._diverged += 1  # (-2013: start-up's "never sent", not the exchange's)
        owed.extend(self.after_step(rec, intents))

    async def start(self, nursery: trio.Nursery, rt: Runtime) -> None:
        self._learn(rt)
        sim = self._sim()
        for spec in rt.instruments.values():
            if spec.inst not in sim.markets:
                sim.add_instrument(spec)
        if self._owed and not self._diverged:
            rt.log(f"paper: {len(self._owed)} simulated answers were never journaled: sending")
            for ev in self._owed:
                await rt.emit(ev)
        elif self._owed:
            rt.log(
                f"paper: the journal's simulated answers differ from this version's "
                f"({self._diverged}): {len(self._owed)} not re-sent, the snapshot repairs"
            )
        self._owed.clear()
        await self.reconcile(rt)
        await self._start_market(nursery, rt, rt.emit)

    async def execute(self, intent: Intent, t0_ns: int) -> None:
        rt = self.rt
        assert rt is not None
        if type(intent) is RequestSnapshot and intent.kind is SnapshotKind.BOOK:
            for ev in await self._book_snapshot(rt, intent):
                await rt.emit(ev, 0)
            return
        if type(intent) is RequestSnapshot:
            await self.reconcile(rt)
            return
        if t0_ns:  # the order reached the simulated exchange in its step
            rt.latencies.append(time.perf_counter_ns() - t0_ns)

    async def reconcile(self, rt: Runtime) -> None:
        engine = rt.engine
        assert engine is not None
        sim = self._sim()
        for o in list(engine.state.open_orders.values()):
            if o.status in (OrderStatus.PENDING_NEW, OrderStatus.UNKNOWN) and (
                o.client_id not in sim.orders
            ):
                # decided during a shutdown and never sent (the simulated exchange would
                # have answered at once otherwise)
                await rt.emit(OrderRejected(o.inst, o.client_id, -2013, "never sent", rt.clock()))
        await rt.emit(sim.account_snapshot(rt.clock()))

    async def cancel_all(self, symbol: str) -> None:
        pass  # the shutdown's own step cancelled everything (``after_step``), in journal order

    async def dead_man(self, symbol: str, countdown_ms: int) -> None:
        pass

    async def aclose(self) -> None:
        await self.rest.aclose()

    def describe(self) -> dict[str, Any]:
        return {
            "sim": self.sim.describe() if self.sim is not None else {},
            "streams": self.stream_stats,
        }
