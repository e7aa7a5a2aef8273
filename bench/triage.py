"""Benchmark: triage and report writing of a 10,000- and a 100,000-trial results table.

Builds a synthetic sweep with known structure (a few bad seeds, batch sizes >= 512 failing at one
LR, one LR failing everywhere, 2% sporadic failures) over 6 batch sizes x 4 LRs x 11 values of
another varied parameter and as many seeds as the size needs (40 for 10,000 trials, 400 for
100,000), times `analysis.triage` plus `analysis.write_report` (triage.json, report.md,
report.html, follow-ups) and prints ``triage_seconds_<size>=`` (triage plus every report, wall
clock; the triage is the median of the repeats), ``triage_only_seconds_<size>=``,
``report_seconds_<size>=``, the CPU seconds of both and the load average (other processes on a
shared machine stretch the wall clock) and ``triage_json_mb_<size>=``; writes the figures to
bench/triage.json.

Run: ``nice python bench/triage.py [--trials N ...] [--repeats R]`` (default: 10,000 and
100,000).
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

BATCHES = np.array([32, 64, 128, 256, 512, 1024])
LRS = np.array([1e-4, 3e-4, 1e-3, 3e-3])
CRITIC = np.array([1, 2, 3, 4, 5, 6, 8, 10, 12, 16, 20])


def n_seeds(n: int) -> int:
    """Seeds for ``n`` distinct trials: 40 up to 10,000 trials, then about 4 per 1,000."""
    per_seed = len(BATCHES) * len(LRS) * len(CRITIC)
    return max(40, int(np.ceil(n / per_seed / 0.95)))


def build_table(n: int, seed: int = 0) -> pd.DataFrame:
    """A results table of ``n`` distinct trials with known failure structure."""
    rng = np.random.default_rng(seed)
    seeds = np.arange(n_seeds(n))
    shape = (len(seeds), len(BATCHES), len(LRS), len(CRITIC))
    picks = rng.choice(np.prod(shape), size=n, replace=False)
    i_s, i_b, i_l, i_c = np.unravel_index(picks, shape)
    s, b, lr, c = seeds[i_s], BATCHES[i_b], LRS[i_l], CRITIC[i_c]
    bad_seed = np.isin(s, rng.choice(seeds, max(3, len(seeds) // 13), replace=False))
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


def run(n: int = 10_000, repeats: int = 3, max_panels: int = 12) -> dict:
    """Time triage ``repeats`` times (median) and one report; return the figures."""
    table = build_table(n)
    times, cpu = [], []
    for _ in range(repeats):
        start, start_cpu = time.perf_counter(), time.process_time()
        result = triage(table)
        times.append(time.perf_counter() - start)
        cpu.append(time.process_time() - start_cpu)
    truth = table.set_index("trial_id")["true_cause"]
    found = pd.Series({d.trial_id: d.cause for d in result.diagnoses})
    agree = found == truth.loc[found.index]
    with tempfile.TemporaryDirectory() as out:
        start, start_cpu = time.perf_counter(), time.process_time()
        paths = write_report(result, out, max_panels=max_panels)
        report_s = time.perf_counter() - start
        report_cpu = time.process_time() - start_cpu
        html_bytes = paths["html"].stat().st_size
        json_bytes = paths["json"].stat().st_size
        files = len(result.followups)
    return {
        "trials": n,
        "seeds": n_seeds(n),
        "failed": result.n_failed,
        "panels": int(result.table["panel"].nunique()),
        "causes": result.cause_counts,
        "groups": len(result.groups),
        "followups": files,
        "cause_agreement": float(agree.mean()),
        "cause_agreement_by_true_cause": {
            k: float(v) for k, v in agree.groupby(truth.loc[found.index]).mean().items()
        },
        "triage_seconds": statistics.median(times),
        "triage_seconds_all": times,
        "triage_cpu_seconds": statistics.median(cpu),
        "report_seconds": report_s,
        "report_cpu_seconds": report_cpu,
        "total_seconds": statistics.median(times) + report_s,
        "total_cpu_seconds": statistics.median(cpu) + report_cpu,
        "load_average": os.getloadavg()[0],
        "report_html_bytes": html_bytes,
        "triage_json_bytes": json_bytes,
        "machine": {
            "python": platform.python_version(),
            "cpus": os.cpu_count(),
            "platform": platform.platform(),
            "pandas": pd.__version__,
        },
        "date": time.strftime("%Y-%m-%d"),
    }


def _tag(n: int) -> str:
    return f"{n // 1000}k" if n % 1000 == 0 else str(n)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, nargs="+", default=[10_000, 100_000])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--max-panels", type=int, default=12, help="heatmaps in the report")
    parser.add_argument("--json", type=Path, default=Path(__file__).with_suffix(".json"))
    args = parser.parse_args(argv)
    all_figures = {}
    for n in args.trials:
        figures = run(n, args.repeats, args.max_panels)
        tag = _tag(n)
        all_figures[tag] = figures
        print(
            f"trials={figures['trials']} seeds={figures['seeds']} failed={figures['failed']} "
            f"panels={figures['panels']} groups={figures['groups']} "
            f"followups={figures['followups']} causes={figures['causes']}"
        )
        print(
            f"cause_agreement={figures['cause_agreement']:.3f} "
            f"by_true_cause={figures['cause_agreement_by_true_cause']}"
        )
        print(f"triage_only_seconds_{tag}={figures['triage_seconds']:.2f}")
        print(f"report_seconds_{tag}={figures['report_seconds']:.2f}")
        print(f"triage_seconds_{tag}={figures['total_seconds']:.2f}")
        print(
            f"cpu: triage {figures['triage_cpu_seconds']:.2f} s, reports "
            f"{figures['report_cpu_seconds']:.2f} s (load average {figures['load_average']:.1f})"
        )
        print(f"triage_json_mb_{tag}={figures['triage_json_bytes'] / 1e6:.2f}")
    args.json.write_text(json.dumps(all_figures, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
