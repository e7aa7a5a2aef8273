"""The `progressive` family: ProGAN's progressive growing (Karras et al. 2018).

G and D grow through `progressive.resolutions` (e.g. 4, 8, 16): `stable_epochs` at the first,
then per next resolution `fade_epochs` during which the new blocks fade in (alpha rising
linearly, step by step, from 0 to 1) and `stable_epochs` at alpha 1. Real images are
average-pooled to the current resolution and, during a fade, blended the same way:
`up(pool(x)) + alpha (x - up(pool(x)))`. D's loss is the registry's (WGAN-GP by the family
defaults) plus the drift term `progressive.drift x E[D(real)^2]`.

Epochs have a fixed number of G steps at every resolution (`steps_per_epoch`, from the largest
batch size when unset), so the schedule and `step` count G steps as in every family. Batches
are (real (M, B, C, r, r) at the current resolution r, None). Records add `progressive/*`
(docs/CONTRACTS.md); quality metrics score samples upsampled (nearest) to the data's side.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..config import ConfigError, ProgressiveConfig, RunConfig
from ..data import Dataset
from ..layers import member_randn
from ..losses import get_loss
from ..progressive_models import ProgressiveDiscriminator, ProgressiveGenerator
from .base import MemberModel, Objective, Streams, add_penalties, d_output_metrics, one_member
from .gan import GanFamily

__all__ = ["ProgressiveFamily", "Schedule", "ToDataSide"]

Batch = tuple[Tensor, None]


@dataclass(frozen=True)
class Schedule:
    """Where the growth stands at any point of training: (level, alpha)."""

    cfg: ProgressiveConfig

    def level(self, epoch: int) -> int:
        """Index of the resolution trained in epoch `epoch` (0-based)."""
        c = self.cfg
        if epoch < c.stable_epochs:
            return 0
        grown = 1 + (epoch - c.stable_epochs) // (c.fade_epochs + c.stable_epochs)
        return min(grown, len(c.resolutions) - 1)

    def alpha(self, epoch: int, fraction: float) -> float:
        """Fade-in weight at `fraction` in [0, 1) of epoch `epoch`: 0 at a growth, 1 when stable."""
        c, level = self.cfg, self.level(epoch)
        if level == 0:
            return 1.0
        into = epoch - c.stable_epochs - (level - 1) * (c.fade_epochs + c.stable_epochs)
        return min(1.0, (into + fraction) / c.fade_epochs) if into < c.fade_epochs else 1.0


def downsample(x: Tensor, side: int) -> Tensor:
    """(..., C, S, S) images average-pooled to side x side (area pooling, S a multiple)."""
    if x.shape[-1] == side:
        return x
    lead = x.shape[:-3]
    flat = F.avg_pool2d(x.reshape(-1, *x.shape[-3:]), x.shape[-1] // side)
    return flat.view(*lead, *flat.shape[1:])


class ToDataSide(nn.Module):
    """G's linear output as images: clipped to [-1, 1], enlarged (nearest) to `side` if smaller.

    What `ProgressiveFamily.generate` does, as the head of the member model.
    """

    def __init__(self, side: int):
        super().__init__()
        self.side = side

    def forward(self, x: Tensor) -> Tensor:
        x = x.clamp(-1.0, 1.0)
        if x.shape[-1] == self.side:
            return x
        return F.interpolate(x, size=(self.side, self.side), mode="nearest")


def _fade(x: Tensor, alpha: float) -> Tensor:
    """Reals during a fade: the half-resolution image upsampled, blended towards x by alpha."""
    low = downsample(x, x.shape[-1] // 2)
    up = F.interpolate(low.flatten(0, 1), scale_factor=2, mode="nearest").view_as(x)
    return up + alpha * (x - up)


class ProgressiveFamily(GanFamily):
    """Unconditional ProGAN on square images, grown to the data's side.

    Shares the gan family's G objective, penalties, sampling, evaluation and interpolation;
    owns its networks, schedule, real-data pyramid and D objective (which adds the drift).
    """

    name = "progressive"

    def __init__(
        self,
        cfg: RunConfig,
        data: Dataset,
        weight_gens: list[torch.Generator],
        streams: Streams,
        device: torch.device,
    ):
        p = cfg.progressive
        shape = data.sample_shape
        if data.kind != "images" or shape[1] != shape[2] or shape[1] != p.resolutions[-1]:
            raise ConfigError(
                f"progressive.resolutions: they end at {p.resolutions[-1]}, but data "
                f"{cfg.data.name!r} has samples of shape {tuple(shape)}; family progressive "
                f"needs square images of that side (set data.image_size: {p.resolutions[-1]})"
            )
        super(GanFamily, self).__init__(cfg, data, weight_gens, streams, device)
        self.dataset, self.schedule = data, Schedule(p)
        self.loss = get_loss(cfg.train.loss)
        self.G = ProgressiveGenerator(p, shape[0], weight_gens)
        self.D = ProgressiveDiscriminator(p, shape[0], weight_gens)
        x = data.x.to(device)
        self._pyramid = {r: downsample(x, r) for r in p.resolutions}  # reals at every side
        self._x, self._y, self._evaluator = x, None, None
        self._threshold = torch.zeros(len(weight_gens), device=device)
        self._epoch = 0

    @property
    def networks(self) -> dict[str, nn.Module]:
        return {"generator": self.G, "discriminator": self.D}

    def resolution(self) -> int:
        """The side G produces and D reads now."""
        return self.cfg.progressive.resolutions[self.G.level]

    def _batch_size(self, level: int) -> int:
        sizes = self.cfg.progressive.batch_sizes
        return sizes[level] if sizes else self.cfg.train.batch_size

    # ------------------------------------------------------------------ schedule and data
    def begin_epoch(self, epoch: int) -> None:
        """Enter epoch `epoch` (0-based) of the schedule; alpha then moves step by step."""
        self._epoch = epoch
        self._set_position(self.schedule.level(epoch), self.schedule.alpha(epoch, 0.0))

    def _set_position(self, level: int, alpha: float) -> None:
        self.G.set_position(level, alpha)
        self.D.set_position(level, alpha)

    def steps_per_epoch(self) -> int:
        t, p = self.cfg.train, self.cfg.progressive
        if t.steps_per_epoch is not None:
            return t.steps_per_epoch
        largest = max(p.batch_sizes or (t.batch_size,))
        steps = len(self._x) // (largest * t.n_critic)
        if steps < 1:
            raise ConfigError(
                f"train.batch_size: the largest batch {largest} x n_critic {t.n_critic} exceeds "
                f"the {len(self._x)} images of data {self.cfg.data.name!r}; lower it or set "
                "train.steps_per_epoch"
            )
        return steps

    def sampler(self, batches: int) -> Callable[[int], Batch]:
        """This epoch's batches at its resolution; each draw sets alpha for its G step."""
        level = self.schedule.level(self._epoch)
        reals = self._pyramid[self.cfg.progressive.resolutions[level]]
        b, n_critic = self._batch_size(level), self.cfg.train.n_critic
        steps = max(batches // n_critic, 1)
        need, n = batches * b, len(reals)
        orders = []
        for gen in self.streams.data:
            perms = [torch.randperm(n, generator=gen) for _ in range(-(-need // n))]
            orders.append(torch.cat(perms)[:need].view(batches, b))
        order = torch.stack(orders).to(self.device)

        def draw(index: int) -> Batch:
            alpha = self.schedule.alpha(self._epoch, (index // n_critic) / steps)
            self._set_position(level, alpha)
            real = reals[order[:, index]]
            return (_fade(real, alpha) if self.G.fading else real), None

        return draw

    # ------------------------------------------------------------------ objectives
    def d_objective(self, batch: Batch, noise_std: float) -> Objective:
        """The registry loss on reals and fakes at the current resolution, penalties, drift."""
        real, _ = batch
        t, b = self.cfg.train, real.shape[1]
        with torch.no_grad():
            fake = self.G(self._latents(b))
        real_in, fake_in = self._noisy(real, noise_std), self._noisy(fake, noise_std)
        real_logits, _ = self.D(real_in)
        fake_logits, _ = self.D(fake_in)
        r, f = self.loss.d_terms(real_logits, fake_logits, t)
        metrics: dict[str, Tensor] = {"loss/d_real": r, "loss/d_fake": f}
        total = add_penalties(
            r + f, metrics, t, lambda name: self._penalty(name, real_in, fake_in, None, None)
        )
        drift = real_logits.square().mean(-1)
        if self.cfg.progressive.drift > 0:
            total = total + self.cfg.progressive.drift * drift
        metrics["loss/drift"] = drift.detach()
        metrics["loss/d_total"] = total.detach()
        with torch.no_grad():
            self._threshold = self.loss.threshold(real_logits, fake_logits, t).detach()
            metrics.update(d_output_metrics(self.loss, real_logits, fake_logits, self._threshold))
            metrics["progressive/alpha"] = self.G.alpha.clone()
            metrics["progressive/resolution"] = torch.full_like(r, float(self.resolution()))
        return total, metrics

    def _latents(self, b: int) -> Tensor:
        return member_randn(self.streams.latent, (b, self.cfg.progressive.latent_dim), self.device)

    # ------------------------------------------------------------------ samples
    def generate(
        self, n: int, position: int, labels: Tensor | None, generator: torch.Generator | None
    ) -> Tensor:
        """n samples at the current resolution, upsampled (nearest) to the data's side.

        Clipped to the data's range [-1, 1], as the reference code does when it turns G's
        linear output into images (non-finite values stay, for the divergence check).
        """
        side = self.cfg.progressive.resolutions[-1]
        x = self.generate_native(n, position, generator).clamp(-1.0, 1.0)
        return F.interpolate(x, size=(side, side), mode="nearest") if x.shape[-1] != side else x

    def member_model(self, position: int) -> nn.Module:
        """z (n, latent_dim) float32 -> images (n, C, S, S) in [-1, 1], S the last resolution.

        G as the run left it: fully grown (the last resolution, alpha 1) once the run has
        trained its whole schedule, as every run to `train.epochs` does; a run stopped before
        gives its current resolution enlarged to S, as its `generate` and samples.png do.
        """
        return MemberModel(
            one_member(self.G, position), ToDataSide(self.cfg.progressive.resolutions[-1])
        )

    def model_inputs(self, n: int, generator: torch.Generator | None) -> Tensor:
        """n standard-normal latents of `progressive.latent_dim`, as `generate` draws them."""
        dim = self.cfg.progressive.latent_dim
        return torch.randn((n, dim), generator=generator, device=self.device)

    def generate_native(self, n: int, position: int, generator: torch.Generator | None) -> Tensor:
        """n samples at the resolution G produces now, (n, C, r, r)."""
        dim = self.cfg.progressive.latent_dim
        z = torch.randn((n, dim), generator=generator, device=self.device)
        return self.generate_from(z, position, None)

    def figures(
        self, directory: Path, position: int, generator: torch.Generator
    ) -> dict[str, str | os.PathLike]:
        """samples.png: a grid at the current resolution, pixels enlarged to the data's side.

        The name every family's sample grid has (sweep reports and MLflow pick it up); the
        records' `progressive/resolution` says which resolution it shows.
        """
        from ..plots import save_sample_grid

        samples = self.generate(self.cfg.eval.samples_grid, position, None, generator).cpu()
        return {"samples": save_sample_grid(samples, directory / "samples.png")}
