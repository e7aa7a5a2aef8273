"""Pieces of the sweeps package without Ray: results rows and tables, MLflow sinks, tracking
URI resolution (the Optuna searcher: test_search.py)."""

from __future__ import annotations

import json
import math
import time

import pandas as pd
import pytest

from gan_core import RunConfig, Trainer, flatten_config
from sweeps.results import SweepTables, TrialOutcome, epoch_rows, trial_row, varied_paths
from sweeps.sweepdir import SweepDir
from sweeps.tracking import Tracker, resolve_tracking_uri

from .conftest import free_port


def _records(n: int, modes: list[float] | None = None) -> list[dict]:
    out = []
    for e in range(1, n + 1):
        rec = {"epoch": float(e), "step": 10.0 * e, "loss/d": 0.7, "loss/g": 0.9}
        if modes:
            rec["quality/modes"] = modes[e - 1]
            rec["quality/kl"] = 1.0 / e
        out.append(rec)
    return out


# ---------------------------------------------------------------------- results
def test_trial_row_follows_the_contract():
    cfg = RunConfig.from_dict({"train": {"g_lr": 1e-3, "d_lr": 4e-3, "n_critic": 5}}).to_dict()
    outcome = TrialOutcome(
        "t0001",
        cfg,
        _records(3, [2.0, 8.0, 6.0]),
        {"status": "mode_collapse", "onset_epoch": 3, "evidence": {"quality/modes": 6.0}},
    )
    row = trial_row(outcome, ["train.n_critic", "train.g_lr"])
    assert row["trial_id"] == "t0001" and row["batch_size"] == 256
    assert row["g_lr"] == 1e-3 and row["d_lr"] == 4e-3 and math.isnan(row["lr"])
    assert row["train.n_critic"] == 5 and "train.g_lr" not in row  # g_lr has its own column
    assert row["verdict"] == "mode_collapse" and row["onset_epoch"] == 3.0
    assert row["status"] == "ok" and row["epochs_run"] == 3
    assert json.loads(row["evidence"]) == {"quality/modes": 6.0}
    assert row["final/quality/modes"] == 6.0 and row["best/quality/modes"] == 8.0
    assert row["best/quality/kl"] == pytest.approx(1 / 3)


def test_error_row_and_varied_paths():
    cfg = RunConfig().to_dict()
    row = trial_row(TrialOutcome("t0002", cfg, status="error", error="boom"), [])
    assert row["verdict"] == "error" and row["error"] == "boom" and row["epochs_run"] == 0
    assert row["lr"] == row["g_lr"] and math.isnan(row["onset_epoch"])
    other = RunConfig().replace(**{"seed": 3, "train.batch_size": 64}).to_dict()
    assert varied_paths([cfg, other]) == ["train.batch_size", "seed"]


def test_tables_rewrite_atomically_and_reload(tmp_path):
    sweep_dir = SweepDir(tmp_path)
    tables = SweepTables(sweep_dir)
    cfg = RunConfig().to_dict()
    for tid in ("t0001", "t0000"):
        outcome = TrialOutcome(tid, cfg, _records(2), {"status": "stable", "onset_epoch": None})
        tables.upsert(trial_row(outcome, []), epoch_rows(tid, outcome.records))
        tables.flush()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["epochs.parquet", "trials.parquet"]
    again = SweepTables(sweep_dir)
    assert list(again.trials) == ["t0000", "t0001"] and len(again.epochs["t0000"]) == 2
    epochs = pd.read_parquet(sweep_dir.epochs_parquet)
    assert list(epochs.columns[:3]) == ["trial_id", "epoch", "step"]


# ---------------------------------------------------------------------- tracking
def test_tracking_uri_precedence(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    assert resolve_tracking_uri(None, None) == f"sqlite:///{tmp_path / 'mlflow.db'}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://env:5000")
    assert resolve_tracking_uri(None, None) == "http://env:5000"
    assert resolve_tracking_uri(None, "sqlite:///rel.db") == f"sqlite:///{tmp_path / 'rel.db'}"
    assert resolve_tracking_uri("http://cli:5000", "sqlite:///rel.db") == "http://cli:5000"


def test_mlflow_sink_is_idempotent(tmp_path):
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    tracker = Tracker(uri, "exp", "sweep-1", say=lambda m: None)
    assert tracker.connect()
    parent = tracker.ensure_parent(None, "sweep")
    sink = tracker.sink("t0000", "ray_1")
    run_id = sink.start()
    sink.log_params(RunConfig().to_dict())
    records = _records(3)
    sink.log(records[0], 1)
    sink.log(records[0], 1)  # a retried trial reports epoch 1 again
    assert sink.finish(records, {"gansweep.verdict": "stable"}, None)

    again = Tracker(uri, "exp", "sweep-1", say=lambda m: None)
    again.connect()
    assert again.ensure_parent(None, "sweep") == parent
    second = again.sink("t0000")
    assert second.start() == run_id and second.finished
    assert second.finish(records, {"gansweep.verdict": "stable"}, None)
    from mlflow import MlflowClient

    client = MlflowClient(uri)
    assert [m.step for m in client.get_metric_history(run_id, "loss/d")] == [1, 2, 3]
    run = client.get_run(run_id)
    assert run.data.tags["mlflow.parentRunId"] == parent
    assert run.data.tags["gansweep.trial_id"] == "t0000" and run.info.status == "FINISHED"
    assert len(run.data.params) == len(flatten_config(RunConfig().to_dict()))
    assert run.data.params["init_seed"] == run.data.params["data_seed"] == "0"  # not 'None'
    assert run.info.run_name == "t0000 seed=0 bs=256 lr=0.001"


def test_unreachable_server_is_noticed_quickly(tmp_path):
    messages: list[str] = []
    tracker = Tracker(f"http://127.0.0.1:{free_port()}", "exp", "s", say=messages.append)
    start = time.monotonic()
    assert not tracker.connect()
    assert time.monotonic() - start < 15
    assert tracker.down_reason and len(messages) == 1 and "gansweep sync" in messages[0]
    sink = tracker.sink("t0000")
    assert sink.start() is None
    sink.log({"loss/d": 1.0}, 1)
    assert not sink.finish([], {}, None)


def test_member_model_is_the_members_generator(tmp_path):
    """In a pack, the logged model of member m computes what the trainer's member m does."""
    import torch

    from gan_core import Member
    from sweeps.sampler import member_model
    from sweeps.tracking import _member_index

    cfg = RunConfig.from_dict(
        {"data": {"name": "ring", "n_points": 500}, "train": {"steps_per_epoch": 3, "epochs": 1}}
    )
    trainer = Trainer(cfg, members=[Member(0, 0, 1e-3, 1e-3), Member(1, 1, 2e-3, 2e-3)])
    for _ in trainer.epochs():
        pass
    trainer.save_checkpoint(tmp_path / "c.pt")
    state = torch.load(tmp_path / "c.pt", weights_only=True)
    second = {"seed": 1, "init_seed": None, "train": {"g_lr": 2e-3, "d_lr": 2e-3}}
    assert _member_index(state, second) == 1
    assert _member_index(state, {**second, "seed": 5}) is None
    sampler, example = member_model(cfg, state, state["slots"].index(1))
    assert example.shape == (4, cfg.generator.latent_dim)
    # trainer.generate draws its latents from the generator it is given: the same z as here.
    z = torch.randn(16, cfg.generator.latent_dim, generator=torch.Generator().manual_seed(7))

    def member(m: int) -> torch.Tensor:
        return trainer.generate(16, member=m, generator=torch.Generator().manual_seed(7))

    with torch.no_grad():
        assert torch.allclose(sampler(z), member(1), atol=1e-6)
        assert not torch.allclose(sampler(z), member(0))


def test_models_logged_before_member_models_still_load():
    """A `gan` model pickled as sweeps.sampler.GeneratorSampler (the whole pack's G and the
    member's slot) unpickles and samples as it did."""
    import pickle

    import torch

    from gan_core import Member
    from sweeps.sampler import GeneratorSampler

    cfg = RunConfig.from_dict(
        {"data": {"name": "ring", "n_points": 500}, "train": {"steps_per_epoch": 3, "epochs": 1}}
    )
    trainer = Trainer(cfg, members=[Member(0, 0), Member(1, 1)])
    old = pickle.loads(pickle.dumps(GeneratorSampler(trainer.G.eval(), 1)))
    z = torch.randn(8, cfg.generator.latent_dim, generator=torch.Generator().manual_seed(7))
    with torch.no_grad():
        expected = trainer.generate(8, member=1, generator=torch.Generator().manual_seed(7))
        assert torch.equal(old(z), expected)


def test_best_is_the_studys_best():
    from sweeps.parent import best_row

    rows = [
        {"trial_id": "o0000", "status": "ok", "verdict": "stable", "final/quality/modes": 8.0},
        {"trial_id": "o0001", "status": "pruned", "verdict": "stable", "final/quality/modes": 9.0},
        {"trial_id": "o0002", "status": "ok", "verdict": "diverged", "final/quality/modes": 9.0},
        {"trial_id": "o0003", "status": "ok", "verdict": "mode_collapse", "final/quality/modes": 8},
        {"trial_id": "o0004", "status": "error", "verdict": "error"},
    ]
    assert best_row(rows, "quality/modes", "max") == ("o0000", 8.0)  # ties: the earliest
    assert best_row(rows, "quality/modes", "min") == ("o0000", 8.0)
    assert best_row(rows[4:], "quality/modes", "max") is None


def test_a_stop_inside_a_finaliser_prints_no_traceback_but_other_errors_do(monkeypatch, capsys):
    """Ray's SIGTERM handler raising SystemExit inside a weakref callback or __del__ is the
    worker being stopped, not a fault: the trial's hook keeps its traceback off the console."""
    import gc
    import sys

    from sweeps.trial import _quiet_stop_in_ignored_context

    monkeypatch.setattr(sys, "unraisablehook", _quiet_stop_in_ignored_context)

    class Finaliser:
        def __init__(self, error):
            self.error = error

        def __del__(self):
            raise self.error

    Finaliser(SystemExit(1))
    gc.collect()
    assert capsys.readouterr().err == ""
    Finaliser(ValueError("a real bug"))
    gc.collect()
    err = capsys.readouterr().err
    assert "Exception ignored in" in err and "ValueError: a real bug" in err
