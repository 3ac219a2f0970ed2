"""The bench's market firehose and the WebSocket client the market streams read it with
(loopback only; no timing asserted)."""

from __future__ import annotations

import itertools
import threading
from pathlib import Path

import msgspec
import pytest
import trio

from adapters.binance import MarketParser, builtin_instrument
from adapters.binance._rest import RestClient
from adapters.binance._wsconn import WsConn, encode_frame
from adapters.local_exchange._firehose import Firehose
from engine import BookDeltaReceived, TopOfBookUpdated

RECORDING = Path("/work/shared/data/binance-usdm-ws-hftbacktest/btcusdt_20240808.gz")
pytestmark = pytest.mark.skipif(not RECORDING.exists(), reason="recorded session not present")


def test_frames_are_cut_whole_across_reads_fragments_and_masks():
    conn = WsConn.__new__(WsConn)
    conn.__init__(None, None, None)  # type: ignore[arg-type]
    big = b"x" * 70_000
    data = (
        encode_frame(b"hello", mask=False)
        + encode_frame(big, mask=True)
        + bytes((0x01, 3))
        + b"abc"  # a text fragment, continued below
        + bytes((0x80, 3))
        + b"def"
    )
    got = []
    for i in range(0, len(data), 1000):  # arrives in pieces
        conn._in += data[i : i + 1000]
        got += conn._frames()
    assert [(op, fin, len(p)) for op, fin, p in got] == [
        (1, True, 5),
        (1, True, 70_000),
        (1, False, 3),
        (0, True, 3),
    ]
    assert got[1][2] == big


def test_firehose_streams_a_continuous_depth_chain_and_a_snapshot_that_fits():
    hose = Firehose(RECORDING, 5_000.0, limit=3_000)
    threading.Thread(target=hose.serve_forever, daemon=True).start()
    spec = builtin_instrument(0, "BTCUSDT")
    parser = MarketParser([spec])

    async def main() -> tuple[list[object], bytes]:
        ws = await WsConn.connect(f"ws://127.0.0.1:{hose.port}/public/stream?streams=x")
        events: list[object] = []
        with trio.fail_after(20):
            await ws.ping()
            while len(events) < 4_000:  # past the end of the file: it loops
                for raw in await ws.receive_messages():
                    ev = parser.parse_combined(raw)
                    if ev is not None:
                        events.append(ev)
            rest = RestClient(f"http://127.0.0.1:{hose.port}", None)
            body = await rest.depth("BTCUSDT")
            await rest.aclose()
        await ws.aclose()
        return events, body

    events, body = trio.run(main)
    deltas = [e for e in events if type(e) is BookDeltaReceived]
    assert deltas and any(type(e) is TopOfBookUpdated for e in events)
    gaps = sum(
        1 for a, b in itertools.pairwise(deltas) if b.prev_final_update_id != a.final_update_id
    )
    assert gaps == 1 <= hose.loops  # a gap (a resync) only where the file starts again
    snap = msgspec.json.decode(body)
    assert snap["lastUpdateId"] >= deltas[-1].final_update_id
    bids = [float(p) for p, _ in snap["bids"]]
    asks = [float(p) for p, _ in snap["asks"]]
    assert bids == sorted(bids, reverse=True) and asks == sorted(asks)
