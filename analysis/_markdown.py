"""The Markdown report: the same content as the HTML, as text and tables.

Every value from the results table is HTML-escaped: Markdown viewers render raw HTML, and a
seed or column value must show as text, never as markup.
"""

from __future__ import annotations

import html

import pandas as pd

from analysis import causes
from analysis._fmt import fmt_pct, values_phrase
from analysis.plots import CAUSE_MARKS
from analysis.report import ReportData

_MAX_IDS = 40  # trial ids listed per failure group (all are in triage.json)


def _t(x) -> str:
    """Text from the data, safe in Markdown: HTML escaped, on one line."""
    return html.escape("" if x is None else str(x), quote=False).replace("\n", " ")


def _cell(x) -> str:
    return _t(x).replace("|", "\\|")


def md_table(frame: pd.DataFrame) -> str:
    """A DataFrame as a GitHub-flavoured Markdown table."""
    head = "| " + " | ".join(_cell(c) for c in frame.columns) + " |"
    rule = "|" + "|".join("---" for _ in frame.columns) + "|"
    rows = [
        "| " + " | ".join(_cell(v) for v in row) + " |" for row in frame.itertuples(index=False)
    ]
    return "\n".join([head, rule, *rows])


def _mark(v: float, mark: str) -> str:
    if v != v:  # NaN: not run
        return "–"
    return "✓" if v <= 0 else f"✗ {mark}".strip()


def _grid(view) -> str:
    shares, marks = view.share.to_numpy(float), view.marks.to_numpy(object)
    rows = [[u, *map(_mark, shares[i], marks[i])] for i, u in enumerate(view.share.index)]
    frame = pd.DataFrame(
        rows, columns=[f"{view.unit_word} \\ batch", *map(str, view.share.columns)]
    )
    more = (
        f"\n\n_{view.hidden_rows} more seeds without a failure here._" if view.hidden_rows else ""
    )
    return md_table(frame) + more


def known_good_frame(data: ReportData) -> pd.DataFrame:
    """The known-good settings as a table: per group and LR, what worked and what failed."""
    rows = []
    for k in data.result.known_good:
        n, f = k.worked_runs
        rows.append(
            {
                "group": k.group or "all",
                "lr": k.lr,
                "batch sizes that worked": ", ".join(map(str, k.worked)) or "none",
                "failed / runs there": f"{f} / {n}" if n else "",
                "batch sizes that fail": ", ".join(map(str, k.failing)) or "none",
                "seeds that never failed": values_phrase(k.seeds) or "none",
            }
        )
    return pd.DataFrame(rows)


def _head(data: ReportData) -> list[str]:
    r = data.result
    out = [
        f"# Triage: {_t(data.title)}",
        "",
        f"**{_t(r.summary)}**",
        "",
        f"Source: `{_t(r.table.attrs.get('source', ''))}`",
        "",
    ]
    out += [f"_{_t(n)}_\n" for n in data.notes]
    out += ["## Recommended actions", ""]
    out += [f"{i}. {_t(a)}" for i, a in enumerate(r.actions, 1)] or ["Nothing failed."]
    if r.known_good:
        out += ["", "### Known-good settings", "", md_table(known_good_frame(data)), ""]
    rows = [
        {"cause": c, "failed trials": n, "share": fmt_pct(n / r.n_failed) if r.n_failed else ""}
        for c, n in r.cause_counts.items()
    ]
    out += ["", "## Cause counts", "", md_table(pd.DataFrame(rows)), ""]
    legend = ", ".join(f"{m} = {c}" for c, m in CAUSE_MARKS.items())
    out += [
        "## Outcomes over seed x batch size",
        "",
        f"✓ succeeded, ✗ failed ({legend}), – not run.",
        "",
    ]
    for group in data.groups:
        for view in group.panels:
            out += [f"### {_t(view.label)} ({view.failures} failed)", "", _grid(view), ""]
    if data.hidden_panels:
        out += [f"_{data.hidden_panels} more panel(s) in triage.json._", ""]
    return out


def _findings(data: ReportData) -> list[str]:
    f = data.result.findings
    out = ["## Sweep-level findings", "", f"**Batch-size trend.** {_t(f.trend_text)}", ""]
    for key, frame in f.by_factor.items():
        shown = frame.assign(rate=frame["rate"].map(fmt_pct)).rename(columns={"value": key})
        out += [f"### Failure rate by {_t(key)}", "", md_table(shown), ""]
    if len(f.seed_outliers):
        out += [
            "### Seeds failing more than the rest (Fisher, Holm-adjusted)",
            "",
            md_table(f.seed_outliers),
            "",
        ]
    if f.collapse is not None:
        out += [
            "### Mode-collapse symptoms",
            "",
            md_table(f.collapse.drop(columns=["column"])),
            "",
            f"{f.collapse_matches} trial(s) show all three collapse symptoms at once "
            f"({f.collapse_failed} of them failed).",
            "",
        ]
    return out


def group_heading(g) -> str:
    """'3. seed 7 (train.n_critic=1): init, 4 failures, confidence 0.97-0.99'."""
    where = f" ({g.group})" if g.group else ""
    lo, hi = g.confidence
    conf = f"{lo:.2f}" if round(lo, 2) == round(hi, 2) else f"{lo:.2f}-{hi:.2f}"
    label = "confidence" if g.cause != "inconclusive" else f"{g.best_guess} at"
    stream = f", seed stream {g.seed_stream}" if g.seed_stream else ""
    count = f"{len(g.trials)} failure(s)"
    return f"{g.index}. {g.title}{where}: {g.cause}, {count}, {label} {conf}{stream}"


def trial_list(g) -> str:
    """The group's trial ids, the first `_MAX_IDS` of them."""
    more = f" ... ({len(g.trials)} in all)" if len(g.trials) > _MAX_IDS else ""
    return ", ".join(g.trials[:_MAX_IDS]) + more


def _failures(data: ReportData) -> list[str]:
    out = [
        "## Failures, grouped",
        "",
        "Failures that share a cause, its evidence and its fix are shown once, with their trials.",
        "",
    ]
    for g in data.failures:
        out += [f"### {_t(group_heading(g))}", "", f"Trials: {_t(trial_list(g))}", ""]
        out += [f"- {_t(s)}" for s in g.evidence]
        out += ["", f"**Fix:** {_t(g.fix.text)}", ""]
    if data.hidden_failures:
        out += [f"_{data.hidden_failures} more group(s) in triage.json._", ""]
    return out


def _followups(data: ReportData) -> list[str]:
    out = []
    if data.result.followups:
        out += ["## Follow-up sweeps", ""]
        for p in data.result.followups:
            out += [
                f"### Follow-up {p.index}: followup_{p.index}.yaml "
                f"({p.purpose}, {p.runs} new runs)",
                "",
                _t(p.promise),
                "",
                "```yaml",
                _t(p.grid_text()).rstrip(),
                "```",
                "",
            ]
    return out


def render_markdown(data: ReportData) -> str:
    """The whole report as Markdown."""
    out = _head(data) + _failures(data) + _followups(data) + _findings(data)
    out += ["## Master experiment log", "", md_table(data.log), ""]
    if data.hidden_log:
        out += [f"_{data.hidden_log} more trial(s) in triage.json._", ""]
    out += ["## How causes and confidences are decided", "", "```text", method_text(), "```", ""]
    return "\n".join(out)


def method_text() -> str:
    """The method section: how causes are decided, and the measured calibration."""
    return (
        causes.__doc__.split("How confidence is computed")[-1].strip() + "\n\n" + causes.CALIBRATION
    )
