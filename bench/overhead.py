"""Orchestration overhead of a sweep: wall time against the ideal.

Runs the demo sweep (or --sweep FILE) exactly as `gansweep run` does (embedded Ray on all
cores, MLflow tracking, Parquet results; no triage) and compares its wall time with the
ideal: the sum of the trials' own training time (the trainer's `time/epoch_s`, the training
steps of every epoch) divided by the cores used. Everything else is overhead: Ray start and
stop, worker start, trainer set-up, the quality evaluations, checkpoints, figures, MLflow and
Parquet writes, and cores left idle at the end of the grid.

    python bench/overhead.py                 # prints sweep_overhead_ratio=<x>
    python bench/overhead.py --sweep sweeps/examples/wgan_gp.yaml
    python bench/overhead.py --epochs 120    # the same grid with 4x longer trials

Most of the overhead is fixed (Ray's start and stop, the first worker's start) or fixed per
trial (figures, evaluation, the final report), so the ratio falls as trials get longer;
--epochs shows by how much without changing the grid.

Writes bench/overhead.json beside this file.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
DEMO = ROOT / "sweeps" / "examples" / "demo.yaml"


def run(sweep: Path, workdir: Path, trial_epochs: int | None = None) -> dict:
    """Run the sweep in `workdir` (with `trial_epochs` per trial, if given) and measure it."""
    import pandas as pd
    import yaml

    sys.path.insert(0, str(ROOT))
    from sweeps.cli import main
    from sweeps.spec import load_spec

    spec = load_spec(sweep)
    values = yaml.safe_load(sweep.read_text())
    values["results_dir"] = str(workdir / "runs")
    values["tracking"] = {"uri": f"sqlite:///{workdir / 'mlflow.db'}"}
    if trial_epochs is not None:
        values["epochs"] = trial_epochs
    local = workdir / sweep.name
    local.write_text(yaml.safe_dump(values, sort_keys=False))

    started = datetime.now(timezone.utc)
    start = time.perf_counter()
    code = main(["run", str(local), "--no-triage", "--out", str(workdir / "sweep")])
    wall = time.perf_counter() - start
    if code != 0:
        raise SystemExit(f"the sweep failed with exit code {code}")

    trials = pd.read_parquet(workdir / "sweep" / "trials.parquet")
    epochs = pd.read_parquet(workdir / "sweep" / "epochs.parquet")
    cores = os.cpu_count() or 1
    cores_used = min(cores, int(cores // spec.resources.cpus) * spec.resources.cpus)
    training = float(epochs["time/epoch_s"].sum())
    evaluation = float(epochs.get("time/eval_s", pd.Series(dtype=float)).sum())
    trial_wall = float(
        (pd.to_datetime(trials.finished_at) - pd.to_datetime(trials.started_at))
        .dt.total_seconds()
        .sum()
    )
    ideal = training / cores_used
    first_start = pd.to_datetime(trials.started_at).min()
    last_finish = pd.to_datetime(trials.finished_at).max()
    # Where the rest went: before the first trial started (Ray start, planning, MLflow set-up),
    # inside trials beyond their training epochs (worker and trainer set-up, quality
    # evaluations, checkpoints, figures, result round trips; per core), and after the last
    # trial (shutdown). Trial start and finish times are stored to the second.
    before_first = (first_start - pd.Timestamp(started)).total_seconds()
    per_trial = tune_trial_overheads(workdir / "sweep", epochs)
    after_last = wall - (last_finish - pd.Timestamp(started)).total_seconds()
    return {
        "sweep": str(sweep.relative_to(ROOT) if sweep.is_relative_to(ROOT) else sweep),
        "trials": int(len(trials)),
        "epochs": int(values["epochs"]),
        "verdicts": trials.verdict.value_counts().to_dict(),
        "cores": cores,
        "cores_used": cores_used,
        "wall_s": round(wall, 2),
        "training_s": round(training, 2),
        "trial_wall_s": round(trial_wall, 2),
        "ideal_s": round(ideal, 2),
        "before_first_trial_s": round(before_first, 2),
        "inside_trials_per_core_s": round((trial_wall - training) / cores_used, 2),
        "evaluation_per_core_s": round(evaluation / cores_used, 2),
        "after_last_trial_s": round(after_last, 2),
        "sweep_overhead_ratio": round(wall / ideal, 3),
        "tune_trials": len(per_trial),
        "overhead_per_trial_s": round(sum(per_trial) / len(per_trial), 2),
        "overhead_per_run_s": round(sum(per_trial) / len(trials), 2),
        "trial_overhead_ratio": round(trial_wall / training, 3),
        "date": datetime.now(timezone.utc).date().isoformat(),
        "machine": f"{platform.machine()}, {cores} cores, {platform.python_version()}",
    }


def tune_trial_overheads(root: Path, epochs: Any) -> list[float]:
    """Each Tune trial's time beyond its training epochs (a pack counts once).

    A trial's time is Tune's `time_total_s` of its last result (set-up, epochs, evaluations,
    reports, checkpoints and the final figures); its training is the epoch times of its first
    member (a pack's members share their epochs).
    """
    out = []
    for result in sorted((root / "tune").glob("*/*/result.json")):
        lines = result.read_text().splitlines()
        if not lines:
            continue
        last = json.loads(lines[-1])
        first = last["config"]["trial"]["members"][0]["trial_id"]
        training = float(epochs.loc[epochs.trial_id == first, "time/epoch_s"].sum())
        out.append(float(last["time_total_s"]) - training)
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sweep", type=Path, default=DEMO, help="sweep file (default: the demo)")
    parser.add_argument("--epochs", type=int, help="epochs per trial (default: the sweep's)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="gansweep-bench-") as tmp:
        result = run(args.sweep.resolve(), Path(tmp), args.epochs)
    print(f"trials: {result['trials']} of {result['epochs']} epochs ({result['verdicts']})")
    print(
        f"wall: {result['wall_s']} s; trials' own training: {result['training_s']} s on "
        f"{result['cores_used']} cores -> ideal {result['ideal_s']} s"
    )
    print(f"trial wall time / own training time: {result['trial_overhead_ratio']}")
    print(
        f"overhead: {result['before_first_trial_s']} s before the first trial, "
        f"{result['inside_trials_per_core_s']} s per core inside trials beyond training "
        f"({result['evaluation_per_core_s']} s of it quality evaluation), "
        f"{result['after_last_trial_s']} s after the last"
    )
    print(
        f"{result['tune_trials']} Tune trials; beyond training, each took "
        f"{result['overhead_per_trial_s']} s on average (set-up, evaluations, reports, "
        f"checkpoints, final figures): {result['overhead_per_run_s']} s of a slot per run"
    )
    print(f"overhead_per_trial_s={result['overhead_per_trial_s']}")
    print(f"sweep_overhead_ratio={result['sweep_overhead_ratio']}")
    (HERE / "overhead.json").write_text(json.dumps(result, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
