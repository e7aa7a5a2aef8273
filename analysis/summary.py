"""A short summary table for the terminal."""

from __future__ import annotations

from analysis.triage import TriageResult

__all__ = ["format_summary"]


def format_summary(result: TriageResult, max_actions: int = 5) -> str:
    """The summary line, cause counts, failure rate by batch size and the top actions.

    Args:
        result: The triage.
        max_actions: Actions listed.

    Returns:
        Plain text, at most about 30 lines, 100 columns.
    """
    lines = [result.summary, "", f"{'cause':<14}{'failed':>7}{'mean conf':>11}{'groups':>8}"]
    for cause, n in result.cause_counts.items():
        conf = [d.confidence for d in result.diagnoses if d.cause == cause]
        mean = f"{sum(conf) / len(conf):.2f}" if conf else "-"
        groups = sum(g.cause == cause for g in result.groups)
        lines.append(f"{cause:<14}{n:>7}{mean:>11}{groups:>8}")
    if result.n_pruned or result.n_errored:
        lines.append(
            f"{'pruned':<14}{result.n_pruned:>7}  (censored: stopped by a scheduler or pruner)"
        )
        lines.append(f"{'errored':<14}{result.n_errored:>7}  (not triaged)")
    rates = result.findings.by_factor["batch_size"]
    lines += ["", f"{'batch size':<14}{'runs':>7}{'failed':>8}{'rate':>7}"]
    for row in rates.itertuples(index=False):
        lines.append(f"{row.value!s:<14}{row.runs:>7}{row.failed:>8}{row.rate:>7.0%}")
    if result.actions:
        lines += ["", "Recommended actions:"]
        for i, action in enumerate(result.actions[:max_actions], 1):
            text = action if len(action) <= 200 else action[:197] + "..."
            lines.append(f"{i:>2}. {text}")
        if len(result.actions) > max_actions:
            lines.append(f"    ... {len(result.actions) - max_actions} more in the report")
    return "\n".join(lines)
