"""The ready-made views, as SQL over the exported tables.

Every table carries a ``journal`` column (the journal directory's name), and every view
groups by it, so the same SQL works on one journal and on a directory of sessions.
Money is computed in integers (minor units, 1e-8 of the quote asset; ``*_half_minor`` for
values on half-tick mids) and turned into DECIMAL at the end, so sums are exact.

No view reads ``book_top`` (~70% of a journal's rows): the mid over time comes from
``mids``, the same tops compressed to one row per change of the mid within a second
(``_mids.py``; ~3% of the rows, and exact, see there). Markouts do one ASOF join over it for
all horizons; ``equity`` carries the position forward with a window over positions and
seconds in receive order rather than an ASOF join, which DuckDB may plan as a nested loop.
``tests/test_analytics.py`` keeps the first, straight-over-``book_top`` definitions and checks
these give the same rows.
"""

from __future__ import annotations

__all__ = ["VIEWS", "VIEW_DOCS", "create_views"]

_M = "0.00000001::DECIMAL(18,8)"  # one minor unit
_HALF = "0.000000005::DECIMAL(18,9)"  # half a minor unit

#: view name -> one line saying what a row is
VIEW_DOCS: dict[str, str] = {
    "pnl_summary": "one row per journal and instrument: the backtest summary's PnL split "
    "(realized, unrealized at the last mid, fees, funding, spread capture, inventory PnL, net)",
    "pnl_by_hour": "per hour: fills, volume, spread capture, realized PnL, fees, funding, "
    "position and equity at the end of the hour, net PnL of the hour",
    "equity": "per second with market data: mid, position and equity (net PnL so far)",
    "fill_markouts": "per fill: mid at the fill and 1 s / 10 s / 60 s later, and the markout "
    "(what the fill earned against those mids) in ticks and quote money",
    "spread_capture": "per side and liquidity: fills, average edge against the mid in ticks "
    "and basis points, total spread capture",
    "inventory": "per position change: the position, how long it was held, its notional",
    "order_to_fill": "per order: its latencies (ack, first fill, cancel) in ms and final status",
    "quote_uptime": "per side: share of the session with at least one of our orders resting",
    "grid_slot_pnl": "per grid slot / quoting level (from the order tag; slot_price for grid "
    "slots): fills, cash flow, open quantity marked at the last price (mid, else last trade, "
    "else last candle close), fees, PnL",
    "passive_fill_rate": "per side and time in force: orders placed, share filled, share of "
    "quantity filled, maker share of fills, reject rate",
    "risk_events": "the journaled risk decisions (denials, trips, resets)",
    "reconciliation": "the journaled reconciliation repairs (adopt, cancel, settle, ...)",
}

VIEWS: dict[str, str] = {
    "last_mid": """
        SELECT journal, inst, arg_max(mid2_ticks, max_update_id) AS mid2_ticks,
               max(last_recv_ns) AS last_recv_ns, min(recv_ns) AS first_recv_ns
        FROM mids WHERE valid GROUP BY ALL""",
    "last_price": """
        WITH t AS (SELECT journal, inst, arg_max(price_ticks, seq) AS price_ticks
                   FROM trades GROUP BY ALL),
        k AS (SELECT journal, inst, arg_max(close_ticks, seq) AS close_ticks
              FROM klines GROUP BY ALL)
        SELECT i.journal, i.inst,
               coalesce(m.mid2_ticks, 2 * t.price_ticks, 2 * k.close_ticks) AS price2_ticks,
               CASE WHEN m.mid2_ticks IS NOT NULL THEN 'mid'
                    WHEN t.price_ticks IS NOT NULL THEN 'trade'
                    WHEN k.close_ticks IS NOT NULL THEN 'kline' END AS source
        FROM instruments i LEFT JOIN last_mid m USING (journal, inst)
        LEFT JOIN t USING (journal, inst) LEFT JOIN k USING (journal, inst)""",
    "pnl_summary": f"""
        WITH pos AS (
            SELECT journal, inst, arg_max(position_lots, seq) AS position_lots,
                   arg_max(cost_minor, seq) AS cost_minor,
                   arg_max(realized_minor, seq) AS realized_minor,
                   arg_max(fees_minor, seq) AS fees_minor,
                   arg_max(funding_minor, seq) AS funding_minor
            FROM positions GROUP BY ALL),
        cap AS (
            SELECT journal, inst, count(*) AS fills,
                   coalesce(sum(spread_capture_half_minor), 0) AS capture_half_minor,
                   sum(notional_minor) AS volume_minor
            FROM fills GROUP BY ALL),
        u AS (
            SELECT p.*, i.symbol, i.quote_asset, i.minor_per_ticklot AS k,
                   m.price2_ticks AS mid2_ticks,
                   (p.position_lots * m.price2_ticks * i.minor_per_ticklot
                    - 2 * p.cost_minor)::HUGEINT AS unrealized_half_minor,
                   coalesce(c.capture_half_minor, 0)::HUGEINT AS capture_half_minor,
                   c.fills, c.volume_minor
            FROM pos p JOIN instruments i USING (journal, inst)
            -- marked at the last mid, else the last trade or candle close (as the summary)
            LEFT JOIN last_price m USING (journal, inst) LEFT JOIN cap c USING (journal, inst))
        SELECT journal, inst, symbol, quote_asset,
               position_lots, fills,
               volume_minor * {_M} AS quote_volume,
               capture_half_minor * {_HALF} AS spread_capture,
               (2 * realized_minor + unrealized_half_minor - capture_half_minor) * {_HALF}
                   AS inventory_pnl,
               realized_minor * {_M} AS realized_pnl,
               unrealized_half_minor * {_HALF} AS unrealized_pnl,
               fees_minor * {_M} AS fees,
               funding_minor * {_M} AS funding,
               (2 * (realized_minor - fees_minor + funding_minor) + unrealized_half_minor)
                   * {_HALF} AS net_pnl,
               mid2_ticks AS last_mid2_ticks
        FROM u""",
    "equity": f"""
        WITH s AS (
            SELECT journal, inst, time_bucket(INTERVAL 1 second, time) AS time,
                   max(last_recv_ns) AS recv_ns, arg_max(mid2_ticks, last_seq) AS mid2_ticks
            FROM mids WHERE valid GROUP BY ALL),
        -- each second takes the positions row in force at its last top (received at or
        -- before it): one sorted pass over both, not a join
        ev AS (
            SELECT journal, inst, recv_ns, 0 AS k, seq, NULL::TIMESTAMP AS time,
                   NULL::BIGINT AS mid2_ticks, position_lots, cost_minor, realized_minor,
                   fees_minor, funding_minor
            FROM positions
            UNION ALL
            SELECT journal, inst, recv_ns, 1, NULL, time, mid2_ticks, NULL, NULL, NULL, NULL, NULL
            FROM s),
        j AS (
            SELECT journal, inst, k, time, mid2_ticks,
                   coalesce(last_value(position_lots IGNORE NULLS) OVER w, 0) AS position_lots,
                   coalesce(last_value(cost_minor IGNORE NULLS) OVER w, 0) AS cost_minor,
                   coalesce(last_value(realized_minor IGNORE NULLS) OVER w, 0) AS realized_minor,
                   coalesce(last_value(fees_minor IGNORE NULLS) OVER w, 0) AS fees_minor,
                   coalesce(last_value(funding_minor IGNORE NULLS) OVER w, 0) AS funding_minor
            FROM ev
            WINDOW w AS (PARTITION BY journal, inst ORDER BY recv_ns, k, seq
                         ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW))
        SELECT j.journal, j.inst, j.time, j.mid2_ticks * i.tick / 2 AS mid,
               j.position_lots * i.step AS position,
               j.realized_minor * {_M} AS realized_pnl,
               (j.position_lots * j.mid2_ticks * i.minor_per_ticklot - 2 * j.cost_minor)::HUGEINT
                   * {_HALF} AS unrealized_pnl,
               j.fees_minor * {_M} AS fees, j.funding_minor * {_M} AS funding,
               (2 * (j.realized_minor - j.fees_minor + j.funding_minor)
                + j.position_lots * j.mid2_ticks * i.minor_per_ticklot - 2 * j.cost_minor)::HUGEINT
                   * {_HALF} AS net_pnl
        FROM j JOIN instruments i USING (journal, inst) WHERE j.k = 1""",
    "pnl_by_hour": f"""
        WITH e AS (
            SELECT journal, inst, date_trunc('hour', time) AS hour, arg_max(net_pnl, time) AS equity,
                   arg_max(position, time) AS position
            FROM equity GROUP BY ALL),
        f AS (
            SELECT journal, inst, date_trunc('hour', time) AS hour, count(*) AS fills,
                   sum(notional_minor) AS volume_minor, sum(spread_capture_half_minor) AS cap2,
                   sum(realized_pnl_minor) AS realized_minor, sum(fee_minor) AS fees_minor
            FROM fills GROUP BY ALL),
        fu AS (
            SELECT journal, inst, date_trunc('hour', time) AS hour, sum(amount_minor) AS funding_minor
            FROM funding GROUP BY ALL)
        SELECT e.journal, e.inst, e.hour, coalesce(f.fills, 0) AS fills,
               coalesce(f.volume_minor, 0) * {_M} AS quote_volume,
               coalesce(f.cap2, 0) * {_HALF} AS spread_capture,
               coalesce(f.realized_minor, 0) * {_M} AS realized_pnl,
               coalesce(f.fees_minor, 0) * {_M} AS fees,
               coalesce(fu.funding_minor, 0) * {_M} AS funding,
               e.position AS position_end, e.equity AS equity_end,
               e.equity - coalesce(lag(e.equity) OVER (PARTITION BY e.journal, e.inst ORDER BY e.hour), 0)
                   AS net_pnl
        FROM e LEFT JOIN f USING (journal, inst, hour) LEFT JOIN fu USING (journal, inst, hour)""",
    "fill_markouts": """
        WITH h AS (SELECT unnest([0, 1, 10, 60]) AS horizon_s),
        q AS (
            SELECT f.journal, f.inst, f.seq, h.horizon_s,
                   f.recv_ns + h.horizon_s::BIGINT * 1000000000 AS at_ns
            FROM fills f, h),
        m AS (
            SELECT q.*, b.mid2_ticks
            FROM q ASOF LEFT JOIN mids b
              ON q.journal = b.journal AND q.inst = b.inst AND q.at_ns >= b.recv_ns),
        w AS (
            SELECT m.journal, m.inst, m.seq,
                   max(m.mid2_ticks) FILTER (horizon_s = 0) AS mid2_0,
                   max(m.mid2_ticks) FILTER (horizon_s = 1 AND at_ns <= l.last_recv_ns) AS mid2_1s,
                   max(m.mid2_ticks) FILTER (horizon_s = 10 AND at_ns <= l.last_recv_ns)
                       AS mid2_10s,
                   max(m.mid2_ticks) FILTER (horizon_s = 60 AND at_ns <= l.last_recv_ns)
                       AS mid2_60s
            FROM m JOIN last_mid l USING (journal, inst) GROUP BY ALL)
        SELECT f.journal, f.seq, f.time, f.inst, f.client_id, f.tag, f.side, f.is_maker,
               f.price, f.qty, w.mid2_0 * i.tick / 2 AS mid_at_fill,
               f.side * (w.mid2_1s - 2 * f.price_ticks) / 2 AS markout_1s_ticks,
               f.side * (w.mid2_10s - 2 * f.price_ticks) / 2 AS markout_10s_ticks,
               f.side * (w.mid2_60s - 2 * f.price_ticks) / 2 AS markout_60s_ticks,
               f.side * (w.mid2_1s - 2 * f.price_ticks) * f.qty_lots * i.minor_per_ticklot / 2e8
                   AS markout_1s,
               f.side * (w.mid2_10s - 2 * f.price_ticks) * f.qty_lots * i.minor_per_ticklot / 2e8
                   AS markout_10s,
               f.side * (w.mid2_60s - 2 * f.price_ticks) * f.qty_lots * i.minor_per_ticklot / 2e8
                   AS markout_60s
        FROM fills f JOIN w USING (journal, inst, seq) JOIN instruments i USING (journal, inst)""",
    "spread_capture": f"""
        SELECT journal, inst, CASE side WHEN 1 THEN 'BUY' ELSE 'SELL' END AS side,
               CASE WHEN is_maker THEN 'maker' ELSE 'taker' END AS liquidity,
               count(*) AS fills, sum(qty) AS qty,
               avg(edge_half_ticks) / 2 AS avg_edge_ticks,
               sum(spread_capture_half_minor) * {_HALF} AS spread_capture,
               1e4 * sum(spread_capture_half_minor) / 2 / sum(notional_minor) AS capture_bps
        FROM fills GROUP BY ALL ORDER BY ALL""",
    "inventory": """
        SELECT p.journal, p.inst, p.seq, p.time, p.cause, p.position_lots, p.position,
               (lead(p.recv_ns) OVER w - p.recv_ns) / 1e9 AS held_s,
               p.position_lots * l.mid2_ticks / 2 * i.minor_per_ticklot / 1e8 AS notional_at_last_mid
        FROM positions p JOIN instruments i USING (journal, inst)
        LEFT JOIN last_mid l USING (journal, inst)
        WINDOW w AS (PARTITION BY p.journal, p.inst ORDER BY p.seq)
        ORDER BY p.journal, p.inst, p.seq""",
    "order_to_fill": """
        SELECT journal, inst, client_id, tag, CASE side WHEN 1 THEN 'BUY' ELSE 'SELL' END AS side,
               tif, status, placed_time, ack_latency_ms, fill_latency_ms, cancel_latency_ms,
               (end_ns - placed_ns) / 1e6 AS lifetime_ms, fills, filled
        FROM orders""",
    "quote_uptime": """
        WITH iv AS (
            SELECT o.journal, o.inst, o.side, o.accepted_ns AS s,
                   least(coalesce(o.end_ns, l.last_recv_ns), l.last_recv_ns) AS e
            FROM orders o JOIN last_mid l USING (journal, inst)
            WHERE o.accepted_ns IS NOT NULL),
        pts AS (
            SELECT journal, inst, side, s AS t, 1 AS d FROM iv
            UNION ALL SELECT journal, inst, side, e AS t, -1 AS d FROM iv),
        run AS (
            SELECT *, sum(d) OVER w AS live, lead(t) OVER w AS next_t FROM pts
            WINDOW w AS (PARTITION BY journal, inst, side ORDER BY t, d
                         ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW))
        SELECT r.journal, r.inst, CASE r.side WHEN 1 THEN 'BUY' ELSE 'SELL' END AS side,
               sum(CASE WHEN live > 0 THEN next_t - t ELSE 0 END) / 1e9 AS quoted_s,
               any_value(l.last_recv_ns - l.first_recv_ns) / 1e9 AS session_s,
               sum(CASE WHEN live > 0 THEN next_t - t ELSE 0 END)
                   / any_value(l.last_recv_ns - l.first_recv_ns) AS uptime
        FROM run r JOIN last_mid l USING (journal, inst) GROUP BY ALL ORDER BY ALL""",
    "grid_slot_pnl": f"""
        WITH g AS (
            SELECT f.journal, f.inst, f.slot, count(*) AS fills,
                   count(*) FILTER (f.side = 1) AS buys, count(*) FILTER (f.side = -1) AS sells,
                   sum(f.side * f.qty_lots) AS open_lots,
                   -sum(f.side * f.notional_minor) AS cash_minor, sum(f.fee_minor) AS fees_minor,
                   any_value(f.tag) AS tag
            FROM fills f WHERE f.slot IS NOT NULL GROUP BY ALL),
        v AS (
            SELECT g.*, i.step, i.tick,
                   -- marked at the last price (mid, else last trade, else last candle's close);
                   -- a flat slot is worth nothing whatever the price
                   CASE WHEN g.open_lots = 0 THEN 0
                        ELSE (g.open_lots * p.price2_ticks * i.minor_per_ticklot)::HUGEINT
                   END AS open_half_minor
            FROM g JOIN instruments i USING (journal, inst)
            LEFT JOIN last_price p USING (journal, inst))
        SELECT journal, inst, slot,
               CASE WHEN tag LIKE 'g:%' THEN TRY_CAST(slot AS BIGINT) * tick END AS slot_price,
               fills, buys, sells, open_lots * step AS open_qty,
               cash_minor * {_M} AS cash_flow, fees_minor * {_M} AS fees,
               open_half_minor * {_HALF} AS open_value,
               (2 * (cash_minor - fees_minor) + open_half_minor)::HUGEINT * {_HALF} AS pnl
        FROM v ORDER BY journal, inst, slot_price, slot""",
    "passive_fill_rate": """
        SELECT journal, inst, CASE side WHEN 1 THEN 'BUY' ELSE 'SELL' END AS side, tif,
               count(*) AS orders, count(*) FILTER (fills > 0) AS filled_orders,
               count(*) FILTER (fills > 0) / count(*) AS fill_rate,
               sum(filled_lots) / sum(qty_lots) AS qty_fill_rate,
               sum(maker_fills) / nullif(sum(fills), 0) AS maker_share,
               count(*) FILTER (status = 'REJECTED') / count(*) AS reject_rate
        FROM orders WHERE order_type = 'LIMIT' GROUP BY ALL ORDER BY ALL""",
    "risk_events": "SELECT * FROM decisions WHERE category = 'risk'",
    "reconciliation": "SELECT * FROM decisions WHERE category = 'reconcile'",
}


def create_views(con: object, temporary: bool = False) -> None:
    """Create every view on the DuckDB connection ``con`` (over tables already there)."""
    kind = "TEMP VIEW" if temporary else "VIEW"
    for name, sql in VIEWS.items():
        con.execute(f"CREATE OR REPLACE {kind} {name} AS {sql}")  # type: ignore[attr-defined]
