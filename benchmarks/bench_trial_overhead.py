"""What a Tune trial costs beyond the training it does: Q-learning and GAN sweeps.

For each case the same trainer runs (1) directly, chunk after chunk with no tracking, and (2) as a
one-trial ``adl sweep`` on a local Ray with a fresh sqlite MLflow store. From the trial's child run:
the training time inside the trial (``adl.train_s``), the time its reports spent on pictures and
checkpoints (``adl.report_s``, kept within the sweep's ``overhead`` share, default 10%, except the
final report), and the run's whole duration (worker start, imports, MLflow, final artifacts). The
whole command's wall clock (Ray start, parent run) is reported beside them.

    .venv/bin/python benchmarks/bench_trial_overhead.py            # both cases, JSON to results/
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parents[1]
CASES = {
    # name: (family, base config, overrides, search space of one point)
    "qlearn_frozenlake": ("qlearn", "configs/qlearn/frozenlake.yaml", {}, {"seed": {"grid": [0]}}),
    "gan_ring8_wgan_gp": (
        "gan",
        "configs/gan/ring8_wgan_gp.yaml",
        {"train.steps": 1500, "report_every": 250},
        {"seed": {"grid": [0]}},
    ),
}


def direct(family: str, base: str, overrides: dict[str, Any]) -> float:
    """Seconds of training chunks, no tracking, in a fresh process (as a trial's worker is)."""
    code = (
        "import json, sys, time\n"
        "from components.config import apply_values, build, read_yaml\n"
        "from pipelines.families import get_family\n"
        f"f = get_family({family!r})\n"
        f"cfg = build(f.config_cls, apply_values(read_yaml({str(REPO / base)!r}), {overrides!r}))\n"
        "t = f.build(cfg)\n"
        "t0 = time.perf_counter()\n"
        "while t.position < t.total:\n"
        "    t.run_chunk()\n"
        "print(json.dumps(time.perf_counter() - t0))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=True)
    return float(out.stdout.strip().splitlines()[-1])


def as_trial(
    name: str, family: str, base: str, overrides: dict[str, Any], space: dict[str, Any]
) -> dict[str, float]:
    from mlflow.tracking import MlflowClient

    with tempfile.TemporaryDirectory() as d:
        sweep = {
            "family": family,
            "base_config": str(REPO / base),
            "overrides": overrides,
            "search_space": space,
            "scheduler": {"kind": "fifo"},
            "name": f"bench_{name}",
            "storage_path": str(Path(d) / "tune"),
        }
        path = Path(d) / "sweep.yaml"
        path.write_text(yaml.safe_dump(sweep))
        uri = f"sqlite:///{d}/mlflow.db"
        t0 = time.perf_counter()
        cmd = [
            sys.executable,
            "-m",
            "pipelines.cli",
            "sweep",
            "--config",
            str(path),
            "--tracking-uri",
            uri,
        ]
        subprocess.run([*cmd, "--num-cpus", "2"], cwd=d, capture_output=True, text=True, check=True)
        command_s = time.perf_counter() - t0
        client = MlflowClient(uri)
        runs = client.search_runs([client.get_experiment_by_name(f"adl-{family}").experiment_id])
        (child,) = [r for r in runs if "mlflow.parentRunId" in r.data.tags]
        return {
            "trial_train_s": float(child.data.tags["adl.train_s"]),
            "trial_report_s": float(child.data.tags["adl.report_s"]),
            "trial_run_s": (child.info.end_time - child.info.start_time) / 1000,
            "command_s": command_s,
        }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--cases", default=",".join(CASES))
    p.add_argument("--out", default=str(REPO / "benchmarks/results/trial_overhead.json"))
    args = p.parse_args()
    results = {}
    for name in args.cases.split(","):
        family, base, overrides, space = CASES[name]
        train_s = direct(family, base, overrides)
        trial = as_trial(name, family, base, overrides, space)
        row = {"direct_train_s": train_s, **trial}
        row["report_share_of_training"] = trial["trial_report_s"] / trial["trial_train_s"]
        row["trial_run_over_direct"] = trial["trial_run_s"] / train_s
        results[name] = row
        print(name, json.dumps({k: round(v, 3) for k, v in row.items()}), flush=True)
    Path(args.out).write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
