"""Follow-up sweeps: only new runs, sized so that they decide what this sweep could not.

Each open question of the triage becomes new runs of one of three designs:

- ``decide`` a batch or LR question (a candidate cause without enough runs): new seeds at the
  failing batch sizes and a smaller one that worked (batch), or at the LR and the group's best
  other LR (lr).
- ``decide`` an init or both question (is this seed bad?): the seed's initialisation with new
  data seeds, beside a seed that worked, at its failing batch sizes (and a smaller one, for
  both). A seed's rerun with the same data order would repeat its result; new data orders are
  new evidence.
- ``lr``: everything failed at the only LR tried in a group. Lower LRs (3x and 10x below the
  group's lowest) with its seeds and batch sizes: not more seeds at the failing LR.
- ``streams``: a seed that set both the initialisation and the data order is bad. That init
  seed (and a good one) with new data seeds tells an unlucky initialisation from an unlucky
  data order; the seeds with the most failures, at most `_MAX_STREAM_SEEDS`, ask for the sweep.

Every point of a follow-up is new (new seeds, new data seeds or new LRs), so nothing is rerun:
the old results are reused by triaging old and new together (``gansweep triage OLD NEW``).
The count of new seeds is sized by `analysis._sizing`. Questions of one purpose and design are
merged into one sweep file (their grids' union) unless that would more than double the runs
they need, then split by group: one file per question would give a 100,000-trial sweep
hundreds.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import yaml

from analysis._sizing import CANDIDATES, Question, size
from analysis._sweepfile import render_sweep_file, yaml_loader
from analysis.evidence import GroupContext, best_other
from analysis.fixes import working_batches
from analysis.model import PRIORS, Priors

__all__ = ["FollowUp", "plan_followups", "render_sweep_file", "yaml_loader"]

_MAX_WASTE = 2.0  # a merged grid may hold at most this many times the runs its questions need
_LOWER_LRS = (1 / 3, 1 / 10)
_MAX_STREAM_SEEDS = 4
_MAX_QUESTIONS = 8  # inconclusive groups followed up per reason (most failures first)
_SEED_KEYS = ("seed", "init_seed", "data_seed")


@dataclass(frozen=True)
class FollowUp:
    """One follow-up sweep.

    Attributes:
        index: 1-based number, as the groups and actions refer to it.
        purpose: ``decide``, ``lr`` or ``streams`` (see the module docstring).
        decides: The failed trial ids it decides.
        groups: The failure groups it decides.
        grid: Parameter -> values, as a sweep file's ``grid:``; every point is new.
        scaling: The sweep file's ``scaling:`` (LRs are given at its ``base_batch``).
        runs: Trials in the grid (all of them new).
        target: The confidence it is sized for.
        reached: Per failure group: the confidence its failures reach in the sizing check
            (pessimistic outcomes); the follow-up promises the lower of this and ``target``.
        promise: What it decides, in one sentence.
        action: The recommended action.
        header: Comment lines for the sweep file.
        notes: Things the file cannot express (e.g. a non-config column held fixed).
    """

    index: int
    purpose: str
    decides: list
    groups: list
    grid: dict
    scaling: dict | None
    runs: int
    target: float
    reached: dict
    promise: str
    action: str
    header: str
    notes: list = field(default_factory=list)

    @property
    def new_runs(self) -> int:
        """Runs this sweep has not run yet: all of them."""
        return self.runs

    def grid_text(self) -> str:
        """The grid as the sweep file writes it."""
        return yaml.safe_dump({"grid": self.grid}, sort_keys=False, default_flow_style=None)

    def to_dict(self) -> dict:
        """JSON-ready dict."""
        return {
            "index": self.index,
            "purpose": self.purpose,
            "file": f"followup_{self.index}.yaml",
            "runs": self.runs,
            "grid": self.grid,
            "scaling": self.scaling,
            "target": self.target,
            "reached": self.reached,
            "promise": self.promise,
            "groups": self.groups,
            "decides": self.decides,
            "notes": self.notes,
        }


@dataclass(frozen=True)
class _Sweep:
    """What every plan needs from the sweep, computed once."""

    panel_rows: dict  # panel -> one trial's record
    ref_batch: int
    scaling: str
    group_columns: list
    new_seeds: list  # unused whole numbers, for new seeds and data seeds
    lr_known: bool


def _unused_ints(live: pd.DataFrame, count: int) -> list[int]:
    taken = {str(v) for c in _SEED_KEYS for v in live[c].unique()}
    out, i = [], 0
    while len(out) < count:
        if str(i) not in taken:
            out.append(i)
        i += 1
    return out


def _sweep(live: pd.DataFrame, attrs: dict) -> _Sweep:
    first = live.groupby("panel", sort=False).head(1).set_index("panel")
    return _Sweep(
        panel_rows=first.to_dict("index"),
        ref_batch=int(live["batch_size"].min()),
        scaling=attrs.get("lr_scaling", "none"),
        group_columns=list(attrs.get("group_columns", [])),
        new_seeds=_unused_ints(live, max(CANDIDATES) + 2),
        lr_known=bool(attrs.get("lr_known")),
    )


def _rate(frame: pd.DataFrame, prior: float, quantile: float, lo: float, hi: float) -> float:
    """A failure rate from a few runs, on the pessimistic side: the ``quantile`` of its Beta
    posterior (a prior worth 5 runs at ``prior``), clipped to [lo, hi]."""
    from scipy.stats import beta

    n, k = float(frame["n"].sum()), float(frame["k"].sum())
    return float(np.clip(beta.ppf(quantile, k + 5 * prior, n - k + 5 * (1 - prior)), lo, hi))


def _mechanism_rate(frame: pd.DataFrame) -> float:
    """How often a hypothesised bad seed, batch size or LR fails: low end (typical 0.8)."""
    return _rate(frame, 0.8, 0.2, 0.5, 0.95)


def _chance_rate(ctx: GroupContext, units=(), batches=(), panels=()) -> float:
    """How often the group fails by chance, high end: outside its failure regions and outside
    the cells a hypothesis calls bad (its seeds, batch sizes or LR); typical: 0.05."""
    cells = ctx.outside_regions()
    keep = ~cells[ctx.unit].isin(units) & ~cells["batch_size"].isin(batches)
    return _rate(cells[keep & ~cells["panel"].isin(panels)], 0.05, 0.8, 0.01, 0.3)


def _reference(ctx: GroupContext, panel: int, below: int) -> int | None:
    """The largest batch size below ``below`` that worked at the panel, else the largest run."""
    ok = [b for b in working_batches(ctx, panel) if b < below]
    if ok:
        return max(ok)
    smaller = [b for b in ctx.panel_cells(panel)["batch_size"] if b < below]
    return int(max(smaller)) if smaller else None


def _cells(trials: pd.DataFrame, panels: tuple) -> tuple:
    """Distinct (seed, panel, batch) cells of the trials at the given panels."""
    here = trials[trials["panel"].isin(panels)]
    keys = zip(here["unit"], here["panel"].astype(int), here["batch_size"].astype(int), strict=True)
    return tuple(dict.fromkeys(keys))


def _decide_question(g, trials: pd.DataFrame, ctx: GroupContext) -> Question:
    panel = int(trials["panel"].iloc[0])
    failing = sorted(int(b) for b in trials["batch_size"].unique())
    cells = ctx.panel_cells(panel)
    common = dict(
        group=g.index,
        purpose="decide",
        hypothesis=g.best_guess,
        group_key=g.group,
        ctx=ctx,
        trials=tuple(g.trials),
        confidence=g.confidence[1],
    )
    ref = _reference(ctx, panel, failing[0])
    if g.best_guess == "lr":
        other = best_other(ctx, panel)
        panels = (panel,) if other is None else (panel, other)
        batches = (int(cells["batch_size"].min()),)
        return Question(
            kind="seeds", cells=_cells(trials, panels), panels=panels, batches=batches,
            q=_mechanism_rate(cells), p0=_chance_rate(ctx, panels=(panel,)),
            bad_panels=(panel,), **common,
        )  # fmt: skip
    with_ref = tuple(sorted(set(failing) | ({ref} if ref is not None else set())))
    if g.best_guess == "batch":
        q = _mechanism_rate(cells[cells["batch_size"].isin(failing)])
        return Question(
            kind="seeds", cells=_cells(trials, (panel,)), panels=(panel,), batches=with_ref,
            q=q, p0=_chance_rate(ctx, batches=failing), bad_batches=tuple(failing), **common,
        )  # fmt: skip
    # Is the seed bad? Its own runs say how often: everywhere (init), or from its failing
    # batch sizes up with a smaller one where it succeeded (both).
    units = tuple(dict.fromkeys(trials["unit"]))
    own = cells[cells[ctx.unit].isin(units)]
    if g.best_guess == "init":
        batches = bad = tuple(sorted(int(b) for b in own["batch_size"].unique()))
    else:
        batches, bad = with_ref, tuple(failing)
    q = _mechanism_rate(own[own["batch_size"].isin(bad)])
    return Question(
        kind="data", cells=_cells(trials, (panel,)), panels=(panel,), batches=batches, q=q,
        p0=_chance_rate(ctx, units=units), bad_batches=bad,
        units=units + tuple(ctx.good_seeds()[:1]), bad_units=units, **common,
    )  # fmt: skip


def _lr_question(g, trials: pd.DataFrame, ctx: GroupContext, sweep: _Sweep) -> Question | None:
    if not sweep.lr_known:
        return None
    panel = int(trials["panel"].iloc[0])
    lowest = min((_lr_at_ref(sweep, p) for p in ctx.panels), key=lambda gd: gd[0])
    cells = ctx.panel_cells(panel)
    return Question(
        group=g.index, purpose="lr", kind="lrs", hypothesis="lr", group_key=g.group, ctx=ctx,
        cells=_cells(trials, (panel,)), panels=(panel,),
        batches=tuple(sorted(int(b) for b in cells["batch_size"].unique())),
        trials=tuple(g.trials), q=0.9, p0=0.05, units=tuple(pd.unique(cells[ctx.unit])),
        new_lrs=tuple((_round(lowest[0] * f), _round(lowest[1] * f)) for f in _LOWER_LRS),
        confidence=g.confidence[1],
    )  # fmt: skip


def _streams_question(g, trials: pd.DataFrame, ctx: GroupContext) -> Question:
    unit = trials["unit"].iloc[0]
    row = ctx.row(unit)
    first = row[row["k"] > 0].sort_values(["panel", "batch_size"]).iloc[0]
    panels, batch = (int(first["panel"]),), int(first["batch_size"])
    return Question(
        group=g.index, purpose="streams", kind="data", hypothesis="init", group_key=g.group,
        ctx=ctx, cells=_cells(trials, panels), panels=panels, batches=(batch,),
        trials=tuple(g.trials), q=_mechanism_rate(row), p0=_chance_rate(ctx, units=(unit,)),
        bad_batches=(batch,),
        units=(unit, *ctx.good_seeds()[:1]), bad_units=(unit,), confidence=g.confidence[1],
    )  # fmt: skip


def _few_streams(groups: list) -> list:
    """The streams question asks how the sweep's seeds fail, not about each seed: the init
    groups (one seed set init and data) with the most failures in one group of other params,
    at most `_MAX_STREAM_SEEDS` of them."""
    init = [g for g in groups if g.cause == "init" and g.seed_stream == "seed"]
    if not init:
        return []
    init.sort(key=lambda g: (-len(g.trials), g.index))
    return [g for g in init if g.group == init[0].group][:_MAX_STREAM_SEEDS]


def _open(groups: list) -> list:
    """The inconclusive groups a follow-up can decide, the most failures first: at most
    `_MAX_QUESTIONS` per reason (a sparse sweep can leave hundreds; the first ones' answers
    say what the sweep needs)."""
    out = []
    for reason in ("weak", "shared"):
        mine = [g for g in groups if g.cause == "inconclusive" and g.reason == reason]
        out += sorted(mine, key=lambda g: (-len(g.trials), g.index))[:_MAX_QUESTIONS]
    return out


def _questions(groups, frame: pd.DataFrame, contexts: dict, sweep: _Sweep) -> list[Question]:
    wanted = {g.index for g in _open(groups)} | {g.index for g in _few_streams(groups)}
    by_group = dict(tuple(frame[frame["group"].isin(wanted)].groupby("group", sort=False)))
    out = []
    for g in groups:
        if g.index not in wanted:
            continue
        trials = by_group[g.index]
        ctx = contexts[trials["ctx_unit"].iloc[0]][g.group]
        if g.cause == "init":
            out.append(_streams_question(g, trials, ctx))
        elif g.reason == "weak":
            out.append(_decide_question(g, trials, ctx))
        elif (q := _lr_question(g, trials, ctx, sweep)) is not None:
            out.append(q)
    return out


def _lr_at_ref(sweep: _Sweep, panel: int) -> tuple[float, float]:
    """A panel's (g_lr, d_lr) at the reference batch, undoing the sweep's LR scaling rule."""
    row = sweep.panel_rows[panel]
    ratio = row["batch_size"] / sweep.ref_batch
    factor = {"linear": ratio, "sqrt": math.sqrt(ratio)}.get(sweep.scaling, 1.0)
    return (float(f"{row['g_lr'] / factor:.6g}"), float(f"{row['d_lr'] / factor:.6g}"))


def _round(x: float) -> float:
    return float(f"{x:.3g}")


def _needed(q: Question) -> int:
    """Points one new seed (or data seed) adds for this question."""
    lrs = len(q.new_lrs) if q.kind == "lrs" else len(q.panels)
    return lrs * len(q.batches) * (len(q.units) if q.kind == "data" else 1)


def _merge(questions: list[Question], sweep: _Sweep) -> list[list[Question]]:
    """Questions per purpose and design in one file, or one per group when one file would
    more than double the runs they need."""
    files = []
    for key in dict.fromkeys((q.purpose, q.kind, q.ctx.unit) for q in questions):
        mine = [q for q in questions if (q.purpose, q.kind, q.ctx.unit) == key]
        if _grid_points(mine, sweep, 1) <= _MAX_WASTE * sum(map(_needed, mine)):
            files.append(mine)
            continue
        parts: dict[str, list[Question]] = {}
        for q in mine:
            parts.setdefault(q.group_key, []).append(q)
        files += list(parts.values())
    return files


def _lr_values(qs: list[Question], sweep: _Sweep) -> list[tuple[float, float]]:
    if not sweep.lr_known:
        return []
    if qs[0].kind == "lrs":
        values = [v for q in qs for v in q.new_lrs]
    else:
        values = [_lr_at_ref(sweep, p) for q in qs for p in q.panels]
    return list(dict.fromkeys((float(f"{g:.6g}"), float(f"{d:.6g}")) for g, d in values))


def _group_values(qs: list[Question], sweep: _Sweep) -> dict:
    """Other varied params a sweep file can set (dotted config paths), held at the groups'."""
    out: dict = {}
    for col in sweep.group_columns:
        if "." not in col:
            continue
        values = []
        for q in qs:
            value = _py(sweep.panel_rows[q.panels[0]][col])
            if value not in values:
                values.append(value)
        out[col] = values
    return out


def _seed_keys(qs: list[Question], sweep: _Sweep, count: int) -> dict:
    new = [int(s) for s in sweep.new_seeds[:count]]
    if qs[0].kind == "seeds":
        return {"seed": new}
    units = [_py(u) for u in dict.fromkeys(u for q in qs for u in q.units)]
    if qs[0].kind == "lrs":
        return {"seed": units[:count]}
    if qs[0].ctx.unit == "data_seed":  # the question is about data seeds: new init seeds
        return {"init_seed": new, "data_seed": units}
    return {"init_seed": units, "data_seed": new}


def _grid(qs: list[Question], sweep: _Sweep, count: int) -> dict:
    """The sweep file's grid for ``count`` new seeds (or data seeds, or seeds reused)."""
    grid = _seed_keys(qs, sweep, count)
    grid["batch_size"] = sorted({int(b) for q in qs for b in q.batches})
    lrs = _lr_values(qs, sweep)
    if lrs:
        if all(math.isclose(g, d, rel_tol=1e-9) for g, d in lrs):
            grid["lr"] = sorted({g for g, _ in lrs})
        else:
            grid["g_lr"] = sorted({g for g, _ in lrs})
            grid["d_lr"] = sorted({d for _, d in lrs})
    grid.update(_group_values(qs, sweep))
    return grid


def _grid_points(qs: list[Question], sweep: _Sweep, count: int) -> int:
    return math.prod(len(v) for v in _grid(qs, sweep, count).values())


def _py(v):
    if isinstance(v, np.integer):
        return int(v)
    if isinstance(v, np.floating):
        return float(v)
    if isinstance(v, np.bool_):
        return bool(v)
    return v


def _what(qs: list[Question], grid: dict) -> str:
    n_trials = sum(len(q.trials) for q in qs)
    hyps = " or ".join(sorted({q.hypothesis for q in qs}))
    batches = _list(grid["batch_size"])
    if qs[0].purpose == "lr":
        lrs = _list(grid.get("lr", grid.get("g_lr", [])))
        return (
            f"lower learning rates ({lrs}) with the same seeds tell whether the LR caused "
            f"{n_trials} failure(s) where every run at the only LR tried failed"
        )
    if qs[0].kind == "seeds":
        return (
            f"{len(grid['seed'])} new seeds at batch {batches} decide {n_trials} inconclusive "
            f"failure(s) whose likeliest cause is {hyps}"
        )
    unit_key = "data_seed" if qs[0].ctx.unit == "data_seed" else "init_seed"
    other = "init_seed" if unit_key == "data_seed" else "data_seed"
    words = unit_key.replace("_", " ") + "s"
    if qs[0].purpose == "streams":
        return (
            f"{words} {_list(grid[unit_key])} x {len(grid[other])} new "
            f"{other.replace('_', ' ')}s tell an unlucky initialisation from an unlucky data "
            f"order for {n_trials} init failure(s)"
        )
    return (
        f"{words} {_list(grid[unit_key])} with {len(grid[other])} new "
        f"{other.replace('_', ' ')}s each at batch {batches} decide whether the seed is bad "
        f"for {n_trials} inconclusive failure(s) whose likeliest cause is {hyps}"
    )


def _texts(index: int, qs: list[Question], grid: dict, runs: int, target, reached) -> tuple:
    what = _what(qs, grid)
    hyps = " or ".join(sorted({q.hypothesis for q in qs}))
    cause = "the initialisation" if qs[0].purpose == "streams" else f"the likeliest ({hyps})"
    short = {g: r for g, r in reached.items() if r < target}
    promise = (
        f"If the cause is {cause}, triaging the old and new results together reaches "
        f"confidence {target:.2f} for "
        + ("these failures" if not short else "the other groups' failures")
        + " in about 4 of 5 outcomes (sized on pessimistic ones)"
    )
    if short:
        lows = "; ".join(f"group {g} only {r:.2f}" for g, r in sorted(short.items()))
        promise += f"; {lows}: more batch sizes or LRs may be needed there"
    promise += "."
    action = f"Run follow-up {index} (followup_{index}.yaml, {runs} new runs): {what}. {promise}"
    return what, promise, action


def _list(values) -> str:
    return ", ".join(str(v) for v in values)


def _plan(index: int, qs: list[Question], sweep: _Sweep, target, priors) -> FollowUp:
    count, reached = size(qs, target, priors)
    reached = {g: round(r, 4) for g, r in reached.items()}
    grid = _grid(qs, sweep, count)
    runs = math.prod(len(v) for v in grid.values())
    what, promise, action = _texts(index, qs, grid, runs, target, reached)
    trials = [t for q in qs for t in q.trials]
    header = [
        f"gansweep follow-up {index} ({qs[0].purpose}): {what}.",
        f"Decides failure group(s) {_list(q.group for q in qs)}: "
        + ", ".join(trials[:8])
        + (" ..." if len(trials) > 8 else ""),
        f"{runs} runs, none of them run before: triage them together with the original",
        "results: gansweep triage ORIGINAL FOLLOW-UP-RESULTS --out DIR",
        promise,
    ]
    notes = [
        f"{col} is held at the group's value but is not a config path; set it yourself"
        for col in sweep.group_columns
        if "." not in col
    ]
    scaling = (
        {"rule": sweep.scaling, "base_batch": sweep.ref_batch}
        if sweep.lr_known and sweep.scaling != "none"
        else {"rule": "none"}
    )
    return FollowUp(
        index, qs[0].purpose, trials, [q.group for q in qs], grid, scaling, runs, target,
        reached, promise, action, "\n".join(header), notes,
    )  # fmt: skip


def plan_followups(
    frame: pd.DataFrame,
    groups: list,
    contexts: dict,
    live: pd.DataFrame,
    attrs: dict,
    target: float,
    priors: Priors = PRIORS,
) -> tuple[list[FollowUp], dict[int, int]]:
    """Plan follow-up sweeps for the open questions of a triage.

    Args:
        frame: The triage frame of failed trials (``group``, ``ctx_unit``, ``unit``, panel).
        groups: The failure groups (`analysis.groups.FailureGroup`).
        contexts: Group contexts by seed column and group key.
        live: Analysable trials with ``panel``.
        attrs: The normalised table's attrs (group columns, LR scaling, ``lr_known``).
        target: Confidence the follow-ups are sized to reach.
        priors: The grid model's prior.

    Returns:
        The follow-ups and, per failure group index, the follow-up that decides it.
    """
    sweep = _sweep(live, attrs)
    questions = _questions(groups, frame, contexts, sweep)
    plans = [
        _plan(i + 1, qs, sweep, target, priors) for i, qs in enumerate(_merge(questions, sweep))
    ]
    return plans, {g: p.index for p in plans for g in p.groups}
