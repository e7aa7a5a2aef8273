"""Benchmark: is the triage's confidence the probability that its stated cause is right?

Draws many results grids from known mechanisms, triages each with `analysis.triage` (the real
code, end to end from a results table) and compares every failure's stated cause and confidence
with the mechanism that produced it.

Mechanisms (one per grid): ``noise`` (no structure, only chance failures), ``init`` (a few seeds
fail everywhere), ``batch`` (batch sizes from a threshold up fail, the same at every LR),
``interaction`` (that threshold moves with the LR), ``lr`` (everything at one LR fails),
``both`` (bad seeds on top of a batch threshold) and ``fragile`` (a seed that fails from its
own, smaller batch size up). Sizes, failure rates, missing cells and repeats vary from grid to
grid. A failure's true cause is its cell's: ``chance`` outside every bad region, else
init / batch / both / lr by the rules of `analysis.model` (a seed implicates itself only where
the other seeds succeed; everything failing at the only LR tried is undecidable).

Prints ``triage_accuracy=`` (share of decided failures whose cause is right),
``triage_decided=`` (share of failures with a decidable true cause that get a cause),
the reliability table (stated confidence bins against observed accuracy),
``calibration_error=`` (expected calibration error over every failure's strongest candidate),
``noise_confident_share=`` (failures of pure-noise grids given confidence >= 0.9),
``symmetry_init=`` / ``symmetry_batch=`` (a clean init and a clean batch failure on a square
grid) and, for follow-ups, ``followup_reached=`` (share of simulated follow-ups whose promised
confidence is reached when the hypothesised cause is true). Writes the figures to
bench/triage_calibration.json.

Run: ``nice python bench/triage_calibration.py [--grids N] [--seed S]``.
"""

from __future__ import annotations

import argparse
import itertools
import json
import multiprocessing
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from analysis import triage  # noqa: E402

MECHANISMS = ("noise", "init", "batch", "interaction", "lr", "both", "fragile")
ALL_BATCHES = (32, 64, 128, 256, 512, 1024, 2048)
ALL_LRS = (1e-4, 3e-4, 1e-3, 3e-3)
CAUSES = ("init", "batch", "both", "lr")
CONFIDENT = 0.9  # the noise target: at most 1% of pure-noise failures this confident
BINS = np.linspace(0.0, 1.0, 11)


@dataclass(frozen=True)
class Design:
    """The shape of one simulated sweep."""

    seeds: int
    batches: tuple
    lrs: tuple
    repeats: int
    missing: float


@dataclass(frozen=True)
class Truth:
    """The latent structure a grid was drawn from (indices into the design's batches)."""

    mechanism: str
    seed_from: dict  # seed -> first bad batch index (0: bad everywhere)
    lr_from: dict  # lr index -> first bad batch index (0: everything at that LR)
    n_lrs: int
    p0: float
    q_seed: float
    q_batch: float


def draw_design(rng: np.random.Generator, mechanism: str) -> Design:
    """Sizes that let the mechanism show at all (a batch effect needs two batch sizes)."""
    min_m = {"batch": 2, "interaction": 3, "both": 2, "fragile": 3}.get(mechanism, 1)
    m = int(rng.integers(min_m, 7))
    start = int(rng.integers(0, len(ALL_BATCHES) - m + 1))
    min_l = {"interaction": 2, "lr": 1}.get(mechanism, 1)
    n_lr = int(rng.choice([1, 1, 2, 2, 3])) if min_l == 1 else int(rng.integers(2, 4))
    lrs = tuple(sorted(rng.choice(ALL_LRS, n_lr, replace=False)))
    min_s = 4 if mechanism == "fragile" else 2
    seeds = int(rng.choice([s for s in (2, 3, 4, 5, 6, 8, 10, 12, 16, 20) if s >= min_s]))
    repeats = int(rng.choice([1, 1, 1, 2, 3]))
    missing = float(rng.choice([0.0, 0.0, 0.1, 0.25]))
    return Design(seeds, tuple(ALL_BATCHES[start : start + m]), lrs, repeats, missing)


def draw_truth(rng: np.random.Generator, mechanism: str, d: Design) -> Truth:
    """Which seeds, batch sizes and LRs are bad, and the failure rates."""
    m, n_lr = len(d.batches), len(d.lrs)
    seed_from: dict = {}
    lr_from: dict = {}
    bad_seeds = max(1, int(rng.integers(1, max(2, d.seeds // 4 + 1))))
    if mechanism in ("init", "both"):
        for s in rng.choice(d.seeds, min(bad_seeds, d.seeds - 1), replace=False):
            seed_from[int(s)] = 0
    if mechanism in ("batch", "both"):
        t = int(rng.integers(1, m))
        lr_from = dict.fromkeys(range(n_lr), t)
    if mechanism == "interaction":  # the threshold falls as the LR rises
        t = int(rng.integers(1, m))
        for i in range(n_lr):
            lr_from[i] = max(0, t - (n_lr - 1 - i))
        if all(v == 0 for v in lr_from.values()):
            lr_from[0] = 1
    if mechanism == "lr":
        lr_from[n_lr - 1] = 0
    if mechanism == "fragile":
        t = int(rng.integers(1, m))
        for s in rng.choice(d.seeds, max(1, min(2, d.seeds // 4)), replace=False):
            seed_from[int(s)] = t
    return Truth(
        mechanism,
        seed_from,
        lr_from,
        n_lrs=n_lr,
        p0=float(rng.choice([0.0, 0.01, 0.03, 0.06, 0.1, 0.15, 0.2])),
        q_seed=float(rng.uniform(0.6, 1.0)),
        q_batch=float(rng.uniform(0.6, 1.0)),
    )


def true_cause(truth: Truth, seed: int, lr_i: int, j: int) -> str:
    """The cause of a failure at (seed, LR index, batch index), by the module's rules."""
    u = truth.seed_from.get(seed)
    t = truth.lr_from.get(lr_i)
    seed_on = u is not None and j >= u
    batch_on = t is not None and j >= t
    if batch_on and t == 0:
        others_ok = any(truth.lr_from.get(i) != 0 for i in range(truth.n_lrs))
        return "lr" if others_ok else "shared"
    if batch_on:
        return "both" if seed_on and u < t else "batch"
    if seed_on:
        return "init" if u == 0 else "both"
    return "chance"


def draw_table(rng: np.random.Generator, mechanism: str) -> tuple[pd.DataFrame, Truth, Design]:
    """One simulated sweep: a results table with each trial's true cause."""
    while True:
        d = draw_design(rng, mechanism)
        truth = draw_truth(rng, mechanism, d)
        rows = []
        for s in range(d.seeds):
            for li, lr in enumerate(d.lrs):
                for j, b in enumerate(d.batches):
                    if d.missing and rng.random() < d.missing:
                        continue
                    for r in range(d.repeats):
                        rows.append(_run(rng, truth, f"s{s}-lr{li}-b{b}-r{r}", s, li, j, lr, b))
        table = pd.DataFrame(rows)
        if len(table) and table["failed"].any():
            return table, truth, d


def _run(rng, truth: Truth, trial_id: str, seed, li, j, lr, batch) -> dict:
    """One simulated run; ``li`` or ``j`` None for an LR or batch size outside the truth's
    regions (a new, lower LR of a follow-up), ``seed`` not in the truth for a new seed."""
    u = truth.seed_from.get(seed)
    t = truth.lr_from.get(li)
    mech = truth.q_seed if u is not None and j is not None and j >= u else 0.0
    if t is not None and j is not None and j >= t:
        mech = 1 - (1 - mech) * (1 - truth.q_batch)
    failed = bool(rng.random() < 1 - (1 - truth.p0) * (1 - mech))
    cause = true_cause(truth, seed, li, j) if li is not None and j is not None else "chance"
    return {
        "trial_id": trial_id,
        "seed": seed,
        "batch_size": int(batch),
        "lr": float(lr),
        "failed": failed,
        "true_cause": cause if failed else None,
    }


def judge(result, table: pd.DataFrame) -> pd.DataFrame:
    """Per failure: the stated cause and confidence against the truth."""
    truth = table.set_index("trial_id")["true_cause"]
    return pd.DataFrame(
        {
            "trial_id": [d.trial_id for d in result.diagnoses],
            "cause": [d.cause for d in result.diagnoses],
            "guess": [d.best_guess or "none" for d in result.diagnoses],
            "confidence": [d.confidence for d in result.diagnoses],
            "truth": [truth[d.trial_id] for d in result.diagnoses],
        }
    )


def _followup_runs(rng, plan, truth: Truth, d: Design) -> list[dict]:
    """The follow-up's new runs, drawn from the true mechanism (new seeds are healthy)."""
    grid = plan.grid
    keys = list(grid)
    rows = []
    for k, values in enumerate(itertools.product(*grid.values())):
        point = dict(zip(keys, values, strict=True))
        seed = point.get("seed", point.get("init_seed"))
        lr = point.get("lr", d.lrs[0])
        li = d.lrs.index(lr) if lr in d.lrs else None
        j = d.batches.index(point["batch_size"]) if point["batch_size"] in d.batches else None
        run = _run(rng, truth, f"f{plan.index}-{k}", seed, li, j, lr, point["batch_size"])
        if "data_seed" in point:
            run.update(init_seed=seed, data_seed=point["data_seed"])
        rows.append(run)
    return rows


def followup_check(rng, result, table: pd.DataFrame, truth: Truth, d: Design) -> pd.DataFrame:
    """Run every follow-up in simulation and triage old plus new results together.

    Returns:
        One row per failure a follow-up was meant to decide whose true cause is the one the
        follow-up tests: ``reached`` when the new triage gives that cause (the init seed
        stream, for a streams follow-up) at least the probability the follow-up promised (its
        target, or less when it says it cannot reach the target); ``promised`` whether it
        promised the target.
    """
    if not result.followups:
        return pd.DataFrame()
    new = [r for p in result.followups for r in _followup_runs(rng, p, truth, d)]
    combined = pd.concat([table, pd.DataFrame(new)], ignore_index=True)
    for col in ("init_seed", "data_seed"):
        if col in combined:
            combined[col] = combined[col].fillna(combined["seed"]).astype(int)
    after = {x.trial_id: x for x in triage(combined).diagnoses}
    before = {x.trial_id: x for x in result.diagnoses}
    known = table.set_index("trial_id")["true_cause"].replace("shared", "lr")
    rows = []
    for plan in result.followups:
        group_of = {t: g for g in plan.groups for t in _trials_of(result, g)}
        for trial in plan.decides:
            hypothesis = {"lr": "lr", "streams": "init"}.get(plan.purpose)
            hypothesis = hypothesis or before[trial].best_guess
            if known[trial] != hypothesis:
                continue
            new = after[trial]
            reached = plan.reached[group_of[trial]]
            promised = min(plan.target, reached)  # what the follow-up says it reaches
            prob = new.probabilities[hypothesis]
            if plan.purpose == "streams":  # the init stream: init or both, laid out by init
                prob = (new.probabilities["init"] + new.probabilities["both"]) * (
                    new.seed_stream == "init"
                )
            ok = prob >= promised
            rows.append(
                {
                    "purpose": plan.purpose,
                    "hypothesis": hypothesis,
                    "runs": plan.runs,
                    "promised": reached >= plan.target,
                    "before": before[trial].confidence,
                    "after": prob,
                    "reached": ok,
                }
            )
    return pd.DataFrame(rows)


def _trials_of(result, index: int) -> list:
    return result.groups[index - 1].trials


def _one(args) -> tuple[pd.DataFrame, pd.DataFrame]:
    seed, i, mechanism, followups = args
    rng = np.random.default_rng([seed, i])
    table, truth, d = draw_table(rng, mechanism)
    result = triage(table)
    out = judge(result, table).assign(
        grid=i, mechanism=mechanism, seeds=d.seeds, batches=len(d.batches), lrs=len(d.lrs)
    )
    fu = followup_check(rng, result, table, truth, d) if followups else pd.DataFrame()
    return out, fu.assign(grid=i, mechanism=mechanism) if len(fu) else fu


def simulate(
    n_grids: int, seed: int = 0, workers: int = 2, followups: bool = True, mechanisms=MECHANISMS
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Triage ``n_grids`` simulated sweeps (grid i is the same whatever the worker count).

    Returns:
        One row per failure with truth and verdict; one row per follow-up check.
    """
    tasks = [(seed, i, mechanisms[i % len(mechanisms)], followups) for i in range(n_grids)]
    if workers > 1:
        with multiprocessing.get_context("spawn").Pool(workers) as pool:
            parts = pool.map(_one, tasks, chunksize=8)
    else:
        parts = [_one(t) for t in tasks]
    rows = pd.concat([p[0] for p in parts], ignore_index=True)
    checks = [p[1] for p in parts if len(p[1])]
    return rows, pd.concat(checks, ignore_index=True) if checks else pd.DataFrame()


def reliability(rows: pd.DataFrame) -> pd.DataFrame:
    """Stated confidence (of the strongest candidate) by bin against the share that was right."""
    right = rows["guess"] == rows["truth"]
    bins = pd.cut(rows["confidence"], BINS, include_lowest=True)
    table = (
        pd.DataFrame({"bin": bins, "confidence": rows["confidence"], "right": right})
        .groupby("bin", observed=True)
        .agg(
            failures=("right", "size"),
            confidence=("confidence", "mean"),
            accuracy=("right", "mean"),
        )
        .reset_index()
    )
    table["bin"] = table["bin"].astype(str)
    return table


def figures(rows: pd.DataFrame, checks: pd.DataFrame | None = None) -> dict:
    """The benchmark's figures from the rows and follow-up checks of `simulate`."""
    decided = rows["cause"] != "inconclusive"
    decidable = rows["truth"].isin(CAUSES)
    right = rows["cause"] == rows["truth"]
    rel = reliability(rows)
    ece = float((rel["failures"] * (rel["confidence"] - rel["accuracy"]).abs()).sum() / len(rows))
    noise = rows[rows["mechanism"] == "noise"]
    by_mech = {
        m: {
            "failures": int(len(g)),
            "accuracy": float((g["cause"] == g["truth"])[g["cause"] != "inconclusive"].mean())
            if (g["cause"] != "inconclusive").any()
            else None,
            "decided": float((g["cause"] != "inconclusive")[g["truth"].isin(CAUSES)].mean())
            if g["truth"].isin(CAUSES).any()
            else None,
        }
        for m, g in rows.groupby("mechanism")
    }
    return {
        "grids": int(rows["grid"].nunique()),
        "failures": int(len(rows)),
        "triage_accuracy": float(right[decided].mean()) if decided.any() else float("nan"),
        "triage_decided": float(decided[decidable].mean()) if decidable.any() else float("nan"),
        "calibration_error": ece,
        "noise_confident_share": float((noise["confidence"] >= CONFIDENT).mean())
        if len(noise)
        else 0.0,
        "reliability": rel.to_dict("records"),
        "by_mechanism": by_mech,
        **_followup_figures(checks),
    }


def _followup_figures(checks: pd.DataFrame | None) -> dict:
    if checks is None or not len(checks):
        return {"followup_checked": 0, "followup_reached": float("nan")}
    by = checks.groupby("purpose")["reached"].agg(["size", "mean"])
    return {
        "followup_checked": int(len(checks)),
        "followup_reached": float(checks["reached"].mean()),
        "followup_by_purpose": {p: [int(r["size"]), float(r["mean"])] for p, r in by.iterrows()},
    }


def symmetry(size: int = 6) -> tuple[float, float]:
    """Confidence of a clean init failure and of a clean batch failure on a size x size grid."""
    batches = ALL_BATCHES[:size]
    rows = [{"seed": s, "batch_size": b, "lr": 1e-3} for s in range(size) for b in batches]
    base = pd.DataFrame(rows)
    init = base.assign(failed=base["seed"] == 2)
    batch = base.assign(failed=base["batch_size"] == batches[-1])
    conf_init = min(d.confidence for d in triage(init).diagnoses if d.cause == "init")
    conf_batch = min(d.confidence for d in triage(batch).diagnoses if d.cause == "batch")
    return conf_init, conf_batch


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--grids", type=int, default=560)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--json", type=Path, default=Path(__file__).with_suffix(".json"))
    args = parser.parse_args(argv)
    start = time.perf_counter()
    rows, checks = simulate(args.grids, args.seed, args.workers)
    figs = figures(rows, checks)
    figs["symmetry_init"], figs["symmetry_batch"] = symmetry()
    figs["seconds"] = time.perf_counter() - start
    figs["date"] = time.strftime("%Y-%m-%d")
    print(f"grids={figs['grids']} failures={figs['failures']} seconds={figs['seconds']:.0f}")
    print("confidence bin   failures  stated  observed")
    for r in figs["reliability"]:
        print(f"{r['bin']:<16}{r['failures']:>9}{r['confidence']:>8.3f}{r['accuracy']:>10.3f}")
    for m, v in figs["by_mechanism"].items():
        print(f"mechanism {m}: {v}")
    print(f"triage_accuracy={figs['triage_accuracy']:.3f}")
    print(f"triage_decided={figs['triage_decided']:.3f}")
    print(f"calibration_error={figs['calibration_error']:.3f}")
    print(f"noise_confident_share={figs['noise_confident_share']:.4f}")
    print(f"symmetry_init={figs['symmetry_init']:.3f} symmetry_batch={figs['symmetry_batch']:.3f}")
    print(
        f"followup_checked={figs['followup_checked']} by_purpose={figs.get('followup_by_purpose')}"
    )
    print(f"followup_reached={figs['followup_reached']:.3f}")
    args.json.write_text(json.dumps(figs, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
