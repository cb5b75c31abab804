"""Where an adl MinAtar run spends its time: CPU use of each process (the driver with the learner, the
collector actor, the replay actor) and, inside each, a py-spy sampling profile sorted into the parts of
the pipeline (learner update, waiting for batches, env steps, Q inference, replay adds and samples...).

It starts ``adl train dqn --config configs/dqn/minatar.yaml`` on the game, lets it warm up past the
replay's ``min_size``, then samples every process for ``--seconds`` with py-spy (``--nonblocking``: it
does not pause them) while psutil reads their CPU time. Results: ``benchmarks/results/minatar_profile.json``.

    .venv/bin/python benchmarks/profile_minatar.py --game breakout --warmup-s 120 --seconds 60
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

import psutil

REPO = Path(__file__).resolve().parents[1]
GAMES = {"breakout": "Breakout", "freeway": "Freeway", "seaquest": "Seaquest"}
# (substring of a py-spy frame, part of the pipeline); a sample counts for the deepest frame that matches.
PARTS = [
    ("dqn/update.py", "learner: update (forward, backward, Adam)"),
    ("dqn/learner.py", "learner: update bookkeeping (target copy, read-back)"),
    ("dqn/staging.py", "learner: batch to tensors"),
    ("sample (pipelines/distributed/ray_wiring.py", "learner: waiting for sampled batches"),
    ("update_priorities (pipelines/distributed/ray_wiring.py", "learner: sending priorities"),
    ("publish (pipelines/distributed/ray_wiring.py", "learner: weight broadcast"),
    ("get_flat_weights", "learner: weight broadcast"),
    ("poll (pipelines/distributed/ray_wiring.py", "driver: polling collectors"),
    ("idle (pipelines/distributed/ray_wiring.py", "driver: idle wait"),
    ("dqn/evaluator.py", "driver: evaluation"),
    ("_log (pipelines/dqn_loop.py", "driver: metrics and logging"),
    ("dqn_checkpoint.py", "driver: checkpoint"),
    ("step (gymnasium", "collector: env step (MinAtar)"),
    ("minatar", "collector: env step (MinAtar)"),
    ("_q (components/rl/dqn/collector.py", "collector: Q-network inference"),
    ("dqn/nstep.py", "collector: n-step windows"),
    ("_to_transitions (components/rl/dqn/collector.py", "collector: transitions and priorities"),
    ("run (pipelines/distributed/collector_actor.py", "collector: push to the replay"),
    ("add (components/replay/buffer.py", "replay: add"),
    ("sample (components/replay/buffer.py", "replay: sample"),
    ("sample_many", "replay: sample"),
    ("update_priorities (components/replay/buffer.py", "replay: priority update"),
    ("sum_tree.py", "replay: sum tree"),
]


def categorise(raw: Path) -> dict[str, float]:
    """Share of a py-spy raw profile's samples in each part of the pipeline."""
    counts: Counter[str] = Counter()
    total = 0
    for line in raw.read_text().splitlines():
        stack, _, n = line.rpartition(" ")
        if not n.isdigit():
            continue
        frames, part = stack.split(";"), "other (Ray's own threads, Python, imports)"
        for frame in reversed(frames):  # deepest first
            hit = next((p for key, p in PARTS if key in frame), None)
            if hit:
                part = hit
                break
        counts[part] += int(n)
        total += int(n)
    return {k: round(v / total, 3) for k, v in counts.most_common()} if total else {}


def find(kind: str, root: int) -> psutil.Process | None:
    for p in psutil.process_iter(["cmdline"]):
        cmd = " ".join(p.info["cmdline"] or [])
        if kind in cmd and p.pid != root:
            return p
    return None


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--game", default="breakout", choices=list(GAMES))
    ap.add_argument("--warmup-s", type=float, default=120.0)
    ap.add_argument("--seconds", type=float, default=60.0)
    ap.add_argument("--out", default=str(REPO / "benchmarks/results/minatar_profile.json"))
    args = ap.parse_args()
    pyspy = shutil.which("py-spy", path=str(Path(sys.executable).parent)) or shutil.which("py-spy")
    if pyspy is None:
        sys.exit("py-spy not found (it comes with ray[default])")
    d = Path(tempfile.mkdtemp())
    sets = [f"env.id=MinAtar/{GAMES[args.game]}-v1", f"max_time_s={args.warmup_s + args.seconds + 30}"]
    argv = [sys.executable, "-m", "pipelines.cli", "train", "dqn", "--no-progress", "--config"]
    argv += [str(REPO / "configs/dqn/minatar.yaml"), "--tracking-uri", f"sqlite:///{d}/m.db"]
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    driver = subprocess.Popen(
        [*argv, *(a for kv in sets for a in ("--set", kv))],
        cwd=d,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        time.sleep(args.warmup_s)
        procs = {
            "driver (learner)": psutil.Process(driver.pid),
            "collector actor": find("ray::CollectorActor", driver.pid),
            "replay actor": find("ray::ReplayActor", driver.pid),
        }
        cpu0 = {k: p.cpu_times() for k, p in procs.items() if p is not None}
        spies = {}
        for name, p in procs.items():
            if p is None:
                continue
            out = d / f"{name.split()[0]}.txt"
            cmd = [pyspy, "record", "--nonblocking", "-r", "50", "-d", str(int(args.seconds))]
            cmd += ["-f", "raw", "-o", str(out), "--pid", str(p.pid)]
            spies[name] = (subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL), out)
        t0 = time.time()
        for proc, _ in spies.values():
            proc.wait(timeout=args.seconds + 60)
        wall = time.time() - t0
        result: dict[str, dict] = {}
        for name, p in procs.items():
            if p is None:
                continue
            c0, c1 = cpu0[name], p.cpu_times()
            busy = (c1.user - c0.user) + (c1.system - c0.system)
            _, out = spies[name]
            result[name] = {
                "cpu_share_of_one_core": round(busy / wall, 3),
                "parts": categorise(out) if out.exists() else {},
            }
        report = {"game": args.game, "seconds": wall, "load_avg": os.getloadavg(), "processes": result}
        Path(args.out).write_text(json.dumps(report, indent=1))
        print(json.dumps(report, indent=1))
    finally:
        driver.terminate()
        driver.wait(timeout=120)


if __name__ == "__main__":
    main()
