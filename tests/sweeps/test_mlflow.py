"""MLflow as its users expect it, against a real `mlflow server` on 127.0.0.1: the parent run
holds the sweep (params, metrics, sweep.yaml, description), every run has MLflow's context tags
and a readable name, generators are logged as models that pyfunc loads as samplers, an
interrupted sweep's unfinished child runs are KILLED, and NaN values survive `sync`."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch

from sweeps.cli import main
from sweeps.tracking import Tracker

from .conftest import free_port, start_mlflow_server, stop_process, write_sweep

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("mlflow-server")
    port = free_port()
    proc = start_mlflow_server(tmp, port)
    yield f"http://127.0.0.1:{port}"
    stop_process(proc)


def _runs(uri, experiment):
    from mlflow import MlflowClient

    client = MlflowClient(uri)
    exp = client.get_experiment_by_name(experiment)
    runs = client.search_runs([exp.experiment_id], max_results=100)
    parent = [r for r in runs if r.data.tags.get("gansweep.kind") == "sweep"]
    children = [r for r in runs if r.data.tags.get("gansweep.kind") == "trial"]
    return client, parent, children


def test_parent_children_and_models(ray_local, server, tmp_path):
    import mlflow

    verdicts = ["stable", "mode_collapse", "diverged", "d_dominance", "poor_quality"]
    verdicts.append("vanishing_gradients")
    path = write_sweep(
        tmp_path,
        name="mlf",
        grid={"seed": [0, 1]},
        tracking={"uri": server, "log_model": verdicts},
    )
    assert main(["run", str(path)]) == 0
    client, (parent,), children = _runs(server, "mlf")

    # The parent run holds the sweep.
    assert parent.info.run_name == "grid: mlf"
    assert json.loads(parent.data.params["grid.seed"]) == [0, 1]
    assert parent.data.params["base.train.batch_size"] == "64"
    metrics = parent.data.metrics
    assert metrics["trials"] == 2 and 0 <= metrics["failure_rate"] <= 1
    assert sum(v for k, v in metrics.items() if k.startswith("verdict/")) == 2
    assert "best/quality/modes" in metrics
    assert any(k.startswith("cause/") for k in metrics)  # from the triage
    assert "sweep.yaml" in {a.path for a in client.list_artifacts(parent.info.run_id)}
    note = parent.data.tags["mlflow.note.content"]
    assert "quality/fid_rel" in note and "uniform noise" in note

    for run in [parent, *children]:  # MLflow's own context tags on every run
        assert run.data.tags["mlflow.user"] and run.data.tags["mlflow.source.type"] == "LOCAL"
        assert "mlflow.source.name" in run.data.tags
    by_name = {r.info.run_name: r for r in children}
    assert set(by_name) == {"t0000 seed=0 bs=64 lr=0.001", "t0001 seed=1 bs=64 lr=0.001"}
    mlflow.set_tracking_uri(server)
    for run in children:
        seed = run.data.params["seed"]
        assert run.data.params["init_seed"] == seed and run.data.params["data_seed"] == seed
        assert "None" not in (run.data.params["init_seed"], run.data.params["data_seed"])
        # The generator as an MLflow model: pyfunc gives a sampler of (n, 2) points.
        model = mlflow.pyfunc.load_model(f"runs:/{run.info.run_id}/generator")
        z = np.random.default_rng(1).standard_normal((5, 2)).astype("float32")
        assert model.metadata.signature is not None
        out = np.asarray(model.predict(z))
        assert out.shape == (5, 2) and np.isfinite(out).all()


def test_stable_only_by_default_and_none_when_empty(ray_local, server, tmp_path):
    path = write_sweep(
        tmp_path, name="nomodel", grid={"seed": [0]}, tracking={"uri": server, "log_model": []}
    )
    assert main(["run", str(path), "--no-triage"]) == 0
    client, (parent,), (child,) = _runs(server, "nomodel")
    assert "generator" not in {a.path for a in client.list_artifacts(child.info.run_id)}
    assert parent.info.run_name == "grid: nomodel"


def test_interrupted_child_runs_are_killed(server):
    tracker = Tracker(server, "killed", "sweep-k", say=lambda m: None)
    assert tracker.connect()
    tracker.ensure_parent(None, "killed")
    done, running = tracker.sink("t0"), tracker.sink("t1")
    for sink in (done, running):
        sink.start()
        sink.log_params({"seed": 0, "init_seed": None, "train": {"g_lr": 1e-3, "d_lr": 1e-3}})
        sink.log({"loss/d": 0.5}, 1)
    done.finish([{"epoch": 1, "loss/d": 0.5}], {"gansweep.verdict": "stable"}, None)
    tracker.finish_parent("KILLED")
    client, (parent,), children = _runs(server, "killed")
    status = {r.data.tags["gansweep.trial_id"]: r.info.status for r in children}
    assert status == {"t0": "FINISHED", "t1": "KILLED"} and parent.info.status == "KILLED"
    # A resumed driver reopens the killed run rather than creating another.
    again = Tracker(server, "killed", "sweep-k", say=lambda m: None)
    assert again.connect() and again.sink("t1").start() == running.run_id


def test_sync_keeps_nan_values(server, tmp_path):
    """epochs.parquet cannot tell NaN from missing; the trial's checkpoint can."""
    trial_dir = tmp_path / "t0"
    trial_dir.mkdir()
    config = {"seed": 0, "init_seed": None, "data_seed": None, "train": {"g_lr": 1e-3}}
    (trial_dir / "config.json").write_text(json.dumps(config))
    history = [{"epoch": 1.0, "loss/d": 0.7}, {"epoch": 2.0, "loss/d": math.nan}]
    members = [{"init_seed": 0, "data_seed": 0, "g_lr": None, "d_lr": None}]
    torch.save(
        {"history": [history], "members": members, "slots": [0]}, trial_dir / "checkpoint.pt"
    )
    tracker = Tracker(server, "nan", "sweep-n", say=lambda m: None)
    assert tracker.connect()
    sink = tracker.sink("t0")
    sink.start()
    from_tables = [{"epoch": 1.0, "loss/d": 0.7}, {"epoch": 2.0}]  # NaN read back as missing
    assert sink.finish(from_tables, {"gansweep.verdict": "diverged"}, trial_dir, "FINISHED")
    client = _runs(server, "nan")[0]
    values = {m.step: m.value for m in client.get_metric_history(sink.run_id, "loss/d")}
    assert values[1] == 0.7 and math.isnan(values[2])
