"""The command line: every command runs, errors are one clear line."""

from __future__ import annotations

import pytest
from click.testing import CliRunner

from tests.conftest import ROOT, data_file
from tools.cli import main


def run(*args: str, code: int = 0) -> str:
    result = CliRunner().invoke(main, [str(a) for a in args], catch_exceptions=False)
    assert result.exit_code == code, result.output
    return result.output


def test_demo(tmp_path):
    """The grid live against the in-process local exchange: clean stop, SQL, verify."""
    out = run("demo", "--out", tmp_path, "--seconds", "8")
    assert "stopped (ran 8 s)" in out and "orders sent" in out, out
    assert "0 orders left open on the exchange" in out, out
    assert "FROM fills" in out and "net_pnl" in out, out
    assert "replay --verify: identical" in out, out
    assert f"live runtime -> {tmp_path / 'live'}" in out
    assert (tmp_path / "live" / "segment-000000.rmj").exists()
    assert (tmp_path / "exchange" / "segment-000000.rmj").exists()
    # a second run replaces the demo's own journals (a fresh session, not a resume)
    assert "stopped (ran 1 s)" in run("demo", "--out", tmp_path, "--seconds", "1")


def test_import_backtest_verify_show_check(tmp_path):
    src = data_file("binance-usdm-ws-hftbacktest", "btcusdt_20240718.gz")
    out = run("import", "binance-ws", src, "--out", tmp_path / "m")
    assert "imported 11,414 lines" in out
    out = run(
        "backtest",
        ROOT / "configs" / "simple-btcusdt.yaml",
        "--data",
        tmp_path / "m",
        "--out",
        tmp_path / "bt",
        "--set",
        "strategy.offset_ticks=3",
    )
    assert "net PnL" in out and "BTCUSDT" in out
    assert "identical:" in run("replay", tmp_path / "bt", "--verify")
    out = run("replay", tmp_path / "bt", "--until", "3000", "--show")
    assert "state at seq 3,000" in out and "open orders" in out
    assert '"seq": 3000' in run("replay", tmp_path / "bt", "--until", "3000", "--show", "--json")
    assert "ok" in run("journal", "check", tmp_path / "bt")
    # straight from the recorded file: parsed on the fly, the same run
    out = run(
        "backtest",
        ROOT / "configs" / "simple-btcusdt.yaml",
        "--data",
        src,
        "--out",
        tmp_path / "bt2",
        "--set",
        "strategy.offset_ticks=3",
    )
    assert "read btcusdt_20240718.gz: 11,414 lines" in out
    assert "identical:" in run("replay", tmp_path / "bt2", "--verify")


def test_journal_check_pinpoints_a_flipped_byte_and_repair_recovers_a_cut(tmp_path):
    from tools.demo import write_synthetic_journal

    write_synthetic_journal(tmp_path / "d", seconds=5, seed=7)
    seg = tmp_path / "d" / "segment-000000.rmj"
    data = bytearray(seg.read_bytes())
    data[50_000] ^= 0x01
    seg.write_bytes(bytes(data))
    out = run("journal", "check", tmp_path / "d", code=1)
    assert "CORRUPT" in out and "segment-000000.rmj at byte" in out
    data[50_000] ^= 0x01
    seg.write_bytes(bytes(data[:-7]))  # a crash in the middle of the last write
    out = run("journal", "check", tmp_path / "d", code=3)
    assert "TORN TAIL" in out
    out = run("journal", "repair", tmp_path / "d")
    assert "repaired" in out and ".cut-" in out
    assert "ok" in run("journal", "check", tmp_path / "d")


@pytest.mark.parametrize(
    ("yaml", "message"),
    [
        (
            "strategy: {kind: simple_quoter, symbol: BTCUSDT, order_qty: 0}",
            "order_qty must be positive",
        ),
        (
            "strategy: {kind: simple_quoter, symbol: BTCUSDT, order_qty: 0.001, offset_ticks: -1}",
            "strategy.offset_ticks",
        ),
        ("strategy: {kind: nope}", "strategy"),
        ("stratgy: {}", "unknown section 'stratgy'"),
        (
            "strategy: {kind: simple_quoter, symbol: BTCUSDT, order_qty: 0.001}\nlive: {api_secret: abc}",
            "secrets do not belong",
        ),
        ("strategy: [", "not valid YAML"),
    ],
)
def test_bad_config_is_one_clear_line(tmp_path, yaml, message):
    cfg = tmp_path / "c.yaml"
    cfg.write_text(yaml)
    from tools.demo import write_synthetic_journal

    write_synthetic_journal(tmp_path / "d" / "market", seconds=2, seed=7)
    result = CliRunner().invoke(
        main,
        [
            "backtest",
            str(cfg),
            "--data",
            str(tmp_path / "d" / "market"),
            "--out",
            str(tmp_path / "o"),
        ],
    )
    assert result.exit_code == 2
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error:") and message in lines[0], result.output
    assert "Traceback" not in result.output


def test_other_errors_are_one_line(tmp_path):
    result = CliRunner().invoke(main, ["replay", str(tmp_path), "--verify"])
    assert result.exit_code == 2 and "no journal segments" in result.output
    from tools.demo import write_synthetic_journal

    write_synthetic_journal(tmp_path / "d" / "market", seconds=2, seed=7)
    result = CliRunner().invoke(main, ["replay", str(tmp_path / "d" / "market"), "--verify"])
    assert result.exit_code == 2 and "nothing ran on it" in result.output
    result = CliRunner().invoke(
        main, ["import", "binance-ws", str(ROOT / "pyproject.toml"), "--out", str(tmp_path / "x")]
    )
    assert result.exit_code == 2 and result.output.startswith("error:")


def test_top_level_risk_section_is_refused_not_ignored():
    from engine import ConfigError
    from tools._config import parse_config

    with pytest.raises(ConfigError, match=r"strategy\.risk"):
        parse_config({"strategy": {"kind": "grid"}, "risk": {"max_daily_loss": 100}})


def test_run_paper_on_the_local_market(tmp_path):
    """`replaymm run --paper --market local`: the grid on the local exchange's synthetic market
    (127.0.0.1), fills simulated, nothing sent; the journal replays bit for bit."""
    out = run(
        "run",
        ROOT / "configs" / "grid-btcusdt.yaml",
        "--paper",
        "--market",
        "local",
        "--journal",
        tmp_path / "paper",
        "--seconds",
        "6",
        "--set",
        "strategy.risk_control.enabled=false",
        "--set",
        "strategy.price_interval=25",
        "--quiet",
    )
    assert "tick-to-order" in out or "events" in out, out
    verified = run("replay", tmp_path / "paper", "--verify")
    events = int(verified.split("identical: ")[1].split(" events")[0].replace(",", ""))
    assert events > 500, verified  # the synthetic market really flowed through the runtime
