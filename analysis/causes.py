"""Decide the cause of each failed trial from the grid counts, with a confidence.

How confidence is computed
--------------------------
Every cause is a conjunction of comparisons between two sets of runs of the same panel (same LR
and other varied parameters), and each comparison is a one-sided Fisher exact test on the 2x2
table of failures and successes (`analysis.stats.fisher_greater`). The trial itself is never
counted as evidence for a comparison it is not part of. A cause's confidence is ``1 - max(p)``
over its comparisons: the intersection-union test, which is a valid level-alpha test of the
conjunction, so a cause is only as sure as its weakest leg. Because an exact test's smallest
attainable p-value shrinks with the number of runs, few seeds cannot give high confidence: a
comparison of one failed trial against m other seeds at its batch size has p >= 1/(m+1), so 2 seeds
give at most 0.5 and 10 seeds up to 0.9.

The comparisons (counts as in `analysis.grid`):

- A (seed fails elsewhere): seed s at its other batch sizes vs the other seeds at those sizes,
  stratified by batch size (exact conditional test; a batch size where every seed failed says
  nothing about the seed).
- B (seed fails here): seed s at batch b vs the other seeds at b.
- C (batch fails): the other seeds at b vs the same seeds at smaller batch sizes.
- D (seed's step): seed s from its smallest failing batch size upwards vs seed s below it (a
  seed that succeeds up to some batch size and fails from there on).
- L (learning rate): this LR's panel vs the same group's best other LR.

Causes:

- ``init``  = A and B: the same seed fails at other batch sizes while other seeds succeed here.
- ``batch`` = C, when fewer than 25% of the other seeds succeed at b: it fails across seeds
  while smaller batches succeed with the same seeds.
- ``both``  = (A and C), or (C and D) when at least 25% of the other seeds succeed at b: failure
  rises with batch size and also depends on the seed. When A and C both reach the decision
  threshold, ``both`` is chosen over ``init`` and ``batch``: the seed and the batch size each
  explain the failure.
- ``lr``    = L, when this LR's panel fails in at least half its runs, also at its smallest batch
  size, and another LR of the group fails in fewer than half.
- ``inconclusive``: no cause reaches `DECIDE` (0.75, i.e. every leg at p <= 0.25). Its
  confidence is that of the strongest candidate, named in ``best_guess``.

Confidences are per trial and not corrected for the many trials of a sweep: in a large sweep a
few chance failures can reach 0.75-0.85; "high" (>= 0.95) is the level to act on without a
follow-up.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from analysis.stats import fisher_from_counts

__all__ = ["CAUSES", "DECIDE", "SEED_SURVIVAL", "confidence_label", "decide"]

CAUSES = ("init", "batch", "both", "lr", "inconclusive")
DECIDE = 0.75  # a cause is reported when its confidence reaches this; else inconclusive
SEED_SURVIVAL = 0.25  # share of other seeds succeeding at b above which a batch effect is "both"
_LR_FAILING = 0.5  # an LR level "fails across seeds and batch sizes" at or above this share
_ORDER = ("lr", "batch", "init", "both")  # tie-break: the simpler explanation first


def confidence_label(confidence: float) -> str:
    """``high`` (>= 0.95), ``medium`` (>= 0.85) or ``low``."""
    if confidence >= 0.95:
        return "high"
    if confidence >= 0.85:
        return "medium"
    return "low"


def tests(counts: pd.DataFrame) -> pd.DataFrame:
    """The one-sided Fisher p-values A, B, C, D, L for every failed trial."""
    c = counts
    return pd.DataFrame(
        {
            "p_seed_elsewhere": c["A_p"].to_numpy(),
            "p_seed_here": fisher_from_counts(c["cell_k"], c["cell_n"], c["C_k"], c["C_n"]),
            "p_batch": fisher_from_counts(c["C_k"], c["C_n"], c["Sm_k"], c["Sm_n"]),
            "p_seed_step": fisher_from_counts(c["Up_k"], c["Up_n"], c["Dn_k"], c["Dn_n"]),
            "p_lr": fisher_from_counts(c["P_k"], c["P_n"], c["BO_k"], c["BO_n"]),
        },
        index=c.index,
    )


def decide(counts: pd.DataFrame) -> pd.DataFrame:
    """Cause, confidence and candidate scores for every failed trial.

    Args:
        counts: `analysis.grid.trial_counts` output.

    Returns:
        Indexed like ``counts``: the p-values of `tests`, ``score_<cause>`` for the four causes,
        ``both_kind`` (``seed_and_batch`` or ``fragile_seed``), ``cause``, ``confidence`` and
        ``best_guess`` (the strongest candidate, also when inconclusive).
    """
    p = tests(counts)
    survive = np.divide(
        counts["C_ok"], counts["C_n"], out=np.zeros(len(counts)), where=counts["C_n"] > 0
    )
    seeds_split = (counts["C_n"] > 0) & (survive >= SEED_SURVIVAL)
    out = p.copy()
    out["score_init"] = 1 - np.maximum(p["p_seed_elsewhere"], p["p_seed_here"])
    out["score_batch"] = np.where((counts["C_n"] > 0) & ~seeds_split, 1 - p["p_batch"], 0.0)
    over = 1 - np.maximum(p["p_seed_elsewhere"], p["p_batch"])
    fragile = np.where(seeds_split, 1 - np.maximum(p["p_batch"], p["p_seed_step"]), 0.0)
    out["score_both"] = np.maximum(over, fragile)
    out["both_kind"] = np.where(over >= fragile, "seed_and_batch", "fragile_seed")
    lr_ok = (
        (counts["BO_panel"] >= 0)
        & (counts["P_rate"] >= _LR_FAILING)
        & (counts["min_batch_rate"] >= _LR_FAILING)
        & (counts["BO_k"] < _LR_FAILING * counts["BO_n"])
    )
    out["score_lr"] = np.where(lr_ok, 1 - p["p_lr"], 0.0)
    scores = out[[f"score_{c}" for c in _ORDER]].to_numpy()
    best = scores.argmax(axis=1)  # first maximum wins: _ORDER is the tie-break
    best_guess = np.array(_ORDER)[best]
    confidence = scores[np.arange(len(out)), best]
    # Seed and batch size each established: "both", even if one alone scores higher.
    both = (over >= DECIDE) & np.isin(best_guess, ["init", "batch"])
    out["best_guess"] = np.where(both, "both", best_guess)
    out["both_kind"] = np.where(both, "seed_and_batch", out["both_kind"])
    out["confidence"] = np.where(both, over, confidence)
    out["cause"] = np.where(out["confidence"] >= DECIDE, out["best_guess"], "inconclusive")
    return out
