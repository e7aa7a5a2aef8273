"""PNG figures: files written, valid, sane sizes, panels drawn; sample grids with known pixels;
a figure drawn on a reused template is pixel-identical to one drawn fresh."""

from __future__ import annotations

import math
import threading

import numpy as np
import pytest
from PIL import Image

from gan_core.plots import image_grid, plot_dynamics, plot_grad_norms, save_sample_grid


def _history(n: int = 12, scores: bool = False) -> list[dict[str, float]]:
    history = []
    for e in range(1, n + 1):
        real, fake = (3.0 + e, -2.0 - e) if scores else (0.9 - 0.03 * e, 0.1 + 0.03 * e)
        history.append(
            {
                "epoch": e,
                "loss/d": 0.7 + 0.05 * math.sin(e),
                "loss/g": 1.2 - 0.02 * e,
                "d/real": real,
                "d/fake": fake,
                "d/accuracy": 0.9 - 0.02 * e,
                "g/accuracy": 0.1 + 0.02 * e,
                "grad/g_norm": 0.5 / e,
                "grad/d_norm": 1.0,
                "grad/g/net.0.weight": 0.3,
                "grad/g/net.2.weight": 0.0,  # zero: must not break the log axis
                "grad/d/net.0.weight": 0.8,
                "grad/d/net.2.weight": math.nan,
            }
        )
    return history


def _png(path) -> Image.Image:
    with Image.open(path) as image:
        assert image.format == "PNG"
        image.load()
        return image


def _colour_in_quadrants(path, rgb: tuple[int, int, int], tolerance: int = 40) -> list[int]:
    """Pixels near `rgb` per quadrant: top left, top right, bottom left, bottom right.

    The tolerance admits an antialiased line's edge pixels, blended with the white background.
    """
    pixels = np.asarray(_png(path).convert("RGB")).astype(int)
    near = (np.abs(pixels - np.array(rgb)) <= tolerance).all(axis=-1)
    h, w = near.shape
    return [int(q.sum()) for half in (near[: h // 2], near[h // 2 :]) for q in np.hsplit(half, 2)]


ORANGE_LINE = (255, 152, 62)  # the second series of a panel (matplotlib's C1 at alpha 0.8)
BLUE_BAR = (31, 119, 180)  # C0, opaque


def test_dynamics_figure_is_a_sane_png_with_four_panels(tmp_path):
    path = plot_dynamics(_history(), tmp_path / "dynamics.png")
    image = _png(path)
    assert path == tmp_path / "dynamics.png"
    assert 400 <= image.width <= 3000 and 300 <= image.height <= 3000
    # every panel draws its second series: D loss, smoothed D loss, D(fake), G accuracy
    assert all(n > 50 for n in _colour_in_quadrants(path, ORANGE_LINE))


def test_dynamics_tolerates_nan_missing_keys_and_raw_scores(tmp_path):
    history = _history(scores=True)
    history[-1].update({"loss/d": math.nan, "loss/g": math.nan})
    for rec in history:
        del rec["d/accuracy"]
    _png(plot_dynamics(history, tmp_path / "sub" / "dynamics.png"))
    _png(plot_dynamics(history[:1], tmp_path / "one.png"))


def test_grad_norm_figure_is_a_sane_png(tmp_path):
    path = plot_grad_norms(_history(), tmp_path / "grad_norms.png")
    image = _png(path)
    assert 400 <= image.width <= 3000 and 300 <= image.height <= 3000
    top_left, top_right, bars_g, bars_d = _colour_in_quadrants(path, BLUE_BAR)
    assert bars_g > 500 and bars_d > 500  # one positive finite layer norm each: one bar
    assert sum(_colour_in_quadrants(path, ORANGE_LINE)[:2]) > 50  # D's total norm line
    sparse = [{"epoch": 1, "loss/d": 0.7}]  # no gradient keys at all
    _png(plot_grad_norms(sparse, tmp_path / "sparse.png"))


def test_empty_history_is_an_error(tmp_path):
    with pytest.raises(ValueError, match="empty history"):
        plot_dynamics([], tmp_path / "x.png")
    with pytest.raises(ValueError, match="empty history"):
        plot_grad_norms([], tmp_path / "x.png")


def test_grayscale_grid_has_known_pixels(tmp_path):
    # Three 2x2 images, nrow=2, padding 2: a 2x2 grid of slots, 10x10 pixels.
    images = np.stack([np.full((1, 2, 2), v) for v in (0.5, 1.0, 0.0)])
    images[0, 0, 1, 1] = -1.0
    image = _png(save_sample_grid(images, tmp_path / "grid.png", nrow=2))
    pixels = np.asarray(image)
    assert image.mode == "L" and pixels.shape == (10, 10)
    assert pixels[2, 2] == 191  # round(0.75 * 255)
    assert pixels[3, 3] == 0  # -1 -> 0
    assert pixels[2, 6] == 255  # second image, first row
    assert pixels[6, 2] == 128  # third image, second row: round(127.5) = 128
    assert pixels[0, 0] == 0 and pixels[6, 6] == 0  # padding and the empty slot


def test_rgb_grid_and_torch_input(tmp_path):
    torch = pytest.importorskip("torch")
    red = torch.tensor([1.0, -1.0, -1.0]).view(3, 1, 1).expand(3, 4, 4)
    blue = torch.tensor([-1.0, -1.0, 1.0]).view(3, 1, 1).expand(3, 4, 4)
    image = _png(save_sample_grid(torch.stack([red, blue]), tmp_path / "rgb.png"))
    pixels = np.asarray(image)
    assert image.mode == "RGB" and pixels.shape == (8, 14, 3)
    assert tuple(pixels[3, 3]) == (255, 0, 0) and tuple(pixels[3, 9]) == (0, 0, 255)
    assert image_grid(np.zeros((1, 3, 4, 4)), padding=0).shape == (4, 4, 3)


def _red_pixels(path) -> int:
    rgb = np.asarray(_png(path).convert("RGB")).astype(int)
    return int(((rgb[..., 0] > 200) & (rgb[..., 1] < 60) & (rgb[..., 2] < 60)).sum())


def test_points_make_a_scatter_with_the_mode_centres_marked(tmp_path):
    rng = np.random.default_rng(0)
    angles = 2 * np.pi * np.arange(8) / 8
    centers = np.stack([np.cos(angles), np.sin(angles)], 1)
    points = centers[rng.integers(0, 8, 500)] + 0.02 * rng.standard_normal((500, 2))
    marked = save_sample_grid(points, tmp_path / "ring.png", centers=centers)
    plain = save_sample_grid(points, tmp_path / "plain.png")
    assert _png(marked).width >= 300
    assert _red_pixels(marked) > 0 and _red_pixels(plain) == 0


@pytest.mark.parametrize("shape", [(4, 3), (4, 2, 8, 8), (0, 2), (2, 1, 1, 1, 1)])
def test_unsupported_shapes_are_errors(tmp_path, shape):
    with pytest.raises(ValueError, match="save_sample_grid"):
        save_sample_grid(np.zeros(shape), tmp_path / "bad.png")


def _fresh(draw, *args, **kwargs):
    """Draw in a new thread: templates are per thread, so this one builds its figure anew."""
    out = {}
    worker = threading.Thread(target=lambda: out.update(path=draw(*args, **kwargs)))
    worker.start()
    worker.join()
    return out["path"]


def _pixels(path) -> np.ndarray:
    return np.asarray(_png(path))


def _other_history() -> list[dict[str, float]]:
    history = _history(30)
    for rec in history:
        rec.update({"loss/g": 3 * rec["loss/g"], "grad/g_norm": 100 * rec["grad/g_norm"]})
        rec["grad/d/net.0.weight"] = 5.0
    return history


@pytest.mark.parametrize("draw", [plot_dynamics, plot_grad_norms], ids=lambda f: f.__name__)
@pytest.mark.parametrize("first", ["same_layout", "scores", "no_accuracy"])
def test_reused_template_draws_what_a_fresh_figure_draws(tmp_path, draw, first):
    earlier = {
        "same_layout": _other_history(),
        "scores": _history(20, scores=True),  # another layout: critic panel, no 0.5 line
        "no_accuracy": [
            {k: v for k, v in r.items() if "accuracy" not in k} for r in _other_history()
        ],
    }[first]
    before = _pixels(draw(earlier, tmp_path / "before.png"))
    reused = _pixels(draw(_history(), tmp_path / "reused.png"))
    fresh = _pixels(_fresh(draw, _history(), tmp_path / "fresh.png"))
    assert (before != reused).any()  # the earlier figure's data is gone...
    np.testing.assert_array_equal(reused, fresh)  # ...and nothing of it stayed behind


def test_reused_scatter_draws_what_a_fresh_one_draws(tmp_path):
    rng = np.random.default_rng(1)
    angles = 2 * np.pi * np.arange(8) / 8
    centers = np.stack([np.cos(angles), np.sin(angles)], 1)
    wide = 3 * centers[rng.integers(0, 8, 1000)] + 10  # far from the next samples
    blob = rng.standard_normal((1000, 2))
    blob[5] = np.nan  # a diverged sample must not disturb the limits
    before = _pixels(save_sample_grid(wide, tmp_path / "before.png", centers=centers))
    reused = _pixels(save_sample_grid(blob, tmp_path / "reused.png", centers=centers))
    fresh = _pixels(_fresh(save_sample_grid, blob, tmp_path / "fresh.png", centers=centers))
    assert (before != reused).any()
    np.testing.assert_array_equal(reused, fresh)
