"""`write_report`: triage.json, report.md and one self-contained report.html."""

from __future__ import annotations

import base64
import json
import math
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from analysis._fmt import fmt_num
from analysis._sweepfile import render_sweep_file, yaml_loader
from analysis.errors import AnalysisInputError
from analysis.evidence import UNIT_WORDS
from analysis.load import load_epochs
from analysis.plots import heatmap_png, loss_curves_png, outcome_matrix, table_rows
from analysis.triage import TriageResult

__all__ = ["write_report", "experiment_log", "ReportData", "prepare_report", "triage_to_report"]

_MAX_IMAGE_BYTES = 3_000_000
_CURVES_MAX = 40  # failure groups whose first trial gets loss curves and samples
_TABLE_ROWS = 60  # seeds a heatmap table lists (the image shows them all)


@dataclass
class PanelView:
    """One panel's outcome grid (seed x batch size at one LR) as numbers, for the tables:
    every seed, or at most `_TABLE_ROWS` of those with a failure (``hidden_rows`` left out)."""

    label: str
    lr_key: str
    unit_word: str
    share: pd.DataFrame
    marks: pd.DataFrame
    failures: int
    hidden_rows: int = 0


@dataclass
class GroupView:
    """The panels of one group (same other varied params), drawn side by side in one image."""

    label: str
    png: bytes
    panels: list


@dataclass
class ReportData:
    """What the Markdown and HTML renderers draw from.

    ``groups`` are the outcome heatmaps by group of other varied params; ``failures`` the
    failure groups shown (each once, with its trials); ``curves`` and ``samples`` the figures
    of one representative trial per shown failure group, by trial id.
    """

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
    if row["pruned"]:
        return "✂️ pruned"
    if row["errored"]:
        return "⚠️ error" if row["excluded_reason"] == "error" else "⚠️ no outcome"
    return "✅ Stable" if not row["failed"] else f"❌ {row['verdict']}"


def _note(r: dict, notes: dict) -> str:
    if r["trial_id"] in notes:
        return notes[r["trial_id"]]
    if r["pruned"]:
        return "not triaged: stopped by the scheduler or pruner (censored)"
    if r["errored"]:
        err = r.get("error")
        return f"not triaged: {err[:160]}" if isinstance(err, str) and err else "not triaged"
    return ""


def experiment_log(result: TriageResult, limit: int | None = None) -> pd.DataFrame:
    """The guide's master experiment log, one row per trial.

    Args:
        result: The triage.
        limit: Rows to build (the first, in table order); None: all.

    Returns:
        Columns Run, Date, Tracking URL, Batch, Epochs, Stability, D Loss, G Loss, Notes.
    """
    table = result.table if limit is None else result.table.head(limit)
    shown = set(table["trial_id"])
    notes = {
        d.trial_id: f"{d.cause} ({d.confidence:.2f}, group {d.group}): {d.fix.text}"
        for d in result.diagnoses
        if d.trial_id in shown
    }
    rows = []
    for r in table.to_dict("records"):
        note = _note(r, notes)
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


def _heatmap_views(result: TriageResult, max_panels: int) -> tuple[list, int]:
    """Heatmaps by group, the groups with the most failures first, up to ``max_panels`` panels."""
    live = result.table.loc[~result.table["excluded"]]
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
        items, figure = [], []
        by_panel = dict(tuple(live[live["panel"].isin(members.index)].groupby("panel")))
        for panel, row in members.iterrows():
            share, marks = outcome_matrix(by_panel[panel], unit)
            figure.append((f"lr {row['lr']}", share, marks))
            rows = table_rows(share, _TABLE_ROWS)
            items.append(
                PanelView(
                    row["label"],
                    row["lr"],
                    word,
                    share.loc[rows],
                    marks.loc[rows],
                    int(row["fails"]),
                    len(share) - len(rows),
                )
            )
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


def _representatives(groups: list) -> list[str]:
    """One trial per shown failure group (its first), for loss curves and samples."""
    return [g.trials[0] for g in groups[:_CURVES_MAX]]


def prepare_report(
    result: TriageResult,
    sweep_dir=None,
    *,
    max_groups: int = 200,
    max_panels: int = 12,
    max_log_rows: int = 2000,
) -> ReportData:
    """Gather figures, curves and samples for the renderers.

    Args:
        result: The triage.
        sweep_dir: Sweep directory with epochs.parquet and trials/<id>/samples.png (default:
            the one the table was loaded from, if any).
        max_groups: Failure groups detailed in the report (all are in triage.json).
        max_panels: Panels drawn as heatmaps (those with the most failures).
        max_log_rows: Rows of the experiment log shown.

    Returns:
        The `ReportData`.
    """
    sweep_dir = sweep_dir or result.table.attrs.get("sweep_dir")
    heatmaps, hidden_panels = _heatmap_views(result, max_panels)
    shown = result.groups[:max_groups]
    data = ReportData(
        result=result,
        title=str(result.table.attrs.get("sweep_name") or "sweep"),
        groups=heatmaps,
        hidden_panels=hidden_panels,
        failures=shown,
        hidden_failures=len(result.groups) - len(shown),
    )
    ids = _representatives(shown)
    onset = {d.trial_id: d.onset_epoch for d in result.diagnoses}
    epochs = _epochs_for(result, sweep_dir, ids, data.notes)
    by_trial = dict(tuple(epochs.groupby("trial_id"))) if epochs is not None and len(epochs) else {}
    for trial_id in ids:
        if trial_id in by_trial:
            png = loss_curves_png(by_trial[trial_id], trial_id, onset.get(trial_id))
            if png:
                data.curves[trial_id] = png
        sample = _samples(sweep_dir, trial_id)
        if sample:
            data.samples[trial_id] = sample
    data.log = experiment_log(result, max_log_rows)
    data.hidden_log = max(0, len(result.table) - max_log_rows)
    return data


def data_uri(png: bytes) -> str:
    """PNG bytes as a data: URI for embedding."""
    return "data:image/png;base64," + base64.b64encode(png).decode("ascii")


def _out_dir(out_dir) -> Path:
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise AnalysisInputError(f"--out {out}: exists and is not a directory; give a directory")
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise AnalysisInputError(f"--out {out}: cannot create the directory ({exc})") from exc
    return out


def write_report(result: TriageResult, out_dir, sweep_dir=None, **limits) -> dict[str, Path]:
    """Write triage.json, report.md, report.html and one sweep file per follow-up.

    Args:
        result: The triage.
        out_dir: Directory to write into (created).
        sweep_dir: Sweep directory for loss curves, samples and the sweep file the follow-ups
            are based on (default: the table's own).
        **limits: ``max_groups``, ``max_panels``, ``max_log_rows`` for `prepare_report`.

    Returns:
        Paths by kind: ``json``, ``markdown``, ``html`` and ``followup_<i>``.

    Raises:
        AnalysisInputError: ``out_dir`` is a file or cannot be written.
    """
    from analysis._html import render_html
    from analysis._markdown import render_markdown

    out = _out_dir(out_dir)
    sweep_dir = sweep_dir or result.table.attrs.get("sweep_dir")
    data = prepare_report(result, sweep_dir, **limits)
    files = _followup_files(result, sweep_dir)
    if files and not _sweep_file(sweep_dir) and not result.table.attrs.get("base_params"):
        data.notes.append(
            "The follow-up sweep files have an empty base: (this table does not say how its "
            "runs were configured): fill in the original run config before running them."
        )
    paths = {
        "json": out / "triage.json",
        "markdown": out / "report.md",
        "html": out / "report.html",
    }
    try:
        paths["json"].write_text(_json_text(result.to_dict()))
        paths["markdown"].write_text(render_markdown(data))
        paths["html"].write_text(render_html(data))
        for index, text in files.items():
            path = out / f"followup_{index}.yaml"
            path.write_text(text)
            paths[f"followup_{index}"] = path
    except OSError as exc:
        raise AnalysisInputError(f"--out {out}: cannot write the report ({exc})") from exc
    return paths


def _sweep_file(sweep_dir) -> dict | None:
    """The sweep directory's own sweep.yaml, parsed, when there is a valid one."""
    if sweep_dir is None:
        return None
    path = Path(sweep_dir) / "sweep.yaml"
    if not path.is_file():
        return None
    import yaml

    try:
        doc = yaml.load(path.read_text(), Loader=yaml_loader())  # noqa: S506 - a SafeLoader
    except (OSError, yaml.YAMLError):
        return None
    return doc if isinstance(doc, dict) else None


def _followup_files(result: TriageResult, sweep_dir) -> dict[int, str]:
    """Each follow-up as a complete sweep file: the sweep's own file with the new grid, else a
    file whose base comes from the trials' shared config (MLflow) or is marked to fill in."""
    sweep = _sweep_file(sweep_dir)
    name = (sweep or {}).get("name") or result.table.attrs.get("sweep_name") or "sweep"
    base = result.table.attrs.get("base_params")
    return {p.index: render_sweep_file(p, str(name), sweep, base) for p in result.followups}


def _json_text(doc: dict) -> str:
    """Indented JSON, except one line per failure and per excluded trial (a 100k-trial sweep
    stays a few MB)."""
    rows = {k: doc.pop(k) for k in ("failures", "excluded")}
    head = json.dumps(doc, indent=1, default=_json_default, allow_nan=False)
    parts = [head[: head.rstrip().rfind("}")].rstrip()]
    for key, items in rows.items():
        lines = ",\n  ".join(
            json.dumps(x, separators=(",", ":"), default=_json_default, allow_nan=False)
            for x in items
        )
        parts.append(f',\n "{key}": [\n  {lines}\n ]' if items else f',\n "{key}": []')
    return "".join(parts) + "\n}\n"


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
        source: Anything `analysis.load_results` reads (table, file, sweep dir, mlflow:<id>),
            or a list of them (e.g. a sweep and its follow-up), triaged together.
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

    out = _out_dir(out_dir) if Path(out_dir).exists() else None  # refuse a file before working
    table = load_results(
        source, columns, tracking_uri=tracking_uri, group_by=group_by, success=success
    )
    result = triage(table, target_confidence=target_confidence)
    return result, write_report(result, out or out_dir, sweep_dir=sweep_dir)
