"""The sweep comparison: table values worked by hand from made-up trial histories."""

from __future__ import annotations

import csv
import math
from pathlib import Path

from components.seq.comparison import summarize, trial_row


def _trial(cell: str, hidden: int, seed: int, bpcs: list[float], walls: list[float], run_id: str) -> dict:
    history = [
        {
            "val_loss": b,
            "val_bpc": b,
            "wall_s": w,
            "target": 2.5,
            "params": 1000.0 * hidden,
            "tokens_per_s": 500.0 * (i + 1),
            "position": 100 * (i + 1),
        }
        for i, (b, w) in enumerate(zip(bpcs, walls))
    ]
    return {
        "config": {"model.cell": cell, "model.hidden_size": hidden, "seed": seed},
        "metrics": history[-1],
        "history": history,
        "run_id": run_id,
    }


def test_rows_take_best_and_first_crossing_from_the_history() -> None:
    row = trial_row(_trial("gru", 128, 0, [3.1, 2.4, 2.45, 2.2], [10.0, 20.0, 30.0, 40.0], "r1"))
    assert row is not None
    assert (row.best, row.final, row.time_to_target_s) == (2.2, 2.2, 20.0)  # first report ≤ 2.5 is at 20 s
    assert (row.cell, row.hidden, row.seed, row.params, row.steps, row.reports) == (
        "gru",
        "128",
        "0",
        128000,
        400,
        4,
    )
    assert row.tokens_per_s == 2000.0
    never = trial_row(_trial("lstm", 64, 1, [3.0, 2.9], [5.0, 9.0], "r2"))
    assert never is not None and math.isnan(never.time_to_target_s)
    assert trial_row({"config": {}, "metrics": {}, "history": [], "run_id": None}) is None


def test_summarize_writes_table_csv_and_plot(tmp_path: Path) -> None:
    results = [
        _trial("lstm", 128, 0, [3.0, 2.6, 2.3], [12.0, 24.0, 36.0], "a"),
        _trial("gru", 128, 0, [2.9, 2.4], [10.0, 20.0], "b"),  # stopped early by ASHA
    ]
    paths = summarize(results, tmp_path)
    assert [p.name for p in paths] == ["comparison.md", "comparison.csv", "bpc_vs_wall.png"]
    md = (tmp_path / "comparison.md").read_text()
    assert "| gru h=128 seed=0 | 128,000 | 1,000 | 2.4000 | 2.4000 | 20.0 | 200 | 2 |" in md
    assert "| lstm h=128 seed=0 | 128,000 | 1,500 | 2.3000 | 2.3000 | 36.0 | 300 | 3 |" in md
    rows = list(csv.DictReader((tmp_path / "comparison.csv").open()))
    assert [r["cell"] for r in rows] == ["gru", "lstm"]
    assert float(rows[1]["best_val_bpc"]) == 2.3 and rows[1]["run_id"] == "a"
    assert (tmp_path / "bpc_vs_wall.png").read_bytes()[:4] == b"\x89PNG"


def test_a_trial_without_history_is_compared_on_its_last_report(tmp_path: Path) -> None:
    trial = _trial("lstm", 64, 0, [3.0, 2.4], [5.0, 9.0], "c")
    trial["history"] = []
    row = trial_row(trial)
    assert row is not None and (row.best, row.time_to_target_s, row.reports) == (2.4, 9.0, 1)
    assert len(summarize([trial], tmp_path)) == 3
