"""The DQN driver loop, the same for one process and for Ray: who runs next, what gets logged.

A *wiring* (``LocalWiring`` or ``RayWiring``) hides where collectors and the replay live, and the
learner (in this process, or in an actor) trains when asked. Each turn of the loop:

1. collects whatever the collectors have finished, if the samples-per-insert limiter lets them insert;
2. trains ``batches_per_call`` batches, if the limiter lets the learner sample (else waits briefly);
3. evaluates greedily every ``eval.every_env_steps`` env steps, keeping the best network;
4. logs every ``log_every_s`` seconds, and once more at the end for what the last log missed;
5. stops at a stop request (SIGINT/SIGTERM), or at the step, time or return budget (``max_time_s``
   counts the time in this loop over all sessions of a run, not Ray's and the actors' start-ups);
6. writes a checkpoint every ``checkpoint.every_s`` when the caller gave it a way to.

A :class:`~pipelines.dqn_state.LoopControl` brings what a long run needs: counters restored from a
checkpoint, the periodic checkpoint and the stop request.
"""

from __future__ import annotations

import math
import time

from tqdm import tqdm

from components.replay.rate_limiter import SamplesPerInsert
from components.rl.dqn.config import DQNConfig
from components.rl.dqn.evaluator import Evaluator
from pipelines.dqn_metrics import LoopMetrics, progress_postfix
from pipelines.dqn_state import LoopControl, LoopLearner, LoopResult, LoopState, Wiring
from pipelines.runner import check_finite
from pipelines.tracking import Tracker


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
        self.metrics = LoopMetrics(self.res.env_steps, learner.steps)
        self.next_log = time.time() + cfg.log_every_s
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
        self.wiring.publish(self.learner.get_weights())
        self.loop_start = time.time()
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

    def _evaluate(self, now: float) -> None:
        res = self.res
        self.next_eval += self.cfg.eval.every_env_steps
        res.last_eval = self.evaluator.run(self.learner.online, self.learner.device)
        res.history.setdefault("eval_return", []).append((res.env_steps, res.last_eval))
        res.history.setdefault("wall_s", []).append((res.env_steps, now - self.t0))
        self.tracker.log_metrics({"eval_return": res.last_eval, "wall_s": now - self.t0}, step=res.env_steps)
        if res.last_eval > res.best_eval:
            res.best_eval = res.last_eval
            res.best_state = {
                k: v.detach().cpu().clone() for k, v in self.learner.online.state_dict().items()
            }
        target = self.cfg.eval.stop_at_return
        if target is not None and res.last_eval >= target and res.solved_at_s is None:
            res.solved_at_s, res.solved_at_env_steps = now - self.t0, res.env_steps

    def _log(self, now: float) -> None:
        res = self.res
        extra = {
            "replay_size": float(self.wiring.replay_size()),
            "samples_per_insert": self.limiter.observed_ratio(),
            **self.wiring.fault_counts(),
        }
        metrics = self.metrics.collect(now, res.env_steps, res.episodes, self.learner.steps, extra)
        metrics["wall_s"] = now - self.t0  # the learning curves against wall seconds
        self.tracker.log_metrics(metrics, step=res.env_steps)
        check_finite(metrics, res.env_steps)
        for k in ("train_return", "train_return_100", "loss", "mean_q", "wall_s"):
            if k in metrics:
                res.history.setdefault(k, []).append((res.env_steps, metrics[k]))
        self.bar.set_postfix(progress_postfix(metrics, res.episodes, res.last_eval), refresh=False)
        self.next_log = now + self.cfg.log_every_s

    def _budget_spent(self, now: float) -> bool:
        return (
            self.res.env_steps >= self.cfg.max_env_steps
            or self.trained_before + now - self.loop_start >= self.cfg.max_time_s
            or self.res.solved_at_s is not None
        )
