"""Order reconciliation against an account snapshot, for every strategy.

The exchange's snapshot is the truth about which orders are open. Two disagreements matter:

* an order the engine thinks open is not on the exchange: its final event was lost (a stream
  gap, a restart). It is settled (marked EXPIRED locally, journaled) and the strategy hears
  about it through ``on_order`` like any other end, so it re-quotes;
* an order of ours (our client-id shape) is open on the exchange but unknown or finished here:
  an earlier process sent it and its journal ended before the answer. It is cancelled.

Orders with other client ids (placed by hand or another program) are never touched.

Events in flight explain a single disagreement (the snapshot was taken before an ack or a
fill arrived), so one is acted on only when the next snapshot shows it again, except for
orders from an earlier session, which nothing can still be answering. A strategy that does its
own, finer reconciliation (the grid adopts orders into slots) sets ``reconciles_orders``.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

from ._events import AccountSnapshotReceived

if TYPE_CHECKING:
    from ._context import Context
    from ._state import EngineState

__all__ = ["OrderReconciliation", "is_own_client_id", "reconcile_orders"]


class OrderReconciliation:
    """What the previous snapshot disagreed about (client ids), and when it arrived."""

    __slots__ = ("missing", "snapshot_seq", "unknown")

    def __init__(self) -> None:
        self.missing: set[str] = set()
        self.unknown: set[str] = set()
        self.snapshot_seq = -1


def is_own_client_id(st: EngineState, client_id: str) -> bool:
    """``<prefix><session>-<seq>-<k>``: an order this engine (any session) created."""
    prefix = st.client_id_prefix
    if not client_id.startswith(prefix):
        return False
    return re.fullmatch(r"\d+-\d+-\d+", client_id[len(prefix) :]) is not None


def _session_of(st: EngineState, client_id: str) -> int:
    return int(client_id[len(st.client_id_prefix) :].split("-", 1)[0])


def reconcile_orders(st: EngineState, ctx: Context, ev: AccountSnapshotReceived) -> None:
    rec = st.reconciliation
    remote = {r.client_id: r for r in ev.open_orders}
    missing: set[str] = set()
    for order in list(st.open_orders.values()):
        cid = order.client_id
        if cid in remote:
            continue
        earlier_session = order.created_seq < st.session_started_seq
        confirmed = cid in rec.missing and order.created_seq < rec.snapshot_seq
        if earlier_session or confirmed:
            ctx.settle_missing(order, "not among the exchange's open orders")
            st.strategy.on_order(ctx, order)
        else:
            missing.add(cid)
    unknown: set[str] = set()
    for cid, row in remote.items():
        known = st.open_orders.get(cid)
        if known is not None or not is_own_client_id(st, cid):
            continue
        if _session_of(st, cid) < st.session or cid in rec.unknown:
            ctx.cancel(ctx.adopt(row, "", "to cancel: no strategy owns it"))
        else:
            unknown.add(cid)
    rec.missing, rec.unknown, rec.snapshot_seq = missing, unknown, st.seq
