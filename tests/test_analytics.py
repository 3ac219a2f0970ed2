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
from tests.conftest import ROOT, data_file, simple_config
from tools._config import load_config
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
    # with its export columns: the exports below start from them (test_export_sidecar.py
    # checks they give what decoding the journal gives)
    result = run_backtest(simple_config(), imported_sessions["btc-2024-08"], out, columns=True)
    assert result.columns == "written"
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
    assert r.columns == "used"
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
    # the inventory view reads as a path: one row per position change, in journal order
    seqs = [r[0] for r in con.sql("SELECT seq FROM inventory").fetchall()]
    assert len(seqs) > 100 and seqs == sorted(seqs)

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
                         "WHERE schema_name = 'main' AND table_name = 'fills'").fetchall())  # fmt: skip
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


# The views as first written, straight over ``book_top`` (ASOF joins and groupings over every
# top of book): slow over millions of rows, but obviously right. The shipped views read the
# ``mids`` table and a window instead of a join; they must give the same rows.
REFERENCE_VIEWS = {
    "last_mid": """
        SELECT journal, inst, arg_max(bid_ticks + ask_ticks, update_id) AS mid2_ticks,
               max(recv_ns) AS last_recv_ns, min(recv_ns) AS first_recv_ns
        FROM book_top WHERE 0 < bid_ticks AND bid_ticks < ask_ticks GROUP BY ALL""",
    "equity": """
        WITH s AS (
            SELECT journal, inst, time_bucket(INTERVAL 1 second, time) AS time,
                   max(recv_ns) AS recv_ns, arg_max(bid_ticks + ask_ticks, seq) AS mid2_ticks
            FROM book_top WHERE 0 < bid_ticks AND bid_ticks < ask_ticks GROUP BY ALL),
        j AS (
            SELECT s.journal, s.inst, s.time, s.mid2_ticks,
                   coalesce(p.position_lots, 0) AS position_lots,
                   coalesce(p.cost_minor, 0) AS cost_minor,
                   coalesce(p.realized_minor, 0) AS realized_minor,
                   coalesce(p.fees_minor, 0) AS fees_minor,
                   coalesce(p.funding_minor, 0) AS funding_minor
            FROM s ASOF LEFT JOIN positions p
              ON s.journal = p.journal AND s.inst = p.inst AND s.recv_ns >= p.recv_ns)
        SELECT j.journal, j.inst, j.time, j.mid2_ticks * i.tick / 2 AS mid,
               j.position_lots * i.step AS position,
               j.realized_minor * 0.00000001::DECIMAL(18,8) AS realized_pnl,
               (j.position_lots * j.mid2_ticks * i.minor_per_ticklot - 2 * j.cost_minor)::HUGEINT
                   * 0.000000005::DECIMAL(18,9) AS unrealized_pnl,
               j.fees_minor * 0.00000001::DECIMAL(18,8) AS fees, j.funding_minor * 0.00000001::DECIMAL(18,8) AS funding,
               (2 * (j.realized_minor - j.fees_minor + j.funding_minor)
                + j.position_lots * j.mid2_ticks * i.minor_per_ticklot - 2 * j.cost_minor)::HUGEINT
                   * 0.000000005::DECIMAL(18,9) AS net_pnl
        FROM j JOIN instruments i USING (journal, inst)""",
    "fill_markouts": """
        WITH h AS (SELECT unnest([0, 1, 10, 60]) AS horizon_s),
        q AS (
            SELECT f.journal, f.inst, f.seq, h.horizon_s,
                   f.recv_ns + h.horizon_s::BIGINT * 1000000000 AS at_ns
            FROM fills f, h),
        m AS (
            SELECT q.*, b.bid_ticks + b.ask_ticks AS mid2_ticks
            FROM q ASOF LEFT JOIN book_top b
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
}


def _reference_views(con: duckdb.DuckDBPyConnection) -> None:
    """Every view again as ``ref_<name>``, built on the reference definitions above."""

    def rename(sql: str) -> str:
        return re.sub(rf"\b(FROM|JOIN)\s+({'|'.join(VIEWS)})\b", r"\1 ref_\2", sql)

    for name, sql in VIEWS.items():
        con.execute(f"CREATE TEMP VIEW ref_{name} AS {rename(REFERENCE_VIEWS.get(name, sql))}")


def test_fast_views_equal_their_reference_definitions(backtest, tmp_path):
    path, _ = backtest
    export_duckdb(path, tmp_path / "bt.duckdb")
    con = duckdb.connect(str(tmp_path / "bt.duckdb"), read_only=True)
    _reference_views(con)
    tops, runs, covered = _one(
        con, "SELECT (SELECT count(*) FROM book_top), count(*), sum(rows) FROM mids"
    )
    assert covered == tops and 0 < runs < tops / 5  # the point of the table
    for name in VIEWS:
        cols = ", ".join(c for c in con.sql(f"SELECT * FROM ref_{name}").columns)
        n = _one(con, f"SELECT count(*) FROM {name}")[0]
        assert n == _one(con, f"SELECT count(*) FROM ref_{name}")[0], name
        for a, b in ((name, f"ref_{name}"), (f"ref_{name}", name)):
            diff = _one(con, f"SELECT count(*) FROM (SELECT {cols} FROM {a} EXCEPT ALL "
                             f"SELECT {cols} FROM {b})")[0]  # fmt: skip
            assert diff == 0, (name, a, b)
    assert _one(con, "SELECT count(*) FROM equity")[0] > 100
    assert _one(con, "SELECT count(markout_60s) FROM fill_markouts")[0] > 100


KLINES = ("binance-usdm-klines-freqtrade", "BTCUSDT_perp_5m_2023-01-02_to_2023-02-09.csv")


@pytest.mark.realdata
def test_grid_slot_pnl_without_a_book_marks_at_the_last_close(tmp_path):
    from tools.import_csv import import_klines

    candles = tmp_path / "candles"
    import_klines([data_file(*KLINES)], candles, symbol="BTCUSDT", interval="5m")
    cfg = load_config(ROOT / "configs" / "grid-btcusdt.yaml")
    run_backtest(cfg, candles, tmp_path / "bt")
    export_duckdb(tmp_path / "bt", tmp_path / "bt.duckdb")
    con = duckdb.connect(str(tmp_path / "bt.duckdb"), read_only=True)
    assert _one(con, "SELECT count(*) FROM book_top")[0] == 0  # candles only: no mid at all
    assert _one(con, "SELECT source FROM last_price")[0] == "kline"
    close = _one(con, "SELECT arg_max(close, seq) FROM klines")[0]
    rows = con.sql(
        "SELECT slot, slot_price, open_qty, open_value, pnl FROM grid_slot_pnl"
    ).fetchall()
    assert len(rows) > 10
    for slot, slot_price, open_qty, open_value, pnl in rows:
        assert pnl is not None and open_value is not None, slot
        assert slot_price == int(slot) * Decimal("0.1")  # tag g:<slot ticks>:..., tick 0.10
        assert open_value == open_qty * close  # flat slots are worth 0
    # the slots add up to the ledger's own (average-cost) figure marked at the last close
    total = _one(con, "SELECT sum(pnl), sum(open_qty) FROM grid_slot_pnl")
    assert total[1] != 0  # the run ends holding inventory, so the mark matters
    ledger = _one(
        con,
        "SELECT (arg_max(realized_minor, seq) - arg_max(fees_minor, seq) "
        "- arg_max(cost_minor, seq)) * 0.00000001 FROM positions",
    )[0]
    assert total[0] == ledger + total[1] * close
    assert _one(con, "SELECT count(*) FROM fills WHERE slot IS NULL")[0] == 0


def _runs_by_hand(rows: list[tuple[int, ...]]) -> list[tuple[int, ...]]:
    """mid_runs spelled out: rows are (inst, seq, recv_ns, update_id, bid, ask)."""
    out: list[list[int]] = []
    key = None
    for inst, seq, recv, uid, bid, ask in sorted(rows, key=lambda r: (r[0], r[2], r[1])):
        k = (inst, bid + ask, 0 < bid < ask, recv // 10**9)
        if k != key:
            out.append([inst, seq, recv, bid + ask, 0 < bid < ask, 0, seq, recv, uid])
            key = k
        run = out[-1]
        run[5] += 1
        run[6], run[7], run[8] = max(run[6], seq), max(run[7], recv), max(run[8], uid)
    return [tuple(r) for r in out]


@pytest.mark.parametrize("shuffled", [False, True])
def test_mid_runs_match_a_plain_loop(shuffled):
    import random

    import pyarrow as pa

    from replay.analytics._mids import mid_runs

    rnd = random.Random(7)
    rows, recv = [], 10**18
    for seq in range(1, 3000):
        recv += rnd.choice([0, 1, 10**6, 3 * 10**8])
        if shuffled:  # receive times out of seq order, update ids falling, two instruments
            recv += rnd.randint(-(10**8), 10**8)
        bid = rnd.choice([0, 100, 100, 101, 101, 101, 102, 105])
        ask = rnd.choice([101, 102, 102, 103, 100])
        uid = seq if not shuffled else rnd.randint(0, 10**6)
        rows.append((rnd.randint(0, 1) if shuffled else 0, seq, recv, uid, bid, ask))
    names = ("inst", "seq", "recv_ns", "update_id", "bid_ticks", "ask_ticks")
    cols = {n: pa.array([r[i] for r in rows], pa.int64()) for i, n in enumerate(names)}
    got = mid_runs(cols)
    got_rows = list(zip(*(got[n].to_pylist() for n in got)))
    assert got_rows == _runs_by_hand(rows)
    assert len(got_rows) < len(rows)


def _tables_of(path: Path, lazy: bool) -> dict:
    from replay.analytics._export import journal_tables

    tables, _, _ = journal_tables(path, lazy=lazy, columns=False)
    return {n: t.drop_columns(["journal"]) for n, t in tables.items() if n != "export_info"}


@pytest.mark.parametrize("cut", ["middle", "segment", "wrong"])
def test_two_process_scan_equals_one_process(backtest, monkeypatch, cut):
    """The journal scanned in two processes (cut in the middle of a segment, at a segment's
    start: here the first half is empty, or at an offset that is no frame of the first
    half's: then the split is refused and the journal scanned again in one process) gives
    the same tables as one scan."""
    from replay.analytics import _collect

    path, _ = backtest
    monkeypatch.setattr(_collect, "_SPLIT_MIN_BYTES", 1 << 40)
    one = _tables_of(path, lazy=False)
    monkeypatch.setattr(_collect, "_SPLIT_MIN_BYTES", 0)
    cut_at = _collect._cut
    if cut == "segment":
        monkeypatch.setattr(_collect, "_cut", lambda r, s: (0, 24))
    elif cut == "wrong":
        monkeypatch.setattr(_collect, "_cut", lambda r, s: (0, cut_at(r, s)[1] + 1))
    split = _collect._collect_split
    used = []
    monkeypatch.setattr(_collect, "_collect_split", lambda *a: used.append(split(*a)) or used[-1])
    two = _tables_of(path, lazy=False)
    assert (used[0] is None) == (cut == "wrong")
    assert one.keys() == two.keys()
    for name in one:
        assert one[name].equals(two[name]), name
