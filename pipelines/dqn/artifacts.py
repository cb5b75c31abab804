"""What a DQN run leaves in MLflow, and how a resume gets it back.

At the end: the final and best networks as MLflow models (signature, input example, optionally
registered), ``final_model.pt``/``best_model.pt`` state dicts and the learning curves, the summary
numbers. Each checkpoint is copied to the run's ``checkpoint/`` artifacts as it is written
(``checkpoint.upload``, ``Checkpointer.upload``); ``--resume RUN_ID`` on a machine without the local
checkpoint folder (the run's host is gone) downloads that copy and verifies it like any other.
"""

from __future__ import annotations

import copy
import shutil
import sys
import tempfile
from pathlib import Path

import numpy as np
import torch

from components.rl.dqn.config import DQNConfig
from components.rl.dqn.env_factory import env_fn
from pipelines.dqn.checkpoint import MANIFEST, UPLOAD_SLOTS, CheckpointError, checkpoint_dir
from pipelines.dqn.checkpoint_check import check_files, read_manifest
from pipelines.dqn.preflight import DQNSetup
from pipelines.dqn.state import LoopLearner, LoopResult
from pipelines.tracking import Tracker
from pipelines.tracking.lookups import download_artifacts


def example_observations(cfg: DQNConfig, n: int = 2) -> np.ndarray:
    """``n`` real observations (a reset and random steps), the input example of the logged models."""
    env = env_fn(cfg, cfg.seed)()
    try:
        obs, _ = env.reset(seed=cfg.seed)
        rows = [np.asarray(obs)]
        while len(rows) < n:
            obs, *_ = env.step(env.action_space.sample())
            rows.append(np.asarray(obs))
        return np.stack(rows)
    finally:
        env.close()


def log_results(
    cfg: DQNConfig,
    res: LoopResult,
    learner: LoopLearner,
    setup: DQNSetup,
    tracker: Tracker,
    register: str | None = None,
) -> None:
    """Networks (as MLflow models and as state dicts), learning curves and the summary numbers.

    Each model is linked to the run at the step it was chosen, with the run's metrics there: the best
    at the evaluation that made it the best (its eval return), the final one at the last step."""
    from components.rl.dqn.plots import plot_dqn_curves  # matplotlib: 0.5 s of import, only needed here
    from pipelines.tracking.models import log_torch_model  # MLflow's model flavour: only to log one

    best = None
    if res.best_state is not None:
        best = copy.deepcopy(setup.net).cpu()
        best.load_state_dict(res.best_state)
    example = example_observations(cfg)
    final = None if best else register
    log_torch_model(tracker, learner.online, "final_model", example, final, step=res.env_steps)  # type: ignore[arg-type]
    if best is not None:
        chosen = next((s for s, v in res.history.get("eval_return", []) if v == res.best_eval), res.env_steps)
        log_torch_model(tracker, best, "best_model", example, register, step=chosen)  # type: ignore[arg-type]
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


def fetch_checkpoint(cfg: DQNConfig, uri: str, run_id: str, tagged: Path) -> tuple[Path, int | None]:
    """The checkpoint folder to resume from: the tagged one if it holds a checkpoint, else the newest
    whole copy in the run's artifacts (of the two slots written in turn), downloaded to this
    machine's ``checkpoint.dir``. Also returns the slot it came from (None for a local folder)."""
    if any((d / MANIFEST).is_file() for d in (tagged, tagged.with_name("checkpoint.old"))):
        return tagged, None
    local = checkpoint_dir(cfg, run_id)
    staging = local.with_name("download")
    shutil.rmtree(staging, ignore_errors=True)
    slots = [s for s in UPLOAD_SLOTS if download_artifacts(uri, run_id, s, staging)]
    if not slots:
        raise CheckpointError(
            f"no checkpoint at {tagged}, and run {run_id} has no uploaded checkpoint artifacts "
            f"(checkpoint.upload was none, or the run stopped before its first checkpoint)"
        )
    whole, broken = [], []
    for slot in slots:
        try:
            manifest = read_manifest(staging / slot)
            check_files(staging / slot, manifest)
        except CheckpointError as e:
            broken.append(f"{slot}/: {e}")
            continue
        whole.append((float(manifest.get("written_at", 0.0)), slot))
    if not whole:
        raise CheckpointError(f"run {run_id}'s uploaded checkpoint copies are not whole: {'; '.join(broken)}")
    _, slot = max(whole)
    shutil.rmtree(local, ignore_errors=True)
    (staging / slot).rename(local)
    shutil.rmtree(staging, ignore_errors=True)
    if broken:  # the newest copy was cut off (its host died during it): the one before it is whole
        print(f"adl: skipped a copy that is not whole ({broken[0]})", file=sys.stderr)
    print(f"adl: downloaded run {run_id}'s checkpoint from the tracking server to {local}", file=sys.stderr)
    return local, UPLOAD_SLOTS.index(slot)
