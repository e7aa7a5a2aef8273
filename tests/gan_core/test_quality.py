"""Quality and diversity metrics against hand-computed values; the feature extractors and cache."""

from __future__ import annotations

import math
import os
import subprocess
import sys
import types
from pathlib import Path

import numpy as np
import pytest
import torch

from gan_core import features
from gan_core.data import Dataset
from gan_core.features import (
    ClassifierConfig,
    ClassifierExtractor,
    ExtractorUnavailable,
    cache_dir,
    get_extractor,
    list_extractors,
)
from gan_core.quality import (
    QualityEvaluator,
    class_coverage,
    frechet_distance,
    gaussian_stats,
    inception_score,
    kid,
    mixture_metrics,
    mode_coverage,
    mode_histogram,
    pairwise_stats,
    pixvar,
    relative_fid,
    reverse_kl_uniform,
)

DTYPES = [torch.float32, torch.float64]
FAST = ClassifierConfig(epochs=8)  # a few hundred ms on the tiny pattern set


# --- fixtures --------------------------------------------------------------------------------


def _patterns(n_per_class: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """3 classes of 8x8 images: horizontal stripes, vertical stripes, checkerboard, with noise."""
    gen = torch.Generator().manual_seed(seed)
    i = torch.arange(8)
    bases = [
        (i[:, None] % 2).expand(8, 8),
        (i[None, :] % 2).expand(8, 8),
        (i[:, None] + i[None, :]) % 2,
    ]
    xs, ys = [], []
    for label, base in enumerate(bases):
        amp = 0.6 + 0.4 * torch.rand(n_per_class, 1, 1, 1, generator=gen)
        noise = 0.15 * torch.randn(n_per_class, 1, 8, 8, generator=gen)
        xs.append((amp * (2.0 * base.float() - 1) + noise).clamp(-1, 1))
        ys.append(torch.full((n_per_class,), label))
    return torch.cat(xs), torch.cat(ys)


def _image_dataset(x: torch.Tensor, y: torch.Tensor | None, key: str) -> Dataset:
    return Dataset(
        name="patterns",
        x=x,
        y=y,
        num_classes=0 if y is None else 3,
        centers=None,
        std=None,
        fresh=False,
        cache_key=key,
    )


@pytest.fixture
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("GANSWEEP_CACHE", str(tmp_path))
    return tmp_path / "features"


@pytest.fixture(scope="module")
def patterns():
    x, y = _patterns(200, seed=0)
    held_out, _ = _patterns(100, seed=1)
    return _image_dataset(x, y, "patterns-test"), held_out


@pytest.fixture(scope="module")
def evaluator(patterns, tmp_path_factory):
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("GANSWEEP_CACHE", str(tmp_path_factory.mktemp("cache")))
        return QualityEvaluator(patterns[0], "classifier", n_samples=300, device="cpu")


# --- 2-D mixtures ----------------------------------------------------------------------------

CENTERS = [[0.0, 0.0], [10.0, 0.0], [0.0, 10.0]]
# 5 samples on mode 0, 2 within 3 std of mode 1 (2.9 std), 1 at 3.5 std of mode 1, 2 far away.
POINTS = [[0.5, 0.0]] * 5 + [[12.9, 0.0], [10.0, 2.9], [13.5, 0.0], [50.0, 50.0], [-40.0, 3.0]]


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
def test_mixture_metrics_hand_computed(dtype):
    x, c = torch.tensor(POINTS, dtype=dtype), torch.tensor(CENTERS, dtype=dtype)
    assert mode_histogram(x, c, std=1.0).tolist() == [5, 2, 0]
    m = mixture_metrics(x, c, std=1.0)
    kl = 5 / 7 * math.log(5 / 7 * 3) + 2 / 7 * math.log(2 / 7 * 3)
    assert m["quality/modes"] == 2.0
    assert m["quality/hq_fraction"] == pytest.approx(0.7, abs=1e-12)
    assert m["quality/kl"] == pytest.approx(kl, abs=1e-12)


def test_mixture_thresholds_are_parameters():
    x, c = torch.tensor(POINTS), torch.tensor(CENTERS)
    assert mixture_metrics(x, c, 1.0, min_hq_per_mode=3)["quality/modes"] == 1.0
    wide = mixture_metrics(x, c, 1.0, hq_threshold=4.0)  # takes the 3.5-std sample in
    assert wide["quality/hq_fraction"] == pytest.approx(0.8)
    # std scales distances: with std 2 the 2.9 and 3.5 offsets are 1.45 and 1.75 std
    assert mode_histogram(x, c, std=2.0).tolist() == [5, 3, 0]


def test_mixture_nonfinite_and_empty():
    x = torch.tensor([[0.0, 0.0], [float("nan"), 0.0], [100.0, 100.0]])
    m = mixture_metrics(x, torch.tensor(CENTERS), 1.0)
    assert m["quality/modes"] == 1.0 and m["quality/hq_fraction"] == pytest.approx(1 / 3)
    far = mixture_metrics(torch.full((4, 2), 99.0), torch.tensor(CENTERS), 1.0)
    assert far["quality/modes"] == 0.0 and far["quality/hq_fraction"] == 0.0
    assert math.isnan(far["quality/kl"])


def test_mode_coverage_counts_modes_on_the_support_however_blurry():
    ring = torch.tensor([[math.cos(a), math.sin(a)] for a in torch.arange(8) * math.pi / 4])
    gen = torch.Generator().manual_seed(0)
    # A blurry ring (radial std 0.1) reaches every mode with nearly every sample near one,
    # though no sample is within 3 std (0.03) of a mode ...
    angle = torch.rand(4000, generator=gen) * 2 * math.pi
    radius = 1 + 0.1 * torch.randn(4000, generator=gen)
    blurry = torch.stack([radius * angle.cos(), radius * angle.sin()], 1)
    reached, near = mode_coverage(blurry, ring)
    assert reached == 8 and near > 0.9
    # ... a blob over one mode, or a short arc, reaches one or two with most samples near ...
    reached, near = mode_coverage(torch.randn(2000, 2, generator=gen) * 0.15 + ring[0], ring)
    assert reached == 1 and near > 0.8
    arc = torch.rand(2000, generator=gen) * math.pi / 4
    reached, near = mode_coverage(torch.stack([arc.cos(), arc.sin()], 1), ring)
    assert reached == 2 and near > 0.95  # the arc's midpoint is just beyond half the spacing
    # ... and a blob at the centre, where an untrained G starts, is near no mode.
    assert mode_coverage(torch.randn(2000, 2, generator=gen) * 0.1, ring) == (0, 0.0)
    # Near means within half the mode spacing (0.383 here); a mode needs 1/16 of all samples.
    thin = torch.cat([ring[:1].repeat(94, 1), ring[1:2].repeat(6, 1)])
    assert mode_coverage(thin, ring) == (1, 1.0)  # 6/100 < 1/16
    assert mode_coverage(torch.cat([thin, ring[1:2]]), ring)[0] == 2  # 7/101 >= 1/16
    assert mode_coverage(torch.full((5, 2), float("nan")), ring) == (0, 0.0)


def test_class_coverage_and_relative_fid():
    uniform = torch.full((4,), 0.25)
    one_hot = torch.eye(4)
    spread = one_hot.repeat(25, 1)  # 25 samples of each class
    out = class_coverage(spread, uniform)
    assert out == {"quality/classes": 4.0, "quality/class_coverage": 1.0,
                   "quality/class_kl": pytest.approx(0.0, abs=1e-12)}
    collapsed = class_coverage(one_hot[[0] * 97 + [1, 2, 3]], uniform)
    assert collapsed["quality/classes"] == 1.0 and collapsed["quality/class_coverage"] == 0.25
    assert collapsed["quality/class_kl"] > 1.0  # near log 4 = 1.39
    # A class absent from the real data is never "seen" and does not count in the coverage.
    three = class_coverage(spread, torch.tensor([1 / 3, 1 / 3, 1 / 3, 0.0]))
    assert three["quality/classes"] == 3.0 and three["quality/class_coverage"] == 1.0
    # A class with a quarter of its real share counts: 1/16 of 1/4.
    edge = class_coverage(one_hot[[0] * 31 + [1] * 31 + [2] * 30 + [3] * 8], uniform)
    assert edge["quality/classes"] == 4.0
    assert relative_fid(30.0, 10.0, 210.0) == pytest.approx(0.1)
    assert relative_fid(250.0, 10.0, 210.0) > 1.0
    assert math.isnan(relative_fid(5.0, 10.0, 10.0))


def test_reverse_kl_uniform():
    assert reverse_kl_uniform(torch.tensor([4, 4, 4, 4])) == pytest.approx(0.0, abs=1e-15)
    assert reverse_kl_uniform(torch.tensor([0, 9, 0, 0])) == pytest.approx(math.log(4))
    # Q = (1/2, 1/4, 1/4, 0): sum q log(4q) = 1/2 log 2 + 2 * 1/4 log 1
    assert reverse_kl_uniform(torch.tensor([2, 1, 1, 0])) == pytest.approx(0.5 * math.log(2))
    assert math.isnan(reverse_kl_uniform(torch.zeros(5)))


# --- Frechet distance ------------------------------------------------------------------------


def test_frechet_diagonal_closed_form():
    rng = np.random.default_rng(0)
    a, b = rng.uniform(0.1, 3.0, 16), rng.uniform(0.1, 3.0, 16)
    mu1, mu2 = rng.normal(size=16), rng.normal(size=16)
    expected = np.sum((np.sqrt(a) - np.sqrt(b)) ** 2) + np.sum((mu1 - mu2) ** 2)
    got = frechet_distance(mu1, np.diag(a), mu2, np.diag(b))
    assert abs(got - expected) < 1e-6
    # 1-D by hand: (0 - 3)^2 + (sqrt 4 - sqrt 1)^2 = 9 + 1
    assert frechet_distance([0.0], [[4.0]], [3.0], [[1.0]]) == pytest.approx(10.0, abs=1e-12)


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
def test_frechet_matches_eigen_formula_on_random_spd(dtype):
    gen = torch.Generator().manual_seed(1)
    d = 20
    a, b = torch.randn(d, d, generator=gen), torch.randn(d, d, generator=gen)
    s1, s2 = (
        (a @ a.T / d + 0.1 * torch.eye(d)).double(),
        (b @ b.T / d + 0.1 * torch.eye(d)).double(),
    )
    mu1, mu2 = torch.randn(d, generator=gen).double(), torch.randn(d, generator=gen).double()
    # Tr sqrt(S1 S2) = Tr sqrt(S1^1/2 S2 S1^1/2), the symmetric form, by eigendecomposition.
    w, v = torch.linalg.eigh(s1)
    r = v @ torch.diag(w.sqrt()) @ v.T
    tr = torch.linalg.eigvalsh(r @ s2 @ r).clamp_min(0).sqrt().sum()
    expected = float((mu1 - mu2) @ (mu1 - mu2) + s1.trace() + s2.trace() - 2 * tr)
    got = frechet_distance(mu1.to(dtype), s1.to(dtype), mu2.to(dtype), s2.to(dtype))
    tol = 1e-6 if dtype == torch.float64 else 1e-3 * abs(expected)  # float32 inputs round first
    assert abs(got - expected) < tol


def test_frechet_singular_and_identical():
    mu = np.arange(4.0)
    assert frechet_distance(mu, np.zeros((4, 4)), mu + 1, np.zeros((4, 4))) == pytest.approx(4.0)
    s = np.cov(np.random.default_rng(2).normal(size=(50, 4)), rowvar=False)
    assert abs(frechet_distance(mu, s, mu, s)) < 1e-6
    with pytest.raises(ValueError, match="shapes"):
        frechet_distance(np.zeros(3), np.eye(3), np.zeros(4), np.eye(4))


def test_gaussian_stats_matches_numpy():
    f = torch.randn(30, 5, generator=torch.Generator().manual_seed(3))
    mu, sigma = gaussian_stats(f)
    np.testing.assert_allclose(mu, f.double().mean(0).numpy())
    np.testing.assert_allclose(sigma, np.cov(f.double().numpy(), rowvar=False))
    with pytest.raises(ValueError):
        gaussian_stats(torch.zeros(1, 5))


# --- KID, IS ---------------------------------------------------------------------------------


def test_kid_hand_computed():
    # d = 1, k(x, y) = (xy + 1)^3. X = {0, 1}, Y = {1, 2}:
    # XX off-diagonal: k(0,1) = 1 twice -> 2 / (2*1) = 1
    # YY off-diagonal: k(1,2) = 27 twice -> 27
    # XY: k(0,1) + k(0,2) + k(1,1) + k(1,2) = 1 + 1 + 8 + 27 = 37 -> 2 * 37 / 4 = 18.5
    mean, std = kid(torch.tensor([[0.0], [1.0]]), torch.tensor([[1.0], [2.0]]), 3, 2)
    assert mean == pytest.approx(1 + 27 - 18.5, abs=1e-12) and std == pytest.approx(0, abs=1e-12)


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
def test_kid_same_vs_shifted(dtype):
    gen = torch.Generator().manual_seed(4)
    a, b = (torch.randn(600, 16, generator=gen, dtype=dtype) for _ in range(2))
    same, _ = kid(a, b, subsets=20, subset_size=300)
    shifted, _ = kid(a, b + 1.0, subsets=20, subset_size=300)
    assert abs(same) < 0.02 and shifted > 1.0
    assert kid(a, b, 20, 300) == kid(a, b, 20, 300)  # seeded subsets


def test_kid_paths_agree():
    from gan_core.quality import _kid_full_kernels, _kid_per_subset

    gen = torch.Generator().manual_seed(5)
    x, y = torch.randn(70, 8, generator=gen).double(), torch.randn(50, 8, generator=gen).double()
    rng = np.random.default_rng(0)
    ix = [rng.choice(70, 20, replace=False) for _ in range(4)]
    iy = [rng.choice(50, 20, replace=False) for _ in range(4)]
    full, loop = _kid_full_kernels(x, y, ix, iy, 3, 1.0), _kid_per_subset(x, y, ix, iy, 3, 1.0)
    torch.testing.assert_close(full, loop, rtol=1e-12, atol=1e-12)


def test_inception_score_bounds():
    k = 4
    uniform_onehot = torch.eye(k).repeat(10, 1)  # every split of 4 rows holds each class once
    mean, std = inception_score(uniform_onehot, splits=10, seed=None)
    assert mean == pytest.approx(k, abs=1e-12) and std == pytest.approx(0, abs=1e-12)
    # sorted by class: shuffled before splitting, so each split still sees every class
    assert inception_score(torch.eye(k).repeat_interleave(50, dim=0))[0] > 3.5
    assert inception_score(torch.eye(k).repeat_interleave(50, dim=0), 4, seed=None)[0] == 1.0
    constant = torch.softmax(torch.randn(1, 7), dim=1).repeat(50, 1)
    assert inception_score(constant, splits=5)[0] == pytest.approx(1.0, abs=1e-12)
    # two confident predictions of different classes: p(y) = (1/2, 1/2), KL = log 2 each -> IS 2
    assert inception_score(torch.tensor([[1.0, 0.0], [0.0, 1.0]]), splits=1)[0] == pytest.approx(2)


# --- PixVar, pairwise ------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
def test_pixvar(dtype):
    half = torch.cat([-torch.ones(5, 1, 4, 4), torch.ones(5, 1, 4, 4)]).to(dtype)
    assert pixvar(half) == pytest.approx(1.0)
    assert pixvar(torch.full((6, 3, 2, 2), 0.3, dtype=dtype)) == pytest.approx(0.0, abs=1e-12)
    # one pixel takes -1, 0, 1 (population variance 2/3), the other is constant: mean 1/3
    x = torch.tensor([[-1.0, 0.5], [0.0, 0.5], [1.0, 0.5]], dtype=dtype)
    assert pixvar(x) == pytest.approx(1 / 3)


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
def test_pairwise_stats_hand_computed(dtype):
    x = torch.tensor([[0.0, 0.0], [3.0, 0.0], [0.0, 4.0]], dtype=dtype)
    s = pairwise_stats(x)
    assert s["diversity/mean"] == pytest.approx(4.0)
    assert s["diversity/min"] == pytest.approx(3.0)
    assert s["diversity/std"] == pytest.approx(math.sqrt(4 / 5))  # [3,3,4,4,5,5], unbiased
    dup = pairwise_stats(torch.ones(5, 1, 8, 8, dtype=dtype))
    assert dup["diversity/min"] == pytest.approx(0.0, abs=1e-5)
    assert math.isnan(pairwise_stats(x[:1])["diversity/mean"])


def test_pairwise_subsample_is_deterministic():
    x = torch.randn(50, 3, generator=torch.Generator().manual_seed(6))
    assert pairwise_stats(x, max_n=10) == pairwise_stats(x, max_n=10)
    assert pairwise_stats(x, max_n=10) != pairwise_stats(x, max_n=50)


# --- extractors and evaluator ----------------------------------------------------------------


def test_classifier_separates_classes(evaluator, patterns):
    dataset, held_out = patterns
    ext = evaluator.extractor
    assert ext.label_source == "labels"
    real = evaluator(held_out)
    noise = evaluator(torch.rand(300, 1, 8, 8, generator=torch.Generator().manual_seed(7)) * 2 - 1)
    const = evaluator(torch.zeros(300, 1, 8, 8))
    assert set(real) == set(evaluator.keys)
    assert real["quality/is"] > 2.5 > 1.05 > const["quality/is"]
    assert real["quality/fid"] * 20 < noise["quality/fid"]
    assert abs(real["quality/kid"]) * 20 < noise["quality/kid"]
    one_class = evaluator(held_out[:100].repeat(3, 1, 1, 1))
    assert one_class["quality/is"] < 1.2 and one_class["quality/fid"] > 5 * real["quality/fid"]
    assert evaluator.reference_values["quality/is"] > 2.5
    # The relative FID puts held-out real images near 0 and noise at 1 (the noise set differs
    # from the reference's, so not exactly 1); classes: all 3 seen, or only one.
    assert real["quality/fid_rel"] < 0.05 and 0.9 < noise["quality/fid_rel"] < 1.1
    assert 0.05 < one_class["quality/fid_rel"] < 0.9
    assert real["quality/class_coverage"] == 1.0 and real["quality/class_kl"] < 0.05
    assert one_class["quality/classes"] == 1.0 and one_class["quality/class_kl"] > 0.9


def test_classifier_without_labels_uses_kmeans(cache, patterns):
    dataset, held_out = patterns
    unlabeled = _image_dataset(dataset.x, None, "patterns-unlabeled")
    ext = ClassifierExtractor.build(unlabeled, "cpu", FAST)
    assert ext.label_source == "kmeans"
    assert ext.real.inception_score > 2.0  # the three patterns are three clusters
    feats, probs = ext.embed(held_out)
    assert feats.shape == (300, FAST.embed_dim) and feats.dtype == torch.float64
    torch.testing.assert_close(probs.sum(1), torch.ones(300, dtype=torch.float64))


def test_cache_hit_miss_and_corrupt_rebuild(cache, patterns, monkeypatch):
    dataset = patterns[0]
    first = ClassifierExtractor.build(dataset, "cpu", FAST)  # miss: trains and saves
    files = list(cache.glob("patterns-test-classifier-*.pt"))
    assert len(files) == 1 and cache == cache_dir()
    payload = torch.load(files[0], weights_only=True)
    assert set(payload) >= {"state_dict", "real", "version"}

    def no_training(*args, **kwargs):
        raise AssertionError("cache hit must not train")

    with monkeypatch.context() as m:
        m.setattr(features, "_train_classifier", no_training)
        second = ClassifierExtractor.build(dataset, "cpu", FAST)  # hit
    np.testing.assert_array_equal(first.real.mu, second.real.mu)
    torch.testing.assert_close(first.embed(dataset.x[:20])[0], second.embed(dataset.x[:20])[0])

    files[0].write_bytes(b"not a torch file")  # corrupt: rebuilt, same deterministic result
    third = ClassifierExtractor.build(dataset, "cpu", FAST)
    np.testing.assert_allclose(third.real.mu, first.real.mu, rtol=1e-5, atol=1e-6)
    assert torch.load(files[0], weights_only=True)["version"] == features.CACHE_VERSION


_BUILD_IN_CHILD = """
import sys, torch
sys.path.insert(0, {tests!r})
from test_quality import FAST, _image_dataset, _patterns
from gan_core.features import ClassifierExtractor
x, y = _patterns(200, seed=0)
ClassifierExtractor.build(_image_dataset(x, y, "patterns-test"), "cpu", FAST)
"""


def test_classifier_is_reproducible_in_a_fresh_process(cache, patterns, tmp_path):
    ClassifierExtractor.build(patterns[0], "cpu", FAST)
    other = tmp_path / "other"
    code = _BUILD_IN_CHILD.format(tests=str(Path(__file__).parent))
    env = {**os.environ, "GANSWEEP_CACHE": str(other)}
    root = Path(__file__).parents[2]
    subprocess.run([sys.executable, "-c", code], env=env, cwd=root, check=True, timeout=120)
    (mine,), (theirs,) = cache.glob("*.pt"), (other / "features").glob("*.pt")
    a, b = torch.load(mine, weights_only=True), torch.load(theirs, weights_only=True)
    for key, value in a["state_dict"].items():
        assert torch.equal(value, b["state_dict"][key]), key
    assert torch.equal(a["real"]["sigma"], b["real"]["sigma"])


def test_unknown_extractor_lists_valid_names(patterns):
    with pytest.raises(ValueError, match="classifier.*inception"):
        get_extractor("incepshun", patterns[0])
    with pytest.raises(ValueError, match="valid extractors: classifier, inception"):
        QualityEvaluator(patterns[0], "incepshun")
    assert list_extractors() == ["classifier", "inception"]


def test_inception_unavailable_names_what_to_install(cache, patterns, monkeypatch):
    monkeypatch.setitem(sys.modules, "torch_fidelity", None)
    monkeypatch.setitem(sys.modules, "pytorch_fid", None)
    with pytest.raises(ExtractorUnavailable, match="pip install torch-fidelity.*pytorch-fid"):
        get_extractor("inception", patterns[0], "cpu")


class _FakeFidelityNet(torch.nn.Module):
    """Stands in for torch-fidelity's Inception: uint8 RGB in, (features, logits) out."""

    def __init__(self, name, features_list, **kwargs):
        super().__init__()
        assert name == "inception-v3-compat" and features_list == ["2048", "logits_unbiased"]

    def forward(self, x):
        assert x.dtype == torch.uint8 and x.shape[1] == 3
        f = x.float() / 255
        feats = torch.cat([f.mean(dim=(2, 3)), f.std(dim=(2, 3)), f[:, :, ::2].mean(dim=(2, 3))], 1)
        return feats, 10 * feats[:, :4]


class _FakePytorchFidNet(torch.nn.Module):
    """Stands in for pytorch-fid's InceptionV3: [0, 1] float RGB in, [pool3 (N, d, 1, 1)] out."""

    BLOCK_INDEX_BY_DIM = {2048: 3}

    def __init__(self, blocks):
        super().__init__()
        assert blocks == [3]

    def forward(self, x):
        assert x.dtype == torch.float32 and 0 <= x.min() and x.max() <= 1 and x.shape[1] == 3
        return [torch.cat([x.mean(dim=(2, 3)), x.std(dim=(2, 3))], 1)[:, :, None, None]]


def _fake_module(monkeypatch, name, **attrs):
    module = types.ModuleType(name)
    for key, value in attrs.items():
        setattr(module, key, value)
    monkeypatch.setitem(sys.modules, name, module)


@pytest.mark.parametrize("backend", ["torch_fidelity", "pytorch_fid"])
def test_inception_plumbing_with_stand_in_networks(cache, patterns, monkeypatch, backend):
    if backend == "torch_fidelity":
        _fake_module(monkeypatch, "torch_fidelity")
        _fake_module(
            monkeypatch,
            "torch_fidelity.feature_extractor_inceptionv3",
            FeatureExtractorInceptionV3=_FakeFidelityNet,
        )
    else:
        monkeypatch.setitem(sys.modules, "torch_fidelity", None)
        _fake_module(monkeypatch, "pytorch_fid")
        _fake_module(monkeypatch, "pytorch_fid.inception", InceptionV3=_FakePytorchFidNet)
    dataset, held_out = patterns
    ev = QualityEvaluator(dataset, "inception", n_samples=300, device="cpu")
    assert ev.extractor.backend == backend
    assert len(list(cache.glob(f"patterns-test-inception_{backend}-*.pt"))) == 1
    out = ev(held_out)
    assert math.isfinite(out["quality/fid"]) and math.isfinite(out["quality/kid"])
    assert math.isfinite(out["quality/is"]) == (backend == "torch_fidelity")
    assert ev(torch.zeros(300, 1, 8, 8))["quality/fid"] > out["quality/fid"]
    again = get_extractor("inception", dataset, "cpu")  # real statistics from the cache
    np.testing.assert_array_equal(again.real.sigma, ev.extractor.real.sigma)


def test_evaluator_points_keys_and_values():
    centers = torch.tensor(CENTERS)
    ds = Dataset(
        name="mix",
        x=torch.tensor(POINTS),
        y=None,
        num_classes=3,
        centers=centers,
        std=1.0,
        fresh=False,
        cache_key="mix",
    )
    ev = QualityEvaluator(ds, n_samples=2500)
    out = ev(torch.tensor(POINTS, dtype=torch.float64))
    assert (
        set(out)
        == set(ev.keys)
        == {
            "quality/modes",
            "quality/hq_fraction",
            "quality/kl",
            "quality/modes_reached",
            "quality/near_fraction",
            "quality/nonfinite",
            "diversity/mean",
            "diversity/min",
            "diversity/std",
            "diversity/ratio",
        }
    )
    assert out["quality/modes"] == 2.0 and out["quality/hq_fraction"] == pytest.approx(0.7)
    # Near (within 5 of a mode): 5 on mode 0 and 3 on mode 1; the 2 far ones reach nothing.
    assert out["quality/modes_reached"] == 2.0 and out["quality/near_fraction"] == 0.8
    assert out["quality/nonfinite"] == 0.0
    # The real points themselves are exactly as spread as the data; halved, half as spread.
    assert out["diversity/ratio"] == pytest.approx(1.0)
    assert ev(torch.tensor(POINTS) * 0.5)["diversity/ratio"] == pytest.approx(0.5)
    broken = ev(torch.tensor([[0.0, 0.0], [float("inf"), 1.0], [1.0, 1.0], [float("nan"), 0.0]]))
    assert broken.pop("quality/nonfinite") == 0.5  # the share of non-finite samples ...
    assert all(math.isnan(v) for v in broken.values())  # ... and nothing else is judged
    plain = Dataset(
        name="pts",
        x=torch.zeros(5, 3),
        y=None,
        num_classes=0,
        centers=None,
        std=None,
        fresh=False,
        cache_key="pts",
    )
    plain_out = QualityEvaluator(plain)(torch.randn(6, 3))
    assert set(plain_out) == {"diversity/mean", "diversity/min", "diversity/std", "diversity/ratio",
                              "quality/nonfinite"}
    assert math.isnan(plain_out["diversity/ratio"])  # real data all one point: no scale
    with pytest.raises(ValueError, match="expected"):
        ev(torch.zeros(4, 3))


def test_evaluator_uses_at_most_n_samples(evaluator, patterns):
    held_out = patterns[1]
    assert evaluator(held_out) == evaluator(torch.cat([held_out, torch.zeros(50, 1, 8, 8)]))
