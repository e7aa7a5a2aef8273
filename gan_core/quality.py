"""Sample-quality and diversity metrics of generated samples, and the evaluator the trainer calls.

Pure functions on tensors (float32 or float64, CPU or CUDA; they compute in float64):

* 2-D Gaussian mixtures (ring, grid): `mixture_metrics` -> ``quality/modes``,
  ``quality/hq_fraction``, ``quality/kl``, with the definitions of VEEGAN and PacGAN (below),
  and ``quality/modes_reached``, ``quality/near_fraction`` (`mode_coverage`: coverage of
  the data's support however blurry the samples are).
* Images: `frechet_distance` (FID), `kid`, `inception_score`, `pixvar`, on the embedding of a
  feature extractor from `gan_core.features`; `relative_fid` places the FID between a real
  held-out subset and uniform noise; `class_coverage` counts the data's classes among the
  samples when the extractor predicts them.
* Any samples: `pairwise_stats` -> ``diversity/mean``, ``diversity/min``, ``diversity/std``;
  the evaluator adds ``diversity/ratio``, the generated mean distance over the real data's.

`QualityEvaluator` picks the metrics for a data set's kind and returns the record keys of
docs/CONTRACTS.md.

Mixture metrics, as defined by the papers:

* VEEGAN (Srivastava et al. 2017, synthetic-data experiments; quoted from the authors' page,
  github.com/akashgit/VEEGAN, index.md): "count a sample as high quality, if it is within three
  standard deviations of the nearest mode [...] the number of modes captured as the number of
  mixture components whose mean is nearest to at least one high quality sample [...] We
  generate 2500 samples from each trained model".
* PacGAN (Lin et al. 2018, Table 1) reports the same two metrics plus a reverse KL divergence.
  Its released code (github.com/fjxmlzn/PacGAN,
  ``synthetic_data_experiments/PacGAN/pacgan/extensions.py``, ``MetricLogger``, fed 2,500
  samples by ``GraphLogger``, ``num_log_figure_sample``) assigns each sample to the mode with
  the smallest std-scaled distance, counts it when that distance is ``< 3`` (``dis_thre=3``),
  takes "mode coverage" as the number of modes with a non-zero count and "good points
  percentage" as ``sum(counts) / n``. That 2-D code logs the entropy and JSD of this histogram,
  not the KL; "reverse" KL is KL(generated || target), the direction of PacGAN's stacked-MNIST
  code (``stacked_MNIST_experiments/VEEGAN_experiment/model.py``: ``KLD(p, q)``, ``p`` the
  generated mode histogram, ``q`` uniform). So ``quality/kl`` is KL(high-quality histogram ||
  uniform).

Hence the defaults ``hq_threshold=3`` std and ``min_hq_per_mode=1``. A rule of 20 high-quality
samples per mode (a fifth of the 100 expected from 2,500 over 25 modes) is sometimes quoted for
PacGAN; we found it neither in the text nor in the code we could read, so it is an option only
(``min_hq_per_mode=20``).
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass
from functools import cached_property
from typing import TYPE_CHECKING, Any

import numpy as np
import scipy.linalg
import torch
from torch import Tensor

from .features import EXTRACTORS, FeatureExtractor, evenly_spaced, get_extractor
from .metric_keys import (
    CLASS_KEYS,
    DIVERSITY_KEYS,
    IMAGE_KEYS,
    MIXTURE_KEYS,
    NONFINITE_KEY,
    PAIRWISE_KEYS,
)

if TYPE_CHECKING:
    from .data import Dataset

__all__ = [
    "HQ_THRESHOLD",
    "ImageReference",
    "MIN_HQ_PER_MODE",
    "PAPER_N_SAMPLES",
    "QualityEvaluator",
    "class_coverage",
    "frechet_distance",
    "gaussian_stats",
    "inception_score",
    "kid",
    "mixture_metrics",
    "mode_histogram",
    "mode_coverage",
    "pairwise_stats",
    "pixvar",
    "relative_fid",
    "reverse_kl_uniform",
]

PAPER_N_SAMPLES = 2500  # samples per evaluation in VEEGAN and PacGAN
HQ_THRESHOLD = 3.0  # std; VEEGAN "within three standard deviations", PacGAN dis_thre=3
MIN_HQ_PER_MODE = 1  # VEEGAN "at least one high quality sample"; PacGAN counts non-zero modes
REACHED_SHARE = 0.5  # a mode is reached by half its uniform share of near samples (ours)
CLASS_SHARE = 0.25  # a class is seen with a quarter of its share in the real data (ours)


# --- 2-D mixtures ----------------------------------------------------------------------------


def mode_histogram(
    samples: Tensor, centers: Tensor, std: float, hq_threshold: float = HQ_THRESHOLD
) -> Tensor:
    """High-quality samples registered to each mode.

    Each sample goes to its nearest centre (Euclidean; isotropic std, so the same mode as
    PacGAN's std-scaled distance) and counts when that distance is below ``hq_threshold * std``.
    Non-finite samples never count.

    Args:
        samples: ``(n, D)`` generated points.
        centers: ``(K, D)`` mode centres.
        std: standard deviation of every mixture component.
        hq_threshold: high-quality radius in standard deviations (papers: 3).

    Returns:
        int64 ``(K,)`` counts, on the samples' device.
    """
    x = samples.detach().double()
    c = centers.detach().to(x.device, torch.float64)
    dist = torch.cdist(x, c, compute_mode="donot_use_mm_for_euclid_dist") / std
    nearest, mode = dist.min(dim=1)
    hq = torch.isfinite(x).all(dim=1) & (nearest < hq_threshold)
    return torch.bincount(mode[hq], minlength=len(c))


def mode_coverage(
    samples: Tensor, centers: Tensor, min_share: float = REACHED_SHARE
) -> tuple[int, float]:
    """Modes reached by samples near the data, however blurry, and the share of such samples.

    The coverage half of mode counting without the accuracy half. A sample is *near* when it
    lies within half the smallest distance between two modes of its nearest mode: on the data's
    support, if not on a mode. A mode is reached when at least ``min_share / K`` of all samples
    are near it. A G whose samples sit in one wide blob over a mode or on a short arc of the
    ring reaches few modes with most samples near; one spread over the whole support, off the
    modes (blurry), reaches them all; one that has not found the data (a blob between the
    modes) has few samples near. Non-finite samples are never near.

    Args:
        samples: ``(n, D)`` generated points.
        centers: ``(K, D)`` mode centres, K >= 2.
        min_share: fraction of the uniform share ``1 / K`` a mode needs.

    Returns:
        ``(modes reached 0..K, share of near samples 0..1)``.
    """
    x = samples.detach().double()
    c = centers.detach().to(x.device, torch.float64)
    finite = torch.isfinite(x).all(dim=1)
    if not bool(finite.any()) or len(c) < 2:
        return 0, 0.0
    half_spacing = 0.5 * float(torch.pdist(c).min())
    dist, nearest = torch.cdist(x[finite], c).min(dim=1)
    near = nearest[dist < half_spacing]
    share = torch.bincount(near, minlength=len(c)).double() / len(x)
    return int((share >= min_share / len(c)).sum()), len(near) / len(x)


def reverse_kl_uniform(counts: Tensor) -> float:
    """Reverse KL divergence KL(Q || U) of a mode histogram Q from the uniform U over its K bins.

    ``sum_k q_k log(q_k K)`` with ``0 log 0 = 0``: 0 when every mode has the same share,
    ``log K`` when one mode has everything. "Reverse" because the generator's distribution comes
    first (PacGAN, Lin et al. 2018, Table 1; its code: ``KLD(p_generated, q_uniform)``).

    Args:
        counts: ``(K,)`` non-negative counts per mode.

    Returns:
        The divergence in nats; NaN when the histogram is empty (no high-quality samples).
    """
    c = counts.detach().double().cpu()
    total = float(c.sum())
    if total <= 0:
        return math.nan
    q = c / total
    return float(torch.special.xlogy(q, q * len(c)).sum())


def mixture_metrics(
    samples: Tensor,
    centers: Tensor,
    std: float,
    *,
    hq_threshold: float = HQ_THRESHOLD,
    min_hq_per_mode: int = MIN_HQ_PER_MODE,
) -> dict[str, float]:
    """Modes captured, high-quality share and reverse KL of a 2-D Gaussian-mixture sample.

    The definitions of VEEGAN (Srivastava et al. 2017) and PacGAN (Lin et al. 2018); see the
    module docstring for the quoted text and code. Both papers evaluate 2,500 samples
    (`PAPER_N_SAMPLES`); mode counts depend on n, so compare runs at the same n.

    Args:
        samples: ``(n, 2)`` generated points.
        centers: ``(K, 2)`` mode centres.
        std: standard deviation of every mixture component.
        hq_threshold: a sample is high quality within this many std of its nearest mode (3).
        min_hq_per_mode: a mode is captured with at least this many high-quality samples (1).

    Returns:
        ``quality/modes`` (modes captured, 0..K), ``quality/hq_fraction`` (high-quality samples /
        n), ``quality/kl`` (`reverse_kl_uniform` of the high-quality histogram; NaN if empty),
        ``quality/modes_reached`` and ``quality/near_fraction`` (`mode_coverage`).
    """
    counts = mode_histogram(samples, centers, std, hq_threshold)
    n = max(len(samples), 1)
    reached, near = mode_coverage(samples, centers)
    return {
        "quality/modes": float((counts >= min_hq_per_mode).sum()),
        "quality/hq_fraction": float(counts.sum()) / n,
        "quality/kl": reverse_kl_uniform(counts),
        "quality/modes_reached": float(reached),
        "quality/near_fraction": near,
    }


# --- Frechet distance, KID, IS ---------------------------------------------------------------


def _numpy64(a: Any) -> np.ndarray:
    if isinstance(a, Tensor):
        return a.detach().cpu().double().numpy()
    return np.asarray(a, dtype=np.float64)


def gaussian_stats(feats: Tensor | np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean and covariance of features, as pytorch-fid computes them (float64, ``np.cov``).

    Args:
        feats: ``(n, d)`` features, n >= 2.

    Returns:
        ``(mu (d,), sigma (d, d))``, float64 numpy arrays.

    Raises:
        ValueError: fewer than 2 rows, or not 2-D.
    """
    f = _numpy64(feats)
    if f.ndim != 2 or len(f) < 2:
        raise ValueError(f"gaussian_stats: need (n >= 2, d) features, got shape {f.shape}")
    return f.mean(axis=0), np.cov(f, rowvar=False).reshape(f.shape[1], f.shape[1])


def frechet_distance(
    mu1: Tensor | np.ndarray,
    sigma1: Tensor | np.ndarray,
    mu2: Tensor | np.ndarray,
    sigma2: Tensor | np.ndarray,
    eps: float = 1e-6,
) -> float:
    """Frechet distance between N(mu1, sigma1) and N(mu2, sigma2): the FID formula.

    ``||mu1 - mu2||^2 + Tr(sigma1 + sigma2 - 2 sqrt(sigma1 sigma2))`` (Heusel et al. 2017; the
    training guide, seeds/001). Computed in float64 with ``scipy.linalg.sqrtm`` and pytorch-fid's
    ``calculate_frechet_distance`` safeguards: a non-finite square root of a singular product is
    retried with ``eps`` added to both diagonals, and a complex result is accepted (real part)
    only when the imaginary part of its diagonal is below 1e-3.

    Args:
        mu1, sigma1: mean ``(d,)`` and covariance ``(d, d)`` of the first Gaussian.
        mu2, sigma2: the same for the second.
        eps: diagonal offset for singular products.

    Returns:
        The distance (squared units of the features).

    Raises:
        ValueError: shapes disagree, or the square root has a large imaginary part.
    """
    m1, m2 = np.atleast_1d(_numpy64(mu1)), np.atleast_1d(_numpy64(mu2))
    s1, s2 = np.atleast_2d(_numpy64(sigma1)), np.atleast_2d(_numpy64(sigma2))
    if m1.shape != m2.shape or s1.shape != s2.shape or s1.shape != (len(m1), len(m1)):
        raise ValueError(
            f"frechet_distance: shapes of mu {m1.shape}/{m2.shape} and sigma "
            f"{s1.shape}/{s2.shape} disagree"
        )
    diff = m1 - m2
    with warnings.catch_warnings():
        # "Matrix is singular" is routine (collapsed samples, rank-deficient covariances) and the
        # result is checked just below, as pytorch-fid does.
        warnings.simplefilter("ignore", scipy.linalg.LinAlgWarning)
        covmean = scipy.linalg.sqrtm(s1 @ s2)
    if not np.isfinite(covmean).all():
        offset = np.eye(len(s1)) * eps
        covmean = scipy.linalg.sqrtm((s1 + offset) @ (s2 + offset))
    if np.iscomplexobj(covmean):
        if not np.allclose(np.diagonal(covmean).imag, 0, atol=1e-3):
            m = np.max(np.abs(covmean.imag))
            raise ValueError(f"frechet_distance: imaginary component {m}")
        covmean = covmean.real
    return float(diff @ diff + np.trace(s1) + np.trace(s2) - 2 * np.trace(covmean))


def _poly_kernel(a: Tensor, b: Tensor, degree: int, coef0: float) -> Tensor:
    return (a @ b.T / a.shape[1] + coef0) ** degree


def _mmd2_unbiased(kxx_off: Tensor, kyy_off: Tensor, kxy: Tensor, m: int) -> Tensor:
    # Binkowski et al. 2018, eq. 3: off-diagonal within-set sums over m(m-1), cross sum over m^2.
    return (kxx_off + kyy_off) / (m * (m - 1)) - 2 * kxy / (m * m)


def _kid_full_kernels(
    x: Tensor, y: Tensor, ix: list[np.ndarray], iy: list[np.ndarray], degree: int, coef0: float
) -> Tensor:
    """Subset sums from the full kernel matrices: sum of K[I, I] is w^T K w for indicator w."""
    wx = torch.zeros(len(ix), len(x), dtype=x.dtype, device=x.device)
    wy = torch.zeros(len(iy), len(y), dtype=x.dtype, device=x.device)
    for s, (a, b) in enumerate(zip(ix, iy, strict=True)):
        wx[s, torch.as_tensor(a, device=x.device)] = 1
        wy[s, torch.as_tensor(b, device=x.device)] = 1
    kxx, kyy = _poly_kernel(x, x, degree, coef0), _poly_kernel(y, y, degree, coef0)
    kxy = _poly_kernel(x, y, degree, coef0)
    sxx = ((wx @ kxx) * wx).sum(1) - wx @ kxx.diagonal()
    syy = ((wy @ kyy) * wy).sum(1) - wy @ kyy.diagonal()
    sxy = ((wx @ kxy) * wy).sum(1)
    return _mmd2_unbiased(sxx, syy, sxy, len(ix[0]))


def _kid_per_subset(
    x: Tensor, y: Tensor, ix: list[np.ndarray], iy: list[np.ndarray], degree: int, coef0: float
) -> Tensor:
    out = []
    for a, b in zip(ix, iy, strict=True):
        fx, fy = x[torch.as_tensor(a, device=x.device)], y[torch.as_tensor(b, device=x.device)]
        kxx, kyy = _poly_kernel(fx, fx, degree, coef0), _poly_kernel(fy, fy, degree, coef0)
        kxy = _poly_kernel(fx, fy, degree, coef0)
        sxx, syy = kxx.sum() - kxx.diagonal().sum(), kyy.sum() - kyy.diagonal().sum()
        out.append(_mmd2_unbiased(sxx, syy, kxy.sum(), len(a)))
    return torch.stack(out)


def kid(
    feats_real: Tensor,
    feats_fake: Tensor,
    subsets: int = 100,
    subset_size: int = 1000,
    *,
    seed: int = 0,
    degree: int = 3,
    coef0: float = 1.0,
) -> tuple[float, float]:
    """Kernel Inception Distance: unbiased MMD^2 with the kernel ``(x.y / d + 1)^3``.

    Binkowski et al. 2018 ("Demystifying MMD GANs"), as torch-fidelity computes it: ``subsets``
    times, draw ``subset_size`` rows of each set without replacement (numpy generator seeded with
    ``seed``), take the unbiased MMD^2 estimate, report mean and population std over subsets.
    Unbiased, so it can be slightly negative when both sets come from one distribution.

    Args:
        feats_real: ``(n_r, d)`` features of real data.
        feats_fake: ``(n_f, d)`` features of generated data.
        subsets: number of subsets (torch-fidelity: 100).
        subset_size: rows per subset (torch-fidelity: 1000); capped at ``min(n_r, n_f)``.
        seed: subset sampling seed.
        degree, coef0: polynomial kernel parameters (3 and 1).

    Returns:
        ``(mean, std)`` of MMD^2 over the subsets.

    Raises:
        ValueError: fewer than 2 rows in a set, or feature sizes differ.
    """
    x = feats_real.detach().double()
    y = feats_fake.detach().to(x.device, torch.float64)
    m = min(subset_size, len(x), len(y))
    if m < 2 or x.dim() != 2 or y.dim() != 2 or x.shape[1] != y.shape[1]:
        raise ValueError(
            f"kid: need (n >= 2, d) features of equal d, got {tuple(x.shape)}, {tuple(y.shape)}"
        )
    rng = np.random.default_rng(seed)
    ix, iy = [], []
    for _ in range(subsets):  # x then y per subset, as torch-fidelity draws them
        ix.append(rng.choice(len(x), m, replace=False))
        iy.append(rng.choice(len(y), m, replace=False))
    # Full kernels turn every subset into a cheap matrix product; past ~4k rows, too much memory.
    full = max(len(x), len(y)) <= 4096
    mmd = (_kid_full_kernels if full else _kid_per_subset)(x, y, ix, iy, degree, coef0)
    return float(mmd.mean()), float(mmd.std(correction=0))


def inception_score(
    probs: Tensor, splits: int = 10, *, seed: int | None = 0
) -> tuple[float, float]:
    """Inception Score ``exp(E_x KL(p(y|x) || p(y)))`` (Salimans et al. 2016), mean and std.

    As torch-fidelity computes it: rows shuffled by a fixed-seed permutation (samples sorted by
    class, e.g. a conditional generator's or an image folder's, would otherwise put one class in
    each split and score 1), cut into ``splits`` chunks; in each chunk p(y) is the mean
    prediction. Ranges from 1 (every prediction the same) to K (confident, evenly spread over K
    classes).

    Args:
        probs: ``(n, K)`` class probabilities (rows sum to 1).
        splits: number of chunks (standard: 10); capped at n.
        seed: permutation seed (numpy ``RandomState``); None keeps the given order.

    Returns:
        ``(mean, std)`` over chunks (population std, as torch-fidelity).
    """
    p = probs.detach().double()
    n = len(p)
    if seed is not None:
        p = p[torch.from_numpy(np.random.RandomState(seed).permutation(n)).to(p.device)]
    splits = max(1, min(splits, n))
    scores = []
    for i in range(splits):
        chunk = p[i * n // splits : (i + 1) * n // splits]
        py = chunk.mean(dim=0, keepdim=True)
        kl = (torch.special.xlogy(chunk, chunk) - torch.special.xlogy(chunk, py)).sum(dim=1)
        scores.append(float(kl.mean().exp()))
    return float(np.mean(scores)), float(np.std(scores))


def relative_fid(fid: float, floor: float, ceiling: float) -> float:
    """The FID's position between a real held-out subset (0) and uniform noise (1).

    A classifier-space FID has no absolute scale (the guide's bands are Inception's): scoring
    real images and noise in the same space gives it one. Below 0 is as close as real data
    gets; above 1 is farther than noise.

    Args:
        fid: the run's FID.
        floor: FID of real images held out from the reference statistics.
        ceiling: FID of i.i.d. uniform noise images in [-1, 1].

    Returns:
        ``(fid - floor) / (ceiling - floor)``; NaN when the ceiling is not above the floor.
    """
    span = ceiling - floor
    return (fid - floor) / span if span > 0 and math.isfinite(span) else math.nan


def class_coverage(
    probs: Tensor, real_shares: Tensor, min_share: float = CLASS_SHARE
) -> dict[str, float]:
    """How many of the data's classes the classifier sees among samples, and how evenly.

    The image analogue of modes captured and reverse KL (VEEGAN and PacGAN's stacked-MNIST
    protocol, where a pretrained classifier labels each sample): every sample gets its most
    likely class; a class is seen when its share of the samples is at least ``min_share`` of
    its share among real images (as the same classifier labels them, so its errors cancel).

    Args:
        probs: ``(n, K)`` class probabilities of the samples.
        real_shares: ``(K,)`` shares of the classes among real images (sum 1).
        min_share: fraction of a class's real share it needs to count as seen.

    Returns:
        ``quality/classes`` (classes seen), ``quality/class_coverage`` (classes seen over the
        classes present in the real data, 0..1) and ``quality/class_kl`` (KL of the samples'
        histogram from the real one, generated first, in nats; the real histogram is smoothed
        by half a count per class so that it is finite).
    """
    p = probs.detach().double().cpu()
    k = p.shape[1]
    q = torch.bincount(p.argmax(dim=1), minlength=k).double() / max(len(p), 1)
    ref = real_shares.detach().double().cpu()
    present = ref > 0
    seen = int(((q >= min_share * ref) & present).sum())
    smooth = (ref * len(p) + 0.5) / (len(p) + 0.5 * k)
    return {
        "quality/classes": float(seen),
        "quality/class_coverage": seen / max(int(present.sum()), 1),
        "quality/class_kl": float(torch.special.xlogy(q, q / smooth).sum()),
    }


# --- PixVar and pairwise distances -----------------------------------------------------------


def pixvar(samples: Tensor) -> float:
    """Per-pixel variance across samples, averaged over pixels and channels.

    ``mean_{c,h,w} Var_i x_i[c,h,w]`` with the population variance (divide by n), in the units
    of the samples as given: images in [-1, 1], where it lies in [0, 1] (1: every pixel is -1 or
    +1 with equal odds). Divide by 4 for [0, 1] pixels. The guide's ranges (seeds/001: 0.2-0.5
    healthy, < 0.1 mode collapse) come from a tanh generator, i.e. this [-1, 1] scale; they are
    rules of thumb, and data sets with large flat backgrounds (digits) sit lower: compare with
    the real data's value (`QualityEvaluator.reference`).

    Args:
        samples: ``(n, ...)`` samples.

    Returns:
        The mean per-pixel variance; NaN for no samples.
    """
    x = samples.detach().double().reshape(len(samples), -1)
    if len(x) == 0:
        return math.nan
    return float(x.var(dim=0, correction=0).mean())


def pairwise_stats(samples: Tensor, max_n: int = 1000) -> dict[str, float]:
    """Mean, min and std of the L2 distances between distinct generated samples.

    The mode-collapse check of the training-dynamics guide (seeds/004, ``detect_mode_collapse``):
    flatten, compute all pairwise distances, drop the diagonal (each pair counted twice, as
    there), then mean, min and unbiased std. Collapse shows as a small min (near duplicates) and
    a small std relative to the mean. Cost is O(max_n^2 d): above ``max_n`` samples an evenly
    spaced subset (deterministic, no RNG) is used.

    Args:
        samples: ``(n, ...)`` samples; n >= 2 for finite results.
        max_n: most samples used.

    Returns:
        ``diversity/mean``, ``diversity/min``, ``diversity/std`` (NaN when n < 2).
    """
    n = len(samples)
    if n < 2:
        return dict.fromkeys(PAIRWISE_KEYS, math.nan)
    idx = torch.linspace(0, n - 1, min(n, max_n), dtype=torch.float64).round().long()
    x = samples.detach()[idx.to(samples.device)].double().reshape(len(idx), -1)
    # float64 matmul form: ~20x faster than exact differences; duplicates come out ~1e-6, not 0.
    d = torch.cdist(x, x, compute_mode="use_mm_for_euclid_dist")
    off = d[~torch.eye(len(x), dtype=torch.bool, device=d.device)]
    return {
        "diversity/mean": float(off.mean()),
        "diversity/min": float(off.min()),
        "diversity/std": float(off.std()),
    }


# --- evaluator -------------------------------------------------------------------------------


@dataclass(frozen=True)
class ImageReference:
    """Where real data and noise land in an extractor's space: the scale of a run's metrics.

    Attributes:
        fid_floor: FID of real images held out from the reference statistics (where there are
            enough; otherwise a subset of them, a slightly optimistic floor).
        fid_ceiling: FID of i.i.d. uniform noise images in [-1, 1].
        class_shares: ``(K,)`` shares of the classes among the real subset as the classifier
            labels it; None when the extractor does not predict the data set's classes.
        n: images in each of the two sets.
    """

    fid_floor: float
    fid_ceiling: float
    class_shares: Tensor | None
    n: int


class QualityEvaluator:
    """Quality and diversity metrics of one run's generated samples, for the per-epoch record.

    Points with mixture centres: the `MIXTURE_KEYS`; images: the `IMAGE_KEYS`, plus the
    `CLASS_KEYS` when the extractor predicts the data set's labelled classes; every call: the
    ``diversity/*`` keys and ``quality/nonfinite``. The feature extractor (images) is built, or
    loaded from its disk cache, once here; each call then costs one forward pass (the first also
    embeds a real subset and a noise set once, for `reference`).

    Args:
        dataset: the run's `gan_core.data.Dataset` (reads ``x``, ``y``, ``num_classes``,
            ``centers``, ``std``, ``cache_key``, ``kind``).
        extractor: feature extractor name (`gan_core.features.list_extractors`); checked for
            every data kind, used for images.
        n_samples: most samples used per call (extra ones are ignored). The mixture papers use
            2,500 (`PAPER_N_SAMPLES`).
        device: where the extractor runs; None picks CUDA when available.
        max_pairwise: most samples in the pairwise-distance statistics.
        kid_subsets, kid_subset_size: KID subsets (capped at the number of samples).
        is_splits: Inception Score splits.

    Raises:
        ValueError: unknown extractor name (lists the valid ones).
        gan_core.features.ExtractorUnavailable: an optional extractor cannot be built.
    """

    def __init__(
        self,
        dataset: Dataset,
        extractor: str = "classifier",
        n_samples: int = 2000,
        device: str | torch.device | None = None,
        *,
        max_pairwise: int = 1000,
        kid_subsets: int = 100,
        kid_subset_size: int = 1000,
        is_splits: int = 10,
    ):
        if extractor not in EXTRACTORS:
            raise ValueError(
                f"unknown feature extractor {extractor!r}; valid extractors: "
                f"{', '.join(sorted(EXTRACTORS))}"
            )
        if n_samples < 2:
            raise ValueError(f"n_samples: must be >= 2, got {n_samples}")
        self.dataset = dataset
        self.n_samples = n_samples
        self.max_pairwise, self.is_splits = max_pairwise, is_splits
        self.kid_subsets, self.kid_subset_size = kid_subsets, kid_subset_size
        self.mixture = (
            dataset.kind == "points" and dataset.centers is not None and dataset.std is not None
        )
        self.extractor: FeatureExtractor | None = None
        if dataset.kind == "images":
            self.extractor = get_extractor(extractor, dataset, device)

    @property
    def keys(self) -> tuple[str, ...]:
        """The record keys every call returns."""
        if self.extractor is not None:
            classes = CLASS_KEYS if self.extractor.predicts_data_classes else ()
            quality = IMAGE_KEYS + classes
        else:
            quality = MIXTURE_KEYS if self.mixture else ()
        return quality + DIVERSITY_KEYS + (NONFINITE_KEY,)

    @property
    def reference_values(self) -> dict[str, float]:
        """The real data's values of the image metrics that have no zero point (IS, PixVar)."""
        if self.extractor is None:
            return {}
        return {
            "quality/is": self.extractor.real.inception_score,
            "quality/pixvar": pixvar(self.dataset.x),
        }

    def __call__(self, samples: Tensor) -> dict[str, float]:
        """Metrics of one batch of generated samples.

        Args:
            samples: ``(n, *dataset.x.shape[1:])`` generated samples, any float dtype/device.

        Returns:
            `keys` -> float. When a sample is not finite (a diverged generator), only
            ``quality/nonfinite`` (their share) is a number; the rest are NaN.

        Raises:
            ValueError: the sample shape does not match the data set's.
        """
        x = samples.detach()[: self.n_samples]
        if tuple(x.shape[1:]) != tuple(self.dataset.x.shape[1:]) or len(x) < 2:
            raise ValueError(
                f"samples: expected (n >= 2, {', '.join(map(str, self.dataset.x.shape[1:]))}), "
                f"got {tuple(samples.shape)}"
            )
        finite = torch.isfinite(x.reshape(len(x), -1)).all(dim=1)
        nonfinite = 1.0 - float(finite.double().mean())
        if nonfinite > 0:
            return {**dict.fromkeys(self.keys, math.nan), NONFINITE_KEY: nonfinite}
        out: dict[str, float] = {}
        if self.extractor is not None:
            out.update(self._image_metrics(self.extractor, x))
        elif self.mixture:
            out.update(mixture_metrics(x, self.dataset.centers, float(self.dataset.std)))
        out.update(pairwise_stats(x, self.max_pairwise))
        real = self.real_mean_distance
        out["diversity/ratio"] = out["diversity/mean"] / real if real > 0 else math.nan
        out[NONFINITE_KEY] = 0.0
        return out

    @cached_property
    def real_mean_distance(self) -> float:
        """Mean pairwise distance of the real data (evenly spaced subset), computed once."""
        return pairwise_stats(self.dataset.x, self.max_pairwise)["diversity/mean"]

    @cached_property
    def reference(self) -> ImageReference:
        """Real held-out images and uniform noise scored once in the extractor's space."""
        ext = self.extractor
        if ext is None:
            raise ValueError("reference: only image data sets have an image reference")
        x = self.dataset.x
        m = min(self.n_samples, len(x))
        real_feats, real_probs = ext.embed(x[_held_out(len(x), ext.real.n, m)])
        noise_gen = torch.Generator().manual_seed(0)
        noise = torch.rand((m, *x.shape[1:]), generator=noise_gen) * 2 - 1
        noise_feats, _ = ext.embed(noise)
        real = ext.real
        shares = None
        if ext.predicts_data_classes and real_probs is not None:
            counts = torch.bincount(real_probs.argmax(dim=1), minlength=real_probs.shape[1])
            shares = counts.double() / counts.sum()
        return ImageReference(
            fid_floor=frechet_distance(real.mu, real.sigma, *gaussian_stats(real_feats)),
            fid_ceiling=frechet_distance(real.mu, real.sigma, *gaussian_stats(noise_feats)),
            class_shares=shares,
            n=m,
        )

    def _image_metrics(self, extractor: FeatureExtractor, x: Tensor) -> dict[str, float]:
        real, ref = extractor.real, self.reference
        feats, probs = extractor.embed(x)
        mu, sigma = gaussian_stats(feats)
        fid = frechet_distance(real.mu, real.sigma, mu, sigma)
        kid_mean, kid_std = kid(real.feats, feats, self.kid_subsets, self.kid_subset_size)
        is_mean, is_std = (
            (math.nan, math.nan) if probs is None else inception_score(probs, self.is_splits)
        )
        out = {
            "quality/fid": fid,
            "quality/fid_rel": relative_fid(fid, ref.fid_floor, ref.fid_ceiling),
            "quality/kid": kid_mean,
            "quality/kid_std": kid_std,
            "quality/is": is_mean,
            "quality/is_std": is_std,
            "quality/pixvar": pixvar(x),
        }
        if ref.class_shares is not None and probs is not None:
            out.update(class_coverage(probs, ref.class_shares))
        return out


def _held_out(n: int, used: int, m: int) -> Tensor:
    """``m`` indices of images outside the ``used`` evenly spaced ones behind the real statistics.

    Falls back to an evenly spaced subset of all images when fewer than ``m`` are left out.
    """
    mask = torch.ones(n, dtype=torch.bool)
    mask[evenly_spaced(n, used)] = False
    rest = mask.nonzero().squeeze(1)
    if len(rest) < m:
        return evenly_spaced(n, m)
    return rest[evenly_spaced(len(rest), m)]
