"""The exchange's own journal, written by ``replaymm exchange --journal DIR`` in a real process:
a SIGTERM stops it cleanly (the journal checks ok and its tail is there), and what is appended
while the market is quiet reaches the file without waiting for more market events."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
from pathlib import Path
from urllib.parse import urlencode

import httpx
import pytest
import trio
from click.testing import CliRunner

from adapters.local_exchange import DEFAULT_API_KEY, DEFAULT_API_SECRET, sign
from adapters.local_exchange._testing import exchange
from engine import EventRecord, IntentRecord, OrderAccepted, PlaceOrder
from journal import JournalReader, check_journal
from tools.cli import main

from .conftest import ROOT

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals")


def _start(journal: Path) -> tuple[subprocess.Popen[str], int]:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "COLUMNS": "200", "NO_COLOR": "1"}
    env.pop("REPLAYMM_LOCAL_API_KEY", None)
    env.pop("REPLAYMM_LOCAL_API_SECRET", None)
    p = subprocess.Popen(
        [sys.executable, "-m", "tools.cli", "exchange", "--port", "0", "--journal", str(journal)],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    seen = ""
    assert p.stdout is not None
    for line in p.stdout:  # blocks until the banner; the process is killed below on failure
        seen += line
        m = re.search(r"http://127\.0\.0\.1:(\d+)", seen)
        if m:
            return p, int(m.group(1))
    p.kill()
    raise AssertionError(f"no banner from replaymm exchange: {seen!r}")


def _signed(http: httpx.Client, method: str, path: str, params: dict[str, str]) -> httpx.Response:
    server_ms = http.get("/fapi/v1/time").json()["serverTime"]
    q = urlencode({**params, "timestamp": server_ms, "recvWindow": 60_000})
    q += "&signature=" + sign(DEFAULT_API_SECRET, q)
    return http.request(
        method,
        path,
        content=q.encode(),
        headers={
            "X-MBX-APIKEY": DEFAULT_API_KEY,
            "Content-Type": "application/x-www-form-urlencoded",
        },
    )


def test_sigterm_closes_the_journal_cleanly_with_its_tail(tmp_path):
    journal = tmp_path / "exchange-side"
    p, port = _start(journal)
    try:
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=60) as http:
            bid = http.get("/fapi/v1/ticker/bookTicker", params={"symbol": "BTCUSDT"}).json()
            r = _signed(
                http,
                "POST",
                "/fapi/v1/order",
                {
                    "symbol": "BTCUSDT",
                    "side": "BUY",
                    "type": "LIMIT",
                    "timeInForce": "GTC",
                    "quantity": "0.002",
                    "price": bid["bidPrice"],
                    "newClientOrderId": "tail-check",
                },
            )
            assert r.status_code == 200, r.text
        p.send_signal(signal.SIGTERM)
        assert p.wait(timeout=120) == 0
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
        if p.stdout is not None:
            p.stdout.close()

    out = CliRunner().invoke(main, ["journal", "check", str(journal)], catch_exceptions=False)
    assert out.exit_code == 0, out.output
    assert "ok" in out.output
    report = check_journal(journal)
    assert report.torn is None and not report.corrupt
    placed = accepted = False
    for rec in JournalReader(journal).records():
        if isinstance(rec, IntentRecord):
            placed |= any(
                type(i) is PlaceOrder and i.client_id == "tail-check" for i in rec.intents
            )
        elif isinstance(rec, EventRecord):
            ev = rec.event
            accepted |= type(ev) is OrderAccepted and ev.client_id == "tail-check"
    assert placed and accepted


def test_a_quiet_market_still_commits_the_journal(tmp_path):
    """The periodic commit runs on time, whatever the count of market events (a manual feed
    here: 7 market events, then nothing)."""
    journal = tmp_path / "quiet"

    async def main_() -> None:
        async with exchange(journal=str(journal)) as c:
            c.ex.pump(7)
            last = c.ex._writer.next_seq - 1
            # the timer task commits on its own; wait (generously) until the file has it all
            for _ in range(1200):  # up to a minute: a noisy machine may be slow
                if check_journal(journal).last_seq == last:
                    break
                await trio.sleep(0.05)
            else:
                raise AssertionError("the journal's tail was not committed within a minute")

    trio.run(main_)
    assert check_journal(journal).torn is None
