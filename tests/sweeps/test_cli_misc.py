"""`gansweep train` (one run, no Ray) and `gansweep submit` (the Ray Job it builds)."""

from __future__ import annotations

import json
import shlex
from pathlib import Path

import pandas as pd
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
