"""Orchestration overhead of a sweep: wall time against the ideal, and where the rest went.

Runs the demo sweep (or --sweep FILE) exactly as `gansweep run` does (embedded Ray on all
cores, MLflow tracking, Parquet results; no triage) and compares its wall time with the
ideal: the trials' own training time (the trainer's `time/epoch_s`, counted once per Tune
trial: a pack's members share their epochs) divided by the cores used.

    python bench/overhead.py                 # prints sweep_overhead_ratio=<x>
    python bench/overhead.py --sweep sweeps/examples/wgan_gp.yaml
    python bench/overhead.py --epochs 120    # the same grid with longer trials
    python bench/overhead.py --epochs 120 --seeds 4   # a smaller grid: the first 4 seeds
    python bench/overhead.py --pack auto     # override the sweep's execution.pack_seeds

Everything beyond the ideal is split, in seconds of wall time per core (core-seconds over
the cores used, so the parts add up to wall - ideal):
- Ray start (`ray.init`) and stop (`ray.shutdown`), timed around the calls in this process;
- Tune start to the first trial's start, and each trial's scheduling and worker start (the
  driver sees a trial start and complete; inside, Tune times the trainable);
- inside the trainables (Tune's own iteration times, `result.json`): trainer set-up (first
  iteration beyond its epoch), quality evaluation (`time/eval_s`), per-epoch reports,
  checkpoint reports, and the members' outputs at their end (figures, files, the final
  checkpoint); the figures' share is re-timed here after the sweep from the members'
  histories (the trials do not time them);
- cores left idle while the last trials finish, and the wind-down after the last trial.
The driver's MLflow writer thread and Parquet writes run beside the trials on the same
cores; their time is printed too (it overlaps the parts above).

Writes bench/overhead.json beside this file.
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import platform
import resource
import sys
import tempfile
import time
from collections import defaultdict
from collections.abc import Callable
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
DEMO = ROOT / "sweeps" / "examples" / "demo.yaml"


class Timers:
    """Wall seconds spent in wrapped functions, by bucket; and the driver's view of trials."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = defaultdict(float)
        self.calls: dict[str, int] = defaultdict(int)
        self.marks: dict[str, float] = {}
        self.trial_spans: dict[str, list[float]] = {}

    def wrap(self, owner: Any, name: str, bucket: str, mark: str | None = None) -> None:
        original = getattr(owner, name)

        @functools.wraps(original)
        def timed(*args: Any, **kwargs: Any) -> Any:
            start = time.time()
            try:
                return original(*args, **kwargs)
            finally:
                end = time.time()
                self.seconds[bucket] += end - start
                self.calls[bucket] += 1
                if mark:
                    self.marks.setdefault(f"{mark}_start", start)
                    self.marks[f"{mark}_end"] = end

        setattr(owner, name, timed)

    def watch_trials(self, callback_cls: Any) -> None:
        """The driver's start and complete time of each Tune trial."""
        for hook, index in (("on_trial_start", 0), ("on_trial_complete", 1)):
            original = getattr(callback_cls, hook)

            def seen(
                cb: Any,
                iteration: int,
                trials: list,
                trial: Any,
                _o=original,
                _i=index,
                **info: Any,
            ) -> Any:
                self.trial_spans.setdefault(trial.trial_id, [0.0, 0.0])[_i] = time.time()
                return _o(cb, iteration, trials, trial, **info)

            setattr(callback_cls, hook, seen)


def instrument() -> Timers:
    """Time Ray's start and stop, Tune's fit, the recorder, MLflow and Parquet in this process."""
    import ray
    from ray import tune

    from sweeps.callback import SweepCallback
    from sweeps.recorder import Recorder
    from sweeps.results import SweepTables
    from sweeps.tracking import MlflowSink, Tracker

    timers = Timers()
    timers.wrap(ray, "init", "ray_init", mark="ray_init")
    timers.wrap(ray, "shutdown", "ray_shutdown", mark="ray_shutdown")
    timers.wrap(tune.Tuner, "fit", "tune_fit", mark="tune_fit")
    for name in ("trial_started", "trial_result", "trial_finished", "finish"):
        timers.wrap(Recorder, name, "recorder")
    for name in ("upsert", "append", "compact_trials", "flush"):
        timers.wrap(SweepTables, name, "parquet")
    timers.wrap(Tracker, "_run", "mlflow_writer")  # every store call on the writer thread
    timers.wrap(MlflowSink, "_log_model", "mlflow_models")  # stable runs' generators
    timers.watch_trials(SweepCallback)
    return timers


def write_sweep(
    sweep: Path, workdir: Path, epochs: int | None, seeds: int | None, pack: str | None
) -> Path:
    import yaml

    values = yaml.safe_load(sweep.read_text())
    values["results_dir"] = str(workdir / "runs")
    values["tracking"] = {"uri": f"sqlite:///{workdir / 'mlflow.db'}"}
    if epochs is not None:
        values["epochs"] = epochs
    if seeds is not None:
        values["grid"]["seed"] = values["grid"]["seed"][:seeds]
        values.pop("max_trials", None)
    if pack is not None:
        values.setdefault("execution", {})["pack_seeds"] = "auto" if pack == "auto" else int(pack)
    local = workdir / sweep.name
    local.write_text(yaml.safe_dump(values, sort_keys=False))
    return local


def run(
    sweep: Path,
    workdir: Path,
    epochs: int | None = None,
    seeds: int | None = None,
    pack: str | None = None,
) -> dict:
    """Run the sweep in `workdir` (optionally other epochs, fewer seeds, other packs); measure."""
    import pandas as pd

    sys.path.insert(0, str(ROOT))
    from sweeps.cli import main
    from sweeps.spec import load_spec

    local = write_sweep(sweep, workdir, epochs, seeds, pack)
    spec = load_spec(local)
    timers = instrument()
    cpu0 = resource.getrusage(resource.RUSAGE_SELF)
    t0 = time.time()
    code = main(["run", str(local), "--no-triage", "--out", str(workdir / "sweep")])
    t_end = time.time()
    cpu1 = resource.getrusage(resource.RUSAGE_SELF)
    if code != 0:
        raise SystemExit(f"the sweep failed with exit code {code}")

    trials = pd.read_parquet(workdir / "sweep" / "trials.parquet")
    epochs_table = pd.read_parquet(workdir / "sweep" / "epochs.parquet")
    cores = os.cpu_count() or 1
    cores_used = min(cores, int(cores // spec.resources.cpus) * spec.resources.cpus)
    inside = trainable_parts(workdir / "sweep", spec.checkpoint_every)
    figures = retime_figures(epochs_table, sample=min(16, len(trials)))
    members = int(len(trials))
    parts = split_wall(timers, inside, t0, t_end, cores_used, spec.resources.cpus)
    parts["figures_s"] = figures["cpu_s_per_member"] * members / cores_used
    parts["outputs_other_s"] = parts.pop("member_outputs_s") - parts["figures_s"]
    training = inside["training_s"]
    wall = t_end - t0
    ideal = training / cores_used
    beyond = inside["trainable_s"] - training
    return {
        "sweep": str(sweep.relative_to(ROOT) if sweep.is_relative_to(ROOT) else sweep),
        "trials": members,
        "tune_trials": int(inside["tune_trials"]),
        "epochs": int(spec.epochs),
        "seeds": seeds,
        "pack_seeds": spec.execution.pack_seeds,
        "verdicts": trials.verdict.value_counts().to_dict(),
        "cores": cores,
        "cores_used": cores_used,
        "wall_s": round(wall, 2),
        "training_s": round(training, 2),
        "ideal_s": round(ideal, 2),
        "sweep_overhead_ratio": round(wall / ideal, 3),
        "overhead_per_trial_s": round(beyond / inside["tune_trials"], 2),
        "overhead_per_run_s": round(beyond / members, 3),
        "parts_s": {k: round(v, 2) for k, v in parts.items()},
        "figures": figures,
        "driver": {
            "cpu_s": round(cpu1.ru_utime + cpu1.ru_stime - cpu0.ru_utime - cpu0.ru_stime, 2),
            **{f"{k}_s": round(v, 2) for k, v in timers.seconds.items()},
        },
        "load_average": [round(x, 2) for x in os.getloadavg()],
        "date": datetime.now(timezone.utc).date().isoformat(),
        "machine": f"{platform.machine()}, {cores} cores, {platform.python_version()}",
    }


def _iterations(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def trainable_parts(root: Path, checkpoint_every: int) -> dict[str, float]:
    """Core-seconds inside the trainables, by part, from Tune's per-iteration times.

    An iteration's time beyond its epoch and evaluations is: trainer set-up (the first),
    the members' outputs (an iteration after which members left the pack, and the last),
    a checkpoint report (every `checkpoint_every` epochs), else a plain per-epoch report.
    """
    parts: dict[str, float] = defaultdict(float)
    for result in sorted((root / "tune").glob("*/*/result.json")):
        its = _iterations(result)
        if not its:
            continue
        parts["tune_trials"] += 1
        parts["trainable_s"] += float(its[-1]["time_total_s"])
        for k, it in enumerate(its):
            records = it.get("records") or {}
            epoch_s = max((float(r.get("time/epoch_s") or 0) for r in records.values()), default=0)
            eval_s = sum(float(r.get("time/eval_s") or 0) for r in records.values())
            rest = float(it["time_this_iter_s"]) - epoch_s - eval_s
            parts["training_s"] += epoch_s
            parts["evaluation_s"] += eval_s
            later = set(its[k + 1]["records"]) if k + 1 < len(its) else set()
            if k == 0:
                parts["setup_s"] += rest
            elif k == len(its) - 1 or set(records) - later:
                parts["member_outputs_s"] += rest
            elif int(it["epoch"]) % checkpoint_every == 0:
                parts["checkpoints_s"] += rest
            else:
                parts["reports_s"] += rest
    return dict(parts)


def split_wall(
    timers: Timers, inside: dict[str, float], t0: float, t_end: float, cores: int, cpus: float
) -> dict[str, float]:
    """wall - ideal as parts in seconds per core (core-seconds / cores used)."""
    spans = [s for s in timers.trial_spans.values() if s[0] and s[1]]
    first_start = min(s[0] for s in spans)
    last_end = max(s[1] for s in spans)
    last_start = max(s[0] for s in spans)
    slots = max(1, int(cores // cpus))
    per_slot = cpus / cores  # a slot's seconds as seconds per core
    m = timers.marks
    idle_at_end = sum(last_end - s[1] for s in spans if s[1] >= last_start)
    busy = sum(s[1] - s[0] for s in spans)
    idle = slots * (last_end - first_start) - busy
    return {
        "before_ray_s": m["ray_init_start"] - t0,
        "ray_start_s": m["ray_init_end"] - m["ray_init_start"],
        "tune_to_first_trial_s": first_start - m["ray_init_end"],
        "worker_start_and_scheduling_s": (busy - inside["trainable_s"]) * per_slot
        + (idle - idle_at_end) * per_slot,
        "setup_s": inside.get("setup_s", 0.0) * per_slot,
        "evaluation_s": inside.get("evaluation_s", 0.0) * per_slot,
        "reports_s": inside.get("reports_s", 0.0) * per_slot,
        "checkpoints_s": inside.get("checkpoints_s", 0.0) * per_slot,
        "member_outputs_s": inside.get("member_outputs_s", 0.0) * per_slot,
        "idle_cores_at_end_s": idle_at_end * per_slot,
        "after_last_trial_s": m["ray_shutdown_start"] - last_end,
        "ray_stop_s": m["ray_shutdown_end"] - m["ray_shutdown_start"],
        "after_ray_stop_s": t_end - m["ray_shutdown_end"],
    }


def retime_figures(epochs: Any, sample: int) -> dict[str, Any]:
    """CPU seconds per member of the figures a trial draws, re-drawn here from histories.

    A trial draws each member's dynamics and gradient-norm figures from its history and a
    scatter of 1,000 samples; here `sample` members' histories are drawn in turn in one
    process, as a pack's members are (the first builds the figures, the rest reuse them).
    """
    import numpy as np

    from gan_core.plots import plot_dynamics, plot_grad_norms, save_sample_grid

    rng = np.random.default_rng(0)
    angles = 2 * np.pi * np.arange(8) / 8
    centers = 2 * np.stack([np.cos(angles), np.sin(angles)], 1)
    ids = list(dict.fromkeys(epochs.trial_id))[:sample]
    seconds = []
    with tempfile.TemporaryDirectory() as tmp:
        for tid in ids:
            rows = epochs[epochs.trial_id == tid].sort_values("epoch")
            history = [
                {k: v for k, v in rec.items() if isinstance(v, float) and v == v}
                for rec in rows.to_dict("records")
            ]
            points = centers[rng.integers(0, 8, 1000)] + 0.05 * rng.standard_normal((1000, 2))
            start = time.process_time()
            save_sample_grid(points, Path(tmp) / "samples.png", centers=centers)
            plot_dynamics(history, Path(tmp) / "dynamics.png")
            plot_grad_norms(history, Path(tmp) / "grad_norms.png")
            seconds.append(time.process_time() - start)
    return {
        "members_drawn": len(seconds),
        "first_cpu_s": round(seconds[0], 3),
        "cpu_s_per_member": round(sum(seconds) / len(seconds), 3),
        "median_cpu_s": round(sorted(seconds)[len(seconds) // 2], 3),
    }


def report(result: dict, say: Callable[[str], None] = print) -> None:
    say(
        f"trials: {result['trials']} runs in {result['tune_trials']} Tune trials of "
        f"{result['epochs']} epochs, pack_seeds {result['pack_seeds']} ({result['verdicts']}); "
        f"load average {result['load_average']}"
    )
    say(
        f"wall: {result['wall_s']} s; trials' own training: {result['training_s']} s on "
        f"{result['cores_used']} cores -> ideal {result['ideal_s']} s"
    )
    say("beyond the ideal, in seconds per core:")
    for name, value in result["parts_s"].items():
        say(f"  {name:32s} {value:8.2f}")
    f, d = result["figures"], result["driver"]
    say(
        f"figures, re-drawn from {f['members_drawn']} histories: {f['cpu_s_per_member']} CPU-s "
        f"per member (the first {f['first_cpu_s']}, median {f['median_cpu_s']})"
    )
    say(
        f"driver process: {d['cpu_s']} CPU-s; recorder {d.get('recorder_s', 0)} s, of it "
        f"Parquet {d.get('parquet_s', 0)} s; MLflow writer thread {d.get('mlflow_writer_s', 0)} s "
        f"in store calls and {d.get('mlflow_models_s', 0)} s logging generators as models"
    )
    say(
        f"beyond training, a Tune trial took {result['overhead_per_trial_s']} s and a run "
        f"(pack member) {result['overhead_per_run_s']} s"
    )
    say(f"overhead_per_trial_s={result['overhead_per_trial_s']}")
    say(f"overhead_per_run_s={result['overhead_per_run_s']}")
    say(f"sweep_overhead_ratio={result['sweep_overhead_ratio']}")


def _pack(value: str) -> str:
    if value != "auto" and not (value.isdigit() and int(value) > 0):
        raise argparse.ArgumentTypeError(f"a positive number or 'auto', got {value!r}")
    return value


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sweep", type=Path, default=DEMO, help="sweep file (default: the demo)")
    parser.add_argument("--epochs", type=int, help="epochs per trial (default: the sweep's)")
    parser.add_argument("--seeds", type=int, help="keep only the grid's first N seeds")
    parser.add_argument("--pack", type=_pack, help="execution.pack_seeds: a number or 'auto'")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="gansweep-bench-") as tmp:
        result = run(args.sweep.resolve(), Path(tmp), args.epochs, args.seeds, args.pack)
    report(result)
    (HERE / "overhead.json").write_text(json.dumps(result, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
