"""The GPU benchmarks run end to end on the CPU (``--device cpu --quick``), so the first GPU machine
that runs them measures instead of debugging them: each writes its JSON with a positive rate for both
adl and its reference in every case. Rates on a CPU say nothing about speed and are not compared."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


def run_script(name: str, out: Path, *args: str) -> dict:
    proc = subprocess.run(
        [sys.executable, str(REPO / "benchmarks" / name), "--device=cpu", "--quick", f"--out={out}", *args],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=REPO,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(out.read_text())


@pytest.mark.slow
def test_gpu_trials_benchmark_compares_every_case_with_its_bare_loop(tmp_path: Path) -> None:
    res = run_script("bench_gpu_trials.py", tmp_path / "trials.json")
    gan, seq = res["gan_generator_steps_per_s"], res["seq_tokens_per_s"]
    assert {(n.split("_")[0], n.rsplit("_", 1)[1]) for n in gan} == {
        (case, precision) for case in ("ring8", "dcgan32") for precision in ("fp32", "bf16")
    }
    assert set(seq) == {"lstm_fp32", "lstm_bf16", "gru_fp32", "gru_bf16"}
    for row in [*gan.values(), *seq.values()]:
        assert row["bare"]["median"] > 0
        for side in ("adl_run", "adl_train", "adl_fused"):
            if side in row:
                assert row[side]["median"] > 0 and row[side]["ratio_to_bare_median"] > 0
        assert ("adl_fused" in row) != ("adl_train" in row)  # every row has its adl side


@pytest.mark.slow
def test_dqn_learner_benchmark_compares_adl_with_the_bare_update(tmp_path: Path) -> None:
    res = run_script("bench_dqn_gpu.py", tmp_path / "dqn.json", "--parts", "learner")
    rows = res["learner_updates_per_s"]
    assert {"mlp_cartpole_b64", "cnn_pong_b32"} <= set(rows)
    for row in rows.values():
        assert row["bare_eager"] > 0 and row["adl"] > 0
        assert row["adl_over_bare_eager"] == pytest.approx(row["adl"] / row["bare_eager"])


@pytest.mark.slow
@pytest.mark.ray
def test_gpu_packing_benchmark_runs_trials_together_and_alone(tmp_path: Path) -> None:
    res = run_script("bench_gpu_packing.py", tmp_path / "packing.json", "--cpus", "1")
    for case in ("ring8", "lstm"):
        row = res[case]
        assert row["alone"]["trials"] == 1 and row["packed"]["trials"] == 2
        assert len(row["packed"]["rates"]) == 2 and min(row["packed"]["rates"]) > 0
        assert row["packed"]["devices"] == ["cpu", "cpu"]
        together, alone = row["packed"]["aggregate"], row["alone"]["aggregate"]
        assert row["aggregate_over_alone"] == pytest.approx(together / alone)
