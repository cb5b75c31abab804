"""One DQN training, built from its pre-flight's plan (``preflight.py``: spaces, memory and resources
checked, the network built once): the learner and the wiring (local or Ray) put together, the loop
run with checkpoints, everything stopped at the end.

``pipelines/dqn/train.py`` (``adl train dqn``) opens the MLflow run around :func:`run_dqn`; tests and
benchmarks call it directly with any tracker.
"""

from __future__ import annotations

import contextlib
import sys
import time
from pathlib import Path
from typing import Any

from components.device import set_threads
from components.rl.dqn.config import DQNConfig
from components.rl.dqn.cycle import InProcessLearner
from components.rl.dqn.learner import Learner
from pipelines.dqn.checkpoint import Checkpointer, restore
from pipelines.dqn.local_wiring import LocalWiring
from pipelines.dqn.loop import train_loop
from pipelines.dqn.preflight import DQNSetup, RunPlan, preflight
from pipelines.dqn.state import LoopControl, LoopLearner, LoopResult, LoopState, Wiring
from pipelines.stop_signals import StopSignals
from pipelines.tracking import Tracker


def prestart_ray(cfg: DQNConfig) -> None:
    """Start a local Ray in a thread while the caller opens its MLflow run; ``build_wiring`` waits.

    A cluster (``address``, ``$RAY_ADDRESS``) was joined by the pre-flight already."""
    if not cfg.local:
        from pipelines.distributed.ray_runtime import start_ray_in_background  # Ray: not for local: true

        start_ray_in_background(cfg.address, cfg.num_cpus)


def build_wiring(cfg: DQNConfig, setup: DQNSetup) -> Wiring:
    """Collectors and replay in this process, or as Ray actors: a local Ray started (or the one
    ``prestart_ray`` began, waited for), or the cluster the pre-flight joined. The pre-flight
    (``preflight.check_resources``) found that Ray can hold them; nothing is checked again here."""
    args = (cfg, setup.obs_shape, setup.obs_dtype, setup.n_actions)
    if cfg.local:
        return LocalWiring(*args)
    # Ray (~1 s with its actors' modules): a local run (local: true) never loads it
    from pipelines.distributed.ray_runtime import init_ray
    from pipelines.distributed.ray_wiring import RayWiring

    init_ray(address=cfg.address, num_cpus=cfg.num_cpus)
    return RayWiring(*args)


def build_learner(cfg: DQNConfig, setup: DQNSetup, wiring: Wiring, local: Learner | None) -> LoopLearner:
    """``local`` fed by the wiring, or a learner in its own actor (``learner.placement``/``device``)."""
    if local is not None:
        return InProcessLearner(local, wiring, cfg.learner.publish_every)
    # With its GPU share: pipelines/distributed/learner_actor.py; setup.net mirrors it here.
    from pipelines.distributed.learner_actor import RemoteLearner

    remote = RemoteLearner(cfg, setup.obs_shape, setup.n_actions, wiring, mirror=setup.net)
    info = remote.info()
    graph = "a CUDA graph per update" if info["cuda_graph"] else "eager updates"
    print(f"adl: learner actor on {info['device']} ({graph}, {info['precision']})", file=sys.stderr)
    return remote


class GuardedCheckpoints:
    """Checkpoints that a failing disk cannot end the run with.

    The folder was checked writable before the run started (``pipelines/writable.py``); if a write
    fails later (disk full, folder made read-only or removed), the run logs a warning, the tag
    ``adl.checkpoint_error`` and the metric ``checkpoint_failures``, and trains on: the last good
    checkpoint stays where it was (a new one replaces it only once whole), and the run still ends
    with its models logged. A replay snapshot written by the replay actor fails the same way
    (Ray raises the actor's ``OSError`` as an ``OSError``).
    """

    def __init__(self, ckpt: Checkpointer, tracker: Tracker) -> None:
        self.ckpt, self.tracker = ckpt, tracker
        self.failures = self.upload_failures = 0
        self.uploaded = 0  # bytes of the last checkpoint copied to the run's artifacts
        self.last_good: int | None = None  # env steps of the last checkpoint written

    def save(self, state: LoopState) -> bool:
        try:
            self.ckpt.save(state)
        except OSError as e:
            self.failures += 1
            kept = f"step {self.last_good}" if self.last_good is not None else "none yet"
            msg = f"{type(e).__name__}: {e}"
            print(
                f"adl: warning: checkpoint at env step {state.env_steps} failed ({msg}); training goes "
                f"on, the last good checkpoint ({kept}) stays in {self.ckpt.dir}",
                file=sys.stderr,
                flush=True,
            )
            self.ckpt.discard_partial()
            self.tracker.set_tags({"adl.checkpoint_error": msg[:500]})
            self.tracker.log_metrics({"checkpoint_failures": float(self.failures)}, step=state.env_steps)
            return False
        self.last_good = state.env_steps
        self._upload(state)
        return True

    def _upload(self, state: LoopState) -> None:
        """The checkpoint to the run's artifacts (``checkpoint.upload``); a tracking server that is
        away costs the copy, never the run (the next checkpoint tries again)."""
        try:
            t0 = time.perf_counter()
            sent = self.ckpt.upload(self.tracker)
            self.ckpt.last_upload_s = time.perf_counter() - t0
            self.uploaded = sent
        except Exception as e:  # noqa: BLE001 - whatever the tracking client raises after its retries
            self.upload_failures += 1
            msg = f"{type(e).__name__}: {str(e).strip()[:300]}"
            print(
                f"adl: warning: copying the checkpoint at env step {state.env_steps} to the tracking server "
                f"failed ({msg}); training goes on, the next checkpoint tries again",
                file=sys.stderr,
                flush=True,
            )
            with contextlib.suppress(Exception):  # the server may still be away
                self.tracker.set_tags({"adl.checkpoint_upload_error": msg[:500]})
                self.tracker.log_metrics(
                    {"checkpoint_upload_failures": float(self.upload_failures)}, step=state.env_steps
                )


def run_dqn(
    cfg: DQNConfig,
    tracker: Tracker,
    progress: bool = True,
    t_start: float | None = None,
    stop: StopSignals | None = None,
    ckpt_dir: Path | None = None,
    resume: dict[str, Any] | None = None,
    plan: RunPlan | None = None,
    upload_slot: int = 0,
) -> tuple[LoopResult, LoopLearner]:
    """Build everything from ``plan`` (by default the pre-flight of ``cfg``, without its folder
    check: ``ckpt_dir`` is the caller's) and train; ``t_start`` is when the clock started.

    With ``ckpt_dir`` it checkpoints there every ``checkpoint.every_s`` and at exit; ``resume`` is a
    verified manifest (:func:`pipelines.dqn.checkpoint_check.verify`) to continue from.
    """
    t0 = t_start if t_start is not None else time.time()
    plan = plan or preflight(cfg, folders=False)
    cfg, setup = plan.cfg, plan.setup
    if setup.placement is None:  # the driver beside a learner actor (a learner here set them in setup)
        set_threads(cfg.learner.threads)
    wiring = build_wiring(cfg, setup)  # actors start in their own processes from here
    learner: LoopLearner | None = None
    try:
        # Built while the actors start: the optimizer's first construction imports torch._dynamo
        # (~1.4 s here), which the first batches need not wait for.
        local = None if cfg.learner_in_actor() else Learner(setup.net, cfg.learner, setup.placement)
        learner = build_learner(cfg, setup, wiring, local)
        with stop or StopSignals() as signals:  # after ray.init, which replaces the SIGTERM handler
            ckpt = (
                GuardedCheckpoints(Checkpointer(cfg, ckpt_dir, learner, wiring, setup.spaces), tracker)
                if ckpt_dir
                else None
            )
            if ckpt is not None:
                ckpt.ckpt.next_slot = upload_slot
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
            if ckpt is not None and res.state is not None and ckpt.save(res.state):
                c = ckpt.ckpt
                print(f"adl: checkpoint written to {c.dir} ({c.last_write_s:.2f}s)", file=sys.stderr)
        return res, learner
    finally:
        if learner is not None:
            learner.stop()
        wiring.stop()
