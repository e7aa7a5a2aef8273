"""Benchmark: triage (and report writing) of a 10,000-trial results table.

Builds a synthetic sweep with known structure (a few bad seeds, batch sizes >= 512 failing at one
LR, one LR failing everywhere, 2% sporadic failures) over 40 seeds x 6 batch sizes x 4 LRs x 11
values of another varied parameter, times `analysis.triage` and `analysis.write_report`, prints
``triage_seconds_10k=<x>`` and writes the figures to bench/triage.json.

Run: ``python bench/triage.py [--trials N] [--repeats R]``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from analysis import triage, write_report  # noqa: E402

SEEDS = np.arange(40)
BATCHES = np.array([32, 64, 128, 256, 512, 1024])
LRS = np.array([1e-4, 3e-4, 1e-3, 3e-3])
CRITIC = np.array([1, 2, 3, 4, 5, 6, 8, 10, 12, 16, 20])


def build_table(n: int, seed: int = 0) -> pd.DataFrame:
    """A results table of ``n`` distinct trials (n <= 10,560) with known failure structure."""
    rng = np.random.default_rng(seed)
    shape = (len(SEEDS), len(BATCHES), len(LRS), len(CRITIC))
    if n > np.prod(shape):
        raise ValueError(f"at most {np.prod(shape)} distinct trials; got {n}")
    picks = rng.choice(np.prod(shape), size=n, replace=False)
    i_s, i_b, i_l, i_c = np.unravel_index(picks, shape)
    s, b, lr, c = SEEDS[i_s], BATCHES[i_b], LRS[i_l], CRITIC[i_c]
    bad_seed = np.isin(s, rng.choice(SEEDS, 3, replace=False))
    bad_batch = (b >= 512) & (lr == 1e-3)
    bad_lr = lr == 3e-3
    p = 0.02 + 0.85 * bad_seed + 0.9 * bad_batch + 0.95 * bad_lr
    failed = rng.random(n) < np.minimum(p, 0.98)
    # The cause by construction (for failed trials); "inconclusive" = the 2% sporadic noise.
    truth = np.select(
        [bad_lr, bad_seed & bad_batch, bad_seed, bad_batch],
        ["lr", "both", "init", "batch"],
        default="inconclusive",
    )
    verdict = np.where(failed, rng.choice(["mode_collapse", "diverged"], n), "stable")
    return pd.DataFrame(
        {
            "trial_id": [f"t{i:05d}" for i in range(n)],
            "seed": s,
            "batch_size": b,
            "lr": lr,
            "train.n_critic": c,
            "verdict": verdict,
            "true_cause": np.where(failed, truth, None),
            "final/loss/d": np.where(failed, rng.normal(0.735, 0.01, n), rng.normal(0.70, 0.01, n)),
            "final/d/accuracy": np.where(
                failed, rng.normal(0.5, 0.02, n), rng.normal(0.6, 0.05, n)
            ),
            "final/g/accuracy": np.where(
                failed, rng.uniform(0.98, 1.0, n), rng.uniform(0.8, 0.95, n)
            ),
        }
    )


def run(n: int = 10_000, repeats: int = 3, max_panels: int = 24) -> dict:
    """Time triage ``repeats`` times (median) and one report; return the figures."""
    table = build_table(n)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        result = triage(table)
        times.append(time.perf_counter() - start)
    truth = table.set_index("trial_id")["true_cause"]
    found = pd.Series({d.trial_id: d.cause for d in result.diagnoses})
    agree = found == truth.loc[found.index]
    with tempfile.TemporaryDirectory() as out:
        start = time.perf_counter()
        paths = write_report(result, out, max_panels=max_panels)
        report_s = time.perf_counter() - start
        html_bytes = paths["html"].stat().st_size
    return {
        "trials": n,
        "failed": result.n_failed,
        "panels": int(result.table["panel"].nunique()),
        "causes": result.cause_counts,
        "followups": len(result.followups),
        "cause_agreement": float(agree.mean()),
        "cause_agreement_by_true_cause": {
            k: float(v) for k, v in agree.groupby(truth.loc[found.index]).mean().items()
        },
        "triage_seconds": statistics.median(times),
        "triage_seconds_all": times,
        "report_seconds": report_s,
        "report_html_bytes": html_bytes,
        "machine": {
            "python": platform.python_version(),
            "cpus": os.cpu_count(),
            "platform": platform.platform(),
            "pandas": pd.__version__,
        },
        "date": time.strftime("%Y-%m-%d"),
    }


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=10_000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--max-panels", type=int, default=24, help="heatmaps in the report")
    parser.add_argument("--json", type=Path, default=Path(__file__).with_suffix(".json"))
    args = parser.parse_args(argv)
    figures = run(args.trials, args.repeats, args.max_panels)
    tag = "10k" if args.trials == 10_000 else str(args.trials)
    print(
        f"trials={figures['trials']} failed={figures['failed']} panels={figures['panels']} "
        f"causes={figures['causes']}"
    )
    print(
        f"cause_agreement={figures['cause_agreement']:.3f} "
        f"by_true_cause={figures['cause_agreement_by_true_cause']}"
    )
    print(f"report_seconds_{tag}={figures['report_seconds']:.2f}")
    print(f"triage_seconds_{tag}={figures['triage_seconds']:.2f}")
    args.json.write_text(json.dumps(figures, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
