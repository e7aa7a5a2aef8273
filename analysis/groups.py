"""Failures that share a cause, its evidence and its fix, shown once; and what worked.

A bad seed's failures form one group (all of them share the seed's evidence and the advice to
use another seed), so do a failing LR's, and the failures in one LR's failing batch sizes.
Inconclusive failures are grouped by LR and by why they are inconclusive.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace

import numpy as np
import pandas as pd

from analysis._fmt import batches_phrase, values_phrase
from analysis.evidence import GroupContext, group_evidence
from analysis.fixes import Fix, group_fix, working_batches

_JSON_SEEDS = 32  # known-good seeds a group lists in triage.json (all of them: "known_good")

__all__ = [
    "FailureGroup",
    "KnownGood",
    "group_failures",
    "known_good",
    "known_good_actions",
    "with_followup",
]


@dataclass(frozen=True)
class FailureGroup:
    """Failures sharing a cause, evidence and fix.

    Attributes:
        index: 1-based number, as the failures and the report refer to it.
        cause: ``init``, ``batch``, ``both``, ``lr`` or ``inconclusive``.
        reason: For inconclusive groups: ``chance``, ``shared`` (everything at the only LR
            failed) or ``weak`` (a candidate cause without enough runs); else None.
        best_guess: The strongest candidate cause (for ``weak`` groups), else the cause.
        title: What the failures share, e.g. ``seed 7`` or ``lr 0.001, batch 512 and 1024``.
        group: The other varied parameters (``''`` when none).
        seed_stream: ``seed``, ``init`` or ``data`` for seed causes, else None.
        trials: The failed trial ids.
        confidence: Lowest and highest confidence among them.
        evidence: The sentences behind the decision.
        fix: What to do.
        followup: The follow-up sweep that decides it, if any.
    """

    index: int
    cause: str
    reason: str | None
    best_guess: str | None
    title: str
    group: str
    seed_stream: str | None
    trials: list
    confidence: tuple
    evidence: list
    fix: Fix
    followup: int | None = None

    def to_dict(self) -> dict:
        """JSON-ready dict."""
        return {
            "index": self.index,
            "cause": self.cause,
            "reason": self.reason,
            "best_guess": self.best_guess,
            "title": self.title,
            "group": self.group,
            "seed_stream": self.seed_stream,
            "failures": len(self.trials),
            "confidence": {"min": self.confidence[0], "max": self.confidence[1]},
            "evidence": self.evidence,
            "fix": {**self.fix.__dict__, "known_good": self.fix.known_good[:_JSON_SEEDS]},
            "followup": self.followup,
            "trials": self.trials,
        }


@dataclass(frozen=True)
class KnownGood:
    """What worked in one group at one LR.

    Attributes:
        group: The other varied parameters (``''`` when none).
        lr: The LR level.
        worked: Batch sizes outside the failure region where at most 25% of the runs failed.
        worked_runs: Runs and failures at those batch sizes.
        failing: Batch sizes in the LR's failure region.
        seeds: Seeds that never failed in the group.
        unit: The seed column (``seed``, ``init_seed``).
    """

    group: str
    lr: str
    worked: list
    worked_runs: tuple
    failing: list
    seeds: list
    unit: str


def _keys(frame: pd.DataFrame) -> pd.Series:
    cause = frame["cause"]
    factor = np.where(
        cause.isin(["init", "both"]),
        "u:" + frame["unit"].astype(str),
        "p:" + frame["panel"].astype(str),
    )
    extra = np.where(
        cause == "inconclusive",
        "|"
        + frame["reason"].astype(str)
        + np.where(frame["reason"] == "weak", "|" + frame["best_guess"].astype(str), ""),
        "",
    )
    return cause + "|" + frame["group_key"] + "|" + frame["ctx_unit"] + "|" + factor + extra


def _kind(first: dict) -> tuple:
    cause = first["cause"]
    if cause in ("init", "both"):
        return (cause, first["unit"])
    if cause in ("batch", "lr"):
        return (cause, int(first["panel"]))
    return (cause, int(first["panel"]), first["reason"], first["best_guess"])


def _title(ctx: GroupContext, kind: tuple, sub: pd.DataFrame) -> str:
    cause = kind[0]
    if cause in ("init", "both"):
        return f"{ctx.word} {kind[1]}"
    name = ctx.lr_name(kind[1])
    if cause == "batch":
        return f"{name}, batch {batches_phrase(sub['batch_size'].unique())}"
    if cause == "lr":
        return name
    what = {"chance": "chance", "shared": "the only LR failed", "weak": f"maybe {kind[3]}"}
    return f"{name} ({what[kind[2]]})"


def group_failures(
    frame: pd.DataFrame, contexts: dict, separated: bool
) -> tuple[list[FailureGroup], pd.Series]:
    """Group the failed trials and write each group's evidence and fix once.

    Args:
        frame: One row per failed trial: ``cause``, ``reason``, ``best_guess``,
            ``confidence``, ``group_key``, ``panel``, ``ctx_unit``, ``unit``, ``trial_id``,
            ``batch_size``, ``g_lr``, ``d_lr``, ``seed_stream``.
        contexts: ``{unit: {group key: GroupContext}}``.
        separated: Whether init and data seeds were varied independently.

    Returns:
        The groups (decided causes first, most failures first) and each failure's group index.
    """
    keys = _keys(frame)
    sizes = keys.value_counts()
    order = sorted(sizes.index, key=lambda k: (k.startswith("inconclusive"), -sizes[k], k))
    index_of = {k: i + 1 for i, k in enumerate(order)}
    groups = []
    for key, sub in frame.groupby(keys, sort=False):
        first = sub.iloc[0].to_dict()
        ctx = contexts[first["ctx_unit"]][first["group_key"]]
        kind = _kind(first)
        conf = (round(float(sub["confidence"].min()), 4), round(float(sub["confidence"].max()), 4))
        groups.append(
            FailureGroup(
                index=index_of[key],
                cause=first["cause"],
                reason=first["reason"],
                best_guess=first["best_guess"],
                title=_title(ctx, kind, sub),
                group=first["group_key"],
                seed_stream=first["seed_stream"],
                trials=[str(t) for t in sub["trial_id"]],
                confidence=conf,
                evidence=group_evidence(ctx, kind, conf),
                fix=group_fix(ctx, kind, separated, (first["g_lr"], first["d_lr"])),
            )
        )
    groups.sort(key=lambda g: g.index)
    return groups, keys.map(index_of)


def with_followup(group: FailureGroup, index: int, text: str) -> FailureGroup:
    """The group pointing to the follow-up that decides it."""
    fix = replace(group.fix, followup=index, text=group.fix.text + " " + text)
    return replace(group, fix=fix, followup=index)


def _natural(key: str) -> list:
    """'n_critic=2' before 'n_critic=10'."""
    return [(0, int(t), "") if t.isdigit() else (1, 0, t) for t in re.split(r"(\d+)", key)]


def known_good(contexts: dict) -> list[KnownGood]:
    """Per group and LR: the batch sizes that worked, those that fail, the seeds that never did.

    Args:
        contexts: ``{group key: GroupContext}`` of one layout.

    Returns:
        One `KnownGood` per group and LR, groups in key order, LRs ascending.
    """
    out = []
    for key in sorted(contexts, key=_natural):
        ctx = contexts[key]
        seeds = ctx.good_seeds()
        for panel in ctx.panel_order():
            cells = ctx.panel_cells(panel)
            worked = working_batches(ctx, panel)
            runs = cells[cells["batch_size"].isin(worked)]
            out.append(
                KnownGood(
                    group=key,
                    lr=str(ctx.panels[panel]["lr_key"]),
                    worked=worked,
                    worked_runs=(int(runs["n"].sum()), int(runs["k"].sum())),
                    failing=ctx.region(panel),
                    seeds=seeds,
                    unit=ctx.unit,
                )
            )
    return out


def known_good_actions(rows: list[KnownGood], word: str) -> list[str]:
    """One recommended action per group: which batch sizes worked at which LR, good seeds."""
    by_group: dict[str, list[KnownGood]] = {}
    for r in rows:
        by_group.setdefault(r.group, []).append(r)
    out = []
    for group, items in by_group.items():
        parts = []
        for r in items:
            lr = "lr n/a" if r.lr == "n/a" else f"lr {r.lr}"
            if r.worked:
                n, k = r.worked_runs
                parts.append(f"{lr} with batch {batches_phrase(r.worked)} ({k} of {n} runs failed)")
        if not parts:
            continue
        where = f" ({group})" if group else ""
        seeds = items[0].seeds
        tail = (
            f"; {word}s that never failed: {values_phrase(seeds)}"
            if seeds
            else f"; every {word} failed somewhere"
        )
        out.append(f"Known-good settings{where}: " + "; ".join(parts) + tail + ".")
    return out
