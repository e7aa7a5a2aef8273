"""PNG figures of a run: training dynamics, gradient norms and sample grids.

Figures are drawn on matplotlib's object API with the Agg canvas (no pyplot), so
plotting never touches global backend state and works headless and in threads.
All functions take the per-epoch records of docs/CONTRACTS.md or sample arrays
(numpy or torch), write one PNG and return its path.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from PIL import Image

__all__ = ["plot_dynamics", "plot_grad_norms", "save_sample_grid", "image_grid"]

History = Sequence[Mapping[str, Any]]
PathLike = str | os.PathLike

_DPI = 80


def _series(history: History, key: str) -> np.ndarray:
    """One key over the epochs as floats, NaN where missing."""
    out = np.full(len(history), np.nan)
    for i, rec in enumerate(history):
        v = rec.get(key)
        if v is not None:
            out[i] = float(v)
    return out


def _epochs(history: History) -> np.ndarray:
    epochs = _series(history, "epoch")
    return np.where(np.isfinite(epochs), epochs, np.arange(1, len(history) + 1))


def _smooth(values: np.ndarray, window: int) -> np.ndarray:
    """Trailing moving average that skips NaN (a diverged last epoch does not blank the curve)."""
    finite = np.isfinite(values)
    sums = np.cumsum(np.where(finite, values, 0.0))
    counts = np.cumsum(finite)
    lagged_sums = np.concatenate([np.zeros(window), sums[:-window]])[: len(values)]
    lagged_counts = np.concatenate([np.zeros(window), counts[:-window]])[: len(values)]
    n = counts - lagged_counts
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(n > 0, (sums - lagged_sums) / np.maximum(n, 1), np.nan)


def _plot_lines(ax: Axes, x: np.ndarray, lines: Sequence[tuple[np.ndarray, str]]) -> None:
    for y, label in lines:
        if np.isfinite(y).any():
            ax.plot(x, y, label=label, alpha=0.8)
    ax.set_xlabel("Epoch")
    ax.grid(True, alpha=0.3)


def _legend(ax: Axes) -> None:
    if ax.get_legend_handles_labels()[0]:
        ax.legend()


def _save(fig: Figure, path: PathLike) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    FigureCanvasAgg(fig)
    fig.savefig(path, format="png", dpi=_DPI)
    return path


def _require(history: History) -> None:
    if not history:
        raise ValueError("plots: empty history; at least one epoch record is needed")


def plot_dynamics(history: History, path: PathLike, smooth: int | None = None) -> Path:
    """The 2x2 training-dynamics figure of 004 ("Loss Dynamics"), one point per epoch.

    Raw losses; smoothed losses; D outputs with the 0.5 equilibrium line (scaled to [0, 1]
    when they are probabilities, raw critic scores otherwise); D (and G) accuracy.

    Args:
        history: per-epoch records, oldest first.
        path: PNG file to write.
        smooth: moving-average window in epochs; default a tenth of the run, at least 1.

    Returns:
        The path written.

    Raises:
        ValueError: empty history.
    """
    _require(history)
    x = _epochs(history)
    window = smooth or max(1, round(len(history) / 10))
    g, d = _series(history, "loss/g"), _series(history, "loss/d")
    fig = Figure(figsize=(12, 9))
    (ax_raw, ax_smooth), (ax_out, ax_acc) = fig.subplots(2, 2)

    _plot_lines(ax_raw, x, [(g, "Generator Loss"), (d, "Discriminator Loss")])
    ax_raw.set(ylabel="Loss", title="Training Losses")
    _plot_lines(ax_smooth, x, [(_smooth(g, window), "G Loss"), (_smooth(d, window), "D Loss")])
    ax_smooth.set(ylabel="Loss", title=f"Smoothed Losses ({window}-epoch mean)")

    real, fake = _series(history, "d/real"), _series(history, "d/fake")
    _plot_lines(ax_out, x, [(real, "D(real)"), (fake, "D(fake)")])
    both = np.concatenate([real, fake])
    both = both[np.isfinite(both)]
    if both.size == 0 or ((both >= 0) & (both <= 1)).all():
        ax_out.axhline(0.5, color="black", linestyle="--", label="Equilibrium")
        ax_out.set(ylim=(0, 1), ylabel="D Output", title="Discriminator Outputs")
    else:
        ax_out.set(ylabel="Critic score", title="Critic Outputs (raw scores)")

    acc = [
        (_series(history, "d/accuracy"), "D accuracy"),
        (_series(history, "g/accuracy"), "G accuracy"),
    ]
    _plot_lines(ax_acc, x, acc)
    ax_acc.axhline(0.5, color="black", linestyle="--", label="Random")
    ax_acc.set(ylim=(0, 1), ylabel="Accuracy", title="Discriminator Accuracy")
    for ax in (ax_raw, ax_smooth, ax_out, ax_acc):
        _legend(ax)
    fig.subplots_adjust(left=0.08, right=0.98, bottom=0.08, top=0.95, hspace=0.35, wspace=0.2)
    return _save(fig, path)


def _last_layers(history: History, prefix: str) -> dict[str, float]:
    """Per-layer gradient norms from the last record that has them."""
    for rec in reversed(history):
        layers = {
            k[len(prefix) :]: float(v)
            for k, v in rec.items()
            if k.startswith(prefix) and v is not None
        }
        if layers:
            return layers
    return {}


def _log_bars(ax: Axes, layers: dict[str, float], title: str) -> None:
    heights = np.array([v if math.isfinite(v) and v > 0 else np.nan for v in layers.values()])
    ax.set_title(title)
    if not np.isfinite(heights).any():
        ax.text(0.5, 0.5, "no gradient norms", ha="center", va="center", transform=ax.transAxes)
        return
    shown = np.flatnonzero(np.isfinite(heights))
    ax.bar(shown, heights[shown])
    ax.set_xticks(range(len(heights)))
    ax.set_xticklabels(list(layers), rotation=45, ha="right", fontsize=7)
    ax.set_yscale("log")
    ax.set_ylabel("Gradient Norm")


def plot_grad_norms(history: History, path: PathLike) -> Path:
    """Total G and D gradient norms over epochs, and per-layer bars for the last epoch (log scale).

    Follows 004 "Gradient Flow Analysis"; non-positive or NaN norms are left out of the
    log axes rather than crashing them.

    Raises:
        ValueError: empty history.
    """
    _require(history)
    x = _epochs(history)
    fig = Figure(figsize=(12, 9))
    ax_total = fig.add_subplot(2, 1, 1)
    totals = []
    for key, label in (("grad/g_norm", "Generator"), ("grad/d_norm", "Discriminator")):
        y = _series(history, key)
        totals.append((np.where(y > 0, y, np.nan), label))
    _plot_lines(ax_total, x, totals)
    ax_total.set(ylabel="Gradient Norm", title="Total gradient norms")
    if ax_total.get_lines():
        ax_total.set_yscale("log")
    _legend(ax_total)
    epoch = int(x[-1])
    _log_bars(
        fig.add_subplot(2, 2, 3), _last_layers(history, "grad/g/"), f"Generator (epoch {epoch})"
    )
    _log_bars(
        fig.add_subplot(2, 2, 4), _last_layers(history, "grad/d/"), f"Discriminator (epoch {epoch})"
    )
    fig.subplots_adjust(left=0.08, right=0.98, bottom=0.08, top=0.95, hspace=0.35, wspace=0.2)
    return _save(fig, path)


def _to_numpy(samples: Any) -> np.ndarray:
    if hasattr(samples, "detach"):  # a torch tensor, without importing torch here
        samples = samples.detach().cpu().numpy()
    return np.asarray(samples, dtype=np.float64)


def image_grid(images: np.ndarray, nrow: int = 8, padding: int = 2) -> np.ndarray:
    """(N, C, H, W) in [-1, 1] -> uint8 grid (H', W') or (H', W', 3), black padding.

    Image k sits at row k // nrow, column k % nrow, its top-left pixel at
    (padding + row * (H + padding), padding + col * (W + padding)); a value v maps to
    round((clip(v, -1, 1) + 1) / 2 * 255), as torchvision's make_grid does.
    """
    n, c, h, w = images.shape
    cols = min(nrow, n)
    rows = math.ceil(n / cols)
    pixels = np.round((np.clip(images, -1.0, 1.0) + 1.0) / 2.0 * 255.0).astype(np.uint8)
    grid = np.zeros((rows * (h + padding) + padding, cols * (w + padding) + padding, c), np.uint8)
    for k in range(n):
        top = padding + (k // cols) * (h + padding)
        left = padding + (k % cols) * (w + padding)
        grid[top : top + h, left : left + w] = pixels[k].transpose(1, 2, 0)
    return grid[..., 0] if c == 1 else grid


def _scatter(points: np.ndarray, centers: Any, path: PathLike) -> Path:
    fig = Figure(figsize=(6, 6))
    ax = fig.add_subplot(1, 1, 1)
    ax.scatter(points[:, 0], points[:, 1], s=4, alpha=0.5, label=f"{len(points)} samples")
    if centers is not None:
        c = _to_numpy(centers).reshape(-1, 2)
        ax.scatter(c[:, 0], c[:, 1], marker="x", c="red", s=80, label="mode centres")
    ax.set_aspect("equal", adjustable="datalim")
    ax.grid(True, alpha=0.3)
    ax.legend(loc="upper right", fontsize=8)
    fig.subplots_adjust(left=0.08, right=0.98, bottom=0.08, top=0.95, hspace=0.35, wspace=0.2)
    return _save(fig, path)


def save_sample_grid(samples: Any, path: PathLike, nrow: int = 8, centers: Any = None) -> Path:
    """Save generated samples as a PNG: an image grid, or a scatter for 2-D points.

    Args:
        samples: images (N, C, H, W) with C in {1, 3} (or (N, H, W)) in [-1, 1], or points (N, 2);
            numpy or torch.
        path: PNG file to write.
        nrow: images per grid row.
        centers: mode centres (K, 2) marked on a scatter; ignored for images.

    Returns:
        The path written.

    Raises:
        ValueError: no samples, or a shape that is neither images nor 2-D points.
    """
    x = _to_numpy(samples)
    if x.shape[0] == 0:
        raise ValueError("save_sample_grid: no samples")
    if x.ndim == 2 and x.shape[1] == 2:
        return _scatter(x, centers, path)
    if x.ndim == 3:
        x = x[:, None]
    if x.ndim != 4 or x.shape[1] not in (1, 3):
        raise ValueError(
            f"save_sample_grid: expected images (N, C, H, W) with C in (1, 3) or points (N, 2), "
            f"got shape {tuple(x.shape)}"
        )
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(image_grid(x, max(1, nrow))).save(path, format="PNG")
    return path
