"""Composition root for Ape-X style DQN (``adl train dqn``): collectors, shared replay, learner.

Every check runs once, before any actor starts (``pipelines/dqn/preflight.py`` says which and
where); ``pipelines/dqn/run.py`` builds the run and ``pipelines/dqn/loop.py`` drives it over a
local wiring (``local: true``) or Ray actors.
Checkpoints (``pipelines/dqn/checkpoint.py``) are written every ``checkpoint.every_s`` and at exit,
including after SIGINT/SIGTERM; ``--resume RUN_ID`` checks one before touching the run, then
continues it.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from components.rl.dqn.config import DQNConfig
from pipelines.dqn.artifacts import fetch_checkpoint, log_results
from pipelines.dqn.checkpoint import checkpoint_dir
from pipelines.dqn.checkpoint_check import verify
from pipelines.dqn.lease import RunLease
from pipelines.dqn.preflight import RunPlan, preflight
from pipelines.dqn.run import prestart_ray, run_dqn
from pipelines.dqn.state import LoopResult
from pipelines.families import Family, slug
from pipelines.stop_signals import StopSignals
from pipelines.tracking import tracked_run
from pipelines.tracking.metric_names import DQN
from pipelines.tracking.uri import where_to_look
from pipelines.writable import check_run_folders

CHECKPOINT_TAG = "adl.checkpoint_dir"


def train(cfg: DQNConfig, ctx: Any) -> int:
    # Spaces, memory, resources and folders, once, before Ray starts (pipelines/dqn/preflight.py); from
    # here on the run takes the plan's facts, and its config with checkpoint.dir absolute.
    plan = preflight(cfg, folders="resume" not in ctx.extra)  # a resume checks its run's folder below
    cfg, setup = plan.cfg, plan.setup
    # Where the learner runs: this process's device (resolved and checked in the pre-flight's setup),
    # or (in an actor) the one the actor asks Ray for, which this machine need not have.
    device = cfg.learner.device if setup.placement is None else setup.placement.device.type
    uri, leases = ctx.tracking_uri, []
    if resume_id := ctx.extra.get("resume"):
        # Check the checkpoint before the run is touched: a refused resume leaves it as it was.
        experiment, _, tags = ctx.extra["resume_info"]
        tagged = Path(tags.get(CHECKPOINT_TAG) or checkpoint_dir(cfg, resume_id))
        ckpt_dir, slot = fetch_checkpoint(cfg, uri, resume_id, tagged)
        ctx.extra["upload_slot"] = 0 if slot is None else 1 - slot  # never over the copy resumed from
        manifest = verify(ckpt_dir, cfg, setup.obs_shape, setup.n_actions, setup.net, setup.obs_dtype)
        opened = {"run_id": resume_id, "config_file": "config_resumed.yaml"}
        check_run_folders(ckpt_dir.parent)
        # One writer per run: refused (exit 2) while another process trains it, before it is touched.
        leases.append(RunLease(ckpt_dir.parent, resume_id).acquire())
    else:
        experiment, manifest = ctx.experiment, None
        tags = {"adl.family": "dqn", "adl.config": ctx.config_name, "adl.device": device}
        opened = {"run_name": ctx.run_name or run_name(cfg), "tags": tags}
    try:
        return _train(plan, ctx, experiment, opened, manifest, ckpt_dir if manifest else None, leases)
    finally:
        for lease in leases:
            lease.release()


def _train(
    plan: RunPlan,
    ctx: Any,
    experiment: str,
    opened: dict[str, Any],
    manifest: dict[str, Any] | None,
    ckpt_dir: Path | None,
    leases: list[RunLease],
) -> int:
    """Open (or reopen) the run, train, log what it left; the run's lease is held meanwhile."""
    cfg, setup = plan.cfg, plan.setup
    uri, register, resume_id = ctx.tracking_uri, ctx.extra.get("register"), ctx.extra.get("resume")
    prestart_ray(cfg)  # Ray comes up while the run opens
    stop = StopSignals()
    # The run starts at the launch (ctx.started), the clock solved_at_s counts from: Duration covers it.
    with tracked_run(
        uri, experiment, config=cfg, names=DQN, lead_metric="eval_return", started=ctx.started, **opened
    ) as tracker:
        assert tracker.run_id is not None
        if manifest is None:
            ckpt_dir = checkpoint_dir(cfg, tracker.run_id)
            leases.append(RunLease(ckpt_dir.parent, tracker.run_id).acquire())  # a resume meanwhile: refused
            print(f"adl: MLflow run {tracker.run_id} in experiment {experiment!r} ({uri})", file=sys.stderr)
        else:
            print(f"adl: resuming MLflow run {resume_id} from {manifest['path']}", file=sys.stderr)
        tracker.set_tags({CHECKPOINT_TAG: str(ckpt_dir)})
        res, learner = run_dqn(
            cfg,
            tracker,
            ctx.progress,
            t_start=ctx.started,
            stop=stop,
            ckpt_dir=ckpt_dir,
            resume=manifest,
            plan=plan,
            upload_slot=ctx.extra.get("upload_slot", 0),
        )
        if not cfg.local:  # the actors are gone: Ray stops while the results are logged
            from pipelines.distributed.ray_runtime import shutdown_in_background  # Ray: not for local: true

            shutdown_in_background()
        log_results(cfg, res, learner, setup, tracker, register)
        if res.interrupted:
            tracker.finish("KILLED")
        else:
            tracker.note_result(summary(cfg, res).removeprefix("adl: "))
    if res.interrupted:
        print(
            f"adl: stopped at {res.env_steps} env steps, learner step {res.learner_steps}; "
            f"continue with: adl train dqn --resume {tracker.run_id} (same --config and --set)",
            file=sys.stderr,
        )
        return stop.exit_code
    print(f"\n{summary(cfg, res)}")
    print(where_to_look(tracker.run_id, experiment, uri, tracker.experiment_id))
    if not cfg.local:
        from pipelines.distributed.ray_runtime import wait_for_shutdown  # Ray: not for local: true

        wait_for_shutdown()
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


def run_name(cfg: DQNConfig) -> str:
    return slug("dqn", cfg.env.id, f"s{cfg.seed}")


FAMILY = Family(
    name="dqn",
    names=DQN,
    run_name=run_name,
    train=train,
    metric="eval_return",
    mode="max",
)
