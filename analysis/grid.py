"""Panels: the units of comparison. A panel is one learning-rate level within one combination of
the other varied parameters (a *group*); the grid model (`analysis.model`) fits each group's
panels together, and reports, heatmaps and follow-ups speak of panels.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

__all__ = ["add_panels", "panel_table"]


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


def panel_table(df: pd.DataFrame) -> pd.DataFrame:
    """One row per panel: its group, LR level, label and totals.

    Returns:
        Indexed by panel id: ``group_key``, ``lr_key``, ``panel_label``, ``n`` (runs), ``k``
        (failures).
    """
    base = df.groupby("panel").agg(
        group_key=("group_key", "first"),
        lr_key=("lr_key", "first"),
        panel_label=("panel_label", "first"),
        n=("failed", "size"),
        k=("failed", "sum"),
    )
    base["k"] = base["k"].astype(np.int64)
    return base
