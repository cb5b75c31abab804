"""The chunked trial loop's pieces that are pure: the report budget."""

from __future__ import annotations

from pipelines.runner import ReportBudget


def test_report_budget_keeps_pictures_and_checkpoints_within_the_share_of_training_time():
    b = ReportBudget(share=0.1, every=1)
    b.since = 0.0
    # 1 s of training: 0.1 s of budget, less than the 1 s a first report is assumed to cost.
    assert not b.allows(done=False, now=1.0)
    # 10 s of training: 1 s of budget, and the estimate is 1 s: allowed.
    assert b.allows(done=False, now=10.0)
    b.spent(0.5, now=10.5)  # it took 0.5 s; the clock restarts after it
    assert b.train_s == 10.0 and b.spent_s == 0.5 and b.cost_s == 0.5
    # 11 s of training: budget 1.1 s ≥ 0.5 spent + 0.5 expected.
    assert b.allows(done=False, now=11.5)
    b.spent(0.5, now=12.0)
    # 12 s of training: 1.2 s < 1.0 spent + 0.5 expected: not yet.
    assert not b.allows(done=False, now=13.0)
    assert b.allows(done=True, now=13.1)  # the last report always has them


def test_report_budget_every():
    b = ReportBudget(share=1e9, every=3)
    b.since = 0.0
    assert [b.allows(False, now=float(t)) for t in range(1, 7)] == [False, False, True, False, False, True]
