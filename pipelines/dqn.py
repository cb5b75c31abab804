"""Composition root for Ape-X style DQN (``adl train dqn``): collectors, shared replay, learner.

Spaces, budgets and resources are checked before any actor starts; then the same loop
(``pipelines/dqn_loop.py``) runs over a local wiring (``local: true``) or Ray actors.
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import torch

from components.config import ConfigError, dump_yaml, to_dict
from components.rl.dqn.config import DQNConfig
from components.rl.dqn.env_factory import check_spaces
from components.rl.dqn.learner import Learner
from components.rl.dqn.networks import build_q_network
from components.rl.dqn.plots import plot_dqn_curves
from pipelines.dqn_loop import LocalWiring, LoopResult, train_loop
from pipelines.families import Family
from pipelines.tracking import Tracker, check_reachable, open_run, resolve_tracking_uri, ui_command


def build_wiring(cfg: DQNConfig, obs_shape: tuple[int, ...], obs_dtype: Any, n_actions: int) -> Any:
    if cfg.local:
        return LocalWiring(cfg, obs_shape, obs_dtype, n_actions)
    from pipelines.distributed.dqn_actors import RayWiring
    from pipelines.distributed.ray_runtime import cluster_cpus, init_ray

    init_ray(address=cfg.address, num_cpus=cfg.num_cpus)
    cpus = cluster_cpus()
    if cfg.collectors.num_collectors > cpus:
        raise ConfigError(
            f"collectors.num_collectors: {cfg.collectors.num_collectors} collectors need one CPU "
            f"each, the Ray cluster has {cpus:g}; allowed: <= {int(cpus)}"
        )
    return RayWiring(cfg, obs_shape, obs_dtype, n_actions)


def run_dqn(
    cfg: DQNConfig, tracker: Tracker, progress: bool = True, t_start: float | None = None
) -> tuple[LoopResult, Learner]:
    """Build everything from ``cfg`` and train; ``t_start`` is when the clock started (default: now)."""
    t0 = t_start if t_start is not None else time.time()
    obs_shape, obs_dtype, n_actions = check_spaces(cfg)
    torch.manual_seed(cfg.seed)
    torch.set_num_threads(cfg.learner.num_threads)
    learner = Learner(build_q_network(cfg.network, obs_shape, n_actions), cfg.learner)
    wiring = build_wiring(cfg, obs_shape, obs_dtype, n_actions)
    try:
        return train_loop(cfg, wiring, learner, tracker, progress=progress, t_start=t0), learner
    finally:
        wiring.stop()


def log_results(res: LoopResult, learner: Learner, tracker: Tracker) -> None:
    with tempfile.TemporaryDirectory() as d:
        out = Path(d)
        torch.save(learner.online.state_dict(), out / "final_model.pt")
        paths = [out / "final_model.pt", plot_dqn_curves(res.history, out / "learning_curve.png")]
        if res.best_state is not None:
            torch.save(res.best_state, out / "best_model.pt")
            paths.append(out / "best_model.pt")
        for p in paths:
            tracker.log_artifact(p)
    summary = {
        "final_env_steps": res.env_steps,
        "final_learner_steps": res.learner_steps,
        "wall_s_total": res.wall_s,
    }
    if res.best_state is not None:
        summary["best_eval_return"] = res.best_eval
    if res.solved_at_s is not None:
        summary |= {
            "solved_at_s": res.solved_at_s,
            "solved_at_env_steps": float(res.solved_at_env_steps or 0),
        }
    tracker.log_metrics(summary, step=res.env_steps)


def train(cfg: DQNConfig, ctx: Any) -> int:
    check_spaces(
        cfg
    )  # unknown ids, continuous actions, pixel env with the MLP: exit 2 before anything starts
    uri = resolve_tracking_uri(ctx.tracking_uri)
    check_reachable(uri)
    tracker = open_run(
        uri, ctx.experiment, ctx.run_name, tags={"adl.family": "dqn", "adl.config": ctx.config_name}
    )
    print(f"adl: MLflow run {tracker.run_id} in experiment {ctx.experiment!r} ({uri})", file=sys.stderr)
    tracker.log_params(to_dict(cfg))
    tracker.log_text(dump_yaml(cfg), "config.yaml")
    status = "FAILED"
    try:
        res, learner = run_dqn(cfg, tracker, progress=ctx.progress)
        log_results(res, learner, tracker)
        status = "FINISHED"
    except KeyboardInterrupt:
        status = "KILLED"
        raise
    finally:
        tracker.finish(status)
    solved = (
        f"reached eval return {cfg.eval.stop_at_return:g} after {res.solved_at_s:.1f}s, "
        f"{res.solved_at_env_steps} env steps"
        if res.solved_at_s is not None
        else "did not reach the target"
    )
    print(
        f"\nadl: DQN on {cfg.env.id}: {res.env_steps} env steps, {res.learner_steps} updates, {res.episodes} "
        f"episodes in {res.wall_s:.1f}s; best eval return {res.best_eval:.1f}; {solved}"
    )
    print(f"adl: run id {tracker.run_id} (experiment {ctx.experiment!r})")
    print(f"adl: look at it with: {ui_command(uri)}")
    return 0


FAMILY = Family(
    name="dqn",
    config_cls=DQNConfig,
    default_config="dqn/cartpole.yaml",
    train=train,
    metric="eval_return",
    mode="max",
)
