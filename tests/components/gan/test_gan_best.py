"""The best generator a run keeps: the lowest eval_distance of every generator it scored, the same
number when its weights are scored again, and carried through a checkpoint."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import torch
from torch import nn

from components.config import build
from components.gan.best import BestGenerator
from components.gan.config import GanConfig
from components.gan.trainer import GanTrainer


def test_offer_keeps_the_lowest_the_earliest_on_ties_and_never_a_nan() -> None:
    with torch.device("cpu"):
        net = nn.Linear(2, 2)
    best = BestGenerator()
    assert best.state is None and best.value == math.inf
    assert best.offer(0.5, 10, "live", net)
    with torch.no_grad():
        net.weight.add_(1.0)
    assert not best.offer(0.5, 20, "average", net)  # a tie keeps the earlier
    assert not best.offer(float("nan"), 30, "live", net)
    assert not best.offer(0.7, 40, "live", net)
    assert (best.value, best.step, best.source) == (0.5, 10, "live")
    assert best.state is not None and not torch.equal(best.state["weight"], net.weight)  # a copy
    assert best.offer(0.25, 50, "average", net)
    assert (best.value, best.step, best.source) == (0.25, 50, "average")
    assert torch.equal(best.state["weight"], net.weight)


def make(**cfg: Any) -> GanTrainer:
    train = {"loss": "nonsaturating", "batch_size": 64, "threads": 1, "device": "cpu", **cfg.pop("train", {})}
    return GanTrainer(build(GanConfig, {"train": train, **cfg}))


def test_the_best_is_the_minimum_of_every_scored_generator_and_scores_the_same_again(tmp_path: Path) -> None:
    t = make(train={"steps": 60, "lr": 1e-3}, report_every=10, eval={"samples": 400})
    reports = [t.run_chunk() for _ in range(6)]
    scored = [(r["eval_distance"], 10 * (i + 1)) for i, r in enumerate(reports)]
    scored += [(r["raw_eval_distance"], 10 * (i + 1)) for i, r in enumerate(reports)]
    lowest = min(v for v, _ in scored)
    assert t.best is not None and t.best.value == lowest == reports[-1]["best_eval_distance"]
    assert t.best.step in {s for v, s in scored if v == lowest}
    assert [r["best_eval_distance"] for r in reports] == [
        min(v for v, s in scored if s <= 10 * (i + 1)) for i in range(6)
    ]
    # Scored again from its weights, on the same latents, the best generator gives the same number.
    best = t.best_generator()
    assert best is not None
    assert t.evaluate(best)["eval_distance"] == t.best.value
    # ... and so does the file a run logs, loaded into a fresh generator.
    names = {p.name for p in t.write_artifacts(tmp_path, final=True)}
    assert {"best_generator.pt", "best_generator.json"} <= names
    info = json.loads((tmp_path / "best_generator.json").read_text())
    assert info == {"eval_distance": t.best.value, "step": t.best.step, "source": t.best.source}
    fresh = make(train={"steps": 60, "lr": 1e-3}, report_every=10, eval={"samples": 400})
    fresh.generator.load_state_dict(torch.load(tmp_path / "best_generator.pt", weights_only=True))
    assert fresh.evaluate(fresh.generator)["eval_distance"] == info["eval_distance"]
    assert set(t.models()) == {"generator", "best_generator"}


def test_a_resumed_run_keeps_its_best_generator() -> None:
    spec = {"train": {"steps": 20}, "report_every": 10, "eval": {"samples": 100}}
    first = make(**spec)
    first.run_chunk()
    state = first.state_dict()
    assert first.best is not None and state["best"]["value"] == first.best.value
    resumed = make(**spec)
    resumed.load_state_dict(torch.load(_roundtrip(state), weights_only=True))
    assert resumed.best is not None
    assert (resumed.best.value, resumed.best.step, resumed.best.source) == (
        first.best.value,
        first.best.step,
        first.best.source,
    )
    assert resumed.best.state is not None and first.best.state is not None
    for k, v in first.best.state.items():
        assert torch.equal(resumed.best.state[k], v)
    m = resumed.run_chunk()
    assert m["best_eval_distance"] == min(first.best.value, m["eval_distance"], m["raw_eval_distance"])


def _roundtrip(state: dict[str, Any]) -> Any:
    import io

    buf = io.BytesIO()
    torch.save(state, buf)
    buf.seek(0)
    return buf
