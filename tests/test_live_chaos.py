"""Chaos: ``kill -9`` the live runtime at random instants, restart it, and account for everything.

The local exchange runs in its own process; ``replaymm run`` is started against it, killed
with SIGKILL after a random (seeded) delay — quoting is continuous, so kills land between
sending orders and their acks — and restarted on the same journal, 20 times; then a final
run stops cleanly. The exchange's fills must all be in the journal (0 lost), no client order
id may reach the exchange twice (0 duplicates), every order on the exchange must be one the
journal asked for (0 unaccounted), and the journal must replay bit for bit.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
import trio

pytest.importorskip("adapters.local_exchange._server")

from adapters.local_exchange._server import DEFAULT_API_KEY, DEFAULT_API_SECRET
from replay import verify
from tests.test_live_e2e import check_consistent, exchange_truth

ROOT = Path(__file__).resolve().parent.parent
EXCHANGE = """
import sys, trio
from adapters.local_exchange._server import ExchangeConfig, serve_exchange
async def main():
    async with trio.open_nursery() as n:
        ex = await n.start(serve_exchange, ExchangeConfig(seed=5))
        print(ex.port, flush=True)
trio.run(main)
"""

CONFIG = """
strategy:
  kind: simple_quoter
  symbol: BTCUSDT
  order_qty: 0.002
  offset_ticks: 0
  requote_ticks: 1
  max_position: 0.010
live:
  mainnet:
    rest_url: "http://127.0.0.1:{port}"
    ws_url: "ws://127.0.0.1:{port}"
    ws_api_url: "ws://127.0.0.1:{port}/ws-fapi/v1"
  timeout_s: 2
  reconcile_s: 2
  dead_man_s: 30
  dead_man_refresh_s: 5
  order_entry: {order_entry}
"""


@pytest.mark.slow
@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")
@pytest.mark.parametrize(
    ("order_entry", "kill_count"), [("rest", 20), ("ws_api", 8), ("rest_batch", 8)]
)
def test_kill_9_at_random_instants(tmp_path, order_entry, kill_count):
    # over the WebSocket API a request is written inside the consumer's step: killed between
    # that write and its answer, the next session must still account for the order
    env = {
        **os.environ,
        "REPLAYMM_API_KEY": DEFAULT_API_KEY,
        "REPLAYMM_API_SECRET": DEFAULT_API_SECRET,
        "PYTHONPATH": str(ROOT),
    }
    exchange = subprocess.Popen(
        [sys.executable, "-c", EXCHANGE], cwd=ROOT, env=env, stdout=subprocess.PIPE, text=True
    )
    try:
        port = int(exchange.stdout.readline())  # type: ignore[union-attr]
        cfg = tmp_path / "chaos.yaml"
        cfg.write_text(CONFIG.format(port=port, order_entry=order_entry))
        journal = tmp_path / "live"
        run = [
            sys.executable,
            "-m",
            "tools.cli",
            "run",
            str(cfg),
            "--journal",
            str(journal),
            "--quiet",
        ]
        rng = random.Random(20261124)
        kills = 0
        for _ in range(kill_count):
            p = subprocess.Popen(
                run, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
            )
            time.sleep(rng.uniform(1.0, 3.5))  # start-up takes ~1 s: kills land in every phase
            if p.poll() is not None:
                pytest.fail(f"runtime exited early: {p.stderr.read().decode()[-2000:]}")  # type: ignore[union-attr]
            os.kill(p.pid, signal.SIGKILL)
            p.wait(timeout=60)
            kills += 1
        final = subprocess.run(
            [*run, "--seconds", "6"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=300
        )
        assert final.returncode == 0, final.stderr[-3000:]
        truth = trio.run(exchange_truth, port)
        status = httpx.post(f"http://127.0.0.1:{port}/control/status").json()
        print(final.stderr[-4000:])
    finally:
        exchange.kill()
        exchange.wait(timeout=30)
    # secrets: never in the journal or the logs (the listen key is masked in logs too)
    blobs = [f.read_bytes() for f in journal.iterdir()] + [
        final.stderr.encode(),
        final.stdout.encode(),
    ]
    for secret in (DEFAULT_API_KEY, DEFAULT_API_SECRET):
        assert not any(secret.encode() in b for b in blobs), "a credential leaked"
    figures = check_consistent(journal, truth)
    assert verify(journal).identical
    batches = (status.get("batch_orders", 0), status.get("batch_items", 0))
    cancels = (status.get("batch_cancels", 0), status.get("batch_cancel_items", 0))
    print(
        f"chaos ({order_entry}): {kills} kills, {figures}, batches (requests, orders) "
        f"{batches}, cancel batches (requests, cancels) {cancels}"
    )
    assert figures["orders"] > 20
    if order_entry == "rest_batch":  # the quoter's bid and ask of one step: one batch
        assert batches[0] > 0 and batches[1] >= 2 * batches[0]
        assert cancels[0] > 0 and cancels[1] >= 2 * cancels[0]
