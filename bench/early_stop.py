"""Failure-aware early stopping: compute saved, and whether the triage still says the same.

Runs one real sweep twice with `gansweep run` machinery (embedded Ray, MLflow in a temporary
SQLite store): once as a triage-grade sweep that sees every run to its end, once with
``early_stop: {enabled: true}``. The sweep is the ring GAN over seeds x batch sizes (256, 512) x
generator learning rates, where one generator LR is 5,000 times too small (G barely moves, D wins
at once), so half the trials fail with ``d_dominance`` and the rest train normally (stable, or
poor quality: a verdict early stopping never acts on). The healthy LR is one at which most runs
end stable, so the triage can name the cause of the failing half (``lr``) and the comparison of
causes tests something: with batch 64 and a 5e-3 G, half the healthy runs ended poor_quality and
every cause came out inconclusive.

Prints per-trial verdicts and epochs of both runs, then
``early_stop_saved=<fraction> causes_identical=<true|false>``, and writes bench/early_stop.json.
``saved`` is the share of trial-epochs (sum of epochs_run over trials) the early-stopped sweep
did not train; ``causes_identical`` compares the triage's cause for every failed trial (and the
set of failed trials and their verdicts).

    python bench/early_stop.py            # about 5 minutes on 2 cores
    python bench/early_stop.py --patience 3

Target (issue 6): >= 40% saved, identical causes.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd
import yaml

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from analysis import load_results, triage  # noqa: E402
from sweeps.runner import plan_run, ray_session, run_sweep  # noqa: E402

SWEEP = {
    "base": {
        "data": {"name": "ring", "n_points": 20000},
        "generator": {"hidden_dims": [128, 128]},
        "discriminator": {"hidden_dims": [128, 128]},
        "train": {"loss_type": "non_saturating", "steps_per_epoch": 100, "d_lr": 5e-3},
        "eval": {"n_samples": 2000},
    },
    "epochs": 40,
    "eval_every": 1,
    "checkpoint_every": 10,
    "grid": {"seed": [0, 1, 2], "batch_size": [256, 512], "g_lr": [1e-3, 2e-7]},
    "resources": {"cpus": 1},
}


def run(tmp: Path, name: str, early_stop: dict | None) -> tuple[pd.DataFrame, float, object]:
    values = {**SWEEP, "name": name, "results_dir": str(tmp / "runs"),
              "tracking": {"uri": f"sqlite:///{tmp / 'mlflow.db'}"}}
    if early_stop:
        values["early_stop"] = early_stop
    path = tmp / f"{name}.yaml"
    path.write_text(yaml.safe_dump(values, sort_keys=False))
    start = time.perf_counter()
    code = run_sweep(plan_run(path), triage=False)
    wall = time.perf_counter() - start
    if code != 0:
        raise SystemExit(f"sweep {name} exited {code}")
    root = tmp / "runs" / name
    trials = pd.read_parquet(root / "trials.parquet").set_index("trial_id")
    return trials, wall, triage(load_results(root))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--patience", type=int, default=2, help="early_stop.patience (default 2)")
    ap.add_argument("--out", default=str(HERE / "early_stop.json"))
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="gansweep-bench-") as tmp, ray_session():
        full, full_wall, full_triage = run(Path(tmp), "full", None)
        early, early_wall, early_triage = run(
            Path(tmp), "early", {"enabled": True, "patience": args.patience})

    print(f"{'trial':6} {'batch':>5} {'g_lr':>7}  {'full: verdict':24} {'early stop: verdict':32}")
    for tid, row in full.iterrows():
        other = early.loc[tid]
        stopped = " (stopped)" if other.stopped_early else ""
        print(f"{tid:6} {row.batch_size:5d} {row.g_lr:7.0e}  {row.verdict:15} "
              f"{row.epochs_run:3d} ep  {other.verdict + stopped:27} {other.epochs_run:3d} ep")
    full_epochs, early_epochs = int(full.epochs_run.sum()), int(early.epochs_run.sum())
    saved = 1 - early_epochs / full_epochs
    causes_full = {d.trial_id: d.cause for d in full_triage.diagnoses}
    causes_early = {d.trial_id: d.cause for d in early_triage.diagnoses}
    verdicts_same = bool((full.verdict == early.verdict.reindex(full.index)).all())
    identical = causes_full == causes_early and verdicts_same
    failing = int((full.verdict != "stable").sum())
    print(f"failed trials: {failing}/{len(full)} ({full_triage.cause_counts}); "
          f"stopped early: {int(early.stopped_early.sum())}")
    print(f"trial-epochs: {full_epochs} without early stopping, {early_epochs} with; "
          f"wall {full_wall:.0f}s vs {early_wall:.0f}s")
    print(f"early_stop_saved={saved:.3f} causes_identical={'true' if identical else 'false'}")
    result = {
        "benchmark": "early_stop",
        "sweep": SWEEP,
        "patience": args.patience,
        "trials": len(full),
        "failed": failing,
        "trial_epochs_full": full_epochs,
        "trial_epochs_early": early_epochs,
        "early_stop_saved": round(saved, 4),
        "causes_identical": identical,
        "verdicts_identical": verdicts_same,
        "causes_full": causes_full,
        "causes_early": causes_early,
        "wall_s_full": round(full_wall, 1),
        "wall_s_early": round(early_wall, 1),
        "machine": platform.machine(),
        "cpus": os.cpu_count(),
    }
    Path(args.out).write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
