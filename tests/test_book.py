"""The L2 book and Binance's futures sync rule, on hand-made cases and on the real sessions."""

from __future__ import annotations

import pytest

from engine import (
    BookDeltaReceived,
    BookOutcome,
    BookSnapshotReceived,
    BookSync,
    EventRecord,
    OrderBook,
    RaiseAlert,
    RequestSnapshot,
    TopOfBookUpdated,
)
from journal import JournalReader
from tests.conftest import SESSIONS
from tests.helpers import Feeder, btc


def snap(L: int, bids: list[int], asks: list[int]) -> BookSnapshotReceived:
    return BookSnapshotReceived(0, 0, L, bids, asks)


def diff(U: int, u: int, pu: int, bids: list[int] = (), asks: list[int] = ()) -> BookDeltaReceived:  # type: ignore[assignment]
    return BookDeltaReceived(0, 0, U, u, pu, list(bids), list(asks))


def test_diffs_before_the_snapshot_are_buffered_and_the_straddling_one_applies():
    b = OrderBook(0)
    assert b.apply_delta(diff(90, 95, 89, [100, 1])) is BookOutcome.BUFFERED
    assert b.apply_delta(diff(96, 104, 95, [101, 2])) is BookOutcome.BUFFERED  # straddles L=100
    assert b.apply_delta(diff(105, 110, 104, [102, 3])) is BookOutcome.BUFFERED
    assert b.apply_snapshot(snap(100, [99, 5], [110, 5])) is BookOutcome.APPLIED
    assert b.synced and b.last_update_id == 110
    assert (
        b.levels()[0] == {99: 5, 101: 2, 102: 3} and b.best_bid == 102
    )  # diff 90-95 (u < L) dropped


def test_first_diff_after_the_snapshot_must_straddle():
    b = OrderBook(0)
    b.apply_snapshot(snap(100, [99, 5], [110, 5]))
    assert b.sync is BookSync.WAITING_FIRST_DELTA
    assert b.apply_delta(diff(80, 99, 79)) is BookOutcome.STALE
    assert b.apply_delta(diff(101, 105, 99)) is BookOutcome.GAP  # U > L: missed the straddling one
    assert b.sync is BookSync.WAITING_SNAPSHOT and b.levels() == ({}, {}) and b.best_bid == 0


def test_a_broken_pu_chain_is_a_gap_never_a_silently_wrong_book():
    b = OrderBook(0)
    b.apply_snapshot(snap(100, [99, 5], [110, 5]))
    assert b.apply_delta(diff(95, 105, 94, [100, 1])) is BookOutcome.APPLIED
    assert b.apply_delta(diff(106, 110, 105, [100, 0])) is BookOutcome.APPLIED
    assert b.apply_delta(diff(100, 103, 99)) is BookOutcome.STALE  # an old repeat
    assert b.apply_delta(diff(115, 120, 112, [98, 1])) is BookOutcome.GAP  # pu 112 != 110
    assert b.gaps == 1 and not b.synced and b.best_bid == 0
    # the diff that revealed the gap is kept: a snapshot older than it can still use it
    assert b.apply_snapshot(snap(118, [97, 1], [111, 1])) is BookOutcome.APPLIED
    assert b.synced and b.levels()[0] == {97: 1, 98: 1}


def test_best_prices_follow_deletions_and_additions():
    b = OrderBook(0)
    b.apply_snapshot(snap(10, [100, 1, 99, 2, 98, 3], [101, 1, 102, 2]))
    b.apply_delta(diff(5, 11, 4, [100, 0], [101, 0]))
    assert (b.best_bid, b.best_ask) == (99, 102)
    b.apply_delta(diff(12, 12, 11, [99, 0, 105, 4], [104, 1]))
    assert (b.best_bid, b.best_ask) == (105, 102)  # transiently crossed input is reported as is
    b.apply_delta(diff(13, 13, 12, [105, 0, 98, 0], [102, 0, 104, 0]))
    assert (b.best_bid, b.best_ask) == (0, 0)
    assert b.depth(3) == ([], [])


def test_spot_style_diffs_chain_on_U():
    b = OrderBook(0)
    b.apply_snapshot(snap(100, [99, 5], [110, 5]))
    assert b.apply_delta(diff(99, 101, -1, [100, 1])) is BookOutcome.APPLIED
    assert b.apply_delta(diff(102, 104, -1)) is BookOutcome.APPLIED
    assert b.apply_delta(diff(106, 107, -1)) is BookOutcome.GAP


def test_depth_and_imbalance():
    b = OrderBook(0)
    b.apply_snapshot(snap(1, [100, 3, 99, 1, 97, 5], [101, 1, 103, 1]))
    assert b.depth(2) == ([(100, 3), (99, 1)], [(101, 1), (103, 1)])
    assert b.imbalance(2) == pytest.approx((4 - 2) / 6)


def test_the_reducer_asks_for_a_snapshot_once_and_alerts_on_a_gap():
    f = Feeder()
    f.feed(btc())
    out = f.feed(diff(1, 5, 0, [100, 1]))
    assert [type(i) for i in out] == [RequestSnapshot]
    assert f.feed(diff(6, 7, 5)) == ()  # no second request while one is out
    f.feed(snap(5, [100, 1], [101, 1]))
    f.feed(diff(8, 9, 7))
    out = f.feed(diff(20, 21, 15))
    assert {type(i) for i in out} == {RequestSnapshot, RaiseAlert}
    assert f.state.stats["book_gaps"] == 1


def test_emptied_levels_are_swept_without_changing_the_book():
    from engine._book import COMPACT_EVERY, OrderBook

    b = OrderBook(0)
    b.apply_snapshot(snap(10, [100, 1], [200, 1]))
    # every diff adds one level per side and empties the one the previous diff added
    for k in range(1, 3 * COMPACT_EVERY):
        first = 10 if k == 1 else 10 + k  # the first diff straddles the snapshot's id
        bids = [100 - k, 2] + ([100 - k + 1, 0] if k > 1 else [])
        asks = [200 + k, 2] + ([200 + k - 1, 0] if k > 1 else [])
        assert b.apply_delta(diff(first, 10 + k, 9 + k, bids, asks)) is BookOutcome.APPLIED
        assert (b.best_bid, b.best_ask) == (100, 200)
    live_bids, live_asks = b.levels()
    assert live_bids == {100: 1, 100 - (3 * COMPACT_EVERY - 1): 2}
    assert live_asks == {200: 1, 200 + 3 * COMPACT_EVERY - 1: 2}
    # zeros are kept between sweeps, never more than a period's worth
    assert len(b.bids) - len(live_bids) <= COMPACT_EVERY
    assert len(b.asks) - len(live_asks) <= COMPACT_EVERY


# ---------------------------------------------------------------------------------------------
# the real sessions


class ReferenceBook:
    """The obvious, slow implementation, to check the fast one against."""

    def __init__(self, ev: BookSnapshotReceived) -> None:
        self.bids = {p: q for p, q in zip(ev.bids[::2], ev.bids[1::2]) if q}
        self.asks = {p: q for p, q in zip(ev.asks[::2], ev.asks[1::2]) if q}

    def apply(self, ev: BookDeltaReceived) -> None:
        for side, flat in ((self.bids, ev.bids), (self.asks, ev.asks)):
            for i in range(0, len(flat), 2):
                if flat[i + 1]:
                    side[flat[i]] = flat[i + 1]
                else:
                    side.pop(flat[i], None)

    def snapshot(self, L: int) -> BookSnapshotReceived:
        bids = [x for p in sorted(self.bids, reverse=True) for x in (p, self.bids[p])]
        asks = [x for p in sorted(self.asks) for x in (p, self.asks[p])]
        return BookSnapshotReceived(0, 0, L, bids, asks)


@pytest.mark.realdata
@pytest.mark.parametrize("session", list(SESSIONS))
def test_real_sessions_build_books_with_zero_gaps(imported_sessions, session, record_property):
    f = Feeder()
    ref: ReferenceBook | None = None
    before_snapshot: list[BookDeltaReceived] = []
    checks = 0
    for rec in JournalReader(imported_sessions[session]).events():
        ev = rec.event
        f.seq = rec.seq - 1
        f.feed(ev, at=rec.recv_ns)
        if type(ev) is BookSnapshotReceived:
            ref = ReferenceBook(ev)
            for d in before_snapshot:  # recorded before the snapshot line, but newer than it
                if d.final_update_id >= ev.last_update_id:
                    ref.apply(d)
        elif type(ev) is BookDeltaReceived and ref is None:
            before_snapshot.append(ev)
        elif type(ev) is BookDeltaReceived and ref is not None:
            ref.apply(ev)
            book = f.state.books[ev.inst]
            if ev.final_update_id % 7 == 0:  # compare whole books now and then (costly)
                assert book.levels() == (ref.bids, ref.asks)
                checks += 1
            assert book.best_bid == max(ref.bids) and book.best_ask == min(ref.asks)
    book = f.state.books[0]
    stats = f.state.stats
    assert book.synced and book.gaps == 0 and stats["book_gaps"] == 0
    assert book.levels() == (ref.bids, ref.asks)  # type: ignore[union-attr]
    rate = stats["bbo_agree"] / stats["bbo_checks"]
    record_property("bbo_agreement", f"{stats['bbo_agree']}/{stats['bbo_checks']}")
    print(
        f"{session}: {book.deltas_applied} diffs, 0 gaps, bookTicker agreement "
        f"{stats['bbo_agree']}/{stats['bbo_checks']} = {rate:.4%}, {checks} full-book checks"
    )
    assert stats["bbo_checks"] > 100
    assert rate >= 0.99


@pytest.mark.realdata
def test_a_dropped_diff_is_detected_and_resynced(imported_sessions):
    events = [r.event for r in JournalReader(imported_sessions["btc-2024-08"]).events()]
    deltas = [i for i, e in enumerate(events) if type(e) is BookDeltaReceived]
    drop = deltas[len(deltas) // 2]
    f = Feeder()
    ref: ReferenceBook | None = None
    before_snapshot: list[BookDeltaReceived] = []
    requested_at = None
    resynced = False
    for i, ev in enumerate(events):
        if type(ev) is BookSnapshotReceived:
            ref = ReferenceBook(ev)
            for d in before_snapshot:
                if d.final_update_id >= ev.last_update_id:
                    ref.apply(d)
        elif type(ev) is BookDeltaReceived and ref is None:
            before_snapshot.append(ev)
        elif type(ev) is BookDeltaReceived:
            ref.apply(ev)
        if i == drop:
            continue  # the lost message
        out = f.feed(ev)
        if requested_at is None and any(type(x) is RequestSnapshot for x in out):
            if i > drop:
                requested_at = i
                assert not f.state.books[0].synced and f.state.books[0].best_bid == 0
                # answer it, as the adapter would, with a fresh snapshot (taken from the
                # reference book at this update id)
                f.feed(ref.snapshot(ev.final_update_id))  # type: ignore[union-attr]
                resynced = True
    assert requested_at == next(d for d in deltas if d > drop), "the next diff must reveal the gap"
    book = f.state.books[0]
    assert resynced and book.synced and book.gaps == 1
    assert book.levels() == (ref.bids, ref.asks)  # type: ignore[union-attr]


@pytest.mark.realdata
def test_bookticker_and_depth_agree_where_update_ids_match(imported_sessions):
    """The same check as in the reducer, made independently from the raw events."""
    book = OrderBook(0)
    tickers: dict[int, tuple[int, int]] = {}
    depth_tops: dict[int, tuple[int, int]] = {}
    for rec in JournalReader(imported_sessions["btc-2024-08"]).events():
        ev = rec.event
        if type(ev) is TopOfBookUpdated:
            tickers[ev.update_id] = (ev.bid, ev.ask)
        elif type(ev) is BookSnapshotReceived:
            book.apply_snapshot(ev)
        elif type(ev) is BookDeltaReceived:
            if book.apply_delta(ev) is BookOutcome.APPLIED and book.synced:
                depth_tops[ev.final_update_id] = (book.best_bid, book.best_ask)
    common = sorted(set(tickers) & set(depth_tops))
    agree = sum(1 for u in common if tickers[u] == depth_tops[u])
    assert len(common) > 500 and agree / len(common) >= 0.99
    _ = EventRecord  # (imported for symmetry with the reducer test)
