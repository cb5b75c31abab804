"""``bench_minatar.py --quick`` runs adl's command and the reference DQN on real MinAtar for a few seconds
each, so the benchmark cannot rot: both tools report frames, a 100-episode training curve and a plot."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.slow
def test_minatar_benchmark_quick_runs_adl_and_the_reference_side_by_side(tmp_path: Path) -> None:
    out = tmp_path / "minatar.json"
    proc = subprocess.run(
        [
            sys.executable,
            str(REPO / "benchmarks/bench_minatar.py"),
            "--quick",
            "--games=breakout",
            f"--out={out}",
        ],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=REPO,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    game = json.loads(out.read_text())["games"]["breakout"]
    assert game["target"] == 10.0 and (REPO / game["png"]).stat().st_size > 0
    for tool in ("adl", "reference"):
        row = game[tool]
        assert row["frames"] > 0 and row["summary"]["frames_per_s"] > 0, tool
        frames, walls, means = zip(*row["curve"])
        assert list(frames) == sorted(frames) and min(means) >= 0, tool  # Breakout returns are ≥ 0
        assert row["summary"]["return_at_budget"] == means[-1], tool
    assert game["adl"]["updates"] > 0 and game["adl"]["eval"]  # it learned and evaluated
    assert game["adl"]["profile"]["env_steps_per_s"] > 0
