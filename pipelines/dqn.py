"""Composition root for Ape-X style DQN (``adl train dqn``): collectors, shared replay, learner.

Spaces, budgets and resources are checked before any actor starts; ``pipelines/dqn_run.py`` builds
the run and ``pipelines/dqn_loop.py`` drives it over a local wiring (``local: true``) or Ray actors.
Checkpoints (``pipelines/dqn_checkpoint.py``) are written every ``checkpoint.every_s`` and at exit,
including after SIGINT/SIGTERM; ``--resume RUN_ID`` checks one before touching the run, then
continues it.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from components.rl.dqn.config import DQNConfig
from pipelines.dqn_checkpoint import checkpoint_dir, verify
from pipelines.dqn_run import DQNSetup, check_resources, log_results, prestart_ray, run_dqn
from pipelines.dqn_state import LoopResult
from pipelines.families import Family
from pipelines.stop_signals import StopSignals
from pipelines.tracking import run_info, tracked_run
from pipelines.tracking_uri import check_reachable, resolve_tracking_uri, where_to_look
from pipelines.writable import check_run_folders

CHECKPOINT_TAG = "adl.checkpoint_dir"


def train(cfg: DQNConfig, ctx: Any) -> int:
    # Unknown ids, continuous actions, pixel env with the MLP: exit 2 before anything starts.
    setup = DQNSetup.from_config(cfg)
    check_resources(cfg)  # collectors and a GPU learner the Ray it runs on can place: before the run
    uri = resolve_tracking_uri(ctx.tracking_uri)
    check_reachable(uri)
    if resume_id := ctx.extra.get("resume"):
        # Check the checkpoint before the run is touched: a refused resume leaves it as it was.
        experiment, _, tags = run_info(uri, resume_id)
        ckpt_dir = Path(tags.get(CHECKPOINT_TAG) or checkpoint_dir(cfg, resume_id))
        manifest = verify(ckpt_dir, cfg, setup.obs_shape, setup.n_actions, setup.net, setup.obs_dtype)
        opened = {"run_id": resume_id, "config_file": "config_resumed.yaml"}
        check_run_folders(ckpt_dir.parent)
    else:
        experiment, manifest = ctx.experiment, None
        tags = {"adl.family": "dqn", "adl.config": ctx.config_name}
        opened = {"run_name": ctx.run_name, "tags": tags}
        check_run_folders(cfg.checkpoint.dir)  # writable now, not at the first checkpoint
    prestart_ray(cfg)  # Ray comes up while the run opens
    stop = StopSignals()
    with tracked_run(uri, experiment, config=cfg, **opened) as tracker:
        assert tracker.run_id is not None
        if manifest is not None:
            print(f"adl: resuming MLflow run {resume_id} from {manifest['path']}", file=sys.stderr)
        else:
            ckpt_dir = checkpoint_dir(cfg, tracker.run_id)
            tracker.set_tags({CHECKPOINT_TAG: str(ckpt_dir)})
            print(f"adl: MLflow run {tracker.run_id} in experiment {experiment!r} ({uri})", file=sys.stderr)
        res, learner = run_dqn(
            cfg, tracker, ctx.progress, stop=stop, ckpt_dir=ckpt_dir, resume=manifest, setup=setup
        )
        log_results(res, learner, tracker)
        if (ckpt_dir / "manifest.json").is_file():
            tracker.log_artifact(ckpt_dir / "manifest.json", "checkpoint")
        if res.interrupted:
            tracker.finish("KILLED")
    if res.interrupted:
        print(
            f"adl: stopped at {res.env_steps} env steps, learner step {res.learner_steps}; "
            f"continue with: adl train dqn --resume {tracker.run_id} (same --config and --set)",
            file=sys.stderr,
        )
        return stop.exit_code
    print(f"\n{summary(cfg, res)}")
    print(where_to_look(tracker.run_id, experiment, uri))
    return 0


def summary(cfg: DQNConfig, res: LoopResult) -> str:
    solved = (
        f"reached eval return {cfg.eval.stop_at_return:g} after {res.solved_at_s:.1f}s, "
        f"{res.solved_at_env_steps} env steps"
        if res.solved_at_s is not None
        else "did not reach the target"
    )
    return (
        f"adl: DQN on {cfg.env.id}: {res.env_steps} env steps, {res.learner_steps} updates, {res.episodes} "
        f"episodes in {res.wall_s:.1f}s; best eval return {res.best_eval:.1f}; {solved}"
    )


FAMILY = Family(
    name="dqn",
    config_cls=DQNConfig,
    default_config="dqn/cartpole.yaml",
    train=train,
    metric="eval_return",
    mode="max",
)
