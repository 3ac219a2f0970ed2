"""Analytics: export, SQL with its cache, the views, the HTML report."""

from __future__ import annotations

import re
import shutil
import subprocess
from decimal import Decimal
from pathlib import Path

import duckdb
import pytest
from click.testing import CliRunner

from engine import (
    EVENT_TYPES,
    FORMAT_VERSION,
    EventRecord,
    InstrumentLoaded,
    IntentRecord,
    JournalHeader,
    OrderFilled,
    PlaceOrder,
    Side,
    TopOfBookUpdated,
    TradePrinted,
)
from journal import Durability, JournalReader, JournalWriter
from replay import run_backtest
from replay.analytics import VIEWS, connect, export_duckdb, export_parquet, find_journals
from replay.analytics._light import LIGHT_TWINS
from tests.conftest import simple_config
from tools.cli import main

CENT = Decimal("0.01")


def _one(con: duckdb.DuckDBPyConnection, sql: str) -> tuple:
    return con.sql(sql).fetchall()[0]


def test_light_twins_are_prefixes_of_the_real_events():
    for light, real in LIGHT_TWINS.items():
        assert light.__struct_config__.tag == real.__struct_config__.tag
        n = len(light.__struct_fields__)
        assert light.__struct_fields__ == real.__struct_fields__[:n], real.__name__
    assert {r.__struct_config__.tag for r in EVENT_TYPES} >= {
        t.__struct_config__.tag for t in LIGHT_TWINS
    }


@pytest.fixture(scope="module")
def backtest(imported_sessions, tmp_path_factory):
    out = tmp_path_factory.mktemp("analytics") / "bt"
    result = run_backtest(simple_config(), imported_sessions["btc-2024-08"], out)
    return out, result


def _journal_counts(path: Path) -> dict[str, int]:
    counts = {"events": 0, "fills": 0, "orders": 0, "intents": 0, "tops": 0}
    for rec in JournalReader(path).records():
        if type(rec) is EventRecord:
            counts["events"] += 1
            counts["fills"] += type(rec.event) is OrderFilled
            counts["tops"] += type(rec.event) is TopOfBookUpdated
        elif type(rec) is IntentRecord:
            counts["intents"] += len(rec.intents)
            counts["orders"] += sum(type(i) is PlaceOrder for i in rec.intents)
    return counts


def test_export_matches_the_journal_and_the_backtest_summary(backtest, tmp_path):
    path, result = backtest
    r = export_duckdb(path, tmp_path / "bt.duckdb")
    con = duckdb.connect(str(tmp_path / "bt.duckdb"), read_only=True)
    counts = _journal_counts(path)
    assert counts["fills"] > 100  # the test means something only with real activity
    assert r.rows["events"] == counts["events"] == result.events_out
    assert r.rows["fills"] == counts["fills"] == result.summary.fills
    assert r.rows["orders"] == counts["orders"] == result.summary.orders_placed
    assert r.rows["intents"] == counts["intents"]
    assert r.rows["book_top"] == counts["tops"]
    assert _one(con, "SELECT count(DISTINCT seq), min(seq), max(seq) FROM events") == (
        counts["events"],
        1,
        counts["events"],
    )
    # every fill belongs to an exported order, and the orders' fills add up
    assert _one(con, "SELECT sum(fills) FROM orders")[0] == counts["fills"]

    (s,) = result.summary.instruments
    row = con.sql("SELECT * FROM pnl_summary").fetchall()
    cols = con.sql("SELECT * FROM pnl_summary").columns
    (got,) = [dict(zip(cols, r)) for r in row]
    for name, expected in (
        ("net_pnl", s.net_pnl),
        ("realized_pnl", s.realized_pnl),
        ("unrealized_pnl", s.unrealized_pnl),
        ("fees", s.fees),
        ("funding", s.funding),
        ("spread_capture", s.spread_capture),
        ("inventory_pnl", s.inventory_pnl),
        ("quote_volume", s.quote_volume),
    ):
        assert got[name].quantize(CENT) == expected.quantize(CENT), name
    assert got["fills"] == s.fills
    # the hourly view adds up to the same net PnL
    hourly = _one(con, "SELECT sum(net_pnl) FROM pnl_by_hour")[0]
    assert Decimal(hourly).quantize(CENT) == s.net_pnl.quantize(CENT)


def test_types_and_units(backtest, tmp_path):
    path, _ = backtest
    export_duckdb(path, tmp_path / "bt.duckdb")
    con = duckdb.connect(str(tmp_path / "bt.duckdb"), read_only=True)
    types = dict(con.sql("SELECT column_name, data_type FROM duckdb_columns() "
                         "WHERE table_name = 'fills'").fetchall())  # fmt: skip
    assert types["price_ticks"] == "BIGINT"
    assert types["price"] == "DECIMAL(18,2)"  # BTCUSDT tick 0.10 is printed with 2 decimals
    assert types["qty"] == "DECIMAL(18,3)"
    assert types["fee"] == "DECIMAL(18,8)"
    assert types["time"].startswith("TIMESTAMP")
    # decimals are exactly the integers times the instrument's tick / step
    bad = _one(
        con,
        "SELECT count(*) FROM fills f JOIN instruments i USING (inst) "
        "WHERE f.price <> f.price_ticks * i.tick OR f.qty <> f.qty_lots * i.step "
        "OR f.fee <> f.fee_minor / 1e8::DECIMAL(18,0) * 1",
    )[0]
    assert bad == 0
    assert _one(con, "SELECT count(*) FROM book_top WHERE bid <> bid_ticks * 0.1")[0] == 0
    # every ready-made view runs
    for view in VIEWS:
        con.sql(f"SELECT * FROM {view}").fetchall()
    markouts = _one(con, "SELECT count(*), count(markout_1s) FROM fill_markouts")
    assert markouts[0] > 0 and markouts[1] > 0


def test_parquet_export_with_views(backtest, tmp_path):
    path, result = backtest
    out = tmp_path / "pq"
    export_parquet(path, out)
    con = duckdb.connect()
    con.execute(f"SET file_search_path = '{out}'")
    con.execute((out / "views.sql").read_text())
    net = _one(con, "SELECT net_pnl FROM pnl_summary")[0]
    assert net.quantize(CENT) == result.summary.net_pnl.quantize(CENT)


def _market_header() -> JournalHeader:
    inst = InstrumentLoaded(0, "BTCUSDT", "BTC", "USDT", "USDT", "0.10", "0.001", 1, 10**6, 100)
    return JournalHeader(FORMAT_VERSION, "", "", "", "market-data", {}, [inst])


def test_sql_sees_a_growing_journal(tmp_path):
    path = tmp_path / "live"
    w = JournalWriter.create(path, _market_header(), durability=Durability("none"))
    w.append_event(1, _market_header().instruments[0])
    t0 = 1_723_161_257_000_000_000
    for i in range(10):
        w.append_event(t0 + i, TradePrinted(0, t0 + i, i, 600_000 + i, 1, Side.BUY))
    w.commit()
    runner = CliRunner()
    q = "SELECT count(*) AS n FROM trades"
    first = runner.invoke(main, ["sql", str(path), q, "--csv"])
    assert first.exit_code == 0, first.output
    assert first.output.splitlines()[-1] == "10"
    for i in range(10, 25):
        w.append_event(t0 + i, TradePrinted(0, t0 + i, i, 600_000 + i, 1, Side.SELL))
    w.commit()
    second = runner.invoke(main, ["sql", str(path), q, "--csv"])
    assert second.output.splitlines()[-1] == "25"
    w.close()
    # unchanged journal: the cache is reused, same answer
    assert runner.invoke(main, ["sql", str(path), q, "--json"]).output.count('"n": 25') == 1


def test_sql_over_a_directory_of_sessions(imported_sessions, tmp_path):
    runs = tmp_path / "runs"
    nets = {}
    for name, offset in (("a", 1), ("b", 3)):
        cfg = simple_config()
        cfg["strategy"]["offset_ticks"] = offset
        nets[name] = run_backtest(cfg, imported_sessions["btc-2024-08"], runs / name).summary
    con = connect(find_journals(runs))
    got = dict(con.sql("SELECT journal, net_pnl FROM pnl_summary ORDER BY 1").fetchall())
    assert set(got) == {"a", "b"}
    for name, summary in nets.items():
        assert got[name].quantize(CENT) == summary.net_pnl.quantize(CENT)
    out = CliRunner().invoke(main, ["sql", str(runs), "SELECT journal FROM fill_markouts GROUP BY 1 ORDER BY 1", "--csv"])  # fmt: skip
    assert out.output.split() == ["journal", "a", "b"]


def test_sql_errors_are_one_line(tmp_path, backtest):
    path, _ = backtest
    r = CliRunner().invoke(main, ["sql", str(path), "SELECT nope FROM fills"])
    assert r.exit_code != 0
    assert "nope" in r.output and "Traceback" not in r.output
    r = CliRunner().invoke(main, ["sql", str(tmp_path), "SELECT 1"])
    assert r.exit_code != 0 and "neither a journal" in r.output


CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"


def test_report_renders_in_headless_chromium(backtest, tmp_path):
    if not Path(CHROMIUM).exists():
        pytest.skip("chromium is not installed (Debian package `chromium`)")
    path, _ = backtest
    html = tmp_path / "report.html"
    r = CliRunner().invoke(main, ["report", str(path), "--out", str(html)])
    assert r.exit_code == 0, r.output
    text = html.read_text()
    assert "<script src=" not in text  # plotly.js inline: readable offline
    base = [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
            "--virtual-time-budget=15000", f"--user-data-dir={tmp_path / 'profile'}"]  # fmt: skip
    shot = tmp_path / "report.png"
    run = subprocess.run(
        [*base, "--enable-logging=stderr", "--v=0", "--window-size=1400,4000",
         f"--screenshot={shot}", html.as_uri()],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    console = [ln for ln in run.stderr.splitlines() if "CONSOLE" in ln]
    errors = [ln for ln in console if re.search(r"error|uncaught", ln, re.I)]
    assert not errors, errors
    assert shot.exists() and shot.stat().st_size > 50_000  # plots, not a blank page
    dom = subprocess.run(
        [*base, "--dump-dom", html.as_uri()], capture_output=True, text=True, timeout=120
    ).stdout
    # plotly draws each figure as an SVG with class main-svg: the plots really rendered
    assert dom.count('class="main-svg"') >= 5
