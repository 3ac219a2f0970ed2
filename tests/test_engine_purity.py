"""engine/ stays pure: no I/O, no clock, no randomness, and deterministic under hash seeds."""

from __future__ import annotations

import ast
import os
import subprocess
import sys
from pathlib import Path

from tests.conftest import ROOT

ALLOWED = {
    "__future__",
    "msgspec",
    "enum",
    "typing",
    "collections",
    "collections.abc",
    "decimal",
    "heapq",
    "re",
    "hashlib",
    "dataclasses",
    "functools",
    "itertools",
    "operator",
    "math",
    "bisect",
    "abc",
    "numbers",
    "fractions",
}


def _imports(path: Path) -> list[tuple[int, str]]:
    tree = ast.parse(path.read_text(), str(path))
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(node.lineno, a.name) for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.append((node.lineno, node.module))
        elif isinstance(node, ast.Call) and getattr(node.func, "id", "") in (
            "__import__",
            "open",
            "eval",
            "exec",
        ):
            found.append((node.lineno, f"<call {node.func.id}>"))  # type: ignore[attr-defined]
    return found


def test_engine_imports_only_pure_modules():
    bad = []
    for path in sorted((ROOT / "engine").rglob("*.py")):
        for line, module in _imports(path):
            if module.startswith("engine") or module in ALLOWED:
                continue
            bad.append(f"{path.relative_to(ROOT)}:{line}: {module}")
    assert not bad, "engine/ must not import I/O, clocks or randomness:\n" + "\n".join(bad)


def test_purity_check_catches_a_forbidden_import(tmp_path):
    sample = tmp_path / "bad.py"
    sample.write_text("import time\nfrom random import random\nimport os.path\n")
    names = [m for _, m in _imports(sample)]
    assert [n for n in names if n not in ALLOWED] == ["time", "random", "os.path"]


_RUN = """
import hashlib, sys
from replay import run_backtest
from tools.demo import write_synthetic_journal
from pathlib import Path
out = Path(sys.argv[1])
write_synthetic_journal(out / 'm', seconds=5, seed=3)
cfg = {'strategy': {'kind': 'simple_quoter', 'symbol': 'BTCUSDT', 'order_qty': '0.002', 'offset_ticks': 1}}
run_backtest(cfg, out / 'm', out / 'b')
h = hashlib.sha256()
for p in sorted((out / 'b').iterdir()):
    h.update(p.read_bytes())
print(h.hexdigest())
"""


def test_same_output_under_different_hash_seeds(tmp_path):
    digests = []
    for seed in ("1", "2"):
        env = {**os.environ, "PYTHONHASHSEED": seed}
        out = tmp_path / seed
        res = subprocess.run(
            [sys.executable, "-c", _RUN, str(out)],
            env=env,
            cwd=ROOT,
            capture_output=True,
            text=True,
            check=True,
        )
        digests.append(res.stdout.strip())
    assert digests[0] == digests[1]
