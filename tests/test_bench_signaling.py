"""bench/signaling.py keeps running: a small load, with its baseline (bench/bare_relay.py) under the same
clients (figures are printed, not asserted)."""

from __future__ import annotations

import json
import subprocess
import sys


def test_signaling_benchmark_runs(tmp_path):
    out = tmp_path / "signaling.json"
    result = subprocess.run(
        [sys.executable, "-m", "bench.signaling", "--clients", "20", "--rounds", "2", "--settle", "0.5",
         "--spread", "0.2", "--json", str(out)],
        capture_output=True, text=True, timeout=180,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    assert "chat fan-out" in result.stdout
    figures = json.loads(out.read_text())
    assert figures["clients"] == 20 and figures["lost"] == 0 and figures["chat_messages"] == 20
    assert figures["fanout"]["p50_ms"] > 0
    assert "bare aiohttp relay" in result.stdout
    assert figures["baseline"]["lost"] == 0 and figures["baseline"]["fanout"]["n"] == 20
    assert figures["p99_ratio_to_baseline"] > 0
