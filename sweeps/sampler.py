"""A finished run's generator as a plain sampler module, for MLflow's PyTorch flavour.

`mlflow.pyfunc.load_model("runs:/<run id>/generator").predict(z)` with `z` of shape
`(n, latent_dim)` (float32, standard normal) returns `n` samples in data space.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn

from gan_core import RunConfig

__all__ = ["GeneratorSampler"]


class GeneratorSampler(nn.Module):
    """One member's generator: latent vectors `(n, latent_dim)` in, samples out.

    gan_core's Generator computes every member of a pack at once (member axis first);
    this keeps the member the run is and drops the rest from the output.
    """

    def __init__(self, generator: nn.Module, slot: int):
        super().__init__()
        self.generator = generator
        self.slot = slot

    @classmethod
    def from_state(cls, cfg: RunConfig, state: dict[str, Any], slot: int) -> GeneratorSampler:
        """From a gan_core checkpoint dict; `slot`: the member's place on the member axis."""
        from gan_core.data import load_dataset
        from gan_core.models import Generator

        data = load_dataset(cfg.data)
        gens = [torch.Generator() for _ in state["slots"]]
        generator = Generator(cfg.generator, tuple(data.sample_shape), 0, gens)
        generator.load_state_dict(state["generator"])
        return cls(generator.eval(), slot)

    def forward(self, z: Tensor) -> Tensor:
        members = int(getattr(self.generator, "members", 1))
        zs = z.unsqueeze(0).expand(members, -1, -1).contiguous()
        return self.generator(zs)[self.slot]
