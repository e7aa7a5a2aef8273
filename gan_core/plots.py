"""PNG figures of a run: training dynamics, gradient norms and sample grids.

Figures are drawn on matplotlib's object API with the Agg canvas (no pyplot), so
plotting never touches global backend state and works headless and in threads.
All functions take the per-epoch records of docs/CONTRACTS.md or sample arrays
(numpy or torch), write one PNG and return its path.

They are cheap because a sweep draws them for every run: each thread keeps one figure per
kind and layout and redraws it with the next run's data (`_template`), and the settings
below spare matplotlib work it repeats on every draw. One member's three figures took
0.42-0.56 s of CPU before and about a third of that after (docs/benchmarks.md, 2026-12-02).
"""

from __future__ import annotations

import math
import os
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.ticker import FuncFormatter, LogLocator, MaxNLocator
from matplotlib.transforms import ScaledTranslation
from PIL import Image

__all__ = ["plot_dynamics", "plot_grad_norms", "save_sample_grid", "image_grid"]

History = Sequence[Mapping[str, Any]]
PathLike = str | os.PathLike

_DPI = 80
# Drawing, not building, is most of a figure's cost (tick and text layout). Each setting
# keeps what a reader sees and removes work matplotlib repeats on every draw.
_PNG_LEVEL = 1  # zlib level: 1 encodes ~2x faster than PIL's 6; RGB files stay as small as RGBA 6
# At most this many tick intervals on an epoch (x) axis and on a value (y) axis; matplotlib's
# default asks up to 9 on these axes, and each labelled tick costs a text layout per draw.
_X_TICKS, _TICKS = 8, 6
_STEPS = [1, 2, 2.5, 5, 10]  # tick spacings matplotlib's default locator allows
_XLABEL_PT = 21  # x label's top below the axes: tick (3.5) + pad (3.5) + label row + labelpad (4)


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


def _decorate(ax: Axes, title: str, xlabel: str | None, ylabel: str | None) -> None:
    """Title, axis labels and grid at fixed places.

    A title given its `y` and an x label given its place are not re-placed on each draw:
    matplotlib would otherwise lay out every tick label again to check for overlaps, which
    took a third of a figure's time. The x label sits where matplotlib puts it below one row of
    default-size tick labels; y labels stay automatic (tick labels vary in width).
    """
    ax.set_title(title, y=1.0)
    if xlabel:
        ax.set_xlabel(xlabel)
        below = ax.transAxes + ScaledTranslation(0, -_XLABEL_PT / 72, ax.figure.dpi_scale_trans)
        ax.xaxis.set_label_coords(0.5, 0, transform=below)
    if ylabel:
        ax.set_ylabel(ylabel)
    ax.grid(True, alpha=0.3)


def _linear_ticks(ax: Axes) -> None:
    ax.xaxis.set_major_locator(MaxNLocator(_X_TICKS, steps=_STEPS, integer=True))
    ax.yaxis.set_major_locator(MaxNLocator(_TICKS, steps=_STEPS))


def _log_y(ax: Axes) -> None:
    """Log y axis labelled in plain text (1e-05 ... 0.1, 1, 10), minor ticks at 2 and 5.

    matplotlib's default labels are mathtext, parsed anew on every figure (an eighth of the
    gradient figure's time), with eight minor ticks a decade, each a set of artists.
    """
    ax.set_yscale("log")
    ax.yaxis.set_major_locator(LogLocator(numticks=_TICKS + 2))
    ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
    ax.yaxis.set_minor_locator(LogLocator(subs=(2.0, 5.0), numticks=_TICKS + 2))

    def minor(value: float, _: int) -> str:  # labelled only on a short axis (< 1.5 decades)
        low, high = ax.yaxis.get_view_interval()
        return f"{value:g}" if 0 < low and high < 30 * low else ""

    ax.yaxis.set_minor_formatter(FuncFormatter(minor))


def _legend(ax: Axes) -> None:
    if ax.get_legend_handles_labels()[0]:
        ax.legend()


def _rescale(ax: Axes, scalex: bool = True) -> None:
    """Data limits from the artists' current data, then the view from them (as when drawn fresh)."""
    ax.relim()
    ax.autoscale_view(scalex=scalex)


@dataclass
class _Template:
    """One figure kind's drawn layout: the Figure and the artists whose data change per call."""

    key: tuple
    fig: Figure
    axes: list[Axes]
    artists: list[list[Any]]
    canvas: FigureCanvasAgg = field(init=False)

    def __post_init__(self) -> None:
        self.canvas = FigureCanvasAgg(self.fig)


_held = threading.local()


def _template(kind: str, key: tuple, build: Callable[[], _Template]) -> _Template:
    """This thread's template of `kind` for layout `key`, built when the layout changes.

    A pack's members share their layout (series present, layer names), so after the first
    member only data, titles and limits change; the axes and tick artists that matplotlib
    would otherwise rebuild (a third of a figure's time) are reused. One per kind and thread.
    A template is built with its first call's data, as a one-off figure would be, so a test
    can compare a reused template's pixels with a fresh figure's.
    """
    templates: dict[str, _Template] = _held.__dict__.setdefault("templates", {})
    held = templates.get(kind)
    if held is None or held.key != key:
        held = templates[kind] = build()
    return held


def _save(template: _Template, path: PathLike) -> Path:
    """Draw with Agg and write an RGB PNG at a fast zlib level (the figures have no alpha)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    template.canvas.draw()
    rgb = np.asarray(template.canvas.buffer_rgba())[..., :3]
    Image.fromarray(rgb).save(path, format="PNG", compress_level=_PNG_LEVEL)
    return path


def _new_figure(figsize: tuple[float, float]) -> Figure:
    return Figure(figsize=figsize, dpi=_DPI)


def _adjust(fig: Figure) -> None:
    fig.subplots_adjust(left=0.08, right=0.98, bottom=0.08, top=0.95, hspace=0.35, wspace=0.2)


def _require(history: History) -> None:
    if not history:
        raise ValueError("plots: empty history; at least one epoch record is needed")


def _present(lines: Sequence[tuple[np.ndarray, str]]) -> list[tuple[np.ndarray, str]]:
    """The series that have at least one finite value (the others are not drawn)."""
    return [(y, label) for y, label in lines if np.isfinite(y).any()]


def _line_axes(ax: Axes, x: np.ndarray, series: Sequence[tuple[np.ndarray, str]]) -> list[Any]:
    lines = [ax.plot(x, y, label=label, alpha=0.8)[0] for y, label in series]
    _linear_ticks(ax)
    return lines


def _build_dynamics(
    key: tuple, x: np.ndarray, panels: list[list[tuple[np.ndarray, str]]]
) -> _Template:
    probabilities = key[0]
    fig = _new_figure((12, 9))
    axes = list(fig.subplots(2, 2).ravel())
    lines = [_line_axes(ax, x, series) for ax, series in zip(axes, panels, strict=True)]
    ax_raw, ax_smooth, ax_out, ax_acc = axes
    _decorate(ax_raw, "Training Losses", "Epoch", "Loss")
    _decorate(ax_smooth, "Smoothed Losses", "Epoch", "Loss")
    if probabilities:
        ax_out.axhline(0.5, color="black", linestyle="--", label="Equilibrium")
        ax_out.set_ylim(0, 1)
        _decorate(ax_out, "Discriminator Outputs", "Epoch", "D Output")
    else:
        _decorate(ax_out, "Critic Outputs (raw scores)", "Epoch", "Critic score")
    ax_acc.axhline(0.5, color="black", linestyle="--", label="Random")
    ax_acc.set_ylim(0, 1)
    _decorate(ax_acc, "Discriminator Accuracy", "Epoch", "Accuracy")
    for ax in axes:
        _legend(ax)
    _adjust(fig)
    return _Template(key, fig, axes, lines)


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
    real, fake = _series(history, "d/real"), _series(history, "d/fake")
    both = np.concatenate([real, fake])
    both = both[np.isfinite(both)]
    panels = [
        _present([(g, "Generator Loss"), (d, "Discriminator Loss")]),
        _present([(_smooth(g, window), "G Loss"), (_smooth(d, window), "D Loss")]),
        _present([(real, "D(real)"), (fake, "D(fake)")]),
        _present(
            [
                (_series(history, "d/accuracy"), "D accuracy"),
                (_series(history, "g/accuracy"), "G accuracy"),
            ]
        ),
    ]
    probabilities = both.size == 0 or bool(((both >= 0) & (both <= 1)).all())
    key = (probabilities, tuple(tuple(label for _, label in panel) for panel in panels))
    template = _template("dynamics", key, lambda: _build_dynamics(key, x, panels))
    for ax, lines, panel in zip(template.axes, template.artists, panels, strict=True):
        for line, (y, _) in zip(lines, panel, strict=True):
            line.set_data(x, y)
        _rescale(ax)
    template.axes[1].title.set_text(f"Smoothed Losses ({window}-epoch mean)")
    return _save(template, path)


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


def _bar_heights(layers: dict[str, float]) -> np.ndarray:
    """Positive finite norms; NaN for the rest, which a log axis cannot show."""
    return np.array([v if math.isfinite(v) and v > 0 else np.nan for v in layers.values()])


def _log_bars(ax: Axes, names: list[str], heights: np.ndarray) -> list[Any]:
    if not np.isfinite(heights).any():
        ax.text(0.5, 0.5, "no gradient norms", ha="center", va="center", transform=ax.transAxes)
        return []
    shown = np.flatnonzero(np.isfinite(heights))
    bars = list(ax.bar(shown, heights[shown]))
    ax.set_xticks(range(len(heights)))
    ax.set_xticklabels(names, rotation=45, ha="right", fontsize=7)
    _log_y(ax)
    ax.set_ylabel("Gradient Norm")
    return bars


def _build_grad_norms(
    key: tuple,
    x: np.ndarray,
    totals: list[tuple[np.ndarray, str]],
    layers: list[dict[str, float]],
    heights: list[np.ndarray],
) -> _Template:
    fig = _new_figure((12, 9))
    ax_total = fig.add_subplot(2, 1, 1)
    lines = _line_axes(ax_total, x, totals)
    _decorate(ax_total, "Total gradient norms", "Epoch", "Gradient Norm")
    if lines:
        _log_y(ax_total)
    _legend(ax_total)
    axes, artists = [ax_total], [lines]
    for position, named, h in zip((3, 4), layers, heights, strict=True):
        ax = fig.add_subplot(2, 2, position)
        ax.set_title("", y=1.0)  # the text per call; a fixed place (see _decorate)
        axes.append(ax)
        artists.append(_log_bars(ax, list(named), h))
    _adjust(fig)
    return _Template(key, fig, axes, artists)


def plot_grad_norms(history: History, path: PathLike) -> Path:
    """Total G and D gradient norms over epochs, and per-layer bars for the last epoch (log scale).

    Follows 004 "Gradient Flow Analysis"; non-positive or NaN norms are left out of the
    log axes rather than crashing them.

    Raises:
        ValueError: empty history.
    """
    _require(history)
    x = _epochs(history)
    totals = []
    for key, label in (("grad/g_norm", "Generator"), ("grad/d_norm", "Discriminator")):
        y = _series(history, key)
        totals.append((np.where(y > 0, y, np.nan), label))
    totals = _present(totals)
    layers = [_last_layers(history, "grad/g/"), _last_layers(history, "grad/d/")]
    heights = [_bar_heights(named) for named in layers]
    layout = tuple(
        (tuple(named), tuple(bool(v) for v in np.isfinite(h)))
        for named, h in zip(layers, heights, strict=True)
    )
    key = (tuple(label for _, label in totals), layout)
    template = _template(
        "grad_norms", key, lambda: _build_grad_norms(key, x, totals, layers, heights)
    )
    for line, (y, _) in zip(template.artists[0], totals, strict=True):
        line.set_data(x, y)
    _rescale(template.axes[0])
    epoch = int(x[-1])
    for ax, bars, h, side in zip(
        template.axes[1:],
        template.artists[1:],
        heights,
        ("Generator", "Discriminator"),
        strict=True,
    ):
        ax.title.set_text(f"{side} (epoch {epoch})")
        for bar, height in zip(bars, h[np.isfinite(h)], strict=True):
            bar.set_height(height)
        if bars:  # x limits stay as the bar positions and all layer ticks set them
            _rescale(ax, scalex=False)
    return _save(template, path)


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


def _build_scatter(key: tuple, sets: list[np.ndarray]) -> _Template:
    fig = _new_figure((6, 6))
    ax = fig.add_subplot(1, 1, 1)
    points = sets[0]
    artists = [
        ax.scatter(points[:, 0], points[:, 1], s=4, alpha=0.5, label=f"{len(points)} samples")
    ]
    if len(sets) > 1:
        c = sets[1]
        artists.append(
            ax.scatter(c[:, 0], c[:, 1], marker="x", c="red", s=80, label="mode centres")
        )
    ax.set_aspect("equal", adjustable="datalim")
    _linear_ticks(ax)
    ax.grid(True, alpha=0.3)
    ax.legend(loc="upper right", fontsize=8)
    _adjust(fig)
    return _Template(key, fig, [ax], [artists])


def _scatter(points: np.ndarray, centers: Any, path: PathLike) -> Path:
    sets = [points] if centers is None else [points, _to_numpy(centers).reshape(-1, 2)]
    key = tuple(len(xy) for xy in sets)
    template = _template("scatter", key, lambda: _build_scatter(key, sets))
    ax = template.axes[0]
    # Collections have no relim: data limits from the offsets, as adding a collection sets them.
    ax.ignore_existing_data_limits = True
    for artist, xy in zip(template.artists[0], sets, strict=True):
        artist.set_offsets(xy)
        finite = xy[np.isfinite(xy).all(axis=1)]
        if len(finite):
            ax.update_datalim(finite)
    ax.autoscale_view()
    return _save(template, path)


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
