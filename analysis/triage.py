"""`triage`: why did each failed trial fail (init, batch, both, lr) and what to do about it."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field

import numpy as np
import pandas as pd

from analysis import causes
from analysis._fmt import p_eq
from analysis.evidence import UNIT_WORDS, build_contexts
from analysis.findings import Findings, compute_findings
from analysis.followup import plan_followups
from analysis.grid import add_panels, panel_table
from analysis.groups import (
    FailureGroup,
    KnownGood,
    group_failures,
    known_good,
    known_good_actions,
    with_followup,
)
from analysis.model import PRIORS, Priors, failure_probabilities, fit_layout
from analysis.normalize import DEFAULT_SUCCESS, normalize_results

__all__ = ["Diagnosis", "TriageResult", "triage"]

_COUNT_ORDER = ("init", "batch", "both", "lr", "inconclusive")
_PROB_KEYS = ("init", "batch", "both", "lr", "chance", "shared")
_INFO = (
    "trial_id",
    "panel",
    "panel_label",
    "group_key",
    "seed",
    "init_seed",
    "data_seed",
    "batch_size",
    "lr",
    "g_lr",
    "d_lr",
    "verdict",
    "onset_epoch",
)


@dataclass(frozen=True)
class Diagnosis:
    """The triage of one failed trial.

    Attributes:
        trial_id: The trial.
        params: Its seed(s), batch size, learning rate(s) and other varied params.
        failure_mode: Its verdict (``mode_collapse``, ``diverged``, ...; ``failed`` if unknown).
        cause: ``init``, ``batch``, ``both``, ``lr`` or ``inconclusive``.
        confidence: The posterior probability that ``best_guess`` is the cause (for a decided
            trial: that the stated cause is right; see `analysis.causes`).
        confidence_label: ``high`` (>= 0.97), ``medium`` (>= 0.9) or ``low``; ``none`` when
            inconclusive.
        best_guess: The likeliest cause, also when inconclusive.
        seed_stream: For seed causes: ``init`` or ``data`` when the sweep varied init and data
            seeds independently, ``seed`` when one seed set both; else None.
        probabilities: Posterior probability of init, batch, both, lr, chance and shared
            (everything at the only LR tried failed).
        group: Index of its `analysis.groups.FailureGroup` (evidence and fix live there).
        evidence: The group's evidence sentences.
        fix: The group's fix.
        panel: The LR and other varied params it was compared within.
        onset_epoch: Epoch its failure began, when known.
    """

    trial_id: str
    params: dict
    failure_mode: str
    cause: str
    confidence: float
    confidence_label: str
    best_guess: str | None
    seed_stream: str | None
    probabilities: dict
    group: int
    evidence: list
    fix: object
    panel: str
    onset_epoch: float | None = None

    def to_dict(self) -> dict:
        """JSON-ready dict, compact: the group holds the shared evidence and fix; seeds equal to
        ``seed``, a best guess equal to the cause, probabilities under 0.001 (all of them when
        only the cause's is left) and unknown fields are left out."""
        params = {
            k: v
            for k, v in self.params.items()
            if k not in ("init_seed", "data_seed") or v != self.params["seed"]
        }
        out = {
            "trial_id": self.trial_id,
            "params": _jsonable(params),
            "failure_mode": self.failure_mode,
            "cause": self.cause,
            "confidence": self.confidence,
            "group": self.group,
        }
        if self.cause == "inconclusive":
            out["best_guess"] = self.best_guess
        probs = {k: v for k, v in self.probabilities.items() if v >= 0.001}
        if len(probs) > 1:  # else the confidence says it all
            out["probabilities"] = probs
        if self.seed_stream:
            out["seed_stream"] = self.seed_stream
        if self.onset_epoch is not None:
            out["onset_epoch"] = self.onset_epoch
        return out


@dataclass(frozen=True)
class TriageResult:
    """Everything `triage` found, ready for `analysis.write_report`.

    Attributes:
        table: The normalised trials (excluded ones included) with ``panel``, ``cause`` and
            ``confidence`` columns (NaN for trials that did not fail).
        diagnoses: One per failed trial, in table order.
        groups: Failures sharing cause, evidence and fix (decided causes first).
        known_good: What worked, per group and LR.
        findings: Sweep-level findings.
        actions: Recommended actions: known-good settings, follow-ups, then each group's fix.
        followups: Follow-up sweeps for what could not be decided.
        summary: One line: failures, causes, the batch trend.
        settings: How the triage ran (group columns, LR scaling, seed streams, thresholds).
    """

    table: pd.DataFrame
    diagnoses: list
    groups: list
    known_good: list
    findings: Findings
    actions: list
    followups: list
    summary: str
    settings: dict = field(default_factory=dict)

    @property
    def cause_counts(self) -> dict:
        """Failed trials per cause, every cause listed."""
        counts = dict.fromkeys(_COUNT_ORDER, 0)
        for g in self.groups:
            counts[g.cause] += len(g.trials)
        return counts

    @property
    def n_trials(self) -> int:
        """Trials with an outcome (errored and pruned ones excluded)."""
        return int((~self.table["excluded"]).sum())

    @property
    def n_failed(self) -> int:
        """Failed trials."""
        return len(self.diagnoses)

    @property
    def n_errored(self) -> int:
        """Trials that raised or had no outcome (not triaged)."""
        return int(self.table["errored"].sum())

    @property
    def n_pruned(self) -> int:
        """Trials a scheduler or pruner stopped (censored: neither success nor failure)."""
        return int(self.table["pruned"].sum())

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
                "best_guess": d.best_guess,
                "seed_stream": d.seed_stream,
                "group": d.group,
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
                "schema": "gansweep.triage/2",
                "source": self.table.attrs.get("source"),
                "sweep": self.table.attrs.get("sweep_name"),
                "summary": self.summary,
                "counts": {
                    "trials": self.n_trials,
                    "failed": self.n_failed,
                    "errored": self.n_errored,
                    "pruned": self.n_pruned,
                    "by_cause": self.cause_counts,
                },
                "actions": self.actions,
                "known_good": [asdict(k) for k in self.known_good],
                "followups": [p.to_dict() for p in self.followups],
                "groups": [g.to_dict() for g in self.groups],
                "failures": _Raw([d.to_dict() for d in self.diagnoses]),
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
                "excluded": self.excluded_rows(),
                "settings": self.settings,
                "method": causes.__doc__.split("How confidence is computed")[-1].strip(),
            }
        )

    def excluded_rows(self) -> list[dict]:
        """Errored and pruned trials: id, reason, error, epochs run."""
        rows = self.table.loc[self.table["excluded"]]
        cols = [c for c in ("trial_id", "excluded_reason", "error", "epochs_run") if c in rows]
        out = rows[cols].astype(object).where(rows[cols].notna(), None)
        return out.rename(columns={"excluded_reason": "reason"}).to_dict("records")


class _Raw(list):
    """Already JSON-ready: `_jsonable` passes it through (a 100k-trial sweep's failures)."""


def _jsonable(obj):
    if isinstance(obj, _Raw):
        return obj
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


def _stream(frame: pd.DataFrame, separated: bool) -> pd.Series:
    seedish = frame["best_guess"].isin(["init", "both"])
    names = np.where(frame["ctx_unit"] == "init_seed", "init", "data") if separated else "seed"
    return pd.Series(np.where(seedish, names, ""), index=frame.index, dtype=object).replace(
        "", None
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


def _diagnoses(frame: pd.DataFrame, groups: list[FailureGroup], names: list[str]) -> list:
    by_index = {g.index: g for g in groups}
    probs = frame[[f"prob_{k}" for k in _PROB_KEYS]].to_numpy().round(4).tolist()
    onset = (
        frame["onset_epoch"].astype(float).tolist()
        if "onset_epoch" in frame
        else [math.nan] * len(frame)
    )
    cols = ["trial_id", "failure_mode", "cause", "confidence", "best_guess", "seed_stream"]
    cols += ["group", "panel_label", "seed", "init_seed", "data_seed", "batch_size", "g_lr"]
    cols += ["d_lr", *names]
    columns = {c: frame[c].tolist() for c in cols}
    out = []
    for i in range(len(frame)):
        t = {c: v[i] for c, v in columns.items()}
        g = by_index[t["group"]]
        conf = float(t["confidence"])
        label = "none" if t["cause"] == "inconclusive" else causes.confidence_label(conf)
        out.append(
            Diagnosis(
                trial_id=str(t["trial_id"]),
                params=_params(t, names),
                failure_mode=str(t["failure_mode"]),
                cause=t["cause"],
                confidence=round(conf, 4),
                confidence_label=label,
                best_guess=t["best_guess"],
                seed_stream=t["seed_stream"],
                probabilities=dict(zip(_PROB_KEYS, probs[i], strict=True)),
                group=g.index,
                evidence=g.evidence,
                fix=g.fix,
                panel=str(t["panel_label"]),
                onset_epoch=onset[i] if math.isfinite(onset[i]) else None,
            )
        )
    return out


def triage(
    table: pd.DataFrame,
    *,
    columns: Mapping[str, str] | None = None,
    group_by: Sequence[str] | None = None,
    success: Sequence[str] = DEFAULT_SUCCESS,
    target_confidence: float = 0.9,
    priors: Priors = PRIORS,
) -> TriageResult:
    """Decide why each failed trial failed and what to do, from a results table alone.

    Trials are compared within groups (the same values of the other varied parameters) by a
    model of the seed x LR x batch-size grid (`analysis.model`); a failure's cause is the
    posterior category of its cell and its confidence that category's posterior probability
    (`analysis.causes`). When the sweep varied ``init_seed`` and ``data_seed`` independently,
    the grid is laid out by each and the layouts are averaged by their evidence, which names
    the stream (unlucky initialisation or data order).

    Args:
        table: Results, raw (normalised here) or from `analysis.load_results`.
        columns: Canonical name -> the table's column name, for raw tables.
        group_by: Other varied parameters to compare within (default: see
            `analysis.normalize_results`).
        success: Verdicts that count as success.
        target_confidence: Confidence the follow-up sweeps are sized to reach.
        priors: The grid model's prior (the calibrated default unless studying it).

    Returns:
        The `TriageResult`.

    Raises:
        AnalysisInputError: The table is not usable (see `analysis.normalize_results`).
    """
    df = add_panels(normalize_results(table, columns=columns, group_by=group_by, success=success))
    live = df.loc[~df["excluded"]]
    names = list(df.attrs["group_columns"])
    panels = panel_table(live)
    separated = _separated(live)
    units = ["init_seed", "data_seed"] if separated else ["seed"]
    fits = {u: fit_layout(live, u, priors) for u in units}
    contexts = {u: build_contexts(fits[u][0], fits[u][1], panels, u) for u in units}
    frame = failure_probabilities(live, fits, units)
    frame = frame.join(causes.decide(frame))
    frame = frame.join(live.loc[frame.index, [c for c in (*_INFO, *names) if c in live]])
    frame = frame.rename(columns={"verdict": "failure_mode"})
    frame["unit"] = live.loc[frame.index, units[0]].astype(object)
    if len(units) > 1:
        other = frame["ctx_unit"] == units[1]
        frame.loc[other, "unit"] = live.loc[frame.index[other], units[1]].astype(object)
    frame["seed_stream"] = _stream(frame, separated)
    groups, frame["group"] = group_failures(frame, contexts, separated)
    plans, owner = plan_followups(
        frame, groups, contexts, live, df.attrs, target_confidence, priors
    )
    groups = [
        with_followup(g, owner[g.index], f"Follow-up {owner[g.index]} decides it.")
        if g.index in owner
        else g
        for g in groups
    ]
    good = known_good(contexts[units[0]])
    findings = compute_findings(live, separated)
    out = df.copy()
    out["cause"] = pd.Series(frame["cause"], dtype=object)
    out["confidence"] = frame["confidence"]
    out.attrs.update(df.attrs)
    settings = {
        "group_columns": names,
        "lr_scaling": df.attrs["lr_scaling"],
        "seed_streams_separated": separated,
        "decide_threshold": causes.DECIDE,
        "target_confidence": target_confidence,
        "success_verdicts": list(success),
        "priors": asdict(priors),
    }
    actions = _actions(groups, good, plans, findings, UNIT_WORDS[units[0]])
    diagnoses = _diagnoses(frame, groups, names)
    result = TriageResult(out, diagnoses, groups, good, findings, actions, plans, "", settings)
    return TriageResult(**{**result.__dict__, "summary": _summary(result)})


def _actions(groups, good: list[KnownGood], plans, findings, word: str) -> list[str]:
    """Known-good settings first, then the follow-ups, then what each group of failures needs."""
    items = known_good_actions(good, word)
    items += [p.action for p in plans]
    left = [
        g
        for g in groups
        if g.cause == "inconclusive" and g.reason != "chance" and g.followup is None
    ]
    if left:
        items.append(
            f"{len(left)} more inconclusive group(s) ({sum(len(g.trials) for g in left)} "
            "failures) have no follow-up of their own: run the follow-ups above first, their "
            "answers say what these need."
        )
    for g in groups:
        if g.cause == "inconclusive":
            continue
        where = f" ({g.group})" if g.group else ""
        conf = _conf(g.confidence)
        items.append(
            f"{g.title}{where}: {len(g.trials)} failure(s), cause {g.cause} "
            f"(confidence {conf}). {g.fix.text}"
        )
    if findings.collapse_failed:  # a general note, after the cause-specific actions
        items.append(
            f"{findings.collapse_failed} failed trial(s) show all three mode-collapse symptoms "
            "(D loss 0.72-0.75, D accuracy ~50%, G accuracy 99%+); the guide's common fixes: "
            "reduce batch size, lower the learning rate, increase n_critic, reduce dropout, use "
            "a different seed."
        )
    return items


def _conf(c: tuple) -> str:
    return f"{c[0]:.2f}" if round(c[0], 2) == round(c[1], 2) else f"{c[0]:.2f}-{c[1]:.2f}"


def _summary(result: TriageResult) -> str:
    n, k = result.n_trials, result.n_failed
    counts = result.cause_counts
    parts = ", ".join(f"{c} {counts[c]}" for c in _COUNT_ORDER if counts[c])
    excluded = []
    if result.n_pruned:
        excluded.append(f"{result.n_pruned} pruned (censored)")
    if result.n_errored:
        excluded.append(f"{result.n_errored} errored")
    tail_excl = f"; {' and '.join(excluded)}, not triaged" if excluded else ""
    trend = result.findings.trend
    if not trend.testable:
        tail = "No batch-size trend testable."
    elif trend.p_increasing < 0.05:
        tail = f"Smaller batches are more robust (trend {p_eq(trend.p_increasing)})."
    else:
        tail = (
            f"No evidence that smaller batches are more robust (trend {p_eq(trend.p_increasing)})."
        )
    head = f"{k} of {n} trials failed ({k / n:.0%}){tail_excl}"
    return f"{head}: {parts}. {tail}" if k else f"{head}. {tail}"
