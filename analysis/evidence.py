"""Evidence a person can check: the grid counts behind each group of failures, in words.

A *group context* is one group of the other varied parameters laid out by one seed column:
its cells (panel = LR, seed, batch size; runs n, failures k) and the model's posterior for it.
Failures that share a cause and a factor (the same bad seed, the same failing batch sizes at
one LR, the same failing LR) share one evidence text, built here from that context.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from analysis._fmt import batches_phrase, fmt_pct, units_phrase
from analysis.causes import DECIDE
from analysis.model import GroupPosterior

__all__ = [
    "GroupContext",
    "REGION",
    "UNIT_WORDS",
    "WORKING_SHARE",
    "best_other",
    "build_contexts",
    "group_evidence",
    "seeds_phrase",
]

UNIT_WORDS = {"seed": "seed", "init_seed": "init seed", "data_seed": "data seed"}
REGION = 0.5  # a batch size is in its LR's failure region when the posterior says so at least
WORKING_SHARE = 0.25  # a batch size "worked" at an LR when at most this share of its runs failed


@dataclass
class GroupContext:
    """One group laid out by one seed column: its cells, panels and posterior."""

    unit: str
    word: str
    group_key: str
    cells: pd.DataFrame
    panels: dict  # panel id -> {"label", "lr_key", "n", "k"}
    post: GroupPosterior
    _memo: dict = field(default_factory=dict)  # lookups computed once (a group has many uses)

    def memo(self, key, compute):
        """``compute()`` once per key: a group's lookups have many uses."""
        if key not in self._memo:
            self._memo[key] = compute()
        return self._memo[key]

    def lr_name(self, panel: int) -> str:
        """'lr 0.001' (or the LR's own label)."""
        key = self.panels[panel]["lr_key"]
        return "lr n/a" if key == "n/a" else f"lr {key}"

    def panel_cells(self, panel: int) -> pd.DataFrame:
        """The cells of one LR."""
        return self.memo(("panel", panel), lambda: self.cells[self.cells["panel"] == panel])

    def region(self, panel: int) -> list[int]:
        """Batch sizes in the panel's failure region (posterior >= `REGION`), run there."""
        return self.memo(("region", panel), lambda: self._region(panel))

    def _region(self, panel: int) -> list[int]:
        li = self.post.panels.index(panel)
        ran = set(self.panel_cells(panel)["batch_size"])
        return [
            b
            for b, p in zip(self.post.batches, self.post.bad_from[li], strict=True)
            if p >= REGION and b in ran
        ]

    def row(self, unit_value) -> pd.DataFrame:
        """The cells of one seed."""
        return self.memo(("row", unit_value), lambda: self._rows()[unit_value])

    def _rows(self) -> dict:
        return self.memo("rows", lambda: dict(tuple(self.cells.groupby(self.unit, sort=False))))

    def seed_state(self, unit_value) -> np.ndarray:
        """P(bad everywhere), P(bad from a batch size up), P(healthy) of one seed."""
        return self.post.seed_state[self.post.units.index(unit_value)]

    def outside_regions(self) -> pd.DataFrame:
        """Cells whose batch size is not in its LR's failure region."""
        return self.memo("outside", self._outside)

    def _outside(self) -> pd.DataFrame:
        bad = pd.MultiIndex.from_tuples(
            [(p, b) for p in self.panels for b in self.region(p)], names=["panel", "batch_size"]
        )
        keys = pd.MultiIndex.from_frame(self.cells[["panel", "batch_size"]])
        return self.cells[~keys.isin(bad)]

    def good_seeds(self) -> list:
        """Seeds the model calls healthy that never failed outside the failure regions."""
        return list(self.memo("good", self._good))

    def _good(self) -> list:
        totals = self.outside_regions().groupby(self.unit, sort=False)["k"].sum()
        healthy = {
            u for u, s in zip(self.post.units, self.post.seed_state, strict=True) if s[2] >= DECIDE
        }
        return _sorted([u for u, k in totals.items() if k == 0 and u in healthy])

    def has_regions(self) -> bool:
        """Whether some LR of the group has batch sizes that fail for every seed."""
        return any(self.region(p) for p in self.panels)

    def panel_order(self) -> list[int]:
        """Panel ids by LR."""
        return list(self.post.panels)


def _sorted(values) -> list:
    return sorted(values, key=lambda v: (isinstance(v, str), v))


def build_contexts(cells: pd.DataFrame, posts: dict, panels: pd.DataFrame, unit: str) -> dict:
    """A `GroupContext` per group key, for one layout.

    Args:
        cells: `analysis.model.fit_layout`'s cell table.
        posts: Its posteriors by group key.
        panels: `analysis.grid.panel_table` of the analysable trials.
        unit: The seed column of the layout.

    Returns:
        Group key -> context.
    """
    info = panels[["panel_label", "lr_key", "n", "k"]].rename(columns={"panel_label": "label"})
    info = info.to_dict("index")
    out = {}
    for key, sub in cells.groupby("group_key", sort=False):
        mine = {int(p): info[p] for p in pd.unique(sub["panel"])}
        out[key] = GroupContext(unit, UNIT_WORDS.get(unit, unit), key, sub, mine, posts[key])
    return out


def _counts(frame: pd.DataFrame) -> str:
    return _nk(int(frame["n"].sum()), int(frame["k"].sum()))


def _nk(n: int, k: int) -> str:
    return f"{k} of {n} run{'s' if n != 1 else ''}"


def _row_parts(ctx: GroupContext, unit_value) -> list[str]:
    """Per LR: where one seed failed and where it succeeded."""
    parts = []
    si = ctx.post.units.index(unit_value)
    batches = np.asarray(ctx.post.batches)
    for li, panel in enumerate(ctx.panel_order()):
        n, k = ctx.post.n[si, li], ctx.post.k[si, li]
        if not n.any():
            continue
        failed, fine = batches[k > 0].tolist(), batches[k < n].tolist()
        text = ctx.lr_name(panel)
        if failed:
            text += f" failed at {batches_phrase(failed)}"
        if fine:
            text += (" and" if failed else "") + f" succeeded at {batches_phrase(fine)}"
        parts.append(text)
    return parts


def _where(ctx: GroupContext) -> str:
    return f" ({ctx.group_key})" if ctx.group_key else ""


def _probs(lo: float, hi: float) -> str:
    return f"{lo:.2f}" if round(lo, 2) == round(hi, 2) else f"{lo:.2f}-{hi:.2f}"


def _state_sentence(ctx: GroupContext, unit_value) -> str:
    bad, frag, ok = ctx.seed_state(unit_value)
    return (
        f"Model: {ctx.word} {unit_value} is bad everywhere with probability {bad:.2f}, bad from "
        f"some batch size up {frag:.2f}, healthy {ok:.2f}."
    )


def _region_mask(ctx: GroupContext) -> np.ndarray:
    """(LRs, batches): cells in their LR's failure region."""

    def compute():
        mask = np.zeros(ctx.post.n.shape[1:], bool)
        for li, panel in enumerate(ctx.panel_order()):
            mask[li] = np.isin(ctx.post.batches, ctx.region(panel))
        return mask

    return ctx.memo("region_mask", compute)


def _others_sentence(ctx: GroupContext, unit_value) -> str | None:
    """The other seeds against this one, at its cells outside every failure region."""
    si = ctx.post.units.index(unit_value)
    n, k = ctx.post.n, ctx.post.k
    cells = (n[si] > 0) & ~_region_mask(ctx)
    if not cells.any():
        return None
    mine_n, mine_k = int(n[si][cells].sum()), int(k[si][cells].sum())
    all_n, all_k = int(n[:, cells].sum()), int(k[:, cells].sum())
    if all_n == mine_n:
        return f"No other {ctx.word} was run where {ctx.word} {unit_value} ran."
    where_text = (
        f"outside batch sizes that fail for every {ctx.word}"
        if ctx.has_regions()
        else "at the same LRs and batch sizes"
    )
    return (
        f"{where_text[0].upper()}{where_text[1:]}: {ctx.word} {unit_value} failed in "
        f"{_nk(mine_n, mine_k)}, the other {ctx.word}s in {_nk(all_n - mine_n, all_k - mine_k)}."
    )


def _init_evidence(ctx: GroupContext, unit_value, probs) -> list[str]:
    si = ctx.post.units.index(unit_value)
    total = _nk(int(ctx.post.n[si].sum()), int(ctx.post.k[si].sum()))
    out = [
        f"{ctx.word.capitalize()} {unit_value}{_where(ctx)} failed in {total}: "
        + "; ".join(_row_parts(ctx, unit_value))
        + "."
    ]
    other = _others_sentence(ctx, unit_value)
    if other:
        out.append(other)
    out.append(_state_sentence(ctx, unit_value))
    return out


def _both_evidence(ctx: GroupContext, unit_value, probs) -> list[str]:
    out = _init_evidence(ctx, unit_value, probs)[:-1]
    ran = ctx.post.n[ctx.post.units.index(unit_value)].any(axis=1)
    regions = [
        f"{batches_phrase(ctx.region(p))} at {ctx.lr_name(p)}"
        for p, here in zip(ctx.panel_order(), ran, strict=True)
        if here and ctx.region(p)
    ]
    if regions:
        out.append(f"Batch sizes that fail for every {ctx.word}: " + "; ".join(regions) + ".")
    out.append(_state_sentence(ctx, unit_value))
    return out


def _panel_region_sentence(ctx: GroupContext, panel: int) -> str:
    cells = ctx.panel_cells(panel)
    region = ctx.region(panel)
    name = ctx.lr_name(panel)
    if not region:
        return f"at {name} no batch size fails for every {ctx.word} ({_counts(cells)} failed)"
    inside = cells[cells["batch_size"].isin(region)]
    below = cells[~cells["batch_size"].isin(region)]
    seeds = inside[ctx.unit].nunique()
    text = (
        f"at {name} batch {batches_phrase(region)} failed in {_counts(inside)} across {seeds} "
        f"{ctx.word}{'s' if seeds != 1 else ''}"
    )
    if not below.empty:
        smaller = batches_phrase(below["batch_size"].unique())
        text += f", the other batch sizes ({smaller}) in {_counts(below)}"
    return text


def _batch_evidence(ctx: GroupContext, panel: int, probs) -> list[str]:
    first = _panel_region_sentence(ctx, panel)
    out = [f"{first[0].upper()}{first[1:]}{_where(ctx)}."]
    others = [_panel_region_sentence(ctx, p) for p in ctx.panel_order() if p != panel]
    if others:
        out.append(
            "The group's other LRs (a limit shared across LRs is pooled evidence): "
            + "; ".join(others)
            + "."
        )
    return out


def best_other(ctx: GroupContext, panel: int) -> int | None:
    """The group's other LR (panel) with the lowest failure rate, or None."""
    rates = [
        (info["k"] / info["n"], -info["n"], p)
        for p, info in ctx.panels.items()
        if p != panel and info["n"]
    ]
    return min(rates)[2] if rates else None


def _lr_evidence(ctx: GroupContext, panel: int, probs) -> list[str]:
    cells = ctx.panel_cells(panel)
    out = [
        f"At {ctx.lr_name(panel)}{_where(ctx)}, {_counts(cells)} failed, at every batch size "
        f"({batches_phrase(cells['batch_size'].unique())})."
    ]
    other = best_other(ctx, panel)
    if other is not None:
        info = ctx.panels[other]
        out.append(
            f"At {ctx.lr_name(other)} in the same group, {int(info['n'] - info['k'])} of "
            f"{int(info['n'])} runs succeeded."
        )
    return out


def _inconclusive_evidence(ctx: GroupContext, panel: int, reason: str, guess, probs) -> list[str]:
    cells = ctx.panel_cells(panel)
    if reason == "shared":
        return [
            f"{_counts(cells)} at {ctx.lr_name(panel)}{_where(ctx)} failed, at every batch size, "
            "and the sweep tried no other LR here that works: the LR (or anything every run "
            "shares) is the suspect, but nothing in the grid can show it."
        ]
    if reason == "chance":
        outside = ctx.outside_regions()
        return [
            f"No {ctx.word}, batch size or LR fails more than the rest at "
            f"{ctx.lr_name(panel)}{_where(ctx)}: the likeliest explanation is chance.",
            f"Failures outside any failing region of the group: {_counts(outside)} "
            f"({fmt_pct(outside['k'].sum() / max(outside['n'].sum(), 1))}).",
        ]
    return [
        f"The strongest candidate is {guess}, at probability {_probs(*probs)}, below "
        f"{DECIDE:.2f}: too few runs at {ctx.lr_name(panel)}{_where(ctx)} to be sure "
        f"({_counts(cells)} failed there).",
    ]


def group_evidence(ctx: GroupContext, kind: tuple, probs: tuple[float, float]) -> list[str]:
    """Sentences behind one group of failures.

    Args:
        ctx: The group context of the layout the decision was made in.
        kind: ``("init" | "both", seed)``, ``("batch" | "lr", panel)`` or
            ``("inconclusive", panel, reason, best_guess)``.
        probs: Lowest and highest confidence among the group's failures.

    Returns:
        Sentences: the counts that decided it, then the model's probabilities.
    """
    cause = kind[0]
    if cause == "init":
        out = _init_evidence(ctx, kind[1], probs)
    elif cause == "both":
        out = _both_evidence(ctx, kind[1], probs)
    elif cause == "batch":
        out = _batch_evidence(ctx, kind[1], probs)
    elif cause == "lr":
        out = _lr_evidence(ctx, kind[1], probs)
    else:
        return _inconclusive_evidence(ctx, kind[1], kind[2], kind[3], probs)
    out.append(f"Probability that the cause is {cause}: {_probs(*probs)} per failure.")
    return out


def seeds_phrase(ctx: GroupContext, values) -> str:
    """'seeds 1-6 and 8' in the context's words."""
    return units_phrase(ctx.word, values) if values else f"no {ctx.word}"
