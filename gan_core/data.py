"""Data sets for GAN runs: synthetic mixtures, bundled digits, standard image sets, user files.

Every loader returns one `Dataset` in a fixed layout, so models and metrics need no per-source code:

* points: float32 ``(N, D)``, unscaled (the mixtures live in about [-4.2, 4.2]);
* images: float32 ``(N, C, H, W)``, channels first (NCHW), ``C`` = 1 (grey) or 3 (RGB), scaled to
  [-1, 1] to match a tanh generator output.

Scaling rule for images. 8-bit sources (IDX, CIFAR-10, PIL images, integer arrays with values in
0..255) map linearly 0 -> -1 and 255 -> 1 (``x / 127.5 - 1``). Floating-point arrays are taken to be
scaled already: values inside [-1, 1] (tolerance 1e-3, then clipped) are kept and anything outside
is an error, because guessing between [0, 1], 0..255 and standardised inputs would hide a mistake.
Scikit-learn's digits (0..16) map 0 -> -1 and 16 -> 1. Points are never rescaled.

Resizing. ``data.image_size`` resizes every image to ``image_size x image_size`` by bilinear
interpolation (``torch.nn.functional.interpolate``, ``align_corners=False``, antialiased), the
rule of torchvision's ``Resize``: e.g. MNIST 28 -> 32 for a DCGAN. Non-square images are stretched.
Bilinear weights are convex, so values stay in [-1, 1].

Mixtures. The ``n_points`` training points are drawn with the fixed `MIXTURE_SEED`, never the
run's seed, so runs with different seeds train on the same points and compare. With
``data.fresh`` the trainer instead draws every batch with `Dataset.sample` from its own data
stream; ``x`` then still holds the fixed points (the epoch length and the metrics' reference).

Standard sets (training split only) are read from the root ``data.path``, by default
``$GANSWEEP_DATA`` or ``~/.cache/gansweep/data``, and fetched only when ``data.download`` is true::

    <root>/mnist/train-{images-idx3,labels-idx1}-ubyte[.gz]    (or <root>/MNIST/raw/, torchvision's)
    <root>/fashion_mnist/train-...-ubyte[.gz]                  (or <root>/FashionMNIST/raw/)
    <root>/cifar-10-batches-bin/data_batch_{1..5}.bin
"""

from __future__ import annotations

import contextlib
import gzip
import hashlib
import io
import math
import os
import re
import shutil
import struct
import tarfile
import urllib.request
import zipfile
import zlib
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
import torch.nn.functional as F

from gan_core.config import ConfigError, DataConfig

__all__ = [
    "DATASETS",
    "DOMAIN_PAIRS",
    "MIXTURE_SEED",
    "DataError",
    "Dataset",
    "grid_centers",
    "load_dataset",
    "ring_centers",
]

# Seed of the fixed mixture training points (PacGAN's arXiv id). Any constant would do; what
# matters is that it is not the run's seed.
MIXTURE_SEED = 171204086

_RING_STD, _GRID_STD, _GRID_SPACING = 0.01, 0.05, 2.0  # PacGAN, section 5.1
_FLOAT_TOLERANCE = 1e-3  # float pixels may overshoot [-1, 1] by this much (rounding), then clipped


class DataError(ValueError):
    """A data file is missing, corrupt or not in the expected format. The message names the file."""


@dataclass(frozen=True, eq=False)  # eq=False: tensors have no single truth value
class Dataset:
    """One loaded data set, in memory on the CPU.

    Attributes:
        name: the registry name (``DataConfig.name``).
        x: float32 samples; points ``(N, D)`` or images ``(N, C, H, W)`` in [-1, 1].
        y: int64 labels ``(N,)`` in ``0..num_classes-1``, or None.
        num_classes: number of classes, 0 when unlabeled.
        centers: mixtures only: mode centres ``(K, 2)``.
        std: mixtures only: standard deviation of every Gaussian.
        fresh: mixtures only: draw a fresh batch every step with `sample`.
        cache_key: stable id (name, parameters, content hash) for caching things derived from
            the data, such as reference statistics. Safe as a file name.
    """

    name: str
    x: torch.Tensor
    y: torch.Tensor | None
    num_classes: int
    centers: torch.Tensor | None
    std: float | None
    fresh: bool
    cache_key: str

    def __post_init__(self) -> None:
        # Invariants the trainer relies on; a failure here is a bug in a loader, not user input.
        if self.x.dtype != torch.float32 or self.x.dim() not in (2, 4):
            raise ValueError(f"Dataset.x: expected float32 (N, D) or (N, C, H, W), got {self.x!r}")
        if self.y is not None and (self.y.dtype != torch.int64 or self.y.shape != self.x.shape[:1]):
            raise ValueError(f"Dataset.y: expected int64 ({len(self.x)},), got {self.y.shape}")

    @property
    def kind(self) -> Literal["points", "images"]:
        """``points`` for (N, D) samples, ``images`` for (N, C, H, W)."""
        return "points" if self.x.dim() == 2 else "images"

    @property
    def sample_shape(self) -> tuple[int, ...]:
        """Shape of one sample, ``x.shape[1:]``."""
        return tuple(self.x.shape[1:])

    def sample(self, n: int, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        """Fresh draws from the mixture, on the generator's device.

        Args:
            n: number of samples.
            generator: the run's data stream; the same generator state gives the same batch.

        Returns:
            ``(x, y)``: float32 points ``(n, 2)`` and int64 mode indices ``(n,)``.

        Raises:
            ValueError: the data set is not a Gaussian mixture.
        """
        if self.centers is None or self.std is None:
            raise ValueError(
                f"data set {self.name!r} is not a Gaussian mixture; only ring and grid can be "
                "sampled fresh"
            )
        return _sample_mixture(self.centers, self.std, n, generator)

    def __repr__(self) -> str:
        return (
            f"Dataset(name={self.name!r}, x={tuple(self.x.shape)}, "
            f"num_classes={self.num_classes}, fresh={self.fresh}, cache_key={self.cache_key!r})"
        )


# --- public entry point ----------------------------------------------------------------------


def load_dataset(cfg: DataConfig) -> Dataset:
    """Load the data set that ``cfg`` names.

    Args:
        cfg: the data section of a run config.

    Returns:
        The data set, on the CPU.

    Raises:
        ConfigError: unknown name, an option that does not apply to this data set, a bad value,
            or a missing ``data.path``.
        DataError: a file is missing (and ``download`` is off), corrupt or in the wrong format.
    """
    entry = _LOADERS.get(cfg.name)
    if cfg.name in DOMAIN_PAIRS:
        raise ConfigError(
            f"data.name: {cfg.name!r} is a pair of image domains, for family cyclegan "
            f"(single data sets: {', '.join(_LOADERS)})"
        )
    if entry is None:
        raise ConfigError(
            f"data.name: unknown data set {cfg.name!r}; valid names: {', '.join(DATASETS)}"
        )
    load, options = entry
    _check_options(cfg, options)
    _check_values(cfg)
    return load(cfg)


_DEFAULTS = DataConfig()


def _check_options(cfg: DataConfig, options: frozenset[str]) -> None:
    """Reject options the data set would ignore: a silently ignored option hides a typo."""
    for f in fields(DataConfig):
        if f.name != "name" and f.name not in options:
            if getattr(cfg, f.name) != getattr(_DEFAULTS, f.name):
                allowed = ", ".join(sorted(options)) or "none"
                raise ConfigError(
                    f"data.{f.name}: does not apply to data set {cfg.name!r} "
                    f"(its options: {allowed})"
                )


def _check_values(cfg: DataConfig) -> None:
    if cfg.n_points <= 0:
        raise ConfigError(f"data.n_points: must be > 0, got {cfg.n_points}")
    if cfg.modes is not None and cfg.modes < 1:
        raise ConfigError(f"data.modes: must be >= 1, got {cfg.modes}")
    if cfg.std is not None and not (cfg.std > 0 and math.isfinite(cfg.std)):
        raise ConfigError(f"data.std: must be > 0, got {cfg.std}")
    if not (cfg.radius > 0 and math.isfinite(cfg.radius)):
        raise ConfigError(f"data.radius: must be > 0, got {cfg.radius}")
    if cfg.image_size is not None and cfg.image_size <= 0:
        raise ConfigError(f"data.image_size: must be > 0, got {cfg.image_size}")


# --- Gaussian mixtures -----------------------------------------------------------------------


def ring_centers(modes: int = 8, radius: float = 1.0) -> torch.Tensor:
    """Centres of ``modes`` Gaussians at angles 2*pi*k/modes, k = 0..modes-1, on a circle.

    The angles stop short of 2*pi, so no mode is duplicated at 0 and 2*pi.

    Returns:
        float32 ``(modes, 2)``; row k is mode k.
    """
    angles = 2 * math.pi * torch.arange(modes, dtype=torch.float64) / modes
    return (radius * torch.stack([angles.cos(), angles.sin()], dim=1)).float()


def grid_centers(side: int = 5, spacing: float = 2.0) -> torch.Tensor:
    """Centres of a ``side x side`` grid, symmetric about 0: -4..4 step 2 for the defaults.

    Returns:
        float32 ``(side**2, 2)``; mode ``i * side + j`` sits at ``(coord[i], coord[j])``.
    """
    coords = (torch.arange(side, dtype=torch.float64) - (side - 1) / 2) * spacing
    gx, gy = torch.meshgrid(coords, coords, indexing="ij")
    return torch.stack([gx.reshape(-1), gy.reshape(-1)], dim=1).float()


def _sample_mixture(
    centers: torch.Tensor, std: float, n: int, generator: torch.Generator
) -> tuple[torch.Tensor, torch.Tensor]:
    """Equal-weight mixture: a uniform mode index, then isotropic Gaussian noise around it."""
    if n < 0:
        raise ValueError(f"n: must be >= 0, got {n}")
    device = generator.device
    labels = torch.randint(len(centers), (n,), generator=generator, device=device)
    noise = torch.randn(n, centers.shape[1], generator=generator, device=device)
    return centers.to(device)[labels] + std * noise, labels


def _mixture(name: str, cfg: DataConfig, centers: torch.Tensor, std: float) -> Dataset:
    generator = torch.Generator().manual_seed(MIXTURE_SEED)
    x, y = _sample_mixture(centers, std, cfg.n_points, generator)
    params = {"modes": len(centers), "std": std, "n": cfg.n_points}
    if name == "ring":
        params["radius"] = cfg.radius
    return _make(name, x, y, len(centers), params, centers=centers, std=std, fresh=cfg.fresh)


def _load_ring(cfg: DataConfig) -> Dataset:
    modes = 8 if cfg.modes is None else cfg.modes
    std = _RING_STD if cfg.std is None else cfg.std
    return _mixture("ring", cfg, ring_centers(modes, cfg.radius), std)


def _load_grid(cfg: DataConfig) -> Dataset:
    side = 5 if cfg.modes is None else cfg.modes
    std = _GRID_STD if cfg.std is None else cfg.std
    return _mixture("grid", cfg, grid_centers(side, _GRID_SPACING), std)


# --- scikit-learn digits ---------------------------------------------------------------------


def _load_digits(cfg: DataConfig) -> Dataset:
    from sklearn.datasets import load_digits  # lazy: scikit-learn is slow to import

    bunch = load_digits()  # bundled with scikit-learn: works offline
    x = torch.from_numpy(bunch.images.astype(np.float32)).unsqueeze(1) / 8.0 - 1.0  # 0..16
    y = torch.from_numpy(bunch.target.astype(np.int64))
    return _images("digits", x, y, 10, cfg)


# --- MNIST, Fashion-MNIST (IDX) and CIFAR-10 (binary) ----------------------------------------


@dataclass(frozen=True)
class _Remote:
    folders: tuple[str, ...]  # candidate folders under the root; downloads go to the first
    mirrors: tuple[str, ...]  # base URLs, tried in order
    md5: dict[str, str]  # downloadable file name -> md5


_REMOTES: dict[str, _Remote] = {
    "mnist": _Remote(
        folders=("mnist", "MNIST/raw"),
        mirrors=("https://ossci-datasets.s3.amazonaws.com/mnist/",),
        md5={
            "train-images-idx3-ubyte.gz": "f68b3c2dcbeaaa9fbdd348bbdeb94873",
            "train-labels-idx1-ubyte.gz": "d53e105ee54ea40749a09fcbcd1e9432",
        },
    ),
    "fashion_mnist": _Remote(
        folders=("fashion_mnist", "FashionMNIST/raw"),
        mirrors=(
            "https://raw.githubusercontent.com/zalandoresearch/fashion-mnist/master/data/fashion/",
            "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",
        ),
        md5={
            "train-images-idx3-ubyte.gz": "8d4fb7e6c68d591d4c3dfef9ec88bf0d",
            "train-labels-idx1-ubyte.gz": "25c81989df183df01b3e8a0aad5dffbe",
        },
    ),
    "cifar10": _Remote(
        folders=("cifar-10-batches-bin",),
        mirrors=("https://www.cs.toronto.edu/~kriz/",),
        md5={"cifar-10-binary.tar.gz": "c32a1d4ab5d03f1284b67883e8d87530"},
    ),
}
_CIFAR_BATCHES = tuple(f"data_batch_{i}.bin" for i in range(1, 6))
_CIFAR_RECORD = 1 + 3 * 32 * 32  # one label byte, then the R, G and B planes, row-major


def _data_root(cfg: DataConfig) -> Path:
    if cfg.path is not None:
        return Path(cfg.path).expanduser()
    return Path(os.environ.get("GANSWEEP_DATA") or "~/.cache/gansweep/data").expanduser()


def _missing(name: str, root: Path, what: str) -> DataError:
    remote = _REMOTES[name]
    places = " or ".join(str(root / folder) for folder in remote.folders)
    return DataError(
        f"{name}: {what} not found in {places}. Set data.download: true to fetch it from "
        f"{remote.mirrors[0]}, or put the files there yourself (data.path or the GANSWEEP_DATA "
        f"environment variable choose the root folder, now {root})."
    )


def _load_idx_set(name: str, cfg: DataConfig) -> Dataset:
    """MNIST-like: train images (N, H, W) uint8 and labels 0..9, from IDX files, raw or gzipped."""
    remote, root = _REMOTES[name], _data_root(cfg)
    paths = []
    for stem in ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"):
        found = [root / f / n for f in remote.folders for n in (stem, stem + ".gz")]
        path = next((p for p in found if p.is_file()), None)
        if path is None:
            if not cfg.download:
                raise _missing(name, root, f"{stem} (or {stem}.gz)")
            path = root / remote.folders[0] / (stem + ".gz")
            _download([m + path.name for m in remote.mirrors], path, remote.md5[path.name])
        paths.append(path)
    images, labels = _read_idx(paths[0], ndim=3), _read_idx(paths[1], ndim=1)
    if len(images) == 0:
        raise DataError(f"{paths[0]}: holds no images")
    if len(images) != len(labels):
        raise DataError(
            f"{paths[0]} holds {len(images)} images but {paths[1]} holds {len(labels)} labels"
        )
    if labels.max() > 9:
        raise DataError(f"{paths[1]}: label {labels.max()} outside 0..9")
    y = torch.from_numpy(labels.astype(np.int64))
    return _images(name, _from_uint8(images[:, None]), y, 10, cfg)


def _read_idx(path: Path, ndim: int) -> np.ndarray:
    """Parse an unsigned-byte IDX file: magic 0x00 0x00 0x08 ndim, big-endian uint32 sizes, data."""
    raw = path.read_bytes()
    if path.suffix == ".gz":
        try:
            raw = gzip.decompress(raw)
        except (OSError, EOFError, zlib.error) as err:
            raise DataError(f"{path}: corrupt gzip file ({err}); delete it, fetch again") from err
    if len(raw) < 4 or int.from_bytes(raw[:4], "big") != 0x0800 | ndim:
        raise DataError(
            f"{path}: not an IDX file of unsigned bytes with {ndim} dimensions: magic number "
            f"{raw[:4].hex() or 'missing'}, expected {0x0800 | ndim:08x}"
        )
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise DataError(f"{path}: truncated IDX header ({len(raw)} bytes)")
    shape = struct.unpack(f">{ndim}I", raw[4:header])
    if len(raw) - header != math.prod(shape):
        raise DataError(
            f"{path}: header promises shape {shape} = {math.prod(shape)} bytes of data but the "
            f"file holds {len(raw) - header}; it is truncated or corrupt"
        )
    return np.frombuffer(raw, np.uint8, offset=header).reshape(shape)


def _load_mnist(cfg: DataConfig) -> Dataset:
    return _load_idx_set("mnist", cfg)


def _load_fashion_mnist(cfg: DataConfig) -> Dataset:
    return _load_idx_set("fashion_mnist", cfg)


def _load_cifar10(cfg: DataConfig) -> Dataset:
    """CIFAR-10 binary version: the five training batches of 3073-byte records."""
    root = _data_root(cfg)
    folder = root / _REMOTES["cifar10"].folders[0]
    missing = [n for n in _CIFAR_BATCHES if not (folder / n).is_file()]
    if missing and cfg.download:
        _download_cifar10(root)
        missing = [n for n in _CIFAR_BATCHES if not (folder / n).is_file()]
    if missing:
        raise _missing("cifar10", root, ", ".join(missing))
    batches = [_read_cifar_batch(folder / n) for n in _CIFAR_BATCHES]
    labels = np.concatenate([b[0] for b in batches]).astype(np.int64)
    x = _from_uint8(np.concatenate([b[1] for b in batches]))
    return _images("cifar10", x, torch.from_numpy(labels), 10, cfg)


def _read_cifar_batch(path: Path) -> tuple[np.ndarray, np.ndarray]:
    raw = path.read_bytes()
    if not raw or len(raw) % _CIFAR_RECORD:
        raise DataError(
            f"{path}: {len(raw)} bytes is not a whole number of {_CIFAR_RECORD}-byte records "
            "(1 label byte + 3072 pixel bytes); the file is truncated or not CIFAR-10 binary"
        )
    records = np.frombuffer(raw, np.uint8).reshape(-1, _CIFAR_RECORD)
    labels = records[:, 0]
    if labels.max() > 9:
        raise DataError(f"{path}: label byte {labels.max()} outside 0..9; not CIFAR-10 binary")
    return labels, records[:, 1:].reshape(-1, 3, 32, 32)  # already channels first


def _download_cifar10(root: Path) -> None:
    """Fetch the archive and extract only the expected regular files (no path from the archive)."""
    remote = _REMOTES["cifar10"]
    archive = root / "cifar-10-binary.tar.gz"
    _download([m + archive.name for m in remote.mirrors], archive, remote.md5[archive.name])
    folder = root / remote.folders[0]
    wanted = {f"{remote.folders[0]}/{n}": n for n in (*_CIFAR_BATCHES, "test_batch.bin")}
    folder.mkdir(parents=True, exist_ok=True)
    try:
        with tarfile.open(archive, "r:gz") as tar:
            for member in tar:
                source = tar.extractfile(member) if member.name in wanted else None
                if member.isfile() and source is not None:
                    with source, (folder / wanted[member.name]).open("wb") as target:
                        shutil.copyfileobj(source, target)
    except (tarfile.TarError, OSError, EOFError, zlib.error) as err:
        raise DataError(f"{archive}: cannot extract ({err}); delete it and try again") from err
    archive.unlink()


def _download(urls: Sequence[str], dest: Path, md5: str | None) -> None:
    """Fetch ``dest`` from the first URL that works and matches ``md5``; leave no partial file."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    part = dest.with_name(dest.name + ".part")
    errors = []
    for url in urls:
        try:
            _fetch(url, part)
        except OSError as err:  # URLError, HTTPError and timeouts are all OSErrors
            errors.append(f"{url}: {err}")
            part.unlink(missing_ok=True)
            continue
        digest = _md5(part)
        if md5 is not None and digest != md5:
            errors.append(f"{url}: md5 {digest}, expected {md5}")
            part.unlink()
            continue
        part.replace(dest)
        return
    raise DataError(f"could not download {dest}: " + "; ".join(errors))


def _fetch(url: str, dest: Path) -> None:
    with urllib.request.urlopen(url, timeout=60) as response, dest.open("wb") as out:
        shutil.copyfileobj(response, out, 1 << 20)


def _md5(path: Path) -> str:
    digest = hashlib.md5(usedforsecurity=False)
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


# --- user data: .npy / .npz, Parquet, folders of images ---------------------------------------

_Source = tuple[str, Path | bytes]  # an image: (name for messages, its file or encoded bytes)


def _user_path(cfg: DataConfig, suffixes: tuple[str, ...] = (), folder: bool = False) -> Path:
    if cfg.path is None:
        raise ConfigError(f"data.path: data set {cfg.name!r} reads your own data; set data.path")
    path = Path(cfg.path).expanduser()
    if not path.exists():
        raise ConfigError(f"data.path: {path} does not exist")
    if folder and not path.is_dir():
        raise ConfigError(f"data.path: {path} is not a folder; {cfg.name!r} reads a folder")
    if suffixes and path.suffix.lower() not in suffixes:
        raise ConfigError(f"data.path: {path}: {cfg.name!r} expects a {' or '.join(suffixes)} file")
    return path


def _load_npy(cfg: DataConfig) -> Dataset:
    """A ``.npy`` array, or a ``.npz`` with arrays ``x`` (else its first) and optional ``y``."""
    path = _user_path(cfg, suffixes=(".npy", ".npz"))
    try:
        loaded = np.load(path, allow_pickle=False)  # never unpickle a user's file
        if isinstance(loaded, np.ndarray):
            samples, labels = loaded, None
        else:
            with loaded:
                arrays = {k: loaded[k] for k in loaded.files}
            samples, labels = _pick_arrays(arrays, path)
    except (ValueError, OSError, EOFError, zipfile.BadZipFile) as err:
        if isinstance(err, DataError):
            raise
        raise DataError(f"{path}: cannot read as {path.suffix}: {err}") from err
    return _from_arrays("npy", samples, labels, cfg, str(path))


def _pick_arrays(arrays: dict[str, np.ndarray], path: Path) -> tuple[np.ndarray, Any]:
    """``x`` (else the first array that is not ``y``) and ``y`` when present."""
    key = "x" if "x" in arrays else next((k for k in arrays if k != "y"), None)
    if key is None:
        raise DataError(f"{path}: no sample array (expected 'x'); holds {list(arrays)}")
    return arrays[key], arrays.get("y")


def _load_parquet(cfg: DataConfig) -> Dataset:
    """A Parquet file or folder: one column of arrays (or encoded images), or numeric columns."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    path = _user_path(cfg)
    try:
        table = pq.read_table(path)
    except (pa.ArrowException, OSError) as err:
        raise DataError(f"{path}: cannot read as Parquet: {err}") from err
    if table.num_rows == 0:
        raise DataError(f"{path}: no rows")
    for option in ("column", "label_column"):
        column = getattr(cfg, option)
        if column is not None and column not in table.column_names:
            raise ConfigError(
                f"data.{option}: {path} has no column {column!r}; "
                f"columns: {', '.join(table.column_names)}"
            )
    names = [cfg.column] if cfg.column else [n for n in table.column_names if n != cfg.label_column]
    if not names:
        raise DataError(f"{path}: holds only the label column {cfg.label_column!r}")
    labels = None if cfg.label_column is None else _plain_column(table, cfg.label_column, path)
    if len(names) == 1 and _is_encoded(table.schema.field(names[0]).type):
        x = _read_images(_encoded_sources(table, names[0], path), cfg.image_size)
        y, num_classes = _labels(labels, len(x), f"{path} column {cfg.label_column!r}")
        return _images("parquet", x, y, num_classes, cfg)
    if len(names) == 1:
        samples = _plain_column(table, names[0], path)
        samples = samples[:, None] if samples.ndim == 1 else samples
    else:
        samples = np.stack([_scalar_column(table, n, path) for n in names], axis=1)
    return _from_arrays("parquet", samples, labels, cfg, str(path))


def _is_encoded(dtype: Any) -> bool:
    """Binary cells, or structs with a ``bytes`` field (Hugging Face's image columns)."""
    import pyarrow as pa

    if pa.types.is_struct(dtype):
        return any(dtype.field(i).name == "bytes" for i in range(dtype.num_fields))
    return bool(pa.types.is_binary(dtype) or pa.types.is_large_binary(dtype))


def _encoded_sources(table: Any, name: str, path: Path) -> list[_Source]:
    cells = table.column(name).to_pylist()
    sources: list[_Source] = []
    for row, cell in enumerate(cells):
        data = cell.get("bytes") if isinstance(cell, dict) else cell
        if not data:
            raise DataError(f"{path} column {name!r} row {row}: no image bytes")
        sources.append((f"{path} column {name!r} row {row}", data))
    return sources


def _scalar_column(table: Any, name: str, path: Path) -> np.ndarray:
    import pyarrow as pa

    dtype = table.schema.field(name).type
    if not (pa.types.is_integer(dtype) or pa.types.is_floating(dtype)):
        raise ConfigError(
            f"data.column: {path} has several columns and {name!r} is {dtype}, not a number; "
            "name the column that holds the samples, or keep only numeric feature columns"
        )
    return _plain_column(table, name, path)


def _plain_column(table: Any, name: str, path: Path) -> np.ndarray:
    """A column as an array ``(N, *cell_shape)``; nested lists must be rectangular."""
    import pyarrow as pa
    import pyarrow.compute as pc

    array = pa.concat_arrays(table.column(name).chunks)
    dims: list[int] = []
    while (
        pa.types.is_list(array.type)
        or pa.types.is_large_list(array.type)
        or (pa.types.is_fixed_size_list(array.type))
    ):
        if array.null_count:
            raise DataError(f"{path} column {name!r}: {array.null_count} null cells")
        lengths = pc.list_value_length(array).to_numpy(zero_copy_only=False)
        if lengths.min() != lengths.max():
            raise DataError(
                f"{path} column {name!r}: arrays of different lengths ({lengths.min()} to "
                f"{lengths.max()}); every sample must have the same shape"
            )
        dims.append(int(lengths[0]))
        array = array.flatten()
    if array.null_count:
        raise DataError(f"{path} column {name!r}: {array.null_count} null values")
    return array.to_numpy(zero_copy_only=False).reshape(table.num_rows, *dims)


def _load_image_folder(cfg: DataConfig) -> Dataset:
    """Images in class subfolders (labels = sorted folder names, as ImageFolder), or all in one."""
    root = _user_path(cfg, folder=True)
    classes = sorted(d for d in root.iterdir() if d.is_dir() and not d.name.startswith("."))
    top = _image_files(root, recursive=False)
    if classes and top:
        raise DataError(
            f"{root}: holds both images ({top[0].name}, ...) and subfolders "
            f"({classes[0].name}, ...); put every image in a class subfolder, or none"
        )
    files, labels = top, []
    for index, folder in enumerate(classes):
        found = _image_files(folder, recursive=True)
        if not found:
            raise DataError(f"{folder}: class folder holds no {'/'.join(_IMAGE_SUFFIXES)} files")
        files = files + found
        labels += [index] * len(found)
    if not files:
        raise DataError(f"{root}: no images found ({', '.join(_IMAGE_SUFFIXES)})")
    x = _read_images([(str(f), f) for f in files], cfg.image_size)
    y = torch.tensor(labels, dtype=torch.int64) if classes else None
    return _images("images", x, y, len(classes), cfg)


_IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".ppm")
_GRAY_MODES = ("1", "L", "LA", "La")


def _image_files(folder: Path, recursive: bool) -> list[Path]:
    candidates = folder.rglob("*") if recursive else folder.iterdir()
    return sorted(
        p
        for p in candidates
        if p.is_file()
        and p.suffix.lower() in _IMAGE_SUFFIXES
        and not any(part.startswith(".") for part in p.relative_to(folder).parts)
    )


def _read_images(sources: Sequence[_Source], image_size: int | None) -> torch.Tensor:
    """Decode with PIL into (N, C, H, W) in [-1, 1]: grey if every image is grey, else RGB."""
    modes = []
    for name, source in sources:  # headers only: Image.open is lazy
        with _open_image(name, source) as image:
            modes.append(image.mode)
    target = "L" if all(m in _GRAY_MODES for m in modes) else "RGB"
    arrays = [_decode_image(name, source, target) for name, source in sources]
    if image_size is not None:  # sizes may differ: resize one by one
        return torch.cat([_resize(_from_uint8(a[None]), image_size) for a in arrays])
    first = arrays[0].shape
    for (name, _), array in zip(sources, arrays, strict=True):
        if array.shape != first:
            raise DataError(
                f"{name}: image is {array.shape[2]}x{array.shape[1]} but {sources[0][0]} is "
                f"{first[2]}x{first[1]}; set data.image_size to resize every image to one size"
            )
    return _from_uint8(np.stack(arrays))


@contextlib.contextmanager
def _open_image(name: str, source: Path | bytes) -> Iterator[Any]:
    """PIL's lazy Image.open, with unreadable and unsupported files reported as DataError."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(source if isinstance(source, Path) else io.BytesIO(source)) as image:
            if image.mode.startswith(("I", "F")):
                raise DataError(f"{name}: {image.mode} images (16-bit or float) are not supported")
            yield image
    except DataError:
        raise
    except (UnidentifiedImageError, OSError, ValueError) as err:  # also truncated pixel data
        raise DataError(f"{name}: not a readable image ({err})") from err


def _decode_image(name: str, source: Path | bytes, target: str) -> np.ndarray:
    """Pixels (C, H, W) uint8 in PIL mode ``target`` (L or RGB)."""
    with _open_image(name, source) as image:
        pixels = np.asarray(image.convert(target))
    return pixels[None] if pixels.ndim == 2 else pixels.transpose(2, 0, 1)


# --- conversion helpers ----------------------------------------------------------------------


def _from_arrays(
    name: str, samples: np.ndarray, labels: np.ndarray | None, cfg: DataConfig, source: str
) -> Dataset:
    """User arrays -> Dataset: 2-D arrays are points, 3-D and 4-D arrays images."""
    if samples.dtype.kind not in "iuf" or samples.ndim < 2 or len(samples) == 0:
        raise DataError(f"{source}: samples must be a non-empty numeric array, got {samples.dtype}")
    y, num_classes = _labels(labels, len(samples), source)
    if samples.ndim == 2:
        if cfg.image_size is not None:
            raise ConfigError(f"data.image_size: {source} holds points {samples.shape}, not images")
        x = torch.from_numpy(np.array(samples, dtype=np.float32))
        if not torch.isfinite(x).all():
            raise DataError(f"{source}: samples contain NaN or infinity")
        return _make(name, x, y, num_classes, {})
    if samples.ndim not in (3, 4):
        raise DataError(
            f"{source}: samples of shape {samples.shape}; expected points (N, D) or images "
            "(N, H, W), (N, C, H, W) or (N, H, W, C)"
        )
    x = _scale_images(_channels_first(samples, source), source)
    return _images(name, x, y, num_classes, cfg)


def _channels_first(samples: np.ndarray, source: str) -> np.ndarray:
    """(N, H, W) -> (N, 1, H, W); NCHW is kept; NHWC is transposed. NCHW wins when both fit."""
    if samples.ndim == 3:
        return samples[:, None]
    if samples.shape[1] in (1, 3):
        return samples
    if samples.shape[-1] in (1, 3):
        return samples.transpose(0, 3, 1, 2)
    raise DataError(
        f"{source}: images of shape {samples.shape}; expected 1 or 3 channels, either first "
        "(N, C, H, W) or last (N, H, W, C)"
    )


def _scale_images(samples: np.ndarray, source: str) -> torch.Tensor:
    """Integers 0..255 -> [-1, 1]; floats must already lie in [-1, 1] (see the module docstring)."""
    low, high = samples.min(), samples.max()
    if samples.dtype.kind in "iu":
        if low < 0 or high > 255:
            raise DataError(f"{source}: integer pixels span {low}..{high}; expected 0..255")
        return _from_uint8(samples.astype(np.uint8))
    if not (np.isfinite(low) and np.isfinite(high)):
        raise DataError(f"{source}: pixels contain NaN or infinity")
    if low < -1 - _FLOAT_TOLERANCE or high > 1 + _FLOAT_TOLERANCE:
        raise DataError(
            f"{source}: float pixels span [{low:.4g}, {high:.4g}], but float images must already "
            "be scaled to [-1, 1] (from [0, 1] use 2 * x - 1; for 0..255 store uint8)"
        )
    return torch.from_numpy(np.array(samples, dtype=np.float32)).clamp_(-1.0, 1.0)


def _from_uint8(pixels: np.ndarray) -> torch.Tensor:
    """0..255 -> [-1, 1] exactly at both ends (x / 127.5 - 1)."""
    return torch.from_numpy(np.array(pixels, dtype=np.uint8)).float().div_(127.5).sub_(1.0)


def _resize(x: torch.Tensor, size: int) -> torch.Tensor:
    if tuple(x.shape[-2:]) == (size, size):
        return x
    out = F.interpolate(x, size=(size, size), mode="bilinear", align_corners=False, antialias=True)
    return out.clamp_(-1.0, 1.0)  # convex weights; the clamp only removes rounding


def _labels(labels: Any, n: int, source: str) -> tuple[torch.Tensor | None, int]:
    """Integer labels are kept (>= 0; classes 0..max); other labels are numbered in sorted order."""
    if labels is None:
        return None, 0
    labels = np.asarray(labels)
    if labels.shape != (n,):
        raise DataError(f"{source}: labels have shape {labels.shape}; expected ({n},)")
    if labels.dtype.kind == "f" and (labels == np.round(labels)).all():  # False for NaN
        labels = labels.astype(np.int64)
    if labels.dtype.kind in "biu":
        if labels.min() < 0:
            raise DataError(f"{source}: negative label {labels.min()}")
        ints = labels.astype(np.int64)
    elif labels.dtype.kind in "USO":
        try:
            classes, ints = np.unique(labels, return_inverse=True)
        except TypeError as err:
            raise DataError(f"{source}: labels of mixed types cannot be ordered ({err})") from err
    else:
        raise DataError(f"{source}: labels must be integers or names, got {labels.dtype}")
    return torch.from_numpy(ints.astype(np.int64).reshape(n)), int(ints.max()) + 1


def _images(
    name: str, x: torch.Tensor, y: torch.Tensor | None, num_classes: int, cfg: DataConfig
) -> Dataset:
    if cfg.image_size is not None:
        x = _resize(x, cfg.image_size)
    return _make(name, x, y, num_classes, {"size": cfg.image_size} if cfg.image_size else {})


def _make(
    name: str,
    x: torch.Tensor,
    y: torch.Tensor | None,
    num_classes: int,
    params: dict[str, Any],
    centers: torch.Tensor | None = None,
    std: float | None = None,
    fresh: bool = False,
) -> Dataset:
    x = x.contiguous()
    key = _cache_key(name, params, x, y)
    return Dataset(name, x, y, num_classes, centers, std, fresh, key)


def _cache_key(name: str, params: dict[str, Any], x: torch.Tensor, y: torch.Tensor | None) -> str:
    """``name-param...-hash``: readable parameters, then a digest of shapes and contents."""
    digest = hashlib.blake2b(digest_size=8)
    for tensor in (x, y):
        if tensor is not None:
            digest.update(f"{tensor.dtype}{tuple(tensor.shape)}".encode())
            digest.update(tensor.contiguous().numpy())
    label = "-".join([name, *(f"{k}{v}" for k, v in params.items())])
    return f"{re.sub(r'[^A-Za-z0-9._-]', '_', label)}-{digest.hexdigest()}"


# --- registry --------------------------------------------------------------------------------

_Loader = Callable[[DataConfig], Dataset]
_USER = frozenset({"path", "image_size"})
_STANDARD = frozenset({"path", "image_size", "download"})

# name -> (loader, the DataConfig fields it reads besides `name`)
_LOADERS: dict[str, tuple[_Loader, frozenset[str]]] = {
    "ring": (_load_ring, frozenset({"n_points", "fresh", "modes", "std", "radius"})),
    "grid": (_load_grid, frozenset({"n_points", "fresh", "modes", "std"})),
    "digits": (_load_digits, frozenset({"image_size"})),
    "mnist": (_load_mnist, _STANDARD),
    "fashion_mnist": (_load_fashion_mnist, _STANDARD),
    "cifar10": (_load_cifar10, _STANDARD),
    "npy": (_load_npy, _USER),
    "parquet": (_load_parquet, _USER | {"column", "label_column"}),
    "images": (_load_image_folder, _USER),
}
DATASETS: tuple[str, ...] = tuple(_LOADERS)
# Pairs of unpaired image domains, for family cyclegan (gan_core/domains.py).
DOMAIN_PAIRS: tuple[str, ...] = ("digits_inverted", "digits_rotated", "unpaired_images")
