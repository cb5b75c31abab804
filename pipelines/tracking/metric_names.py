"""How a family's metrics are named in MLflow: grouped by what they measure, in the order a reader wants them.

Trainers, the DQN loop and Tune trials report plain names (``eval_return``, ``loss``; a sweep's
``metric:`` and Tune's schedulers use those). What goes to MLflow is grouped by a prefix, which
the MLflow UI turns into one section of charts each. The UI orders the sections alphabetically
(MLflow 3.17: ``RunsChartsCardConfig.getBaseChartAndSectionConfigs`` sorts them), so the names are
chosen for that order: ``eval/`` first, then the training side, nothing in between that a healthy run
does not need:

=========  ======================================================================
eval/      held-out or greedy evaluation: returns, distances, held-out loss
faults/    DQN: restarts, lost transitions, failed checkpoints (only once one happened)
gan/       the GAN game: losses, Wasserstein estimate, gradient penalty, D(x)
hparams/   a PBT trial's searched values, each time it (re)starts: the schedule PBT made
learner/   the DQN learner: loss, Q values, |TD error|, gradient norm, updates and their rate
replay/    the shared replay: size, samples per insert
resume/    where a resumed run picked up (one point per resume)
train/     the training side: returns, loss, ε, α, its speed (env steps/s, tokens/s), wall seconds
perf/      GAN: generator steps/s, wall seconds
=========  ======================================================================

A name no table lists goes under the family's own prefix (one that has a ``group/`` already keeps
it). What would be a flat line or a single point is not a chart: properties of the run (a model's
parameter count, a resolved target, the collectors' fixed ε) are params; one-off results (solved
at, time to target, final counts) are the run's tags ``adl.result.<name>`` and its description's
result line. A series that repeats another (a char LM's bpc is its loss, in bits) is logged once.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from components.data_card import DataCard
from pipelines.tracking.tracker import Tracker

RESULT_TAG = "adl.result."  # one-off results: the run's tags, not single-point charts


@dataclass(frozen=True)
class MetricNames:
    """One family's table: raw name → MLflow name, which raw names are one-offs, params or repeats
    of another series, and what the step axis counts (said in the run's description)."""

    family: str
    step: str  # what "step" means on this family's charts, e.g. "env steps"
    groups: Mapping[str, str] = field(default_factory=dict)
    once: frozenset[str] = frozenset()
    params: Mapping[str, str] = field(default_factory=dict)
    repeats: frozenset[str] = frozenset()  # the same series as another name: not logged again

    def name(self, raw: str) -> str:
        if "/" in raw:  # already grouped by its caller (e.g. hparams/ from a PBT trial)
            return raw
        return self.groups.get(raw) or f"{self.family}/{raw}"


class NamedTracker:
    """A :class:`Tracker` that logs ``names``' MLflow names; one-offs wait for :meth:`finish` and
    become tags, constants become params, repeats are dropped.

    ``lead`` (a raw name) is logged before the others: MLflow lists a run's metrics in the order they
    first appeared, and its comparison view (parallel coordinates) starts with the first one, so the
    metric a sweep ranks by is what a comparison shows. Everything but ``log_metrics`` passes straight
    through, so it stands wherever a tracker does.
    """

    def __init__(self, tracker: Tracker, names: MetricNames, lead: str | None = None) -> None:
        self.tracker, self.names, self.lead = tracker, names, lead
        self.pending: dict[str, float] = {}  # one-offs: the latest value of each
        self.logged_params: set[str] = set()

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
            elif raw not in self.names.repeats:
                series[self.names.name(raw)] = value
        if params:
            self.tracker.log_params(params)
        if series:
            self.tracker.log_metrics(series, step)

    def log_results(self) -> None:
        """The one-offs, as the run's tags ``adl.result.<name>`` (a resume's replace the earlier ones)."""
        if self.pending:
            self.tracker.set_tags({RESULT_TAG + k: result_text(v) for k, v in self.pending.items()})
            self.pending = {}

    def finish(self, status: str = "FINISHED") -> None:
        self.log_results()
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


def result_text(value: float) -> str:
    """A one-off as a tag: a count as ``18720``, a measurement to 6 significant digits."""
    return str(int(value)) if float(value).is_integer() and abs(value) < 2**53 else f"{value:.6g}"


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
        "env_steps_per_s": "train/env_steps_per_s",
        "epsilon": "train/epsilon",  # only with collectors.epsilon: schedule (Ape-X's ε is fixed)
        "wall_s": "train/wall_s",
        "loss": "learner/loss",
        "mean_q": "learner/mean_q",
        "mean_abs_td": "learner/mean_abs_td",
        "grad_norm": "learner/grad_norm",
        "learner_steps": "learner/steps",
        "updates_per_s": "learner/updates_per_s",
        "replay_size": "replay/size",
        "samples_per_insert": "replay/samples_per_insert",
        # Faults, logged from the first one on (a healthy run has no faults/ section).
        "replay_restarts": "faults/replay_restarts",
        "replay_lost_transitions": "faults/replay_lost_transitions",
        "collector_restarts": "faults/collector_restarts",
        "checkpoint_failures": "faults/checkpoint_failures",  # writes that failed (the last good one stays)
        "checkpoint_upload_failures": "faults/checkpoint_upload_failures",  # copies to the artifact store
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
        "wall_s": "train/wall_s",
        "eval_return": "eval/return",
        "success_rate": "eval/success_rate",
        "max_abs_q_error": "eval/max_abs_q_error",
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
        "class_accuracy": "eval/class_accuracy",
        "gen_steps_per_s": "perf/gen_steps_per_s",
        "wall_s": "perf/wall_s",
    },
)

# One unit per quantity: a char LM's loss is in bits per character for training and evaluation alike
# (its bpc is the same series, not logged twice); a regressor's loss is its MSE.
SEQ = MetricNames(
    "seq",
    "optimizer steps",
    groups={
        "val_loss": "eval/loss",
        "val_perplexity": "eval/perplexity",
        "val_accuracy": "eval/accuracy",
        "train_loss": "train/loss",
        "tokens_per_s": "train/tokens_per_s",
        "wall_s": "train/wall_s",
    },
    once=frozenset({"time_to_target_s", "steps_to_target"}),
    params={
        "params": "seq.param_count",
        "target": "seq.target",
        "source_bpc": "seq.source_bpc",  # the true source's held-out bpc (synthetic text): the floor
        "trivial_mse": "seq.trivial_mse",  # the best constant predictor's held-out MSE
    },
    repeats=frozenset({"val_bpc", "train_bpc", "val_mse"}),
)
