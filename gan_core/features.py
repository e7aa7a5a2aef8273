"""Feature extractors for FID, KID and the Inception Score, chosen by name from a registry.

An extractor maps images ``(N, C, H, W)`` in [-1, 1] to an embedding ``(N, d)`` (for FID and
KID) and class probabilities ``(N, K)`` (for IS), and carries the statistics of the real data
in that embedding (`RealStats`), computed once and cached on disk.

* ``classifier`` (default, offline): a small CNN trained on the run's own training images,
  deterministically (fixed seed; at most 200 steps, one CPU thread: ~2 s for digits 8x8,
  ~15-25 s for 28x28 to 64x64 sets of 10k images on the 2-core reference machine). Its
  penultimate layer (pre-activation, standardised with the real data's mean and std) is the
  embedding; its softmax gives the IS. With labels it learns the classes; without labels it
  learns k-means pseudo-labels of the pixels (k = 10), so the IS still counts "how many kinds of
  images, how confidently" (a rotation task would not do: every upright sample would get the same
  prediction and an IS of 1). Numbers are comparable between runs on the same data set only,
  never with published Inception-based FIDs.
* ``inception``: the standard FID Inception-v3 through torch-fidelity (features ``2048``,
  IS from ``logits_unbiased``) or, failing that, pytorch-fid (features only; IS is NaN). Both are
  optional installs; without them, or without their weights, building it raises
  `ExtractorUnavailable` naming what to install.

Cache: ``$GANSWEEP_CACHE/features`` (default ``~/.cache/gansweep/features``), one file per data
set (``Dataset.cache_key``), extractor and settings, written with ``torch.save`` (atomic
rename) and read with ``torch.load(..., weights_only=True)``. An unreadable or mismatched file
is rebuilt, never trusted.
"""

from __future__ import annotations

import hashlib
import math
import os
import tempfile
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from types import MappingProxyType
from typing import Any, Protocol

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

__all__ = [
    "CACHE_VERSION",
    "EXTRACTORS",
    "ClassifierConfig",
    "ClassifierExtractor",
    "DatasetLike",
    "ExtractorUnavailable",
    "FeatureExtractor",
    "InceptionExtractor",
    "RealStats",
    "cache_dir",
    "evenly_spaced",
    "get_extractor",
    "list_extractors",
]

CACHE_VERSION = 1  # bump when the file layout or the training recipe changes


class ExtractorUnavailable(RuntimeError):
    """An optional feature extractor cannot be built here; the message says what to install."""


class DatasetLike(Protocol):
    """What the extractors read from `gan_core.data.Dataset`."""

    name: str
    x: Tensor
    y: Tensor | None
    num_classes: int
    cache_key: str


@dataclass(frozen=True)
class RealStats:
    """Statistics of the real training images in one embedding.

    Attributes:
        mu: float64 ``(d,)`` feature mean (FID).
        sigma: float64 ``(d, d)`` feature covariance, ``np.cov(rowvar=False)`` (FID).
        feats: float64 ``(m, d)`` CPU features of an evenly spaced subset, for KID.
        inception_score: IS of the real images (NaN when the extractor has no classes).
        n: number of real images behind ``mu`` and ``sigma``.
    """

    mu: np.ndarray
    sigma: np.ndarray
    feats: Tensor
    inception_score: float
    n: int

    def to_payload(self) -> dict[str, Any]:
        return {
            "mu": torch.from_numpy(self.mu),
            "sigma": torch.from_numpy(self.sigma),
            "feats": self.feats,
            "inception_score": float(self.inception_score),
            "n": int(self.n),
        }

    @classmethod
    def from_payload(cls, p: Mapping[str, Any]) -> RealStats:
        return cls(
            mu=p["mu"].double().numpy(),
            sigma=p["sigma"].double().numpy(),
            feats=p["feats"].double(),
            inception_score=float(p["inception_score"]),
            n=int(p["n"]),
        )


class FeatureExtractor(ABC):
    """An embedding of images plus the real data's statistics in it."""

    name: str
    real: RealStats
    # True when `embed`'s class probabilities are over the data set's own labelled classes, so
    # the samples' class histogram measures class coverage (stacked-MNIST style).
    predicts_data_classes: bool = False

    @abstractmethod
    def embed(self, x: Tensor) -> tuple[Tensor, Tensor | None]:
        """Embed images.

        Args:
            x: ``(N, C, H, W)`` images in [-1, 1], any float dtype and device.

        Returns:
            ``(features, probs)``: float64 CPU ``(N, d)`` and float64 CPU ``(N, K)`` class
            probabilities, or None when the extractor has no classifier head.
        """


# --- cache -----------------------------------------------------------------------------------


def cache_dir() -> Path:
    """Cache folder: ``$GANSWEEP_CACHE/features``, by default ``~/.cache/gansweep/features``."""
    root = os.environ.get("GANSWEEP_CACHE") or "~/.cache/gansweep"
    return Path(root).expanduser() / "features"


def _cache_path(cache_key: str, extractor: str, settings: Mapping[str, Any]) -> Path:
    # Settings go into the name, so changing a recipe never loads a stale model.
    digest = hashlib.blake2b(repr(sorted(settings.items())).encode(), digest_size=4).hexdigest()
    return cache_dir() / f"{cache_key}-{extractor}-v{CACHE_VERSION}-{digest}.pt"


def _load_cache(path: Path, required: tuple[str, ...]) -> dict[str, Any] | None:
    """The cached payload, or None when missing, unreadable or incomplete (then it is rebuilt)."""
    if not path.is_file():
        return None
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception:  # corrupt, truncated, or not a torch file: rebuild
        return None
    if not isinstance(payload, dict) or payload.get("version") != CACHE_VERSION:
        return None
    if any(k not in payload for k in required):
        return None
    return payload


def _save_cache(path: Path, payload: dict[str, Any]) -> None:
    # Write then rename: parallel trials on one data set never read a half-written file.
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name, suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            torch.save({"version": CACHE_VERSION, **payload}, f)
        os.chmod(tmp, 0o644)  # mkstemp makes 0600; the cache is ordinary data
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


# --- helpers shared by the extractors --------------------------------------------------------


def evenly_spaced(n: int, m: int) -> Tensor:
    """``min(n, m)`` indices spread evenly over ``0..n-1``: a deterministic, RNG-free subset."""
    if m >= n:
        return torch.arange(n)
    return torch.linspace(0, n - 1, m, dtype=torch.float64).round().long()


def _batched_embed(
    fn: Callable[[Tensor], tuple[Tensor, Tensor | None]], x: Tensor, batch: int = 500
) -> tuple[Tensor, Tensor | None]:
    feats, probs = [], []
    for i in range(0, len(x), batch):
        f, p = fn(x[i : i + batch])
        feats.append(f.double().cpu())
        if p is not None:
            probs.append(p.double().cpu())
    return torch.cat(feats), (torch.cat(probs) if probs else None)


def _real_stats(feats: Tensor, probs: Tensor | None, max_kid: int) -> RealStats:
    """RealStats from the real images' features and class probabilities."""
    from .quality import gaussian_stats, inception_score  # quality imports us at module level

    mu, sigma = gaussian_stats(feats)
    score = math.nan if probs is None else inception_score(probs)[0]
    kid_feats = feats[evenly_spaced(len(feats), max_kid)].clone()
    return RealStats(mu, sigma, kid_feats, score, len(feats))


@contextmanager
def _file_lock(path: Path) -> Iterator[None]:
    """Exclusive lock beside a cache file: parallel trials on one data set build it only once."""
    try:
        import fcntl
    except ImportError:  # not POSIX: no lock, at worst duplicated work (writes stay atomic)
        yield
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path.with_name(path.name + ".lock"), "a") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


@contextmanager
def _cpu_threads(device: torch.device, n: int) -> Iterator[None]:
    """Run with n intra-op threads on the CPU, then restore the caller's setting.

    A small CNN on small images loses more to thread synchronisation than it gains: on the
    shared 2-core reference machine, training on digits took 6 s with 1 thread and 55 s with 2.
    Sweeps also run one trial per core.
    """
    if device.type != "cpu":
        yield
        return
    old = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(old)


def _resolve_device(device: str | torch.device | None) -> torch.device:
    if device is None:
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


def _check_images(dataset: DatasetLike, extractor: str) -> None:
    if dataset.x.dim() != 4:
        raise ValueError(
            f"feature extractor {extractor!r}: data set {dataset.name!r} holds points "
            f"{tuple(dataset.x.shape)}, not images (N, C, H, W)"
        )


# --- classifier ------------------------------------------------------------------------------


@dataclass(frozen=True)
class ClassifierConfig:
    """Recipe of the ``classifier`` extractor; every field is part of its cache file name."""

    seed: int = 0  # weights, shuffling and k-means initialisation
    epochs: int = 20  # passes over the (subsampled) training images ...
    max_steps: int = 200  # ... but at most this many optimizer steps (CPU budget on big sets)
    batch_size: int = 128
    lr: float = 5e-3  # Adam; digits 8x8 reach ~98% held-out accuracy in 200 steps
    width: int = 16  # channels of the first conv; doubled per stride-2 stage ...
    max_width: int = 64  # ... up to this many
    embed_dim: int = 64  # penultimate width = embedding size d
    max_train: int = 10_000  # training images used (evenly spaced subset), bounds CPU time
    kmeans_k: int = 10  # pseudo-classes when the data set has no labels
    kmeans_iters: int = 25
    max_real: int = 5_000  # real images behind mu and sigma
    max_kid: int = 2_000  # real features kept for KID


class _SmallCNN(nn.Module):
    """Conv stem, stride-2 convs down to <= 4x4, 2x2 average pool, then embed -> ReLU -> logits.

    Sized for 8x8 (one stride-2 stage) up to 64x64 (strided stem, then three), 1 or 3
    channels. No batch norm, so training and evaluation modes compute the same function. The
    embedding is the penultimate layer's pre-activation: unlike post-ReLU values it has no dead
    (constant zero) dimensions, so its covariance stays full rank for the FID's matrix square
    root. It is standardised per dimension with the real data's mean and std (buffers, set after
    training): KID's kernel ``(x.y / d + 1)^3`` then sees O(1) values, as with Inception
    features, and FID is in units of the real data's feature variance instead of an arbitrary
    network scale.
    """

    def __init__(
        self, channels: int, size: int, num_classes: int, width: int, max_width: int, embed_dim: int
    ):
        super().__init__()
        # Above 32 px the stem strides too: 64x64 costs about what 32x32 does.
        stem = 2 if size > 32 else 1
        layers: list[nn.Module] = [nn.Conv2d(channels, width, 3, stem, padding=1), nn.ReLU()]
        ch, s = width, (size + stem - 1) // stem
        while s > 4:
            out = min(ch * 2, max_width)
            layers += [nn.Conv2d(ch, out, 3, stride=2, padding=1), nn.ReLU()]
            ch, s = out, (s + 1) // 2
        layers += [nn.AdaptiveAvgPool2d(2), nn.Flatten()]
        self.trunk = nn.Sequential(*layers)
        self.embed = nn.Linear(ch * 4, embed_dim)
        self.head = nn.Linear(embed_dim, num_classes)
        self.register_buffer("feat_mean", torch.zeros(embed_dim))
        self.register_buffer("feat_std", torch.ones(embed_dim))

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """(standardised embedding, logits)."""
        e = self.embed(self.trunk(x))
        return (e - self.feat_mean) / self.feat_std, self.head(F.relu(e))


def _kmeans_labels(x: Tensor, k: int, iters: int, seed: int) -> Tensor:
    """Lloyd's k-means on flattened pixels with k-means++ seeding; deterministic given `seed`."""
    flat = x.reshape(len(x), -1).double()
    k = max(1, min(k, len(flat)))
    gen = torch.Generator().manual_seed(seed)
    centers = flat[torch.randint(len(flat), (1,), generator=gen)]
    for _ in range(1, k):
        d2 = torch.cdist(flat, centers).min(dim=1).values.square()
        weights = d2 if float(d2.sum()) > 0 else torch.ones_like(d2)
        centers = torch.cat([centers, flat[torch.multinomial(weights, 1, generator=gen)]])
    for _ in range(iters):
        labels = torch.cdist(flat, centers).argmin(dim=1)
        for j in range(k):
            members = flat[labels == j]
            if len(members):
                centers[j] = members.mean(dim=0)
    return torch.cdist(flat, centers).argmin(dim=1)


def _training_targets(
    dataset: DatasetLike, x: Tensor, idx: Tensor, cfg: ClassifierConfig
) -> tuple[Tensor, int, str]:
    """(labels, number of classes, source): the data set's labels, else k-means pseudo-labels."""
    if dataset.y is not None and dataset.num_classes > 1:
        return dataset.y[idx].long(), int(dataset.num_classes), "labels"
    y = _kmeans_labels(x, cfg.kmeans_k, cfg.kmeans_iters, cfg.seed)
    return y, int(y.max()) + 1, "kmeans"


def _new_model(shape: list[int], num_classes: int, cfg: ClassifierConfig) -> _SmallCNN:
    with torch.random.fork_rng(devices=[]):  # seeded init without touching the caller's RNG
        torch.manual_seed(cfg.seed)
        return _SmallCNN(
            shape[0], min(shape[1:]), num_classes, cfg.width, cfg.max_width, cfg.embed_dim
        )


def _train_classifier(
    x: Tensor, y: Tensor, num_classes: int, cfg: ClassifierConfig, device: torch.device
) -> _SmallCNN:
    """Train the small CNN with cross-entropy, Adam, fixed seed; returns it in eval mode."""
    model = _new_model([int(s) for s in x.shape[1:]], num_classes, cfg).to(device).train()
    opt = torch.optim.Adam(model.parameters(), lr=cfg.lr)
    gen = torch.Generator().manual_seed(cfg.seed)  # data order: its own stream
    batches = [
        b
        for _ in range(cfg.epochs)
        for b in torch.randperm(len(x), generator=gen).split(cfg.batch_size)
    ]
    for batch in batches[: cfg.max_steps]:
        xb, yb = x[batch].to(device, torch.float32), y[batch].to(device)
        loss = F.cross_entropy(model(xb)[1], yb)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    return model.eval()


class ClassifierExtractor(FeatureExtractor):
    """Small CNN trained on the data set's own images; penultimate features, softmax for IS."""

    name = "classifier"

    def __init__(self, model: _SmallCNN, device: torch.device, label_source: str):
        self.model = model.to(device).eval()
        self.device = device
        self.label_source = label_source  # "labels" or "kmeans"
        self.predicts_data_classes = label_source == "labels"

    @torch.no_grad()
    def _embed_batch(self, x: Tensor) -> tuple[Tensor, Tensor]:
        e, logits = self.model(x.to(self.device, torch.float32))
        return e, torch.softmax(logits.double(), dim=1)

    def embed(self, x: Tensor) -> tuple[Tensor, Tensor | None]:
        return _batched_embed(self._embed_batch, x)

    @classmethod
    def build(
        cls,
        dataset: DatasetLike,
        device: str | torch.device | None = None,
        config: ClassifierConfig | None = None,
    ) -> ClassifierExtractor:
        """Load the trained classifier and real statistics from the cache, or train and cache them.

        Args:
            dataset: image data set; its ``cache_key`` names the cache file.
            device: where to train and embed; None picks CUDA when available.
            config: training recipe; defaults to `ClassifierConfig()`.

        Returns:
            The extractor, with ``real`` filled in.
        """
        _check_images(dataset, cls.name)
        cfg, dev = config or ClassifierConfig(), _resolve_device(device)
        path = _cache_path(dataset.cache_key, cls.name, asdict(cfg))
        shape = [int(s) for s in dataset.x.shape[1:]]
        ext = cls._from_cache(path, shape, cfg, dev)
        if ext is None:
            with _file_lock(path):
                # Another process may have built it while we waited for the lock.
                ext = cls._from_cache(path, shape, cfg, dev)
                if ext is None:
                    ext = cls._train_and_cache(dataset, cfg, dev, path, shape)
        return ext

    @classmethod
    def _from_cache(
        cls, path: Path, shape: list[int], cfg: ClassifierConfig, dev: torch.device
    ) -> ClassifierExtractor | None:
        payload = _load_cache(path, ("state_dict", "num_classes", "shape", "label_source", "real"))
        if payload is None or list(payload["shape"]) != shape:
            return None
        try:
            model = _new_model(shape, int(payload["num_classes"]), cfg)
            model.load_state_dict(payload["state_dict"])
            ext = cls(model, dev, str(payload["label_source"]))
            ext.real = RealStats.from_payload(payload["real"])
        except (RuntimeError, KeyError, TypeError, AttributeError, ValueError):
            return None  # contents do not fit this recipe: rebuild
        return ext

    @classmethod
    def _train_and_cache(
        cls,
        dataset: DatasetLike,
        cfg: ClassifierConfig,
        dev: torch.device,
        path: Path,
        shape: list[int],
    ) -> ClassifierExtractor:
        idx = evenly_spaced(len(dataset.x), cfg.max_train)
        x = dataset.x[idx]
        with _cpu_threads(dev, 1):
            y, num_classes, source = _training_targets(dataset, x, idx, cfg)
            model = _train_classifier(x, y, num_classes, cfg, dev)
            ext = cls(model, dev, source)
            # One pass over the real images: raw features (buffers still identity) give the
            # standardisation, then the standardised features give the statistics.
            raw, probs = ext.embed(dataset.x[evenly_spaced(len(dataset.x), cfg.max_real)])
            mean, std = raw.mean(dim=0), raw.std(dim=0).clamp_min(1e-6)
            model.feat_mean.copy_(mean)
            model.feat_std.copy_(std)
            ext.real = _real_stats((raw - mean) / std, probs, cfg.max_kid)
        state = {k: v.detach().cpu() for k, v in model.state_dict().items()}
        _save_cache(
            path,
            {
                "state_dict": state,
                "num_classes": num_classes,
                "shape": shape,
                "label_source": source,
                "real": ext.real.to_payload(),
            },
        )
        return ext


# --- Inception (optional) --------------------------------------------------------------------

_INCEPTION_HELP = (
    "the 'inception' feature extractor needs torch-fidelity (pip install torch-fidelity; "
    "FID features and IS) or pytorch-fid (pip install pytorch-fid; FID features only), with the "
    "Inception weights present in the torch hub cache or downloadable; use the default "
    "'classifier' extractor offline"
)


def _cached_real(path: Path) -> RealStats | None:
    payload = _load_cache(path, ("real",))
    try:
        return None if payload is None else RealStats.from_payload(payload["real"])
    except (KeyError, TypeError, AttributeError):
        return None


def _to_uint8_rgb(x: Tensor) -> Tensor:
    """[-1, 1] float -> 0..255 uint8 with 3 channels (grey images repeated), as FID nets expect."""
    x = ((x.float() + 1) * 127.5).round().clamp(0, 255).to(torch.uint8)
    return x.expand(-1, 3, -1, -1) if x.shape[1] == 1 else x


def _fidelity_backend(device: torch.device) -> Callable[[Tensor], tuple[Tensor, Tensor | None]]:
    from torch_fidelity.feature_extractor_inceptionv3 import FeatureExtractorInceptionV3

    net = FeatureExtractorInceptionV3("inception-v3-compat", ["2048", "logits_unbiased"]).to(device)

    @torch.no_grad()
    def run(x: Tensor) -> tuple[Tensor, Tensor | None]:
        feats, logits = net(_to_uint8_rgb(x).to(device))
        return feats, torch.softmax(logits.double(), dim=1)

    return run


def _pytorch_fid_backend(device: torch.device) -> Callable[[Tensor], tuple[Tensor, Tensor | None]]:
    from pytorch_fid.inception import InceptionV3

    net = InceptionV3([InceptionV3.BLOCK_INDEX_BY_DIM[2048]]).to(device).eval()

    @torch.no_grad()
    def run(x: Tensor) -> tuple[Tensor, Tensor | None]:
        rgb = _to_uint8_rgb(x).to(device, torch.float32) / 255.0  # pytorch-fid takes [0, 1]
        return net(rgb)[0].flatten(1), None

    return run


class InceptionExtractor(FeatureExtractor):
    """The standard FID Inception-v3 (pool3, 2048-d) through torch-fidelity or pytorch-fid."""

    name = "inception"

    def __init__(self, run: Callable[[Tensor], tuple[Tensor, Tensor | None]], backend: str):
        self._run = run
        self.backend = backend

    def embed(self, x: Tensor) -> tuple[Tensor, Tensor | None]:
        return _batched_embed(self._run, x, batch=100)

    @classmethod
    def build(
        cls, dataset: DatasetLike, device: str | torch.device | None = None
    ) -> InceptionExtractor:
        """Build the network (first available backend) and load or compute the real statistics.

        Raises:
            ExtractorUnavailable: neither backend is installed, or its weights cannot be loaded.
        """
        _check_images(dataset, cls.name)
        dev = _resolve_device(device)
        ext = cls._first_backend(dev)
        path = _cache_path(dataset.cache_key, f"{cls.name}_{ext.backend}", {"max_real": 5_000})
        with _file_lock(path):  # one process embeds the real images; the others wait and load
            real = _cached_real(path)
            if real is None:
                x = dataset.x[evenly_spaced(len(dataset.x), 5_000)]
                real = _real_stats(*ext.embed(x), 2_000)
                _save_cache(path, {"real": real.to_payload()})
        ext.real = real
        return ext

    @classmethod
    def _first_backend(cls, dev: torch.device) -> InceptionExtractor:
        errors = []
        backends = (("torch_fidelity", _fidelity_backend), ("pytorch_fid", _pytorch_fid_backend))
        for backend, factory in backends:
            try:
                return cls(factory(dev), backend)
            except Exception as exc:  # missing package, missing weights, no network
                errors.append(f"{backend}: {type(exc).__name__}: {exc}")
        raise ExtractorUnavailable(f"{_INCEPTION_HELP}. Tried: " + "; ".join(errors))


# --- registry --------------------------------------------------------------------------------

_Factory = Callable[[DatasetLike, "str | torch.device | None"], FeatureExtractor]

EXTRACTORS: Mapping[str, _Factory] = MappingProxyType(
    {
        "classifier": lambda dataset, device: ClassifierExtractor.build(dataset, device),
        "inception": lambda dataset, device: InceptionExtractor.build(dataset, device),
    }
)


def list_extractors() -> list[str]:
    """Names accepted by `get_extractor`."""
    return sorted(EXTRACTORS)


def get_extractor(
    name: str, dataset: DatasetLike, device: str | torch.device | None = None
) -> FeatureExtractor:
    """Build the named extractor for a data set (cached real statistics included).

    Args:
        name: one of `list_extractors()`.
        dataset: image data set.
        device: where to run the network; None picks CUDA when available.

    Returns:
        The extractor.

    Raises:
        ValueError: unknown name (the message lists the valid ones), or the data set has no images.
        ExtractorUnavailable: an optional extractor's package or weights are missing.
    """
    if name not in EXTRACTORS:
        raise ValueError(
            f"unknown feature extractor {name!r}; valid extractors: {', '.join(list_extractors())}"
        )
    return EXTRACTORS[name](dataset, device)
