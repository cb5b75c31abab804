"""How a family's metrics are named in MLflow: grouped by what they measure, one-offs logged once.

Trainers, the DQN loop and Tune trials report plain names (``eval_return``, ``loss``; a sweep's
``metric:`` and Tune's schedulers use those). What goes to MLflow is grouped by a prefix, which
the MLflow UI turns into one section of charts each:

=========  ======================================================================
train/     what the training data says: training returns, episodes, ε, α
eval/      held-out or greedy evaluation: returns, distances, bits per character
learner/   the DQN learner: loss, Q values, |TD error|, gradient norm, updates
replay/    the shared replay: size, samples per insert, restarts, lost transitions
collect/   the collectors: exploration, restarts
perf/      speed and wall clock: env steps/s, updates/s, tokens/s, wall seconds
gan/       the GAN game: losses, Wasserstein estimate, gradient penalty, D(x)
seq/       sequence-model specifics
resume/    where a resumed run picked up (one point per resume)
checkpoint/  checkpoint writes that failed (the run trains on; the last good checkpoint stays)
final/     one-off results, logged once at the end (best, solved at, time to target)
hparams/   a PBT trial's searched values, each time it (re)starts: the schedule PBT made
=========  ======================================================================

A name no table lists goes under the family's own prefix (one that has a ``group/`` already keeps
it). One-off results are kept until the run ends and logged once, so the UI shows a value, not a
flat line; properties of the run (a model's parameter count, a resolved target) become params.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from components.data_card import DataCard
from pipelines.tracking.tracker import Tracker

FINAL = "final/"


@dataclass(frozen=True)
class MetricNames:
    """One family's table: raw name → MLflow name, which raw names are one-offs or params, and
    what the step axis counts (said in the run's description)."""

    family: str
    step: str  # what "step" means on this family's charts, e.g. "env steps"
    groups: Mapping[str, str] = field(default_factory=dict)
    once: frozenset[str] = frozenset()
    params: Mapping[str, str] = field(default_factory=dict)

    def name(self, raw: str) -> str:
        if "/" in raw:  # already grouped by its caller (e.g. hparams/ from a PBT trial)
            return raw
        if raw in self.once:
            return FINAL + raw
        return self.groups.get(raw) or f"{self.family}/{raw}"


class NamedTracker:
    """A :class:`Tracker` that logs ``names``' MLflow names; one-offs wait for :meth:`finish`.

    ``lead`` (a raw name) is logged before the others: MLflow lists a run's metrics in the order they
    first appeared, and its comparison view (parallel coordinates) starts with the first one, so the
    metric a sweep ranks by is what a comparison shows. Everything but ``log_metrics`` passes straight
    through, so it stands wherever a tracker does.
    """

    def __init__(self, tracker: Tracker, names: MetricNames, lead: str | None = None) -> None:
        self.tracker, self.names, self.lead = tracker, names, lead
        self.pending: dict[str, float] = {}  # one-offs: the latest value of each
        self.logged_params: set[str] = set()
        self.last_step = 0

    @property
    def run_id(self) -> str | None:
        return self.tracker.run_id

    def log_metrics(self, metrics: Mapping[str, float], step: int) -> None:
        series, params = {}, {}
        if self.lead in metrics:
            metrics = {self.lead: metrics[self.lead], **metrics}
        for raw, value in metrics.items():
            if raw in self.names.params:
                if raw not in self.logged_params:  # a count reads as one: 18720, not 18720.0
                    params[self.names.params[raw]] = int(value) if float(value).is_integer() else value
                    self.logged_params.add(raw)
            elif raw in self.names.once:
                self.pending[raw] = float(value)
            else:
                series[self.names.name(raw)] = value
        if params:
            self.tracker.log_params(params)
        if series:
            self.tracker.log_metrics(series, step)
        self.last_step = max(self.last_step, int(step))

    def flush(self) -> None:
        """Log the one-offs (each once, at the last step seen)."""
        if self.pending:
            self.tracker.log_metrics({FINAL + k: v for k, v in self.pending.items()}, self.last_step)
            self.pending = {}

    def finish(self, status: str = "FINISHED") -> None:
        self.flush()
        self.tracker.finish(status)

    def log_params(self, params: Mapping[str, Any]) -> None:
        self.tracker.log_params(params)

    def log_artifact(self, path: str | Path, artifact_path: str | None = None) -> None:
        self.tracker.log_artifact(path, artifact_path)

    def log_text(self, text: str, name: str) -> None:
        self.tracker.log_text(text, name)

    def set_tags(self, tags: Mapping[str, str]) -> None:
        self.tracker.set_tags(tags)

    def log_datasets(self, cards: Sequence[DataCard]) -> None:
        self.tracker.log_datasets(cards)

    def __getattr__(self, name: str) -> Any:  # the rest of an MlflowTracker (log_model, client ...)
        return getattr(self.tracker, name)


DQN = MetricNames(
    "dqn",
    "env steps",
    groups={
        "eval_return": "eval/return",
        "train_return": "train/return",
        "train_return_100": "train/return_100",  # the last 100 training episodes (MinAtar's measure)
        "episodes": "train/episodes",
        "q_start": "train/q_start",
        "mc_return": "train/mc_return",
        "q_overestimation": "train/q_overestimation",
        "loss": "learner/loss",
        "mean_q": "learner/mean_q",
        "mean_abs_td": "learner/mean_abs_td",
        "grad_norm": "learner/grad_norm",
        "learner_steps": "learner/steps",
        "replay_size": "replay/size",
        "samples_per_insert": "replay/samples_per_insert",
        "replay_restarts": "replay/restarts",
        "replay_lost_transitions": "replay/lost_transitions",
        "epsilon": "collect/epsilon",
        "collector_restarts": "collect/restarts",
        "env_steps_per_s": "perf/env_steps_per_s",
        "updates_per_s": "perf/updates_per_s",
        "wall_s": "perf/wall_s",
        "checkpoint_failures": "checkpoint/failures",  # writes that failed (the last good one stays)
        "checkpoint_upload_failures": "checkpoint/upload_failures",  # copies to the artifact store
        "resumed_replay_size": "resume/replay_size",  # one point per resume, at the step it resumed
        "resumed_learner_steps": "resume/learner_steps",
    },
    once=frozenset(
        {
            "best_eval_return",
            "solved_at_s",
            "solved_at_env_steps",
            "final_env_steps",
            "final_learner_steps",
            "wall_s_total",
        }
    ),
)

QLEARN = MetricNames(
    "qlearn",
    "episodes",
    groups={
        "train_return": "train/return",
        "epsilon": "train/epsilon",
        "alpha": "train/alpha",
        "env_steps": "train/env_steps",
        "eval_return": "eval/return",
        "success_rate": "eval/success_rate",
        "max_abs_q_error": "eval/max_abs_q_error",
        "wall_s": "perf/wall_s",
    },
)

GAN = MetricNames(
    "gan",
    "generator steps",
    groups={
        "eval_distance": "eval/distance",
        "energy_distance": "eval/energy_distance",
        "frechet_distance": "eval/frechet_distance",
        "modes_covered": "eval/modes_covered",
        "hq_fraction": "eval/hq_fraction",
        "class_coverage": "eval/class_coverage",
        "gen_steps_per_s": "perf/gen_steps_per_s",
        "wall_s": "perf/wall_s",
    },
)

SEQ = MetricNames(
    "seq",
    "optimizer steps",
    groups={
        "val_loss": "eval/loss",
        "val_bpc": "eval/bpc",
        "val_perplexity": "eval/perplexity",
        "val_accuracy": "eval/accuracy",
        "val_mse": "eval/mse",
        "trivial_mse": "eval/trivial_mse",
        "train_loss": "train/loss",
        "train_bpc": "train/bpc",
        "tokens_per_s": "perf/tokens_per_s",
        "wall_s": "perf/wall_s",
    },
    once=frozenset({"time_to_target_s", "steps_to_target"}),
    params={"params": "seq.param_count", "target": "seq.target"},
)
