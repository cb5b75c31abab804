"""The YAML search space as PBT explores it: what it may change, and every value kept inside it."""

from __future__ import annotations

import pytest
from ray import tune

from pipelines.distributed.search_space import clamp_to_space, pbt_mutations

SPACE = {
    "alpha.start": {"choice": [0.05, 0.3, 0.9]},
    "train.lr": {"loguniform": [1e-4, 1e-2]},
    "dropout": {"uniform": [0.0, 0.3]},
    "layers": {"randint": [1, 4]},
    "seed": {"grid": [0, 1]},
    "gamma": 0.99,
}


def test_pbt_steps_through_choices_as_a_list_and_ranges_as_domains():
    m = pbt_mutations(SPACE)
    assert set(m) == {"alpha.start", "train.lr", "dropout", "layers"}  # grid and fixed keys stay
    assert m["alpha.start"] == [0.05, 0.3, 0.9]  # PBT moves a list's index, never scales its value
    assert isinstance(m["train.lr"], tune.search.sample.Float)
    assert (m["train.lr"].lower, m["train.lr"].upper) == (1e-4, 1e-2)
    assert isinstance(m["layers"], tune.search.sample.Integer)


@pytest.mark.parametrize(
    ("key", "perturbed", "kept"),
    [
        ("train.lr", 1.2e-2, 1e-2),  # 1.2 × the upper bound: back to it
        ("train.lr", 0.8e-4, 1e-4),
        ("train.lr", 5e-3, 5e-3),  # inside: untouched
        ("dropout", -0.01, 0.0),
        ("layers", 4.8, 3),  # randint's upper bound is exclusive
        ("layers", 0.8, 1),
        ("alpha.start", 1.08, 0.9),  # a scaled choice: the nearest listed value
        ("alpha.start", 0.3, 0.3),
    ],
)
def test_a_perturbed_value_is_put_back_inside_the_space(key, perturbed, kept):
    config = {"alpha.start": 0.3, "train.lr": 1e-3, "dropout": 0.1, "layers": 2, "seed": 1, "gamma": 0.99}
    out = clamp_to_space(SPACE, {**config, key: perturbed})
    assert out[key] == pytest.approx(kept)
    assert {k: v for k, v in out.items() if k != key} == {k: v for k, v in config.items() if k != key}
