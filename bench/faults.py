"""Fault-injection benchmark: a small sweep under each fault, then what was kept.

    python bench/faults.py [--only NAME ...] [--keep DIR]

Each fault runs `gansweep` as a separate process (as a user would), injects the fault,
recovers the way the README says (`gansweep resume`, `gansweep sync`), then counts the
trials of the sweep: in trials.parquet (a row, all epochs in epochs.parquet) and in MLflow
(one FINISHED child run with every epoch's loss). One line per fault:

    <fault>: expected=N recorded_once=N lost=0 duplicated=0 (exit codes, seconds)

and at the end `faults_survived=K/N` (survived: every trial recorded once, none lost or
duplicated). Needs root for the write-error fault (`chattr +i`). Results in docs/reliability.md.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.sweeps.conftest import free_port, start_mlflow_server, stop_process  # noqa: E402

N_TRIALS, EPOCHS = 4, 6
BASE = {  # a few seconds per trial on 2 cores, so faults land mid-sweep
    "data": {"name": "ring", "n_points": 2000},
    "generator": {"hidden_dims": [32, 32]},
    "discriminator": {"hidden_dims": [32, 32]},
    "train": {"steps_per_epoch": 60, "batch_size": 64},
    "eval": {"every": 3, "n_samples": 200},
}


@dataclass
class Count:
    expected: int
    once: int
    lost: int
    duplicated: int

    @property
    def survived(self) -> bool:
        return self.once == self.expected and self.lost == 0 and self.duplicated == 0


# ---------------------------------------------------------------------- helpers
def write_sweep(work: Path, tracking_uri: str) -> Path:
    path = work / "sweep.yaml"
    spec = {
        "name": "faults",
        "base": BASE,
        "epochs": EPOCHS,
        "checkpoint_every": 2,
        "grid": {"seed": list(range(N_TRIALS))},
        "results_dir": str(work / "runs"),
        "tracking": {"uri": tracking_uri},
    }
    path.write_text(yaml.safe_dump(spec, sort_keys=False))
    return path


def gansweep(*args: str, log: Path) -> subprocess.Popen:
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "PYTHONPATH": str(ROOT)}
    return subprocess.Popen(
        [sys.executable, "-m", "sweeps.cli", *args, "--no-triage"],
        stdout=log.open("a"),
        stderr=subprocess.STDOUT,
        env=env,
        start_new_session=True,
        cwd=log.parent,
    )


def finish(proc: subprocess.Popen, timeout: float = 600) -> int:
    """Wait for a driver, then kill what is left of its process group (Ray's daemons)."""
    try:
        code = proc.wait(timeout=timeout)
    finally:
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
    return code


def rows(root: Path) -> int:
    try:
        return len(pd.read_parquet(root / "trials.parquet"))
    except (OSError, ValueError):
        return 0


def wait_for(predicate: Callable[[], bool], proc: subprocess.Popen, timeout: float = 300) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        if proc.poll() is not None:
            raise RuntimeError(f"driver exited (rc={proc.returncode}) before the fault")
        time.sleep(0.3)
    raise RuntimeError("timed out before the fault")


def count(roots: list[Path]) -> Count:
    """Trials of the sweep directories: recorded once, lost, duplicated (Parquet and MLflow)."""
    from mlflow import MlflowClient

    expected = once = lost = duplicated = 0
    for root in roots:
        ids = [f"t{i:04d}" for i in range(N_TRIALS)]
        expected += len(ids)
        meta = json.loads((root / "sweep.json").read_text())
        trials = pd.read_parquet(root / "trials.parquet") if rows(root) else pd.DataFrame()
        epochs = pd.read_parquet(root / "epochs.parquet") if rows(root) else pd.DataFrame()
        in_table = Counter(trials.get("trial_id", []))
        client = MlflowClient(meta["tracking_uri"])
        experiment = client.get_experiment_by_name(meta["experiment"])
        runs = (
            client.search_runs([experiment.experiment_id], max_results=1000) if experiment else []
        )
        children = [  # this sweep's trials: two launches share the experiment
            r
            for r in runs
            if r.data.tags.get("gansweep.kind") == "trial"
            and r.data.tags.get("gansweep.sweep_id") == meta["sweep_id"]
        ]
        in_mlflow = Counter(r.data.tags.get("gansweep.trial_id") for r in children)
        for tid in ids:
            if in_table[tid] == 0 or in_mlflow[tid] == 0:
                lost += 1
                continue
            epoch_rows = epochs[epochs.trial_id == tid] if len(epochs) else epochs
            run = next(r for r in children if r.data.tags.get("gansweep.trial_id") == tid)
            steps = [m.step for m in client.get_metric_history(run.info.run_id, "loss/d")]
            if (
                in_table[tid] > 1
                or in_mlflow[tid] > 1
                or epoch_rows.duplicated(["trial_id", "epoch"]).any()
                or len(steps) != len(set(steps))
            ):
                duplicated += 1
            elif (
                len(epoch_rows) == EPOCHS
                and sorted(steps) == list(range(1, EPOCHS + 1))
                and run.info.status == "FINISHED"
            ):
                once += 1
            else:
                lost += 1  # a row or run without all its epochs lost some of them
    return Count(expected, once, lost, duplicated)


# ---------------------------------------------------------------------- faults
def _signal_then_resume(work: Path, sig: int) -> tuple[list[Path], list[int]]:
    path = write_sweep(work, f"sqlite:///{work / 'mlflow.db'}")
    root = work / "runs" / "faults"
    proc = gansweep("run", str(path), log=work / "log.txt")
    wait_for(lambda: rows(root) >= 1, proc)
    if sig == signal.SIGKILL:
        time.sleep(2)  # mid-trial
    proc.send_signal(sig)
    first = finish(proc, 300)
    second = finish(gansweep("resume", str(root), log=work / "log.txt"))
    return [root], [first, second]


def driver_sigkill(work: Path) -> tuple[list[Path], list[int]]:
    return _signal_then_resume(work, signal.SIGKILL)


def sigint(work: Path) -> tuple[list[Path], list[int]]:
    return _signal_then_resume(work, signal.SIGINT)


def sigterm(work: Path) -> tuple[list[Path], list[int]]:
    return _signal_then_resume(work, signal.SIGTERM)


def _trial_workers(pid: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            comm = (entry / "comm").read_text().strip()
            sid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[3])
        except (OSError, IndexError, ValueError):
            continue
        if sid == pid and comm.startswith("ray::ImplicitF"):
            found.append(int(entry.name))
    return found


def worker_kill(work: Path) -> tuple[list[Path], list[int]]:
    path = write_sweep(work, f"sqlite:///{work / 'mlflow.db'}")
    root = work / "runs" / "faults"
    proc = gansweep("run", str(path), log=work / "log.txt")
    checkpoints = lambda: any(root.glob("tune/grid/*/checkpoint_*"))  # noqa: E731
    wait_for(lambda: checkpoints() and bool(_trial_workers(proc.pid)), proc)
    os.kill(_trial_workers(proc.pid)[0], signal.SIGKILL)
    return [root], [finish(proc)]


def mlflow_down_then_sync(work: Path) -> tuple[list[Path], list[int]]:
    port = free_port()
    uri = f"http://127.0.0.1:{port}"
    path = write_sweep(work, uri)  # nothing listens there during the sweep
    root = work / "runs" / "faults"
    first = finish(gansweep("run", str(path), log=work / "log.txt"))
    server = start_mlflow_server(work, port)
    try:
        done = subprocess.run(
            [sys.executable, "-m", "sweeps.cli", "sync", str(root)],
            capture_output=True, text=True, env={**os.environ, "PYTHONPATH": str(ROOT)},
        )
        (work / "log.txt").open("a").write(done.stdout + done.stderr)
        return [root], [first, done.returncode]
    finally:
        _counted_while_up[str(root)] = count([root])
        stop_process(server)


_counted_while_up: dict[str, Count] = {}


def write_error_then_resume(work: Path) -> tuple[list[Path], list[int]]:
    path = write_sweep(work, f"sqlite:///{work / 'mlflow.db'}")
    root = work / "runs" / "faults"
    proc = gansweep("run", str(path), log=work / "log.txt")
    wait_for(lambda: rows(root) >= 1, proc)
    subprocess.run(["chattr", "+i", str(root)], check=True)
    try:
        first = finish(proc)
    finally:
        subprocess.run(["chattr", "-i", str(root)], check=True)
    second = finish(gansweep("resume", str(root), log=work / "log.txt"))
    return [root], [first, second]


def concurrent_launch(work: Path) -> tuple[list[Path], list[int]]:
    path = write_sweep(work, f"sqlite:///{work / 'mlflow.db'}")
    procs = [gansweep("run", str(path), log=work / f"log{i}.txt") for i in range(2)]
    codes = [finish(p) for p in procs]
    roots = sorted((work / "runs").iterdir())
    return roots, codes


FAULTS = {
    "driver_sigkill+resume": driver_sigkill,
    "sigint+resume": sigint,
    "sigterm+resume": sigterm,
    "worker_kill": worker_kill,
    "mlflow_down+sync": mlflow_down_then_sync,
    "write_error+resume": write_error_then_resume,
    "concurrent_launch": concurrent_launch,
}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", nargs="*", choices=list(FAULTS), help="run these faults only")
    parser.add_argument("--keep", help="keep each fault's folder under this directory")
    args = parser.parse_args()
    names = args.only or list(FAULTS)
    base = Path(args.keep or tempfile.mkdtemp(prefix="gansweep-faults-"))
    survived = 0
    for name in names:
        work = base / name.replace("+", "_")
        work.mkdir(parents=True, exist_ok=True)
        t0 = time.monotonic()
        try:
            roots, codes = FAULTS[name](work)
            result = _counted_while_up.get(str(roots[0])) or count(roots)
        except Exception as err:  # the benchmark reports a fault it could not finish
            print(f"{name}: not survived ({type(err).__name__}: {err}); log in {work}", flush=True)
            continue
        survived += result.survived
        print(
            f"{name}: expected={result.expected} recorded_once={result.once} "
            f"lost={result.lost} duplicated={result.duplicated} "
            f"(exit codes {codes}, {time.monotonic() - t0:.0f} s)",
            flush=True,
        )
    print(f"faults_survived={survived}/{len(names)}")
    if not args.keep:
        shutil.rmtree(base, ignore_errors=True)
    return 0 if survived == len(names) else 1


if __name__ == "__main__":
    sys.exit(main())
