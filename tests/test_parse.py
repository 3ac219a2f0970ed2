"""Binance JSON -> events, on real payloads (fixtures and recordings)."""

from __future__ import annotations

import pytest

from adapters.binance import (
    MarketParser,
    builtin_instrument,
    instrument_from_symbol_info,
    load_exchange_info,
)
from engine import (
    PRICE_E8_SCALE,
    RATE_SCALE,
    BookDeltaReceived,
    BookSnapshotReceived,
    Instrument,
    KlineUpdated,
    MarkPriceUpdated,
    Side,
    TopOfBookUpdated,
    TradePrinted,
)
from tests.conftest import data_file


def parser() -> MarketParser:
    return MarketParser([builtin_instrument(0, "BTCUSDT"), builtin_instrument(1, "ETHUSDT")])


def test_recorded_depth_bookticker_trade_and_mark():
    p = parser()
    depth = p.parse_combined(
        b'{"stream":"btcusdt@depth@0ms","data":{"e":"depthUpdate","E":1723161256299,"T":1723161256298,"s":"BTCUSDT","U":5,"u":9,"pu":4,"b":[["58710.20","0.014"],["61510.90","0.000"]],"a":[["61800.30","3.330"]]}}'
    )
    assert depth == BookDeltaReceived(
        0, 1723161256299_000_000, 5, 9, 4, [587102, 14, 615109, 0], [618003, 3330]
    )
    bt = p.parse_combined(
        b'{"stream":"btcusdt@bookTicker","data":{"e":"bookTicker","u":5123107839020,"s":"BTCUSDT","b":"61800.20","B":"2.507","a":"61800.30","A":"2.510","T":1723161256313,"E":1723161256313}}'
    )
    assert bt == TopOfBookUpdated(
        0, 1723161256313_000_000, 5123107839020, 618002, 2507, 618003, 2510
    )
    tr = p.parse_combined(
        b'{"stream":"btcusdt@trade","data":{"e":"trade","E":1723161256322,"T":1723161256322,"s":"BTCUSDT","t":5266583935,"p":"61800.30","q":"0.006","X":"MARKET","m":false}}'
    )
    assert tr == TradePrinted(0, 1723161256322_000_000, 5266583935, 618003, 6, Side.BUY)
    mk = p.parse_combined(
        b'{"stream":"btcusdt@markPrice@1s","data":{"e":"markPriceUpdate","E":1680652800010,"s":"BTCUSDT","p":"28155.10000000","P":"28141.47600845","i":"28165.04857143","r":"0.00002760","T":1680652800000}}'
    )
    assert isinstance(mk, MarkPriceUpdated)
    assert (
        mk.mark_e8 == 28155_10000000 and mk.index_e8 == 28165_04857143 and mk.funding_rate == 2760
    )
    assert PRICE_E8_SCALE == RATE_SCALE == 10**8
    insurance = p.parse_combined(
        b'{"stream":"btcusdt@trade","data":{"e":"trade","E":1,"T":1,"s":"BTCUSDT","t":1,"p":"1.0","q":"0.001","X":"INSURANCE_FUND","m":true}}'
    )
    assert insurance is None and p.skipped == {"trade:INSURANCE_FUND": 1}


def test_off_grid_price_is_an_error_not_a_rounding():
    with pytest.raises(ValueError):
        parser().parse_combined(
            b'{"stream":"btcusdt@trade","data":{"e":"trade","E":1,"T":1,"s":"BTCUSDT","t":1,"p":"61800.25","q":"0.001","m":true}}'
        )


def test_fixture_payloads_parse():
    import msgspec

    # the docs' example snapshot (prices like "4.00000200")
    tiny = {
        "symbol": "TESTUSDT",
        "quoteAsset": "USDT",
        "filters": [
            {"filterType": "PRICE_FILTER", "tickSize": "0.000001"},
            {"filterType": "LOT_SIZE", "stepSize": "1"},
        ],
    }
    p = MarketParser([instrument_from_symbol_info(0, tiny)])
    snap = data_file(
        "binance-fixtures", "nautilus_py_futures", "http_futures_market_depth.json"
    ).read_bytes()
    ev = p.parse_snapshot("TESTUSDT", snap)
    assert ev == BookSnapshotReceived(
        0, 1589436922972_000_000, 1027024, [4000000, 431], [4000002, 12]
    )
    info = load_exchange_info(
        data_file("binance-fixtures", "cryptofeed_fapi", "exchangeInfo_fapi_2021-07-22.json")
    )
    assert len(info) == 122
    for i, sym in enumerate(info.values()):
        Instrument(instrument_from_symbol_info(i, sym))  # every real symbol converts exactly
    xrp = instrument_from_symbol_info(0, info["XRPUSDT"])
    assert (xrp.tick_size, xrp.step_size, xrp.min_notional) == ("0.0001", "0.1", 5 * 10**8)
    depth = msgspec.json.decode(
        data_file(
            "binance-fixtures", "nautilus_py_futures", "ws_futures_depth_update.json"
        ).read_bytes()
    )
    assert depth["e"] == "depthUpdate"


def test_cryptofeed_kline_and_aggtrade(tmp_path):
    from tools.import_ws import import_binance_ws

    files = [
        data_file("binance-usdm-ws-cryptofeed", "2021-07-22_ws_sushi-akro-keep-ctk.txt"),
        data_file("binance-usdm-ws-cryptofeed", "2021-07-22_rest_depth_snapshots.txt"),
    ]
    xi = data_file("binance-fixtures", "cryptofeed_fapi", "exchangeInfo_fapi_2021-07-22.json")
    report = import_binance_ws(files, tmp_path / "j", exchange_info=[xi])
    assert report.by_type["KlineUpdated"] == 67 and report.by_type["TradePrinted"] == 91
    assert report.by_type["TopOfBookUpdated"] == 613 and report.by_type["BookDeltaReceived"] == 764
    assert report.instruments == ["SUSHIUSDT", "AKROUSDT", "KEEPUSDT", "CTKUSDT"]
    from journal import JournalReader

    klines = [
        r.event for r in JournalReader(tmp_path / "j").events() if type(r.event) is KlineUpdated
    ]
    assert all(k.close_ns - k.open_ns == 60 * 10**9 for k in klines)
    assert any(not k.closed for k in klines)  # the in-progress candle is marked as such


def test_rest_klines_parse_closed_candles_only():
    # the documented GET /fapi/v1/klines row shape (the real fixture's: its 8-decimal prices
    # and volumes are finer than any USD-M instrument, so the values here are BTCUSDT's)
    fixture = data_file(
        "binance-fixtures", "nautilus_py_futures", "http_futures_market_klines.json"
    ).read_bytes()
    import msgspec

    shape = [type(x) for x in msgspec.json.decode(fixture)[0]]
    row = [
        1723161000000, "61790.1", "61850.0", "61700.2", "61800.3", "123.456",
        1723161299999, "7629876.54321000", 4321, "60.001", "3707000.1", "0",
    ]  # fmt: skip
    assert [type(x) for x in row] == shape
    body = msgspec.json.encode([row, [*row[:6], 1723161599999, *row[7:]]])
    p = parser()
    k, *rest = p.parse_klines("BTCUSDT", "5m", body, now_ms=1723161400000)
    assert rest == [], "the forming candle is left to the stream"
    assert (k.open_ns, k.close_ns, k.ts_ns) == (
        1723161000000_000_000,
        1723161300000_000_000,
        1723161300000_000_000,
    )
    assert (k.open, k.high, k.low, k.close) == (617901, 618500, 617002, 618003)
    assert (k.volume, k.trades, k.taker_buy_volume) == (123456, 4321, 60001)
    assert k.quote_volume == 762987654321000 and k.closed and k.interval == "5m"
