"""The DQN config: one dataclass per part, values in configs/dqn/*.yaml."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar, Literal

from components.config import ConfigError, param, section
from components.device_names import DeviceFields
from components.replay.buffer import ReplayConfig
from components.rl.envs import EnvConfig
from components.rl.schedules import ScheduleConfig, check_schedule


def _cartpole() -> EnvConfig:
    return EnvConfig(id="CartPole-v1")


def _eps() -> ScheduleConfig:
    return ScheduleConfig(start=1.0, end=0.02, steps=10_000, kind="linear")


@dataclass(frozen=True)
class AtariConfig:
    """Standard ALE preprocessing (Machado et al. 2018 style), applied when ``enabled``."""

    enabled: bool = param(False, "preprocess the ALE game's frames and stack them")
    backend: Literal["gymnasium", "ale_vector"] = param(
        "gymnasium",
        "gymnasium: AtariPreprocessing + FrameStackObservation (needs opencv); ale_vector: ale-py's "
        "AtariVectorEnv, the same frames from C++ (no opencv; ALE/<Game>-v5 ids only)",
    )
    frame_skip: int = param(4, "agent steps repeat the action this many frames", ge=1)
    screen_size: int = param(84, "frames are resized to screen_size × screen_size grayscale", ge=16)
    stack: int = param(4, "frames stacked into one observation", ge=1)
    noop_max: int = param(30, "random no-ops at reset", ge=0)
    terminal_on_life_loss: bool = param(False, "end the episode at a life loss (episodic life)")


@dataclass(frozen=True)
class NetworkConfig:
    """The Q-network."""

    kind: Literal["mlp", "cnn"] = param("mlp", "mlp for vector observations, cnn for frames [C, H, W]")
    hidden: list[int] = param(factory=lambda: [256], doc="MLP hidden layer widths")
    head_hidden: int = param(256, "width of the Q (or value/advantage) head", ge=1)
    dueling: bool = param(True, "dueling head V(s) + A(s,a) − mean A")
    batch_norm: bool = param(False, "CNN: batch norm after each conv (folded away in collectors)")
    convs: list[list[int]] = param(
        factory=lambda: [[32, 8, 4], [64, 4, 2], [64, 3, 1]],
        doc="CNN conv layers as [out_channels, kernel, stride] (default: the Nature DQN's, for 84×84)",
    )


@dataclass(frozen=True)
class CollectorConfig:
    """Collectors: vector envs stepping with an ε-greedy copy of the Q-network."""

    num_collectors: int = param(2, "collector actors (processes under Ray)", ge=1)
    envs_per_collector: int = param(8, "env copies in each collector's vector env", ge=1)
    steps_per_call: int = param(32, "vector steps per collector call (transitions = this × envs)", ge=1)
    epsilon: Literal["apex", "schedule"] = param("apex", "Ape-X fixed per-env ε, or one decaying schedule")
    apex_base: float = param(0.4, "Ape-X ε base", gt=0.0, le=1.0)
    apex_alpha: float = param(7.0, "Ape-X ε exponent spread", ge=0.0)
    schedule: ScheduleConfig = param(factory=_eps, doc="ε over env steps when epsilon: schedule")
    max_in_flight: int = param(2, "replay adds a collector may have outstanding (pipelining)", ge=1)
    inference: Literal["local", "gpu"] = param(
        "local", "local: each collector runs Q itself on its CPU; gpu: one inference actor batches all (Ray)"
    )
    inference_gpus: float = param(
        0.25, "GPU share of the inference actor (inference: gpu); 0 runs it on a CPU (tests)", ge=0.0
    )
    inference_wait_ms: float = param(
        1.0, "how long the inference actor waits to batch requests from more collectors", ge=0.0
    )


@dataclass(frozen=True)
class LearnerConfig(DeviceFields):
    """The learner: Double-DQN loss against a target network."""

    section_key: ClassVar[str] = "learner"
    RENAMED: ClassVar[dict[str, str]] = {"num_threads": "threads"}  # refused with the new name

    lr: float = param(1e-3, "Adam learning rate", gt=0.0)
    batch_size: int = param(64, "transitions per update", ge=1)
    gamma: float = param(0.99, "discount", ge=0.0, lt=1.0)
    n_step: int = param(3, "n-step returns", ge=1, le=20)
    double: bool = param(True, "Double DQN target (else max over the target network)")
    huber_delta: float = param(1.0, "Huber loss threshold", gt=0.0)
    grad_clip: float = param(10.0, "max global gradient norm (0 = no clipping)", ge=0.0)
    target_update: Literal["hard", "soft"] = param(
        "hard", "hard copy every target_every steps, or Polyak tau"
    )
    target_every: int = param(500, "learner steps between hard target copies", ge=1)
    tau: float = param(0.005, "Polyak factor per step for soft updates", gt=0.0, le=1.0)
    publish_every: int = param(50, "learner steps between weight broadcasts to collectors", ge=1)
    batches_per_call: int = param(8, "batches fetched per replay call (amortises the actor round trip)", ge=1)
    placement: Literal["auto", "driver", "actor"] = param(
        "auto", "where the learner runs on Ray: auto = in an actor when device is cuda, else in the driver"
    )
    num_gpus: float = param(1.0, "GPU share the learner actor asks Ray for when device is cuda", gt=0.0)
    cuda_graph: Literal["auto"] | bool = param(
        "auto", "replay each update as one CUDA graph: auto = on CUDA, eager on the CPU (true there: error)"
    )


@dataclass(frozen=True)
class EvalConfig:
    """Greedy (ε = 0, or a small ``epsilon``) evaluation on separate envs at a fixed cadence."""

    every_env_steps: int = param(5_000, "env steps between evaluations", ge=1)
    episodes: int = param(5, "greedy episodes per evaluation (run as one vector env)", ge=1)
    epsilon: float = param(
        0.0, "ε of the evaluation policy (0: greedy; MinAtar's papers evaluate at 0.01)", ge=0.0, le=1.0
    )
    stop_at_return: float | None = param(None, "stop once the mean evaluation return reaches this")


@dataclass(frozen=True)
class CheckpointConfig:
    """Checkpoints (learner, replay, counters) that ``--resume RUN_ID`` continues from."""

    every_s: float = param(
        300.0, "seconds between checkpoints; one is always written at exit (0 = exit only)", ge=0.0
    )
    dir: str = param(
        ".adl/runs",
        "checkpoints go to <dir>/<run_id>/checkpoint/ (relative: to the working dir; under adl submit, "
        "to the home folder of the job's host, since Ray deletes the job's working dir)",
    )
    replay: bool = param(True, "include the replay contents (Arrow IPC); else a resume starts with it empty")
    compression: Literal["none", "lz4", "zstd"] = param(
        "none", "Arrow IPC compression of the replay snapshot"
    )
    upload: Literal["all", "learner", "none"] = param(
        "all",
        "copy each checkpoint to the run's artifacts as it is written (every every_s, and at exit), so "
        "--resume works from any machine that reaches the tracking server, also after the run's host "
        "died: all, learner (no replay), none",
    )


@dataclass(frozen=True)
class DQNConfig:
    """Ape-X style DQN: collectors → shared replay → learner, locally or on Ray."""

    seed: int = param(0, "seed for envs, networks and sampling", ge=0)
    env: EnvConfig = param(factory=_cartpole, doc="the gymnasium environment")
    atari: AtariConfig = section(AtariConfig)
    network: NetworkConfig = section(NetworkConfig)
    replay: ReplayConfig = section(ReplayConfig)
    collectors: CollectorConfig = section(CollectorConfig)
    learner: LearnerConfig = section(LearnerConfig)
    eval: EvalConfig = section(EvalConfig)
    checkpoint: CheckpointConfig = section(CheckpointConfig)
    max_env_steps: int = param(200_000, "stop after this many env steps", ge=1)
    max_time_s: float = param(
        600.0, "stop after this many seconds of training (.inf: no limit)", gt=0.0, allow_inf=True
    )
    log_every_s: float = param(2.0, "seconds between metric logs and progress updates", gt=0.0)
    local: bool = param(False, "run every part in this process, without Ray (debugging, tests)")
    num_cpus: int | None = param(None, "CPUs for a local Ray (default: all)", ge=1)
    address: str | None = param(None, "Ray cluster to join (default: $RAY_ADDRESS, else a local Ray)")

    def learner_in_actor(self) -> bool:
        """On Ray, does the learner run in its own actor (with its GPU share) rather than the driver?"""
        placement = self.learner.placement
        return not self.local and (placement == "actor" or (placement == "auto" and self.learner_on_cuda()))

    def learner_on_cuda(self) -> bool:
        """Whether ``learner.device`` names a GPU (``cuda`` or ``cuda:N``; ``auto`` is decided later)."""
        return self.learner.device.startswith("cuda")

    def learner_gpus(self) -> float:
        """The GPU share the learner actor asks Ray for (0 for a CPU learner)."""
        return self.learner.num_gpus if self.learner_on_cuda() else 0.0

    def inference_gpus(self) -> float:
        """The GPU share of the collectors' inference actor (0: none, or it runs on a CPU)."""
        return self.collectors.inference_gpus if self.collectors.inference == "gpu" else 0.0

    def validate(self) -> None:
        check_schedule(self.collectors.schedule, "collectors.schedule")
        self._validate_learner_device()
        for i, conv in enumerate(self.network.convs):
            if len(conv) != 3 or min(conv) < 1:
                raise ConfigError(
                    f"network.convs[{i}]: {conv} is not a conv layer; allowed: [out_channels, kernel, "
                    f"stride], each >= 1"
                )
        if self.local and self.learner.placement == "actor":
            raise ConfigError(
                "learner.placement: actor needs Ray, but local is true; allowed with local: auto, driver"
            )
        self._validate_learner_options()
        self._validate_inference()
        if self.learner.batch_size > self.replay.capacity:
            raise ConfigError(
                f"learner.batch_size: {self.learner.batch_size} is larger than replay.capacity "
                f"{self.replay.capacity}; allowed: <= replay.capacity"
            )
        if self.replay.min_size > self.replay.capacity:
            raise ConfigError(
                f"replay.min_size: {self.replay.min_size} exceeds replay.capacity {self.replay.capacity}"
            )
        if self.replay.min_size < self.learner.batch_size:
            raise ConfigError(
                f"replay.min_size: {self.replay.min_size} is below learner.batch_size "
                f"{self.learner.batch_size}; allowed: >= learner.batch_size"
            )

    def _validate_learner_device(self) -> None:
        """``cuda:N`` picks a GPU by index where the learner runs in this process. In a Ray actor Ray picks
        the GPU and the actor sees only that one, as ``cuda:0``: any other index could never exist there."""
        name = self.learner.device  # a device name (checked by the section itself)
        if self.learner_in_actor() and name.startswith("cuda:") and name != "cuda:0":
            raise ConfigError(
                f"learner.device: {name} picks a GPU by index, but the learner runs in a Ray actor "
                f"(learner.placement: {self.learner.placement}), which sees only the GPU Ray gives it, as "
                f"cuda:0; allowed there: cuda or cuda:0, or learner.placement: driver (or local: true) to "
                f"pick a GPU of this machine by index"
            )

    def _validate_learner_options(self) -> None:
        """GPU-only learner options on a learner that is certainly on the CPU (``learner.device: cpu``, or
        an actor Ray gives no GPU). ``learner.device: auto`` in the driver is checked where it resolves
        (``components/rl/dqn/learner.learner_placement``)."""
        lc = self.learner
        if lc.device == "cpu":
            where, graph_ok, bf16_ok = (
                "learner.device is cpu",
                "allowed with learner.device: cpu: auto (eager updates there) or false",
                "allowed with learner.device: cpu: fp32",
            )
        elif lc.device == "auto" and self.learner_in_actor():
            where = "learner.device is auto with learner.placement: actor, and Ray gives that actor no GPU"
            graph_ok = "allowed: learner.device: cuda, or learner.cuda_graph: auto or false"
            bf16_ok = "allowed: learner.device: cuda, or learner.precision: fp32"
        else:
            return
        if lc.cuda_graph is True:
            raise ConfigError(f"learner.cuda_graph: true needs a CUDA learner, but {where}; {graph_ok}")
        if lc.precision == "bf16":
            raise ConfigError(f"learner.precision: bf16 needs a CUDA learner, but {where}; {bf16_ok}")

    def _validate_inference(self) -> None:
        """The collectors' inference actor is a Ray actor."""
        if self.local and self.collectors.inference == "gpu":
            raise ConfigError(
                "collectors.inference: gpu needs Ray (an inference actor), but local is true; allowed "
                "with local: local"
            )
