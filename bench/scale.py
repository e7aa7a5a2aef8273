"""The driver at volume: does gansweep's cost per trial stay flat from 1,000 to 10,000 trials?

Runs a grid sweep of N trials exactly as `gansweep run` does (Tune callback, Recorder,
Parquet parts, MLflow child runs, triage), except that the trainable is a stand-in: it
reports realistic records (`--epochs` x `--metrics` per trial, one Tune result per epoch,
a final checkpoint with history and verdict as sweeps.trial writes it) and sleeps
`--sleep` seconds per trial instead of training. Ray is embedded with `--cpus` logical
CPUs (more than the machine's cores), so the driver, not the work, is what is measured.

    python bench/scale.py --trials 1000
    python bench/scale.py --trials 10000 --mlflow server     # a real `mlflow server` (SQLite)
    python bench/scale.py --trials 300 --mlflow postgres     # `mlflow server` on PostgreSQL
    python bench/scale.py --tables-only --trials 10000       # the Parquet tables alone
    python bench/scale.py --tune-memory --trials 1000        # Tune's memory per trial
    python bench/scale.py --variants --trials 10000          # creating the grid's Tune trials
    python bench/scale.py --memory --trials 1500 --sleep 0.2 --cpus 16  # memory growth

Prints (and writes to bench/scale-<N>.json):
  driver_ms_per_trial_first_10pct= / _last_10pct=  time the driver's main thread spent in
      gansweep's Tune callback (Recorder: sinks, checkpoints copied, Parquet parts, progress)
      per trial finished, over the first and the last tenth of the trials to finish
  scale_flatness=                last over first (target <= 1.5)
  tune_ms_per_trial_first_10pct= / _last_10pct=  the driver main thread's CPU time per trial
      finished (Tune's own bookkeeping included)
  sweep_wall_over_ideal_<N>=     wall time of Tune's fit over N x sleep / cpus
  driver_peak_rss_mb=            the driver's peak resident memory, and
  driver_peak_rss_mb_by_fit= / _by_finish= / _by_left_behind= / _by_triage=  the peak by the
      end of Tune's fit, of the callback's end (MLflow's backlog, compaction), of logging the
      runs MLflow fell behind on (after Ray stopped) and of the triage
  left_behind_runs= / left_behind_logged_s=  runs MLflow fell behind on during the sweep, and
      the seconds the driver took to log them once Ray had stopped
  mlflow_records_per_s=          metric values MLflow's log_batch took per second of its calls
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import resource
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT))

# Names of the per-epoch record (docs/CONTRACTS.md); quality keys only on evaluation epochs.
_KEYS = [
    "loss/d", "loss/d_real", "loss/d_fake", "loss/g", "loss/w_dist", "loss/d_total",
    "d/real", "d/fake", "d/fake_g", "d/fake_batch_std", "d/accuracy", "g/accuracy",
    "weights/d_mean", "weights/d_std", "weights/g_mean", "weights/g_std",
    "weights/d_abs_mean", "weights/g_abs_mean", "stability/dg_ratio", "stability/loss_var",
    "grad/g_norm", "grad/d_norm", "grad/g/0", "grad/g/1", "grad/g/2", "grad/d/0", "grad/d/1",
    "grad/d/2", "time/epoch_s", "diversity/mean", "diversity/min", "diversity/std",
    "diversity/ratio", "quality/hq_fraction", "quality/kl", "quality/near_fraction",
    "quality/modes_reached", "time/eval_s",
]  # fmt: skip
_EVAL_EVERY = 10


def standin_trial(config: dict[str, Any], epochs: int, metrics: int, sleep_s: float) -> None:
    """A Tune trainable that reports what sweeps.trial reports, without training."""
    import logging
    import random
    import shutil

    from ray import tune

    for name in ("ray.train", "ray.tune"):  # as sweeps.trial: no line per checkpoint
        logging.getLogger(name).setLevel(logging.WARNING)

    from sweeps.trial import CKPT_MEMBERS, CKPT_STATE

    ids = [m["trial_id"] for m in config["trial"]["members"]]
    seed = int(config["trial"]["members"][0]["point"].get("seed", 0))
    rng = random.Random(seed)
    verdict = "stable" if seed % 10 < 7 else ("mode_collapse" if seed % 10 < 9 else "diverged")
    keys = _KEYS[: max(0, metrics - 3)]
    histories: dict[str, list[dict[str, Any]]] = {tid: [] for tid in ids}
    for epoch in range(1, epochs + 1):
        time.sleep(sleep_s / epochs)
        records = {}
        for tid in ids:
            record: dict[str, Any] = {"epoch": epoch, "step": 100 * epoch}
            evaluating = epoch % _EVAL_EVERY == 0 or epoch == epochs
            for key in keys:
                if evaluating or not key.startswith(("quality/", "diversity/", "time/eval")):
                    record[key] = rng.random()
            if evaluating:
                record["quality/modes"] = float(8 if verdict == "stable" else rng.randint(1, 4))
            histories[tid].append(record)
            records[tid] = record
        result = {"epoch": epoch, "objective": math.nan, "records": json.dumps(records)}
        if epoch < epochs:
            tune.report({**result, "final": False})
            continue
        verdicts = {
            tid: {"status": verdict, "onset_epoch": None if verdict == "stable" else epochs // 2,
                  "evidence": {"quality/modes": histories[tid][-1]["quality/modes"]},
                  "problems": [], "stopped_early": False}
            for tid in ids
        }  # fmt: skip
        directory = Path(tempfile.mkdtemp(prefix="gansweep-standin-"))
        try:
            state = {"epoch": epoch, "trial_ids": ids, "final": True, "attempt": 1}
            (directory / CKPT_STATE).write_text(json.dumps(state))
            for tid in ids:
                member = directory / CKPT_MEMBERS / tid
                member.mkdir(parents=True)
                (member / "history.json").write_text(json.dumps(histories[tid]))
                (member / "verdict.json").write_text(json.dumps(verdicts[tid]))
            final = {**result, "final": True, "verdict": verdict, "verdicts": verdicts}
            tune.report(final, checkpoint=tune.Checkpoint.from_directory(str(directory)))
        finally:
            shutil.rmtree(directory, ignore_errors=True)


class Meter:
    """Time in gansweep's callback, per finished trial, and the driver's CPU and memory."""

    def __init__(self) -> None:
        self.in_callback = 0.0
        self.marks: list[tuple[float, float, float, int]] = []  # callback s, cpu s, wall, rss
        self.started: float | None = None
        self.base = (0.0, 0.0)  # callback s and CPU s when the sweep's callback was set up
        self.ended: float | None = None
        self.census: MemoryCensus | None = None
        self.peaks: dict[str, int] = {}  # the driver's peak RSS (KB) by the end of each phase
        self.left_behind, self.left_behind_s = 0, 0.0  # runs MLflow fell behind on, logged after

    def wrap(self, cls: Any) -> None:
        for name in ("on_trial_start", "on_trial_result", "on_trial_complete", "on_trial_error",
                     "on_step_end", "on_step_begin"):  # fmt: skip
            self._wrap(cls, name)
        setup, end = cls.setup, cls.on_experiment_end

        def timed_setup(callback: Any, **info: Any) -> None:
            setup(callback, **info)
            self.started = time.monotonic()
            self.base = (self.in_callback, time.thread_time())

        def timed_end(callback: Any, trials: list, **info: Any) -> None:
            self.ended = time.monotonic()
            self.peaks["fit"] = _peak_rss_kb()
            t0 = time.perf_counter()
            end(callback, trials, **info)
            self.finish_s = time.perf_counter() - t0
            self.peaks["finish"] = _peak_rss_kb()

        cls.setup, cls.on_experiment_end = timed_setup, timed_end
        log_left_behind = cls.log_left_behind

        def timed_log_left_behind(callback: Any, now: bool) -> None:
            recorder = callback._recorder
            self.left_behind = len(recorder.left_behind) if recorder is not None else 0
            t0 = time.perf_counter()
            log_left_behind(callback, now)
            self.left_behind_s = time.perf_counter() - t0
            self.peaks["left_behind"] = _peak_rss_kb()

        cls.log_left_behind = timed_log_left_behind

    def _wrap(self, cls: Any, name: str) -> None:
        original = getattr(cls, name)
        completes = name in ("on_trial_complete", "on_trial_error")

        def timed(callback: Any, *args: Any, **kwargs: Any) -> Any:
            t0 = time.perf_counter()
            try:
                return original(callback, *args, **kwargs)
            finally:
                self.in_callback += time.perf_counter() - t0
                if completes:
                    self.marks.append(
                        (self.in_callback, time.thread_time(), time.monotonic(), _rss_kb())
                    )
                    if self.census is not None:
                        self.census.mark(len(self.marks))

        setattr(cls, name, timed)

    def per_trial_ms(self, column: int, tenth: str) -> float:
        """Mean ms per trial of a cumulative mark over the first or last tenth of completions."""
        n = len(self.marks)
        k = max(1, n // 10)
        if tenth == "first":
            return 1000 * (self.marks[k - 1][column] - self.base[column]) / k
        before = self.marks[n - k - 1][column] if n > k else 0.0
        return 1000 * (self.marks[n - 1][column] - before) / k


def _peak_rss_kb() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


def _rss_kb() -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


class MemoryCensus:
    """Where the driver's Python heap grows between the first tenth of completions and the
    last (tracemalloc, one frame): KB per trial by package and by line of code.

    Memory outside Python's allocator (Arrow's pool, SQLite's cache) is the RSS growth that
    the traced growth does not explain."""

    def __init__(self, trials: int) -> None:
        import tracemalloc

        tracemalloc.start(1)
        self.at = {max(1, trials // 10): "first", trials: "end"}
        self.snaps: dict[str, tuple[Any, int, int]] = {}

    def mark(self, completed: int) -> None:
        import gc
        import tracemalloc

        name = self.at.get(completed)
        if name is not None:
            gc.collect()
            self.snaps[name] = (tracemalloc.take_snapshot(), completed, _rss_kb())

    def result(self) -> dict[str, Any]:
        if set(self.snaps) != {"first", "end"}:
            return {}
        (first, n0, rss0), (end, n1, rss1) = self.snaps["first"], self.snaps["end"]
        trials = max(1, n1 - n0)
        by_file = end.compare_to(first, "filename")
        packages: dict[str, int] = {}
        for diff in by_file:
            name = _package(diff.traceback[0].filename)
            packages[name] = packages.get(name, 0) + diff.size_diff
        top = sorted(packages.items(), key=lambda kv: -kv[1])[:12]
        lines = end.compare_to(first, "lineno")[:12]
        traced = sum(packages.values())
        return {
            "rss_growth_kb_per_trial": round((rss1 - rss0) / trials, 1),
            "traced_growth_kb_per_trial": round(traced / 1024 / trials, 1),
            "growth_kb_per_trial_by_package": {k: round(v / 1024 / trials, 2) for k, v in top},
            "growth_kb_per_trial_by_line": {
                f"{_package(d.traceback[0].filename)}:{Path(d.traceback[0].filename).name}:"
                f"{d.traceback[0].lineno}": round(d.size_diff / 1024 / trials, 2)
                for d in lines
            },
        }


def _package(filename: str) -> str:
    """`ray/tune`, `mlflow/store`, `sweeps`, ... for a source file's path."""
    parts = Path(filename).parts
    if "site-packages" in parts:
        rest = parts[parts.index("site-packages") + 1 :]
        return "/".join(rest[:2]) if len(rest) > 2 else rest[0]
    try:
        return Path(filename).resolve().relative_to(ROOT).parts[0]
    except ValueError:
        return "python" if "/lib/python" in filename else filename


class MlflowMeter:
    """Metric values through MLflow's log_batch and the seconds those calls took."""

    def __init__(self) -> None:
        from mlflow import MlflowClient

        self.records = 0
        self.seconds = 0.0
        original = MlflowClient.log_batch

        def timed(client: Any, run_id: str, metrics: Any = (), *args: Any, **kw: Any) -> Any:
            t0 = time.perf_counter()
            try:
                return original(client, run_id, metrics, *args, **kw)
            finally:
                self.seconds += time.perf_counter() - t0
                self.records += len(metrics or ())

        MlflowClient.log_batch = timed  # type: ignore[method-assign]


def _sweep_file(workdir: Path, trials: int, epochs: int, uri: str) -> Path:
    import yaml

    values = {
        "name": "scale",
        "base": {"data": {"name": "ring"}, "train": {"epochs": epochs}},
        "epochs": epochs,
        "checkpoint_every": epochs,
        "grid": {"seed": list(range(trials))},
        "max_trials": max(trials, 100),
        "execution": {"pack_seeds": 1},  # one Tune trial per grid point: the driver at volume
        "results_dir": str(workdir / "runs"),
        "tracking": {"uri": uri, "log_model": []},
    }
    path = workdir / "scale.yaml"
    path.write_text(yaml.safe_dump(values, sort_keys=False))
    return path


def start_postgres() -> tuple[Any, str]:
    """A throwaway PostgreSQL cluster on 127.0.0.1 (the system's own binaries, default
    durability settings) and the backend URI of an empty `mlflow` database in it.

    Trust authentication is acceptable only because it listens on loopback and lives for
    one benchmark; PostgreSQL refuses to run as root, so root runs it as `postgres`.
    """
    import shutil
    import subprocess

    from tests.sweeps.conftest import free_port

    if shutil.which("initdb") is None or shutil.which("postgres") is None:
        raise SystemExit("--mlflow postgres: PostgreSQL's initdb/postgres are not on PATH")
    try:
        import psycopg2  # noqa: F401  (MLflow's PostgreSQL driver)
    except ImportError:
        raise SystemExit("--mlflow postgres: pip install psycopg2-binary first") from None
    import atexit

    home = Path(tempfile.mkdtemp(prefix="gansweep-pg-"))
    atexit.register(shutil.rmtree, home, True)
    as_user: list[str] = []
    if os.geteuid() == 0:
        shutil.chown(home, "postgres")
        as_user = ["runuser", "-u", "postgres", "--"]
    port = free_port()
    run_ = dict(check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    subprocess.run([*as_user, "initdb", "-D", str(home / "data"), "-A", "trust", "-U",
                    "postgres"], **run_)  # fmt: skip
    proc = subprocess.Popen(
        [*as_user, "postgres", "-D", str(home / "data"), "-p", str(port), "-k", str(home),
         "-c", "listen_addresses=127.0.0.1"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
    )  # fmt: skip
    for _ in range(60):
        ready = subprocess.run(["pg_isready", "-h", "127.0.0.1", "-p", str(port)],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
        if ready.returncode == 0:
            break
        time.sleep(0.5)
    subprocess.run(["createdb", "-h", "127.0.0.1", "-p", str(port), "-U", "postgres", "mlflow"],
                   **run_)  # fmt: skip
    return proc, f"postgresql+psycopg2://postgres@127.0.0.1:{port}/mlflow"


def run(args: argparse.Namespace, workdir: Path) -> dict[str, Any]:
    from sweeps import runner

    runner.configure_ray_env(embedded=True)  # before Tune is imported: it reads them then
    import ray
    from ray import tune

    from sweeps.callback import SweepCallback

    meter, mlflow_meter = Meter(), MlflowMeter()
    meter.wrap(SweepCallback)
    if args.memory:
        meter.census = MemoryCensus(args.trials)
    trainable = tune.with_parameters(
        standin_trial, epochs=args.epochs, metrics=args.metrics, sleep_s=args.sleep
    )
    runner._trainable = lambda spec: tune.with_resources(trainable, {"cpu": 1})  # type: ignore[assignment]
    server = postgres = None
    if args.mlflow in ("server", "postgres"):
        from tests.sweeps.conftest import free_port, start_mlflow_server

        backend = None
        if args.mlflow == "postgres":
            postgres, backend = start_postgres()
        port = free_port()
        server = start_mlflow_server(workdir, port, backend)
        uri = f"http://127.0.0.1:{port}"
    elif args.mlflow == "off":
        from tests.sweeps.conftest import free_port

        uri = f"http://127.0.0.1:{free_port()}"  # nothing there: tracking is down, as in an outage
    else:
        uri = f"sqlite:///{workdir / 'mlflow.db'}"
    path = _sweep_file(workdir, args.trials, args.epochs, uri)
    ray.init(num_cpus=args.cpus, include_dashboard=False, logging_level="WARNING")
    try:
        plan = runner.plan_run(path, out=str(workdir / "sweep"))
        t0 = time.monotonic()
        code = runner.run_sweep(plan, triage=not args.no_triage)
        total = time.monotonic() - t0
        meter.peaks["triage"] = _peak_rss_kb()
    finally:
        ray.shutdown()
        from tests.sweeps.conftest import stop_process

        for process in (server, postgres):
            if process is not None:
                stop_process(process)
    out = _result(args, workdir, meter, mlflow_meter, code, total)
    return {**out, **(meter.census.result() if meter.census is not None else {})}


def _result(
    args: argparse.Namespace, workdir: Path, meter: Meter, mlf: MlflowMeter, code: int, total: float
) -> dict[str, Any]:
    import pandas as pd

    trials = pd.read_parquet(workdir / "sweep" / "trials.parquet")
    epochs_rows = len(pd.read_parquet(workdir / "sweep" / "epochs.parquet", columns=["epoch"]))
    first, last = meter.per_trial_ms(0, "first"), meter.per_trial_ms(0, "last")
    assert meter.started is not None and meter.ended is not None
    fit_wall = meter.ended - meter.started
    ideal = args.trials * args.sleep / args.cpus
    return {
        "exit_code": code,
        "trials": args.trials,
        "rows": int(len(trials)),
        "epoch_rows": epochs_rows,
        "logged_to_mlflow": int(trials.mlflow_run_id.notna().sum()),
        "epochs": args.epochs,
        "metrics": args.metrics,
        "sleep_s": args.sleep,
        "cpus": args.cpus,
        "mlflow": args.mlflow,
        "driver_ms_per_trial_first_10pct": round(first, 2),
        "driver_ms_per_trial_last_10pct": round(last, 2),
        "scale_flatness": round(last / first, 3),
        "tune_ms_per_trial_first_10pct": round(meter.per_trial_ms(1, "first"), 2),
        "tune_ms_per_trial_last_10pct": round(meter.per_trial_ms(1, "last"), 2),
        "fit_wall_s": round(fit_wall, 1),
        "ideal_s": round(ideal, 1),
        f"sweep_wall_over_ideal_{_label(args.trials)}": round(fit_wall / ideal, 3),
        "end_of_sweep_s": round(getattr(meter, "finish_s", math.nan), 1),
        "left_behind_runs": meter.left_behind,
        "left_behind_logged_s": round(meter.left_behind_s, 1),
        "left_behind_runs_per_s": (
            round(meter.left_behind / meter.left_behind_s, 2) if meter.left_behind_s else None
        ),
        "command_wall_s": round(total, 1),
        "driver_rss_mb_at_10pct": round(meter.marks[len(meter.marks) // 10][3] / 1024, 1),
        "driver_rss_mb_at_end": round(meter.marks[-1][3] / 1024, 1),
        "driver_peak_rss_mb": round(_peak_rss_kb() / 1024, 1),
        # The peak by the end of the fit, of the callback's end (MLflow's backlog drained,
        # tables compacted, parent run closed) and of the triage: which phase sets it.
        **{f"driver_peak_rss_mb_by_{k}": round(v / 1024, 1) for k, v in meter.peaks.items()},
        "mlflow_records": mlf.records,
        "mlflow_records_per_s": round(mlf.records / mlf.seconds, 1) if mlf.seconds else None,
        "load_average": os.getloadavg(),
        "date": datetime.now(timezone.utc).isoformat(timespec="minutes"),
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, {platform.python_version()}",
    }


def tables_only(args: argparse.Namespace, workdir: Path) -> dict[str, Any]:
    """The results tables alone, as the Recorder writes them, without Ray or MLflow.

    Per finished trial: one part appended (and trials.parquet refreshed when due). Compared
    with what the old layout paid per trial: a rewrite of both whole tables (`flush`).
    """
    import random

    from sweeps.results import SweepTables, epoch_rows
    from sweeps.sweepdir import SweepDir

    sweep_dir = SweepDir(workdir / "sweep")
    sweep_dir.write_meta({"name": "scale"})
    tables = SweepTables(sweep_dir)
    rng = random.Random(0)
    keys = _KEYS[: max(0, args.metrics - 3)]
    costs = []
    for i in range(args.trials):
        tid = f"t{i:05d}"
        records = [
            {"epoch": e, "step": 100 * e, **{k: rng.random() for k in keys}}
            for e in range(1, args.epochs + 1)
        ]
        final = {f"final/{k}": v for k, v in records[-1].items()}
        row = {"trial_id": tid, "seed": i, "status": "ok", "epochs_run": args.epochs, **final}
        t0 = time.perf_counter()
        tables.upsert(row, epoch_rows(tid, records))
        tables.append()
        tables.compact_trials_if_due()
        costs.append(time.perf_counter() - t0)
    t0 = time.perf_counter()
    tables.flush()
    rewrite = time.perf_counter() - t0
    k = max(1, args.trials // 10)
    first, last = 1000 * sum(costs[:k]) / k, 1000 * sum(costs[-k:]) / k
    return {
        "mode": "tables-only",
        "trials": args.trials,
        "epochs": args.epochs,
        "metrics": args.metrics,
        "table_ms_per_trial_first_10pct": round(first, 2),
        "table_ms_per_trial_last_10pct": round(last, 2),
        "table_flatness": round(last / first, 3),
        "rewrite_both_tables_s": round(rewrite, 2),
        "epochs_parquet_mb": round(sweep_dir.epochs_parquet.stat().st_size / 2**20, 1),
        "peak_rss_mb": round(_peak_rss_kb() / 1024, 1),
        "load_average": os.getloadavg(),
        "date": datetime.now(timezone.utc).isoformat(timespec="minutes"),
    }


def tune_memory(args: argparse.Namespace, workdir: Path) -> dict[str, Any]:
    """What Tune's `Trial` objects hold per trial for results shaped as sweeps.trial reports
    them (records as nested numbers) and with the records as one JSON string."""
    import gc
    import random

    from ray.tune.experiment.trial import Trial

    keys = _KEYS[: max(0, args.metrics - 3)]
    rng = random.Random(0)
    out: dict[str, Any] = {"mode": "tune-memory", "trials": args.trials, "epochs": args.epochs}
    for shape in ("json", "nested"):  # the smaller first: freed memory is reused after
        gc.collect()
        before, held = _rss_kb(), []
        for i in range(args.trials):
            tid = f"t{i:05d}"
            trial = Trial("standin", config={"trial": {"members": [{"trial_id": tid}]}}, stub=True)
            for e in range(1, args.epochs + 1):
                records = {tid: {"epoch": e, "step": e, **{k: rng.random() for k in keys}}}
                trial.update_last_result(
                    {"epoch": e, "training_iteration": e, "done": False, "final": False,
                     "records": records if shape == "nested" else json.dumps(records)}
                )  # fmt: skip
            held.append(trial)
        gc.collect()
        out[f"tune_kb_per_trial_{shape}"] = round((_rss_kb() - before) / args.trials, 1)
        del held
    return out


def variants(args: argparse.Namespace, workdir: Path) -> dict[str, Any]:
    """Seconds the driver spends creating a grid's Tune trials: `tune.grid_search` over the
    packs (Tune's BasicVariantGenerator, what gansweep used before) against sweeps.gridsearch,
    for grids of 500, 1,000, 2,000 and `--trials` packs (the grid search only up to 2,000:
    it is quadratic)."""
    from ray import tune
    from ray.tune.experiment import Experiment
    from ray.tune.search import BasicVariantGenerator
    from ray.tune.search.search_generator import SearchGenerator

    from sweeps.gridsearch import limited

    def packs(n: int) -> list[dict[str, Any]]:
        return [{"members": [{"trial_id": f"t{i:05d}", "point": {"seed": i}}]} for i in range(n)]

    def noop(config: dict[str, Any]) -> None:
        """Trials are only created, never run."""

    def drain(generator: Any) -> float:
        t0 = time.perf_counter()
        while (trial := generator.next_trial()) is not None:
            generator.on_trial_complete(trial.trial_id)
        return time.perf_counter() - t0

    out: dict[str, Any] = {"mode": "variants"}
    for n in sorted({500, 1000, 2000, args.trials}):
        ours = SearchGenerator(limited(packs(n), None, args.cpus))
        ours.add_configurations([Experiment("ours", noop, config={}, num_samples=n)])
        out[f"gridsearch_ms_per_trial_{_label(n)}"] = round(1000 * drain(ours) / n, 3)
        if n <= 2000:
            grid = BasicVariantGenerator()
            space = {"trial": tune.grid_search(packs(n))}
            grid.add_configurations([Experiment("grid", noop, config=space)])
            out[f"tune_grid_search_ms_per_trial_{_label(n)}"] = round(1000 * drain(grid) / n, 3)
    return out


def _label(n: int) -> str:
    return f"{n // 1000}k" if n % 1000 == 0 else str(n)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=1000)
    parser.add_argument("--epochs", type=int, default=100, help="records per trial")
    parser.add_argument("--metrics", type=int, default=40, help="values per record")
    parser.add_argument("--sleep", type=float, default=1.0, help="seconds per trial")
    parser.add_argument("--cpus", type=int, default=32, help="Ray's logical CPUs")
    parser.add_argument(
        "--mlflow",
        choices=["sqlite", "server", "postgres", "off"],
        default="sqlite",
        help="server: `mlflow server` on SQLite; postgres: on a throwaway PostgreSQL cluster",
    )
    parser.add_argument("--no-triage", action="store_true")
    parser.add_argument(
        "--tables-only", action="store_true", help="time the results tables alone (no Ray)"
    )
    parser.add_argument(
        "--tune-memory", action="store_true", help="Tune's memory per trial for our results"
    )
    parser.add_argument(
        "--variants", action="store_true", help="the driver's cost of creating the grid's trials"
    )
    parser.add_argument(
        "--memory", action="store_true", help="where the driver's memory grows (tracemalloc)"
    )
    parser.add_argument("--keep", type=Path, help="keep the sweep directory here")
    args = parser.parse_args()
    os.environ.setdefault("GANSWEEP_VERBOSITY", "quiet")  # no line per trial
    measure = (
        tune_memory
        if args.tune_memory
        else tables_only
        if args.tables_only
        else variants
        if args.variants
        else run
    )
    if args.keep:
        args.keep.mkdir(parents=True, exist_ok=True)
        result = measure(args, args.keep.resolve())
    else:
        with tempfile.TemporaryDirectory(prefix="gansweep-scale-") as tmp:
            result = measure(args, Path(tmp))
    for key, value in result.items():
        print(f"{key}={value}")
    name = f"scale-{result.get('mode', 'sweep')}-{args.trials}.json"
    (HERE / name).write_text(json.dumps(result, indent=2) + "\n")
    return 0 if result.get("exit_code", 0) == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
