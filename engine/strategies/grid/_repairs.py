"""The grid's ledger repairs: dust merging (§7.5) and reconciliation with the exchange's
account snapshot (§4.3, §7.1, §7.8). Functions of the ``Grid`` they repair, kept apart from
the order-placing logic in ``_strategy.py``; every repair is a journaled decision.

Reconciliation compares the grid's orders and position with the snapshot. A disagreement is
acted on when it shows in two snapshots in a row (events in flight explain a single one), or at
once in the first snapshot of a session (nothing of ours is in flight then): an order of ours
missing on the exchange is settled and its slot freed; an order of ours the engine does not know
is adopted into the slot it fits, or cancelled; orders with other client ids are left alone; a
position difference is adopted at the real entry price (sliced one level per slot, outward) or
dropped from idle holdings (cancelling exits when the holdings are all busy).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from engine._context import Context
from engine._events import AccountSnapshotReceived
from engine._intents import AlertLevel
from engine._reconcile import is_own_client_id

from ._ledger import Lock, OrderRole, Slot, SlotTrigger

if TYPE_CHECKING:
    from ._strategy import Grid, _Leg

__all__ = ["merge_dust", "reconcile", "repair_position", "retry_unplaced"]

T = SlotTrigger
#: how far (in levels) adoption looks for a free slot
SEARCH_LEVELS = 10_000


# -- dust (§7.5) -------------------------------------------------------------------------


def merge_dust(g: Grid, ctx: Context) -> None:
    """A holding whose exit would be below the minimum order value moves into the nearest
    idle filled slot further out (higher for long, lower for short): that slot exits the
    combined quantity at its own price, which is beyond the dust's exit price, so the dust
    is sold at a profit. With no such slot the dust stays, flagged by one alert, and is
    merged as soon as a neighbour fills."""
    price = g.last_price
    for leg in g.legs:
        dust = [
            s
            for s in sorted(leg.slots.values(), key=lambda s: s.price)
            if s.lock is Lock.FREE and s.holding and not g._notional_ok(leg, s, price)
        ]
        for slot in dust:
            target = _merge_target(g, leg, slot)
            if target is None:
                if not slot.dust_flagged:
                    slot.dust_flagged = True
                    ctx.alert(
                        AlertLevel.WARNING,
                        "grid_dust",
                        f"slot {g._p(slot.price)} holds {g._q(slot.qty)}, too small "
                        "to exit; it merges into the next filled slot further out",
                    )
                continue
            qty = slot.qty
            slot.apply(T.DROP_HOLDING, delta=-qty)
            target.apply(T.ADD_HOLDING, delta=qty)
            g.stats["dust_merges"] += 1
            ctx.decide(
                "grid",
                "merge_dust",
                "below_min_order_value",
                f"{g._q(qty)} from slot {g._p(slot.price)} into slot {g._p(target.price)}",
                g.inst,
            )


def _merge_target(g: Grid, leg: _Leg, dust: Slot) -> Slot | None:
    best: Slot | None = None
    for s in leg.slots.values():
        if s is dust or s.lock is not Lock.FREE or not s.holding:
            continue
        if (s.price - dust.price) * leg.d <= 0:
            continue
        if best is None or abs(s.price - dust.price) < abs(best.price - dust.price):
            best = s
    return best


def reconcile(g: Grid, ctx: Context, ev: AccountSnapshotReceived, *, immediate: bool) -> None:
    """Compare with the exchange and repair. A disagreement is acted on when it shows in
    two snapshots in a row (events in flight explain a single one), or at once in the first
    snapshot of a session (nothing of ours is in flight then)."""
    st = ctx.state
    inst = g.inst
    remote = {r.client_id: r for r in ev.open_orders if r.inst == inst}
    missing: set[str] = set()
    vanished_exits: list[Slot] = []
    for order in g._grid_orders(ctx):
        if order.client_id in remote:
            continue
        confirmed = immediate or (
            order.client_id in g.prev_missing and order.created_seq < g.prev_snapshot_seq
        )
        if not confirmed:
            missing.add(order.client_id)
            continue
        ref = g._slot_of(order)
        ctx.settle_missing(order, "not among the exchange's open orders")
        g.stats["repairs"] += 1
        if ref is not None:
            _, slot, is_entry = ref
            g._ended(slot, is_entry)
            if not is_entry:
                vanished_exits.append(slot)
    unknown: set[str] = set()
    for cid, row in remote.items():
        local = st.open_orders.get(cid)
        if local is not None:
            continue
        if not is_own_client_id(st, cid):
            if cid not in g.foreign_seen:
                g.foreign_seen.add(cid)
                ctx.decide(
                    "reconcile",
                    "leave_foreign",
                    "not_ours",
                    f"open order {cid} is not this engine's (manual?): left alone",
                    inst,
                )
            continue
        if not (immediate or cid in g.prev_unknown):
            unknown.add(cid)
            continue
        g.stats["repairs"] += 1
        if not _adopt_order(g, ctx, row):
            ctx.cancel(ctx.adopt(row, "", "to cancel: no slot can own it"))
    g.prev_missing, g.prev_unknown = missing, unknown
    g.prev_snapshot_seq = st.seq
    # position: the ledger must hold what the exchange holds
    remote_qty = sum(p.qty for p in ev.positions if p.inst == inst)
    entry_e8 = next((p.entry_e8 for p in ev.positions if p.inst == inst and p.qty), 0)
    diff = remote_qty - g.ledger_position()
    if diff and (immediate or diff == g.prev_diff):
        g.prev_diff = 0
        entry = g._ticks_from_e8(entry_e8) if entry_e8 else g.last_price
        repair_position(g, ctx, diff, entry, "exchange position differs", vanished_exits)
    else:
        g.prev_diff = diff
    if g.exits_held:
        g.exits_held = False
        ctx.decide("grid", "resume_exits", "reconciled", "exits resume after reconciliation", inst)
    merge_dust(g, ctx)


def _adopt_order(g: Grid, ctx: Context, row: Any) -> bool:
    """An order of ours the engine does not know (its journal ended before the answer):
    it takes the slot it fits, if that slot is free for it."""
    interval = g.interval
    a = g.anchor or 0
    for leg in g.legs:
        if row.side is leg.entry_side and (row.price - a) % interval == 0:
            slot = leg.slots.get(row.price)
            if slot is None or (slot.lock is Lock.FREE and not slot.holding and not slot.qty):
                slot = leg.slot(row.price)
                order = ctx.adopt(row, f"g:{slot.price}:E:{leg.letter}", "as an entry")
                slot.apply(T.ADOPT_ENTRY, client_id=order.client_id)
                return True
        if row.side is leg.exit_side:
            slot = leg.slots.get(row.price - leg.d * interval)
            if (
                slot is not None
                and slot.lock is Lock.FREE
                and slot.holding
                and slot.qty == row.qty - row.filled
            ):
                order = ctx.adopt(row, f"g:{slot.price}:X:{leg.letter}", "as an exit")
                slot.apply(T.ADOPT_EXIT, client_id=order.client_id)
                return True
    return False


def repair_position(
    g: Grid,
    ctx: Context,
    diff: int,
    entry: int,
    reason: str,
    first: list[Slot] | None = None,
) -> None:
    """Move the ledger by ``diff`` lots (signed): shrink the leg that holds the opposite
    side first, then grow the leg of the diff's side, adopting at the real entry price.
    What cannot be dropped now (the holdings have live exits) is kept in ``unplaced``:
    those exits are cancelled and the drop completes when they end."""
    g.stats["repairs"] += 1
    for leg in g.legs:
        if diff * leg.d < 0:
            diff += leg.d * _drop(g, ctx, leg, abs(diff), first or [], reason)
    for leg in g.legs:
        if diff * leg.d > 0:
            diff -= leg.d * _adopt_holding(g, ctx, leg, abs(diff), entry, reason)
    g.unplaced = diff
    if not diff:
        g.unplaced_alerted = False
    elif not _free_exits(g, ctx, diff, reason) and not g.unplaced_alerted:
        g.unplaced_alerted = True
        ctx.alert(
            AlertLevel.CRITICAL,
            "grid_unreconciled",
            f"{g._q(abs(diff))} of position could not be placed in the ledger ({reason}); check the account",
        )


def _free_exits(g: Grid, ctx: Context, diff: int, reason: str) -> bool:
    """Cancel live exits, nearest the price first, until their holdings cover a drop of
    ``diff``; True if some exit is (now or already) being cancelled for it."""
    waiting = False
    for leg in g.legs:
        if diff * leg.d >= 0:
            continue
        need = abs(diff)
        busy = sorted(
            (s for s in leg.slots.values() if s.order is OrderRole.EXIT and s.client_id),
            key=lambda s: (abs(s.price - g.last_price), s.price),
        )
        for slot in busy:
            if need <= 0:
                break
            order = ctx.order(slot.client_id)
            if order is None:
                continue
            need -= slot.qty
            waiting = True
            if not order.cancel_pending:
                g.risk.cancel(ctx, order)
                ctx.decide(
                    "reconcile",
                    "cancel_exit",
                    "position_smaller",
                    f"exit of slot {g._p(slot.price)} cancelled to drop its holding: {reason}",
                    g.inst,
                )
    return waiting


def retry_unplaced(g: Grid, ctx: Context) -> None:
    if g.unplaced:
        diff, g.unplaced = g.unplaced, 0
        repair_position(g, ctx, diff, g.last_price, "pending repair")


def _drop(g: Grid, ctx: Context, leg: _Leg, qty: int, first: list[Slot], reason: str) -> int:
    price = g.last_price
    order = [s for s in first if s.price in leg.slots] + sorted(
        (s for s in leg.slots.values() if s not in first),
        key=lambda s: (abs(s.price + leg.d * g.interval - price), s.price),
    )
    dropped = 0
    for slot in order:
        if dropped == qty:
            break
        if slot.lock is not Lock.FREE or not slot.holding:
            continue
        take = min(slot.qty, qty - dropped)
        slot.apply(T.DROP_HOLDING if take == slot.qty else T.REDUCE_HOLDING, delta=-take)
        dropped += take
        ctx.decide(
            "reconcile",
            "drop_holding",
            "position_smaller",
            f"slot {g._p(slot.price)} -{g._q(take)}: {reason}",
            g.inst,
        )
    return dropped


def _adopt_holding(g: Grid, ctx: Context, leg: _Leg, qty: int, entry: int, reason: str) -> int:
    """Slice ``qty`` into one level's worth per slot, from the lattice price at or beyond
    the real entry (so every exit is at least one interval better than the entry) outward.
    OpenSQT re-slices from the anchor and ignores the entry (§1.8, §7.8)."""
    s = entry if (entry - (g.anchor or 0)) % g.interval == 0 else g._beyond(entry, leg.d)
    adopted = 0
    for _ in range(SEARCH_LEVELS):
        if adopted == qty or s <= 0:
            break
        slot = leg.slot(s)
        if slot.lock is Lock.FREE:
            take = min(g.entry_qty(s), qty - adopted)
            if qty - adopted - take and g.ins is not None:
                # never leave a tail too small to exit on its own
                rest = qty - adopted - take
                if g.ins.notional(s, rest) < g.min_exit:
                    take += rest
            slot.apply(T.ADOPT_HOLDING, delta=take)
            adopted += take
            ctx.decide(
                "reconcile",
                "adopt_holding",
                "position_larger",
                f"slot {g._p(s)} +{g._q(take)} (entry {g._p(entry)}): {reason}",
                g.inst,
            )
        s += leg.d * g.interval
    return adopted
