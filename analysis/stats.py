"""Count-based tests behind the sweep-level findings: Fisher's exact test, Holm's adjustment and
the Cochran-Armitage trend test.

Everything here is vectorised over numpy arrays, so that 10,000 trials cost a handful of calls.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

__all__ = [
    "fisher_greater",
    "fisher_from_counts",
    "TrendTest",
    "cochran_armitage",
    "trend_by_stratum",
    "holm",
]


def fisher_greater(a, b, c, d) -> np.ndarray:
    """One-sided Fisher exact test that group 1 fails more often than group 2.

    The 2x2 table is ``[[a, b], [c, d]]``: group 1 had ``a`` failures and ``b`` successes, group 2
    ``c`` failures and ``d`` successes. The p-value is P(X >= a) for X hypergeometric with the
    table's margins fixed (the exact conditional test).

    Args:
        a: Failures in group 1 (array-like of non-negative integers).
        b: Successes in group 1.
        c: Failures in group 2.
        d: Successes in group 2.

    Returns:
        Array of p-values. Where either group is empty there is nothing to compare and p is 1.
    """
    a, b, c, d = (np.asarray(x, dtype=np.int64) for x in (a, b, c, d))
    total = a + b + c + d
    fails = a + c
    row1 = a + b
    with np.errstate(invalid="ignore", divide="ignore"):
        p = _scipy_stats().hypergeom.sf(a - 1, np.maximum(total, 1), fails, row1)
    p = np.where((row1 == 0) | ((c + d) == 0), 1.0, p)
    return np.clip(np.nan_to_num(p, nan=1.0), 0.0, 1.0)


def fisher_from_counts(k1, n1, k2, n2) -> np.ndarray:
    """`fisher_greater` from failure counts and run counts.

    Args:
        k1: Failures in group 1.
        n1: Runs in group 1.
        k2: Failures in group 2.
        n2: Runs in group 2.

    Returns:
        One-sided p-values that group 1 fails more often than group 2.
    """
    k1, n1, k2, n2 = (np.asarray(x, dtype=np.int64) for x in (k1, n1, k2, n2))
    return fisher_greater(k1, n1 - k1, k2, n2 - k2)


@dataclass(frozen=True)
class TrendTest:
    """Result of a (stratified) Cochran-Armitage test of failure against batch size.

    Attributes:
        z: The standardised trend statistic; positive when failures rise with batch size.
        p_increasing: One-sided p-value for "failures rise with batch size".
        p_two_sided: Two-sided p-value for any monotone trend.
        strata: Strata (LR x other varied params) that had at least two batch sizes and both
            outcomes, i.e. that carried information.
        testable: False when no stratum carried information (z and p are NaN then).
    """

    z: float
    p_increasing: float
    p_two_sided: float
    strata: int
    testable: bool


def _strata_stats(counts: pd.DataFrame, score: str) -> tuple[pd.Index, np.ndarray, np.ndarray]:
    """Per stratum: the trend statistic T_h and its exact permutation variance V_h."""
    df = counts[["stratum", score, "n", "k"]].copy()
    df["nx"] = df["n"] * df[score]
    df["nxx"] = df["n"] * df[score] ** 2
    df["kx"] = df["k"] * df[score]
    g = df.groupby("stratum", sort=True)[["n", "k", "nx", "nxx", "kx"]].sum()
    n, k = g["n"].to_numpy(float), g["k"].to_numpy(float)
    p = np.divide(k, n, out=np.zeros_like(k), where=n > 0)
    t = g["kx"].to_numpy(float) - p * g["nx"].to_numpy(float)
    spread = g["nxx"].to_numpy(float) - np.divide(
        g["nx"].to_numpy(float) ** 2, n, out=np.zeros_like(n), where=n > 0
    )
    factor = np.divide(n, n - 1, out=np.zeros_like(n), where=n > 1)
    return g.index, t, p * (1 - p) * factor * spread


def cochran_armitage(counts: pd.DataFrame, score: str = "score") -> TrendTest:
    """Cochran-Armitage trend test for binary failures over ordered levels, stratified.

    Within each stratum h the statistic is T_h = sum_i x_i (k_i - n_i k/N) with the exact
    permutation variance V_h = p(1-p) N/(N-1) (sum n_i x_i^2 - (sum n_i x_i)^2 / N); the strata are
    combined as Z = sum T_h / sqrt(sum V_h) (the Mantel extension), so LR or other parameters that
    differ between strata cannot masquerade as a batch-size effect.

    Args:
        counts: One row per (stratum, level) with columns ``stratum``, ``n`` (runs), ``k``
            (failures) and the level's ``score`` (e.g. log2 of the batch size).
        score: Name of the score column.

    Returns:
        The `TrendTest`.
    """
    _, t, v = _strata_stats(counts, score)
    informative = v > 1e-12
    total_v = float(v[informative].sum())
    if total_v <= 0:
        nan = float("nan")
        return TrendTest(nan, nan, nan, 0, False)
    z = float(t[informative].sum() / np.sqrt(total_v))
    return TrendTest(
        z=z,
        p_increasing=float(_scipy_stats().norm.sf(z)),
        p_two_sided=float(2 * _scipy_stats().norm.sf(abs(z))),
        strata=int(informative.sum()),
        testable=True,
    )


def trend_by_stratum(counts: pd.DataFrame, score: str = "score") -> pd.DataFrame:
    """The Cochran-Armitage test within each stratum separately (vectorised).

    Args:
        counts: As for `cochran_armitage`.
        score: Name of the score column.

    Returns:
        One row per stratum: ``stratum``, ``z``, ``p_increasing``, ``testable`` (z and p are NaN
        where the stratum has one level or one outcome).
    """
    index, t, v = _strata_stats(counts, score)
    ok = v > 1e-12
    z = np.where(ok, t / np.sqrt(np.where(ok, v, 1.0)), np.nan)
    return pd.DataFrame(
        {"stratum": index, "z": z, "p_increasing": _scipy_stats().norm.sf(z), "testable": ok}
    )


def holm(pvalues) -> np.ndarray:
    """Holm-Bonferroni adjusted p-values (family-wise error control), same order as given."""
    p = np.asarray(pvalues, dtype=float)
    m = len(p)
    if m == 0:
        return p
    order = np.argsort(p)
    adjusted = np.maximum.accumulate((m - np.arange(m)) * p[order])
    out = np.empty(m)
    out[order] = np.minimum(adjusted, 1.0)
    return out


def _scipy_stats():
    """scipy.stats, imported on first use (about 0.8 s that `gansweep --help` need not pay)."""
    import scipy.stats

    return scipy.stats
