"""Pieces of the sweeps package without Ray: results rows and tables, MLflow sinks, the
Optuna searcher's study states, tracking URI resolution."""

from __future__ import annotations

import json
import math
import time

import optuna
import pandas as pd
import pytest

from gan_core import RunConfig, flatten_config
from sweeps.results import SweepTables, TrialOutcome, epoch_rows, trial_row, varied_paths
from sweeps.search import OBJECTIVE, build_search
from sweeps.spec import parse_spec
from sweeps.sweepdir import SweepDir
from sweeps.tracking import Tracker, resolve_tracking_uri

from .conftest import free_port, sweep_dict


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


# ---------------------------------------------------------------------- search
def _search_spec(tmp_path, scheduler):
    search = {
        "space": {
            "lr": {"type": "log_float", "low": 1e-4, "high": 1e-2},
            "train.n_critic": {"type": "int", "low": 1, "high": 3},
            "batch_size": {"type": "categorical", "values": [64, 128]},
        },
        "objective": {"metric": "quality/modes", "mode": "max"},
        "scheduler": scheduler,
    }
    return parse_spec(sweep_dict(tmp_path, search=search, grid=None))


def test_searcher_keeps_a_clean_persistent_study(tmp_path):
    spec = _search_spec(tmp_path, {"type": "none"})
    url = f"sqlite:///{tmp_path / 'optuna.db'}"
    limiter, _ = build_search(spec, url, "study", max_concurrent=4)
    searcher = limiter.searcher
    suggestions = [searcher.suggest(f"ray{i}") for i in range(4)]
    (member,) = suggestions[0]["trial"]["members"]
    assert member["trial_id"] == "o0000" and set(member["point"]) == {
        "lr",
        "train.n_critic",
        "batch_size",
    }
    final = {OBJECTIVE: 6.0, "final": True, "training_iteration": 3}
    searcher.on_trial_result("ray0", {OBJECTIVE: 4.0, "training_iteration": 1})
    searcher.on_trial_complete("ray0", final)
    searcher.on_trial_complete("ray1", {**final, OBJECTIVE: math.nan})  # diverged
    searcher.on_trial_complete("ray2", {**final, "final": False})  # stopped early
    searcher.on_trial_complete("ray3", None, error=True)
    study = optuna.load_study(study_name="study", storage=url)
    states = [t.state for t in study.trials]
    S = optuna.trial.TrialState
    assert states == [S.COMPLETE, S.FAIL, S.PRUNED, S.FAIL]
    assert study.trials[0].value == 6.0 and study.trials[0].intermediate_values == {1: 4.0}

    limiter2, _ = build_search(spec, url, "study", max_concurrent=4)  # a later call continues
    assert limiter2.searcher.suggest("ray9")["trial"]["members"][0]["trial_id"] == "o0004"


def test_optuna_pruner_scheduler_stops_bad_trials(tmp_path):
    from ray.tune.schedulers import TrialScheduler

    sched = {"type": "optuna", "pruner": "median", "n_startup_trials": 1, "n_warmup_steps": 3}
    spec = _search_spec(tmp_path, sched)
    limiter, scheduler = build_search(spec, f"sqlite:///{tmp_path / 'o.db'}", "s", 2)
    searcher = limiter.searcher

    class _Trial:
        def __init__(self, trial_id):
            self.trial_id = trial_id

    searcher.suggest("good")
    for step in range(1, 7):
        result = {OBJECTIVE: 8.0, "training_iteration": step}
        assert scheduler.on_trial_result(None, _Trial("good"), result) == TrialScheduler.CONTINUE
    searcher.on_trial_complete("good", {OBJECTIVE: 8.0, "final": True, "training_iteration": 6})
    searcher.suggest("bad")
    decisions = [
        scheduler.on_trial_result(None, _Trial("bad"), {OBJECTIVE: 1.0, "training_iteration": s})
        for s in range(1, 6)
    ]
    assert decisions[:2] == [TrialScheduler.CONTINUE] * 2  # warm-up: steps before 3
    assert TrialScheduler.STOP in decisions[2:]
    searcher.on_trial_complete("bad", {OBJECTIVE: 1.0, "training_iteration": 4})
    trial = optuna.load_study(study_name="s", storage=f"sqlite:///{tmp_path / 'o.db'}").trials[1]
    assert trial.state == optuna.trial.TrialState.PRUNED
