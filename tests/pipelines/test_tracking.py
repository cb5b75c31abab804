"""What a run leaves in MLflow, read as a practitioner reads it: grouped metric names, one-offs
logged once, a run name that says what ran, provenance tags, logged models that load and agree
with the checkpoint, and a checkpoint on the tracking server that a resume can use. Plus the
errors a user meets first: a tracking URI that is not MLflow, a config key that does not exist."""

from __future__ import annotations

import http.server
import shutil
import subprocess
import sys
import threading
from pathlib import Path

import numpy as np
import pytest
import torch
from mlflow.tracking import MlflowClient

from pipelines.cli.main import build_parser, main
from tests.pipelines import ui_reads
from tests.pipelines.dqn_cli import train_dqn_argv

REPO = Path(__file__).resolve().parents[2]
SMALL = [
    "local=true",
    "collectors.num_collectors=1",
    "collectors.envs_per_collector=4",
    "replay.min_size=256",
    "eval.every_env_steps=1000",
    "log_every_s=0.2",
]
GROUPS = ("train/", "eval/", "learner/", "replay/", "faults/", "system/", "resume/")


@pytest.mark.slow
def test_dqn_run_reads_like_a_practitioners_tool_and_resumes_from_the_server(tracking_uri, tmp_path):
    argv = train_dqn_argv(tracking_uri, *SMALL, "max_env_steps=2500")
    proc = subprocess.run(argv, cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    client = MlflowClient(tracking_uri)
    (run,) = client.search_runs([client.get_experiment_by_name("adl-dqn").experiment_id])
    run_id = run.info.run_id

    # Grouped names; one-off results as tags, not single-point charts; the step axis named in the
    # description, the result after it.
    assert all(k.startswith(GROUPS) for k in run.data.metrics), sorted(run.data.metrics)
    assert {"eval/return", "learner/loss", "replay/size", "train/env_steps_per_s"} <= set(run.data.metrics)
    assert not ui_reads.one_point_charts(client, run)
    assert int(run.data.tags["adl.result.final_env_steps"]) >= 2500
    assert len(client.get_metric_history(run_id, "eval/return")) >= 2
    note = run.data.tags["mlflow.note.content"]
    assert "env steps" in note and "**Result:** DQN on CartPole-v1: " in note

    # Says what ran, who ran it, from which commit.
    assert run.info.run_name == "dqn-CartPole-v1-s0"
    tags = run.data.tags
    assert (
        tags["mlflow.source.git.commit"]
        == subprocess.check_output(["git", "rev-parse", "HEAD"], cwd=REPO, text=True).strip()
    )
    assert tags["adl.git_dirty"] in ("true", "false") and tags["mlflow.source.type"] == "LOCAL"
    assert tags["mlflow.source.name"] == "adl train dqn cartpole" and tags["mlflow.user"]
    assert (
        tags["adl.command"].startswith("adl train dqn --config ")
        and "max_env_steps=2500" in tags["adl.command"]
    )
    assert tags["adl.device"] == "cpu"

    # The final network as an MLflow model: it loads, and its Q values are the checkpoint's.
    import mlflow
    import mlflow.pytorch

    (final,) = [m for m in client.search_logged_models([run.info.experiment_id]) if m.name == "final_model"]
    assert final.source_run_id == run_id
    mlflow.set_tracking_uri(tracking_uri)
    model = mlflow.pytorch.load_model(final.model_uri)
    ckpt = tmp_path / ".adl/runs" / run_id / "checkpoint"
    state = torch.load(ckpt / "learner.pt", weights_only=True)["learner"]["online"]
    from components.config import load
    from components.rl.dqn.config import DQNConfig
    from components.rl.dqn.networks import build_q_network

    net = build_q_network(load(DQNConfig, REPO / "configs/dqn/cartpole.yaml").network, (4,), 2)
    net.load_state_dict(state)
    obs = torch.as_tensor(np.random.default_rng(0).normal(size=(16, 4)).astype(np.float32))
    with torch.no_grad():
        np.testing.assert_allclose(model(obs).numpy(), net.eval()(obs).numpy(), rtol=1e-5, atol=1e-6)

    # The checkpoint is on the tracking server: with the local folder gone, --resume continues.
    uploaded = {a.path for a in client.list_artifacts(run_id, "checkpoint")}
    assert uploaded == {"checkpoint/learner.pt", "checkpoint/replay.arrow", "checkpoint/manifest.json"}
    steps_before = int(run.data.tags["adl.result.final_learner_steps"])
    shutil.rmtree(tmp_path / ".adl/runs" / run_id)
    resume = [*train_dqn_argv(tracking_uri, *SMALL, "max_env_steps=4000"), "--resume", run_id]
    proc = subprocess.run(resume, cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "downloaded run" in proc.stderr
    (again,) = client.search_runs([run.info.experiment_id])
    assert again.info.run_id == run_id and again.info.status == "FINISHED"
    resumed = client.get_metric_history(run_id, "resume/learner_steps")
    assert [m.value for m in resumed] == [steps_before]  # counters restored from the download
    assert int(again.data.tags["adl.result.final_env_steps"]) >= 4000
    assert again.data.tags["mlflow.note.content"].count("**Result:**") == 1  # the resumed run's result


class _NotMlflow(http.server.BaseHTTPRequestHandler):
    def do_GET(self):  # noqa: N802 (http.server's name)
        self.send_response(200 if self.path == "/" else 404)
        self.end_headers()
        self.wfile.write(b"<html>hello</html>")

    def log_message(self, *args):
        pass


def test_a_tracking_uri_that_is_not_mlflow_exits_2_without_a_traceback(capsys):
    server = http.server.HTTPServer(("127.0.0.1", 0), _NotMlflow)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    uri = f"http://127.0.0.1:{server.server_address[1]}"
    try:
        assert main(["train", "qlearn", "--tracking-uri", uri, "--set", "episodes=10"]) == 2
    finally:
        server.shutdown()
    err = capsys.readouterr().err
    assert f"{uri} answers over HTTP but is not an MLflow tracking server" in err
    assert "Traceback" not in err


def test_an_unknown_config_key_is_refused_before_torch_ray_or_mlflow_load():
    code = (
        "import sys\n"
        "from pipelines.cli.main import main\n"
        "rc = main(['train', 'dqn', '--set', 'learner.n_stepp=3'])\n"
        "print(rc, sorted(m for m in ('torch', 'ray', 'mlflow') if m in sys.modules))\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=60)
    assert proc.stdout.strip() == "2 []", proc.stdout + proc.stderr
    assert "unknown key 'learner.n_stepp'" in proc.stderr


def test_jobs_takes_its_address_before_or_after_the_action():
    parser = build_parser()
    assert parser.parse_args(["jobs", "list", "--address", "http://h:1"]).address == "http://h:1"
    assert parser.parse_args(["jobs", "--address", "http://h:1", "list"]).address == "http://h:1"
    args = parser.parse_args(["jobs", "logs", "ID", "--address", "http://h:2", "--follow"])
    assert (args.address, args.job_id, args.follow) == ("http://h:2", "ID", True)
