"""The triage table's "Solution" column made concrete: known-good seeds, batch sizes, LRs."""

from __future__ import annotations

import math
from dataclasses import dataclass

from analysis._fmt import batches_phrase, fmt_num, units_phrase, values_phrase
from analysis.evidence import GridContext

__all__ = ["Fix", "trial_fix", "scaled_lr", "lr_text", "describe_batches", "WORKING_SHARE"]

WORKING_SHARE = 0.25  # a batch size "works" at an LR when at most this share of its runs failed


@dataclass(frozen=True)
class Fix:
    """What to do about one failed trial.

    Attributes:
        text: The recommendation in one or two sentences.
        known_good: Seeds (of the decision's seed stream) with no failure in the trial's panel,
            else those that succeeded at its batch size.
        largest_working_batch: Largest batch size below the trial's at which at most 25% of the
            panel's runs failed (for ``both``: the largest at which this seed succeeded).
        lr_linear: The LR that batch size needs under linear scaling from the trial's batch and
            LR, as ``{"lr": x}`` or ``{"g_lr": x, "d_lr": y}``.
        lr_sqrt: The same under sqrt scaling.
        better_lr: For ``lr``: the same group's LR with the fewest failures.
        followup: For ``inconclusive``: the index of the follow-up sweep that decides it.
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


def _working_batch(ctx: GridContext, panel: int, below: int) -> int | None:
    ok = [
        b
        for b in ctx.panel_batches.get(panel, [])
        if b < below and ctx.col_share.get((panel, b), 1.0) <= WORKING_SHARE
    ]
    return max(ok) if ok else None


def _known_good(ctx: GridContext, t: dict) -> list:
    good = list(ctx.good_units.get(t["panel"], []))
    if good:
        return good
    return [u for u in ctx.col_ok.get((t["panel"], t["batch_size"]), []) if u != t["unit"]]


def _scaling(t: dict, target: int) -> tuple[dict | None, dict | None, str]:
    lin = scaled_lr(t["g_lr"], t["d_lr"], t["batch_size"], target, "linear")
    sq = scaled_lr(t["g_lr"], t["d_lr"], t["batch_size"], target, "sqrt")
    if lin is None:
        return None, None, ""
    return (
        lin,
        sq,
        (
            f"; from batch {t['batch_size']} at {lr_text(_own_lr(t))} that needs {lr_text(lin)} "
            f"under linear scaling or {lr_text(sq)} under sqrt scaling"
        ),
    )


def _own_lr(t: dict) -> dict:
    if math.isclose(t["g_lr"], t["d_lr"], rel_tol=1e-9):
        return {"lr": t["g_lr"]}
    return {"g_lr": t["g_lr"], "d_lr": t["d_lr"]}


def _init_fix(ctx: GridContext, t: dict, good: list, separated: bool) -> Fix:
    who = units_phrase(ctx.word, good) if good else f"no {ctx.word} so far"
    where = ctx.panel_info[t["panel"]]["panel_label"]
    text = f"Use a known-good {ctx.word}: {who} (no failure at {where})."
    if not separated:
        text += (
            " The seed set both the initialisation and the data order; the streams follow-up "
            "tells which of the two was unlucky."
        )
    return Fix(text=text, known_good=good)


def _batch_fix(ctx: GridContext, t: dict, good: list) -> Fix:
    b_ok = _working_batch(ctx, t["panel"], t["batch_size"])
    if b_ok is None:
        return Fix(
            text=f"No smaller batch size worked across {ctx.word}s at this LR: lower the learning "
            "rate, or add smaller batch sizes to the sweep.",
            known_good=good,
        )
    lin, sq, scale = _scaling(t, b_ok)
    text = (
        f"Reduce batch_size to {b_ok}, the largest at which at least {1 - WORKING_SHARE:.0%} of "
        f"the runs at this LR succeeded{scale}."
    )
    return Fix(text=text, known_good=good, largest_working_batch=b_ok, lr_linear=lin, lr_sqrt=sq)


def _good_up_to(ctx: GridContext, panel: int, batch: int) -> list:
    """Seeds that succeeded somewhere at or below ``batch`` and failed nowhere at or below it."""
    out = []
    for u in ctx.units.get(panel, []):
        fails = ctx.row_fail.get((panel, u), [])
        oks = ctx.row_ok.get((panel, u), [])
        if any(b <= batch for b in oks) and not any(b <= batch for b in fails):
            out.append(u)
    return out


def _both_fix(ctx: GridContext, t: dict, good: list) -> Fix:
    own = [b for b in ctx.row_ok.get((t["panel"], t["unit"]), []) if b < t["batch_size"]]
    here = [u for u in ctx.col_ok.get((t["panel"], t["batch_size"]), []) if u != t["unit"]]
    b_ok = max(own) if own else _working_batch(ctx, t["panel"], t["batch_size"])
    options = []
    lin = sq = None
    if b_ok is not None:
        lin, sq, scale = _scaling(t, b_ok)
        if own:
            who = f"with {ctx.word} {t['unit']}"
        else:
            good = _good_up_to(ctx, t["panel"], b_ok)
            who = f"with a {ctx.word} that worked there ({values_phrase(good) or 'none yet'})"
        options.append(f"use batch_size {b_ok} or smaller {who}{scale}")
    if here:
        options.append(
            f"keep batch {t['batch_size']} with a {ctx.word} that succeeded there: "
            + values_phrase(here)
        )
    text = " or ".join(options) if options else "use a smaller batch size or a better seed"
    return Fix(
        text=text[0].upper() + text[1:] + ".",
        known_good=here or good,
        largest_working_batch=b_ok,
        lr_linear=lin,
        lr_sqrt=sq,
    )


def _lr_fix(ctx: GridContext, t: dict, good: list) -> Fix:
    other = ctx.panel_info[t["BO_panel"]]
    ok = int(other["n"] - other["k"])
    text = (
        f"Use lr {other['lr_key']}: {ok} of {int(other['n'])} runs of the same group succeeded "
        "there "
        f"(at lr {ctx.panel_info[t['panel']]['lr_key']}, {t['P_k']} of {t['P_n']} others failed)."
    )
    return Fix(text=text, known_good=good, better_lr=str(other["lr_key"]))


def trial_fix(ctx: GridContext, t: dict, separated: bool) -> Fix:
    """The concrete fix for one failed trial, by its cause.

    Args:
        ctx: Lookups of the layout the decision was made in.
        t: The trial's row of the triage frame (cause, counts, ``g_lr``, ``d_lr``).
        separated: Whether init and data seeds were varied independently.

    Returns:
        The `Fix`; for ``inconclusive`` the text is completed once follow-ups are planned.
    """
    good = _known_good(ctx, t)
    cause = t["cause"]
    if cause == "init":
        return _init_fix(ctx, t, good, separated)
    if cause == "batch":
        return _batch_fix(ctx, t, good)
    if cause == "both":
        return _both_fix(ctx, t, good)
    if cause == "lr":
        return _lr_fix(ctx, t, good)
    return Fix(text="The grid cannot decide; run the follow-up sweep below.", known_good=good)


def describe_batches(batches) -> str:
    """'batch 1024' or 'batches 512 and 1024'."""
    batches = sorted(set(batches))
    return ("batch " if len(batches) == 1 else "batches ") + batches_phrase(batches)
