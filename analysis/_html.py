"""The self-contained HTML report: inline CSS, images as data URIs, no scripts, no fetches."""

from __future__ import annotations

import html

import pandas as pd

from analysis._fmt import fmt_pct
from analysis._markdown import group_heading, known_good_frame, method_text, trial_list
from analysis.plots import CAUSE_MARKS
from analysis.report import ReportData, data_uri

_CSS = """
body{font-family:-apple-system,Segoe UI,Helvetica,Arial,sans-serif;margin:24px auto;
max-width:1100px;color:#222;line-height:1.45;padding:0 16px}
h1{font-size:1.6em;margin-bottom:4px}
h2{border-bottom:1px solid #ddd;padding-bottom:4px;margin-top:32px}
.summary{font-size:1.15em;background:#f5f7fa;border-left:4px solid #3f51b5;padding:10px 14px}
table{border-collapse:collapse;margin:8px 0 16px;font-size:.9em}
th,td{border:1px solid #ccc;padding:3px 8px;text-align:left;vertical-align:top}
th{background:#f0f0f0}td.num{text-align:right}
table.heatmap td{text-align:center;min-width:38px;font-weight:bold;color:#fff}
td.ok{background:#4caf50}td.fail{background:#e53935}td.mixed{background:#ffb74d}
td.missing{background:#d9d9d9;color:#666}
.badge{display:inline-block;border-radius:4px;padding:1px 7px;color:#fff;font-size:.85em}
.init{background:#8e24aa}.batch{background:#1e88e5}.both{background:#00897b}.lr{background:#f4511e}
.inconclusive{background:#757575}
.failure{border:1px solid #ddd;border-radius:6px;padding:8px 14px;margin:12px 0}
.figs img{max-width:48%;margin-right:1%;vertical-align:top}
.figs img.samples{min-width:160px;image-rendering:pixelated}
pre{background:#f7f7f7;border:1px solid #e0e0e0;padding:8px;overflow-x:auto}
.note{color:#666;font-size:.9em}
.panel-body{display:flex;flex-wrap:wrap;gap:16px;align-items:flex-start}
img.heatmap-img{max-width:100%;height:auto}
"""

_MEANING = {
    "init": "the same seed fails at other batch sizes while other seeds succeed here",
    "batch": "fails across seeds while smaller batches succeed with the same seeds",
    "both": "failure rises with batch size and also depends on the seed",
    "lr": "fails across seeds and batch sizes at this learning rate",
    "inconclusive": "the grid cannot decide: chance, too few runs, or the only LR failed",
}


def _e(x) -> str:
    return html.escape("" if x is None else str(x))


def table(frame: pd.DataFrame, numeric: tuple = (), cls: str = "") -> str:
    """A DataFrame as an escaped HTML table."""
    head = "".join(f"<th>{_e(c)}</th>" for c in frame.columns)
    body = []
    for row in frame.itertuples(index=False):
        cells = "".join(
            f'<td class="num">{_e(v)}</td>' if c in numeric else f"<td>{_e(v)}</td>"
            for c, v in zip(frame.columns, row, strict=False)
        )
        body.append(f"<tr>{cells}</tr>")
    attr = f' class="{cls}"' if cls else ""
    return f"<table{attr}><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"


def _cell(v: float, mark: str) -> str:
    if v != v:  # NaN: not run
        return '<td class="missing">–</td>'
    if v <= 0:
        return '<td class="ok">✓</td>'
    return f'<td class="{"fail" if v >= 1 else "mixed"}">{_e(mark or "✗")}</td>'


def _heatmap_table(view) -> str:
    head = "".join(f"<th>{_e(b)}</th>" for b in view.share.columns)
    shares, marks = view.share.to_numpy(float), view.marks.to_numpy(object)
    rows = [
        f"<tr><th>{_e(unit)}</th>{''.join(map(_cell, shares[i], marks[i]))}</tr>"
        for i, unit in enumerate(view.share.index)
    ]
    more = (
        f'<p class="note">{view.hidden_rows} more {_e(view.unit_word)}s without a failure '
        "here (in the image above).</p>"
        if view.hidden_rows
        else ""
    )
    return (
        f'<table class="heatmap"><thead><tr><th>{_e(view.unit_word)} \\ batch</th>{head}</tr>'
        f"</thead><tbody>{''.join(rows)}</tbody></table>{more}"
    )


def _heatmaps(data: ReportData) -> str:
    legend = ", ".join(f"{m} = {c}" for c, m in CAUSE_MARKS.items())
    parts = [
        '<h2 id="heatmaps">Outcomes over seed x batch size</h2><p class="note">One image per '
        "group of the other varied parameters, one grid per learning rate; cells of failed "
        f"trials show their cause: {_e(legend)}. The tables below each image give the same "
        "grid as text.</p>"
    ]
    for group in data.groups:
        name = group.label or "all trials"
        tables = "".join(
            f"<div><h4>{_e(p.label)} ({p.failures} failed)</h4>{_heatmap_table(p)}</div>"
            for p in group.panels
        )
        parts.append(
            f'<section class="panel"><h3>{_e(name)}</h3>'
            f'<img class="heatmap-img" alt="outcome heatmap, {_e(name)}" '
            f'src="{data_uri(group.png)}"><div class="panel-body">{tables}</div></section>'
        )
    if data.hidden_panels:
        parts.append(
            f'<p class="note">{data.hidden_panels} more panel(s) without a heatmap here; '
            "all are in triage.json.</p>"
        )
    return "".join(parts)


def _causes(data: ReportData) -> str:
    r = data.result
    rows = []
    for cause, n in r.cause_counts.items():
        conf = [d.confidence for d in r.diagnoses if d.cause == cause]
        rows.append(
            {
                "cause": cause,
                "failed trials": n,
                "share of failures": fmt_pct(n / r.n_failed) if r.n_failed else "",
                "mean confidence": f"{sum(conf) / len(conf):.2f}" if conf else "",
                "meaning": _MEANING[cause],
            }
        )
    return '<h2 id="causes">Cause counts</h2>' + table(
        pd.DataFrame(rows), numeric=("failed trials", "mean confidence"), cls="causes"
    )


def _actions(data: ReportData) -> str:
    items = "".join(f"<li>{_e(a)}</li>" for a in data.result.actions) or "<li>Nothing failed.</li>"
    good = ""
    if data.result.known_good:
        good = "<h3>Known-good settings</h3>" + table(known_good_frame(data), cls="known-good")
    return f'<h2 id="actions">Recommended actions</h2><ol>{items}</ol>{good}'


def _rates(frame: pd.DataFrame, name: str) -> str:
    shown = frame.assign(rate=frame["rate"].map(fmt_pct)).rename(columns={"value": name})
    return table(shown, numeric=("runs", "failed", "rate"))


def _findings(data: ReportData) -> str:
    f = data.result.findings
    parts = [
        '<h2 id="findings">Sweep-level findings</h2>',
        f"<p><b>Batch-size trend.</b> {_e(f.trend_text)}</p>",
    ]
    for key, frame in f.by_factor.items():
        parts.append(f"<h3>Failure rate by {_e(key)}</h3>{_rates(frame, key)}")
    if len(f.seed_outliers):
        out = f.seed_outliers.assign(
            rate=f.seed_outliers["rate"].map(fmt_pct),
            p_adjusted=f.seed_outliers["p_adjusted"].map(lambda p: f"{p:.2g}"),
        )
        parts.append(
            '<h3>Seeds failing more than the rest</h3><p class="note">Fisher exact test '
            "per seed against all others, Holm-adjusted.</p>" + table(out)
        )
    if f.collapse is not None:
        parts.append(
            '<h3>Mode-collapse symptoms</h3><p class="note">The guide\'s symptom table with '
            "this sweep's final values: median [quartiles]; how many fall in the collapse "
            "range. The D-loss band applies to BCE-type losses.</p>"
            + table(f.collapse.drop(columns=["column"]), cls="collapse")
        )
        parts.append(
            f"<p>{f.collapse_matches} trial(s) show all three collapse symptoms at once "
            f"({f.collapse_failed} of them failed).</p>"
        )
    return "".join(parts)


def _figures(trial_id: str, data: ReportData) -> str:
    figs = []
    if trial_id in data.curves:
        figs.append(
            f'<img alt="loss curves {_e(trial_id)}" src="{data_uri(data.curves[trial_id])}">'
        )
    if trial_id in data.samples:
        figs.append(
            f'<img class="samples" alt="samples {_e(trial_id)}" '
            f'src="{data_uri(data.samples[trial_id])}">'
        )
    if not figs:
        return ""
    return f'<p class="note">Trial {_e(trial_id)}:</p><div class="figs">{"".join(figs)}</div>'


def _failure(g, data: ReportData) -> str:
    ev = "".join(f"<li>{_e(s)}</li>" for s in g.evidence)
    return (
        f'<section class="failure" id="group-{g.index}"><h3>{_e(group_heading(g))} '
        f'<span class="badge {_e(g.cause)}">{_e(g.cause)}</span></h3>'
        f'<p class="trials">Trials: {_e(trial_list(g))}</p><ul>{ev}</ul>'
        f"<p><b>Fix:</b> {_e(g.fix.text)}</p>" + _figures(g.trials[0], data) + "</section>"
    )


def _failures(data: ReportData) -> str:
    parts = [
        '<h2 id="failures">Failures, grouped</h2><p class="note">Failures that share a cause, '
        "its evidence and its fix are shown once, with their trials.</p>"
    ]
    parts += [_failure(g, data) for g in data.failures]
    if data.hidden_failures:
        parts.append(f'<p class="note">{data.hidden_failures} more group(s) in triage.json.</p>')
    return "".join(parts)


def _followups(data: ReportData) -> str:
    plans = data.result.followups
    if not plans:
        return ""
    body = "".join(
        f"<h3>Follow-up {p.index}: followup_{p.index}.yaml ({_e(p.purpose)}, {p.runs} new "
        f"runs)</h3><p>{_e(p.promise)}</p><pre>{_e(p.header)}\n{_e(p.grid_text())}</pre>"
        for p in plans
    )
    return f'<h2 id="followups">Follow-up sweeps</h2>{body}'


def _log(data: ReportData) -> str:
    more = (
        f'<p class="note">{data.hidden_log} more trial(s) in triage.json.</p>'
        if data.hidden_log
        else ""
    )
    return (
        '<h2 id="log">Master experiment log</h2>'
        + table(data.log, numeric=("Batch", "Epochs", "D Loss", "G Loss"), cls="log")
        + more
    )


def _method() -> str:
    text = method_text()
    return (
        '<h2 id="method">How causes and confidences are decided</h2>'
        f'<pre class="method">{_e(text)}</pre>'
    )


def render_html(data: ReportData) -> str:
    """The whole report as one HTML document."""
    r = data.result
    notes = "".join(f'<p class="note">{_e(n)}</p>' for n in data.notes)
    source = _e(r.table.attrs.get("source", ""))
    body = (
        f'<h1>Triage: {_e(data.title)}</h1><p class="note">Source: {source}</p>'
        f'<p class="summary" id="summary">{_e(r.summary)}</p>{notes}'
        + _actions(data)
        + _causes(data)
        + _heatmaps(data)
        + _failures(data)
        + _followups(data)
        + _findings(data)
        + _log(data)
        + _method()
    )
    return (
        f'<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">'
        f"<title>Triage: {_e(data.title)}</title><style>{_CSS}</style></head>"
        f"<body>{body}</body></html>\n"
    )
