"""A backtest's export columns (``analytics.columns``): the same export as decoding the
journal, used only when they match the journal exactly."""

from __future__ import annotations

import shutil
import zlib
from decimal import Decimal
from pathlib import Path

import duckdb
import msgspec
import pyarrow.parquet as pq
import pytest

from engine import EventRecord, IntentRecord, Side, TradePrinted
from journal import Durability, JournalReader, JournalWriter, segment_paths
from journal._format import FRAME, PREAMBLE
from replay import run_backtest
from replay.analytics import TABLES, VIEWS, _tail, export_duckdb, export_parquet
from replay.analytics._sidecar import COLUMNS_NAME, read_columns
from tests.conftest import simple_config

CENT = Decimal("0.01")


@pytest.fixture(scope="module")
def backtest(imported_sessions, tmp_path_factory):
    out = tmp_path_factory.mktemp("sidecar") / "bt"
    result = run_backtest(simple_config(), imported_sessions["btc-2024-08"], out, columns=True)
    return out, result


def _rows(con: duckdb.DuckDBPyConnection, name: str) -> list[tuple]:
    rows = con.sql(f"SELECT * FROM {name}").fetchall()
    # a table keeps its rows' order; some views have no ORDER BY (their order may vary)
    return rows if name in TABLES else sorted(rows, key=repr)


def _assert_same_export(a: Path, b: Path) -> None:
    """Every table and view of two DuckDB exports: same columns, types and rows."""
    ca = duckdb.connect(str(a), read_only=True)
    cb = duckdb.connect(str(b), read_only=True)
    for name in (*TABLES, *VIEWS):
        assert ca.sql(f"DESCRIBE {name}").fetchall() == cb.sql(f"DESCRIBE {name}").fetchall()
        assert _rows(ca, name) == _rows(cb, name), name


def test_columns_give_the_same_export_as_the_journal(backtest, tmp_path):
    path, result = backtest
    assert result.columns == "written"
    assert (path / COLUMNS_NAME).exists()
    fast = export_duckdb(path, tmp_path / "fast.duckdb")
    slow = export_duckdb(path, tmp_path / "slow.duckdb", columns=False)
    assert (fast.columns, slow.columns) == ("used", "not asked")
    assert fast.rows == slow.rows and fast.events == slow.events == result.events_out
    assert slow.rows["fills"] > 100  # the comparison means something only with activity
    _assert_same_export(tmp_path / "fast.duckdb", tmp_path / "slow.duckdb")
    # PnL in SQL (from the columns) is the backtest's summary
    con = duckdb.connect(str(tmp_path / "fast.duckdb"), read_only=True)
    (s,) = result.summary.instruments
    net, fills = con.sql("SELECT net_pnl, fills FROM pnl_summary").fetchall()[0]
    assert net.quantize(CENT) == s.net_pnl.quantize(CENT) and fills == s.fills
    # Parquet: the same files, byte for byte
    export_parquet(path, tmp_path / "pq-fast")
    export_parquet(path, tmp_path / "pq-slow", columns=False)
    for f in sorted((tmp_path / "pq-slow").iterdir()):
        other = tmp_path / "pq-fast" / f.name
        if f.name == "export_info.parquet":
            assert pq.read_table(f).equals(pq.read_table(other))
        else:
            assert f.read_bytes() == other.read_bytes(), f.name


def _copy(journal: Path, to: Path) -> Path:
    shutil.copytree(journal, to)
    return to


def test_a_grown_journal_is_decoded_again(backtest, tmp_path):
    path = _copy(backtest[0], tmp_path / "bt")
    before = export_duckdb(path, tmp_path / "before.duckdb")
    assert before.columns == "used"
    w, _ = JournalWriter.open_append(path, durability=Durability("none"))
    last = max(r.recv_ns for r in JournalReader(path).events())
    w.append_event(last + 1, TradePrinted(0, last, 99_999_999_999, 600_000, 7, Side.SELL))
    w.close()
    after = export_duckdb(path, tmp_path / "after.duckdb")
    assert after.columns.startswith("stale: segment-000000.rmj grew from")
    assert after.events == before.events + 1
    assert after.rows["trades"] == before.rows["trades"] + 1
    con = duckdb.connect(str(tmp_path / "after.duckdb"), read_only=True)
    assert con.sql("SELECT qty_lots FROM trades WHERE trade_id = 99999999999").fetchall() == [(7,)]


def _rewrite_a_trade(journal: Path) -> int:
    """Change one trade's quantity in place (a valid record of the same length, its CRC
    fixed): the journal keeps its size. Returns the trade's id."""
    seg = segment_paths(journal)[-1]
    data = bytearray(seg.read_bytes())
    dec = msgspec.msgpack.Decoder(EventRecord | IntentRecord)
    enc = msgspec.msgpack.Encoder()
    off = PREAMBLE.size
    found = None
    while off < len(data):
        n, _ = FRAME.unpack_from(data, off)
        start = off + FRAME.size
        if data[start + 1] == 1:  # an event record
            rec = dec.decode(bytes(data[start : start + n]))
            if type(rec) is EventRecord and type(rec.event) is TradePrinted:
                if 1 <= rec.event.qty < 100:
                    found = (off, rec)
        off = start + n
    assert found is not None
    off, rec = found
    changed = msgspec.structs.replace(rec.event, qty=rec.event.qty + 1)
    payload = enc.encode(EventRecord(rec.seq, rec.recv_ns, changed))
    n, _ = FRAME.unpack_from(data, off)
    assert len(payload) == n
    data[off : off + FRAME.size + n] = FRAME.pack(n, zlib.crc32(payload)) + payload
    seg.write_bytes(bytes(data))
    return rec.event.trade_id


def test_a_journal_changed_in_place_is_decoded_again(backtest, tmp_path):
    path = _copy(backtest[0], tmp_path / "bt")
    size = sum(p.stat().st_size for p in segment_paths(path))
    trade = _rewrite_a_trade(path)
    assert sum(p.stat().st_size for p in segment_paths(path)) == size
    r = export_duckdb(path, tmp_path / "x.duckdb")
    assert r.columns == "stale: segment-000000.rmj changed (same size, other bytes)"
    con = duckdb.connect(str(tmp_path / "x.duckdb"), read_only=True)
    export_duckdb(backtest[0], tmp_path / "orig.duckdb")
    q = f"SELECT qty_lots FROM trades WHERE trade_id = {trade}"
    orig = duckdb.connect(str(tmp_path / "orig.duckdb"), read_only=True)
    assert con.sql(q).fetchall()[0][0] == orig.sql(q).fetchall()[0][0] + 1


@pytest.mark.parametrize("damage", ["flip", "truncate", "garbage"])
def test_a_damaged_columns_file_is_not_used(backtest, tmp_path, damage):
    path = _copy(backtest[0], tmp_path / "bt")
    f = path / COLUMNS_NAME
    data = bytearray(f.read_bytes())
    if damage == "flip":
        data[len(data) // 3] ^= 0x40  # inside a table's data
    elif damage == "truncate":
        del data[len(data) // 2 :]
    else:
        data = bytearray(b"not columns at all")
    f.write_bytes(bytes(data))
    cols, why = read_columns(path)
    assert cols is None and why.startswith("damaged: "), why
    r = export_duckdb(path, tmp_path / "x.duckdb")
    assert r.columns == why
    export_duckdb(path, tmp_path / "y.duckdb", columns=False)
    _assert_same_export(tmp_path / "x.duckdb", tmp_path / "y.duckdb")


def test_columns_of_another_export_version_are_not_used(backtest, tmp_path, monkeypatch):
    from replay.analytics import _sidecar

    path = _copy(backtest[0], tmp_path / "bt")
    monkeypatch.setattr(_sidecar, "EXPORT_VERSION", "older")
    assert read_columns(path) == (None, "stale: written by another version of the export")


def test_a_failed_backtest_leaves_no_columns(imported_sessions, tmp_path):
    out = tmp_path / "bt"

    def boom(_n: int) -> None:
        raise RuntimeError("stop here")

    with pytest.raises(RuntimeError, match="stop here"):
        run_backtest(simple_config(), imported_sessions["btc-2024-08"], out, progress=boom,
                     columns=True)  # fmt: skip
    assert sorted(p.name for p in out.iterdir()) == ["segment-000000.rmj"]


def test_short_backtests_build_no_columns_unless_asked(imported_sessions, tmp_path, monkeypatch):
    data = imported_sessions["btc-2024-08"]
    r = run_backtest(simple_config(), data, tmp_path / "a", columns=False)
    assert r.columns == "" and not (tmp_path / "a" / COLUMNS_NAME).exists()
    monkeypatch.setattr("replay._backtest.COLUMNS_MIN_EVENTS", 1 << 40)
    r = run_backtest(simple_config(), data, tmp_path / "b")
    assert r.columns == "" and not (tmp_path / "b" / COLUMNS_NAME).exists()
    monkeypatch.setattr("replay._backtest.COLUMNS_MIN_EVENTS", 1 << 14)  # started midway
    r = run_backtest(simple_config(), data, tmp_path / "c")
    assert r.columns == "written" and read_columns(tmp_path / "c")[1] == "used"


def _resegment(src: Path, dst: Path, segment_bytes: int) -> None:
    """The same records as ``src`` in a journal of small segments."""
    reader = JournalReader(src)
    records = reader.records()
    header = next(records)
    w = JournalWriter.create(
        dst, header, durability=Durability("none"), segment_bytes=segment_bytes
    )
    for rec in records:
        if type(rec) is EventRecord:
            w.append_record(rec)
        else:
            w.append_intents(rec.seq, rec.intents)
    w.close()


def test_the_follower_reads_a_journal_as_it_grows(backtest, tmp_path, monkeypatch):
    """The follower sees the journal's segments appear and grow in odd-sized steps (a frame,
    even a segment's preamble, cut anywhere) and builds the same columns as an export."""
    src = tmp_path / "src"
    _resegment(backtest[0], src, 1 << 20)
    segments = segment_paths(src)
    assert len(segments) > 3
    monkeypatch.setattr(_tail, "_PART_ROWS", 10_000)  # many parts of the market tables

    def follow(into: Path, step: int, read: int) -> bytes:
        monkeypatch.setattr(_tail, "_READ", read)
        into.mkdir()
        follower = _tail._Follower(into)
        for seg in segments:
            data = seg.read_bytes()
            with open(into / seg.name, "wb") as f:
                for i in range(0, len(data), step):
                    f.write(data[i : i + step])
                    f.flush()
                    while follower.poll():
                        pass
        follower.finish()
        return (into / COLUMNS_NAME).read_bytes()

    grown = tmp_path / "grown"
    built = follow(grown, 333_331, 50_000)  # reads shorter than a segment, frames cut
    assert read_columns(grown)[1] == "used"
    export_duckdb(grown, tmp_path / "fast.duckdb")
    export_duckdb(grown, tmp_path / "slow.duckdb", columns=False)
    _assert_same_export(tmp_path / "fast.duckdb", tmp_path / "slow.duckdb")
    # the same journal read in other steps: the same file, byte for byte
    assert follow(tmp_path / "again", 1 << 22, 1 << 24) == built


def test_a_rerun_writes_the_same_columns_file(backtest, imported_sessions, tmp_path):
    """Same config, same data: the same journal and the same columns, byte for byte."""
    path, _ = backtest
    again = run_backtest(
        simple_config(), imported_sessions["btc-2024-08"], tmp_path / "bt", columns=True
    )
    assert again.columns == "written"
    for name in (COLUMNS_NAME, *(p.name for p in segment_paths(path))):
        assert (tmp_path / "bt" / name).read_bytes() == (path / name).read_bytes(), name
