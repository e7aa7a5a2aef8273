"""Sweep-level findings: failure rates by factor, the batch-size trend, the collapse symptoms."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from analysis._fmt import fmt_num, fmt_pct, p_eq
from analysis.stats import TrendTest, cochran_armitage, fisher_from_counts, holm, trend_by_stratum

__all__ = ["Findings", "compute_findings", "SYMPTOMS", "rates_by"]

_ALPHA = 0.05

# The guide's mode-collapse symptom table: metric column, label, collapse test, healthy range.
SYMPTOMS = (
    (
        "final/loss/d",
        "D loss",
        "0.72-0.75 (stuck)",
        "~0.69-0.71 (fluctuating)",
        lambda x: (x >= 0.72) & (x <= 0.75),
        "value",
    ),
    (
        "final/d/accuracy",
        "D accuracy",
        "50% (stuck)",
        "50-70% (decreasing)",
        lambda x: (x - 0.5).abs() <= 0.05,
        "pct",
    ),
    ("final/g/accuracy", "G accuracy", "99%+", "80-95%", lambda x: x >= 0.99, "pct"),
)


@dataclass(frozen=True)
class Findings:
    """What the sweep as a whole says.

    Attributes:
        by_factor: Failure rate tables (``value``, ``runs``, ``failed``, ``rate``) keyed by
            ``seed``, ``batch_size``, ``lr`` and, when separated, ``init_seed``/``data_seed``.
        trend: Cochran-Armitage test of failure against log2(batch size), stratified by panel.
        trend_by_panel: The same test within each panel (``panel_label``, ``z``, ``p_increasing``).
        trend_text: The conclusion in one sentence.
        seed_outliers: Seeds failing more than the rest (Fisher, Holm-adjusted p < 0.05).
        collapse: The symptom table filled with this sweep's numbers (None without metrics).
        collapse_matches: Trials showing all three collapse symptoms at once.
        collapse_failed: Of those, the failed ones.
    """

    by_factor: dict
    trend: TrendTest
    trend_by_panel: pd.DataFrame
    trend_text: str
    seed_outliers: pd.DataFrame
    collapse: pd.DataFrame | None
    collapse_matches: int
    collapse_failed: int = 0


def rates_by(live: pd.DataFrame, column: str) -> pd.DataFrame:
    """Runs, failures and failure rate per value of one column.

    Args:
        live: Analysable trials (``failed`` column).
        column: The factor, e.g. ``seed`` or ``batch_size``.

    Returns:
        Columns ``value``, ``runs``, ``failed``, ``rate``, in value order.
    """
    g = live.groupby(column, sort=True)["failed"].agg(runs="size", failed="sum").reset_index()
    g = g.rename(columns={column: "value"})
    g["failed"] = g["failed"].astype(int)
    g["rate"] = g["failed"] / g["runs"]
    return g


def _trend(live: pd.DataFrame) -> tuple[TrendTest, pd.DataFrame]:
    counts = live.groupby(["panel", "batch_size"])["failed"].agg(n="size", k="sum").reset_index()
    counts["score"] = np.log2(counts["batch_size"].astype(float))
    counts["stratum"] = counts["panel"]
    overall = cochran_armitage(counts)
    per = trend_by_stratum(counts).rename(columns={"stratum": "panel"})
    labels = live.groupby("panel")["panel_label"].first()
    per["panel_label"] = per["panel"].map(labels)
    return overall, per


def _trend_text(test: TrendTest, live: pd.DataFrame) -> str:
    if not test.testable:
        return (
            "No batch-size trend can be tested: no LR level has two batch sizes with both outcomes."
        )
    small, large = live["batch_size"].min(), live["batch_size"].max()
    rate = live.groupby("batch_size")["failed"].mean()
    stats = (
        f"Cochran-Armitage trend over log2(batch size), stratified by LR and other varied "
        f"params: z={test.z:.2f}, one-sided {p_eq(test.p_increasing)}; failure rate "
        f"{fmt_pct(rate[small])} at batch {small} vs {fmt_pct(rate[large])} at {large}"
    )
    if test.p_increasing < _ALPHA:
        return f"Smaller batches are more robust ({stats})."
    if test.p_increasing > 1 - _ALPHA:
        return f"Larger batches are more robust here ({stats})."
    return f"No evidence that smaller batches are more robust ({stats})."


def _seed_outliers(live: pd.DataFrame, unit: str) -> pd.DataFrame:
    g = live.groupby(unit)["failed"].agg(runs="size", failed="sum").reset_index()
    total_n, total_k = g["runs"].sum(), g["failed"].sum()
    p = fisher_from_counts(g["failed"], g["runs"], total_k - g["failed"], total_n - g["runs"])
    g["p_adjusted"] = holm(p)
    g["rate"] = g["failed"] / g["runs"]
    g = g.rename(columns={unit: "value"})
    return g[g["p_adjusted"] < _ALPHA].sort_values("p_adjusted").reset_index(drop=True)


def _collapse(live: pd.DataFrame) -> tuple[pd.DataFrame | None, int, int]:
    present = [s for s in SYMPTOMS if s[0] in live.columns]
    if not present:
        return None, 0, 0
    outcome = live["verdict"].where(live["failed"], "stable")
    groups = ["stable"] + sorted(set(outcome) - {"stable"})
    rows, matches = [], pd.Series(True, index=live.index)
    for column, label, collapse, healthy, test, kind in present:
        values = pd.to_numeric(live[column], errors="coerce")
        hit = test(values) & values.notna()
        matches &= hit
        row = {"metric": label, "column": column, "collapse": collapse, "healthy": healthy}
        for g in groups:
            v = values[outcome == g].dropna()
            row[g] = _cell(v, hit[outcome == g], kind)
        rows.append(row)
    if len(present) < len(SYMPTOMS):
        return pd.DataFrame(rows), 0, 0
    return pd.DataFrame(rows), int(matches.sum()), int((matches & live["failed"]).sum())


def _cell(values: pd.Series, hit: pd.Series, kind: str) -> str:
    if values.empty:
        return "n/a"
    fmt = fmt_pct if kind == "pct" else (lambda x: fmt_num(x, 3))
    q1, med, q3 = values.quantile([0.25, 0.5, 0.75])
    return f"{fmt(med)} [{fmt(q1)}-{fmt(q3)}]; {int(hit.sum())}/{len(values)} in collapse range"


def compute_findings(live: pd.DataFrame, separated: bool) -> Findings:
    """Sweep-level findings over the analysable trials.

    Args:
        live: Analysable trials with ``panel`` and ``panel_label``.
        separated: Whether init and data seeds vary independently.

    Returns:
        The `Findings`.
    """
    factors = {
        "seed": rates_by(live, "seed"),
        "batch_size": rates_by(live, "batch_size"),
        "lr": rates_by(live, "lr_key"),
    }
    if separated:
        factors["init_seed"] = rates_by(live, "init_seed")
        factors["data_seed"] = rates_by(live, "data_seed")
    trend, per_panel = _trend(live)
    collapse, matches, matches_failed = _collapse(live)
    return Findings(
        by_factor=factors,
        trend=trend,
        trend_by_panel=per_panel,
        trend_text=_trend_text(trend, live),
        seed_outliers=_seed_outliers(live, "init_seed" if separated else "seed"),
        collapse=collapse,
        collapse_matches=matches,
        collapse_failed=matches_failed,
    )
