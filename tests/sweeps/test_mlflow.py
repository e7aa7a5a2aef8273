"""MLflow as its users expect it, against a real `mlflow server` on 127.0.0.1: the parent run
holds the sweep (params, metrics, sweep.yaml, description), every run has MLflow's context tags
and a readable name, every family's member model is logged as a model that pyfunc loads and
that computes what the trainer does, an interrupted sweep's unfinished child runs are KILLED,
and NaN values survive `sync`."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch

from gan_core import Member, RunConfig, Trainer
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


VERDICTS = ("stable", "mode_collapse", "diverged", "d_dominance", "poor_quality",
            "vanishing_gradients")


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

    path = write_sweep(
        tmp_path,
        name="mlf",
        grid={"seed": [0, 1]},
        tracking={"uri": server, "log_model": list(VERDICTS)},
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
        # The generator as an MLflow model: pyfunc gives a sampler of (n, 2) points, the
        # trainer's own samples of this run.
        model = mlflow.pyfunc.load_model(f"runs:/{run.info.run_id}/generator")
        z = torch.randn(5, 2, generator=torch.Generator().manual_seed(7)).numpy()
        assert model.metadata.signature is not None
        out = np.asarray(model.predict(z))
        assert out.shape == (5, 2) and np.isfinite(out).all()
        expected = _restored_samples(tmp_path / "runs" / "mlf", run, 5)
        np.testing.assert_allclose(out, expected, rtol=0, atol=5e-6)


# A tiny run of every family (two epochs, small data), trained as a pack of two members.
FAMILY_RUNS = {
    "gan": {
        "data": {"name": "ring", "n_points": 1000},
        "generator": {"hidden_dims": [32, 32]},
        "discriminator": {"hidden_dims": [32, 32]},
        "train": {"epochs": 2, "steps_per_epoch": 5, "batch_size": 64},
    },
    "cyclegan": {
        "family": "cyclegan",
        "data": {"name": "digits_inverted"},
        "cycle": {"n_blocks": 1, "base_channels": 4, "lambda_identity": 0.0},
        "discriminator": {"base_channels": 8, "n_layers": 1},
        "train": {"epochs": 2, "steps_per_epoch": 3, "batch_size": 4},
    },
    "sequence": {
        "family": "sequence",
        "sequence": {"length": 12, "vocab_size": 8, "markov_successors": 2, "g_channels": 16,
                     "d_channels": 16, "n_blocks": 1, "latent_dim": 16},
        "data": {"n_points": 500},
        "train": {"epochs": 2, "steps_per_epoch": 3, "batch_size": 16},
    },
    "progressive": {  # 4 px, then a fade to 8 px and a stable epoch there: fully grown
        "family": "progressive",
        "progressive": {"resolutions": [4, 8], "fade_epochs": 1, "stable_epochs": 1,
                        "latent_dim": 32},
        "data": {"image_size": 8},
        "train": {"epochs": 3, "steps_per_epoch": 2, "batch_size": 8},
    },
}
# family -> (input shape, input dtype, output shape, output dtype) of the logged model, n = 6
MODEL_IO = {
    "gan": ((6, 2), "float32", (6, 2), "float32"),
    "cyclegan": ((6, 1, 8, 8), "float32", (6, 1, 8, 8), "float32"),
    "sequence": ((6, 16), "float32", (6, 12), "int64"),
    "progressive": ((6, 32), "float32", (6, 1, 8, 8), "float32"),
}


# Each family's own files in a trial's directory (its sample figure and the like).
FAMILY_FILES = {
    "gan": ["samples.png"],
    "cyclegan": ["translations.png"],
    "sequence": ["samples.txt", "vocab.json", "samples.png"],
    "progressive": ["samples.png"],
}


def _trial(tmp_path, family, member):
    """A pack of two trained by gan_core, saved as a sweep trial saves member `member`."""
    base = {**FAMILY_RUNS[family], "eval": {"every": 0, "n_samples": 100}}
    trainer = Trainer(RunConfig.from_dict(base), members=[Member(0, 0), Member(1, 1)])
    for _ in trainer.epochs():
        pass
    directory = tmp_path / f"t{member}"
    trainer.save_artifacts(directory, member)  # figures (a sequence run's vocab.json among them)
    trainer.save_checkpoint(directory / "checkpoint.pt")
    config = RunConfig.from_dict({**base, "seed": member}).to_dict()
    (directory / "config.json").write_text(json.dumps(config))
    return trainer, directory


@pytest.mark.parametrize(
    ("family", "member"),
    [("gan", 0), ("cyclegan", 1), ("sequence", 0), ("sequence", 1), ("progressive", 1)],
)
def test_every_family_logs_a_model_that_computes_what_the_trainer_does(
    server, tmp_path, family, member
):
    """pyfunc's predict(x) of a stable run's model equals the trainer's own samples of that
    member, from latents (or, for CycleGAN, domain-A images) the trainer draws itself."""
    import mlflow

    before = torch.get_num_threads()
    torch.set_num_threads(1)  # small networks on a shared 2-core machine
    try:
        trainer, directory = _trial(tmp_path, family, member)
    finally:
        torch.set_num_threads(before)
    messages: list[str] = []
    tracker = Tracker(server, f"models-{family}", f"sweep-{family}", say=messages.append)
    assert tracker.connect()
    sink = tracker.sink(f"t{member}")
    sink.start()
    history = trainer.history[member]
    assert sink.finish(history, {"gansweep.verdict": "stable"}, directory, "FINISHED")
    assert not [m for m in messages if "not logged" in m]

    in_shape, in_dtype, out_shape, out_dtype = MODEL_IO[family]
    n = in_shape[0]
    expected = trainer.generate(n, member, generator=torch.Generator().manual_seed(7)).numpy()
    if family == "cyclegan":  # G's translations of the first n held-out domain-A images
        x = trainer.dataset.a[:n].numpy()
    else:  # the latents trainer.generate drew
        x = torch.randn(in_shape, generator=torch.Generator().manual_seed(7)).numpy()
    mlflow.set_tracking_uri(server)
    model = mlflow.pyfunc.load_model(f"runs:/{sink.run_id}/generator")
    (spec,) = model.metadata.signature.inputs.to_dict()
    assert spec["tensor-spec"] == {"dtype": in_dtype, "shape": (-1, *in_shape[1:])}
    (out_spec,) = model.metadata.signature.outputs.to_dict()
    assert out_spec["tensor-spec"] == {"dtype": out_dtype, "shape": (-1, *out_shape[1:])}
    out = np.asarray(model.predict(x.astype(in_dtype)))
    assert out.shape == out_shape and out.dtype == out_dtype == expected.dtype
    if family == "sequence":
        assert np.array_equal(out, expected)
    else:  # one member's convolutions vs the pack's grouped ones: float rounding (measured
        # at most 3e-7 for gan and cyclegan, 1.7e-6 for progressive's pixel norms)
        np.testing.assert_allclose(out, expected, rtol=0, atol=5e-6)
    # Every file of the trial's directory travels with the run: the family's own figures
    # (CycleGAN's translations, a sequence run's decoded samples and the vocabulary that
    # decodes its model's ids) next to the shared ones, the config and the checkpoint.
    logged = {a.path for a in mlflow.MlflowClient().list_artifacts(sink.run_id)}
    assert {f.name for f in directory.iterdir() if f.is_file()} <= logged
    assert {"config.json", "checkpoint.pt", "dynamics.png", *FAMILY_FILES[family]} <= logged
    # The model holds this member's weights only, not the pack's.
    pack = sum(p.numel() for p in trainer.G.parameters())
    weights = sum(p.numel() for p in model.get_raw_model().parameters())
    assert 0 < weights <= pack // 2


def _restored_samples(sweep_dir, run, n):
    """trainer.generate(n) of the run's member, latents from seed 7, from its trial's checkpoint."""
    trial = sweep_dir / "trials" / run.data.tags["gansweep.trial_id"]
    state = torch.load(trial / "checkpoint.pt", weights_only=True)
    members = [Member(**m) for m in state["members"]]
    trainer = Trainer(RunConfig.from_dict(state["config"]), members)
    trainer.load_checkpoint(trial / "checkpoint.pt")
    member = [m.init_seed for m in members].index(int(run.data.params["seed"]))
    return trainer.generate(n, member, generator=torch.Generator().manual_seed(7)).numpy()


def test_a_packed_sequence_sweep_logs_each_members_model(ray_local, server, tmp_path):
    """Through Ray and the recorder: two seeds in one packed trial, each run with its own
    model, whose ids equal the trainer's samples of that member (restored from the trial)."""
    import mlflow

    base = {**FAMILY_RUNS["sequence"], "eval": {"every": 0, "n_samples": 100}}
    base["train"] = {k: v for k, v in base["train"].items() if k != "epochs"}
    path = write_sweep(
        tmp_path,
        name="seqmodels",
        base=base,
        epochs=2,
        grid={"seed": [0, 1]},
        execution={"pack_seeds": 2},
        tracking={"uri": server, "log_model": list(VERDICTS)},
    )
    assert main(["run", str(path), "--no-triage"]) == 0
    client, _, children = _runs(server, "seqmodels")
    assert len({r.data.tags["gansweep.ray_trial_id"] for r in children}) == 1  # one pack
    mlflow.set_tracking_uri(server)
    z = torch.randn(6, 16, generator=torch.Generator().manual_seed(7)).numpy()
    ids = {}
    for run in children:
        expected = _restored_samples(tmp_path / "runs" / "seqmodels", run, 6)
        model = mlflow.pyfunc.load_model(f"runs:/{run.info.run_id}/generator")
        ids[run.data.params["seed"]] = out = np.asarray(model.predict(z))
        assert out.dtype == np.int64 and np.array_equal(out, expected)
    assert set(ids) == {"0", "1"} and not np.array_equal(ids["0"], ids["1"])


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
