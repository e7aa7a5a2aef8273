"""The Markdown report: the same content as the HTML, as text and tables."""

from __future__ import annotations

import pandas as pd

from analysis import causes
from analysis._fmt import fmt_pct
from analysis.plots import CAUSE_MARKS
from analysis.report import ReportData


def _cell(x) -> str:
    return str("" if x is None else x).replace("|", "\\|").replace("\n", " ")


def md_table(frame: pd.DataFrame) -> str:
    """A DataFrame as a GitHub-flavoured Markdown table."""
    head = "| " + " | ".join(_cell(c) for c in frame.columns) + " |"
    rule = "|" + "|".join("---" for _ in frame.columns) + "|"
    rows = [
        "| " + " | ".join(_cell(v) for v in row) + " |" for row in frame.itertuples(index=False)
    ]
    return "\n".join([head, rule, *rows])


def _grid(view) -> str:
    rows = []
    for unit, shares in view.share.iterrows():
        cells = []
        for b, v in shares.items():
            if pd.isna(v):
                cells.append("–")
            elif v <= 0:
                cells.append("✓")
            else:
                cells.append(f"✗ {view.marks.loc[unit, b]}".strip())
        rows.append([unit, *cells])
    frame = pd.DataFrame(
        rows, columns=[f"{view.unit_word} \\ batch", *map(str, view.share.columns)]
    )
    return md_table(frame)


def _head(data: ReportData) -> list[str]:
    r = data.result
    out = [
        f"# Triage: {data.title}",
        "",
        f"**{r.summary}**",
        "",
        f"Source: `{r.table.attrs.get('source', '')}`",
        "",
    ]
    out += [f"_{n}_" for n in data.notes]
    rows = [
        {"cause": c, "failed trials": n, "share": fmt_pct(n / r.n_failed) if r.n_failed else ""}
        for c, n in r.cause_counts.items()
    ]
    out += ["## Cause counts", "", md_table(pd.DataFrame(rows)), "", "## Recommended actions", ""]
    out += [f"{i}. {a}" for i, a in enumerate(r.actions, 1)] or ["Nothing failed."]
    legend = ", ".join(f"{m} = {c}" for c, m in CAUSE_MARKS.items())
    out += [
        "",
        "## Outcomes over seed x batch size",
        "",
        f"✓ succeeded, ✗ failed ({legend}), – not run.",
        "",
    ]
    for group in data.groups:
        for view in group.panels:
            out += [f"### {view.label} ({view.failures} failed)", "", _grid(view), ""]
    if data.hidden_panels:
        out += [f"_{data.hidden_panels} more panel(s) in triage.json._", ""]
    return out


def _findings(data: ReportData) -> list[str]:
    f = data.result.findings
    out = ["## Sweep-level findings", "", f"**Batch-size trend.** {f.trend_text}", ""]
    for key, frame in f.by_factor.items():
        shown = frame.assign(rate=frame["rate"].map(fmt_pct)).rename(columns={"value": key})
        out += [f"### Failure rate by {key}", "", md_table(shown), ""]
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


def _failures(data: ReportData) -> list[str]:
    out = ["## Failures", ""]
    for d in data.failures:
        params = ", ".join(f"{k}={v}" for k, v in d.params.items())
        conf = (
            f"confidence {d.confidence:.2f} ({d.confidence_label})"
            if d.cause != "inconclusive"
            else (
                f"strongest candidate {d.best_guess} at {d.confidence:.2f}"
                if d.best_guess
                else "no candidate cause"
            )
        )
        out += [f"### {d.trial_id}: {d.cause}", "", f"{d.failure_mode} · {params} · {conf}", ""]
        out += [f"- {s}" for s in d.evidence]
        out += ["", f"**Fix:** {d.fix.text}", ""]
    if data.hidden_failures:
        out += [f"_{data.hidden_failures} more failure(s) in triage.json._", ""]
    return out


def render_markdown(data: ReportData) -> str:
    """The whole report as Markdown."""
    out = _head(data) + _findings(data) + _failures(data)
    if data.result.followups:
        out += ["## Follow-up sweeps", ""]
        for p in data.result.followups:
            out += [
                f"### Follow-up {p.index} ({p.purpose}, {p.runs} runs)",
                "",
                "```yaml",
                p.yaml.rstrip(),
                "```",
                "",
            ]
    out += ["## Master experiment log", "", md_table(data.log), ""]
    if data.hidden_log:
        out += [f"_{data.hidden_log} more trial(s) in triage.json._", ""]
    method = causes.__doc__.split("How confidence is computed")[-1].strip()
    out += ["## How causes and confidences are decided", "", "```text", method, "```", ""]
    return "\n".join(out)
