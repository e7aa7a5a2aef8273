"""The driver as a separate process: Ctrl-C stops cleanly, and after SIGKILL `gansweep resume`
finishes the sweep without re-running finished trials or duplicating MLflow runs."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

from .conftest import write_sweep

pytestmark = pytest.mark.slow

SLOWER = {  # long enough per trial that the driver can be stopped mid-sweep
    "data": {"name": "ring", "n_points": 2000},
    "generator": {"hidden_dims": [32, 32]},
    "discriminator": {"hidden_dims": [32, 32]},
    "train": {"steps_per_epoch": 40, "batch_size": 64},
    "eval": {"every": 3, "n_samples": 200},
}


def _gansweep(*args: str, log: Path, env: dict | None = None) -> subprocess.Popen:
    env = {**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})}
    return subprocess.Popen(
        [sys.executable, "-m", "sweeps.cli", *args],
        stdout=log.open("w"),
        stderr=subprocess.STDOUT,
        env=env,
        start_new_session=True,
    )


def _wait_for(predicate, timeout: float, what: str, proc: subprocess.Popen | None = None) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        if proc is not None and proc.poll() is not None:
            raise AssertionError(f"driver exited (rc={proc.returncode}) before {what}")
        time.sleep(0.3)
    raise AssertionError(f"timed out waiting for {what}")


def _rows(root: Path) -> int:
    path = root / "trials.parquet"
    return len(pd.read_parquet(path)) if path.is_file() else 0


def _kill_group(proc: subprocess.Popen) -> None:
    """Kill what is left of a driver we started (its own process group: Ray's daemons)."""
    with_suppress = (ProcessLookupError, PermissionError)
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except with_suppress:
        pass
    proc.wait(timeout=30)


def _mlflow_children(uri: str, experiment: str) -> list:
    from mlflow import MlflowClient

    client = MlflowClient(uri)
    exp = client.get_experiment_by_name(experiment)
    runs = client.search_runs([exp.experiment_id], max_results=1000)
    return [r for r in runs if r.data.tags.get("gansweep.kind") == "trial"]


def _resume(root: Path, tmp_path: Path) -> None:
    """`gansweep resume` of an interrupted sweep, which must finish cleanly."""
    resumed = _gansweep("resume", str(root), "--no-triage", log=tmp_path / "resume.log")
    try:
        assert resumed.wait(timeout=400) == 0, (tmp_path / "resume.log").read_text()
    finally:
        _kill_group(resumed)


def _check_complete(root: Path, n: int, epochs: int) -> pd.DataFrame:
    from mlflow import MlflowClient

    trials = pd.read_parquet(root / "trials.parquet")
    assert sorted(trials.trial_id) == [f"t{i:04d}" for i in range(n)]
    assert (trials.status == "ok").all() and (trials.epochs_run == epochs).all()
    meta = json.loads((root / "sweep.json").read_text())
    children = _mlflow_children(meta["tracking_uri"], meta["experiment"])
    assert sorted(r.data.tags["gansweep.trial_id"] for r in children) == sorted(trials.trial_id)
    client = MlflowClient(meta["tracking_uri"])
    for run in children:
        # Every epoch exactly once. A killed driver loses the last ~2 s of buffered metrics;
        # the resumed one fills them in when the trial ends (so they may come last in time).
        steps = [m.step for m in client.get_metric_history(run.info.run_id, "loss/d")]
        assert sorted(steps) == list(range(1, epochs + 1)), steps
        assert run.info.status == "FINISHED"
    epochs_table = pd.read_parquet(root / "epochs.parquet")
    assert len(epochs_table) == n * epochs
    assert not epochs_table.duplicated(["trial_id", "epoch"]).any()
    return trials


@pytest.mark.parametrize(
    ("sig", "code"), [(signal.SIGINT, 130), (signal.SIGTERM, 143)], ids=["SIGINT", "SIGTERM"]
)
def test_signal_stops_cleanly_then_resume(tmp_path, sig, code):
    path = write_sweep(tmp_path, base=SLOWER, epochs=6, grid={"seed": [0, 1, 2, 3, 4]})
    root = tmp_path / "runs" / "tiny"
    proc = _gansweep("run", str(path), "--no-triage", log=tmp_path / "run.log")
    try:
        _wait_for(lambda: _rows(root) >= 1, 240, "a finished trial", proc)
        proc.send_signal(sig)
        rc = proc.wait(timeout=120)
    finally:
        _kill_group(proc)
    log = (tmp_path / "run.log").read_text()
    assert rc == code, log
    assert "Traceback" not in log and "core dump" not in log.lower(), log
    assert "SIGTERM received" not in log, log  # Ray's own handler, which exits mid-step
    assert f"gansweep resume {root}" in log
    done = _rows(root)
    assert 1 <= done < 5

    _resume(root, tmp_path)
    _check_complete(root, 5, 6)


def _in_flight_checkpoint(root: Path, every: int) -> set[str]:
    """Trials running in Tune's last snapshot of the experiment (the state that
    `Tuner.restore` reads) with their first checkpoint in it, once another trial finished.

    Read from the snapshot's content, not from file times: it holds each trial's status and
    last result, and Tune fetches the result after a checkpoint only once it has registered
    that checkpoint, so a running trial with a result past epoch `every` has one. Only trials
    at most at epoch 2 * `every` count: they have epochs left to run when the kill lands,
    where one near its end could finish (and be recorded) first.
    """
    done = set(pd.read_parquet(root / "trials.parquet").trial_id) if _rows(root) else set()
    states = sorted((root / "tune" / "grid").glob("experiment_state-*.json"))
    if not done or len(done) >= 4 or not states:
        return set()
    try:
        snapshot = json.loads(states[-1].read_text())
        entries = [(json.loads(t), json.loads(m)) for t, m in snapshot["trial_data"]]
    except (OSError, ValueError, KeyError):  # caught mid-write
        return set()
    return {
        trial["custom_trial_name"]
        for trial, meta in entries
        if trial["status"] == "RUNNING"
        and trial["custom_trial_name"] not in done
        and every < (meta.get("last_result") or {}).get("training_iteration", 0) <= 2 * every
    }


def _timeline(root: Path) -> str:
    """When each checkpoint and experiment snapshot was written, for a missed window."""
    paths = [
        *root.glob("tune/grid/experiment_state-*.json"),
        *root.glob("tune/grid/t*/checkpoint_*"),
    ]
    if (root / "trials.parquet").is_file():
        paths.append(root / "trials.parquet")
    start = min((p.stat().st_mtime for p in paths), default=0.0)
    lines = sorted((p.stat().st_mtime - start, p.relative_to(root)) for p in paths)
    return "\n".join(f"{t:7.2f}s {p}" for t, p in lines)


def test_resume_after_killed_driver(tmp_path):
    # Trials of several seconds, so the kill lands while one is between checkpoints.
    # Checkpoints at epochs 4, 8, 12 (two kept): the one at 4 stays on disk until the trial ends.
    every = 4
    base = {**SLOWER, "train": {"steps_per_epoch": 400, "batch_size": 64}}
    path = write_sweep(
        tmp_path, base=base, epochs=12, grid={"seed": [0, 1, 2, 3]}, checkpoint_every=every
    )
    root = tmp_path / "runs" / "tiny"
    # Snapshot the experiment every second (Tune's default is at least every 10 s), so that
    # the kill below finds a trial whose checkpoint the snapshot already knows.
    env = {"TUNE_GLOBAL_CHECKPOINT_S": "1"}
    proc = _gansweep("run", str(path), "--no-triage", log=tmp_path / "run.log", env=env)
    in_flight: set[str] = set()
    try:
        try:
            _wait_for(
                lambda: in_flight.update(_in_flight_checkpoint(root, every)) or in_flight,
                240,
                "a checkpoint mid-trial",
                proc,
            )
        except AssertionError as missed:
            raise AssertionError(f"{missed}\n{_timeline(root)}") from None
        os.kill(proc.pid, signal.SIGKILL)  # the driver only, as a crash would
        proc.wait(timeout=30)
    finally:
        _kill_group(proc)
    before = pd.read_parquet(root / "trials.parquet").set_index("trial_id").finished_at.to_dict()
    assert 1 <= len(before) < 4

    resume_started = pd.Timestamp.now(tz="UTC").floor("s")
    _resume(root, tmp_path)
    trials = _check_complete(root, 4, 12).set_index("trial_id")
    for tid, finished_at in before.items():  # finished trials were not run again
        assert trials.finished_at[tid] == finished_at
        assert trials.attempts[tid] == 1
    # The in-flight trials keep their first start and count the resume as a second attempt.
    carried = trials.loc[sorted(in_flight)]
    assert (carried.attempts >= 2).all(), trials[["started_at", "attempts"]].to_string()
    assert (pd.to_datetime(carried.started_at) < resume_started).all(), carried.started_at
    log = (tmp_path / "resume.log").read_text()
    assert "(resumed at epoch " in log, log  # the in-flight trial went on from its checkpoint
    # Trials the killed driver recorded before their MLflow run ids reached the table get them.
    assert trials.mlflow_run_id.notna().all(), trials.mlflow_run_id.to_string()
    assert "not logged to MLflow" not in log, log


def test_write_error_mid_sweep_then_resume_loses_nothing(tmp_path):
    """The sweep directory turns immutable after the first row: one clear line, no retries,
    exit 74; once writable again, resume writes the missing rows and runs the rest."""
    from .test_faults import immutable

    path = write_sweep(tmp_path, base=SLOWER, epochs=6, grid={"seed": [0, 1, 2, 3, 4]})
    root = tmp_path / "runs" / "tiny"
    proc = _gansweep("run", str(path), "--no-triage", log=tmp_path / "run.log")
    try:
        _wait_for(lambda: _rows(root) >= 1, 240, "a finished trial", proc)
        with immutable(root):
            rc = proc.wait(timeout=240)
    finally:
        _kill_group(proc)
    log = (tmp_path / "run.log").read_text()
    assert rc == 74, log
    assert "Traceback" not in log and "worker lost" not in log and "retrying" not in log, log
    errors = [line for line in log.splitlines() if line.startswith("[gansweep] error:")]
    assert len(errors) == 1 and "cannot write" in errors[0], log
    assert f"gansweep resume {root}" in errors[0]
    assert _rows(root) < 5

    _resume(root, tmp_path)
    _check_complete(root, 5, 6)
