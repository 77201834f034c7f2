"""The benchmark keeps running: one short forward + transcode consultation (figures are not asserted)."""

from __future__ import annotations

import json
import subprocess
import sys


def test_media_relay_benchmark_runs(tmp_path):
    out = tmp_path / "bench.json"
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "bench.media_relay",
            "--ns",
            "1",
            "--seconds",
            "2",
            "--transcode-seconds",
            "2",
            "--warmup",
            "1",
            "--retries",
            "0",
            "--reference",
            "none",  # tests/test_bench_janus.py covers the Janus reference
            "--json",
            str(out),
        ],
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "transcode / forward" in result.stdout
    runs = json.loads(out.read_text())["runs"]
    assert {run["mode"] for run in runs} == {"forward", "transcode"}
    for run in runs:
        assert run["summary"]["video_fps_mean"] > 0
