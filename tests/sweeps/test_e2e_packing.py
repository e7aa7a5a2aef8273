"""Packed seeds and failure-aware early stopping, end to end on a real embedded Ray with a real
MLflow server: a packed sweep gives the rows, verdicts and MLflow runs an unpacked one gives."""

from __future__ import annotations

import json
import math

import pandas as pd
import pytest

from sweeps.cli import main

from .conftest import free_port, start_mlflow_server, stop_process, write_sweep

pytestmark = pytest.mark.slow

# seeds x learning rates x batch sizes; lr 1e3 makes least squares diverge in epoch 1, so each
# pack holds members that stop at once beside members that train to the end.
GRID = {"seed": [0, 1, 2], "lr": [1e-3, 1e3], "batch_size": [32, 64]}
BASE = {
    "data": {"name": "ring", "n_points": 1000},
    "generator": {"hidden_dims": [32, 32]},
    "discriminator": {"hidden_dims": [32, 32]},
    "train": {"steps_per_epoch": 10, "loss_type": "least_squares"},
    "eval": {"every": 2, "n_samples": 200},
}


@pytest.fixture(scope="module")
def mlflow_server(tmp_path_factory, ray_local):
    tmp = tmp_path_factory.mktemp("mlflow-server")
    proc = start_mlflow_server(tmp, port := free_port())
    yield f"http://127.0.0.1:{port}"
    stop_process(proc)


def _sweep(tmp_path, name, uri, **overrides):
    path = write_sweep(tmp_path, f"{name}.yaml", name=name, base=BASE, grid=GRID, epochs=4,
                       tracking={"uri": uri}, **overrides)
    assert main(["run", str(path), "--no-triage"]) == 0
    root = tmp_path / "runs" / name
    return (pd.read_parquet(root / "trials.parquet").set_index("trial_id"),
            pd.read_parquet(root / "epochs.parquet"), root)


def test_packed_sweep_matches_the_unpacked_one_row_for_row(
    ray_local, mlflow_server, tmp_path, capsys
):
    solo, solo_epochs, _ = _sweep(tmp_path, "solo", mlflow_server)
    path = write_sweep(tmp_path, "plan.yaml", name="packed", base=BASE, grid=GRID, epochs=4,
                       execution={"pack_seeds": 16})
    assert main(["run", str(path), "--dry-run"]) == 0
    assert "packed: 12 runs in 2 Tune trials of 6 members" in capsys.readouterr().out
    packed, packed_epochs, root = _sweep(tmp_path, "packed", mlflow_server,
                                         execution={"pack_seeds": 16})

    assert sorted(packed.index) == sorted(solo.index) and len(packed) == 12
    for tid, row in solo.iterrows():
        other = packed.loc[tid]
        assert other.verdict == row.verdict and other.epochs_run == row.epochs_run, tid
        assert not other.stopped_early
        if row.verdict == "diverged":
            assert row.lr == 1e3 and row.epochs_run == 1
        for key in ("final/loss/d", "final/loss/g", "final/d/real", "final/weights/g_std"):
            if math.isfinite(row[key]):
                # Tolerance: a member of a pack of 6 and a run alone round their bmm / mm
                # reductions differently (~1e-7 per step); 40 steps keep that under 1e-3.
                assert other[key] == pytest.approx(row[key], rel=1e-3, abs=1e-5), (tid, key)
            else:
                assert not math.isfinite(other[key]), (tid, key)
        # A member that stopped in epoch 1 left the pack; its figures were saved before that.
        files = {p.name for p in (root / "trials" / tid).iterdir()}
        assert {"samples.png", "dynamics.png", "config.json", "checkpoint.pt"} <= files, tid
    assert len(packed_epochs) == len(solo_epochs) == 6 * 4 + 6 * 1

    from mlflow import MlflowClient

    client = MlflowClient(mlflow_server)
    exp = client.get_experiment_by_name("packed")
    runs = client.search_runs([exp.experiment_id], max_results=100)
    children = [r for r in runs if r.data.tags.get("gansweep.kind") == "trial"]
    assert sorted(r.data.tags["gansweep.trial_id"] for r in children) == sorted(solo.index)
    # Two Tune trials did the work; MLflow still shows one run per member, each with its own
    # metric history and parameters.
    assert len({r.data.tags["gansweep.ray_trial_id"] for r in children}) == 2
    for run in children:
        tid = run.data.tags["gansweep.trial_id"]
        steps = [m.step for m in client.get_metric_history(run.info.run_id, "loss/d")]
        assert steps == list(range(1, int(solo.loc[tid].epochs_run) + 1)), tid
        assert run.data.tags["gansweep.verdict"] == solo.loc[tid].verdict
        assert run.data.params["seed"] == str(solo.loc[tid].seed)


def test_early_stop_masks_confident_failures_and_records_them(ray_local, tmp_path):
    # The monitor's thresholds are sweep parameters like any other: with d_strong_real 0.0 and
    # d_strong_fake 1.0 every epoch reads as "D too strong", so those members reach a confident
    # d_dominance at their second evaluation; with d_strong_real 1.0 it can never hold.
    base = {**BASE, "train": {**BASE["train"], "loss_type": "non_saturating"},
            "eval": {"every": 1, "n_samples": 200},
            "monitor": {"d_strong_fake": 1.0, "window": 1}}
    grid = {"seed": [0, 1, 2], "monitor.d_strong_real": [1.0, 0.0]}
    common = {"base": base, "grid": grid, "epochs": 6, "execution": {"pack_seeds": 3}}
    path = write_sweep(tmp_path, "stop.yaml", name="stop", **common,
                       early_stop={"enabled": True, "patience": 2})
    assert main(["run", str(path), "--no-triage"]) == 0
    root = tmp_path / "runs" / "stop"
    trials = pd.read_parquet(root / "trials.parquet").set_index("trial_id")
    failing = trials[trials["monitor.d_strong_real"] == 0.0]
    healthy = trials[trials["monitor.d_strong_real"] == 1.0]
    assert len(failing) == len(healthy) == 3
    assert (failing.verdict == "d_dominance").all() and failing.stopped_early.all()
    assert (failing.epochs_run == 2).all()
    assert (healthy.epochs_run == 6).all() and not healthy.stopped_early.any()
    assert (healthy.verdict != "d_dominance").all()
    for tid in failing.index:
        assert json.loads((root / "trials" / tid / "config.json").read_text())["seed"] in (0, 1, 2)
        assert (root / "trials" / tid / "samples.png").is_file()

    from mlflow import MlflowClient

    meta = json.loads((root / "sweep.json").read_text())
    client = MlflowClient(meta["tracking_uri"])
    run = client.get_run(failing.mlflow_run_id.iloc[0])
    assert run.data.tags["gansweep.stopped_early"] == "true"

    # Without early stopping the same members end d_dominance too, after all 6 epochs.
    path = write_sweep(tmp_path, "full.yaml", name="full", **common)
    assert main(["run", str(path), "--no-triage"]) == 0
    full = pd.read_parquet(tmp_path / "runs" / "full" / "trials.parquet").set_index("trial_id")
    assert (full.verdict == trials.verdict).all() and (full.epochs_run == 6).all()
