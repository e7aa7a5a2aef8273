"""`write_report`: triage.json, report.md and one self-contained report.html."""

from __future__ import annotations

import base64
import json
import math
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from analysis._fmt import fmt_num
from analysis.evidence import UNIT_WORDS
from analysis.load import load_epochs
from analysis.plots import heatmap_png, loss_curves_png, outcome_matrix
from analysis.triage import TriageResult

__all__ = ["write_report", "experiment_log", "ReportData", "prepare_report", "triage_to_report"]

_MAX_IMAGE_BYTES = 3_000_000
_CURVES_MAX = 40  # failures that get loss curves and samples (the first, in table order)


@dataclass
class PanelView:
    """One panel's outcome grid (seed x batch size at one LR) as numbers."""

    label: str
    lr_key: str
    unit_word: str
    share: pd.DataFrame
    marks: pd.DataFrame
    failures: int


@dataclass
class GroupView:
    """The panels of one group (same other varied params), drawn side by side in one image."""

    label: str
    png: bytes
    panels: list


@dataclass
class ReportData:
    """What the Markdown and HTML renderers draw from."""

    result: TriageResult
    title: str
    groups: list
    hidden_panels: int
    failures: list
    hidden_failures: int
    curves: dict = field(default_factory=dict)
    samples: dict = field(default_factory=dict)
    log: pd.DataFrame | None = None
    hidden_log: int = 0
    notes: list = field(default_factory=list)


def _tracking_url(row: dict) -> str:
    run = row.get("mlflow_run_id")
    if not isinstance(run, str) or not run:
        return ""
    uri = row.get("tracking_uri")
    exp = row.get("mlflow_experiment_id")
    if (
        isinstance(uri, str)
        and uri.startswith(("http://", "https://"))
        and isinstance(exp, str)
        and exp
    ):
        return f"{uri.rstrip('/')}/#/experiments/{exp}/runs/{run}"
    return f"runs:/{run}"


def _stability(row: dict) -> str:
    if row["errored"]:
        return "⚠️ error" if row["excluded_reason"] == "error" else "⚠️ no outcome"
    return "✅ Stable" if not row["failed"] else f"❌ {row['verdict']}"


def experiment_log(result: TriageResult) -> pd.DataFrame:
    """The guide's master experiment log, one row per trial.

    Returns:
        Columns Run, Date, Tracking URL, Batch, Epochs, Stability, D Loss, G Loss, Notes.
    """
    notes = {d.trial_id: f"{d.cause} ({d.confidence:.2f}): {d.fix.text}" for d in result.diagnoses}
    rows = []
    for r in result.table.to_dict("records"):
        err = r.get("error")
        if r["trial_id"] in notes:
            note = notes[r["trial_id"]]
        elif r["errored"]:
            note = f"not triaged: {err[:160]}" if isinstance(err, str) and err else "not triaged"
        else:
            note = ""
        started = r.get("started_at")
        rows.append(
            {
                "Run": r["trial_id"],
                "Date": str(started)[:10] if isinstance(started, str) else "",
                "Tracking URL": _tracking_url(r),
                "Batch": int(r["batch_size"]),
                "Epochs": fmt_num(r.get("epochs_run"), 6),
                "Stability": _stability(r),
                "D Loss": fmt_num(r.get("final/loss/d")),
                "G Loss": fmt_num(r.get("final/loss/g")),
                "Notes": note,
            }
        )
    return pd.DataFrame(rows)


def _group_views(result: TriageResult, max_panels: int) -> tuple[list, int]:
    """Heatmaps by group, the groups with the most failures first, up to ``max_panels`` panels."""
    live = result.table.loc[~result.table["errored"]]
    unit = "init_seed" if result.settings.get("seed_streams_separated") else "seed"
    word = UNIT_WORDS[unit]
    panels = live.groupby("panel").agg(
        group=("group_key", "first"),
        lr=("lr_key", "first"),
        label=("panel_label", "first"),
        fails=("failed", "sum"),
    )
    order = panels.groupby("group", sort=False)["fails"].sum().sort_values(ascending=False)
    views, shown = [], 0
    for group in order.index:
        members = panels[panels["group"] == group]
        if shown + len(members) > max_panels and views:
            break
        items = []
        for panel, row in members.iterrows():
            share, marks = outcome_matrix(live[live["panel"] == panel], unit)
            items.append(PanelView(row["label"], row["lr"], word, share, marks, int(row["fails"])))
        figure = [(f"lr {p.lr_key}", p.share, p.marks) for p in items]
        views.append(GroupView(group, heatmap_png(figure, group, word), items))
        shown += len(items)
    return views, len(panels) - shown


def _epochs_for(
    result: TriageResult, sweep_dir, ids: list[str], notes: list
) -> pd.DataFrame | None:
    epochs = load_epochs(sweep_dir, ids)
    if epochs is not None or not ids:
        return epochs
    t = result.table.set_index("trial_id")
    if "mlflow_run_id" not in t.columns or not str(result.table.attrs.get("source", "")).startswith(
        "mlflow:"
    ):
        return None
    runs = {i: t.loc[i, "mlflow_run_id"] for i in ids if isinstance(t.loc[i, "mlflow_run_id"], str)}
    try:
        from analysis._mlflow import metric_histories

        return metric_histories(runs, result.table.attrs.get("tracking_uri"))
    except Exception as exc:  # a report without curves beats no report; say why
        notes.append(f"Loss curves could not be read from MLflow: {exc}")
        return None


def _samples(sweep_dir, trial_id: str) -> bytes | None:
    if sweep_dir is None:
        return None
    path = Path(sweep_dir) / "trials" / trial_id / "samples.png"
    if path.is_file() and path.stat().st_size <= _MAX_IMAGE_BYTES:
        return path.read_bytes()
    return None


def prepare_report(
    result: TriageResult,
    sweep_dir=None,
    *,
    max_failures: int = 200,
    max_panels: int = 24,
    max_log_rows: int = 2000,
) -> ReportData:
    """Gather figures, curves and samples for the renderers.

    Args:
        result: The triage.
        sweep_dir: Sweep directory with epochs.parquet and trials/<id>/samples.png (default:
            the one the table was loaded from, if any).
        max_failures: Failures detailed in the report (all are in triage.json).
        max_panels: Panels drawn as heatmaps (those with the most failures).
        max_log_rows: Rows of the experiment log shown.

    Returns:
        The `ReportData`.
    """
    sweep_dir = sweep_dir or result.table.attrs.get("sweep_dir")
    groups, hidden_panels = _group_views(result, max_panels)
    shown = result.diagnoses[:max_failures]
    data = ReportData(
        result=result,
        title=str(result.table.attrs.get("sweep_name") or "sweep"),
        groups=groups,
        hidden_panels=hidden_panels,
        failures=shown,
        hidden_failures=len(result.diagnoses) - len(shown),
    )
    ids = [d.trial_id for d in shown[:_CURVES_MAX]]
    epochs = _epochs_for(result, sweep_dir, ids, data.notes)
    for d in shown[:_CURVES_MAX]:
        if epochs is not None and len(epochs):
            png = loss_curves_png(
                epochs[epochs["trial_id"] == d.trial_id], d.trial_id, d.onset_epoch
            )
            if png:
                data.curves[d.trial_id] = png
        sample = _samples(sweep_dir, d.trial_id)
        if sample:
            data.samples[d.trial_id] = sample
    log = experiment_log(result)
    data.log, data.hidden_log = log.head(max_log_rows), max(0, len(log) - max_log_rows)
    return data


def data_uri(png: bytes) -> str:
    """PNG bytes as a data: URI for embedding."""
    return "data:image/png;base64," + base64.b64encode(png).decode("ascii")


def write_report(result: TriageResult, out_dir, sweep_dir=None, **limits) -> dict[str, Path]:
    """Write triage.json, report.md, report.html and one YAML file per follow-up sweep.

    Args:
        result: The triage.
        out_dir: Directory to write into (created).
        sweep_dir: Sweep directory for loss curves and samples (default: the table's own).
        **limits: ``max_failures``, ``max_panels``, ``max_log_rows`` for `prepare_report`.

    Returns:
        Paths by kind: ``json``, ``markdown``, ``html`` and ``followup_<i>``.
    """
    from analysis._html import render_html
    from analysis._markdown import render_markdown

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    data = prepare_report(result, sweep_dir, **limits)
    paths = {
        "json": out / "triage.json",
        "markdown": out / "report.md",
        "html": out / "report.html",
    }
    paths["json"].write_text(json.dumps(result.to_dict(), indent=2, default=_json_default) + "\n")
    paths["markdown"].write_text(render_markdown(data))
    paths["html"].write_text(render_html(data))
    sweep_file = Path(sweep_dir) / "sweep.yaml" if sweep_dir is not None else None
    for plan in result.followups:
        path = out / f"followup_{plan.index}.yaml"
        path.write_text(_followup_file(plan, sweep_file))
        paths[f"followup_{plan.index}"] = path
    return paths


def _followup_file(plan, sweep_file: Path | None) -> str:
    """The follow-up as a complete sweep file when the sweep's own file is known, else its grid.

    The complete file is the original sweep with its name suffixed and its grid replaced, so
    `gansweep run followup_<i>.yaml` runs it as it stands.
    """
    if sweep_file is None or not sweep_file.is_file():
        return plan.yaml
    import yaml

    sweep = yaml.safe_load(sweep_file.read_text())
    if not isinstance(sweep, dict):
        return plan.yaml
    sweep["name"] = f"{sweep.get('name', 'sweep')}-followup-{plan.index}"
    sweep["grid"] = plan.grid
    header = "".join(line + "\n" for line in plan.yaml.splitlines() if line.startswith("#"))
    return header + yaml.safe_dump(sweep, sort_keys=False, default_flow_style=None)


def _json_default(obj):
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    if hasattr(obj, "item"):
        return obj.item()
    return str(obj)


def triage_to_report(
    source,
    out_dir,
    *,
    tracking_uri: str | None = None,
    columns=None,
    group_by=None,
    success=("stable",),
    target_confidence: float = 0.9,
    sweep_dir=None,
) -> tuple[TriageResult, dict[str, Path]]:
    """Load, triage and write the report in one call (what ``gansweep triage`` and the end of
    ``gansweep run`` do).

    Args:
        source: Anything `analysis.load_results` reads (table, file, sweep dir, mlflow:<id>).
        out_dir: Directory for triage.json, report.md, report.html and the follow-ups.
        tracking_uri: MLflow tracking URI for an MLflow source.
        columns: Canonical name -> column name mapping.
        group_by: Other varied parameters to compare within.
        success: Verdicts that count as success.
        target_confidence: Confidence the follow-up sweeps are sized for.
        sweep_dir: Sweep directory with loss curves and samples, if not the source itself.

    Returns:
        The `TriageResult` and the written paths (see `write_report`).

    Raises:
        AnalysisInputError: The source cannot be read or is not usable.
    """
    from analysis.load import load_results
    from analysis.triage import triage

    table = load_results(
        source, columns, tracking_uri=tracking_uri, group_by=group_by, success=success
    )
    result = triage(table, target_confidence=target_confidence)
    return result, write_report(result, out_dir, sweep_dir=sweep_dir)
