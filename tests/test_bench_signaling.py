"""bench/signaling.py keeps running: a small load, with its baseline (bench/bare_relay.py) under the same
clients (figures are printed, not asserted)."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from bench.signaling_cost import per_message


@pytest.mark.parametrize("spread", ["0.2", "0"])  # messages spread over 0.2 s, and a burst
def test_signaling_benchmark_runs(tmp_path, spread):
    out = tmp_path / "signaling.json"
    result = subprocess.run(
        [sys.executable, "-m", "bench.signaling", "--clients", "20", "--rounds", "2", "--settle", "0.5",
         "--spread", spread, "--json", str(out)],
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
    # absolute times move with the machine's speed: the run says how fast it was
    assert result.stdout.startswith("machine speed:") and figures["machine_speed_seconds"] > 0


def test_instruction_dumps_are_summed_by_event():
    """bench/signaling_cost.py: each callgrind dump holds what ran since the one before; the window is the
    "arrived" dumps, the rest of a round its "start" and "after" dumps, less the timers of an idle pause."""
    events = ["settled", "idle", "start", "arrived", "after", "start", "arrived", "after"]
    counts = [9_000_000, 100, 5, 1_000, 700, 5, 1_200, 700]
    figures = per_message(events, counts, messages=10, rounds=2)
    assert figures == {"in_window": 220, "in_all": (10 + 2_200 + 1_400 - 200) // 10, "idle_pause": 100}
    with pytest.raises(ValueError):
        per_message(events, counts[:-1], messages=10, rounds=2)
