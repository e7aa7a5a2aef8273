"""Counts behind every comparison, for all failed trials at once (pandas groupby, no per-row loops).

A *panel* is one learning-rate level within one combination of the other varied parameters: the
seed x batch-size grid in which trials are compared. A *unit* is the seed column the grid is laid
out by (``seed``, or ``init_seed`` / ``data_seed`` when the sweep varied them independently).
For a failed trial t at (seed s, batch b) of panel P the counts are (n runs, k failures):

=========  =====================================================================
``cell``   seed s at batch b (t itself and any replicate)
``R``      seed s at its other batch sizes
``Rlt``    seed s at smaller batch sizes
``C``      the other seeds at batch b
``O``      the other seeds at the batch sizes of ``R``
``Sm``     the other seeds run at b, at batch sizes smaller than b
``P``      the whole panel without t
``BO``     the best other LR of the same group (lowest failure rate), whole panel
``Up``     seed s at batch sizes from its smallest failing one upwards (t included)
``Dn``     seed s at batch sizes below its smallest failing one (all succeeded)
=========  =====================================================================

``A_p`` is the exact test, stratified by batch size, that seed s fails more than the other seeds
at its other batch sizes (`analysis.stats.stratified_exact_greater`): a batch size at which
every seed failed says nothing about the seed.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from analysis.stats import stratified_exact_greater

__all__ = ["add_panels", "cell_counts", "panel_table", "trial_counts"]

_KEYS = ("cell", "R", "Rlt", "C", "O", "Sm", "P", "BO")


def add_panels(df: pd.DataFrame) -> pd.DataFrame:
    """Add ``panel`` (int id) and ``panel_label`` to a normalised table, ordered group then LR."""
    out = df.copy()
    lr_order = out.groupby("lr_key")["g_lr"].transform("min").fillna(0.0)
    order = (
        pd.DataFrame({"g": out["group_key"], "lr": lr_order, "k": out["lr_key"]})
        .drop_duplicates()
        .sort_values(["g", "lr", "k"])
    )
    ids = pd.MultiIndex.from_arrays([order["g"], order["k"]])
    out["panel"] = ids.get_indexer(pd.MultiIndex.from_arrays([out["group_key"], out["lr_key"]]))
    lr_text = np.where(out["lr_key"] == "n/a", "lr n/a", "lr " + out["lr_key"])
    out["panel_label"] = np.where(
        out["group_key"] == "", lr_text, lr_text + ", " + out["group_key"]
    )
    return out


def cell_counts(df: pd.DataFrame, unit: str) -> pd.DataFrame:
    """Runs and failures per (panel, unit, batch) cell, with row, column and below-cell sums.

    Args:
        df: Analysable trials with ``panel``, ``batch_size``, ``failed`` and the unit column.
        unit: The seed column that lays out the grid.

    Returns:
        One row per non-empty cell: ``n``, ``k``; ``below_n``/``below_k`` (same unit, smaller
        batches); ``col_n``/``col_k`` (all units at this batch); ``row_n``/``row_k`` (this unit,
        all batches); ``smc_n``/``smc_k`` (sum of ``below`` over the units run at this batch);
        ``scol_n``/``scol_k`` (sum of the column totals over this unit's batches).
    """
    cells = (
        df.groupby(["panel", unit, "batch_size"], sort=True)["failed"]
        .agg(n="size", k="sum")
        .reset_index()
    )
    cells["k"] = cells["k"].astype(np.int64)
    by_row = cells.groupby(["panel", unit], sort=False)
    cells["below_n"] = by_row["n"].cumsum() - cells["n"]
    cells["below_k"] = by_row["k"].cumsum() - cells["k"]
    cells["row_n"] = by_row["n"].transform("sum")
    cells["row_k"] = by_row["k"].transform("sum")
    by_col = cells.groupby(["panel", "batch_size"], sort=False)
    cells["col_n"] = by_col["n"].transform("sum")
    cells["col_k"] = by_col["k"].transform("sum")
    cells["smc_n"] = by_col["below_n"].transform("sum")
    cells["smc_k"] = by_col["below_k"].transform("sum")
    by_row = cells.groupby(["panel", unit], sort=False)
    cells["scol_n"] = by_row["col_n"].transform("sum")
    cells["scol_k"] = by_row["col_k"].transform("sum")
    # The row's step: below its first failing batch everything succeeded (cumsum of k is 0).
    below_first = by_row["k"].cumsum() == 0
    cells["dn_n"] = (
        cells["n"].where(below_first, 0).groupby([cells["panel"], cells[unit]]).transform("sum")
    )
    cells["up_n"] = cells["row_n"] - cells["dn_n"]
    return cells


def panel_table(df: pd.DataFrame) -> pd.DataFrame:
    """One row per panel: totals, the smallest batch's failure share and the best other LR.

    Returns:
        Indexed by panel id: ``group_key``, ``lr_key``, ``panel_label``, ``n``, ``k``, ``rate``,
        ``min_batch``, ``min_batch_rate``, ``best_other`` (panel id of the same group's other LR
        with the lowest failure rate, -1 when the group has one LR).
    """
    base = df.groupby("panel").agg(
        group_key=("group_key", "first"),
        lr_key=("lr_key", "first"),
        panel_label=("panel_label", "first"),
        n=("failed", "size"),
        k=("failed", "sum"),
        min_batch=("batch_size", "min"),
    )
    base["k"] = base["k"].astype(np.int64)
    base["rate"] = base["k"] / base["n"]
    at_min = df[df["batch_size"] == df["panel"].map(base["min_batch"])]
    base["min_batch_rate"] = at_min.groupby("panel")["failed"].mean()
    ranked = base.reset_index().sort_values(
        ["group_key", "rate", "n"], ascending=[True, True, False]
    )
    ranked["pos"] = ranked.groupby("group_key").cumcount()
    first = ranked[ranked["pos"] == 0].set_index("group_key")["panel"]
    second = ranked[ranked["pos"] == 1].set_index("group_key")["panel"]
    ranked["best_other"] = np.where(
        ranked["pos"] == 0,
        ranked["group_key"].map(second).fillna(-1),
        ranked["group_key"].map(first),
    ).astype(np.int64)
    base["best_other"] = ranked.set_index("panel")["best_other"]
    return base


def _row_elsewhere_p(cells: pd.DataFrame, trials: pd.DataFrame, unit: str) -> np.ndarray:
    """Stratified exact p that each trial's seed fails more than the others elsewhere in its row."""
    if trials.empty:
        return np.ones(0)
    row_id = cells.groupby(["panel", unit], sort=False).ngroup().to_numpy()
    pos = cells.groupby(["panel", unit], sort=False).cumcount().to_numpy()
    shape = (row_id.max() + 1, pos.max() + 1)
    grids = {}
    for name in ("n", "k", "col_n", "col_k"):
        grids[name] = np.zeros(shape, dtype=np.int64)
        grids[name][row_id, pos] = cells[name].to_numpy()
    key = pd.MultiIndex.from_frame(cells[["panel", unit, "batch_size"]])
    at = key.get_indexer(pd.MultiIndex.from_frame(trials[["panel", unit, "batch_size"]]))
    r, j = row_id[at], pos[at]
    n, k = grids["n"][r].copy(), grids["k"][r].copy()
    n[np.arange(len(r)), j] = 0  # the trial's own batch size is not "elsewhere"
    k[np.arange(len(r)), j] = 0
    return stratified_exact_greater(n, k, grids["col_n"][r], grids["col_k"][r])


def trial_counts(df: pd.DataFrame, unit: str, panels: pd.DataFrame) -> pd.DataFrame:
    """The counts of the module docstring for every failed trial of ``df``.

    Args:
        df: Analysable trials with ``panel``.
        unit: The seed column that lays out the grid.
        panels: `panel_table` of the same trials.

    Returns:
        Indexed like the failed rows of ``df``: ``<key>_n`` and ``<key>_k`` for each key, and
        ``C_ok`` (successes among the other seeds at b).
    """
    cells = cell_counts(df, unit)
    failed = df.loc[df["failed"], ["panel", unit, "batch_size"]]
    t = failed.merge(cells, on=["panel", unit, "batch_size"], how="left")  # keeps left order
    t.index = failed.index
    out = pd.DataFrame(index=failed.index)
    out["cell_n"], out["cell_k"] = t["n"], t["k"]
    out["R_n"], out["R_k"] = t["row_n"] - t["n"], t["row_k"] - t["k"]
    out["Rlt_n"], out["Rlt_k"] = t["below_n"], t["below_k"]
    out["C_n"], out["C_k"] = t["col_n"] - t["n"], t["col_k"] - t["k"]
    out["O_n"] = t["scol_n"] - t["col_n"] - out["R_n"]
    out["O_k"] = t["scol_k"] - t["col_k"] - out["R_k"]
    out["Sm_n"], out["Sm_k"] = t["smc_n"] - t["below_n"], t["smc_k"] - t["below_k"]
    pan = panels.loc[t["panel"]]
    out["P_n"] = pan["n"].to_numpy() - 1
    out["P_k"] = pan["k"].to_numpy() - 1
    out["P_rate"] = np.divide(out["P_k"], out["P_n"], out=np.zeros(len(out)), where=out["P_n"] > 0)
    out["min_batch_rate"] = pan["min_batch_rate"].to_numpy()
    other = pan["best_other"].to_numpy()
    has_other = other >= 0
    safe = np.where(has_other, other, panels.index[0])
    out["BO_n"] = np.where(has_other, panels.loc[safe, "n"].to_numpy(), 0)
    out["BO_k"] = np.where(has_other, panels.loc[safe, "k"].to_numpy(), 0)
    out["BO_panel"] = other
    out["Up_n"], out["Up_k"] = t["up_n"], t["row_k"]
    out["Dn_n"], out["Dn_k"] = t["dn_n"], 0
    out["C_ok"] = out["C_n"] - out["C_k"]
    out["A_p"] = _row_elsewhere_p(cells, t, unit)
    ints = [c for c in out.columns if c.endswith(("_n", "_k", "_ok"))]
    return out.astype(dict.fromkeys(ints, np.int64))
