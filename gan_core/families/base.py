"""The interface every GAN family implements for the shared Trainer (docs/families.md).

A family owns its networks (on the member axis), its D and G step objectives, its data
contract, its evaluation metrics and figures. The Trainer owns the loop, optimizers, packing,
seeding, checkpoints and records, and never branches on the family.
"""

from __future__ import annotations

import copy
import os
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import torch
from torch import Tensor, nn

from ..config import RunConfig, TrainingConfig
from ..layers import MemberDropout
from ..losses import Loss
from ..regularizers import PENALTIES

__all__ = [
    "Family",
    "MemberModel",
    "Streams",
    "Objective",
    "add_penalties",
    "d_output_metrics",
    "one_member",
]

Batch = tuple[Any, Any]  # (real batch in the family's layout, labels or None)
Objective = tuple[Tensor, dict[str, Tensor]]  # (per-member loss (M,) with graph, metrics (M,))


@dataclass
class Streams:
    """Each live member's random generators, in member-axis order.

    The Trainer owns this object and replaces the lists when members leave the pack;
    families read them at every use, never keep a copy.
    """

    latent: list[torch.Generator]
    data: list[torch.Generator]


class Family(ABC):
    """One kind of GAN, as the Trainer sees it.

    Args:
        cfg: the validated run configuration.
        data: what `load_data(cfg)` returned.
        weight_gens: one weight generator per member (networks are built from them).
        streams: the members' latent and data generators.
        device: where the networks and batches live.
    """

    name: ClassVar[str]

    def __init__(
        self,
        cfg: RunConfig,
        data: Any,
        weight_gens: list[torch.Generator],
        streams: Streams,
        device: torch.device,
    ):
        self.cfg, self.data, self.streams, self.device = cfg, data, streams, device

    @staticmethod
    @abstractmethod
    def load_data(cfg: RunConfig) -> Any:
        """The family's data (its data contract); ConfigError or DataError on bad input."""

    @property
    @abstractmethod
    def networks(self) -> dict[str, nn.Module]:
        """Member-axis modules by name; "generator" and "discriminator" get optimizers."""

    @abstractmethod
    def steps_per_epoch(self) -> int:
        """G steps per epoch; ConfigError when the batch does not fit the data."""

    @abstractmethod
    def sampler(self, batches: int) -> Callable[[int], Batch]:
        """This epoch's batches, index -> batch, drawn from the data streams."""

    @abstractmethod
    def d_objective(self, batch: Batch, noise_std: float) -> Objective:
        """D's loss on a batch (graph to D's parameters) and its metrics."""

    @abstractmethod
    def g_objective(self, batch: Batch, noise_std: float) -> Objective:
        """G's loss (graph to G's parameters) and its metrics."""

    @abstractmethod
    def evaluate(self, position: int, generator: torch.Generator) -> dict[str, float]:
        """Quality metrics of the member at this position; `generator`: its fresh EVAL stream."""

    @abstractmethod
    def generate(
        self, n: int, position: int, labels: Tensor | None, generator: torch.Generator | None
    ) -> Tensor:
        """n samples of the member at `position`, networks in evaluation mode."""

    @abstractmethod
    def figures(
        self, directory: Path, position: int, generator: torch.Generator
    ) -> dict[str, str | os.PathLike]:
        """The family's sample figures as files in `directory`, by name."""

    @abstractmethod
    def member_model(self, position: int) -> nn.Module:
        """The member at `position` on its own, as a plain module for use outside gan_core.

        One tensor in, one out, batch first and no member axis: `model_inputs` says what it
        takes, and its outputs are the family's samples (docs/families.md, "The member model").
        It holds a copy of this member's generator weights only, in evaluation mode, so it
        outlives the pack (sweeps logs it as an MLflow model).

        Raises:
            ValueError: the run's generator needs more than one input (e.g. labels).
        """

    @abstractmethod
    def model_inputs(self, n: int, generator: torch.Generator | None) -> Tensor:
        """n inputs of `member_model` (latents from `generator`, or the family's own data).

        `member_model(p)(model_inputs(n, g))` equals `generate(n, p, None, g')` for a `g'` in
        the state `g` was in, at the end of a run: the contract the MLflow tests check.
        """

    def interpolate(
        self, z0: Tensor, z1: Tensor, steps: int, position: int, labels: Tensor | None
    ) -> Tensor:
        """Samples along a line in latent space; families without latents refuse."""
        raise ValueError(f"family {self.name!r} has no latent space to interpolate in")

    @property
    def n_modes(self) -> int | None:
        """Modes of a 2-D mixture (the monitor's mode rules), None otherwise."""
        return None

    def lr_factor(self, epoch: int) -> float:
        """Family learning-rate factor for the coming epoch (after `epoch` done); 1 = none."""
        return 1.0

    def begin_epoch(self, epoch: int) -> None:
        """Called before each epoch trains (`epoch` done so far): a schedule's hook; none here."""
        return None


class MemberModel(nn.Module):
    """A one-member network behind a plain batch: `head(net(x[None])[0])`, x of shape (n, ...).

    Args:
        net: a member-axis network holding one member (`one_member`).
        head: what turns the network's output into the samples users get; none by default.
    """

    def __init__(self, net: nn.Module, head: nn.Module | None = None):
        super().__init__()
        self.net = net
        self.head = head if head is not None else nn.Identity()
        self.eval()

    def forward(self, x: Tensor) -> Tensor:
        return self.head(self.net(x.unsqueeze(0))[0])


def one_member(net: nn.Module, position: int) -> nn.Module:
    """A copy of member-axis `net` with only the member at `position`, in evaluation mode.

    Every parameter and buffer has the member axis first (gan_core/layers.py), so slicing
    them is the Trainer's compaction of a pack, down to one member; the copy needs no grads.
    """
    one = copy.deepcopy(net)
    keep = slice(position, position + 1)
    for module in one.modules():
        for name, param in module._parameters.items():
            if param is not None:
                module._parameters[name] = nn.Parameter(param.detach()[keep].clone(), False)
        for name, buffer in module._buffers.items():
            if buffer is not None:
                module._buffers[name] = buffer[keep].clone()
        if hasattr(module, "members"):
            module.members = 1
        if isinstance(module, MemberDropout):
            module.gens = module.gens[keep]
    return one.eval()


def add_penalties(
    total: Tensor,
    metrics: dict[str, Tensor],
    train: TrainingConfig,
    penalty: Callable[[str], Tensor],
) -> Tensor:
    """D's loss plus every registry penalty whose weight is on; each value joins `metrics`.

    `penalty(name)` computes the named penalty on the family's own D inputs.
    """
    for name, spec in PENALTIES.items():
        weight = getattr(train, spec.weight_field)
        if weight > 0:
            value = penalty(name)
            total = total + weight * value
            metrics[spec.key] = value
    return total


def d_output_metrics(
    loss: Loss, real_logits: Tensor, fake_logits: Tensor, threshold: Tensor
) -> dict[str, Tensor]:
    """The D-side record keys every family writes (logits (M, B); threshold (M,))."""
    out_real, out_fake = loss.outputs(real_logits), loss.outputs(fake_logits)
    th = threshold.unsqueeze(-1)
    return {
        "loss/w_dist": real_logits.mean(-1) - fake_logits.mean(-1),
        "d/real": out_real.mean(-1),
        "d/fake": out_fake.mean(-1),
        "d/fake_batch_std": out_fake.std(-1),
        "d/accuracy": 0.5 * ((out_real > th).float().mean(-1) + (out_fake < th).float().mean(-1)),
    }
