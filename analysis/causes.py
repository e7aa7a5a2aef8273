"""Decide the cause of each failed trial from the grid model's posterior, with a confidence.

How confidence is computed
--------------------------
Trials are compared within a group: the same values of the other varied parameters. A
generative model of the group's seed x LR x batch-size grid (`analysis.model`) says how
failures arise: every seed may be bad from some batch size up (from its smallest: bad
everywhere, an unlucky initialisation), every LR may have a batch size from which every seed
fails (from its smallest: the LR itself fails), and everything else fails by chance. A seed is
one fact at every LR (its runs at several LRs replicate each other), and the LRs' batch limits
are a priori the same (pooled) but may move with the LR (then each LR speaks for itself).
Repeats and duplicate cells add runs. The failure rates, and how many seeds are bad, are
averaged over wide ranges (never fitted), so a small grid stays uncertain.

A failure's cause is the category of its cell under the posterior:

- ``init``: its seed is bad everywhere (it fails where the other seeds succeed).
- ``batch``: its batch size is in its LR's failure region (the other seeds fail there too, and
  succeed at smaller batch sizes). A seed that succeeded at every smaller batch size, like the
  other seeds, is not implicated by failing where most seeds fail.
- ``both``: its seed fails from some batch size up where the other seeds still succeed, or a
  bad seed sits in a failing batch size: the seed and the batch size each explain it.
- ``lr``: everything at its LR fails while another LR of the group does not.
- ``inconclusive``: no cause reaches `DECIDE` (0.9). Then the strongest candidate and its
  probability are given, or "chance" (no seed, batch size or LR stands out) or "everything at
  the only LR tried failed" (the LR, or anything the runs share, is the suspect).

The confidence is the posterior probability of the stated cause: the probability that it is
right. `bench/triage_calibration.py` checks this on thousands of grids drawn from known
mechanisms (init, batch, both, LR, a batch limit that moves with the LR, pure noise; 2 to 20
seeds, 1 to 6 batch sizes, 1 to 3 LRs, chance rates 0 to 0.2, missing cells, repeats).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

__all__ = ["CALIBRATION", "CAUSES", "DECIDE", "REASONS", "confidence_label", "decide"]

CALIBRATION = """\
Calibration, measured 2026-12-02 with bench/triage_calibration.py (560 simulated sweeps, 21,023
failures): of the failures given a cause, 99.4% got the right one; 90.2% of the failures whose
true cause is decidable got a cause; the expected calibration error (stated confidence against
observed accuracy, ten bins) is 0.009; 0.10% of pure-noise failures reached confidence 0.9; a
clean init and an equally clean batch failure (6 x 6 grid) both get 0.996. Follow-ups whose
hypothesis was true kept their promised confidence for 91.3% of the failures they decide."""
CAUSES = ("init", "batch", "both", "lr", "inconclusive")
DECIDE = 0.9  # a cause is stated when its probability reaches this; else inconclusive
HIGH = 0.97
_ORDER = ("lr", "batch", "init", "both")  # tie-break: the simpler explanation first
# Why an inconclusive failure is inconclusive: the likeliest explanation is chance; everything
# at the only LR tried failed; or a candidate cause lacks runs.
REASONS = ("chance", "shared", "weak")


def confidence_label(confidence: float) -> str:
    """``high`` (>= 0.97), ``medium`` (>= 0.9, decided) or ``low``."""
    if confidence >= HIGH:
        return "high"
    if confidence >= DECIDE:
        return "medium"
    return "low"


def decide(probs: pd.DataFrame) -> pd.DataFrame:
    """Cause, confidence and candidate probabilities for every failed trial.

    Args:
        probs: Per failed trial, the posterior of its cell's categories (``p_chance``,
            ``p_init``, ``p_fragile``, ``p_batch``, ``p_both``, ``p_lr``, ``p_shared``).

    Returns:
        Indexed like ``probs``: ``prob_<cause>`` for init, batch, both, lr, chance and shared;
        ``best_guess`` (the likeliest of the four causes), ``confidence`` (its probability),
        ``cause`` (the best guess when it reaches `DECIDE`, else ``inconclusive``) and
        ``reason`` (for inconclusive ones, one of `REASONS`; else None).
    """
    out = pd.DataFrame(index=probs.index)
    out["prob_init"] = probs["p_init"]
    out["prob_batch"] = probs["p_batch"]
    out["prob_both"] = probs["p_both"] + probs["p_fragile"]
    out["prob_lr"] = probs["p_lr"]
    out["prob_chance"] = probs["p_chance"]
    out["prob_shared"] = probs["p_shared"]
    scores = out[[f"prob_{c}" for c in _ORDER]].to_numpy()
    best = scores.argmax(axis=1)  # the first maximum wins: _ORDER is the tie-break
    out["best_guess"] = np.array(_ORDER)[best]
    out["confidence"] = np.clip(scores[np.arange(len(out)), best], 0.0, 1.0)
    decided = out["confidence"] >= DECIDE
    out["cause"] = np.where(decided, out["best_guess"], "inconclusive")
    shared = out["prob_shared"] >= np.maximum(out["prob_chance"], out["confidence"])
    chance = ~shared & (out["prob_chance"] >= 0.5)
    reason = np.where(shared, "shared", np.where(chance, "chance", "weak"))
    out["reason"] = pd.Series(reason, index=out.index, dtype=object).where(~decided, None)
    return out
