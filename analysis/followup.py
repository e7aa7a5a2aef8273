"""Follow-up sweeps: the smallest extra grid that would decide what this sweep could not."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd
import yaml

from analysis.evidence import GridContext
from analysis.fixes import WORKING_SHARE

__all__ = ["FollowUp", "plan_followups", "seeds_needed"]

_MAX_STREAM_SEEDS = 4


class _NoAliases(yaml.SafeDumper):
    """Writes repeated lists out in full: a sweep file should not need YAML anchors."""

    def ignore_aliases(self, data) -> bool:
        return True


@dataclass(frozen=True)
class FollowUp:
    """One ready-to-run follow-up grid.

    Attributes:
        index: 1-based number, as referred to by fixes and actions.
        purpose: ``decide`` (more seeds / batch sizes for inconclusive failures), ``streams``
            (init seed x data seed, to tell an unlucky initialisation from an unlucky data order)
            or ``lr`` (lower learning rates, when everything failed at the only LR tried).
        panel: The panel (LR and other varied params) it runs in.
        decides: Trial ids it is meant to decide.
        grid: Parameter -> values, as in a sweep file's ``grid:``.
        runs: Trials in the grid.
        new_runs: Of those, combinations this sweep has not run yet.
        yaml: The sweep-file fragment, with a comment header.
    """

    index: int
    purpose: str
    panel: str
    decides: list
    grid: dict
    runs: int
    new_runs: int
    yaml: str


def seeds_needed(target: float) -> int:
    """Other seeds at a batch size needed before one failure there can reach ``target``.

    One failed trial against m successful other seeds has Fisher p = 1/(m+1), so m >= 1/(1-t) - 1.
    """
    return max(1, math.ceil(1.0 / (1.0 - target) - 1e-9) - 1)


def _py(v):
    if isinstance(v, (np.integer,)):
        return int(v)
    if isinstance(v, (np.floating,)):
        return float(v)
    if isinstance(v, (np.bool_,)):
        return bool(v)
    return v


@dataclass(frozen=True)
class _Sweep:
    """What every plan needs from the sweep, computed once."""

    first_rows: dict  # panel -> one trial's record (LR and group values)
    ref_batch: int  # smallest batch size: the reference of an LR scaling rule
    groups: list
    scaling: str
    seeds: list  # every seed value used, for numbering new seeds
    need: int  # other seeds needed at a batch size for the target confidence


def _summarise(live: pd.DataFrame, groups: list, scaling: str, need: int) -> _Sweep:
    first = live.groupby("panel", sort=False).head(1).set_index("panel")
    seeds = list(pd.unique(live[["seed", "init_seed", "data_seed"]].to_numpy().ravel()))
    return _Sweep(
        first.to_dict("index"), int(live["batch_size"].min()), groups, scaling, seeds, need
    )


def _fixed_params(sweep: _Sweep, panel: int) -> dict:
    row = sweep.first_rows[panel]
    fixed: dict = {}
    if math.isfinite(row["g_lr"]):
        ratio = row["batch_size"] / sweep.ref_batch
        factor = {"linear": ratio, "sqrt": math.sqrt(ratio)}.get(sweep.scaling, 1.0)
        g, d = row["g_lr"] / factor, row["d_lr"] / factor
        if math.isclose(g, d, rel_tol=1e-9):
            fixed["lr"] = [float(f"{g:.6g}")]
        else:
            fixed["train.g_lr"], fixed["train.d_lr"] = [float(f"{g:.6g}")], [float(f"{d:.6g}")]
    for col in sweep.groups:
        fixed[col] = [_py(row[col])]
    return fixed


def _new_units(sweep: _Sweep, count: int, taken: set) -> list:
    if all(isinstance(v, (int, np.integer)) for v in sweep.seeds):
        start = int(max(sweep.seeds)) + 1
        return list(range(start, start + count))
    out, i = [], 1
    while len(out) < count:
        if f"extra{i}" not in taken:
            out.append(f"extra{i}")
        i += 1
    return out


def _reference_batch(ctx: GridContext, panel: int, below: int) -> int | None:
    smaller = [b for b in ctx.panel_batches.get(panel, []) if b < below]
    working = [b for b in smaller if ctx.col_share.get((panel, b), 1.0) <= WORKING_SHARE]
    if working:
        return max(working)
    if smaller:
        return max(smaller)
    return below // 2 if below >= 2 else None


def _decide_grid(ctx: GridContext, sweep: _Sweep, trials: pd.DataFrame) -> tuple[list, list]:
    panel = int(trials["panel"].iloc[0])
    units = list(dict.fromkeys(trials["unit"]))
    batches = sorted(set(int(b) for b in trials["batch_size"]))
    # A smaller reference batch decides batch-size questions and gives a lone seed a row;
    # an init question needs only more seeds at the failing batch sizes.
    wants_ref = trials["best_guess"].isin(["batch", "both"]) & (trials["confidence"] > 0)
    if (wants_ref | (trials["R_n"] == 0)).any():
        ref = _reference_batch(ctx, panel, min(batches))
        if ref is not None:
            batches = sorted(set(batches) | {ref})
    extra = int(max(0, (sweep.need - trials["C_n"]).max()))
    if extra:
        present = {
            u
            for b in batches
            for u in ctx.col_ok.get((panel, b), []) + ctx.col_fail.get((panel, b), [])
        }
        panel_units = ctx.units.get(panel, [])
        reuse = [u for u in panel_units if u not in present and u not in units][:extra]
        units += reuse + _new_units(sweep, extra - len(reuse), set(map(str, panel_units)))
    return units, batches


def _existing(ctx: GridContext, panel: int, units, batches) -> int:
    """Grid cells (seed, batch) this sweep already ran."""
    wanted = set(batches)
    return sum(
        len(wanted & (set(ctx.row_ok.get((panel, u), [])) | set(ctx.row_fail.get((panel, u), []))))
        for u in units
    )


def _render(
    index: int, purpose: str, label: str, decides: list, grid: dict, runs: int, new: int, note: str
) -> str:
    header = [
        f"# gansweep follow-up {index} ({purpose}): {note}",
        f"# Runs in {label}; decides {len(decides)} failed trial(s): "
        + ", ".join(map(str, decides[:8]))
        + (" ..." if len(decides) > 8 else ""),
        f"# {runs} runs, {new} of them not run yet. "
        "Use as the grid of a sweep with the same base config.",
    ]
    body = yaml.dump({"grid": grid}, Dumper=_NoAliases, default_flow_style=None, sort_keys=False)
    return "\n".join(header) + "\n" + body


def _plan(
    index: int, purpose: str, label: str, ids: list, grid: dict, runs: int, new: int, note: str
) -> FollowUp:
    return FollowUp(
        index,
        purpose,
        label,
        ids,
        grid,
        runs,
        new,
        _render(index, purpose, label, ids, grid, runs, new, note),
    )


def whole_panel_failed(frame: pd.DataFrame) -> pd.Series:
    """Inconclusive failures in a panel that failed nearly everywhere, with no other LR tried."""
    return (
        (frame["cause"] == "inconclusive")
        & (frame["BO_panel"] < 0)
        & (frame["P_rate"] >= 0.5)
        & (frame["min_batch_rate"] >= 0.5)
    )


def _lr_followups(frame, ctx: GridContext, sweep: _Sweep, start: int) -> list[FollowUp]:
    out = []
    todo = frame[whole_panel_failed(frame) & (frame["ctx_unit"] == ctx.unit)]
    note = "the only LR tried failed nearly everywhere: try it 3x and 10x lower"
    for panel, trials in todo.groupby("panel", sort=True):
        fixed = _fixed_params(sweep, panel)
        units = ctx.units.get(panel, [])[:5]
        grid = {ctx.unit: [_py(u) for u in units], "batch_size": [min(ctx.panel_batches[panel])]}
        for key in ("lr", "train.g_lr", "train.d_lr"):
            if key in fixed:
                fixed[key] = [float(f"{fixed[key][0] * f:.3g}") for f in (0.1, 0.3)]
        grid.update(fixed)
        runs = len(units) * 2
        out.append(
            _plan(
                start + len(out),
                "lr",
                ctx.panel_info[panel]["panel_label"],
                list(trials["trial_id"]),
                grid,
                runs,
                runs,
                note,
            )
        )
    return out


def _decide_followups(frame, ctx: GridContext, sweep: _Sweep, start: int) -> list[FollowUp]:
    out = []
    todo = frame[(frame["cause"] == "inconclusive") & (frame["ctx_unit"] == ctx.unit)]
    todo = todo[~whole_panel_failed(todo)]
    lacking = todo[(todo["C_n"] < sweep.need) | (todo["R_n"] == 0) | (todo["confidence"] > 0)]
    note = f"more {ctx.word}s and batch sizes, enough for confidence {1 - 1 / (sweep.need + 1):.1f}"
    for panel, trials in lacking.groupby("panel", sort=True):
        units, batches = _decide_grid(ctx, sweep, trials)
        grid = {ctx.unit: [_py(u) for u in units], "batch_size": batches}
        grid.update(_fixed_params(sweep, panel))
        runs = len(units) * len(batches)
        new = runs - _existing(ctx, panel, units, batches)
        out.append(
            _plan(
                start + len(out),
                "decide",
                ctx.panel_info[panel]["panel_label"],
                list(trials["trial_id"]),
                grid,
                runs,
                new,
                note,
            )
        )
    return out


def _stream_representatives(frame: pd.DataFrame) -> pd.DataFrame:
    """Init failures: one row per (panel, seed), at its smallest failing batch, deciding all of
    that seed's init failures; lone unexplained failures: each its own row."""
    seedwise = frame[(frame["ctx_unit"] == "seed") & (frame["cause"] == "init")]
    reps = seedwise.sort_values("batch_size").groupby(["panel", "unit"], sort=False).head(1).copy()
    ids = seedwise.groupby(["panel", "unit"])["trial_id"].agg(list)
    reps["ids"] = [ids[(p, u)] for p, u in zip(reps["panel"], reps["unit"], strict=True)]
    lone = frame[
        (frame["ctx_unit"] == "seed")
        & (frame["cause"] == "inconclusive")
        & (frame["confidence"] <= 0)
        & (frame["R_k"] == 0)
        & (frame["C_k"] == 0)  # unexplained: nothing else failed in its row or column
    ].copy()
    lone["ids"] = [[t] for t in lone["trial_id"]]
    return pd.concat([reps, lone]).sort_values(["panel", "batch_size"], kind="stable")


def _streams_followups(frame, ctx: GridContext, sweep: _Sweep, start: int) -> list[FollowUp]:
    out = []
    note = (
        "init seed x data seed: a seed that fails with every data order is unlucky "
        "initialisation; one that fails only with its own data order, unlucky batch order"
    )
    reps_all = _stream_representatives(frame)
    for (panel, batch), reps in reps_all.groupby(["panel", "batch_size"], sort=True):
        bad_all = list(dict.fromkeys(reps["unit"]))
        good = [u for u in ctx.col_ok.get((panel, batch), []) if u not in bad_all][:1]
        for i in range(0, len(bad_all), _MAX_STREAM_SEEDS):
            bad = bad_all[i : i + _MAX_STREAM_SEEDS]
            seeds = [_py(u) for u in bad + good]
            grid = {"init_seed": list(seeds), "data_seed": list(seeds), "batch_size": [int(batch)]}
            grid.update(_fixed_params(sweep, panel))
            ids = [t for row in reps.loc[reps["unit"].isin(bad), "ids"] for t in row]
            runs = len(seeds) ** 2
            out.append(
                _plan(
                    start + len(out),
                    "streams",
                    ctx.panel_info[panel]["panel_label"],
                    ids,
                    grid,
                    runs,
                    runs - len(seeds),
                    note,
                )
            )
    return out


def plan_followups(
    frame: pd.DataFrame,
    contexts: dict[str, GridContext],
    live: pd.DataFrame,
    groups: list[str],
    scaling: str,
    separated: bool,
    target: float,
) -> tuple[list[FollowUp], dict[str, int]]:
    """Plan follow-up grids for the failures this sweep could not decide.

    Args:
        frame: The triage frame of failed trials (cause, counts, ``unit``, ``ctx_unit``, panel).
        contexts: Grid lookups by seed column.
        live: Analysable trials with ``panel``.
        groups: Other varied parameters (kept fixed in each follow-up).
        scaling: The LR scaling rule the sweep used (``none``, ``linear``, ``sqrt``).
        separated: Whether init and data seeds were already varied independently.
        target: Confidence the follow-up should make reachable.

    Returns:
        The follow-ups and, per trial id, the index of the follow-up that decides it.
    """
    sweep = _summarise(live, groups, scaling, seeds_needed(target))
    plans: list[FollowUp] = []
    for ctx in contexts.values():
        plans += _decide_followups(frame, ctx, sweep, len(plans) + 1)
        plans += _lr_followups(frame, ctx, sweep, len(plans) + 1)
    if not separated and "seed" in contexts:
        plans += _streams_followups(frame, contexts["seed"], sweep, len(plans) + 1)
    owner: dict[str, int] = {}
    for plan in plans:
        for trial_id in plan.decides:
            owner.setdefault(trial_id, plan.index)
    return plans, owner
