"""Sizing a follow-up: the fewest new runs after which, if its hypothesis is true, the triage of
old plus new results reaches the target confidence.

The check refits the grid model (`analysis.model.fit_group`) to the question's group with the
new runs added, their outcomes pessimistic for the hypothesis: in each cell the 20th
percentile of a mechanism's failures and the 80th percentile of chance failures, at rates
themselves taken from the pessimistic side of what the grid shows (`analysis.followup`). A follow-up
sized so reaches its target in at least about 4 of 5 outcomes when the hypothesis is true;
`bench/triage_calibration.py` measures how often it does.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from analysis.evidence import GroupContext
from analysis.model import CATEGORIES, Priors, fit_group

__all__ = ["CANDIDATES", "Question", "size"]

CANDIDATES = (2, 3, 4, 6, 8, 12, 16, 24, 32)  # new seeds (or data seeds, or seeds reused)
_PESSIMISM = 0.2  # quantile of a mechanism's failures (chance failures: 1 - this)
_SIZING_SEEDS = 20  # other seeds kept when a group is refitted to size a follow-up
_CHECKED = 4  # questions of one file refitted to size it (those furthest from a decision)
_CLOSE = 0.1  # an unreachable target: the fewest runs within this of the best reachable
_CATEGORY_OF = {"init": ("init",), "batch": ("batch",), "both": ("fragile", "both"), "lr": ("lr",)}


@dataclass(frozen=True)
class Question:
    """One open question of a triage and the new runs that answer it.

    ``kind`` is the design: ``seeds`` (new seeds at some batch sizes and LRs), ``data`` (some
    seeds' initialisation with new data seeds) or ``lrs`` (some seeds at new, lower LRs).
    """

    group: int  # the failure group it decides
    purpose: str  # decide | streams | lr
    kind: str  # seeds | data | lrs
    hypothesis: str  # init | both | batch | lr (streams: init, meaning the init stream)
    group_key: str
    ctx: GroupContext  # the group, laid out by the seed column the question is about
    cells: tuple  # (seed, panel, batch) of its failed trials at `panels`
    panels: tuple  # existing panels (LRs) the new runs go to
    batches: tuple
    trials: tuple
    q: float  # failure rate of a hypothesised bad region
    p0: float  # chance failure rate
    bad_batches: tuple = ()  # the new runs fail at these batch sizes (batch, init, both)
    bad_panels: tuple = ()  # the new runs fail at these panels (lr)
    units: tuple = ()  # seeds the new runs use (data: the init seeds; lrs: seeds reused)
    bad_units: tuple = ()  # data: the seeds the hypothesis calls bad
    new_lrs: tuple = ()  # lrs: new (g_lr, d_lr) levels at the reference batch
    confidence: float = 0.0  # the highest its failures reach now


def _failures(count: int, rate: float, mechanism: bool) -> int:
    """Pessimistic failures among ``count`` runs at a failure rate."""
    from scipy.stats import binom

    quantile = _PESSIMISM if mechanism else 1 - _PESSIMISM
    return int(binom.ppf(quantile, count, rate)) if count else 0


def _spread(count: int, rate: float, mechanism: bool) -> np.ndarray:
    """Which of ``count`` runs fail: a mechanism's failures on the first runs, chance's spread
    evenly, so that they meet the mechanism's on the same new seed about as often as random
    outcomes would (which is what casts doubt on a seed)."""
    out = np.zeros(count)
    fails = _failures(count, rate, mechanism)
    if mechanism:
        out[:fails] = 1.0
    elif fails:
        out[np.linspace(count - 1, 0, fails).round().astype(int)] = 1.0
    return out


def _restricted(q: Question) -> tuple[np.ndarray, np.ndarray, list, list]:
    """The question's group counts: every LR (a seed's runs at another LR can be what keeps
    the question open), its own seeds and at most `_SIZING_SEEDS` others (fewer replications
    only widen the posterior, and a group of hundreds of seeds stays quick to refit)."""
    post = q.ctx.post
    own = {c[0] for c in q.cells} | set(q.units)
    others = [i for i, u in enumerate(post.units) if u not in own][:_SIZING_SEEDS]
    si = sorted({post.units.index(u) for u in own if u in post.units} | set(others))
    n, k = post.n[si], post.k[si]
    return n.copy(), k.copy(), [post.units[i] for i in si], list(post.panels)


def _grow_seeds(q: Question, n: np.ndarray, k: np.ndarray, units, panels, count: int):
    bi = [q.ctx.post.batches.index(b) for b in q.batches]
    add_n = np.zeros((count, n.shape[1], n.shape[2]))
    add_k = np.zeros_like(add_n)
    for panel in q.panels:
        j = panels.index(panel)
        for b, batch in zip(bi, q.batches, strict=True):
            mech = batch in q.bad_batches or panel in q.bad_panels
            add_n[:, j, b] = 1.0
            add_k[:, j, b] = _spread(count, q.q if mech else q.p0, mech)
    units = units + [f"__new{i}" for i in range(count)]
    return np.concatenate([n, add_n]), np.concatenate([k, add_k]), units, panels


def _grow_lrs(q: Question, n: np.ndarray, k: np.ndarray, units, panels, count: int):
    bi = [q.ctx.post.batches.index(b) for b in q.batches]
    rows = [units.index(u) for u in q.units[:count]]
    add_n = np.zeros((n.shape[0], len(q.new_lrs), n.shape[2]))
    add_k = np.zeros_like(add_n)
    for j in range(len(q.new_lrs)):
        for b in bi:
            add_n[rows, j, b] = 1.0
            add_k[rows, j, b] = _spread(len(rows), q.p0, False)
    panels = panels + [f"__lr{j}" for j in range(len(q.new_lrs))]
    return np.concatenate([n, add_n], 1), np.concatenate([k, add_k], 1), units, panels


def _unit_outcomes(q: Question, count: int) -> dict:
    """Per seed and batch: which of ``count`` new data seeds fail with it."""
    return {
        (u, b): _spread(
            count, *((q.q, True) if u in q.bad_units and b in q.bad_batches else (q.p0, False))
        )
        for u in q.units
        for b in q.batches
    }


def _grow_data(q: Question, n: np.ndarray, k: np.ndarray, units, panels, count: int):
    """Each of the question's seeds gains ``count`` runs (new data seeds) in its own row."""
    units = list(units)
    new = [u for u in q.units if u not in units]
    shape = (len(new), n.shape[1], n.shape[2])
    n, k = np.concatenate([n, np.zeros(shape)]), np.concatenate([k, np.zeros(shape)])
    units += new
    li = panels.index(q.panels[0])
    for (u, b), fails in _unit_outcomes(q, count).items():
        si, bi = units.index(u), q.ctx.post.batches.index(b)
        n[si, li, bi] += count
        k[si, li, bi] += fails.sum()
    return n, k, units, panels


def _data_layout(q: Question, count: int) -> tuple[np.ndarray, np.ndarray]:
    """The same runs laid out by data seed: each new data seed a row of runs with every seed."""
    n, k, _, panels = _restricted(q)
    outcomes = _unit_outcomes(q, count)
    add_n = np.zeros((count, n.shape[1], n.shape[2]))
    add_k = np.zeros_like(add_n)
    li = panels.index(q.panels[0])
    for b in q.batches:
        bi = q.ctx.post.batches.index(b)
        add_n[:, li, bi] = len(q.units)
        add_k[:, li, bi] = sum(outcomes[(u, b)] for u in q.units)
    return np.concatenate([n, add_n]), np.concatenate([k, add_k])


def _lowest(fit: dict, q: Question, units: list, panels: list, causes: tuple) -> float:
    """The lowest probability, over the question's failed cells, of the given causes."""
    batches = q.ctx.post.batches
    cats = [CATEGORIES.index(c) for cause in causes for c in _CATEGORY_OF[cause]]
    lowest = 1.0
    for unit, panel, batch in q.cells:
        cell = fit["cells"][units.index(unit), panels.index(panel), batches.index(batch)]
        lowest = min(lowest, float(cell[cats].sum()))
    return lowest


_GROW = {"seeds": _grow_seeds, "lrs": _grow_lrs, "data": _grow_data}


def _score(q: Question, count: int, priors: Priors) -> float:
    n, k, units, panels = _restricted(q)
    n, k, units, panels = _GROW[q.kind](q, n, k, units, panels, count)
    start = q.ctx.post.mode  # the group's own thresholds: the refit's search starts there
    fit = fit_group(n, k, priors, start)
    causes = ("init", "both") if q.purpose == "streams" else (q.hypothesis,)
    score = _lowest(fit, q, units, panels, causes)
    if q.kind == "data":  # the new runs separate the streams: the layout by seed must win
        by_data = fit_group(*_data_layout(q, count), priors, start)
        gap = by_data["log_evidence"] - fit["log_evidence"]
        score *= 1.0 / (1.0 + math.exp(min(gap, 700.0)))
    return score


def _size_one(q: Question, target: float, priors: Priors, seen: dict) -> int:
    """The fewest of `CANDIDATES` with which the question reaches ``target`` (galloping, then
    bisection: more runs never lower what pessimistic outcomes give); when none does, the
    fewest within `_CLOSE` of what the largest reaches (more would buy little)."""
    cap = len(CANDIDATES)
    if q.kind == "lrs":  # an LR question reuses the sweep's own seeds
        cap = max(1, sum(c <= len(q.units) for c in CANDIDATES))

    def reach(i: int) -> float:
        if CANDIDATES[i] not in seen:
            seen[CANDIDATES[i]] = _score(q, CANDIDATES[i], priors)
        return seen[CANDIDATES[i]]

    fail, i, step = -1, 0, 1
    while reach(i) < target:
        if i == cap - 1:
            target = reach(i) - _CLOSE
            break
        fail, i, step = i, min(i + step, cap - 1), step * 2
    fail = max((j for j in range(i) if CANDIDATES[j] in seen and reach(j) < target), default=-1)
    while i - fail > 1:  # reach(i) passes, reach(fail) does not
        mid = (i + fail) // 2
        if reach(mid) >= target:
            i = mid
        else:
            fail = mid
    return CANDIDATES[i]


def size(qs: list[Question], target: float, priors: Priors) -> tuple[int, dict]:
    """How many new runs per cell a file of questions needs, and what each question reaches.

    The count is the largest any question needs to reach ``target``; questions that cannot
    reach it do not drive it (unless none can). Only the `_CHECKED` questions furthest from a
    decision are refitted; the others, closer already, are credited with the lowest of those.

    Returns:
        ``(count, reached)``: ``reached`` maps each question's group to the confidence its
        failures reach with pessimistic outcomes.
    """
    hardest = sorted(qs, key=lambda q: q.confidence)[:_CHECKED]
    seen: dict[int, dict] = {q.group: {} for q in hardest}
    needs = {q.group: _size_one(q, target, priors, seen[q.group]) for q in hardest}
    reachable = [needs[q.group] for q in hardest if seen[q.group][needs[q.group]] >= target]
    count = max(reachable) if reachable else max(needs.values())
    reached = {}
    for q in hardest:
        if count not in seen[q.group]:
            seen[q.group][count] = _score(q, count, priors)
        reached[q.group] = seen[q.group][count]
    floor = min(reached.values())
    return count, {q.group: reached.get(q.group, floor) for q in qs}
