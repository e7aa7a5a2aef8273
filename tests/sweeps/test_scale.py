"""Results at scale: append-only parts, readers that see them, flat cost, bounded memory.

The full-size measurement is bench/scale.py; these tests check the layout's guarantees.
"""

from __future__ import annotations

import math
import shutil

import pandas as pd
import pyarrow.parquet as pq

from analysis import load_epochs, load_results
from analysis.load import read_sweep_table
from sweeps.results import MERGE_AT, PARTS, SweepTables
from sweeps.sweepdir import SweepDir


def _trial(tables: SweepTables, i: int, status: str = "ok", epochs: int = 3, **extra) -> None:
    tid = f"t{i:04d}"
    row = {
        "trial_id": tid,
        "seed": i,
        "init_seed": i,
        "data_seed": i,
        "batch_size": 64,
        "g_lr": 1e-3,
        "d_lr": 1e-3,
        "lr": 1e-3,
        "verdict": "stable" if status == "ok" else "error",
        "status": status,
        "error": None if status == "ok" else "boom",
        "epochs_run": epochs,
        **extra,
    }
    records = [{"trial_id": tid, "epoch": e, "loss/d": 0.5 + i} for e in range(1, epochs + 1)]
    tables.upsert(row, records)


def _sweep(tmp_path) -> SweepDir:
    sweep_dir = SweepDir(tmp_path / "sweep")
    sweep_dir.write_meta({"name": "scale", "varied": ["seed"]})
    return sweep_dir


def test_each_trial_adds_a_part_and_nothing_written_is_rewritten(tmp_path):
    sweep_dir = _sweep(tmp_path)
    tables = SweepTables(sweep_dir)
    _trial(tables, 0)
    tables.append()
    first = sorted((sweep_dir.root / PARTS / "trials").iterdir())
    stamp = [(p.name, p.stat().st_ino, p.stat().st_mtime_ns) for p in first]
    for i in range(1, 5):
        _trial(tables, i)
        tables.append()
    parts = sorted((sweep_dir.root / PARTS / "trials").iterdir())
    assert len(parts) == 5 and len(list((sweep_dir.root / PARTS / "epochs").iterdir())) == 5
    assert [(p.name, p.stat().st_ino, p.stat().st_mtime_ns) for p in parts[:1]] == stamp
    assert not sweep_dir.trials_parquet.exists()  # nothing compacted mid-sweep unless asked
    # Every reader sees the parts as the tables, while the sweep runs.
    table = load_results(sweep_dir.root)
    assert sorted(table.trial_id) == [f"t{i:04d}" for i in range(5)]
    epochs = load_epochs(sweep_dir.root)
    assert epochs is not None and len(epochs) == 15
    assert sorted(SweepTables(sweep_dir).trials) == [f"t{i:04d}" for i in range(5)]


def test_a_killed_driver_leaves_parts_that_the_next_one_compacts(tmp_path):
    sweep_dir = _sweep(tmp_path)
    tables = SweepTables(sweep_dir)
    for i in range(3):
        _trial(tables, i, status="error" if i == 1 else "ok")
        tables.append()
    tables.compact_trials()  # the driver refreshed trials.parquet, then died
    _trial(tables, 3)
    tables.append()
    assert len(pd.read_parquet(sweep_dir.trials_parquet)) == 3  # behind by one: readers know
    assert len(read_sweep_table(sweep_dir.root, "trials")) == 4

    resumed = SweepTables(sweep_dir)  # a new driver: numbering goes on after the parts
    assert resumed.seq == tables.seq
    _trial(resumed, 1, status="ok", epochs=5)  # the errored trial, rerun: replaces its rows
    resumed.flush()
    assert sorted(p.name for p in sweep_dir.root.iterdir()) == [
        "epochs.parquet",
        "sweep.json",
        "trials.parquet",
    ]
    trials = pd.read_parquet(sweep_dir.trials_parquet)
    assert list(trials.trial_id) == [f"t{i:04d}" for i in range(4)]
    assert trials.set_index("trial_id").status["t0001"] == "ok"
    epochs = pd.read_parquet(sweep_dir.epochs_parquet)
    assert (epochs.trial_id == "t0001").sum() == 5
    assert not epochs.duplicated(["trial_id", "epoch"]).any() and len(epochs) == 3 * 3 + 5


def test_single_parts_are_merged_and_leftovers_of_a_crash_are_not_read_twice(tmp_path):
    sweep_dir = _sweep(tmp_path)
    tables = SweepTables(sweep_dir)
    folder = sweep_dir.root / PARTS / "epochs"
    for i in range(MERGE_AT - 1):
        _trial(tables, i, epochs=2)
        tables.append()
    kept = {p.name: p.read_bytes() for p in folder.iterdir()}
    _trial(tables, MERGE_AT - 1, epochs=2)
    tables.append()
    names = sorted(p.name for p in folder.iterdir())
    assert names == [f"{1:08d}-{MERGE_AT:08d}.parquet"]
    # A driver killed between writing the merged part and deleting its inputs.
    for name, data in kept.items():
        (folder / name).write_bytes(data)
    epochs = read_sweep_table(sweep_dir.root, "epochs")
    assert epochs.num_rows == 2 * MERGE_AT
    tables.flush()
    assert pq.read_table(sweep_dir.epochs_parquet).num_rows == 2 * MERGE_AT
    assert not (sweep_dir.root / PARTS).exists()


def test_new_columns_in_later_parts_are_kept(tmp_path):
    """A column the first trials lack (an error before any evaluation) is read, as nulls there."""
    sweep_dir = _sweep(tmp_path)
    tables = SweepTables(sweep_dir)
    _trial(tables, 0, status="error", epochs=0)
    tables.append()
    _trial(tables, 1, **{"final/quality/modes": 7.0})
    tables.append()
    tables.compact_trials()
    _trial(tables, 2, **{"final/quality/modes": math.nan, "best/quality/kl": 0.25})
    tables.append()
    trials = load_results(sweep_dir.root).set_index("trial_id")
    assert trials["final/quality/modes"]["t0001"] == 7.0
    assert math.isnan(trials["final/quality/modes"]["t0000"])
    assert trials["best/quality/kl"]["t0002"] == 0.25
    tables.flush()
    back = pd.read_parquet(sweep_dir.trials_parquet).set_index("trial_id")
    assert back["best/quality/kl"]["t0002"] == 0.25 and back.error["t0000"] == "boom"


def test_old_sweep_directories_read_as_before(tmp_path):
    """A sweep written before parts (single files, no metadata) still reads and resumes."""
    sweep_dir = _sweep(tmp_path)
    tables = SweepTables(sweep_dir)
    for i in range(2):
        _trial(tables, i)
    tables.flush()
    for path in (sweep_dir.trials_parquet, sweep_dir.epochs_parquet):
        table = pq.read_table(path)
        pq.write_table(table.replace_schema_metadata(None), path)  # as the old writer left it
    again = SweepTables(sweep_dir)
    assert again.seq == 1 and len(again.trials) == 2 and len(again.epochs["t0001"]) == 3
    _trial(again, 2)
    again.append()
    assert len(load_results(sweep_dir.root)) == 3
    shutil.rmtree(sweep_dir.root / PARTS)
    assert len(load_results(sweep_dir.root)) == 2


def test_a_column_that_is_text_in_one_part_and_numbers_in_another_reads_as_text(tmp_path):
    """E.g. a varied `data.path`: a path for some trials, absent (null) or a number for others."""
    sweep_dir = _sweep(tmp_path)
    tables = SweepTables(sweep_dir)
    _trial(tables, 0, **{"data.path": "/data/a.npz"})
    tables.append()
    _trial(tables, 1, **{"data.path": None})
    _trial(tables, 2, **{"data.path": 3.0})
    tables.append()
    column = load_results(sweep_dir.root).set_index("trial_id")["data.path"]
    assert column["t0000"] == "/data/a.npz" and float(column["t0002"]) == 3.0
    assert pd.isna(column["t0001"])
    tables.flush()
    assert pd.read_parquet(sweep_dir.trials_parquet)["data.path"].tolist()[0] == "/data/a.npz"


def _checkpoint(tmp_path, tid: str, epochs: int):
    """A final Tune checkpoint as sweeps.trial writes it (history and verdict per member)."""
    import json

    from ray.tune import Checkpoint

    from sweeps.trial import CKPT_MEMBERS, CKPT_STATE

    directory = tmp_path / f"ckpt-{tid}"
    member = directory / CKPT_MEMBERS / tid
    member.mkdir(parents=True)
    (directory / CKPT_STATE).write_text(json.dumps({"trial_ids": [tid], "final": True}))
    history = [{"epoch": e, "loss/d": 0.5, "quality/modes": 8.0} for e in range(1, epochs + 1)]
    (member / "history.json").write_text(json.dumps(history))
    verdict = {"status": "stable", "onset_epoch": None, "evidence": {}, "problems": []}
    (member / "verdict.json").write_text(json.dumps(verdict))
    return Checkpoint.from_directory(str(directory))


def test_driver_keeps_no_records_of_finished_trials_and_never_waits_for_mlflow(tmp_path):
    """A busy MLflow writer delays the run ids, not the trial's rows; finished trials leave
    only their summary in the driver; the end of the sweep fills in the run ids."""
    import threading
    import time

    from mlflow import MlflowClient

    from sweeps.recorder import Recorder
    from sweeps.runner import _create_dir, plan_run

    from .conftest import write_sweep

    plan = plan_run(write_sweep(tmp_path, grid={"seed": [0, 1, 2]}), nodes=[{"CPU": 2}])
    recorder = Recorder(_create_dir(plan).root)
    recorder.connect()
    busy = threading.Event()
    for i in range(3):
        tid = f"t{i:04d}"
        config = {"trial": {"members": [{"trial_id": tid, "point": {"seed": i}}]}}
        recorder.trial_started(config, f"ray-{i}")
        if i == 0:
            recorder.tracker._writer.submit(busy.wait, 60)  # the server is slow from here on
        for e in range(1, 4):
            record = {"epoch": e, "loss/d": 0.5, "quality/modes": 8.0}
            recorder.trial_result(config, {"records": {tid: record}}, f"ray-{i}")
        t0 = time.monotonic()
        recorder.trial_finished(config, {}, _checkpoint(tmp_path, tid, 3), f"ray-{i}")
        assert time.monotonic() - t0 < 5  # not behind the stalled writer
    assert recorder.observed == {} and recorder.sinks == {} and recorder.tracker.sinks == set()
    assert recorder.epochs_done == 9 and set(recorder.done) == {"t0000", "t0001", "t0002"}
    rows = read_sweep_table(recorder.dir.root, "trials").to_pandas()
    assert len(rows) == 3 and rows.mlflow_run_id.isna().all()  # on disk, MLflow still to come
    busy.set()
    recorder.finish(complete=True)
    trials = pd.read_parquet(recorder.dir.trials_parquet)
    assert trials.mlflow_run_id.notna().all() and recorder.unlogged() == []
    client = MlflowClient(recorder.tracker.uri)
    for run_id in trials.mlflow_run_id:
        assert client.get_run(run_id).info.status == "FINISHED"
        steps = [m.step for m in client.get_metric_history(run_id, "loss/d")]
        assert sorted(steps) == [1, 2, 3]


def _finish_trials_behind_mlflow(tmp_path, monkeypatch, n: int):
    """A recorder whose n finished trials were all left behind by an MLflow that could not
    keep up (the writer's backlog bound at -1: every trial is past it)."""
    from sweeps import tracking
    from sweeps.recorder import Recorder
    from sweeps.runner import _create_dir, plan_run

    from .conftest import write_sweep

    monkeypatch.setattr(tracking, "MAX_BACKLOG", -1)
    plan = plan_run(write_sweep(tmp_path, grid={"seed": list(range(n))}), nodes=[{"CPU": 2}])
    recorder = Recorder(_create_dir(plan).root)
    recorder.connect()
    for i in range(n):
        tid = f"t{i:04d}"
        config = {"trial": {"members": [{"trial_id": tid, "point": {"seed": i}}]}}
        recorder.trial_started(config, f"ray-{i}")
        for e in range(1, 4):
            record = {"epoch": e, "loss/d": 0.5, "quality/modes": 8.0}
            recorder.trial_result(config, {"records": {tid: record}}, f"ray-{i}")
        recorder.trial_finished(config, {}, _checkpoint(tmp_path, tid, 3), f"ray-{i}")
    recorder.finish(complete=True, log_left_behind_later=True)
    return recorder


def _runs_per_trial(recorder) -> dict[str, list]:
    from mlflow import MlflowClient

    client = MlflowClient(recorder.tracker.uri)
    runs = client.search_runs([recorder.tracker.experiment_id], "tags.gansweep.trial_id != ''")
    out: dict[str, list] = {}
    for run in runs:
        out.setdefault(run.data.tags["gansweep.trial_id"], []).append(run)
    return out


def test_runs_mlflow_fell_behind_on_are_logged_after_the_sweep(tmp_path, monkeypatch, capsys):
    """Trials left behind by a slow MLflow are not left for the user: once the sweep's
    processes are gone, the driver logs them, each once and complete."""
    from sweeps import recorder as recorder_module

    recorder = _finish_trials_behind_mlflow(tmp_path, monkeypatch, 3)
    assert recorder.left_behind == ["t0000", "t0001", "t0002"]
    assert "not logged" not in capsys.readouterr().out  # not yet told to sync: logged next
    monkeypatch.setattr(recorder_module, "_PROGRESS_EVERY_S", 0.0)  # a line per run
    recorder.log_left_behind()
    out = capsys.readouterr().out
    assert "MLflow fell 3 run(s) behind the sweep; logging them now" in out
    assert "MLflow: 1/3 run(s) logged" in out and "MLflow: 3/3 run(s) logged" in out
    assert "not logged" not in out and recorder.left_behind == []
    trials = pd.read_parquet(recorder.dir.trials_parquet)
    assert trials.mlflow_run_id.notna().all()
    runs = _runs_per_trial(recorder)
    assert sorted(runs) == ["t0000", "t0001", "t0002"]
    for (run,) in runs.values():
        assert run.info.status == "FINISHED" and run.info.run_id in set(trials.mlflow_run_id)
        assert run.data.tags["gansweep.verdict"] == "stable"
        steps = [m.step for m in recorder.tracker._client.get_metric_history(run.info.run_id,
                                                                             "loss/d")]
        assert sorted(steps) == [1, 2, 3]


def test_sigterm_while_logging_left_behind_runs_leaves_the_rest_for_sync(
    tmp_path, monkeypatch, capsys
):
    """A scheduler's SIGTERM during that logging stops it at once; what was logged keeps its
    run id, the rest is named with the `gansweep sync` line, and sync logs each trial once."""
    import os
    import signal

    from sweeps.recorder import sync_outcomes
    from sweeps.tracking import MlflowSink

    recorder = _finish_trials_behind_mlflow(tmp_path, monkeypatch, 4)
    finish = MlflowSink.finish

    def finish_then_sigterm(sink, *args, **kwargs):
        done = finish(sink, *args, **kwargs)
        os.kill(os.getpid(), signal.SIGTERM)  # the scheduler stops the job after one run
        return done

    monkeypatch.setattr(MlflowSink, "finish", finish_then_sigterm)
    before = signal.getsignal(signal.SIGTERM)
    recorder.log_left_behind()
    assert signal.getsignal(signal.SIGTERM) is before  # the process's own handler is back
    out = capsys.readouterr().out
    assert "stopped logging to MLflow" in out
    left = recorder.left_behind
    assert 3 <= len(left) <= 4, out  # the run whose id had not reached the table yet, too
    assert f"{len(left)} trial(s) not logged to MLflow" in out
    assert f"gansweep sync {recorder.dir.root}" in out
    monkeypatch.setattr(MlflowSink, "finish", finish)
    new, old = sync_outcomes(recorder.dir.root, recorder.tracker)
    assert new + old == 4 and new == 3  # the interrupted run is found, not made again
    assert {t: len(r) for t, r in _runs_per_trial(recorder).items()} == dict.fromkeys(
        ["t0000", "t0001", "t0002", "t0003"], 1
    )
    assert pd.read_parquet(recorder.dir.trials_parquet).mlflow_run_id.notna().all()


def test_a_reader_during_the_sweep_never_meets_a_part_merged_away(tmp_path):
    """Parts merged between listing and reading them: the reader lists again."""
    import threading

    sweep_dir = _sweep(tmp_path)
    tables = SweepTables(sweep_dir)
    done = threading.Event()

    def write() -> None:
        for i in range(3 * MERGE_AT):
            _trial(tables, i, epochs=1)
            tables.append()
        done.set()

    writer = threading.Thread(target=write)
    writer.start()
    seen = []
    while not done.is_set():
        seen.append(read_sweep_table(sweep_dir.root, "epochs").num_rows)
    writer.join()
    assert seen == sorted(seen) and len(seen) > 3
    assert read_sweep_table(sweep_dir.root, "epochs").num_rows == 3 * MERGE_AT


def test_resumed_driver_completes_the_run_a_killed_driver_left_open(tmp_path):
    """Driver 1 writes a trial's rows, then dies before its MLflow run is complete (the run
    id never reaches the table). Tune restores the trial from its final checkpoint and it
    reports again: driver 2 keeps the rows and completes that same run from them."""
    import threading

    from mlflow import MlflowClient

    from sweeps.recorder import Recorder
    from sweeps.runner import _create_dir, plan_run

    from .conftest import write_sweep

    plan = plan_run(write_sweep(tmp_path, grid={"seed": [0]}), nodes=[{"CPU": 2}])
    root = _create_dir(plan).root
    config = {"trial": {"members": [{"trial_id": "t0000", "point": {"seed": 0}}]}}
    first = Recorder(root)
    first.connect()
    first.trial_started(config, "ray-0")
    for e in range(1, 4):
        first.trial_result(config, {"records": {"t0000": {"epoch": e, "loss/d": 0.5}}}, "ray-0")
    dead = threading.Event()
    first.tracker._writer.submit(dead.wait, 120)  # the driver dies before the writer gets on
    first.trial_finished(config, {}, _checkpoint(tmp_path, "t0000", 3), "ray-0")
    written = read_sweep_table(root, "trials").to_pandas()
    assert written.mlflow_run_id.isna().all()
    try:
        second = Recorder(root)
        second.connect()
        second.trial_started(config, "ray-0b")  # restored from its final checkpoint
        final = _checkpoint(tmp_path / "b", "t0000", 3)
        assert second.trial_finished(config, {}, final, "ray-0b") == []  # no second row
        second.finish(complete=True)
        trials = pd.read_parquet(second.dir.trials_parquet)
        assert len(trials) == 1 and trials.finished_at[0] == written.finished_at[0]
        assert second.unlogged() == [] and trials.mlflow_run_id.notna().all()
        client = MlflowClient(second.tracker.uri)
        run = client.get_run(trials.mlflow_run_id[0])
        assert run.info.status == "FINISHED"
        assert run.data.tags["gansweep.verdict"] == "stable"
        steps = [m.step for m in client.get_metric_history(run.info.run_id, "loss/d")]
        assert sorted(steps) == [1, 2, 3]
    finally:
        dead.set()


def test_a_recorded_trial_leaves_tune_only_its_scalars():
    """Tune keeps every trial object to the end of the sweep: once the trial's rows are in
    the tables, its records, verdicts and metric statistics go; a trial not yet recorded
    keeps everything (the reconciliation after a restore writes its rows from them)."""
    import json
    from types import SimpleNamespace

    from ray.train import CheckpointConfig
    from ray.train._internal.checkpoint_manager import _CheckpointManager
    from ray.train._internal.session import _TrainingResult
    from ray.tune.experiment.trial import Trial

    from sweeps.callback import SweepCallback

    def finished(tid: str) -> Trial:
        trial = Trial("standin", config={"trial": {"members": [{"trial_id": tid}]}}, stub=True)
        manager = _CheckpointManager(CheckpointConfig(num_to_keep=2))
        trial.run_metadata.checkpoint_manager = manager
        for e in range(1, 21):
            record = {"epoch": e, **{f"loss/m{k}": 0.1 * k + e for k in range(40)}}
            result = {"epoch": e, "training_iteration": e, "objective": 8.0, "done": False,
                      "final": e == 20, "records": json.dumps({tid: record})}  # fmt: skip
            if e == 20:
                verdict = {"status": "stable", "onset_epoch": None, "evidence": {"q": 1.0}}
                result.update(verdict="stable", verdicts={tid: verdict})
            trial.update_last_result(result)
        manager.register_checkpoint(_TrainingResult(None, result))
        return trial

    callback = SweepCallback("unused")
    callback._recorder = SimpleNamespace(done={"t0": {"status": "ok"}})
    recorded, unrecorded = finished("t0"), finished("t1")
    before = len(recorded.run_metadata.get_json_state())
    callback._let_go_of_results(recorded)
    callback._let_go_of_results(unrecorded)
    after = len(recorded.run_metadata.get_json_state())
    assert after < before / 4, (before, after)
    assert "records" not in recorded.last_result and "verdicts" not in recorded.last_result
    assert recorded.last_result["training_iteration"] == 20
    assert recorded.last_result["verdict"] == "stable"
    assert recorded.run_metadata.metric_analysis == {}
    kept = recorded.run_metadata.checkpoint_manager.latest_checkpoint_result.metrics
    assert "records" not in kept
    assert "records" in unrecorded.last_result and unrecorded.run_metadata.metric_analysis
    assert len(unrecorded.run_metadata.get_json_state()) > before - 50  # ids differ in length
