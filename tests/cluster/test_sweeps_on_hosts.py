"""Sweeps submitted from a laptop to a cluster of separate hosts: storage every node must share (S3),
refused in seconds without it; PBT exploiting checkpoints across hosts; a worker host killed, a worker's
link cut, the whole cluster restarted and the sweep resumed from its S3 state."""

from __future__ import annotations

import json
import threading
import time

import pytest

from tests.cluster.cluster import WORKERS, MultiHostCluster, wait_for
from tests.cluster.conftest import (
    history,
    mlflow_client,
    runs_of,
    s3_keys,
    s3_text,
    submit,
    sweep_runs,
    wait_for_run,
)

pytestmark = [pytest.mark.slow, pytest.mark.ray]

README_SWEEP = "configs/sweeps/gan_ring8.yaml"
# The README's sweep, shortened: 750 generator steps a trial, a report every 250.
SHORT = "overrides={train.steps: 750, report_every: 250, train.threads: 1}"


def sweep_cmd(*sets: str, config: str = README_SWEEP) -> tuple[str, ...]:
    return ("adl", "sweep", "--config", config, *(a for s in sets for a in ("--set", s)))


def steps_once(c: MultiHostCluster, run_id: str, key: str) -> list[int]:
    """The steps of a metric's history; a trial that trained a stretch twice would repeat steps."""
    steps = [m.step for m in history(c, run_id, key)]
    assert len(steps) == len(set(steps)), f"steps logged twice: {steps}"
    return sorted(steps)


def test_readme_sweep_without_shared_storage_is_refused_in_seconds_with_the_fix(hosts, capsys):
    t0 = time.time()
    code = submit(hosts, "sweep-no-storage", *sweep_cmd("name=no-storage"), "--experiment", "no-storage")
    took = time.time() - t0
    out = capsys.readouterr()
    assert code == 2, out.out[-3000:] + out.err[-2000:]
    assert took < 60
    text = out.out + out.err
    assert "storage_path is not set, so the sweep's state goes to the driver's own disk" in text
    assert "it is another disk" in text and "s3://BUCKET/PATH" in text
    for w in WORKERS:  # each worker named, by its address
        assert f"node {hosts.workers[w].ip} " in text
    assert "Traceback" not in text
    assert runs_of(hosts, "no-storage") == []  # refused before the parent run was opened
    assert not hosts.head.exists("/tmp/home/.adl/sweeps/no-storage")  # nothing blocks the name


def test_readme_sweep_on_s3_runs_pbt_from_checkpoints_across_hosts(hosts, capsys):
    """The README's sweep with ``storage_path: s3://...`` and its documented PBT: trials on both worker
    hosts, their checkpoints on S3, PBT cloning one trial's checkpoint into another. Synchronous PBT
    and one trial per worker (the seed grid left out): at each perturbation point the worse of the two
    exploits the better, whatever their scores. Asynchronous PBT exploits only when a trial reports
    behind the others' last scores, which two hosts' timing may or may not produce (CI saw a run with
    none)."""
    code = submit(
        hosts,
        "sweep-s3-pbt",
        *sweep_cmd(
            "name=s3-pbt",
            "storage_path=s3://adl/sweeps",
            "scheduler={kind: pbt, perturbation_interval: 1, synch: true}",
            "search_space={train.loss: {grid: [nonsaturating, wgan_gp]},"
            " train.lr: {loguniform: [2.0e-4, 2.0e-3]}}",
            SHORT,
        ),
        "--experiment",
        "s3-pbt",
    )
    out = capsys.readouterr()
    assert code == 0, out.out[-3000:] + out.err[-2000:]
    assert "storage s3://adl/sweeps: read and written from 2 node(s)" in out.err + out.out
    parent, children = sweep_runs(hosts, "s3-pbt")
    assert len(children) == 2 and all(c.info.status == "FINISHED" for c in children)
    assert len({c.data.tags["adl.trial_id"] for c in children}) == 2
    assert {c.data.tags["adl.node_ip"] for c in children} <= {h.ip for h in hosts.workers.values()}
    assert all(c.data.tags["adl.command"].startswith("adl sweep --config ") for c in children)
    assert parent.info.status == "FINISHED"
    assert parent.data.tags["adl.best_run_id"] in {c.info.run_id for c in children}
    keys = s3_keys(hosts, "sweeps/s3-pbt/")
    assert "sweeps/s3-pbt/adl_sweep.json" in keys and "sweeps/s3-pbt/tuner.pkl" in keys
    assert any("/checkpoint_" in k and k.endswith("/trainer.pt") for k in keys)
    schedules = [[m.value for m in history(hosts, c.info.run_id, "hparams/train.lr")] for c in children]
    assert any(len(set(s)) > 1 for s in schedules), schedules  # a trial went on with PBT's new lr
    for c in children:  # every report there (an exploited trial goes on from its donor's step: a step
        # may be logged twice, once before and once after the exploit, which is what happened)
        assert {m.step for m in history(hosts, c.info.run_id, "eval/distance")} == {250, 500, 750}


def test_a_worker_cut_off_then_killed_mid_sweep_its_trial_waits_then_resumes_from_s3(hosts, capsys):
    """Two trials, one per worker, two faults of the second worker in turn (one sweep instead of two
    keeps the cluster suite short):

    - its link cut for 20 s after its trial's first report: the trial's reports wait; nothing is
      retried, and the trial goes on where it was (on w2, no step logged twice) once the link is back;
    - then its host dies (every process, and its disk) once its trial has reported again and some
      checkpoint is on S3: the trial is retried on w1 from that checkpoint, in the same run, with at most
      the report in flight trained twice (logged, its checkpoint not yet stored when the host died)."""
    done: dict[str, int] = {}

    def run() -> None:
        done["code"] = submit(
            hosts,
            "sweep-w2-faults",
            *sweep_cmd(
                "name=w2-faults",
                "storage_path=s3://adl/sweeps",
                "scheduler.kind=fifo",
                "search_space={train.loss: {grid: [nonsaturating, wgan_gp]}}",
                "overrides={train.steps: 1500, report_every: 250, train.threads: 1}",
                "max_failures=2",
                "overhead=1000",  # a checkpoint at every report, whatever it costs: a retry redoes < 1 report
            ),
            "--experiment",
            "sweep-w2-faults",
        )

    t0 = time.time()
    thread = threading.Thread(target=run)
    thread.start()
    victim = hosts.workers["w2"]

    def reports_on_w2(r, at_least: int = 1) -> bool:
        return (
            r.data.tags.get("adl.node_ip") == victim.ip
            and len(history(hosts, r.info.run_id, "eval/distance")) >= at_least
        )

    victim_run = wait_for_run(hosts, "sweep-w2-faults", 240, reports_on_w2)
    run_id = victim_run.info.run_id
    before_cut = len(history(hosts, run_id, "eval/distance"))
    cut_s = time.time()
    hosts.cut_link("w2", 20)

    def went_on_where_it_was() -> bool:
        """The cut-off trial reported again, from w2, no step twice; and some checkpoint is on S3."""
        run = mlflow_client(hosts).get_run(run_id)
        assert reports_on_w2(run, before_cut + 1)
        assert [k for k in s3_keys(hosts, "sweeps/w2-faults/") if k.endswith("trainer.pt")]
        return True

    wait_for(went_on_where_it_was, 120, "the cut-off trial's next report")
    steps_once(hosts, run_id, "eval/distance")  # not retried: nothing trained twice so far
    cut_cost_s = round(time.time() - cut_s)
    assert thread.is_alive(), "the sweep ended before its host died: raise train.steps"
    killed = hosts.kill_host("w2", disk=True)
    assert killed
    reported = max(m.step for m in history(hosts, run_id, "eval/distance"))
    thread.join(timeout=400)
    assert done.get("code") == 0, capsys.readouterr().err[-3000:]
    parent, children = sweep_runs(hosts, "sweep-w2-faults")
    assert len(children) == 2 and all(c.info.status == "FINISHED" for c in children)
    assert {c.data.tags["adl.node_ip"] for c in children} == {hosts.workers["w1"].ip}  # both ended on w1
    redone = 0
    for c in children:
        steps = [m.step for m in history(hosts, c.info.run_id, "eval/distance")]
        assert sorted(set(steps)) == [250, 500, 750, 1000, 1250, 1500]
        redone += len(steps) - len(set(steps))
    assert redone <= 1  # a retry starts from the last stored checkpoint: never from scratch
    assert parent.info.status == "FINISHED"
    hosts.record("a worker's link cut for 20 s mid-sweep", trials_retried=0, cut_to_next_report_s=cut_cost_s)
    hosts.record(
        "a worker host killed mid-sweep",
        trials_redone_from_scratch=0,
        killed_trial_reported_up_to_step=reported,
        reports_redone=redone,  # at most the one in flight (a checkpoint at every report)
        child_runs_per_trial=1,
        sweep_wall_s=round(time.time() - t0),
    )


def test_the_whole_cluster_restarted_and_the_sweep_resumed_from_its_s3_state(hosts, capsys):
    """Four trials, two at a time; once two have finished, every Ray process of every host dies (the
    driver with them). On the restarted cluster ``adl sweep --resume s3://...`` runs the other two
    only, into the same parent run, from the state on S3."""
    sets = (
        "name=restart-me",
        "storage_path=s3://adl/sweeps",
        "scheduler.kind=fifo",
        "max_concurrent=2",
        "search_space={train.loss: {grid: [nonsaturating, wgan_gp]}, seed: {grid: [0, 1]}}",
        "overrides={train.steps: 500, report_every: 250, train.threads: 1}",
    )
    assert submit(hosts, "sweep-restart-1", *sweep_cmd(*sets), "--experiment", "restart", follow=False) == 0

    def two_finished() -> list[str]:
        runs = [r for r in runs_of(hosts, "restart") if "mlflow.parentRunId" in r.data.tags]
        done = [r.info.run_id for r in runs if r.info.status == "FINISHED"]
        assert len(done) >= 2
        return done

    finished = wait_for(two_finished, 300, "two finished trials")
    time.sleep(2)  # Tune saves its state every second (TUNE_GLOBAL_CHECKPOINT_S=1)
    before = {r: [(m.step, m.timestamp) for m in history(hosts, r, "eval/distance")] for r in finished}
    hosts.stop_ray_everywhere()
    t0 = time.time()
    hosts.start_head()
    for w in hosts.workers.values():
        w.kill()  # what is left of the old raylet's children
        hosts.start_worker(w)
    code = submit(hosts, "sweep-restart-2", "adl", "sweep", "--resume", "s3://adl/sweeps/restart-me")
    out = capsys.readouterr()
    assert code == 0, out.out[-3000:] + out.err[-3000:]
    parent, children = sweep_runs(hosts, "restart")
    assert len(children) == 4 and all(c.info.status == "FINISHED" for c in children)
    assert parent.info.status == "FINISHED"
    for run_id, points in before.items():  # what had finished was not run again
        assert [(m.step, m.timestamp) for m in history(hosts, run_id, "eval/distance")] == points
    state = json.loads(s3_text(hosts, "sweeps/restart-me/adl_sweep.json"))
    assert state["parent_run_id"] == parent.info.run_id
    hosts.record(
        "the whole cluster restarted, the sweep resumed from S3",
        trials_finished_before=len(before),
        trials_run_after=4 - len(before),
        finished_trials_rerun=0,
        restart_and_resume_wall_s=round(time.time() - t0),
    )
