"""Evidence a person can check: the grid rows behind each decision, in words."""

from __future__ import annotations

import math
from collections import defaultdict
from dataclasses import dataclass, field

import pandas as pd

from analysis._fmt import batches_phrase, fmt_num, fmt_pct, p_eq, units_phrase
from analysis.causes import DECIDE, SEED_SURVIVAL

__all__ = ["GridContext", "build_context", "trial_evidence", "UNIT_WORDS"]

UNIT_WORDS = {"seed": "seed", "init_seed": "init seed", "data_seed": "data seed"}
_COLLAPSE_D_LOSS = (0.72, 0.75)
_COLLAPSE_G_ACC = 0.99


@dataclass
class GridContext:
    """Lookups over one layout of the grid (by ``seed``, ``init_seed`` or ``data_seed``)."""

    unit: str
    word: str
    panels: pd.DataFrame
    panel_info: dict = field(default_factory=dict)
    row_fail: dict = field(default_factory=dict)
    row_ok: dict = field(default_factory=dict)
    col_fail: dict = field(default_factory=dict)
    col_ok: dict = field(default_factory=dict)
    panel_batches: dict = field(default_factory=dict)
    col_share: dict = field(default_factory=dict)
    good_units: dict = field(default_factory=dict)
    units: dict = field(default_factory=dict)


def _lists(cells: pd.DataFrame, keys: list[str], value: str, mask) -> dict:
    picked = cells.loc[mask, keys + [value]]
    if picked.empty:
        return {}
    grouped = picked.groupby(keys, sort=False)[value].agg(list)
    return dict(zip(grouped.index, grouped.to_numpy(), strict=False))


def build_context(live: pd.DataFrame, unit: str, panels: pd.DataFrame) -> GridContext:
    """Index the grid's cells for fast sentence building.

    Args:
        live: Analysable trials with ``panel``.
        unit: Seed column laying out the grid.
        panels: `analysis.grid.panel_table` of ``live``.

    Returns:
        The lookups.
    """
    cells = (
        live.groupby(["panel", unit, "batch_size"], sort=True)["failed"]
        .agg(n="size", k="sum")
        .reset_index()
    )
    ctx = GridContext(
        unit=unit,
        word=UNIT_WORDS.get(unit, unit),
        panels=panels,
        panel_info=panels.to_dict("index"),
    )
    ctx.row_fail = _lists(cells, ["panel", unit], "batch_size", cells["k"] > 0)
    ctx.row_ok = _lists(cells, ["panel", unit], "batch_size", cells["k"] < cells["n"])
    ctx.col_fail = _lists(cells, ["panel", "batch_size"], unit, cells["k"] > 0)
    ctx.col_ok = _lists(cells, ["panel", "batch_size"], unit, cells["k"] < cells["n"])
    cols = cells.groupby(["panel", "batch_size"], sort=True)[["n", "k"]].sum()
    ctx.col_share = (cols["k"] / cols["n"]).to_dict()
    batches = defaultdict(list)
    for p, b in cols.index:
        batches[p].append(int(b))
    ctx.panel_batches = dict(batches)
    rows = cells.groupby(["panel", unit], sort=True)["k"].sum()
    good = rows[rows == 0].reset_index()
    ctx.good_units = good.groupby("panel")[unit].agg(list).to_dict()
    ctx.units = rows.reset_index().groupby("panel")[unit].agg(list).to_dict()
    return ctx


def _row_sentence(ctx: GridContext, t: dict) -> str:
    s, b, p = t["unit"], t["batch_size"], t["panel"]
    fails = [x for x in ctx.row_fail.get((p, s), []) if x != b]
    oks = [x for x in ctx.row_ok.get((p, s), []) if x != b]
    who = f"{ctx.word.capitalize()} {s}"
    if fails and oks:
        return (
            f"{who} also failed at {batches_phrase(fails)} and succeeded at {batches_phrase(oks)}."
        )
    if fails:
        return f"{who} also failed at {batches_phrase(fails)}: every other batch size it ran at."
    if oks:
        return f"{who} succeeded at {batches_phrase(oks)}."
    return f"{who} was run at no other batch size."


def _column_sentence(ctx: GridContext, t: dict) -> str:
    s, b, p = t["unit"], t["batch_size"], t["panel"]
    oks = [u for u in ctx.col_ok.get((p, b), []) if u != s]
    fails = [u for u in ctx.col_fail.get((p, b), []) if u != s]
    if not oks and not fails:
        return f"No other {ctx.word} was run at batch {b}."
    parts = []
    if oks:
        parts.append(f"{units_phrase(ctx.word, oks)} succeeded")
    if fails:
        parts.append(f"{units_phrase(ctx.word, fails)} also failed")
    share = f" ({t['C_k']} of {t['C_n']} other {ctx.word}s failed)" if oks and fails else ""
    return f"At batch {b}, " + " and ".join(parts) + share + "."


def _smaller_sentence(ctx: GridContext, t: dict) -> str:
    smaller = [x for x in ctx.panel_batches.get(t["panel"], []) if x < t["batch_size"]]
    if not smaller or t["Sm_n"] == 0:
        return f"No smaller batch size was run with the other {ctx.word}s."
    ok = t["Sm_n"] - t["Sm_k"]
    return (
        f"The same other {ctx.word}s succeeded in {ok} of {t['Sm_n']} runs at smaller batch sizes "
        f"({batches_phrase(smaller)})."
    )


def _lr_sentence(ctx: GridContext, t: dict) -> str | None:
    if t["BO_panel"] < 0:
        return None
    here = ctx.panel_info[t["panel"]]
    other = ctx.panel_info[t["BO_panel"]]
    return (
        f"At lr {here['lr_key']}, {t['P_k']} of {t['P_n']} other runs failed (at its smallest "
        f"batch size {fmt_pct(here['min_batch_rate'])}); at lr {other['lr_key']} in the same "
        "group, "
        f"{int(other['n'] - other['k'])} of {int(other['n'])} succeeded."
    )


def _test_sentence(ctx: GridContext, t: dict, cause: str) -> str:
    w = ctx.word
    first_fail = min(ctx.row_fail.get((t["panel"], t["unit"]), [t["batch_size"]]))
    legs = {
        "A": f"{w} {t['unit']} fails more than the other {w}s at its other batch sizes "
        f"({t['R_k']}/{t['R_n']} vs {t['O_k']}/{t['O_n']}, stratified by batch size, "
        f"{p_eq(t['p_seed_elsewhere'])})",
        "B": f"it fails more than the other {w}s at batch {t['batch_size']} "
        f"({t['cell_k']}/{t['cell_n']} vs {t['C_k']}/{t['C_n']}, {p_eq(t['p_seed_here'])})",
        "C": f"the other {w}s fail more at batch {t['batch_size']} than the same {w}s at smaller "
        f"batch sizes ({t['C_k']}/{t['C_n']} vs {t['Sm_k']}/{t['Sm_n']}, {p_eq(t['p_batch'])})",
        "D": f"{w} {t['unit']} failed from batch {first_fail} upwards ({t['Up_k']}/{t['Up_n']}) "
        f"and succeeded below it ({t['Dn_n'] - t['Dn_k']}/{t['Dn_n']}, {p_eq(t['p_seed_step'])})",
        "L": f"this LR fails more than the group's best other LR "
        f"({t['P_k']}/{t['P_n']} vs {t['BO_k']}/{t['BO_n']}, {p_eq(t['p_lr'])})",
    }
    both = ("A", "C") if t["both_kind"] == "seed_and_batch" else ("C", "D")
    use = {"init": ("A", "B"), "batch": ("C",), "both": both, "lr": ("L",)}[cause]
    text = "; ".join(legs[k] for k in use)
    if cause == "both" and t["both_kind"] == "fragile_seed":
        text += (
            f"; and {t['C_ok']} of {t['C_n']} other {w}s succeeded at batch {t['batch_size']} "
            f"(at least {SEED_SURVIVAL:.0%}), so the seed matters too"
        )
    score = t[f"score_{cause}"]
    return f"Fisher one-sided tests: {text}. Confidence = 1 - max p = {score:.2f}."


def _panel_failing(t: dict) -> bool:
    return t["P_rate"] >= 0.5 and t["min_batch_rate"] >= 0.5


def _inconclusive_sentence(ctx: GridContext, t: dict) -> str:
    if _panel_failing(t) and t["BO_panel"] < 0:
        return (
            f"{t['P_k']} of {t['P_n']} other runs at this LR failed too, at every batch size, and "
            "the sweep tried no other LR here: the LR (or something every run shares) is the "
            "suspect, but nothing in the grid can show it."
        )
    if t["confidence"] > 0:
        return (
            f"No cause reaches confidence {DECIDE:.2f}: the strongest is {t['best_guess']} at "
            f"{t['confidence']:.2f}, too few runs to be sure."
        )
    if t["R_k"] == 0 and t["C_k"] == 0:
        return (
            f"No factor in the grid explains this failure: its {ctx.word} succeeded at its other "
            f"batch sizes and the other {ctx.word}s succeeded at this one. It may be chance or "
            "an unlucky data order; a repeat decides."
        )
    if _panel_failing(t):
        return (
            f"Most runs at this LR failed ({t['P_k']} of {t['P_n']} others), but no other LR of "
            "the group clearly worked, so the grid cannot single out the LR."
        )
    return (
        f"Its {ctx.word} and its batch size failed elsewhere too, but not in a pattern that "
        f"singles out the {ctx.word}, the batch size or the LR."
    )


def _metrics_sentence(t: dict) -> str | None:
    parts = []
    mode = t.get("failure_mode")
    onset = t.get("onset_epoch")
    if mode and mode not in ("failed",):
        when = f" from epoch {int(onset)}" if _finite(onset) else ""
        parts.append(f"Verdict {mode}{when}")
    metrics = []
    d_loss, d_acc, g_acc = (
        t.get("final/loss/d"),
        t.get("final/d/accuracy"),
        t.get("final/g/accuracy"),
    )
    if _finite(d_loss):
        stuck = _COLLAPSE_D_LOSS[0] <= d_loss <= _COLLAPSE_D_LOSS[1]
        metrics.append(
            f"D loss {fmt_num(d_loss)}" + (" (in the 0.72-0.75 collapse band)" if stuck else "")
        )
    if _finite(d_acc):
        metrics.append(f"D accuracy {fmt_pct(d_acc)}")
    if _finite(g_acc):
        metrics.append(
            f"G accuracy {fmt_pct(g_acc)}"
            + (" (99%+: G fools D)" if g_acc >= _COLLAPSE_G_ACC else "")
        )
    if metrics:
        parts.append("final " + ", ".join(metrics))
    return "; ".join(parts) + "." if parts else None


def _finite(x) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x)


def trial_evidence(ctx: GridContext, t: dict, other: str | None = None) -> list[str]:
    """Sentences supporting (or failing to support) the decision on one failed trial.

    Args:
        ctx: Lookups of the layout the decision was made in.
        t: The trial's counts, p-values, scores and decision (a row of the triage frame).
        other: A sentence about the other seed stream, when init and data seeds were separated.

    Returns:
        Sentences: where it was compared, its row, its column, smaller batches, the LR, the
        test that decided, then its own metrics.
    """
    out = [f"Compared within {ctx.panel_info[t['panel']]['panel_label']}."]
    out += [_row_sentence(ctx, t), _column_sentence(ctx, t)]
    if t["cause"] in ("batch", "both") or t["best_guess"] in ("batch", "both"):
        out.append(_smaller_sentence(ctx, t))
    if t["cause"] == "lr" or t["score_lr"] > 0 or _panel_failing(t):
        lr = _lr_sentence(ctx, t)
        if lr:
            out.append(lr)
    if t["cause"] == "inconclusive":
        out.append(_inconclusive_sentence(ctx, t))
    else:
        out.append(_test_sentence(ctx, t, t["cause"]))
    if other:
        out.append(other)
    metrics = _metrics_sentence(t)
    if metrics:
        out.append(metrics)
    return out
