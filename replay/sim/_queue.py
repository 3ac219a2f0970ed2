"""Queue-position models: how much of a price level is ahead of one of our resting orders.

A resting order joins the back of its level: ``ahead`` starts at the level's visible quantity
(plus our own orders already there). It then moves up:

* a **trade at our price** removes its quantity from the front: ``ahead -= qty``; what the
  trade had left once ``ahead`` reaches zero fills us;
* a **decrease of the level** that trades do not explain is a cancellation somewhere in the
  queue. ``risk_averse`` assumes it was behind us (we only move up if the level shrinks below
  what we thought was ahead); ``power`` splits it between ahead and behind with weights
  ``ahead**n : behind**n`` — hftbacktest's PowerProbQueueModel. All arithmetic is on integer
  lots, so the same inputs give the same queue on every machine.
"""

from __future__ import annotations

__all__ = ["PowerQueue", "QueueModel", "RiskAverseQueue"]


class QueueModel:
    def on_level_change(
        self, ahead: int, prev_qty: int, new_qty: int, traded: int, own: int
    ) -> int:
        """New ``ahead`` after the level went ``prev_qty`` -> ``new_qty``.

        ``traded``: quantity already removed from ``ahead`` by trades at this level since the
        previous level update (a trade also shrinks the level, it must not count twice).
        ``own``: our quantity resting at the level (not part of the visible book here).
        """
        raise NotImplementedError


class RiskAverseQueue(QueueModel):
    def on_level_change(
        self, ahead: int, prev_qty: int, new_qty: int, traded: int, own: int
    ) -> int:
        return min(ahead, new_qty)


class PowerQueue(QueueModel):
    def __init__(self, n: int) -> None:
        self.n = n

    def on_level_change(
        self, ahead: int, prev_qty: int, new_qty: int, traded: int, own: int
    ) -> int:
        change = prev_qty - new_qty - traded
        if change <= 0:  # the level grew (new orders join behind us) or trades explain it all
            return min(ahead, new_qty)
        behind = max(prev_qty - traded - ahead, 0)
        n = self.n
        a_n = ahead**n
        b_n = behind**n
        total = a_n + b_n
        if total == 0:
            return min(ahead, new_qty)
        # expected share of the cancellation that came from ahead of us, rounded half up
        from_ahead = (2 * change * a_n + total) // (2 * total)
        from_behind = change - from_ahead
        est = ahead - from_ahead + min(behind - from_behind, 0)
        return max(0, min(est, new_qty))
