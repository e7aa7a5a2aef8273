"""`triage`: why did each failed trial fail (init, batch, both, lr) and what to do about it."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field

import numpy as np
import pandas as pd

from analysis import causes
from analysis._fmt import p_eq, units_phrase, values_phrase
from analysis.evidence import UNIT_WORDS, GridContext, build_context, trial_evidence
from analysis.findings import Findings, compute_findings
from analysis.fixes import Fix, describe_batches, trial_fix
from analysis.followup import FollowUp, plan_followups
from analysis.grid import add_panels, panel_table, trial_counts
from analysis.normalize import DEFAULT_SUCCESS, normalize_results

__all__ = ["Diagnosis", "TriageResult", "triage"]

_COUNT_ORDER = ("init", "batch", "both", "lr", "inconclusive")
_INFO = (
    "trial_id",
    "panel",
    "panel_label",
    "seed",
    "init_seed",
    "data_seed",
    "batch_size",
    "lr",
    "g_lr",
    "d_lr",
    "verdict",
    "onset_epoch",
    "final/loss/d",
    "final/d/accuracy",
    "final/g/accuracy",
)


@dataclass(frozen=True)
class Diagnosis:
    """The triage of one failed trial.

    Attributes:
        trial_id: The trial.
        params: Its seed(s), batch size, learning rate(s) and other varied params.
        failure_mode: Its verdict (``mode_collapse``, ``diverged``, ...; ``failed`` if unknown).
        cause: ``init``, ``batch``, ``both``, ``lr`` or ``inconclusive``.
        confidence: 1 - the largest p-value among the tests defining the cause (see
            `analysis.causes`); for ``inconclusive``, that of the strongest candidate.
        confidence_label: ``high``, ``medium`` or ``low``.
        best_guess: The strongest candidate cause (differs from ``cause`` when inconclusive).
        seed_stream: For seed-related causes: ``init`` or ``data`` when the sweep varied init and
            data seeds independently, ``seed`` when one seed set both; else None.
        scores: Confidence of every candidate cause.
        tests: The Fisher p-values behind them.
        evidence: Sentences a person can check against the grid.
        fix: What to do.
        panel: The LR and other varied params it was compared within.
    """

    trial_id: str
    params: dict
    failure_mode: str
    cause: str
    confidence: float
    confidence_label: str
    best_guess: str | None
    seed_stream: str | None
    scores: dict
    tests: dict
    evidence: list
    fix: Fix
    panel: str
    onset_epoch: float | None = None

    def to_dict(self) -> dict:
        """JSON-ready dict."""
        return _jsonable(asdict(self))


@dataclass(frozen=True)
class TriageResult:
    """Everything `triage` found, ready for `analysis.write_report`.

    Attributes:
        table: The normalised trials (errored ones included) with ``panel``, ``cause`` and
            ``confidence`` columns (NaN for trials that did not fail).
        diagnoses: One per failed trial, in table order.
        findings: Sweep-level findings.
        actions: Recommended actions, most failures first.
        followups: Follow-up grids for what could not be decided.
        summary: One line: failures, causes, the batch trend.
        settings: How the triage ran (group columns, LR scaling, seed streams, thresholds).
    """

    table: pd.DataFrame
    diagnoses: list
    findings: Findings
    actions: list
    followups: list
    summary: str
    settings: dict = field(default_factory=dict)

    @property
    def cause_counts(self) -> dict:
        """Failed trials per cause, every cause listed."""
        counts = dict.fromkeys(_COUNT_ORDER, 0)
        for d in self.diagnoses:
            counts[d.cause] += 1
        return counts

    @property
    def n_trials(self) -> int:
        """Trials with an outcome (errored ones excluded)."""
        return int((~self.table["errored"]).sum())

    @property
    def n_failed(self) -> int:
        """Failed trials."""
        return len(self.diagnoses)

    @property
    def n_errored(self) -> int:
        """Trials that raised or had no outcome (not triaged)."""
        return int(self.table["errored"].sum())

    def frame(self) -> pd.DataFrame:
        """The diagnoses as a flat table (one row per failed trial)."""
        rows = [
            {
                "trial_id": d.trial_id,
                **d.params,
                "failure_mode": d.failure_mode,
                "cause": d.cause,
                "confidence": d.confidence,
                "confidence_label": d.confidence_label,
                "seed_stream": d.seed_stream,
                "panel": d.panel,
                "fix": d.fix.text,
            }
            for d in self.diagnoses
        ]
        return pd.DataFrame(rows)

    def to_dict(self) -> dict:
        """The JSON document written as triage.json."""
        f = self.findings
        return _jsonable(
            {
                "schema": "gansweep.triage/1",
                "source": self.table.attrs.get("source"),
                "sweep": self.table.attrs.get("sweep_name"),
                "summary": self.summary,
                "counts": {
                    "trials": self.n_trials,
                    "failed": self.n_failed,
                    "errored": self.n_errored,
                    "by_cause": self.cause_counts,
                },
                "failures": [d.to_dict() for d in self.diagnoses],
                "findings": {
                    "failure_rate": {k: v.to_dict("records") for k, v in f.by_factor.items()},
                    "batch_trend": {
                        **asdict(f.trend),
                        "conclusion": f.trend_text,
                        "by_panel": f.trend_by_panel.to_dict("records"),
                    },
                    "seed_outliers": f.seed_outliers.to_dict("records"),
                    "collapse_symptoms": None
                    if f.collapse is None
                    else f.collapse.to_dict("records"),
                    "collapse_matches": f.collapse_matches,
                    "collapse_matches_failed": f.collapse_failed,
                },
                "actions": self.actions,
                "followups": [asdict(p) for p in self.followups],
                "errored": self.table.loc[self.table["errored"], ["trial_id", "excluded_reason"]]
                .assign(error=self._errors())
                .to_dict("records"),
                "settings": self.settings,
                "method": causes.__doc__.split("How confidence is computed")[-1].strip(),
            }
        )

    def _errors(self) -> list:
        rows = self.table.loc[self.table["errored"]]
        if "error" not in rows.columns:
            return [None] * len(rows)
        return [None if pd.isna(e) else str(e) for e in rows["error"]]


def _jsonable(obj):
    if isinstance(obj, dict):
        return {str(k): _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_jsonable(v) for v in obj]
    if isinstance(obj, (np.integer,)):
        return int(obj)
    if isinstance(obj, (np.floating, float)):
        return None if not math.isfinite(float(obj)) else float(obj)
    if isinstance(obj, (np.bool_,)):
        return bool(obj)
    if obj is pd.NA or obj is pd.NaT:
        return None
    return obj


def _separated(live: pd.DataFrame) -> bool:
    """Init and data seeds vary independently: some init seed meets several data seeds or v.v."""
    pairs = live[["init_seed", "data_seed"]].drop_duplicates()
    n_init, n_data = pairs["init_seed"].nunique(), pairs["data_seed"].nunique()
    return n_init > 1 and n_data > 1 and len(pairs) > max(n_init, n_data)


def _decide_all(
    live: pd.DataFrame, panels: pd.DataFrame, units: list[str], groups: list[str]
) -> pd.DataFrame:
    frames = {}
    for unit in units:
        counts = trial_counts(live, unit, panels)
        frame = counts.join(causes.decide(counts))
        frame["ctx_unit"] = unit
        frame["unit"] = live.loc[frame.index, unit]
        frames[unit] = frame
    if len(units) == 1:
        chosen = frames[units[0]]
        other_conf = pd.Series(np.nan, index=chosen.index)
        other_cause = pd.Series(None, index=chosen.index, dtype=object)
    else:
        a, b = frames[units[0]], frames[units[1]]
        use_b = b["confidence"] > a["confidence"]
        chosen = a.where(~use_b, b)
        other_conf = b["confidence"].where(~use_b, a["confidence"])
        other_cause = b["best_guess"].where(~use_b, a["best_guess"])
    chosen = chosen.copy()
    chosen["other_confidence"], chosen["other_best"] = other_conf, other_cause
    info = [c for c in (*_INFO, *groups) if c in live.columns]
    return chosen.join(live.loc[chosen.index, info].rename(columns={"verdict": "failure_mode"}))


def _stream(cause: str, unit: str, separated: bool) -> str | None:
    if cause not in ("init", "both"):
        return None
    if not separated:
        return "seed"
    return "init" if unit == "init_seed" else "data"


def _other_sentence(t: dict, separated: bool) -> str | None:
    if not separated:
        return None
    other = "data seed" if t["ctx_unit"] == "init_seed" else "init seed"
    mine = UNIT_WORDS[t["ctx_unit"]]
    return (
        f"Laid out by {other} instead, the strongest cause is {t['other_best']} at "
        f"{t['other_confidence']:.2f} (by {mine}: {t['best_guess']} at {t['confidence']:.2f})."
    )


def _params(t: dict, groups: list[str]) -> dict:
    params = {
        "seed": t["seed"],
        "init_seed": t["init_seed"],
        "data_seed": t["data_seed"],
        "batch_size": int(t["batch_size"]),
    }
    if math.isfinite(t["g_lr"]):
        if math.isclose(t["g_lr"], t["d_lr"], rel_tol=1e-9):
            params["lr"] = t["g_lr"]
        else:
            params["g_lr"], params["d_lr"] = t["g_lr"], t["d_lr"]
    for col in groups:
        params[col] = t[col]
    return params


def _diagnose(t: dict, ctx: GridContext, separated: bool, groups: list[str]) -> Diagnosis:
    onset = t.get("onset_epoch")
    onset = float(onset) if isinstance(onset, (int, float)) and math.isfinite(onset) else None
    conf = float(t["confidence"])
    return Diagnosis(
        trial_id=str(t["trial_id"]),
        params=_params(t, groups),
        failure_mode=str(t["failure_mode"]),
        cause=t["cause"],
        confidence=round(conf, 4),
        confidence_label=causes.confidence_label(conf) if t["cause"] != "inconclusive" else "none",
        best_guess=t["best_guess"] if conf > 0 else None,
        seed_stream=_stream(t["cause"], t["ctx_unit"], separated),
        scores={c: round(float(t[f"score_{c}"]), 4) for c in ("init", "batch", "both", "lr")},
        tests={
            k: float(t[k])
            for k in ("p_seed_elsewhere", "p_seed_here", "p_batch", "p_seed_step", "p_lr")
        },
        evidence=trial_evidence(ctx, t, _other_sentence(t, separated)),
        fix=trial_fix(ctx, t, separated),
        panel=str(t["panel_label"]),
        onset_epoch=onset,
    )


_PURPOSE = {
    "decide": "more seeds and batch sizes decide it.",
    "streams": "init seed x data seed tells chance from an unlucky data order.",
    "lr": "everything failed at the only LR tried; lower LRs tell whether the LR is the cause.",
}


def _with_followup(d: Diagnosis, owner: dict, plans: list[FollowUp]) -> Diagnosis:
    index = owner.get(d.trial_id)
    if index is None:
        return d
    plan = plans[index - 1]
    if d.cause == "inconclusive":
        text = (
            f"Run follow-up {index} ({plan.runs} runs, {plan.new_runs} new): "
            + _PURPOSE[plan.purpose]
        )
    else:
        text = d.fix.text + f" Follow-up {index} ({plan.runs} runs) separates init from data order."
    fix = Fix(**{**asdict(d.fix), "text": text, "followup": index})
    return Diagnosis(**{**{f: getattr(d, f) for f in d.__dataclass_fields__}, "fix": fix})


def triage(
    table: pd.DataFrame,
    *,
    columns: Mapping[str, str] | None = None,
    group_by: Sequence[str] | None = None,
    success: Sequence[str] = DEFAULT_SUCCESS,
    target_confidence: float = 0.9,
) -> TriageResult:
    """Decide why each failed trial failed and what to do, from a results table alone.

    Trials are compared within panels: the same learning rate and the same values of the other
    varied parameters. Causes and confidences are explained in `analysis.causes`: each cause
    is a conjunction of one-sided Fisher exact tests on the grid's counts, and its confidence is
    1 - the largest p-value (an intersection-union test), so 2 seeds cannot be as sure as 10.
    When the sweep varied ``init_seed`` and ``data_seed`` independently, the grid is laid out by
    each in turn and the stronger explanation names the stream (unlucky init or data order).

    Args:
        table: Results, raw (normalised here) or from `analysis.load_results`.
        columns: Canonical name -> the table's column name, for raw tables.
        group_by: Other varied parameters to compare within (default: see
            `analysis.normalize_results`).
        success: Verdicts that count as success.
        target_confidence: Confidence the follow-up sweeps are sized to make reachable.

    Returns:
        The `TriageResult`.

    Raises:
        AnalysisInputError: The table is not usable (see `analysis.normalize_results`).
    """
    df = add_panels(normalize_results(table, columns=columns, group_by=group_by, success=success))
    live = df.loc[~df["errored"]]
    groups = list(df.attrs["group_columns"])
    panels = panel_table(live)
    separated = _separated(live)
    units = ["init_seed", "data_seed"] if separated else ["seed"]
    frame = _decide_all(live, panels, units, groups)
    contexts = {u: build_context(live, u, panels) for u in units}
    records = frame.to_dict("records")
    diagnoses = [_diagnose(t, contexts[t["ctx_unit"]], separated, groups) for t in records]
    plans, owner = plan_followups(
        frame, contexts, live, groups, df.attrs["lr_scaling"], separated, target_confidence
    )
    diagnoses = [_with_followup(d, owner, plans) for d in diagnoses]
    findings = compute_findings(live, separated)
    out = df.copy()
    out["cause"] = pd.Series(frame["cause"], dtype=object)
    out["confidence"] = frame["confidence"]
    out.attrs.update(df.attrs)
    settings = {
        "group_columns": groups,
        "lr_scaling": df.attrs["lr_scaling"],
        "seed_streams_separated": separated,
        "decide_threshold": causes.DECIDE,
        "seed_survival_share": causes.SEED_SURVIVAL,
        "target_confidence": target_confidence,
        "success_verdicts": list(success),
    }
    actions = _actions(frame, diagnoses, contexts, plans, findings)
    result = TriageResult(out, diagnoses, findings, actions, plans, "", settings)
    return TriageResult(**{**result.__dict__, "summary": _summary(result)})


def _actions(frame, diagnoses, contexts, plans, findings) -> list[str]:
    by_id = {d.trial_id: d for d in diagnoses}
    frame = frame.assign(trial_id=frame["trial_id"].astype(str))
    items = []
    for (panel, cause), sub in frame.groupby(["panel", "cause"], sort=True):
        if cause == "inconclusive":
            continue
        ctx = contexts[sub["ctx_unit"].iloc[0]]
        label = ctx.panel_info[panel]["panel_label"]
        first = by_id[sub.sort_values("batch_size")["trial_id"].iloc[0]]
        items.append((len(sub), _action_text(cause, label, sub, ctx, first)))
    items += _followup_actions(plans)
    items.sort(key=lambda x: -x[0])
    if findings.collapse_failed:  # a general note, after the cause-specific actions
        items.append(
            (
                findings.collapse_failed,
                (
                    f"{findings.collapse_failed} failed trial(s) show all three mode-collapse "
                    "symptoms (D loss 0.72-0.75, D accuracy ~50%, G accuracy 99%+); the guide's "
                    "common fixes: reduce batch size, lower the learning rate, increase n_critic, "
                    "reduce dropout, use a different seed."
                ),
            )
        )
    return [text for _, text in items]


def _followup_actions(plans: list[FollowUp]) -> list[tuple[int, str]]:
    items = []
    for p in plans:
        if p.purpose == "decide":
            text = (
                f"{len(p.decides)} failure(s) at {p.panel} are inconclusive: run follow-up "
                f"{p.index} ({p.runs} runs, {p.new_runs} new) to decide them."
            )
            items.append((len(p.decides), text))
        elif p.purpose == "lr":
            text = (
                f"At {p.panel}, nearly every run failed and no other LR was tried: run follow-up "
                f"{p.index} ({p.runs} runs at {p.grid.get('lr', p.grid.get('train.g_lr'))}) to "
                "see whether a lower learning rate fixes it."
            )
            items.append((len(p.decides), text))
    streams: dict[str, list[FollowUp]] = {}
    for p in plans:
        if p.purpose == "streams":
            streams.setdefault(p.panel, []).append(p)
    for panel, group in streams.items():
        n = sum(len(p.decides) for p in group)
        which = "follow-up" + ("s " if len(group) > 1 else " ")
        which += ", ".join(str(p.index) for p in group)
        text = (
            f"At {panel}, each seed set both initialisation and data order: run {which} "
            f"({sum(p.runs for p in group)} runs, init seed x data seed) to tell an unlucky "
            f"initialisation from an unlucky data order for {n} failure(s)."
        )
        items.append((n, text))
    return items


def _action_text(
    cause: str, label: str, sub: pd.DataFrame, ctx: GridContext, first: Diagnosis
) -> str:
    n, w = len(sub), ctx.word
    if cause == "init":
        good = _good_at(ctx, int(sub["panel"].iloc[0]), set(sub["batch_size"]), set(sub["unit"]))
        use = (
            f"use a known-good {w}: {values_phrase(good)} (succeeded at "
            f"{describe_batches(sub['batch_size'])})"
            if good
            else f"no {w} succeeded at all of {describe_batches(sub['batch_size'])} yet"
        )
        return (
            f"{label}: {units_phrase(w, sub['unit'])} failed at several batch sizes while other "
            f"{w}s succeeded ({n} failure(s), cause init); {use}."
        )
    if cause == "batch":
        which = describe_batches(sub["batch_size"])
        verb = "fails" if which.startswith("batch ") else "fail"
        return (
            f"{label}: {which} {verb} across {w}s ({n} failure(s), cause batch). {first.fix.text}"
        )
    if cause == "both":
        return (
            f"{label}: failures rise with batch size and depend on the {w} ({n} failure(s), "
            f"cause both). At the smallest failing batch size: {first.fix.text}"
        )
    return (
        f"{label}: fails across {w}s and batch sizes ({n} failure(s), cause lr). {first.fix.text}"
    )


def _good_at(ctx: GridContext, panel: int, batches: set, bad: set) -> list:
    """Seeds that succeeded at every one of ``batches`` in the panel, bad ones excluded."""
    good = None
    for b in batches:
        ok = set(ctx.col_ok.get((panel, b), [])) - set(ctx.col_fail.get((panel, b), []))
        good = ok if good is None else good & ok
    return sorted((good or set()) - bad, key=lambda v: (isinstance(v, str), v))


def _summary(result: TriageResult) -> str:
    n, k, e = result.n_trials, result.n_failed, result.n_errored
    counts = result.cause_counts
    parts = ", ".join(f"{c} {counts[c]}" for c in _COUNT_ORDER if counts[c])
    errored = f"; {e} errored, not triaged" if e else ""
    trend = result.findings.trend
    if not trend.testable:
        tail = "No batch-size trend testable."
    elif trend.p_increasing < 0.05:
        tail = f"Smaller batches are more robust (trend {p_eq(trend.p_increasing)})."
    else:
        tail = (
            f"No evidence that smaller batches are more robust (trend {p_eq(trend.p_increasing)})."
        )
    head = f"{k} of {n} trials failed ({k / n:.0%}){errored}"
    return f"{head}: {parts}. {tail}" if k else f"{head}. {tail}"
