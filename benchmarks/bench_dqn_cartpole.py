"""DQN on CartPole-v1: adl vs RLlib vs Stable-Baselines3, side by side, same machine, same measure.

Every (tool, seed) runs in a fresh subprocess, interleaved by seed (adl s0, RLlib s0, SB3 s0, adl
s1, ...), so that a busy spell on the machine hits every tool alike. The clock starts when the
subprocess is launched (imports, Ray start and env creation count) and stops at the first greedy
evaluation (ε = 0, 5 episodes on separate envs, every 2,000 env steps) whose mean return is ≥ 475.
A run that does not get there within the cap counts as the cap (so peer ratios are lower bounds).
Beside it each run reports the rolling mean of its last 20 *training* episodes at that moment (at
the cap for a run that did not get there), computed the same way for every tool from the episodes
it collected while exploring: adl's Ape-X collectors keep ε up to 0.4 on some envs, RLlib and SB3
end at 0.02 and 0.04, so adl's training return reads lower for the same greedy policy.

``adl`` is the command ``make run`` runs (``adl train dqn --config configs/dqn/cartpole.yaml``),
with a fresh MLflow store; beside its time to the target it reports how long the command took to
exit after it (the final checkpoint, logged models, Ray's stop). ``--tools`` may add
``adl-cluster``: the same command joining a Ray that is already running (started by this script
before the clock starts, stopped after the run), as under ``adl submit`` or ``--address``, so that
Ray's own start-up is not in its time; everything else (imports, actor start, MLflow) still is.

    .venv/bin/python benchmarks/bench_dqn_cartpole.py --seeds 5 --cap-s 150
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
EVAL_EVERY, EVAL_EPISODES, TARGET = 2000, 5, 475.0


def greedy_eval(act, episodes: int, seed: int) -> float:
    """Mean return of ``act(obs_batch) -> actions`` over greedy episodes, one env copy each."""
    import gymnasium as gym

    envs = gym.vector.SyncVectorEnv(
        [lambda: gym.make("CartPole-v1") for _ in range(episodes)],
        autoreset_mode=gym.vector.AutoresetMode.NEXT_STEP,
    )
    obs, _ = envs.reset(seed=seed)
    returns, alive = np.zeros(episodes), np.ones(episodes, dtype=bool)
    while alive.any():
        obs, r, term, trunc, _ = envs.step(act(obs))
        returns += r * alive
        alive &= ~(term | trunc)
    return float(returns.mean())


def rolling20(returns: list[float]) -> float:
    """Mean return of the last 20 training episodes (NaN before the first one ends)."""
    return float(np.mean(returns[-20:])) if returns else float("nan")


def run_adl(seed: int, t0: float, cap: float) -> dict:
    """``adl train dqn`` as a user runs it (``make run``'s command), in its own process with a fresh
    MLflow store: imports, the MLflow run, Ray's start (or the join, for ``adl-cluster``), the logged
    models and the exit all count. Its own clock starts at its process's creation, as ours does."""
    from mlflow.tracking import MlflowClient

    with tempfile.TemporaryDirectory() as d:
        argv = [sys.executable, "-m", "pipelines.cli", "train", "dqn", "--no-progress"]
        argv += [
            "--config",
            str(REPO / "configs/dqn/cartpole.yaml"),
            "--tracking-uri",
            f"sqlite:///{d}/mlflow.db",
        ]
        sets = [f"seed={seed}", f"max_time_s={cap}", "max_env_steps=10000000"]
        sets += [f"eval.every_env_steps={EVAL_EVERY}", f"eval.episodes={EVAL_EPISODES}"]
        sets += [f"eval.stop_at_return={TARGET}"]
        if os.environ.get("RAY_ADDRESS"):  # adl-cluster: join the Ray started before the clock
            sets.append(f"address={os.environ['RAY_ADDRESS']}")
        started = time.time()
        proc = subprocess.run(
            [*argv, *(a for kv in sets for a in ("--set", kv))], cwd=d, capture_output=True, text=True
        )
        exited = time.time()
        if proc.returncode != 0:
            raise RuntimeError(proc.stderr[-2000:])
        client = MlflowClient(f"sqlite:///{d}/mlflow.db")
        (run,) = client.search_runs([client.get_experiment_by_name("adl-dqn").experiment_id])
        # One-off results are the run's tags adl.result.<name> (pipelines/tracking/metric_names.py).
        m = {
            k.removeprefix("adl.result."): float(v)
            for k, v in run.data.tags.items()
            if k.startswith("adl.result.")
        }
        solved = m.get("solved_at_s")  # from the process's creation (pipelines/cli/main.py)
        steps = m.get("solved_at_env_steps")
        train = client.get_metric_history(run.info.run_id, "train/return")
        at = [x for x in train if steps is None or x.step <= steps]
    # The command's own clock (from its process's creation), as the other tools' start at theirs.
    return {
        "solved_s": solved,
        "solved_steps": None if steps is None else int(steps),
        "env_steps": int(m["final_env_steps"]),
        "wall_s": exited - started,
        "exit_after_solve_s": None if solved is None else exited - started - solved,
        "best_eval": m.get("best_eval_return", float("nan")),
        "train_return": max(at, key=lambda x: x.step).value if at else float("nan"),
    }


def run_sb3(seed: int, t0: float, cap: float) -> dict:
    from stable_baselines3 import DQN
    from stable_baselines3.common.callbacks import BaseCallback

    class Stop(BaseCallback):
        def __init__(self) -> None:
            super().__init__()
            self.solved_s = self.solved_steps = None
            self.best, self.train_return = -np.inf, float("nan")

        def _on_step(self) -> bool:
            if self.num_timesteps % EVAL_EVERY == 0:
                ret = greedy_eval(
                    lambda o: self.model.predict(o, deterministic=True)[0],
                    EVAL_EPISODES,
                    10_000 + self.num_timesteps,
                )
                self.best = max(self.best, ret)
                self.train_return = rolling20([e["r"] for e in self.model.ep_info_buffer])
                if ret >= TARGET:
                    self.solved_s, self.solved_steps = time.time() - t0, self.num_timesteps
                    return False
            return time.time() - t0 < cap

    # rl-zoo hyperparams/dqn.yml, CartPole-v1
    model = DQN(
        "MlpPolicy",
        "CartPole-v1",
        learning_rate=2.3e-3,
        batch_size=64,
        buffer_size=100_000,
        learning_starts=1000,
        gamma=0.99,
        target_update_interval=10,
        train_freq=256,
        gradient_steps=128,
        exploration_fraction=0.16,
        exploration_final_eps=0.04,
        policy_kwargs={"net_arch": [256, 256]},
        seed=seed,
        verbose=0,
        device="cpu",
    )
    # exploration_fraction is a fraction of total_timesteps: zoo trains 5e4 steps, so pass 5e4 and continue.
    cb = Stop()
    steps = 0
    while cb.solved_s is None and time.time() - t0 < cap:
        model.learn(total_timesteps=50_000, callback=cb, reset_num_timesteps=steps == 0)
        steps = model.num_timesteps
    return {
        "solved_s": cb.solved_s,
        "solved_steps": cb.solved_steps,
        "env_steps": model.num_timesteps,
        "wall_s": time.time() - t0,
        "best_eval": cb.best,
        "train_return": cb.train_return,
    }


def run_rllib(seed: int, t0: float, cap: float) -> dict:
    import ray
    from ray.rllib.algorithms.dqn import DQNConfig
    from ray.rllib.core.rl_module.default_model_config import DefaultModelConfig

    ray.init(address="local", num_cpus=2, include_dashboard=False, log_to_driver=False)
    train_returns: list[float] = []  # the env runner is local (num_env_runners 0): same process

    def on_episode_end(episode, env_runner, prev_episode_chunks=None, **_):
        if not env_runner.config.in_evaluation:  # an episode may span samples: add its earlier chunks
            chunks = [episode, *(prev_episode_chunks or [])]
            train_returns.append(float(sum(c.get_return() for c in chunks)))

    # RLlib's tuned example tuned_examples/dqn/cartpole_dqn.py (not shipped in the wheel; see DESIGN.md).
    config = (
        DQNConfig()
        .environment("CartPole-v1")
        .training(
            lr=5e-4,
            train_batch_size_per_learner=32,
            replay_buffer_config={
                "type": "PrioritizedEpisodeReplayBuffer",
                "capacity": 50_000,
                "alpha": 0.6,
                "beta": 0.4,
            },
            n_step=(2, 5),
            double_q=True,
            dueling=True,
            epsilon=[(0, 1.0), (10_000, 0.02)],
        )
        .rl_module(
            model_config=DefaultModelConfig(
                fcnet_hiddens=[256],
                fcnet_activation="tanh",
                fcnet_bias_initializer="zeros_",
                head_fcnet_hiddens=[256],
                head_fcnet_activation="tanh",
                head_fcnet_bias_initializer="zeros_",
            )
        )
        .evaluation(
            evaluation_interval=2,
            evaluation_duration=EVAL_EPISODES,
            evaluation_duration_unit="episodes",
            evaluation_config=DQNConfig.overrides(explore=False),
        )
        .debugging(seed=seed)
        .callbacks(on_episode_end=on_episode_end)
    )
    algo = config.build_algo()
    solved_s = solved_steps = None
    best, steps, train_return = -np.inf, 0, float("nan")
    while time.time() - t0 < cap:
        result = algo.train()
        steps = int(result.get("env_runners", {}).get("num_env_steps_sampled_lifetime", steps))
        ev = result.get("evaluation", {}).get("env_runners", {}).get("episode_return_mean")
        if ev is not None:
            best = max(best, float(ev))
            train_return = rolling20(train_returns)
            if ev >= TARGET:
                solved_s, solved_steps = time.time() - t0, steps
                break
    algo.stop()
    ray.shutdown()
    return {
        "solved_s": solved_s,
        "solved_steps": solved_steps,
        "env_steps": steps,
        "wall_s": time.time() - t0,
        "best_eval": best,
        "train_return": train_return,
    }


RUNNERS = {"adl": run_adl, "adl-cluster": run_adl, "rllib": run_rllib, "sb3": run_sb3}


@contextlib.contextmanager
def running_ray(tool: str) -> Iterator[dict[str, str]]:
    """For ``adl-cluster``, a 2-CPU Ray started here, whose address the run joins; else nothing."""
    if tool != "adl-cluster":
        yield {}
        return
    import ray

    ctx = ray.init(address="local", num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        yield {"RAY_ADDRESS": ctx.address_info["gcs_address"]}
    finally:
        ray.shutdown()


def child(tool: str, seed: int, cap: float) -> None:
    import torch

    # Every tool gets one torch thread: on 2 shared cores, 2 threads made small-net updates ~10x slower.
    torch.set_num_threads(1)
    t0 = float(os.environ["BENCH_T0"])
    out = RUNNERS[tool](seed, t0, cap)
    print("BENCH_RESULT " + json.dumps({"tool": tool, "seed": seed, **out}), flush=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--first-seed", type=int, default=0, help="the first seed to run")
    ap.add_argument("--cap-s", type=float, default=480.0, help="seconds per run before it counts as the cap")
    ap.add_argument("--tools", default="adl,rllib,sb3")
    ap.add_argument("--out", default=str(REPO / "benchmarks/results/dqn_cartpole.json"))
    ap.add_argument("--child", nargs=2, metavar=("TOOL", "SEED"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        child(args.child[0], int(args.child[1]), args.cap_s)
        return
    rows = []
    for seed in range(args.first_seed, args.first_seed + args.seeds):
        for tool in args.tools.split(","):
            with running_ray(tool) as ray_env:
                env = {**os.environ, **ray_env, "BENCH_T0": repr(time.time()), "PYTHONPATH": str(REPO)}
                proc = subprocess.run(
                    [sys.executable, __file__, "--child", tool, str(seed), "--cap-s", str(args.cap_s)],
                    capture_output=True,
                    text=True,
                    env=env,
                    timeout=args.cap_s + 300,
                )
            line = [ln for ln in proc.stdout.splitlines() if ln.startswith("BENCH_RESULT ")]
            if not line:
                print(f"{tool} seed {seed} failed:\n{proc.stderr[-2000:]}", file=sys.stderr)
                rows.append({"tool": tool, "seed": seed, "solved_s": None, "error": proc.stderr[-500:]})
                continue
            row = json.loads(line[-1][len("BENCH_RESULT ") :])
            rows.append(row)
            print(
                f"{tool:6s} seed {seed}: solved {row['solved_s']} s at {row['solved_steps']} env steps "
                f"(best eval {row['best_eval']:.0f}, rolling-20 training return {row['train_return']:.0f}, "
                f"{row['env_steps']} steps in {row['wall_s']:.0f}s"
                + (
                    f", exited {row['exit_after_solve_s']:.1f}s after"
                    if row.get("exit_after_solve_s")
                    else ""
                )
                + ")",
                flush=True,
            )
    summary = {}
    for tool in args.tools.split(","):
        times = [
            r["solved_s"] if r.get("solved_s") is not None else args.cap_s for r in rows if r["tool"] == tool
        ]
        solved = sum(r.get("solved_s") is not None for r in rows if r["tool"] == tool)
        sps = [r["env_steps"] / r["wall_s"] for r in rows if r["tool"] == tool and r.get("wall_s")]
        train = [
            r["train_return"]
            for r in rows
            if r["tool"] == tool and math.isfinite(r.get("train_return", math.nan))
        ]
        exits = [r["exit_after_solve_s"] for r in rows if r["tool"] == tool and r.get("exit_after_solve_s")]
        summary[tool] = {
            "median_s": statistics.median(times),
            "exit_after_solve_s": statistics.median(exits) if exits else None,
            "solved": solved,
            "runs": len(times),
            "env_steps_per_s": statistics.median(sps) if sps else None,
            "train_return": statistics.median(train) if train else None,
        }
    print(
        "\n| tool | seeds solved | median s to eval ≥ 475 (cap counts) | rolling-20 training return then "
        "(median) | env steps/s | adl speed-up |"
    )
    print("| --- | --- | --- | --- | --- | --- |")
    for tool, s in summary.items():
        ratio = s["median_s"] / summary["adl"]["median_s"] if "adl" in summary else float("nan")
        bound = "≥ " if s["solved"] < s["runs"] else ""
        print(
            f"| {tool} | {s['solved']}/{s['runs']} | {s['median_s']:.1f} | {s['train_return'] or 0:.0f} | "
            f"{s['env_steps_per_s'] or 0:.0f} | {bound}{ratio:.1f}× |"
        )
    Path(args.out).write_text(
        json.dumps(
            {"cap_s": args.cap_s, "rows": rows, "summary": summary, "load_avg": os.getloadavg()}, indent=1
        )
    )


if __name__ == "__main__":
    main()
