"""What the DQN learner's curve costs: ``make run``'s CartPole run with a curve point every
``CURVE_EVERY_S`` (pipelines/dqn/loop.py) against the old cadence (every ``log_every_s`` = 2 s),
side by side, alternating, same machine.

Each run is ``adl train dqn --config configs/dqn/cartpole.yaml`` in a fresh subprocess with a fresh
MLflow store, for a fixed training time (``max_time_s``, no stop at the target, so that both do the
same amount of work) and reports what it got done: env steps/s and learner updates/s over its
training time, the learner/loss points it logged, and the CPU seconds the metric sender's thread
(pipelines/tracking/metric_sender.py, which makes the MLflow calls) spent in the run's process.

    .venv/bin/python benchmarks/bench_metric_logging.py --pairs 4 --time-s 20
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
OUT = REPO / "benchmarks/results/metric_logging.json"


def child(curve_every_s: float, argv: list[str]) -> None:
    """In the run's own process: set the cadence, count the sender thread's CPU, run the command."""
    import pipelines.dqn.loop as loop
    from pipelines.cli.main import main
    from pipelines.tracking import metric_sender

    loop.CURVE_EVERY_S = curve_every_s
    run = metric_sender.MetricSender._run

    def timed_run(self: metric_sender.MetricSender) -> None:
        try:
            run(self)
        finally:  # the thread's own CPU time, written before the process exits
            Path(argv[argv.index("--tracking-uri") + 1].removeprefix("sqlite:///")).with_suffix(
                ".sender_cpu"
            ).write_text(str(time.thread_time()))

    metric_sender.MetricSender._run = timed_run  # type: ignore[method-assign]
    sys.exit(main(argv))


def one(mode: str, curve_every_s: float, seed: int, time_s: float) -> dict:
    from mlflow.tracking import MlflowClient

    with tempfile.TemporaryDirectory() as d:
        uri = f"sqlite:///{d}/mlflow.db"
        argv = ["train", "dqn", "--config", str(REPO / "configs/dqn/cartpole.yaml"), "--tracking-uri", uri]
        argv += ["--no-progress", "--set", f"seed={seed}", "--set", f"max_time_s={time_s}"]
        argv += ["--set", "eval.stop_at_return=null", "--set", "max_env_steps=100000000"]
        proc = subprocess.run(
            [sys.executable, __file__, "--child", str(curve_every_s), *argv],
            cwd=d,
            capture_output=True,
            text=True,
        )
        if proc.returncode != 0:
            raise RuntimeError(proc.stderr[-3000:])
        client = MlflowClient(uri)
        (run,) = client.search_runs([client.get_experiment_by_name("adl-dqn").experiment_id])
        tags = run.data.tags
        loss_points = len(client.get_metric_history(run.info.run_id, "learner/loss"))
        sender_cpu = float(Path(f"{d}/mlflow.sender_cpu").read_text())
    return {
        "mode": mode,
        "seed": seed,
        "env_steps_per_s": int(tags["adl.result.final_env_steps"]) / time_s,
        "updates_per_s": int(tags["adl.result.final_learner_steps"]) / time_s,
        "learner_loss_points": loss_points,
        "sender_cpu_s": sender_cpu,
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--pairs", type=int, default=4)
    ap.add_argument("--time-s", type=float, default=20.0, help="each run's training time (max_time_s)")
    args, rest = ap.parse_known_args()
    from pipelines.dqn.loop import CURVE_EVERY_S

    dense = f"curve every {CURVE_EVERY_S:g} s"
    modes = {dense: CURVE_EVERY_S, "every log_every_s (2 s)": 2.0}
    rows = []
    for i in range(args.pairs):  # alternate, and swap the order every pair
        order = list(modes.items()) if i % 2 == 0 else list(modes.items())[::-1]
        for mode, every in order:
            rows.append(one(mode, every, seed=i, time_s=args.time_s))
            print(json.dumps(rows[-1]), flush=True)
    summary = {}
    for mode in modes:
        mine = [r for r in rows if r["mode"] == mode]
        summary[mode] = {
            k: statistics.median(r[k] for r in mine)
            for k in ("env_steps_per_s", "updates_per_s", "learner_loss_points", "sender_cpu_s")
        }
    new, old = (summary[m] for m in modes)
    summary[f"ratio ({CURVE_EVERY_S:g} s / 2 s)"] = {
        k: new[k] / old[k] for k in ("env_steps_per_s", "updates_per_s") if old[k]
    }
    OUT.write_text(json.dumps({"time_s": args.time_s, "runs": rows, "median": summary}, indent=1))
    print(json.dumps(summary, indent=1))
    return 0


if __name__ == "__main__":
    if len(sys.argv) > 2 and sys.argv[1] == "--child":
        child(float(sys.argv[2]), sys.argv[3:])
    sys.exit(main())
