"""End to end on one embedded Ray (shared by this module): grid sweep, trials that raise,
a real MLflow server, an unreachable one then `gansweep sync`, and an Optuna search that a
second call continues."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from gan_core.monitor import STATUSES as VERDICTS
from sweeps.cli import main

from .conftest import free_port, start_mlflow_server, stop_process, write_sweep

pytestmark = pytest.mark.slow

CONTRACT_COLUMNS = [
    "trial_id",
    "seed",
    "init_seed",
    "data_seed",
    "batch_size",
    "g_lr",
    "d_lr",
    "lr",
    "verdict",
    "onset_epoch",
    "status",
    "error",
    "epochs_run",
    "evidence",
    "mlflow_run_id",
    "tracking_uri",
    "started_at",
    "finished_at",
]


@pytest.fixture(scope="module")
def mlflow_server(tmp_path_factory, ray_local):
    tmp = tmp_path_factory.mktemp("mlflow-server")
    port = free_port()
    proc = start_mlflow_server(tmp, port)
    yield f"http://127.0.0.1:{port}"
    stop_process(proc)


def _children(uri: str, experiment: str) -> tuple[list, list]:
    from mlflow import MlflowClient

    client = MlflowClient(uri)
    exp = client.get_experiment_by_name(experiment)
    runs = client.search_runs([exp.experiment_id], max_results=1000)
    parents = [r for r in runs if r.data.tags.get("gansweep.kind") == "sweep"]
    children = [r for r in runs if r.data.tags.get("gansweep.kind") == "trial"]
    return parents, children


def _assert_each_trial_once(uri: str, experiment: str, trial_ids: list[str], epochs: dict) -> None:
    from mlflow import MlflowClient

    client = MlflowClient(uri)
    parents, children = _children(uri, experiment)
    assert len(parents) == 1
    assert sorted(r.data.tags["gansweep.trial_id"] for r in children) == sorted(trial_ids)
    for run in children:
        tid = run.data.tags["gansweep.trial_id"]
        assert run.data.tags["mlflow.parentRunId"] == parents[0].info.run_id
        assert run.info.status in ("FINISHED", "FAILED")
        assert "gansweep.verdict" in run.data.tags and "gansweep.sweep_id" in run.data.tags
        steps = [m.step for m in client.get_metric_history(run.info.run_id, "loss/d")]
        assert steps == list(range(1, epochs[tid] + 1)), (tid, steps)


def test_grid_sweep_with_raising_trials(ray_local, tmp_path, capsys):
    grid = {
        "seed": [0, 1],
        "data": [
            {"name": "ring", "n_points": 1000},
            {"name": "npy", "path": str(tmp_path / "missing.npy")},
        ],
    }
    path = write_sweep(tmp_path, grid=grid)
    assert main(["run", str(path), "--no-triage"]) == 0
    root = tmp_path / "runs" / "tiny"
    trials = pd.read_parquet(root / "trials.parquet")
    epochs = pd.read_parquet(root / "epochs.parquet")
    meta = json.loads((root / "sweep.json").read_text())

    assert list(trials.columns[:8]) == CONTRACT_COLUMNS[:8]
    assert set(CONTRACT_COLUMNS) <= set(trials.columns)
    assert {"data.name", "data.path", "final/loss/d", "best/quality/modes"} <= set(trials.columns)
    assert sorted(trials.trial_id) == ["t0000", "t0001", "t0002", "t0003"]
    ok, bad = trials[trials.status == "ok"], trials[trials.status == "error"]
    assert sorted(ok["data.name"]) == ["ring", "ring"] and len(bad) == 2
    assert (ok.verdict != "error").all() and ok.verdict.str.len().gt(0).all()
    assert (ok.epochs_run == 3).all() and (bad.verdict == "error").all()
    assert bad.error.str.contains("missing.npy").all()
    assert len(epochs) == 6 and list(epochs.columns[:2]) == ["trial_id", "epoch"]
    assert trials.mlflow_run_id.notna().all()
    for tid in ok.trial_id:
        files = {p.name for p in (root / "trials" / tid).iterdir()}
        assert {
            "samples.png",
            "dynamics.png",
            "grad_norms.png",
            "config.json",
            "checkpoint.pt",
        } <= files
    assert meta["varied"] and meta["parent_run_id"] and meta["sweep_id"].startswith("tiny-")
    assert (tmp_path / "mlruns" / "tiny").is_dir()  # artifacts beside the SQLite store

    _assert_each_trial_once(
        meta["tracking_uri"],
        "tiny",
        list(trials.trial_id),
        {t: 3 for t in ok.trial_id} | {t: 0 for t in bad.trial_id},
    )
    out = capsys.readouterr().out
    assert "4/4 finished (2 error)" in out


def test_runs_mlflow_fell_behind_on_are_logged_before_the_command_returns(
    ray_local, tmp_path, monkeypatch, capsys
):
    """With MLflow behind (every trial past the writer's backlog bound), the sweep does not
    wait for it; once Tune has finished, the driver logs the left-behind runs itself."""
    from sweeps import tracking

    monkeypatch.setattr(tracking, "MAX_BACKLOG", -1)
    path = write_sweep(tmp_path, name="behind", grid={"seed": [0, 1]})
    assert main(["run", str(path), "--no-triage"]) == 0
    out = capsys.readouterr().out
    assert "MLflow fell 2 run(s) behind the sweep; logging them now" in out
    assert "not logged" not in out
    root = tmp_path / "runs" / "behind"
    trials = pd.read_parquet(root / "trials.parquet")
    assert trials.mlflow_run_id.notna().all()
    uri = json.loads((root / "sweep.json").read_text())["tracking_uri"]
    _assert_each_trial_once(uri, "behind", ["t0000", "t0001"], {"t0000": 3, "t0001": 3})


def test_real_mlflow_server_gets_every_trial_once(ray_local, mlflow_server, tmp_path):
    path = write_sweep(tmp_path, name="served", grid={"seed": [0, 1, 2]}, tracking=None)
    assert main(["run", str(path), "--tracking-uri", mlflow_server, "--no-triage"]) == 0
    trials = pd.read_parquet(tmp_path / "runs" / "served" / "trials.parquet")
    assert len(trials) == 3 and trials.mlflow_run_id.notna().all()
    assert (trials.tracking_uri == mlflow_server).all()
    _assert_each_trial_once(
        mlflow_server, "served", list(trials.trial_id), dict.fromkeys(trials.trial_id, 3)
    )

    from mlflow import MlflowClient

    client = MlflowClient(mlflow_server)
    run = client.get_run(trials.mlflow_run_id[0])
    assert run.data.params["train.epochs"] == "3" and run.data.params["seed"] in ("0", "1", "2")
    assert {a.path for a in client.list_artifacts(run.info.run_id)} >= {
        "samples.png",
        "dynamics.png",
        "grad_norms.png",
        "checkpoint.pt",
    }


def test_unreachable_server_then_sync_without_duplicates(
    ray_local, mlflow_server, tmp_path, capsys
):
    dead = f"http://127.0.0.1:{free_port()}"
    path = write_sweep(tmp_path, name="offline", grid={"seed": [0, 1]}, tracking={"uri": dead})
    assert main(["run", str(path), "--no-triage"]) == 0
    out = capsys.readouterr().out
    root = tmp_path / "runs" / "offline"
    trials = pd.read_parquet(root / "trials.parquet")
    assert len(trials) == 2 and trials.mlflow_run_id.isna().all() and (trials.status == "ok").all()
    assert "unreachable" in out and "2 trial(s) not logged" in out and "t0000, t0001" in out
    assert f"gansweep sync {root}" in out

    assert main(["sync", str(root), "--tracking-uri", mlflow_server]) == 0
    assert "2 run(s) logged, 0 already there" in capsys.readouterr().out
    assert main(["sync", str(root), "--tracking-uri", mlflow_server]) == 0
    assert "0 run(s) logged, 2 already there" in capsys.readouterr().out
    _assert_each_trial_once(mlflow_server, "offline", ["t0000", "t0001"], {"t0000": 3, "t0001": 3})
    trials = pd.read_parquet(root / "trials.parquet")
    assert trials.mlflow_run_id.notna().all()
    assert json.loads((root / "sweep.json").read_text())["tracking_uri"] == mlflow_server


def test_search_persists_study_and_continues(ray_local, tmp_path, capsys):
    import optuna
    from mlflow import MlflowClient

    search = {
        "space": {
            "lr": {"type": "log_float", "low": 1e-4, "high": 3e-2},
            "train.n_critic": {"type": "int", "low": 1, "high": 2},
        },
        "objective": {"metric": "quality/modes", "mode": "max"},
        "scheduler": {
            "type": "optuna",
            "pruner": "median",
            "n_startup_trials": 2,
            "n_warmup_steps": 3,
        },
        "trials": 6,
    }
    path = write_sweep(tmp_path, name="searchy", search=search, grid=None)
    assert main(["search", str(path), "--no-triage"]) == 0
    root = tmp_path / "runs" / "searchy-search"
    storage = f"sqlite:///{root / 'optuna.db'}"
    assert len(optuna.load_study(study_name="searchy", storage=storage).trials) == 6

    assert main(["search", str(path), "--trials", "2", "--no-triage"]) == 0
    study = optuna.load_study(study_name="searchy", storage=storage)
    assert [t.number for t in study.trials] == list(range(8))
    assert all(t.state.is_finished() for t in study.trials)
    assert sum(t.state == optuna.trial.TrialState.COMPLETE for t in study.trials) >= 6
    trials = pd.read_parquet(root / "trials.parquet")
    assert sorted(trials.trial_id) == [f"o{i:04d}" for i in range(8)]
    assert {"g_lr", "train.n_critic"} <= set(trials.columns)
    meta = json.loads((root / "sweep.json").read_text())
    assert meta["tune_experiments"] == ["search-1", "search-2"] and meta["n_trials"] == 8
    points = [tuple(sorted(t.params.items())) for t in study.trials]
    assert len(set(points)) == 8  # the second call did not repeat the first call's points
    # Study and MLflow point at each other; the console's best is the study's best.
    client = MlflowClient(meta["tracking_uri"])
    for t in study.trials:
        run = client.get_run(t.user_attrs["mlflow_run_id"])
        assert run.data.tags["optuna.trial_number"] == str(t.number)
        assert run.data.tags["gansweep.trial_id"] == t.user_attrs["gansweep_trial_id"]
        assert t.user_attrs["verdict"] in ("pruned", *VERDICTS) and t.user_attrs["epochs_run"] >= 1
        assert t.intermediate_values and max(t.intermediate_values) == t.user_attrs["epochs_run"]
    out = capsys.readouterr().out
    best = study.best_trial
    assert f"best {best.user_attrs['gansweep_trial_id']}: quality/modes={best.value:.4g}" in out
    _assert_each_trial_once(
        meta["tracking_uri"],
        "searchy",
        list(trials.trial_id),
        dict(zip(trials.trial_id, trials.epochs_run, strict=True)),
    )


def test_real_sweep_triages_itself_and_its_report_renders_in_chromium(ray_local, tmp_path, capsys):
    """The product end to end: a real grid sweep, its automatic triage, the report in a browser."""
    from mlflow import MlflowClient

    from analysis import load_results, triage
    from tests.analysis.test_browser import _open

    grid = {"seed": [0, 1, 2], "batch_size": [32, 64]}
    path = write_sweep(tmp_path, grid=grid)
    assert main(["run", str(path)]) == 0
    root = tmp_path / "runs" / "tiny"
    html = root / "triage" / "report.html"
    assert html.is_file() and (root / "triage" / "triage.json").is_file()

    result = triage(load_results(root))
    # The end of the output: where the report is, what it found, how to see the runs.
    tail = capsys.readouterr().out.rstrip().splitlines()[-3:]
    assert tail[0].startswith(f"[gansweep] triage report: {html}") and "browser" in tail[0]
    assert tail[1] == result.summary
    meta = json.loads((root / "sweep.json").read_text())
    ui = f"mlflow ui --backend-store-uri {meta['tracking_uri']}"
    assert tail[2].startswith(f"[gansweep] runs in MLflow: {ui}")
    facts, requests = _open(html, tmp_path)
    assert facts["summary"] == result.summary
    assert facts["heatmaps"] and all(h["ok"] and h["box"][0] > 100 for h in facts["heatmaps"])
    assert facts["heatRows"] == 3  # seeds x batch sizes, one learning rate
    assert facts["logRows"] == 6 and all(i["ok"] for i in facts["images"])
    assert all(u.startswith(("file:", "data:")) for u in requests), requests

    meta = json.loads((root / "sweep.json").read_text())
    client = MlflowClient(meta["tracking_uri"])
    logged = {a.path for a in client.list_artifacts(meta["parent_run_id"], "triage")}
    assert {"triage/report.html", "triage/triage.json", "triage/report.md"} <= logged


def test_asha_search_quiet_pruned_trials_everywhere(ray_local, tmp_path, capsys):
    """Under ASHA: pruned trials are PRUNED in the study with every epoch's value, tagged
    pruned (with the epoch) in MLflow, never counted as failures; --quiet prints no per-trial
    lines but the study's best."""
    import optuna
    from mlflow import MlflowClient

    search = {
        "space": {"lr": {"type": "float", "low": 1e-4, "high": 3e-2, "log": True}},
        # loss/d: measured every epoch and different for every trial, so ASHA has a ranking
        "objective": {"metric": "loss/d", "mode": "min"},
        "scheduler": {"type": "asha", "grace_period": 2, "reduction_factor": 2},
        "trials": 5,
        "max_concurrent": 1,
    }
    path = write_sweep(tmp_path, name="asha", search=search, grid=None, epochs=6)
    assert main(["search", str(path), "--no-triage", "--quiet"]) == 0
    out = capsys.readouterr().out
    assert "done after" not in out and "running:" not in out
    root = tmp_path / "runs" / "asha-search"
    study = optuna.load_study(study_name="asha", storage=f"sqlite:///{root / 'optuna.db'}")
    pruned = [t for t in study.trials if t.state == optuna.trial.TrialState.PRUNED]
    complete = [t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]
    assert pruned and complete, [t.state for t in study.trials]
    for t in study.trials:  # every epoch reached the study, the last one included
        assert sorted(t.intermediate_values) == list(range(1, t.user_attrs["epochs_run"] + 1))
    assert all(t.user_attrs["epochs_run"] == 6 for t in complete)
    best = study.best_trial
    assert f"best {best.user_attrs['gansweep_trial_id']}: loss/d={best.value:.4g}" in out
    meta = json.loads((root / "sweep.json").read_text())
    client = MlflowClient(meta["tracking_uri"])
    for t in pruned:
        tags = client.get_run(t.user_attrs["mlflow_run_id"]).data.tags
        assert tags["gansweep.status"] == "pruned" and tags["gansweep.verdict"] == "pruned"
        assert tags["gansweep.pruned_at_epoch"] == str(t.user_attrs["epochs_run"])
    parent = client.get_run(meta["parent_run_id"])
    assert parent.info.run_name == "search: asha"
    assert parent.data.metrics["best/loss/d"] == pytest.approx(best.value)


def test_verbose_shows_tunes_own_table(ray_local, tmp_path, capsys):
    path = write_sweep(tmp_path, name="loud", grid={"seed": [0]})
    assert main(["run", str(path), "--no-triage", "--verbose"]) == 0
    out = capsys.readouterr()
    assert "== Status ==" in out.out + out.err
    assert main(["run", str(path), "--no-triage"]) == 0
    out = capsys.readouterr()
    assert "== Status ==" not in out.out + out.err


def test_multi_objective_search_prints_the_pareto_front(ray_local, tmp_path, capsys):
    import optuna

    search = {
        "space": {"lr": {"type": "float", "low": 1e-4, "high": 3e-2, "log": True}},
        "objective": [
            {"metric": "loss/d", "mode": "min"},
            {"metric": "loss/g", "mode": "min"},
        ],
        "sampler": "nsga2",
        "trials": 3,
    }
    path = write_sweep(tmp_path, name="pareto", search=search, grid=None)
    assert main(["search", str(path), "--no-triage"]) == 0
    root = tmp_path / "runs" / "pareto-search"
    study = optuna.load_study(study_name="pareto", storage=f"sqlite:///{root / 'optuna.db'}")
    assert len(study.directions) == 2 and len(study.trials) == 3
    assert all(t.state == optuna.trial.TrialState.COMPLETE for t in study.trials)
    out = capsys.readouterr().out
    assert f"Pareto front ({len(study.best_trials)} trials):" in out
    for t in study.best_trials:
        assert f"{t.user_attrs['gansweep_trial_id']}: loss/d={t.values[0]:.4g}" in out
