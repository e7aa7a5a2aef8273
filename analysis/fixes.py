"""The triage table's "Solution" column made concrete: known-good seeds, batch sizes, LRs."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from analysis._fmt import batches_phrase, fmt_num, values_phrase
from analysis.evidence import WORKING_SHARE, GroupContext, best_other, seeds_phrase

__all__ = ["Fix", "group_fix", "scaled_lr", "lr_text", "describe_batches", "working_batches"]


@dataclass(frozen=True)
class Fix:
    """What to do about a group of failures.

    Attributes:
        text: The recommendation in one or two sentences.
        known_good: Seeds (of the decision's seed stream) that never failed in the group.
        largest_working_batch: For ``batch``: the largest batch size below the failing ones at
            which at most 25% of the LR's runs failed; for ``both``: the largest at which the
            seed succeeded.
        lr_linear: The LR that batch size needs under linear scaling from the smallest failing
            batch size and its LR, as ``{"lr": x}`` or ``{"g_lr": x, "d_lr": y}``.
        lr_sqrt: The same under sqrt scaling.
        better_lr: For ``lr``: the same group's LR with the fewest failures.
        followup: The follow-up sweep that decides the group, if any.
    """

    text: str
    known_good: list
    largest_working_batch: int | None = None
    lr_linear: dict | None = None
    lr_sqrt: dict | None = None
    better_lr: str | None = None
    followup: int | None = None


def scaled_lr(g_lr: float, d_lr: float, from_batch: int, to_batch: int, rule: str) -> dict | None:
    """Learning rates rescaled from one batch size to another.

    Args:
        g_lr: Generator LR at ``from_batch``.
        d_lr: Discriminator LR at ``from_batch``.
        from_batch: The batch size the LRs were used with.
        to_batch: The batch size to scale to.
        rule: ``linear`` (LR proportional to batch) or ``sqrt`` (to its square root).

    Returns:
        ``{"lr": x}`` when both are equal, else ``{"g_lr": x, "d_lr": y}``; None when unknown.
    """
    if not (math.isfinite(g_lr) and math.isfinite(d_lr)):
        return None
    ratio = to_batch / from_batch
    factor = ratio if rule == "linear" else math.sqrt(ratio)
    g, d = g_lr * factor, d_lr * factor
    return {"lr": g} if math.isclose(g, d, rel_tol=1e-9) else {"g_lr": g, "d_lr": d}


def lr_text(lr: dict | None) -> str:
    """'lr 0.00025' or 'g_lr 0.0001 and d_lr 0.0004'."""
    if not lr:
        return "n/a"
    return " and ".join(f"{k} {fmt_num(v)}" for k, v in lr.items())


def describe_batches(batches) -> str:
    """'batch 1024' or 'batches 512 and 1024'."""
    batches = sorted(set(batches))
    return ("batch " if len(batches) == 1 else "batches ") + batches_phrase(batches)


def working_batches(ctx: GroupContext, panel: int) -> list[int]:
    """Batch sizes at a panel outside its failure region where at most 25% of runs failed."""
    return list(ctx.memo(("working", panel), lambda: _working(ctx, panel)))


def _working(ctx: GroupContext, panel: int) -> list[int]:
    by_batch = ctx.panel_cells(panel).groupby("batch_size")[["n", "k"]].sum()
    region = set(ctx.region(panel))
    ok = by_batch["k"] <= WORKING_SHARE * by_batch["n"]
    return [int(b) for b in by_batch.index[ok.to_numpy()] if b not in region]


def _init_fix(ctx: GroupContext, separated: bool) -> Fix:
    good = ctx.good_seeds()
    text = f"Use a known-good {ctx.word}: {seeds_phrase(ctx, good)} (no failure in this group)."
    if not separated:
        text += (
            " The seed set both the initialisation and the data order; an init seed x data "
            "seed follow-up tells which of the two was unlucky."
        )
    return Fix(text=text, known_good=good)


def _batch_fix(ctx: GroupContext, panel: int, lrs: tuple[float, float]) -> Fix:
    region = ctx.region(panel)
    good = ctx.good_seeds()
    below = [b for b in working_batches(ctx, panel) if not region or b < min(region)]
    if not below:
        return Fix(
            text=f"No smaller batch size worked across {ctx.word}s at {ctx.lr_name(panel)}: "
            "lower the learning rate, or add smaller batch sizes to the sweep.",
            known_good=good,
        )
    b_ok = max(below)
    text = (
        f"Reduce batch_size to {b_ok} at {ctx.lr_name(panel)}, the largest at which at least "
        f"{1 - WORKING_SHARE:.0%} of the runs succeeded."
    )
    lin = sq = None
    if region:
        b_bad = min(region)
        lin = scaled_lr(lrs[0], lrs[1], b_bad, b_ok, "linear")
        sq = scaled_lr(lrs[0], lrs[1], b_bad, b_ok, "sqrt")
        if lin is not None:
            text += (
                f" If you scale the LR with the batch size: from batch {b_bad} that is "
                f"{lr_text(lin)} under linear scaling or {lr_text(sq)} under sqrt scaling."
            )
    return Fix(text=text, known_good=good, largest_working_batch=b_ok, lr_linear=lin, lr_sqrt=sq)


def _both_fix(ctx: GroupContext, unit_value) -> Fix:
    si = ctx.post.units.index(unit_value)
    n, k = ctx.post.n[si].sum(axis=0), ctx.post.k[si].sum(axis=0)  # per batch, every LR
    batches = np.asarray(ctx.post.batches)
    failed = batches[k > 0]
    first_fail = int(failed.min()) if len(failed) else None
    own = [int(b) for b in batches[(n > 0) & (k == 0)] if first_fail is None or b < first_fail]
    good = ctx.good_seeds()
    limits = [
        f"{describe_batches(working_batches(ctx, p))} at {ctx.lr_name(p)}"
        for p in ctx.panel_order()
        if ctx.region(p) and working_batches(ctx, p)
    ]
    options = []
    if own:
        options.append(f"with {ctx.word} {unit_value} use batch_size {own[-1]} or smaller")
    if good:
        where = f" ({'; '.join(limits)})" if limits else ""
        options.append(
            f"use a {ctx.word} that never failed here ({values_phrase(good)}) with a batch "
            f"size that works{where}"
        )
    text = " or ".join(options) if options else "use a smaller batch size and another seed"
    return Fix(
        text=text[0].upper() + text[1:] + ".",
        known_good=good,
        largest_working_batch=own[-1] if own else None,
    )


def _lr_fix(ctx: GroupContext, panel: int, best_other: int | None) -> Fix:
    good = ctx.good_seeds()
    if best_other is None:
        return Fix(text="Try lower learning rates.", known_good=good)
    info = ctx.panels[best_other]
    ok = int(info["n"] - info["k"])
    return Fix(
        text=f"Use {ctx.lr_name(best_other)}: {ok} of {int(info['n'])} runs of the same group "
        "succeeded there.",
        known_good=good,
        better_lr=str(info["lr_key"]),
    )


def group_fix(ctx: GroupContext, kind: tuple, separated: bool, lrs=(math.nan, math.nan)) -> Fix:
    """The concrete fix for one group of failures, by its cause.

    Args:
        ctx: The group context the decision was made in.
        kind: As for `analysis.evidence.group_evidence`.
        separated: Whether init and data seeds were varied independently.
        lrs: ``(g_lr, d_lr)`` of the group's panel, for LR scaling advice.

    Returns:
        The `Fix`; for inconclusive groups the text is completed once follow-ups are planned.
    """
    cause = kind[0]
    if cause == "init":
        return _init_fix(ctx, separated)
    if cause == "batch":
        return _batch_fix(ctx, kind[1], lrs)
    if cause == "both":
        return _both_fix(ctx, kind[1])
    if cause == "lr":
        return _lr_fix(ctx, kind[1], best_other(ctx, kind[1]))
    reason = kind[2]
    good = ctx.good_seeds()
    if reason == "chance":
        return Fix(
            text="Nothing in the grid to fix: most likely chance. A rerun with another data "
            "seed would show whether this run's data order was unlucky.",
            known_good=good,
        )
    if reason == "shared":
        return Fix(text="Try lower learning rates (see the follow-up).", known_good=good)
    return Fix(text="The grid cannot decide yet (see the follow-up).", known_good=good)
