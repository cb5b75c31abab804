"""The DQN driver loop, the same for one process and for Ray: who runs next, what gets logged.

A *wiring* (``LocalWiring`` here, ``RayWiring`` in ``pipelines/distributed/dqn_actors.py``) hides
where collectors and the replay live. The loop asks the samples-per-insert limiter, without
blocking, whether collectors may insert and whether the learner may sample, and otherwise waits
for a collector. It publishes weights every ``publish_every`` learner steps, evaluates greedily
every ``eval.every_env_steps`` env steps, logs every ``log_every_s`` seconds and stops at the step,
time or return budget. A :class:`LoopControl` adds what a long run needs: counters restored from
a checkpoint, a periodic checkpoint callback and a stop request (SIGINT/SIGTERM) honoured between
steps.
"""

from __future__ import annotations

import math
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import torch
from tqdm import tqdm

from components.replay.batch import SampledBatch
from components.replay.factory import make_replay
from components.replay.rate_limiter import SamplesPerInsert
from components.replay.snapshot import Compression, read_replay, write_replay
from components.rl.dqn.collector import Collector, EpisodeStats
from components.rl.dqn.config import DQNConfig
from components.rl.dqn.evaluator import Evaluator
from components.rl.dqn.learner import Learner
from pipelines.runner import check_finite
from pipelines.tracking import Tracker


class Wiring(Protocol):
    def poll(self, limiter: SamplesPerInsert) -> list[EpisodeStats]: ...
    def sample(self, count: int, beta: float) -> list[SampledBatch]: ...
    def update_priorities(self, idx: np.ndarray, priorities: np.ndarray) -> None: ...
    def publish(self, weights: np.ndarray) -> None: ...
    def idle(self) -> None: ...
    def replay_size(self) -> int: ...
    def stop(self) -> None: ...
    def save_replay(self, path: Path, compression: Compression) -> dict[str, Any]: ...
    def load_replay(self, path: Path) -> dict[str, Any]: ...
    def collector_env_steps(self) -> list[int]: ...
    def restore_collectors(self, env_steps: list[int]) -> None: ...
    def fault_counts(self) -> dict[str, float]: ...


class LocalWiring:
    """Everything in this process: collectors run in turn and add straight into the replay."""

    def __init__(self, cfg: DQNConfig, obs_shape: tuple[int, ...], obs_dtype: Any, n_actions: int) -> None:
        self.cfg = cfg
        torch.set_num_threads(1)  # collectors' batch-of-8 forwards are slower on more threads
        self.collectors = [
            Collector(cfg, i, obs_shape, n_actions) for i in range(cfg.collectors.num_collectors)
        ]
        self.replay = make_replay(
            cfg.replay, obs_shape, obs_dtype, seed=cfg.seed, frame_stack=cfg.atari.enabled
        )
        self.batch_size = cfg.learner.batch_size
        self.turn = 0

    def poll(self, limiter: SamplesPerInsert) -> list[EpisodeStats]:
        c = self.collectors[self.turn % len(self.collectors)]
        if not limiter.can_insert(self.cfg.collectors.steps_per_call * c.num_envs):
            return []
        self.turn += 1
        batch, stats = c.run(self.cfg.collectors.steps_per_call)
        self.replay.add(batch)
        return [stats]

    def sample(self, count: int, beta: float) -> list[SampledBatch]:
        return self.replay.sample_many(self.batch_size, count, beta)

    def update_priorities(self, idx: np.ndarray, priorities: np.ndarray) -> None:
        self.replay.update_priorities(idx, priorities)

    def publish(self, weights: np.ndarray) -> None:
        for c in self.collectors:
            c.set_weights(weights)

    def idle(self) -> None:
        pass

    def replay_size(self) -> int:
        return len(self.replay)

    def stop(self) -> None:
        pass

    def save_replay(self, path: Path, compression: Compression) -> dict[str, Any]:
        return write_replay(self.replay, path, compression)

    def load_replay(self, path: Path) -> dict[str, Any]:
        return read_replay(self.replay, path)

    def collector_env_steps(self) -> list[int]:
        return [c.env_steps for c in self.collectors]

    def restore_collectors(self, env_steps: list[int]) -> None:
        for c, n in zip(self.collectors, env_steps):
            c.env_steps = n  # the ε schedule's position

    def fault_counts(self) -> dict[str, float]:
        return {"collector_restarts": 0.0, "replay_restarts": 0.0, "replay_lost_transitions": 0.0}


@dataclass
class LoopState:
    """The loop's counters, as a checkpoint keeps them so that a resumed run continues them."""

    env_steps: int = 0
    episodes: int = 0
    inserts: int = 0  # the samples-per-insert limiter's counts
    samples: int = 0
    next_eval: int = 0
    best_eval: float = -math.inf
    wall_s: float = 0.0  # training time so far; max_time_s counts it across resumes
    collector_env_steps: list[int] = field(default_factory=list)


@dataclass
class LoopControl:
    """Resuming, checkpointing and stopping; the defaults run the plain loop."""

    start: LoopState | None = None
    checkpoint_every_s: float = 0.0  # 0 = the loop never checkpoints by itself
    checkpoint: Callable[[LoopState], None] | None = None
    stop_requested: Callable[[], bool] = lambda: False


@dataclass
class LoopResult:
    env_steps: int = 0
    episodes: int = 0
    learner_steps: int = 0
    wall_s: float = 0.0
    best_eval: float = -np.inf
    last_eval: float = float("nan")
    solved_at_s: float | None = None
    solved_at_env_steps: int | None = None
    train_return: float = float("nan")  # rolling-20 mean of the training episodes, at the end
    history: dict[str, list[tuple[int, float]]] = field(default_factory=dict)
    best_state: dict[str, torch.Tensor] | None = None
    interrupted: bool = False  # stopped by a stop request (a signal), not by a budget
    state: LoopState | None = None  # the counters at the end, for the exit checkpoint


def train_loop(
    cfg: DQNConfig,
    wiring: Wiring,
    learner: Learner,
    tracker: Tracker,
    progress: bool = True,
    t_start: float | None = None,
    control: LoopControl | None = None,
) -> LoopResult:
    r = cfg.replay
    ctl = control or LoopControl()
    limiter = SamplesPerInsert(r.samples_per_insert, r.min_size, r.spi_tolerance)
    evaluator = Evaluator(cfg)
    res = LoopResult()
    t0 = t_start if t_start is not None else time.time()
    next_eval = cfg.eval.every_env_steps
    if (st := ctl.start) is not None:
        res.env_steps, res.episodes, res.best_eval = st.env_steps, st.episodes, st.best_eval
        limiter.inserts, limiter.samples, next_eval = st.inserts, st.samples, st.next_eval
        t0 -= st.wall_s
        wiring.restore_collectors(st.collector_env_steps)

    def state() -> LoopState:
        return LoopState(
            res.env_steps,
            res.episodes,
            limiter.inserts,
            limiter.samples,
            next_eval,
            res.best_eval,
            time.time() - t0,
            wiring.collector_env_steps(),
        )

    recent = deque(maxlen=20)  # last 20 training episode returns (the "rolling-20 mean")
    overest: deque[tuple[float, float]] = deque(maxlen=100)
    epsilon: dict[int, float] = {}  # each collector's latest mean ε
    learner_metrics: list[dict[str, float]] = []
    next_log = time.time() + cfg.log_every_s
    every_ckpt = ctl.checkpoint_every_s if ctl.checkpoint is not None else 0.0
    next_ckpt = time.time() + every_ckpt if every_ckpt > 0 else math.inf
    last_log_t, last_log_steps, last_log_updates = time.time(), res.env_steps, learner.steps
    count = cfg.learner.batches_per_call
    bar = tqdm(
        total=cfg.max_env_steps,
        initial=res.env_steps,
        unit="step",
        disable=not progress,
        dynamic_ncols=True,
        mininterval=1.0,
    )
    wiring.publish(learner.get_weights())
    # A learner actor trains on batches it fetches itself; a learner here goes through the wiring.
    train_batches = getattr(learner, "train_batches", None) or partial(
        train_in_process, learner, wiring, cfg.learner.publish_every
    )
    try:
        while True:
            for stats in wiring.poll(limiter):
                limiter.inserts += stats.transitions
                res.env_steps += stats.env_steps
                res.episodes += len(stats.returns)
                recent.extend(stats.returns)
                overest.extend(zip(stats.q_start, stats.mc_return))
                epsilon[stats.collector] = stats.epsilon
                bar.update(stats.env_steps)
            did_learn = False
            if limiter.can_sample(count * cfg.learner.batch_size):
                beta = r.beta_start + min(1.0, learner.steps / r.beta_steps) * (1.0 - r.beta_start)
                trained = train_batches(count, beta)  # [] while a restarted replay refills
                limiter.samples += len(trained) * cfg.learner.batch_size
                learner_metrics.extend(trained)
                did_learn = bool(trained)
            if not did_learn:
                wiring.idle()
            now = time.time()
            if res.env_steps >= next_eval:
                next_eval += cfg.eval.every_env_steps
                res.last_eval = evaluator.run(learner.online, learner.device)
                res.history.setdefault("eval_return", []).append((res.env_steps, res.last_eval))
                tracker.log_metrics({"eval_return": res.last_eval, "wall_s": now - t0}, step=res.env_steps)
                if res.last_eval > res.best_eval:
                    res.best_eval = res.last_eval
                    res.best_state = {
                        k: v.detach().cpu().clone() for k, v in learner.online.state_dict().items()
                    }
                target = cfg.eval.stop_at_return
                if target is not None and res.last_eval >= target and res.solved_at_s is None:
                    res.solved_at_s, res.solved_at_env_steps = now - t0, res.env_steps
            if now >= next_log:
                m = _mean(learner_metrics)
                learner_metrics.clear()
                dt = now - last_log_t
                metrics = {
                    **m,
                    "train_return": float(np.mean(recent)) if recent else float("nan"),
                    "episodes": float(res.episodes),
                    "replay_size": float(wiring.replay_size()),
                    "env_steps_per_s": (res.env_steps - last_log_steps) / dt,
                    "updates_per_s": (learner.steps - last_log_updates) / dt,
                    "samples_per_insert": limiter.observed_ratio(),
                    "learner_steps": float(learner.steps),
                    **wiring.fault_counts(),
                }
                if epsilon:  # the collectors' mean exploration rate (all envs weigh alike)
                    metrics["epsilon"] = float(np.mean(list(epsilon.values())))
                if overest:
                    metrics["q_start"] = float(np.mean([q for q, _ in overest]))
                    metrics["mc_return"] = float(np.mean([g for _, g in overest]))
                    metrics["q_overestimation"] = metrics["q_start"] - metrics["mc_return"]
                tracker.log_metrics(metrics, step=res.env_steps)
                check_finite(metrics, res.env_steps)
                for k in ("train_return", "loss", "mean_q"):
                    if k in metrics:
                        res.history.setdefault(k, []).append((res.env_steps, metrics[k]))
                bar.set_postfix(
                    {
                        "ep": res.episodes,
                        "ret20": f"{metrics['train_return']:.0f}",
                        "eval": f"{res.last_eval:.0f}",
                        "sps": f"{metrics['env_steps_per_s']:.0f}",
                        "ups": f"{metrics['updates_per_s']:.0f}",
                    },
                    refresh=False,
                )
                last_log_t, last_log_steps, last_log_updates = now, res.env_steps, learner.steps
                next_log = now + cfg.log_every_s
            if ctl.stop_requested():
                res.interrupted = True
                break
            if (
                res.env_steps >= cfg.max_env_steps
                or now - t0 >= cfg.max_time_s
                or res.solved_at_s is not None
            ):
                break
            if now >= next_ckpt and ctl.checkpoint is not None:
                ctl.checkpoint(state())
                next_ckpt = time.time() + every_ckpt
    finally:
        bar.close()
        if drain := getattr(learner, "drain", None):  # a learner actor's queued calls
            drain()
        res.learner_steps, res.wall_s = learner.steps, time.time() - t0
        res.train_return = float(np.mean(recent)) if recent else float("nan")
    res.state = state()
    return res


def train_in_process(
    learner: Learner, wiring: Wiring, publish_every: int, count: int, beta: float
) -> list[dict[str, float]]:
    """Sample ``count`` batches, train on each, send the new priorities back; publish when due."""
    batches = wiring.sample(count, beta)
    idx, prio, metrics = [], [], []
    for batch in batches:
        p, m = learner.step(batch)
        idx.append(batch.slots)
        prio.append(p)
        metrics.append(m)
        if learner.steps % publish_every == 0:
            wiring.publish(learner.get_weights())
    if batches:
        wiring.update_priorities(np.concatenate(idx), np.concatenate(prio))
    return metrics


def _mean(rows: list[dict[str, float]]) -> dict[str, float]:
    if not rows:
        return {}
    return {k: float(np.mean([r[k] for r in rows])) for k in rows[0]}
