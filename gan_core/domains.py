"""Unpaired image domains A and B for CycleGAN (family cyclegan), in the Dataset image layout.

Built-in pairs need no download and know the true map T: A -> B, so a run can measure its
translation error:

* ``digits_inverted``: scikit-learn's digits (A) and other digits with their pixels negated
  (B = -x); T(a) = -a.
* ``digits_rotated``: digits (A) and other digits rotated 90 degrees counter-clockwise;
  T(a) = rot90(a).

A and B hold disjoint halves of the digits (a fixed split, never the run's seed), so no image
of B is T of an image of A: the domains are unpaired, as CycleGAN assumes.

User data: ``unpaired_images`` reads ``data.path/trainA/`` and ``data.path/trainB/`` (the
CycleGAN repository's layout), each a folder of images (gan_core.data's ``images`` loader:
scaling to [-1, 1], ``data.image_size``). No true map is known.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import torch

from .config import ConfigError, DataConfig
from .data import DOMAIN_PAIRS, MIXTURE_SEED, DataError, Dataset, load_dataset

__all__ = ["DomainPair", "load_domains"]

Map = Callable[[torch.Tensor], torch.Tensor]


@dataclass(frozen=True, eq=False)
class DomainPair:
    """Two unpaired image domains on the CPU, float32 (N, C, H, W) in [-1, 1].

    Attributes:
        name: the registry name (``data.name``).
        a, b: the domains' images (their counts may differ).
        true_map, true_inverse: T: A -> B and its inverse on (..., C, H, W) tensors, or None.
    """

    name: str
    a: torch.Tensor
    b: torch.Tensor
    true_map: Map | None
    true_inverse: Map | None

    centers = None  # no mixture modes (read by the monitor's callers, as Dataset.centers)

    @property
    def kind(self) -> Literal["images"]:
        return "images"

    @property
    def sample_shape(self) -> tuple[int, ...]:
        return tuple(self.a.shape[1:])


def _rotate(x: torch.Tensor) -> torch.Tensor:
    return torch.rot90(x, 1, dims=(-2, -1))


def _unrotate(x: torch.Tensor) -> torch.Tensor:
    return torch.rot90(x, -1, dims=(-2, -1))


def _negate(x: torch.Tensor) -> torch.Tensor:
    return -x


_MAPS: dict[str, tuple[Map, Map]] = {
    "digits_inverted": (_negate, _negate),
    "digits_rotated": (_rotate, _unrotate),
}


def load_domains(cfg: DataConfig) -> DomainPair:
    """The domain pair that ``cfg.name`` names.

    Raises:
        ConfigError: not a domain pair, an option that does not apply, or a missing data.path.
        DataError: trainA/ or trainB/ missing, empty, or with other channels or sizes.
    """
    if cfg.name not in DOMAIN_PAIRS:
        raise ConfigError(
            f"data.name: family cyclegan needs a pair of image domains, one of "
            f"{', '.join(DOMAIN_PAIRS)}; got {cfg.name!r}"
        )
    if cfg.name == "unpaired_images":
        return _load_folders(cfg)
    _check_only(cfg, {"image_size"})
    digits = load_dataset(DataConfig(name="digits", image_size=cfg.image_size))
    order = torch.randperm(len(digits.x), generator=torch.Generator().manual_seed(MIXTURE_SEED))
    half = len(order) // 2
    forward, inverse = _MAPS[cfg.name]
    a, b = digits.x[order[:half]], forward(digits.x[order[half:]]).contiguous()
    return DomainPair(cfg.name, a.contiguous(), b, forward, inverse)


def _check_only(cfg: DataConfig, options: set[str]) -> None:
    for f in dataclasses.fields(DataConfig):
        if f.name not in options | {"name"} and getattr(cfg, f.name) != f.default:
            raise ConfigError(f"data.{f.name}: does not apply to data set {cfg.name!r}")


def _load_folders(cfg: DataConfig) -> DomainPair:
    _check_only(cfg, {"path", "image_size"})
    if cfg.path is None:
        raise ConfigError("data.path: unpaired_images reads data.path/trainA and data.path/trainB")
    root = Path(cfg.path).expanduser()
    domains = []
    for side in ("trainA", "trainB"):
        folder = root / side
        if not folder.is_dir():
            raise DataError(f"{folder}: missing; unpaired_images needs {root}/trainA and trainB")
        domain: Dataset = load_dataset(
            DataConfig(name="images", path=str(folder), image_size=cfg.image_size)
        )
        domains.append(domain.x)
    a, b = domains
    if a.shape[1:] != b.shape[1:]:
        raise DataError(
            f"{root}: trainA images are {tuple(a.shape[1:])} (C, H, W), trainB {tuple(b.shape[1:])}"
            "; give both the same channels, or set data.image_size for the sizes"
        )
    return DomainPair("unpaired_images", a, b, None, None)
