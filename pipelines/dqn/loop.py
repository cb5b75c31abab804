"""The DQN driver loop, the same for one process and for Ray: who runs next, what gets logged.

A *wiring* (``LocalWiring`` or ``RayWiring``) hides where collectors and the replay live, and the
learner (in this process, or in an actor) trains when asked. Each turn of the loop:

1. collects whatever the collectors have finished, if the samples-per-insert limiter lets them insert;
2. trains ``batches_per_call`` batches, if the limiter lets the learner sample (else waits briefly);
3. evaluates greedily every ``eval.every_env_steps`` env steps, keeping the best network;
4. logs the learner's curve (its means since the last point, the training return) every
   ``CURVE_EVERY_S`` seconds, or every 1/``CURVE_POINTS`` of the time so far once that is longer (a
   CartPole run gets ~100 points, an hour ~3,000), the rest every ``log_every_s`` seconds (the first
   time after ``FIRST_LOG_S``, so that a CartPole solved within 2 s draws every chart as a line, not a
   single point), and everything once more at the end for what the last log missed;
5. stops at a stop request (SIGINT/SIGTERM), or at the step, time or return budget (``max_time_s``
   counts the time in this loop over all sessions of a run, not Ray's and the actors' start-ups);
6. writes a checkpoint every ``checkpoint.every_s`` when the caller gave it a way to.

A :class:`~pipelines.dqn.state.LoopControl` brings what a long run needs: counters restored from a
checkpoint, the periodic checkpoint and the stop request.
"""

from __future__ import annotations

import math
import time

import numpy as np
from tqdm import tqdm

from components.replay.rate_limiter import SamplesPerInsert
from components.rl.dqn.config import DQNConfig
from components.rl.dqn.epsilon import apex_epsilons
from components.rl.dqn.evaluator import Evaluator
from pipelines.dqn.metrics import LoopMetrics, progress_postfix
from pipelines.dqn.state import LoopControl, LoopLearner, LoopResult, LoopState, Wiring
from pipelines.runner import check_finite
from pipelines.tracking import Tracker

CURVE_EVERY_S = 0.04  # the learner's curve: a point this often at first (≥ 50 in 2 s of learning) ...
CURVE_POINTS = 600  # ... then spaced so that the run so far holds about this many
FIRST_LOG_S = 0.5  # the first full log (rates, Q vs returns, replay) this soon, then every log_every_s


def train_loop(
    cfg: DQNConfig,
    wiring: Wiring,
    learner: LoopLearner,
    tracker: Tracker,
    progress: bool = True,
    t_start: float | None = None,
    control: LoopControl | None = None,
) -> LoopResult:
    """Run until a budget or a stop request; ``t_start`` is when the clock started (default: now)."""
    return _Loop(cfg, wiring, learner, tracker, progress, t_start, control or LoopControl()).run()


class _Loop:
    def __init__(
        self,
        cfg: DQNConfig,
        wiring: Wiring,
        learner: LoopLearner,
        tracker: Tracker,
        progress: bool,
        t_start: float | None,
        ctl: LoopControl,
    ) -> None:
        self.cfg, self.wiring, self.learner, self.tracker, self.ctl = cfg, wiring, learner, tracker, ctl
        r = cfg.replay
        self.limiter = SamplesPerInsert(r.samples_per_insert, r.min_size, r.spi_tolerance)
        self.evaluator = Evaluator(cfg)
        self.res = LoopResult()
        self.t0 = t_start if t_start is not None else time.time()
        self.trained_before = 0.0  # loop time of earlier sessions: max_time_s counts training, not start-ups
        self.loop_start = time.time()
        self.next_eval = cfg.eval.every_env_steps
        if (st := ctl.start) is not None:  # a resumed run continues its counters and its clock
            self.res.env_steps, self.res.episodes, self.res.best_eval = (
                st.env_steps,
                st.episodes,
                st.best_eval,
            )
            self.limiter.inserts, self.limiter.samples, self.next_eval = st.inserts, st.samples, st.next_eval
            self.t0 -= st.wall_s
            self.trained_before = st.wall_s if st.train_s is None else st.train_s
            wiring.restore_collectors(st.collector_env_steps)
            wiring.restore_fault_counts(st.faults)  # restarts go on counting from where they were
        self.metrics = LoopMetrics(self.res.env_steps, learner.steps, cfg.collectors.epsilon != "apex")
        self.next_log = time.time() + cfg.log_every_s
        self.next_curve = time.time() + min(CURVE_EVERY_S, cfg.log_every_s)
        self.faulted = False  # fault counters are logged from the first fault on
        self.every_ckpt = ctl.checkpoint_every_s if ctl.checkpoint is not None else 0.0
        self.next_ckpt = time.time() + self.every_ckpt if self.every_ckpt > 0 else math.inf
        self.bar = tqdm(
            total=cfg.max_env_steps,
            initial=self.res.env_steps,
            unit="step",
            disable=not progress,
            dynamic_ncols=True,
            mininterval=1.0,
        )

    def run(self) -> LoopResult:
        c = self.cfg.collectors
        if c.epsilon == "apex":  # fixed per env: the mean is a property of the run, not a curve
            eps = apex_epsilons(c.num_collectors * c.envs_per_collector, c.apex_base, c.apex_alpha)
            self.tracker.log_params({"collectors.mean_epsilon": round(float(np.mean(eps)), 6)})
        self.wiring.publish(self.learner.get_weights())
        self.loop_start = time.time()
        self.next_log = self.loop_start + min(FIRST_LOG_S, self.cfg.log_every_s)
        try:
            while True:
                self._collect()
                if not self._learn():
                    self.wiring.idle()
                now = time.time()
                if self.res.env_steps >= self.next_eval:
                    self._evaluate(now)
                if now >= self.next_log:
                    self._log(now)
                elif now >= self.next_curve:
                    self._curve(now)
                if self.ctl.stop_requested():
                    self.res.interrupted = True
                    break
                if self._budget_spent(now):
                    break
                if now >= self.next_ckpt and self.ctl.checkpoint is not None:
                    self.ctl.checkpoint(self.state())
                    self.next_ckpt = time.time() + self.every_ckpt
            if self.metrics.pending(self.res.env_steps):  # a run shorter than log_every_s logs too
                self._log(time.time())
        finally:
            self.bar.close()
            self.learner.drain()  # calls a learner actor still has queued
            self.res.learner_steps, self.res.wall_s = self.learner.steps, time.time() - self.t0
            self.res.train_return = self.metrics.train_return
        self.res.state = self.state()
        return self.res

    def state(self) -> LoopState:
        return LoopState(
            self.res.env_steps,
            self.res.episodes,
            self.limiter.inserts,
            self.limiter.samples,
            self.next_eval,
            self.res.best_eval,
            time.time() - self.t0,
            self.wiring.collector_env_steps(),
            self.trained_before + time.time() - self.loop_start,
            self.wiring.fault_counts(),
        )

    def _collect(self) -> None:
        for stats in self.wiring.poll(self.limiter):
            self.limiter.inserts += stats.transitions
            self.res.env_steps += stats.env_steps
            self.res.episodes += len(stats.returns)
            self.metrics.add_episodes(stats)
            self.bar.update(stats.env_steps)

    def _learn(self) -> bool:
        """One learner call if the limiter allows it; False if nothing was trained."""
        count, batch = self.cfg.learner.batches_per_call, self.cfg.learner.batch_size
        if not self.limiter.can_sample(count * batch):
            return False
        trained = self.learner.train(count, self.cfg.replay.beta(self.learner.steps))
        self.limiter.samples += len(trained) * batch  # [] while a restarted replay refills
        self.metrics.add_updates(trained)
        return bool(trained)

    def _wall(self, now: float) -> dict[str, float]:
        """``wall_s`` (seconds since the launch, for the curves against wall time) once per env step: an
        evaluation and a log at the same step share it (logged twice, a model chosen there lists it twice)."""
        res = self.res
        if res.history.get("wall_s") and res.history["wall_s"][-1][0] == res.env_steps:
            return {}
        res.history.setdefault("wall_s", []).append((res.env_steps, now - self.t0))
        return {"wall_s": now - self.t0}

    def _evaluate(self, now: float) -> None:
        res = self.res
        self.next_eval += self.cfg.eval.every_env_steps
        res.last_eval = self.evaluator.run(self.learner.online, self.learner.device)
        res.history.setdefault("eval_return", []).append((res.env_steps, res.last_eval))
        self.tracker.log_metrics({"eval_return": res.last_eval, **self._wall(now)}, step=res.env_steps)
        if res.last_eval > res.best_eval:
            res.best_eval = res.last_eval
            res.best_state = {
                k: v.detach().cpu().clone() for k, v in self.learner.online.state_dict().items()
            }
        target = self.cfg.eval.stop_at_return
        if target is not None and res.last_eval >= target and res.solved_at_s is None:
            res.solved_at_s, res.solved_at_env_steps = now - self.t0, res.env_steps

    def _next_curve(self, now: float) -> None:
        every = max(min(CURVE_EVERY_S, self.cfg.log_every_s), (now - self.loop_start) / CURVE_POINTS)
        self.next_curve = now + every

    def _curve(self, now: float) -> None:
        """A point of the learner's curve (cheap: no call to the actors)."""
        res = self.res
        metrics = self.metrics.curve(res.env_steps, res.episodes, self.learner.steps)
        if metrics:
            self.tracker.log_metrics(metrics, step=res.env_steps)
            check_finite(metrics, res.env_steps)
            for k in ("train_return", "train_return_100", "loss", "mean_q"):
                if k in metrics:
                    res.history.setdefault(k, []).append((res.env_steps, metrics[k]))
        self._next_curve(now)

    def _log(self, now: float) -> None:
        res = self.res
        faults = self.wiring.fault_counts()
        self.faulted = self.faulted or any(v > 0 for v in faults.values())
        extra = {
            "replay_size": float(self.wiring.replay_size()),
            "samples_per_insert": self.limiter.observed_ratio(),
            **(faults if self.faulted else {}),
        }
        metrics = self.metrics.collect(now, res.env_steps, res.episodes, self.learner.steps, extra)
        metrics |= self._wall(now)
        self.tracker.log_metrics(metrics, step=res.env_steps)
        check_finite(metrics, res.env_steps)
        for k in ("train_return", "train_return_100", "loss", "mean_q"):
            if k in metrics:
                res.history.setdefault(k, []).append((res.env_steps, metrics[k]))
        self.bar.set_postfix(
            progress_postfix(
                metrics | {"train_return": self.metrics.train_return}, res.episodes, res.last_eval
            ),
            refresh=False,
        )
        self.next_log = now + self.cfg.log_every_s
        self._next_curve(now)

    def _budget_spent(self, now: float) -> bool:
        return (
            self.res.env_steps >= self.cfg.max_env_steps
            or self.trained_before + now - self.loop_start >= self.cfg.max_time_s
            or self.res.solved_at_s is not None
        )
