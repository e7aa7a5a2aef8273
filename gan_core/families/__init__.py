"""The registry of GAN families (docs/families.md): name -> Family class."""

from __future__ import annotations

from ..config import ConfigError
from .base import Family, Streams
from .cyclegan import CycleGanFamily
from .gan import GanFamily
from .progressive import ProgressiveFamily
from .sequence import SequenceFamily

__all__ = ["FAMILIES", "Family", "Streams", "get_family"]

FAMILIES: dict[str, type[Family]] = {
    "gan": GanFamily,
    "cyclegan": CycleGanFamily,
    "sequence": SequenceFamily,
    "progressive": ProgressiveFamily,
}


def get_family(name: str) -> type[Family]:
    """The registered family `name`; ConfigError listing the valid names otherwise."""
    try:
        return FAMILIES[name]
    except KeyError:
        raise ConfigError(
            f"family: unknown family {name!r}; allowed: {', '.join(FAMILIES)}"
        ) from None
