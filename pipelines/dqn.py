"""Composition root for Ape-X style DQN (``adl train dqn``): collectors, shared replay, learner.

Spaces, budgets and resources are checked before any actor starts; then the same loop
(``pipelines/dqn_loop.py``) runs over a local wiring (``local: true``) or Ray actors. Checkpoints
(``pipelines/dqn_checkpoint.py``) are written every ``checkpoint.every_s`` and at exit, including
after SIGINT/SIGTERM; ``--resume RUN_ID`` checks one before touching the run, then continues it.
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
from pipelines.dqn_checkpoint import Checkpointer, checkpoint_dir, restore, verify
from pipelines.dqn_loop import LocalWiring, LoopControl, LoopResult, train_loop
from pipelines.families import Family
from pipelines.stop_signals import StopSignals
from pipelines.tracking import (
    Tracker,
    check_reachable,
    open_run,
    resolve_tracking_uri,
    run_info,
    ui_command,
)

CHECKPOINT_TAG = "adl.checkpoint_dir"


def prestart_ray(cfg: DQNConfig) -> None:
    """Start a local Ray in a thread while the caller opens its MLflow run; ``build_wiring`` waits.

    A join (``address``, ``$RAY_ADDRESS``) is quick and is left to ``build_wiring``."""
    if not cfg.local:
        from pipelines.distributed.ray_runtime import start_ray_in_background

        start_ray_in_background(cfg.address, cfg.num_cpus)


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
    from pipelines.distributed.learner_actor import check_gpus

    check_gpus(cfg)
    return RayWiring(cfg, obs_shape, obs_dtype, n_actions)


def run_dqn(
    cfg: DQNConfig,
    tracker: Tracker,
    progress: bool = True,
    t_start: float | None = None,
    stop: StopSignals | None = None,
    ckpt_dir: Path | None = None,
    resume: dict[str, Any] | None = None,
) -> tuple[LoopResult, Learner]:
    """Build everything from ``cfg`` and train; ``t_start`` is when the clock started (default: now).

    With ``ckpt_dir`` it checkpoints there every ``checkpoint.every_s`` and at exit; ``resume`` is a
    verified manifest (:func:`pipelines.dqn_checkpoint.verify`) to continue from.
    """
    t0 = t_start if t_start is not None else time.time()
    obs_shape, obs_dtype, n_actions = check_spaces(cfg)
    torch.manual_seed(cfg.seed)
    torch.set_num_threads(cfg.learner.num_threads)
    remote = False
    if not cfg.local:
        from pipelines.distributed.learner_actor import uses_learner_actor

        remote = uses_learner_actor(cfg)
    learner: Any = (
        None if remote else Learner(build_q_network(cfg.network, obs_shape, n_actions), cfg.learner)
    )
    wiring = build_wiring(cfg, obs_shape, obs_dtype, n_actions)
    spaces = (obs_shape, str(obs_dtype), n_actions)
    try:
        if remote:  # the learner in its own actor, with its GPU (pipelines/distributed/learner_actor.py)
            from pipelines.distributed.learner_actor import RemoteLearner

            learner = RemoteLearner(cfg, obs_shape, n_actions, wiring)
            print(f"adl: learner actor on {learner.info()['device']}", file=sys.stderr)
        with stop or StopSignals() as signals:  # after ray.init, which replaces the SIGTERM handler
            ckpt = Checkpointer(cfg, ckpt_dir, learner, wiring, spaces) if ckpt_dir else None
            start = restore(resume, learner, wiring) if resume else None
            if start is not None:
                size = wiring.replay_size()
                tracker.log_metrics(
                    {"resumed_replay_size": size, "resumed_learner_steps": learner.steps},
                    step=start.env_steps,
                )
                print(
                    f"adl: resumed at {start.env_steps} env steps, learner step {learner.steps}, "
                    f"replay size {size}",
                    file=sys.stderr,
                )
            control = LoopControl(
                start, cfg.checkpoint.every_s, ckpt.save if ckpt else None, signals.requested
            )
            res = train_loop(cfg, wiring, learner, tracker, progress=progress, t_start=t0, control=control)
            if ckpt is not None and res.state is not None:
                ckpt.save(res.state)
                print(f"adl: checkpoint written to {ckpt.dir} ({ckpt.last_write_s:.2f}s)", file=sys.stderr)
        return res, learner
    finally:
        if remote and learner is not None:
            learner.stop()
        wiring.stop()


def log_results(res: LoopResult, learner: Learner, tracker: Tracker) -> None:
    from components.rl.dqn.plots import plot_dqn_curves  # matplotlib: 0.5 s of import, only needed here

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
    # Unknown ids, continuous actions, pixel env with the MLP: exit 2 before anything starts.
    obs_shape, _, n_actions = check_spaces(cfg)
    uri = resolve_tracking_uri(ctx.tracking_uri)
    check_reachable(uri)
    manifest = None
    if resume_id := ctx.extra.get("resume"):
        # Check the checkpoint before the run is touched: a refused resume leaves it as it was.
        experiment, _, tags = run_info(uri, resume_id)
        ckpt_dir = Path(tags.get(CHECKPOINT_TAG) or checkpoint_dir(cfg, resume_id))
        net = build_q_network(cfg.network, obs_shape, n_actions)
        manifest = verify(ckpt_dir, cfg, obs_shape, n_actions, net)
        prestart_ray(cfg)  # Ray comes up while the run opens
        tracker = open_run(uri, experiment, run_id=resume_id)
        tracker.log_text(dump_yaml(cfg), "config_resumed.yaml")
        print(f"adl: resuming MLflow run {resume_id} from {manifest['path']}", file=sys.stderr)
    else:
        tags = {"adl.family": "dqn", "adl.config": ctx.config_name}
        prestart_ray(cfg)
        tracker = open_run(uri, ctx.experiment, ctx.run_name, tags=tags)
        assert tracker.run_id is not None
        ckpt_dir = checkpoint_dir(cfg, tracker.run_id)
        tracker.set_tags({CHECKPOINT_TAG: str(ckpt_dir)})
        print(f"adl: MLflow run {tracker.run_id} in experiment {ctx.experiment!r} ({uri})", file=sys.stderr)
        tracker.log_params(to_dict(cfg))
        tracker.log_text(dump_yaml(cfg), "config.yaml")
    status, stop = "FAILED", StopSignals()
    try:
        res, learner = run_dqn(cfg, tracker, ctx.progress, stop=stop, ckpt_dir=ckpt_dir, resume=manifest)
        log_results(res, learner, tracker)
        if (ckpt_dir / "manifest.json").is_file():
            tracker.log_artifact(ckpt_dir / "manifest.json", "checkpoint")
        status = "KILLED" if res.interrupted else "FINISHED"
    except KeyboardInterrupt:
        status = "KILLED"
        raise
    finally:
        tracker.finish(status)
    if res.interrupted:
        print(
            f"adl: stopped at {res.env_steps} env steps, learner step {res.learner_steps}; "
            f"continue with: adl train dqn --resume {tracker.run_id} (same --config and --set)",
            file=sys.stderr,
        )
        return stop.exit_code
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
