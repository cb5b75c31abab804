"""The GPU checks run end to end on the CPU (``benchmarks/gpu_machine/checks.sh --dry-run``: every part,
device cpu, tiny sizes), so the first GPU machine that runs them measures instead of debugging them.

One dry run serves every test here: each benchmark writes its JSON, complete, with a positive rate for
both adl and its reference in every case, and everything (logs, JSON, the Pong PNG) lands in ``$OUT``.
Rates on a CPU say nothing about speed and are not compared. The script's own refusals (a part whose
packages are missing, a call's budget spent, an unknown part) are checked without running anything.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[2]
CHECKS = REPO / "benchmarks/gpu_machine/checks.sh"
PARTS = ["env", "tests", "learner", "trials", "packing", "collectors", "pong", "pipelines"]


def checks(out: Path, *args: str, timeout: float = 300, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["bash", str(CHECKS), *args],
        env={**os.environ, "OUT": str(out), "PYTHON": sys.executable, **env},
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=REPO,
    )


@pytest.fixture(scope="module")
def dry_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[subprocess.CompletedProcess[str], Path]:
    out = tmp_path_factory.mktemp("gpu-checks")
    results = REPO / "benchmarks/results"
    before = set(results.rglob("*")) if results.exists() else set()
    proc = checks(out, "--dry-run", *PARTS)
    after = set(results.rglob("*")) if results.exists() else set()
    assert after == before, f"written outside $OUT: {sorted(after - before)}"
    return proc, out


def result(out: Path, name: str) -> dict[str, Any]:
    res: dict[str, Any] = json.loads((out / f"{name}.json").read_text())
    assert res["complete"] is True  # rewritten after every row; true only at the end
    return res


@pytest.mark.slow
@pytest.mark.ray
def test_the_dry_run_runs_every_part_on_the_cpu(
    dry_run: tuple[subprocess.CompletedProcess[str], Path],
) -> None:
    proc, out = dry_run
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-2000:]
    for part in PARTS:
        assert f"== {part}: ok after" in proc.stdout, part
        assert (out / f"{part}.log").stat().st_size > 0
    # The CUDA tests are collected (every module imports), not run: there is no GPU here.
    for part in ("tests", "pipelines"):
        assert " tests collected" in (out / f"{part}.log").read_text()


@pytest.mark.slow
@pytest.mark.ray
def test_gpu_trials_benchmark_compares_every_case_with_its_bare_loop(dry_run: Any) -> None:
    res = result(dry_run[1], "gpu_trials")
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
@pytest.mark.ray
def test_dqn_learner_benchmark_compares_adl_with_the_bare_update(dry_run: Any) -> None:
    rows = result(dry_run[1], "dqn_gpu_learner")["learner_updates_per_s"]
    assert set(rows) == {"mlp_cartpole_b64", "cnn_pong_b8"}  # --quick: both networks, the CNN small
    for row in rows.values():
        assert row["bare_eager"] > 0 and row["adl"] > 0
        assert row["adl_over_bare_eager"] == pytest.approx(row["adl"] / row["bare_eager"])


@pytest.mark.slow
@pytest.mark.ray
def test_gpu_packing_benchmark_runs_trials_together_and_alone(dry_run: Any) -> None:
    res = result(dry_run[1], "gpu_packing")
    for case in ("ring8",):  # the dry run's one case
        row = res[case]
        assert row["alone"]["trials"] == 1 and row["packed"]["trials"] == 2
        assert len(row["packed"]["rates"]) == 2 and min(row["packed"]["rates"]) > 0
        assert row["packed"]["devices"] == ["cpu", "cpu"]
        together, alone = row["packed"]["aggregate"], row["alone"]["aggregate"]
        assert row["aggregate_over_alone"] == pytest.approx(together / alone)


@pytest.mark.slow
@pytest.mark.ray
def test_collectors_and_pong_runs_leave_their_numbers_and_the_curve_in_out(dry_run: Any) -> None:
    out = dry_run[1]
    runs = result(out, "apex_collectors")["runs"]
    assert [r["collectors"] for r in runs] == [1] and runs[0]["env_steps_per_s"] > 0
    pong = result(out, "dqn_gpu_pong")
    assert pong["pong"]["env_steps"] > 0 and pong["pong"]["learner_steps"] > 0
    assert Path(pong["pong_png"]) == out / "dqn_gpu_pong.png"
    assert (out / "dqn_gpu_pong.png").read_bytes()[:4] == b"\x89PNG"


# -- what checks.sh refuses, before anything runs -----------------------------------------------------


def test_a_part_whose_packages_are_missing_fails_loudly(tmp_path: Path) -> None:
    """Ray made unimportable (as on a GPU machine whose wheels were not built or carried): the part is
    not run, the call fails, and the message says what is missing and how to get it."""
    hide = tmp_path / "hide"
    hide.mkdir()
    (hide / "sitecustomize.py").write_text("import sys\nsys.modules['ray'] = None\n")
    proc = checks(tmp_path / "out", "--dry-run", "env", "packing", timeout=60, PYTHONPATH=str(hide))
    assert proc.returncode == 1, proc.stdout
    assert "== packing: FAILED before it started:" in proc.stdout and "cannot import: ray" in proc.stdout
    assert "make gpu-wheels" in proc.stdout
    assert "== env: ok after" in proc.stdout and not (tmp_path / "out/packing.log").exists()


def test_parts_that_the_calls_budget_cannot_fit_are_not_started(tmp_path: Path) -> None:
    proc = checks(tmp_path, "--dry-run", "env", "pong", timeout=60, CHECKS_BUDGET_S="5")
    assert proc.returncode == 1
    assert "== env: NOT RUN: " in proc.stdout and "== pong: NOT RUN: " in proc.stdout


def test_an_unknown_part_ends_the_call_before_any_part_runs(tmp_path: Path) -> None:
    proc = checks(tmp_path, "--dry-run", "env", "learnr", timeout=60)
    assert proc.returncode == 2 and "unknown part learnr" in proc.stdout
    assert "== env" not in proc.stdout
