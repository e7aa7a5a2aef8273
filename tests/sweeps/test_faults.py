"""Faults around the sweep directory: unwritable at start, two launches at once, file modes.

The slow end-to-end faults (SIGTERM, a write error mid-sweep) are in test_e2e_driver.py.
"""

from __future__ import annotations

import contextlib
import os
import stat
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

from .conftest import write_sweep


@contextlib.contextmanager
def immutable(path: Path):
    """`chattr +i`: nobody, root included, may create files in `path` (skips without it)."""
    done = subprocess.run(["chattr", "+i", str(path)], capture_output=True, text=True)
    if done.returncode != 0:
        pytest.skip(f"chattr +i not possible here: {done.stderr.strip()}")
    try:
        yield path
    finally:
        subprocess.run(["chattr", "-i", str(path)], check=True)


def test_unwritable_results_dir_is_one_line_before_ray_starts(tmp_path):
    results = tmp_path / "runs"
    results.mkdir()
    path = write_sweep(tmp_path, results_dir=str(results))
    with immutable(results):
        t0 = time.monotonic()
        done = subprocess.run(
            [sys.executable, "-m", "sweeps.cli", "run", str(path), "--no-triage"],
            capture_output=True,
            text=True,
            timeout=120,
        )
        elapsed = time.monotonic() - t0
    assert done.returncode == 2, done.stdout + done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("gansweep: error: results_dir:"), done.stderr
    assert str(results) in lines[0] and "not permitted" in lines[0]
    assert "Ray" not in done.stdout + done.stderr
    assert elapsed < 30  # a Ray start alone takes several seconds
    assert list(results.iterdir()) == []


def test_dry_run_names_an_unwritable_out(tmp_path):
    from sweeps.runner import plan_run
    from sweeps.spec import SpecError

    folder = tmp_path / "locked"
    folder.mkdir()
    path = write_sweep(tmp_path)
    with immutable(folder), pytest.raises(SpecError, match=r"--out: cannot write to .*locked"):
        plan_run(path, out=str(folder / "sweep"), nodes=[{"CPU": 2}])


def test_two_launches_never_share_a_directory(tmp_path, capsys):
    from sweeps.runner import _create_dir, plan_run

    path = write_sweep(tmp_path)
    # Both planned before either starts: today's launches plan, then start Ray for seconds.
    first, second = (plan_run(path, nodes=[{"CPU": 2}]) for _ in range(2))
    assert first.root == second.root
    a, b = _create_dir(first), _create_dir(second)
    assert a.root != b.root
    assert a.root == tmp_path / "runs" / "tiny" and b.root == tmp_path / "runs" / "tiny-2"
    assert a.read_meta()["sweep_id"] != b.read_meta()["sweep_id"]
    assert f"{a.root} was taken by another launch; writing to {b.root}" in capsys.readouterr().out
    # Planned after both started: the plan picks the next free name (the CLI says so), and the
    # reservation finds it free.
    third = plan_run(path, nodes=[{"CPU": 2}])
    assert third.root == tmp_path / "runs" / "tiny-3"
    assert _create_dir(third).root == third.root
    assert "taken by another launch" not in capsys.readouterr().out


def test_concurrent_processes_reserve_distinct_directories(tmp_path):
    path = write_sweep(tmp_path)
    script = (
        "import sys; from sweeps.runner import plan_run, _create_dir\n"
        "plan = plan_run(sys.argv[1], nodes=[{'CPU': 2}])\n"
        "import time; time.sleep(max(0.0, float(sys.argv[2]) - time.time()))\n"
        "print(_create_dir(plan).root)\n"
    )
    start = time.time() + 15  # all four wait for the same instant, then claim
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", script, str(path), str(start)], stdout=subprocess.PIPE, text=True
        )
        for _ in range(4)
    ]
    roots = [p.communicate(timeout=120)[0].strip().splitlines()[-1] for p in procs]
    assert all(p.returncode == 0 for p in procs)
    assert len(set(roots)) == 4, roots


def test_out_holding_a_sweep_is_refused_at_reservation(tmp_path):
    from sweeps.runner import _create_dir, plan_run
    from sweeps.spec import SpecError

    path = write_sweep(tmp_path)
    out = str(tmp_path / "here")
    first, second = (plan_run(path, out=out, nodes=[{"CPU": 2}]) for _ in range(2))
    _create_dir(first)
    with pytest.raises(SpecError, match="already holds a sweep"):
        _create_dir(second)


def test_result_files_are_readable_by_others(tmp_path):
    from sweeps.results import SweepTables
    from sweeps.sweepdir import SweepDir

    old = os.umask(0o022)
    try:
        sweep_dir = SweepDir(tmp_path)
        sweep_dir.write_meta({"name": "x"})
        tables = SweepTables(sweep_dir)
        tables.upsert({"trial_id": "t0000", "status": "ok"}, [{"trial_id": "t0000", "epoch": 1}])
        tables.flush()
    finally:
        os.umask(old)
    for path in (sweep_dir.meta_path, sweep_dir.trials_parquet, sweep_dir.epochs_parquet):
        assert stat.S_IMODE(path.stat().st_mode) == 0o644, path
    assert len(pd.read_parquet(sweep_dir.trials_parquet)) == 1


def test_nan_is_a_result_and_survives_the_tables(tmp_path):
    """A diverged epoch's NaN loss is kept when the tables are read back (sync and resume
    read them); a key a trial never logged stays absent."""
    import math

    from sweeps.results import SweepTables, epoch_rows
    from sweeps.sweepdir import SweepDir

    sweep_dir = SweepDir(tmp_path)
    tables = SweepTables(sweep_dir)
    records = [
        {"epoch": 1, "loss/d": 0.5, "quality/modes": 3.0, "monitor/phase": "warmup"},
        {"epoch": 2, "loss/d": math.nan, "monitor/phase": "diverged"},
    ]
    tables.upsert({"trial_id": "t0000", "status": "ok"}, epoch_rows("t0000", records))
    tables.upsert({"trial_id": "t0001", "status": "ok"}, epoch_rows("t0001", records[:1]))
    tables.flush()
    back = SweepTables(sweep_dir).epochs
    assert math.isnan(back["t0000"][1]["loss/d"])
    assert "quality/modes" not in back["t0000"][1]
    assert back["t0000"][0] == {"trial_id": "t0000", **records[0]}
    assert back["t0001"] == [{"trial_id": "t0001", **records[0]}]
    df = pd.read_parquet(sweep_dir.epochs_parquet)  # what analysis reads: as before
    assert list(df.columns[:2]) == ["trial_id", "epoch"] and len(df) == 3


def test_pruned_trials_are_status_pruned(tmp_path):
    """A trial the scheduler stopped is censored: status `pruned`, with the epochs it ran."""
    from sweeps.recorder import Recorder
    from sweeps.results import trial_row
    from sweeps.runner import _create_dir, plan_run
    from sweeps.trial import pack_configs

    plan = plan_run(write_sweep(tmp_path), nodes=[{"CPU": 2}])
    recorder = Recorder(_create_dir(plan).root)
    config = {"trial": {"members": [{"trial_id": "t0000", "point": {"seed": 0}}]}}
    cfg = pack_configs(recorder.spec, config)[2][0]
    recorder.observed["t0000"] = {
        e: {"epoch": e, "loss/d": 1.3, "loss/g": 0.7, "quality/modes": 2.0} for e in (1, 2)
    }
    outcome = recorder._outcome("t0000", cfg, {}, None, "ray-1", None)
    row = trial_row(outcome, [])
    assert row["status"] == "pruned" and row["epochs_run"] == 2
    assert row["verdict"] not in ("error", None)


def _cli(*args: str, env: dict | None = None, timeout: float = 60) -> tuple[int, str, str, float]:
    t0 = time.monotonic()
    done = subprocess.run(
        [sys.executable, "-m", "sweeps.cli", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, **(env or {})},
    )
    return done.returncode, done.stdout, done.stderr, time.monotonic() - t0


@pytest.mark.parametrize("how", ["--address", "RAY_ADDRESS", "ray://"])
def test_dead_ray_address_fails_fast_in_one_line(tmp_path, how):
    from .conftest import free_port

    path = write_sweep(tmp_path)
    dead = f"127.0.0.1:{free_port()}"
    if how == "RAY_ADDRESS":  # honoured like --address (not an embedded Ray instead)
        rc, out, err, took = _cli("run", str(path), env={"RAY_ADDRESS": dead})
    else:
        address = f"ray://{dead}" if how == "ray://" else dead
        rc, out, err, took = _cli("run", str(path), "--address", address)
    assert rc == 2, out + err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and "--address: nothing answers at 127.0.0.1" in lines[0], err
    assert took < 15, took
    assert not (tmp_path / "runs").exists()


# Tune's error.txt (Ray 2.60) for a trial whose worker was killed with SIGKILL (bench/faults.py).
ACTOR_DIED = """Failure # 1 (occurred at 2026-12-02_13-30-00)
The actor died unexpectedly before finishing this task.
\tclass_name: ImplicitFunc
\tactor_id: fcf78a5eb439b0d0cc3b927501000000
\tpid: 24241
\tnamespace: b61765ad-25cf-402e-80ef-aedaf6773d44
\tip: 192.0.2.2
The actor is dead because its worker process has died. Worker exit type: SYSTEM_ERROR Worker \
exit detail: Worker unexpectedly exits with a connection error code 2. End of file. Some common \
causes include: (1) the process was killed by the OOM killer due to high memory usage, (2) ray \
stop --force was called, or (3) the worker crashed unexpectedly due to SIGSEGV or another \
unexpected error. If the process was killed by the kernel OOM killer (verifiable by checking for \
OOM in dmesg of the OOMing node), consider enabling resource isolation.
"""


def test_lost_worker_line_says_what_failed():
    from sweeps.callback import failure_summary

    line = failure_summary(ACTOR_DIED)
    assert line.startswith("its worker process has died (pid 24241 on 192.0.2.2): Worker")
    assert "connection error code 2" in line and "\n" not in line and len(line) <= 300
    assert "OOM killer" not in line  # Ray's list of possible causes is not what failed
    node = (
        "ray.exceptions.ActorDiedError: The actor died.\n"
        "The actor is dead because its node has died. Node Id: ab12"
    )
    assert failure_summary(node) == "ActorDiedError: its node has died"
    assert failure_summary("boom\nValueError: bad\n") == "ValueError: bad"


def test_preflight_warns_on_a_cluster_that_can_grow(tmp_path, capsys):
    """cluster.yaml's head has no CPUs and starts with no workers: a sweep planned against
    such a cluster is started (the autoscaler adds nodes for it), with a warning."""
    from sweeps.runner import plan_run
    from sweeps.spec import SpecError

    path = write_sweep(tmp_path, resources={"cpus": 4})
    with pytest.raises(SpecError, match="resources.cpus"):  # this machine: strict
        plan_run(path, nodes=[{"CPU": 2}])
    import ray

    from sweeps.rayauth import enable_token_auth

    enable_token_auth()
    ray.init(num_cpus=0, include_dashboard=False, logging_level="WARNING")  # a bare head
    try:
        plan = plan_run(path)
    finally:
        ray.shutdown()
    assert plan.n_trials == 2
    assert "warning: resources.cpus" in capsys.readouterr().out
