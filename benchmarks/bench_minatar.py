"""MinAtar: adl's Ape-X DQN (``configs/dqn/minatar.yaml``) against the reference DQN of Young & Tian 2019
(``minatar_reference.py``, one plain process), side by side on this machine, a wall-clock budget each.

For each game each tool runs in a fresh subprocess whose clock starts at its launch (imports, Ray's
start, the MLflow run count), one after the other, never together (a --quick smoke run, which measures
nothing, runs them together). Both are measured the way the MinAtar paper counts: the mean return of
the last 100 *training* episodes, against frames (env steps; MinAtar has no frame skip) and against
wall seconds. The report gives each tool's frames/s, that
average when the budget ran out, and the first wall second at which it reached the reference's score
at 5M frames (read off the MinAtar README's curves: Breakout ≈ 10, Freeway ≈ 50, Seaquest ≈ 20).

``adl`` is the command a user runs (``adl train dqn --config configs/dqn/minatar.yaml --set
env.id=MinAtar/<Game>-v1``) with a fresh MLflow store; its curve is read back from that store
(``train/return_100`` logged every ``log_every_s``, ``train/wall_s`` from the command's launch), as are
its throughput figures (env steps/s, learner updates/s, observed samples per insert) for the profile.
The reference logs every episode. Results: ``benchmarks/results/minatar.json`` and one PNG per game
in ``docs/img/`` (with ``--out``, beside the JSON); the saved curves keep at most 1,000 points each.

    .venv/bin/python benchmarks/bench_minatar.py --games breakout --budget-s 1800
    .venv/bin/python benchmarks/bench_minatar.py --quick        # seconds: a smoke run of everything
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from subprocess import PIPE
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "benchmarks/results"
IMG = REPO / "docs/img"  # a full run's PNGs, shown by docs/dqn.md
MAX_SAVED_POINTS = 1000  # the reference logs every episode (thousands); the JSON keeps at most this many
GAMES = {"breakout": "Breakout", "freeway": "Freeway", "seaquest": "Seaquest"}
# The reference DQN's 100-episode training-return average at 5M frames (MinAtar README, 30 seeds).
TARGET = {"breakout": 10.0, "freeway": 50.0, "seaquest": 20.0}
QUICK_ADL = [
    "local=true",
    "replay.min_size=256",
    "learner.batch_size=32",
    "eval.every_env_steps=1000",
    "eval.episodes=2",
    "log_every_s=1",
    "checkpoint.every_s=0",
]


def moving_average_100(episodes: list[tuple[int, float, float]]) -> list[tuple[int, float, float]]:
    """(frame, wall s, mean of the last 100 returns) at each episode's end."""
    out, returns = [], []
    for frame, wall, ret in episodes:
        returns.append(ret)
        out.append((frame, wall, float(np.mean(returns[-100:]))))
    return out


def run_adl(game: str, budget_s: float, seed: int, quick: bool) -> dict[str, Any]:
    from mlflow.tracking import MlflowClient

    with tempfile.TemporaryDirectory() as d:
        sets = [f"env.id=MinAtar/{GAMES[game]}-v1", f"seed={seed}", f"max_time_s={budget_s}"]
        sets += QUICK_ADL if quick else []
        argv = [sys.executable, "-m", "pipelines.cli", "train", "dqn", "--no-progress"]
        argv += ["--config", str(REPO / "configs/dqn/minatar.yaml"), "--tracking-uri", f"sqlite:///{d}/m.db"]
        started = time.time()
        proc = subprocess.run(
            [*argv, *(a for kv in sets for a in ("--set", kv))],
            cwd=d,
            capture_output=True,
            text=True,
            env={**os.environ, "PYTHONPATH": str(REPO)},
        )
        exited = time.time()
        if proc.returncode != 0:
            raise RuntimeError(f"adl exited {proc.returncode}:\n{proc.stderr[-3000:]}")
        client = MlflowClient(f"sqlite:///{d}/m.db")
        (run,) = client.search_runs([client.get_experiment_by_name("adl-dqn").experiment_id])

        def history(name: str) -> dict[int, float]:
            return {m.step: m.value for m in client.get_metric_history(run.info.run_id, name)}

        wall, ret100 = history("train/wall_s"), history("train/return_100")
        evals = history("eval/return")
        sps, ups = history("train/env_steps_per_s"), history("learner/updates_per_s")
        spi = history("replay/samples_per_insert")
        tags = run.data.tags
    # (frame, wall s, 100-episode mean) at each log; the wall clock runs from the command's launch.
    curve = [(s, wall[s], ret100[s]) for s in sorted(ret100) if s in wall and np.isfinite(ret100[s])]
    inside = [c for c in curve if c[1] <= budget_s or quick]  # quick: max_time_s counts after start-up
    busy = [s for s in sps if s in wall and wall[s] > 60] or list(sps)  # after start-up
    return {
        "frames": int(tags["adl.result.final_env_steps"]),
        "updates": int(tags["adl.result.final_learner_steps"]),
        "command_s": exited - started,
        "curve": curve,
        "eval": [(s, wall.get(s), v) for s, v in sorted(evals.items())],
        "return_at_budget": inside[-1][2] if inside else None,
        "frames_at_budget": inside[-1][0] if inside else None,
        "profile": {
            "env_steps_per_s": float(np.median([sps[s] for s in busy])) if busy else None,
            "updates_per_s": float(np.median([ups[s] for s in busy if s in ups])) if busy else None,
            "samples_per_insert": float(np.median([spi[s] for s in busy if s in spi])) if busy else None,
        },
    }


def run_reference(game: str, budget_s: float, seed: int, quick: bool) -> dict[str, Any]:
    """The reference in this (fresh) process; its clock starts at the process's launch."""
    import torch

    sys.path.insert(0, str(REPO / "benchmarks"))
    from minatar_reference import run

    torch.set_num_threads(1)  # 2 threads made this small update many times slower on 2 shared cores
    # The clock runs from the launch; a --quick smoke run starts it after the imports instead.
    t0 = time.time() if quick else float(os.environ["BENCH_T0"])
    out = run(GAMES[game], budget_s, t0, seed, replay_start=500 if quick else 5000)
    curve = moving_average_100(out["episodes"])
    inside = [c for c in curve if c[1] <= budget_s or quick]
    return {
        "frames": out["frames"],
        "updates": out["updates"],
        "command_s": time.time() - t0,
        "curve": curve,
        "return_at_budget": inside[-1][2] if inside else None,
        "frames_at_budget": inside[-1][0] if inside else None,
    }


def thin(curve: list[Any], n: int = MAX_SAVED_POINTS) -> list[Any]:
    """At most ``n`` points of a curve, evenly spaced, the last one always kept."""
    if len(curve) <= n:
        return curve
    keep = np.unique(np.linspace(0, len(curve) - 1, n).round().astype(int))
    return [curve[i] for i in keep]


def summarise(row: dict[str, Any], target: float, budget_s: float) -> dict[str, Any]:
    reached = next(((f, w) for f, w, r in row["curve"] if r >= target), None)
    return {
        "frames_per_s": row["frames"] / min(row["command_s"], budget_s) if row["command_s"] else None,
        "return_at_budget": row["return_at_budget"],
        "frames_at_budget": row["frames_at_budget"],
        "reached_target_s": None if reached is None else reached[1],
        "reached_target_frames": None if reached is None else reached[0],
    }


def plot(game: str, rows: dict[str, dict[str, Any]], target: float, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(11, 3.6))
    for tool, row in rows.items():
        if not row.get("curve"):
            continue
        frames, wall, ret = zip(*row["curve"])
        label = {"adl": "adl (Ape-X, configs/dqn/minatar.yaml)", "reference": "reference DQN (1 process)"}
        axes[0].plot(np.array(wall) / 60, ret, label=label.get(tool, tool))
        axes[1].plot(np.array(frames) / 1e6, ret, label=label.get(tool, tool))
    for ax, xlabel in zip(axes, ("wall minutes from launch", "frames (millions)")):
        ax.axhline(target, color="grey", ls="--", lw=1, label="reference DQN at 5M frames")
        ax.set_xlabel(xlabel)
        ax.set_ylabel("mean training return, last 100 episodes")
        ax.legend(fontsize=7)
    fig.suptitle(f"MinAtar {GAMES[game]} on this machine")
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


def child(tool: str, game: str, budget_s: float, seed: int, quick: bool) -> None:
    runner = run_adl if tool == "adl" else run_reference
    out = runner(game, budget_s, seed, quick)
    print("BENCH_RESULT " + json.dumps(out), flush=True)


def launch(tool: str, game: str, args: argparse.Namespace) -> tuple[tuple[float, ...], subprocess.Popen[str]]:
    """Start one tool's child process; its clock (``BENCH_T0``) starts now. Returns the load then too."""
    env = {**os.environ, "BENCH_T0": repr(time.time()), "PYTHONPATH": str(REPO)}
    cmd = [sys.executable, __file__, "--child", tool, game, "--budget-s", str(args.budget_s)]
    cmd += ["--seed", str(args.seed)] + (["--quick"] if args.quick else [])
    return os.getloadavg(), subprocess.Popen(cmd, stdout=PIPE, stderr=PIPE, text=True, env=env)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--games", default="breakout,freeway,seaquest", help=f"comma list of {list(GAMES)}")
    ap.add_argument("--tools", default="adl,reference")
    ap.add_argument("--budget-s", type=float, default=1800.0, help="wall seconds per tool and game")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--quick", action="store_true", help="a few seconds per run, tiny settings: a smoke run")
    ap.add_argument("--out", help="JSON path (default benchmarks/results/minatar.json; --quick: a temp dir)")
    ap.add_argument("--child", nargs=2, metavar=("TOOL", "GAME"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.quick and "--budget-s" not in sys.argv:
        args.budget_s = 5.0
    if args.child:
        child(args.child[0], args.child[1], args.budget_s, args.seed, args.quick)
        return
    games, tools = args.games.split(","), args.tools.split(",")
    bad = [g for g in games if g not in GAMES] + [t for t in tools if t not in ("adl", "reference")]
    if bad:
        sys.exit(f"unknown game or tool {bad}; games: {list(GAMES)}, tools: adl, reference")
    default = Path(tempfile.mkdtemp()) / "minatar.json" if args.quick else RESULTS / "minatar.json"
    out_path = Path(args.out) if args.out else default
    results: dict[str, Any] = {}
    if out_path.exists() and not args.quick:  # keep other games' results from earlier invocations
        results = json.loads(out_path.read_text()).get("games", {})
    for game in games:
        rows: dict[str, dict[str, Any]] = {}

        # Measured runs go one after the other; a --quick smoke run measures nothing, so they run together.
        running = [launch(t, game, args) for t in tools] if args.quick else []
        for tool in tools:
            load_before, proc = running.pop(0) if args.quick else launch(tool, game, args)
            stdout, stderr = proc.communicate(timeout=args.budget_s + 600)
            line = [ln for ln in stdout.splitlines() if ln.startswith("BENCH_RESULT ")]
            if not line:
                sys.exit(f"{tool} on {game} failed:\n{stderr[-3000:]}")
            row = json.loads(line[-1][len("BENCH_RESULT ") :])
            row["load_avg_before"], row["load_avg_after"] = load_before, os.getloadavg()
            row["summary"] = summarise(row, TARGET[game], args.budget_s)  # from the full curve
            row["curve"] = thin(row["curve"])
            rows[tool] = row
            # Saved after every run, so a later run that cannot finish loses nothing already measured.
            results[game] = {"target": TARGET[game], "budget_s": args.budget_s, **rows}
            save(out_path, args, results)
            s = row["summary"]
            print(
                f"{game:9s} {tool:9s}: {row['frames']} frames, {s['frames_per_s']:.0f} frames/s "
                f"(command {row['command_s']:.0f} s); "
                f"100-episode training return {s['return_at_budget']} at {args.budget_s:.0f} s; "
                f"reached {TARGET[game]:g} at {s['reached_target_s']} s "
                f"({s['reached_target_frames']} frames)",
                flush=True,
            )
        png = (out_path.parent if args.quick or args.out else IMG) / f"minatar_{game}.png"
        plot(game, rows, TARGET[game], png)
        shown = png.relative_to(REPO) if png.is_relative_to(REPO) else png
        results[game] = {"target": TARGET[game], "budget_s": args.budget_s, "png": str(shown), **rows}
        save(out_path, args, results)
    print(f"wrote {out_path}")


def save(path: Path, args: argparse.Namespace, results: dict[str, Any]) -> None:
    path.write_text(
        json.dumps({"quick": args.quick, "seed": args.seed, "games": results}, indent=1, default=float)
    )


if __name__ == "__main__":
    main()
