"""`gansweep train` (one run, no Ray), `gansweep submit` (the Ray Job it builds), --version,
`~` and $VARS in paths, and the progress line."""

from __future__ import annotations

import json
import shlex
from pathlib import Path

import pandas as pd
import pytest
import yaml

from sweeps.cli import main
from sweeps.submit import STAGED_SPEC

from .conftest import TINY_BASE, write_sweep


def test_train_one_run_writes_everything(tmp_path, capsys):
    config = tmp_path / "run.yaml"
    config.write_text(yaml.safe_dump({**TINY_BASE, "train": {**TINY_BASE["train"], "epochs": 2}}))
    out = tmp_path / "out"
    assert main(["train", str(config), "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "Epoch 2/2" in printed and "Verdict:" in printed
    for name in (
        "config.json",
        "metrics.parquet",
        "metrics.json",
        "verdict.json",
        "checkpoint.pt",
        "samples.png",
        "dynamics.png",
        "grad_norms.png",
    ):
        assert (out / name).is_file(), name
    metrics = pd.read_parquet(out / "metrics.parquet")
    assert list(metrics.epoch) == [1, 2] and "loss/d" in metrics
    assert json.loads((out / "verdict.json").read_text())["status"]
    # a second run into the same directory is refused
    assert main(["train", str(config), "--out", str(out)]) == 2
    assert "already holds a run" in capsys.readouterr().err


def test_train_bad_config_exits_2(tmp_path, capsys):
    config = tmp_path / "run.yaml"
    config.write_text(yaml.safe_dump({"train": {"batch_size": -1}}))
    assert main(["train", str(config), "--out", str(tmp_path / "out")]) == 2
    assert "train.batch_size: must be > 0" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


class _FakeJobClient:
    """Stands in for ray.job_submission.JobSubmissionClient; inspects the staged project."""

    def __init__(self):
        self.calls = []

    def submit_job(self, entrypoint, runtime_env, metadata):
        stage = Path(runtime_env["working_dir"])
        self.calls.append(
            {
                "entrypoint": entrypoint,
                "files": {str(p.relative_to(stage)) for p in stage.rglob("*") if p.is_file()},
                "spec": (stage / STAGED_SPEC).read_text(),
                "env": runtime_env["env_vars"],
                "metadata": metadata,
            }
        )
        return "raysubmit_test"


def test_submit_ships_the_project_as_working_dir(tmp_path, monkeypatch, capsys):
    import ray.job_submission

    client = _FakeJobClient()
    monkeypatch.setattr(ray.job_submission, "JobSubmissionClient", lambda address: client)
    path = write_sweep(tmp_path, results_dir="/abs/runs")
    assert main(["submit", str(path), "--address", "http://head:8265"]) == 0
    (call,) = client.calls
    assert shlex.split(call["entrypoint"]) == [
        "python",
        "-m",
        "sweeps.cli",
        "run",
        STAGED_SPEC,
        "--address",
        "auto",
    ]
    assert {"pyproject.toml", "sweeps/cli.py", "gan_core/trainer.py", STAGED_SPEC} <= call["files"]
    assert not any(f.startswith((".git/", "runs/")) or f.endswith(".pt") for f in call["files"])
    assert call["spec"] == path.read_text()
    assert "RAY_AUTH_MODE" not in call["env"]  # the job keeps the cluster's authentication
    assert "raysubmit_test" in capsys.readouterr().out


def test_submit_validates_before_sending(tmp_path, monkeypatch, capsys):
    import ray.job_submission

    client = _FakeJobClient()
    monkeypatch.setattr(ray.job_submission, "JobSubmissionClient", lambda address: client)
    path = write_sweep(tmp_path, grid={"seed": []})
    assert main(["submit", str(path), "--address", "http://head:8265"]) == 2
    assert client.calls == [] and "grid" in capsys.readouterr().err


def test_triage_follow_up_is_a_sweep_file_that_runs(tmp_path):
    """A follow-up proposed by the triage of a sweep folder is a complete, valid sweep file."""
    from analysis import load_results, triage, write_report
    from tests.analysis.grids import make_sweep_dir

    root = make_sweep_dir(tmp_path / "sweep")
    write_sweep(root, grid={"seed": [0, 1]})  # the sweep's own file, as gansweep run keeps it
    result = triage(load_results(root))
    paths = write_report(result, tmp_path / "report", sweep_dir=root)
    follow_ups = [p for k, p in paths.items() if k.startswith("followup_")]
    assert follow_ups, "the constructed grid has inconclusive failures to decide"
    for path in follow_ups:
        assert main(["run", str(path), "--dry-run"]) == 0


# ---------------------------------------------------------------------- version, paths, progress
def test_version(capsys):
    from importlib.metadata import version

    with pytest.raises(SystemExit) as exit_info:
        main(["--version"])
    assert exit_info.value.code == 0
    assert capsys.readouterr().out.strip() == f"gansweep {version('gansweep')}"


def test_home_and_env_vars_expand_in_paths(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.setenv("RUNS_DB", str(tmp_path / "db"))
    path = write_sweep(
        tmp_path,
        results_dir="~/gansweep-runs",
        tracking={"uri": "sqlite:///$RUNS_DB/mlflow.db"},
        execution={"storage": "~/tune"},
    )
    assert main(["run", str(path), "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert f"results: {tmp_path / 'home' / 'gansweep-runs' / 'tiny'}" in out
    assert f"MLflow tracking: sqlite:///{tmp_path / 'db' / 'mlflow.db'}" in out
    assert main(["run", str(path), "--dry-run", "--out", "~/elsewhere"]) == 0
    assert f"results: {tmp_path / 'home' / 'elsewhere'}" in capsys.readouterr().out
    assert not (tmp_path / "~").exists()


def test_progress_shows_each_running_trial_and_a_moving_eta(tmp_path, monkeypatch):
    import shutil

    from sweeps.recorder import Recorder
    from sweeps.sweepdir import SweepDir

    path = write_sweep(tmp_path, grid={"seed": [0, 1, 2]}, epochs=4)
    root = tmp_path / "sweep"
    root.mkdir()
    shutil.copyfile(path, root / "sweep.yaml")
    meta = {"name": "tiny", "sweep_id": "s", "n_trials": 3, "experiment": "tiny"}
    SweepDir(root).write_meta({**meta, "tracking_uri": f"sqlite:///{tmp_path / 'm.db'}"})
    recorder = Recorder(root)
    clock = [100.0]
    monkeypatch.setattr("sweeps.recorder.time.monotonic", lambda: clock[0])
    recorder._t0 = 0.0
    recorder.observed = {"t0000": {1: {}, 2: {}}, "t0001": {1: {}}}
    line = recorder.status_line(2)
    assert "running: t0000 e2/4, t0001 e1/4" in line
    # 3 epochs in 100 s; left: 2 + 3 + 4 (t0002 not started) = 9 epochs -> 300 s
    assert "~5m00s left" in line
    clock[0] = 120.0
    recorder.observed["t0000"][3] = {}  # one more epoch, no trial finished: the estimate moves
    assert "running: t0000 e3/4" in recorder.status_line(2)
    assert "~4m00s left" in recorder.status_line(2)  # 4 epochs in 120 s, 8 left -> 240 s


def test_a_second_run_says_where_it_writes(tmp_path, capsys):
    path = write_sweep(tmp_path)
    (tmp_path / "runs" / "tiny").mkdir(parents=True)
    (tmp_path / "runs" / "tiny" / "sweep.json").write_text("{}")
    assert main(["run", str(path), "--dry-run"]) == 0
    out = capsys.readouterr().out
    taken, new = tmp_path / "runs" / "tiny", tmp_path / "runs" / "tiny-2"
    assert f"note: {taken} already holds a sweep; this run writes to {new}" in out
    assert f"gansweep resume {taken}" in out
