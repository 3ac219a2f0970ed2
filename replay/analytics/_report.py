"""The HTML report: one self-contained page (plotly.js inline), readable offline.

Every number comes from the same views ``replaymm sql`` offers; the page only draws them.
Large series are thinned before drawing (the mid is drawn per second, order placements
sampled to at most ``_MAX_POINTS``) so the page stays light enough to open.
"""

from __future__ import annotations

import html
from decimal import Decimal
from pathlib import Path
from typing import Any

import duckdb

__all__ = ["write_report"]

_MAX_POINTS = 20_000


def _rows(con: duckdb.DuckDBPyConnection, sql: str) -> list[dict[str, Any]]:
    rel = con.sql(sql)
    cols = rel.columns
    return [dict(zip(cols, r)) for r in rel.fetchall()]


def _f(v: Any) -> Any:
    return float(v) if isinstance(v, Decimal) else v


def _col(rows: list[dict[str, Any]], name: str) -> list[Any]:
    return [_f(r[name]) for r in rows]


def _table(rows: list[dict[str, Any]]) -> str:
    if not rows:
        return "<p>(none)</p>"
    head = "".join(f"<th>{html.escape(k)}</th>" for k in rows[0])
    body = "".join(
        "<tr>" + "".join(f"<td>{html.escape(_fmt(v))}</td>" for v in r.values()) + "</tr>"
        for r in rows
    )
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _fmt(v: Any) -> str:
    if isinstance(v, Decimal):
        return (
            f"{v.normalize():f}" if v == v.to_integral() else f"{v.quantize(Decimal('0.0001')):f}"
        )
    if isinstance(v, float):
        return f"{v:.4g}"
    return "" if v is None else str(v)


def _figures(con: duckdb.DuckDBPyConnection) -> list[tuple[str, Any]]:
    import plotly.graph_objects as go

    figs: list[tuple[str, Any]] = []
    eq = _rows(con, "SELECT * FROM equity ORDER BY journal, inst, time")
    fig = go.Figure()
    for name, label in (
        ("net_pnl", "net PnL"),
        ("realized_pnl", "realized"),
        ("unrealized_pnl", "unrealized"),
        ("fees", "fees paid"),
        ("funding", "funding"),
    ):
        fig.add_trace(go.Scatter(x=_col(eq, "time"), y=_col(eq, name), name=label, mode="lines"))
    figs.append(("Equity and PnL components (quote asset)", fig))

    fig = go.Figure(
        go.Scatter(x=_col(eq, "time"), y=_col(eq, "position"), line_shape="hv", name="position")
    )
    figs.append(("Inventory (base asset, sampled each second)", fig))

    fig = go.Figure(go.Scatter(x=_col(eq, "time"), y=_col(eq, "mid"), name="mid", mode="lines"))
    orders = _rows(
        con,
        f"SELECT placed_time, price, side FROM orders USING SAMPLE {_MAX_POINTS} ROWS "
        "ORDER BY placed_time",
    )
    for side, label, color in ((1, "our bids", "#2a9d8f"), (-1, "our asks", "#e76f51")):
        rows = [r for r in orders if r["side"] == side]
        fig.add_trace(
            go.Scatter(
                x=_col(rows, "placed_time"),
                y=_col(rows, "price"),
                name=label,
                mode="markers",
                marker={"size": 4, "color": color, "opacity": 0.7},
            )
        )
    fills = _rows(con, f"SELECT time, price, side FROM fills ORDER BY seq LIMIT {_MAX_POINTS}")
    for side, label, symbol in (
        (1, "buy fills", "triangle-up"),
        (-1, "sell fills", "triangle-down"),
    ):
        rows = [r for r in fills if r["side"] == side]
        fig.add_trace(
            go.Scatter(
                x=_col(rows, "time"),
                y=_col(rows, "price"),
                name=label,
                mode="markers",
                marker={"size": 9, "symbol": symbol, "line": {"width": 1, "color": "black"}},
            )
        )
    figs.append(("Quotes vs mid, with fills", fig))

    mk = _rows(
        con,
        "SELECT CASE side WHEN 1 THEN 'buys' ELSE 'sells' END AS side, "
        "avg(side * (mid_at_fill - price) / (SELECT any_value(tick) FROM instruments)) AS m0, "
        "avg(markout_1s_ticks) AS m1, avg(markout_10s_ticks) AS m10, "
        "avg(markout_60s_ticks) AS m60 FROM fill_markouts GROUP BY ALL ORDER BY 1",
    )
    fig = go.Figure()
    for r in mk:
        fig.add_trace(
            go.Scatter(
                x=[0, 1, 10, 60],
                y=[_f(r[k]) for k in ("m0", "m1", "m10", "m60")],
                name=r["side"],
                mode="lines+markers",
            )
        )
    fig.update_xaxes(title="seconds after the fill")
    fig.update_yaxes(title="average markout, ticks (positive = earned)")
    figs.append(("Markout curve", fig))

    lat = _rows(con, "SELECT ack_latency_ms, fill_latency_ms FROM orders")
    fig = go.Figure()
    for name, label in (
        ("ack_latency_ms", "placed -> acknowledged"),
        ("fill_latency_ms", "placed -> first fill"),
    ):
        xs = [v for v in _col(lat, name) if v is not None]
        fig.add_trace(go.Histogram(x=xs, name=label, opacity=0.6, nbinsx=60))
    fig.update_layout(barmode="overlay")
    fig.update_xaxes(title="ms")
    figs.append(("Order latency", fig))
    return figs


_STYLE = """
body { font-family: system-ui, sans-serif; margin: 24px; color: #222; }
table { border-collapse: collapse; font-size: 13px; margin-bottom: 16px; }
th, td { border: 1px solid #ccc; padding: 3px 8px; text-align: right; }
th { background: #f3f3f3; }
h2 { margin-top: 28px; }
"""


def write_report(con: duckdb.DuckDBPyConnection, out: Path, title: str) -> None:
    """Render the report for everything ``con`` (from ``connect``) holds into ``out``."""
    from plotly.offline import get_plotlyjs

    summary = _rows(
        con,
        "SELECT journal, symbol, position_lots, fills, quote_volume, spread_capture, "
        "inventory_pnl, realized_pnl, unrealized_pnl, fees, funding, net_pnl FROM pnl_summary",
    )
    counts = _rows(
        con,
        "SELECT journal, count(*) AS orders, count(*) FILTER (status = 'FILLED') AS filled, "
        "count(*) FILTER (status = 'REJECTED') AS rejected, "
        "count(*) FILTER (status = 'CANCELED') AS canceled, "
        "median(ack_latency_ms) AS ack_p50_ms FROM orders GROUP BY ALL",
    )
    views = {
        "Spread capture": "SELECT * FROM spread_capture",
        "Quote uptime": "SELECT * FROM quote_uptime",
        "Passive fill rate": "SELECT * FROM passive_fill_rate",
        "PnL by hour": "SELECT * FROM pnl_by_hour ORDER BY journal, inst, hour",
        "Grid slots / quoting levels": "SELECT * FROM grid_slot_pnl",
        "Risk events": "SELECT * FROM risk_events LIMIT 200",
    }
    parts = [
        f"<h1>{html.escape(title)}</h1>",
        "<h2>Summary</h2>",
        _table(summary),
        _table(counts),
    ]
    for heading, fig in _figures(con):
        fig.update_layout(height=420, margin={"l": 60, "r": 20, "t": 30, "b": 40})
        parts.append(f"<h2>{html.escape(heading)}</h2>")
        parts.append(fig.to_html(full_html=False, include_plotlyjs=False))
    for heading, sql in views.items():
        parts.append(f"<h2>{html.escape(heading)}</h2>")
        parts.append(_table(_rows(con, sql)))
    page = (
        "<!DOCTYPE html><html><head><meta charset='utf-8'>"
        f"<title>{html.escape(title)}</title><style>{_STYLE}</style>"
        f"<script type='text/javascript'>{get_plotlyjs()}</script></head><body>"
        + "\n".join(parts)
        + "</body></html>"
    )
    out.write_text(page, encoding="utf-8")
