"""Named random streams and deterministic execution.

A run has two seeds (RunConfig.seeds): `init_seed` drives weights, latents, dropout and
instance noise; `data_seed` drives the data order and freshly sampled batches. Each
stream is its own torch.Generator, so changing one seed never moves the other stream,
which is what lets the triage tell an unlucky initialisation from an unlucky batch order.
"""

from __future__ import annotations

import os
import random
import sys

import numpy as np
import torch

__all__ = [
    "derive_seed",
    "make_generator",
    "seed_globals",
    "configure_determinism",
    "resolve_device",
]

# Stream ids, mixed into the seed so that streams sharing a seed are still independent.
WEIGHTS, LATENTS, EVAL, DATA = 0, 1, 2, 3


def derive_seed(seed: int, stream: int) -> int:
    """A 63-bit seed for `stream` of `seed` (numpy's SeedSequence hashing)."""
    return int(np.random.SeedSequence([seed, stream]).generate_state(1, dtype=np.uint64)[0] >> 1)


def make_generator(seed: int, stream: int, device: torch.device | str = "cpu") -> torch.Generator:
    gen = torch.Generator(device=device)
    gen.manual_seed(derive_seed(seed, stream))
    return gen


def seed_globals(seed: int) -> None:
    """Seed python, numpy and torch's global generators, for any code that uses them."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def configure_determinism() -> None:
    """Ask torch for deterministic kernels, so one config and seed give identical metrics.

    torch.use_deterministic_algorithms also sets torch._inductor's flag, and importing
    inductor costs about 1.7 s in a fresh process (every sweep worker's first trial). Nothing
    here compiles, so unless inductor is already loaded, only the eager switch it wraps is set.
    """
    os.environ.setdefault(
        "CUBLAS_WORKSPACE_CONFIG", ":4096:8"
    )  # required by cuBLAS for determinism
    if "torch._inductor.config" in sys.modules:
        torch.use_deterministic_algorithms(True)
    else:
        torch._C._set_deterministic_algorithms(True)
    torch.backends.cudnn.benchmark = False


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)
