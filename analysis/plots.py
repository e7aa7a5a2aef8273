"""Figures for the report, drawn with matplotlib's object API (no pyplot, no global state)."""

from __future__ import annotations

import io
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

if TYPE_CHECKING:  # matplotlib is imported where a figure is drawn: the CLI starts fast
    from matplotlib.figure import Figure

__all__ = ["CAUSE_MARKS", "outcome_matrix", "heatmap_png", "loss_curves_png", "table_rows"]

CAUSE_MARKS = {"init": "I", "batch": "B", "both": "IB", "lr": "LR", "inconclusive": "?"}
_COLORS = ["#4caf50", "#ffb74d", "#e53935"]  # success, mixed replicates, failure
_ANNOTATE_MAX = 30  # seeds; beyond this cells are too small for text (the HTML table has them)
_ROWS_DRAWN = 40  # beyond this many seeds the image keeps its height and drops the cell lines


def outcome_matrix(panel_trials: pd.DataFrame, unit: str) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Failure share and cause marks over seed x batch size for one panel.

    Args:
        panel_trials: The panel's analysable trials with ``failed`` and ``cause``.
        unit: The seed column for the rows.

    Returns:
        ``(share, marks)``: failure share per cell (NaN where not run) and the cause marks of
        the failed trials in each cell ('' where none).
    """
    share = panel_trials.pivot_table(
        index=unit, columns="batch_size", values="failed", aggfunc="mean", observed=True
    ).astype(float)
    failed = panel_trials.loc[panel_trials["failed"], [unit, "batch_size", "cause"]]
    failed = failed.assign(mark=failed["cause"].map(CAUSE_MARKS).fillna("?"))
    failed = failed.drop_duplicates([unit, "batch_size", "mark"]).sort_values("mark")
    text = failed.groupby([unit, "batch_size"])["mark"].agg("/".join)
    marks = text.unstack("batch_size").reindex(index=share.index, columns=share.columns)
    return share, marks.astype(object).fillna("")


def table_rows(share: pd.DataFrame, limit: int) -> pd.Index:
    """Rows (seeds) a table shows: all of them, or the first ``limit`` with a failure."""
    if len(share) <= limit:
        return share.index
    failing = share.index[(share.fillna(0) > 0).any(axis=1).to_numpy()]
    return failing[:limit]


def _plain(text) -> str:
    """Text from the data shown as written: a ``$`` would start matplotlib math text."""
    return str(text).replace("$", r"\$")


def _png(fig: Figure) -> bytes:
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    FigureCanvasAgg(fig)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100)
    return buf.getvalue()


def _draw_heatmap(ax, share: pd.DataFrame, marks: pd.DataFrame, title: str) -> None:
    n_rows, n_cols = share.shape
    values = share.to_numpy(dtype=float)
    coded = np.where(values >= 1, 2.0, np.where(values <= 0, 0.0, 1.0))
    coded[np.isnan(values)] = np.nan
    from matplotlib.colors import ListedColormap

    cmap = ListedColormap(_COLORS).with_extremes(bad="#d9d9d9")
    ax.imshow(
        np.ma.masked_invalid(coded),
        cmap=cmap,
        vmin=0,
        vmax=2,
        aspect="auto",
        interpolation="nearest",
    )
    thin = 1.0 if n_rows <= _ANNOTATE_MAX else 0.3
    if n_rows <= _ROWS_DRAWN:
        ax.hlines(np.arange(-0.5, n_rows), -0.5, n_cols - 0.5, colors="white", linewidth=thin)
    ax.vlines(np.arange(-0.5, n_cols), -0.5, n_rows - 0.5, colors="white", linewidth=thin)
    ax.set_xticks(range(n_cols), [_plain(c) for c in share.columns])
    ax.set_xlabel("batch size")
    ax.set_title(_plain(title), fontsize=9)
    if n_rows <= _ANNOTATE_MAX:
        for (i, j), m in np.ndenumerate(marks.to_numpy()):
            if m:
                ax.text(
                    j, i, m, ha="center", va="center", fontsize=7, color="white", fontweight="bold"
                )


def heatmap_png(panels: list, title: str, unit_word: str) -> bytes:
    """Outcome heatmaps of one group's LRs side by side, as PNG bytes.

    Args:
        panels: ``(lr_title, share, marks)`` per LR, from `outcome_matrix`; rows are aligned
            to the union of their seeds (seeds not run at an LR show grey).
        title: The group (other varied params), or '' when there is none.
        unit_word: Label of the rows ("seed", "init seed").

    Returns:
        PNG bytes. Green: succeeded, red: failed (letters give the cause), orange: replicates
        disagree, grey: not run.
    """
    from matplotlib.figure import Figure
    from matplotlib.patches import Patch

    rows = sorted(set().union(*(p[1].index for p in panels)), key=lambda v: (isinstance(v, str), v))
    n_rows = len(rows)
    widths = [0.6 + 0.55 * p[1].shape[1] for p in panels]
    # Fixed margins in inches instead of tight_layout, which costs more than the drawing.
    width = sum(widths) + 0.35 * len(panels) + 2.2
    height = 1.4 + 0.22 * min(max(n_rows, 3), _ROWS_DRAWN)
    fig = Figure(figsize=(width, height))
    fig.subplots_adjust(
        left=0.75 / width,
        right=1 - 1.25 / width,
        bottom=0.7 / height,
        top=1 - (0.6 if title else 0.4) / height,
        wspace=0.35 * len(panels) / sum(widths),
    )
    axes = fig.subplots(
        1, len(panels), sharey=True, squeeze=False, gridspec_kw={"width_ratios": widths}
    )[0]
    for ax, (lr_title, share, marks) in zip(axes, panels, strict=True):
        _draw_heatmap(ax, share.reindex(rows), marks.reindex(rows).fillna(""), lr_title)
    step = max(1, n_rows // (40 if n_rows <= _ROWS_DRAWN else 16))
    axes[0].set_yticks(range(0, n_rows, step), [_plain(r) for r in rows[::step]])
    axes[0].set_ylabel(_plain(unit_word))
    if title:
        fig.suptitle(_plain(title), fontsize=10)
    legend = [
        Patch(color=_COLORS[0], label="succeeded"),
        Patch(color=_COLORS[2], label="failed"),
        Patch(color=_COLORS[1], label="mixed"),
        Patch(color="#d9d9d9", label="not run"),
    ]
    axes[-1].legend(
        handles=legend, loc="upper left", bbox_to_anchor=(1.04, 1.0), fontsize=7, frameon=False
    )
    return _png(fig)


def loss_curves_png(epochs: pd.DataFrame, title: str, onset: float | None = None) -> bytes | None:
    """D and G loss per epoch of one trial.

    The guide's mode-collapse band for the D loss (0.72-0.75) is shaded; the verdict's onset
    epoch is marked.

    Args:
        epochs: The trial's rows of epochs.parquet (``epoch``, ``loss/d``, ``loss/g``).
        title: Figure title (the trial id).
        onset: Epoch the verdict's problem began, if any.

    Returns:
        PNG bytes, or None without loss columns.
    """
    from matplotlib.figure import Figure

    keys = [k for k in ("loss/d", "loss/g") if k in epochs.columns and epochs[k].notna().any()]
    if not keys or "epoch" not in epochs.columns:
        return None
    data = epochs.sort_values("epoch")
    fig = Figure(figsize=(4.6, 2.6))
    ax = fig.add_subplot()
    for key, color in zip(keys, ("#1f77b4", "#d62728"), strict=False):
        ax.plot(data["epoch"], data[key], label=key, color=color, linewidth=1.4)
    ax.axhspan(0.72, 0.75, color="#ffcc80", alpha=0.5, label="collapse band (D)")
    if onset is not None:
        ax.axvline(onset, color="black", linestyle="--", linewidth=1, label=f"onset {onset:g}")
    ax.set_xlabel("epoch")
    ax.set_ylabel("loss")
    ax.set_title(_plain(title), fontsize=9)
    ax.legend(fontsize=7, frameon=False)
    fig.subplots_adjust(left=0.14, right=0.97, bottom=0.18, top=0.88)
    return _png(fig)
