"""Imports of the real recorded files: every line accounted for; malformed lines reported."""

from __future__ import annotations

import gzip
import itertools

import pytest

from engine import KlineUpdated, TradePrinted
from journal import JournalReader, check_journal, read_header
from tests.conftest import SESSIONS, data_file
from tools._import_common import ImportFailed
from tools.import_csv import import_klines, import_tardis, import_trades
from tools.import_ws import import_binance_ws

# line counts of each file, from ../shared/data/README.md
LINES = {
    "btcusdt_20230404.dat.gz": 13384,
    "btcusdt_20230405.dat.gz": 60381,
    "btcusdt_20240718.gz": 11414,
    "btcusdt_20240719.gz": 60570,
    "btcusdt_20240808.gz": 93954,
    "ethusdt_20240808.gz": 74655,
}


@pytest.mark.realdata
@pytest.mark.parametrize("session", list(SESSIONS))
def test_each_real_session_imports_every_line(imported_sessions, session):
    report = check_journal(imported_sessions[session])
    lines = sum(LINES[f] for f in SESSIONS[session])
    header = read_header(imported_sessions[session])
    assert report.ok and header.kind == "market-data"
    # one event per line, plus InstrumentLoaded; the 2023 files carry one insurance-fund trade
    skipped = 1 if session == "btc-2023-04" else 0
    assert report.events == lines - skipped + 1
    assert header.source["files"] == SESSIONS[session]


def test_receive_times_are_the_recorders(imported_sessions):
    first = next(
        r
        for r in JournalReader(imported_sessions["btc-2024-08"]).events()
        if type(r.event) is TradePrinted
    )
    with gzip.open(data_file("binance-usdm-ws-hftbacktest", "btcusdt_20240808.gz"), "rt") as f:
        for line in f:
            if "@trade" in line:
                assert first.recv_ns == int(line.split(" ", 1)[0])
                break


def test_two_files_merge_by_receive_time(imported_sessions):
    # btc-2024-08 and eth-2024-08 recorded side by side
    from pathlib import Path

    out = Path(imported_sessions["btc-2024-08"]).parent / "both"
    files = [
        data_file("binance-usdm-ws-hftbacktest", "btcusdt_20240808.gz"),
        data_file("binance-usdm-ws-hftbacktest", "ethusdt_20240808.gz"),
    ]
    report = import_binance_ws(files, out)
    assert report.instruments == ["BTCUSDT", "ETHUSDT"]
    assert report.lines == LINES["btcusdt_20240808.gz"] + LINES["ethusdt_20240808.gz"]
    times = [r.recv_ns for r in JournalReader(out).events()]
    assert sum(1 for a, b in itertools.pairwise(times) if b < a) == 0


def test_malformed_lines_are_counted_and_shown(tmp_path):
    src = data_file("binance-usdm-ws-hftbacktest", "btcusdt_20240718.gz")
    lines = gzip.open(src).read().split(b"\n")
    lines[5] = b"garbage without json"
    lines[9] = lines[9][:-40]  # truncated JSON
    lines[12] = lines[12].replace(b'"b":"', b'"b":"1', 1) if b'"b":"' in lines[12] else b"1 {}"
    bad = tmp_path / "btcusdt_20240718.gz"
    bad.write_bytes(gzip.compress(b"\n".join(lines)))
    report = import_binance_ws([bad], tmp_path / "j")
    assert report.malformed >= 2
    assert report.examples[0].line == 6 and "layout" in report.examples[0].error
    assert report.examples[1].line == 10
    with pytest.raises(ImportFailed, match=r":6: .*--strict"):
        import_binance_ws([bad], tmp_path / "j2", strict=True)


def test_unknown_symbol_needs_exchange_info(tmp_path):
    src = data_file("binance-usdm-ws-cryptofeed", "2021-04-17_ws_dent-ksm-xmr-yfi.txt")
    with pytest.raises(ImportFailed, match="--exchange-info"):
        import_binance_ws([src], tmp_path / "j")
    report = import_binance_ws(
        [src, data_file("binance-usdm-ws-cryptofeed", "2021-04-17_rest_depth_snapshots.txt")],
        tmp_path / "j2",
        infer_filters=True,
    )
    assert (
        report.malformed == 0 and report.lines == 3259 + 4
    )  # 3,259 messages (README) + 4 snapshots
    assert report.by_type["BookSnapshotReceived"] == 4


def test_klines_38_days_of_btc(tmp_path):
    f = data_file("binance-usdm-klines-freqtrade", "BTCUSDT_perp_5m_2023-01-02_to_2023-02-09.csv")
    report = import_klines([f], tmp_path / "k", symbol="BTCUSDT", interval="5m")
    assert report.malformed == 0 and report.by_type["KlineUpdated"] == 10999
    ks = [r for r in JournalReader(tmp_path / "k").events() if type(r.event) is KlineUpdated]
    assert ks[0].event.open_ns == 1672677900000 * 10**6 and ks[0].recv_ns == ks[0].event.close_ns
    assert ks[0].event.open == 167273 and ks[0].event.volume == 691508


def test_klines_binance_archive_layout_with_and_without_header(tmp_path):
    row = "1672677900000,16727.3,16728.8,16726.0,16726.1,691.508,1672678199999,11566000.12,2000,300.100,5020000.5,0\n"
    row2 = row.replace("1672677900000", "1672678200000", 1).replace(
        "1672678199999", "1672678499999"
    )
    for name, text in (
        (
            "h.csv",
            "open_time,open,high,low,close,volume,close_time,quote_volume,count,taker_buy_volume,taker_buy_quote_volume,ignore\n"
            + row
            + row2,
        ),
        ("n.csv", row + row2),
    ):
        p = tmp_path / name
        p.write_text(text)
        report = import_klines(
            [p], tmp_path / name.replace(".csv", ""), symbol="BTCUSDT", interval="5m"
        )
        assert report.by_type["KlineUpdated"] == 2 and report.malformed == 0
        k = next(
            r.event
            for r in JournalReader(tmp_path / name.replace(".csv", "")).events()
            if type(r.event) is KlineUpdated
        )
        assert (
            k.quote_volume == 1156600012000000 and k.trades == 2000 and k.taker_buy_volume == 300100
        )
    with pytest.raises(ImportFailed, match="interval"):
        import_klines([p], tmp_path / "x", symbol="BTCUSDT", interval="7m")


def test_float_artifacts_in_freqtrade_files_are_snapped_to_the_tick(tmp_path):
    f = data_file("binance-usdm-klines-freqtrade", "XRPUSDT_perp_5m_2021-11-15_to_2021-11-21.csv")
    report = import_klines([f], tmp_path / "x", symbol="XRPUSDT", interval="5m")
    assert report.malformed == 0 and report.by_type["KlineUpdated"] == 1999


def test_trades_layouts(tmp_path):
    f = data_file("binance-usdm-klines-freqtrade", "ETHUSDT_perp_trades_1000_2023-02-02.csv")
    report = import_trades([f], tmp_path / "t", symbol="ETHUSDT")
    assert report.by_type["TradePrinted"] == 1000 and report.malformed == 0
    agg = tmp_path / "agg.csv"
    agg.write_text(
        "agg_trade_id,price,quantity,first_trade_id,last_trade_id,transact_time,is_buyer_maker\n"
        "1,1666.80,26.062,10,12,1675329600138,true\n2,1666.79,0.152,13,13,1675329600214,false\n"
    )
    raw = tmp_path / "raw.csv"
    raw.write_text("5,1666.80,1.000,1666.80,1675329600138,true\n")
    report = import_trades([agg, raw], tmp_path / "t2", symbol="ETHUSDT")
    trades = [
        r.event for r in JournalReader(tmp_path / "t2").events() if type(r.event) is TradePrinted
    ]
    assert [t.taker_side.name for t in trades] == ["SELL", "SELL", "BUY"]


def test_tardis(tmp_path):
    files = [
        data_file("binance-usdm-tardis-sample", n)
        for n in (
            "binance-futures_trades_BTCUSDT_2020-02-22.csv",
            "binance-futures_quotes_BTCUSDT_2020-02-22.csv",
            "binance-futures_book_snapshot_5_BTCUSDT.csv",
        )
    ]
    # BTCUSDT's tick was 0.01 in 2020-2021: use the exchangeInfo of that time
    xi = data_file(
        "binance-fixtures", "cryptofeed_fapi", "exchangeInfo_fapi_2021-07-22_BTCUSDT_only.json"
    )
    report = import_tardis(files, tmp_path / "t", exchange_info=[xi])
    assert report.malformed == 0
    assert report.by_type == {
        "InstrumentLoaded": 1,
        "TradePrinted": 9999,
        "TopOfBookUpdated": 9999,
        "BookSnapshotReceived": 10,
    }
    with pytest.raises(ImportFailed):
        import_tardis(files[:1], tmp_path / "t2", exchange_info=[files[0]])


@pytest.mark.realdata
def test_a_recording_imported_as_another_contract(tmp_path):
    """--as BTCUSDT=BTCUSDC: the recorded USDT-M market under the USDC-M contract's rules,
    so USDC-M configs backtest on real data (a proxy, said so in the help)."""
    from engine import InstrumentLoaded
    from journal import JournalReader
    from tools.import_ws import import_binance_ws

    src = data_file("binance-usdm-ws-hftbacktest", "btcusdt_20240808.gz")
    report = import_binance_ws([src], tmp_path / "j", renames={"BTCUSDT": "BTCUSDC"})
    assert report.instruments == ["BTCUSDC"]
    specs = [
        r.event
        for r in JournalReader(tmp_path / "j").events()
        if isinstance(r.event, InstrumentLoaded)
    ]
    assert [(s.symbol, s.quote_asset, s.margin_asset) for s in specs] == [
        ("BTCUSDC", "USDC", "USDC")
    ]
    assert report.by_type["BookDeltaReceived"] > 6000 and report.by_type["TradePrinted"] > 20000


def _journal_bytes(path) -> bytes:
    from journal import segment_paths

    return b"".join(p.read_bytes() for p in segment_paths(path))


def _same_report(a, b) -> None:
    for field in ("lines", "events", "by_type", "skipped", "malformed", "examples", "instruments"):
        assert getattr(a, field) == getattr(b, field), field


@pytest.mark.realdata
def test_parallel_parse_writes_the_same_journal_as_one_process(tmp_path):
    # real lines with what the workers hand back to the parent mixed in: a symbol first seen
    # mid-file (ETH after the prescan's 200 lines), broken JSON, a line with no timestamp,
    # blank lines, and the file's own REST snapshot line
    btc = data_file("binance-usdm-ws-hftbacktest", "btcusdt_20240808.gz")
    eth = data_file("binance-usdm-ws-hftbacktest", "ethusdt_20240808.gz")
    with gzip.open(btc, "rb") as f:
        lines = list(itertools.islice(f, 6000))
    with gzip.open(eth, "rb") as f:
        eth_line = next(line for line in f if b"ethusdt@depth" in line)
    recv = lines[3000].split(b" ", 1)[0]
    lines[3000:3000] = [
        eth_line,
        recv + b' {"stream":"btcusdt@depth@0ms","data":{"broken\n',
        b"no timestamp here\n",
        b"\n",
        b"   \n",
    ]
    mixed = tmp_path / "btcusdt_20240808.gz"
    with gzip.open(mixed, "wb") as f:
        f.writelines(lines)
    one = import_binance_ws([mixed], tmp_path / "one", jobs=0)
    two = import_binance_ws([mixed], tmp_path / "two", jobs=2)
    _same_report(one, two)
    assert one.malformed == 2
    assert one.instruments == ["BTCUSDT", "ETHUSDT"]
    assert _journal_bytes(tmp_path / "one") == _journal_bytes(tmp_path / "two")


@pytest.mark.realdata
def test_parallel_parse_of_two_files_merged_is_the_same(tmp_path):
    files = [
        data_file("binance-usdm-ws-hftbacktest", "btcusdt_20240718.gz"),
        data_file("binance-usdm-ws-hftbacktest", "btcusdt_20240719.gz"),
    ]
    one = import_binance_ws(files, tmp_path / "one", jobs=0)
    two = import_binance_ws(files, tmp_path / "two", jobs=2)
    _same_report(one, two)
    assert _journal_bytes(tmp_path / "one") == _journal_bytes(tmp_path / "two")
