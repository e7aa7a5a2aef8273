"""Follow-up sweeps: only new runs, sized so that they decide what this sweep could not.

Each open question of the triage becomes new runs:

- ``decide``: a candidate cause without enough runs. New seeds at the failing batch sizes (and a
  smaller one that worked, for a batch question; the best other LR, for an LR question).
- ``lr``: everything failed at the only LR tried in a group. Lower LRs (3x and 10x below the
  group's lowest), with its seeds and batch sizes.
- ``streams``: a seed that set both the initialisation and the data order is bad. That init
  seed (and a good one) with new data seeds tells an unlucky initialisation from an unlucky
  data order.

Every point of a follow-up is new (new seeds, new data seeds or new LRs), so nothing is rerun:
the old results are reused by triaging old and new together. The number of new seeds is the
smallest of `_CANDIDATES` with which, if the hypothesised cause is true and the new runs come
out as typically expected (a mechanism's failure rate rounded down, chance failures rounded
to the nearest), the triage of old plus new results reaches the target confidence;
`bench/triage_calibration.py` checks this against random outcomes. Questions of one purpose
are merged into one sweep file (their grids' union) unless that would more than double the
runs, then split by group and, if needed, by question.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import yaml

from analysis.evidence import GroupContext, best_other
from analysis.fixes import working_batches
from analysis.model import CATEGORIES, PRIORS, Priors, fit_group

__all__ = ["FollowUp", "plan_followups", "render_sweep_file", "yaml_loader"]

_CANDIDATES = (2, 3, 4, 6, 8, 12, 16, 24, 32)
_MAX_WASTE = 2.0  # a merged grid may hold at most this many times the runs its questions need
_LOWER_LRS = (1 / 3, 1 / 10)
_SEED_KEYS = ("seed", "init_seed", "data_seed")


@dataclass(frozen=True)
class _Question:
    """One open question: where the new runs go and what the hypothesis expects of them."""

    group: int
    purpose: str
    hypothesis: str
    group_key: str
    ctx: GroupContext  # the group laid out by the seed column the question is about
    cells: tuple  # (seed, panel, batch) of its failed trials
    panels: tuple  # existing panels the new runs go to
    batches: tuple
    trials: tuple
    q: float  # failure rate of a hypothesised bad region
    p0: float  # chance failure rate
    bad_batches: tuple = ()  # hypothesis batch: new runs fail at these batch sizes
    bad_panels: tuple = ()  # hypothesis lr: new runs fail at these panels
    units: tuple = ()  # existing seeds the new runs use (streams: init seeds; lr: seeds)
    bad_units: tuple = ()  # streams: init seeds that fail with every data seed
    new_lrs: tuple = ()  # purpose lr: new (g_lr, d_lr) levels at the reference batch


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
        reached: The lowest confidence its questions reach in the sizing check.
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
    reached: float
    promise: str
    action: str
    header: str
    notes: list = field(default_factory=list)

    @property
    def new_runs(self) -> int:
        """Runs this sweep has not run yet: all of them."""
        return self.runs

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

    live: pd.DataFrame
    panel_rows: dict  # panel -> one trial's record
    ref_batch: int
    scaling: str
    group_columns: list
    new_seeds: list  # unused whole numbers, for new seeds and data seeds
    lr_known: bool
    separated: bool


def _unused_ints(live: pd.DataFrame, count: int) -> list[int]:
    taken = {str(v) for c in _SEED_KEYS for v in live[c].unique()}
    out, i = [], 0
    while len(out) < count:
        if str(i) not in taken:
            out.append(i)
        i += 1
    return out


def _sweep(live: pd.DataFrame, attrs: dict, separated: bool) -> _Sweep:
    first = live.groupby("panel", sort=False).head(1).set_index("panel")
    return _Sweep(
        live=live,
        panel_rows=first.to_dict("index"),
        ref_batch=int(live["batch_size"].min()),
        scaling=attrs.get("lr_scaling", "none"),
        group_columns=list(attrs.get("group_columns", [])),
        new_seeds=_unused_ints(live, max(_CANDIDATES)),
        lr_known=bool(attrs.get("lr_known")),
        separated=separated,
    )


def _share(frame: pd.DataFrame, lo: float, hi: float, default: float) -> float:
    n = frame["n"].sum()
    return float(np.clip(frame["k"].sum() / n, lo, hi)) if n else default


def _reference(ctx: GroupContext, panel: int, below: int) -> int | None:
    ok = [b for b in working_batches(ctx, panel) if b < below]
    if ok:
        return max(ok)
    smaller = [b for b in ctx.cells.loc[ctx.cells["panel"] == panel, "batch_size"] if b < below]
    return max(smaller) if smaller else None


def _cells(trials: pd.DataFrame, panels: tuple) -> tuple:
    """Distinct (seed, panel, batch) cells of the trials at the given panels."""
    here = trials[trials["panel"].isin(panels)]
    keys = zip(here["unit"], here["panel"].astype(int), here["batch_size"].astype(int), strict=True)
    return tuple(dict.fromkeys(keys))


def _decide_question(g, trials: pd.DataFrame, ctx: GroupContext) -> _Question:
    panel = int(trials["panel"].iloc[0])
    failing = sorted(int(b) for b in trials["batch_size"].unique())
    cells = ctx.cells[ctx.cells["panel"] == panel]
    p0 = _share(ctx.outside_regions(), 0.01, 0.3, 0.05)
    hyp = g.best_guess
    batches, bad_batches, panels, bad_panels = failing, (), (panel,), ()
    if hyp in ("batch", "both"):
        ref = _reference(ctx, panel, failing[0])
        batches = sorted(set(failing) | ({ref} if ref is not None else set()))
        bad_batches = tuple(failing) if hyp == "batch" else ()
    q = _share(cells[cells["batch_size"].isin(failing)], 0.5, 0.95, 0.8)
    if hyp == "lr":
        other = best_other(ctx, panel)
        batches = [int(cells["batch_size"].min())]
        panels = (panel,) if other is None else (panel, other)
        bad_panels = (panel,)
        q = _share(cells, 0.5, 0.95, 0.8)
    return _Question(
        g.index,
        "decide",
        hyp,
        g.group,
        ctx,
        _cells(trials, panels),
        panels,
        tuple(batches),
        tuple(g.trials),
        q,
        p0,
        bad_batches=bad_batches,
        bad_panels=bad_panels,
    )


def _lr_question(g, trials: pd.DataFrame, ctx: GroupContext, sweep: _Sweep) -> _Question | None:
    if not sweep.lr_known:
        return None
    panel = int(trials["panel"].iloc[0])
    lowest = min(
        (_lr_at_ref(sweep, p) for p in ctx.panels),
        key=lambda gd: gd[0],
    )
    new = tuple((_round(lowest[0] * f), _round(lowest[1] * f)) for f in _LOWER_LRS)
    cells = ctx.cells[ctx.cells["panel"] == panel]
    seeds = tuple(pd.unique(cells[ctx.unit]))
    p0 = 0.05  # a working LR: chance failures only
    return _Question(
        g.index,
        "lr",
        "lr",
        g.group,
        ctx,
        _cells(trials, (panel,)),
        (panel,),
        tuple(sorted(int(b) for b in cells["batch_size"].unique())),
        tuple(g.trials),
        0.9,
        p0,
        units=seeds,
        new_lrs=new,
    )


def _streams_question(g, trials: pd.DataFrame, ctx: GroupContext) -> _Question:
    unit = trials["unit"].iloc[0]
    row = ctx.row(unit)
    first = row[row["k"] > 0].sort_values(["panel", "batch_size"]).iloc[0]
    good = ctx.good_seeds()[:1]
    panels = (int(first["panel"]),)
    return _Question(
        g.index,
        "streams",
        "init",
        g.group,
        ctx,
        _cells(trials, panels),
        panels,
        (int(first["batch_size"]),),
        tuple(g.trials),
        _share(row, 0.5, 0.95, 0.8),
        _share(ctx.outside_regions(), 0.01, 0.3, 0.05),
        units=(unit, *good),
        bad_units=(unit,),
    )


def _questions(groups, frame: pd.DataFrame, contexts: dict, sweep: _Sweep) -> list[_Question]:
    out = []
    by_group = dict(tuple(frame.groupby("group", sort=False)))
    for g in groups:
        trials = by_group[g.index]
        ctx = contexts[trials["ctx_unit"].iloc[0]][g.group]
        if g.cause == "inconclusive" and g.reason == "weak":
            out.append(_decide_question(g, trials, ctx))
        elif g.cause == "inconclusive" and g.reason == "shared":
            q = _lr_question(g, trials, ctx, sweep)
            if q is not None:
                out.append(q)
        elif g.cause == "init" and g.seed_stream == "seed":
            out.append(_streams_question(g, trials, ctx))
    return out


def _lr_at_ref(sweep: _Sweep, panel: int) -> tuple[float, float]:
    """A panel's (g_lr, d_lr) at the reference batch, undoing the sweep's LR scaling rule."""
    row = sweep.panel_rows[panel]
    ratio = row["batch_size"] / sweep.ref_batch
    factor = {"linear": ratio, "sqrt": math.sqrt(ratio)}.get(sweep.scaling, 1.0)
    return (float(f"{row['g_lr'] / factor:.6g}"), float(f"{row['d_lr'] / factor:.6g}"))


def _round(x: float) -> float:
    return float(f"{x:.3g}")


def _needed(q: _Question) -> int:
    """Points one new seed (or data seed) adds for this question."""
    lrs = len(q.new_lrs) if q.purpose == "lr" else len(q.panels)
    return lrs * len(q.batches) * (len(q.units) if q.purpose == "streams" else 1)


def _merge(questions: list[_Question], sweep: _Sweep) -> list[list[_Question]]:
    """Questions per purpose in as few files as possible without doubling the runs."""
    files = []
    for purpose in ("decide", "lr", "streams"):
        mine = [q for q in questions if q.purpose == purpose]
        if mine:
            files += _split(mine, sweep, by_group=True)
    return files


def _split(qs: list[_Question], sweep: _Sweep, by_group: bool) -> list[list[_Question]]:
    if len(qs) == 1 or _grid_points(qs, sweep, 1) <= _MAX_WASTE * sum(map(_needed, qs)):
        return [qs]
    if not by_group:
        return [[q] for q in qs]
    parts: dict[str, list[_Question]] = {}
    for q in qs:
        parts.setdefault(q.group_key, []).append(q)
    if len(parts) == 1:
        return _split(qs, sweep, by_group=False)
    return [f for part in parts.values() for f in _split(part, sweep, by_group=False)]


def _lr_values(qs: list[_Question], sweep: _Sweep) -> list[tuple[float, float]]:
    if not sweep.lr_known:
        return []
    if qs[0].purpose == "lr":
        values = [v for q in qs for v in q.new_lrs]
    else:
        values = [_lr_at_ref(sweep, p) for q in qs for p in q.panels]
    return list(dict.fromkeys((float(f"{g:.6g}"), float(f"{d:.6g}")) for g, d in values))


def _group_values(qs: list[_Question], sweep: _Sweep) -> dict:
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


def _grid(qs: list[_Question], sweep: _Sweep, n: int) -> dict:
    """The sweep file's grid for ``n`` new seeds (or data seeds)."""
    purpose = qs[0].purpose
    new = [int(s) for s in sweep.new_seeds[:n]]
    grid: dict = {}
    if purpose == "decide":
        grid["seed"] = new
    elif purpose == "lr":
        units = list(dict.fromkeys(u for q in qs for u in q.units))[:n]
        grid["seed"] = [_py(u) for u in units]
    else:
        grid["init_seed"] = [_py(u) for u in dict.fromkeys(u for q in qs for u in q.units)]
        grid["data_seed"] = new
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


def _grid_points(qs: list[_Question], sweep: _Sweep, n: int) -> int:
    return math.prod(len(v) for v in _grid(qs, sweep, n).values())


def _py(v):
    if isinstance(v, np.integer):
        return int(v)
    if isinstance(v, np.floating):
        return float(v)
    if isinstance(v, np.bool_):
        return bool(v)
    return v


def _spread(count: int, rate: float, mechanism: bool) -> np.ndarray:
    """Typical outcomes of ``count`` runs: a mechanism's rate rounded down, chance's rounded."""
    fails = math.floor(rate * count) if mechanism else int(round(rate * count))
    out = np.zeros(count)
    out[:fails] = 1.0
    return out


def _restricted(q: _Question) -> tuple[np.ndarray, np.ndarray, list]:
    """The question's group counts at its own panels only (the other LRs left out, which can
    only lower the confidence the check finds: conservative)."""
    post = q.ctx.post
    li = [post.panels.index(p) for p in q.panels]
    return post.n[:, li, :].copy(), post.k[:, li, :].copy(), [post.panels[i] for i in li]


def _grown(q: _Question, n_new: int) -> tuple[np.ndarray, np.ndarray, list, list]:
    """Counts after the question's new runs, with outcomes typical of its hypothesis.

    Returns:
        ``(n, k, units, panels)`` laid out like `analysis.model.fit_group` wants them.
    """
    n, k, panels = _restricted(q)
    post = q.ctx.post
    units = list(post.units)
    bi = [post.batches.index(b) for b in q.batches]
    if q.purpose == "lr":  # new LR columns, run by some of the existing seeds
        seeds = [units.index(u) for u in q.units[:n_new]]
        add_n = np.zeros((n.shape[0], len(q.new_lrs), n.shape[2]))
        add_k = np.zeros_like(add_n)
        for j in range(len(q.new_lrs)):
            for b in bi:
                add_n[seeds, j, b] = 1.0
                add_k[seeds, j, b] = _spread(len(seeds), q.p0, False)
        panels = panels + [f"new{j}" for j in range(len(q.new_lrs))]
        return np.concatenate([n, add_n], 1), np.concatenate([k, add_k], 1), units, panels
    if q.purpose == "streams":  # more data orders for the init seeds, in their own rows
        for u in q.units:
            bad = u in q.bad_units
            n[units.index(u), 0, bi[0]] += n_new
            k[units.index(u), 0, bi[0]] += _spread(n_new, q.q if bad else q.p0, bad).sum()
        return n, k, units, panels
    add_n = np.zeros((n_new, n.shape[1], n.shape[2]))
    add_k = np.zeros_like(add_n)
    for j, panel in enumerate(panels):
        for b, batch in zip(bi, q.batches, strict=True):
            mech = batch in q.bad_batches or panel in q.bad_panels
            add_n[:, j, b] = 1.0
            add_k[:, j, b] = _spread(n_new, q.q if mech else q.p0, mech)
    units = units + [f"new{i}" for i in range(n_new)]
    return np.concatenate([n, add_n]), np.concatenate([k, add_k]), units, panels


_CATEGORY_OF = {"init": ("init",), "batch": ("batch",), "both": ("fragile", "both"), "lr": ("lr",)}


def _trial_probability(fit: dict, q: _Question, units: list, panels: list, causes) -> float:
    """The lowest probability, over the question's failed cells, of the given causes."""
    post = q.ctx.post
    cats = [CATEGORIES.index(c) for cause in causes for c in _CATEGORY_OF[cause]]
    lowest = 1.0
    for unit, panel, batch in q.cells:
        cell = fit["cells"][units.index(unit), panels.index(panel), post.batches.index(batch)]
        lowest = min(lowest, float(cell[cats].sum()))
    return lowest


def _streams_weight(q: _Question, n_new: int, init_fit: dict, priors: Priors) -> float:
    """Posterior weight of the layout by init seed against the layout by data seed."""
    n, k, _ = _restricted(q)
    post = q.ctx.post
    b = post.batches.index(q.batches[0])
    per_unit = {
        u: _spread(n_new, q.q if u in q.bad_units else q.p0, u in q.bad_units) for u in q.units
    }
    add_n = np.zeros((n_new, n.shape[1], n.shape[2]))
    add_k = np.zeros_like(add_n)
    add_n[:, 0, b] = len(q.units)
    add_k[:, 0, b] = sum(per_unit.values())
    data_fit = fit_group(np.concatenate([n, add_n]), np.concatenate([k, add_k]), priors)
    gap = data_fit["log_evidence"] - init_fit["log_evidence"]
    return float(1.0 / (1.0 + math.exp(min(gap, 700.0))))


def _check(qs: list[_Question], n_new: int, priors: Priors) -> float:
    """Lowest confidence the questions' failures reach with ``n_new`` new seeds, typically."""
    reached = 1.0
    for q in qs:
        n, k, units, panels = _grown(q, n_new)
        fit = fit_group(n, k, priors)
        if q.purpose == "streams":
            score = _streams_weight(q, n_new, fit, priors) * _trial_probability(
                fit, q, units, panels, ("init", "both")
            )
        else:
            score = _trial_probability(fit, q, units, panels, (q.hypothesis,))
        reached = min(reached, score)
    return reached


def _size(qs: list[_Question], sweep: _Sweep, target: float, priors: Priors) -> tuple[int, float]:
    """The fewest new seeds (of `_CANDIDATES`) that reach the target: a galloping search,
    then bisection (more seeds never lower the confidence the typical outcomes give)."""
    cap = len(_CANDIDATES)
    if qs[0].purpose == "lr":  # the LR question reuses the sweep's seeds
        units = max(len(q.units) for q in qs)
        cap = max(1, sum(c <= units for c in _CANDIDATES))
    seen: dict[int, float] = {}

    def reach(i: int) -> float:
        if i not in seen:
            seen[i] = _check(qs, _CANDIDATES[i], priors)
        return seen[i]

    fail, i, step = -1, 0, 1
    while i < cap and reach(i) < target:
        fail, i, step = i, min(i + step, cap - 1) if i < cap - 1 else cap, step * 2
    if i >= cap:
        return _CANDIDATES[cap - 1], reach(cap - 1)
    while i - fail > 1:  # reach(i) passes, reach(fail) does not
        mid = (i + fail) // 2
        if reach(mid) >= target:
            i = mid
        else:
            fail = mid
    return _CANDIDATES[i], reach(i)


def _texts(index: int, qs: list[_Question], grid: dict, runs: int, target, reached) -> tuple:
    n_trials = sum(len(q.trials) for q in qs)
    hyps = sorted({q.hypothesis for q in qs})
    purpose = qs[0].purpose
    if purpose == "decide":
        what = (
            f"{len(grid['seed'])} new seeds at batch {_list(grid['batch_size'])} decide "
            f"{n_trials} inconclusive failure(s) whose likeliest cause is {' or '.join(hyps)}"
        )
    elif purpose == "lr":
        lrs = grid.get("lr", grid.get("g_lr", []))
        what = (
            f"lower learning rates ({_list(lrs)}) with the same seeds tell whether the LR caused "
            f"{n_trials} failure(s) where every run at the only LR tried failed"
        )
    else:
        what = (
            f"init seeds {_list(grid['init_seed'])} x {len(grid['data_seed'])} new data seeds "
            f"tell an unlucky initialisation from an unlucky data order for {n_trials} init "
            "failure(s)"
        )
    cause = "the initialisation" if purpose == "streams" else " or ".join(hyps)
    if reached >= target:
        promise = (
            f"If the cause is {cause}, triaging the old and new results together reaches "
            f"confidence {target:.2f} for these failures (with typical outcomes: {reached:.2f})."
        )
    else:
        promise = (
            f"If the cause is {cause}, even these runs reach only confidence {reached:.2f} "
            f"(target {target:.2f}) with typical outcomes: more batch sizes or LRs may be needed."
        )
    action = f"Run follow-up {index} (followup_{index}.yaml, {runs} new runs): {what}. {promise}"
    return what, promise, action


def _list(values) -> str:
    return ", ".join(str(v) for v in values)


def _plan(index: int, qs: list[_Question], sweep: _Sweep, target, priors) -> FollowUp:
    n, reached = _size(qs, sweep, target, priors)
    grid = _grid(qs, sweep, n)
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
        index,
        qs[0].purpose,
        trials,
        [q.group for q in qs],
        grid,
        scaling,
        runs,
        target,
        round(reached, 4),
        promise,
        action,
        "\n".join(header),
        notes,
    )


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
    separated = "init_seed" in contexts
    sweep = _sweep(live, attrs, separated)
    questions = _questions(groups, frame, contexts, sweep)
    plans = [
        _plan(i + 1, qs, sweep, target, priors) for i, qs in enumerate(_merge(questions, sweep))
    ]
    owner = {g: p.index for p in plans for g in p.groups}
    return plans, owner


class _Loader(yaml.SafeLoader):
    """YAML 1.1 reads `1e-3` as a string; read it as the float a sweep file means."""


_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(
        r"""^(?:[-+]?(?:[0-9][0-9_]*)\.[0-9_]*(?:[eE][-+]?[0-9]+)?
        |[-+]?(?:[0-9][0-9_]*)(?:[eE][-+]?[0-9]+)
        |\.[0-9_]+(?:[eE][-+]?[0-9]+)?)$""",
        re.X,
    ),
    list("-+0123456789."),
)


def yaml_loader() -> type:
    """The loader sweep files are read with (floats such as ``1e-3`` are floats)."""
    return _Loader


def _safe_name(name: str) -> str:
    text = re.sub(r"[^A-Za-z0-9_.-]+", "-", str(name)).strip("-.")
    return text if text and text[0].isalnum() else f"sweep{('-' + text) if text else ''}"


def _nest(flat: dict) -> dict:
    out: dict = {}
    for key, value in flat.items():
        node = out
        *parents, leaf = key.split(".")
        for p in parents:
            node = node.setdefault(p, {})
            if not isinstance(node, dict):
                break
        else:
            node[leaf] = value
    return out


def render_sweep_file(
    plan: FollowUp, name: str, sweep: dict | None, base_params: dict | None
) -> str:
    """A complete sweep file for ``gansweep run``: the follow-up's grid on the sweep's base.

    Args:
        plan: The follow-up.
        name: The original sweep's name.
        sweep: The original sweep file (a sweep directory's sweep.yaml), if known.
        base_params: Flattened run config shared by every trial (an MLflow sweep), if known.

    Returns:
        The file's text. Without either, ``base:`` is empty and marked to be filled in.
    """
    header = "".join(f"# {line}\n" for line in plan.header.splitlines())
    header += "".join(f"# Note: {n}\n" for n in plan.notes)
    doc = dict(sweep) if sweep else {}
    rest = {k: v for k, v in doc.items() if k not in ("name", "base", "grid")}
    rest["scaling"] = plan.scaling
    rest["max_trials"] = max(int(rest.get("max_trials") or 0), plan.runs)
    if sweep is not None:
        base, note = doc.get("base") or {}, "the original sweep's"
    elif base_params:
        base, note = _nest(base_params), "the run config every trial of the original sweep shared"
    else:
        base, note = (
            {},
            (
                "FILL IN: the run config of the sweep these results came from (data, model,\n"
                "# loss, epochs, ...). As written it is gansweep's defaults, NOT the original "
                "sweep."
            ),
        )
    full = {"name": f"{_safe_name(name)}-followup-{plan.index}", "base": base, "grid": plan.grid}
    text = yaml.safe_dump({**full, **rest}, sort_keys=False, default_flow_style=None)
    return header + text.replace("\nbase:", f"\n# base: {note}\nbase:", 1)
