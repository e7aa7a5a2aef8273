"""The `gan` family: G maps z (and optionally a label) to a sample, D scores samples.

MLP, DCGAN and patch discriminators; every loss of gan_core.losses and every penalty of
gan_core.regularizers. Batches are (real (M, B, ...), labels (M, B) or None).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from ..config import ConfigError, RunConfig
from ..data import Dataset, load_dataset
from ..layers import member_rand, member_randn
from ..losses import get_loss, over_scales
from ..models import build_models
from ..regularizers import feature_matching, gradient_penalty, r1_penalty
from .base import (
    Family,
    MemberModel,
    Objective,
    Streams,
    add_penalties,
    d_output_metrics,
    one_member,
)

__all__ = ["GanFamily"]

Batch = tuple[Tensor, Tensor | None]


class GanFamily(Family):
    """Unconditional or conditional GAN on points or images (the family gansweep began with)."""

    name = "gan"

    def __init__(
        self,
        cfg: RunConfig,
        data: Dataset,
        weight_gens: list[torch.Generator],
        streams: Streams,
        device: torch.device,
    ):
        super().__init__(cfg, data, weight_gens, streams, device)
        self.dataset = data
        self.loss = get_loss(cfg.train.loss)
        self.G, self.D = build_models(cfg, data.sample_shape, data.num_classes, weight_gens)
        self._x = data.x.to(device)
        self._y = data.y.to(device) if data.y is not None else None
        self._evaluator: Any = None
        self._threshold = torch.zeros(len(weight_gens), device=device)

    @staticmethod
    def load_data(cfg: RunConfig) -> Dataset:
        return load_dataset(cfg.data)

    @property
    def networks(self) -> dict[str, nn.Module]:
        return {"generator": self.G, "discriminator": self.D}

    @property
    def n_modes(self) -> int | None:
        return len(self.dataset.centers) if self.dataset.centers is not None else None

    # ------------------------------------------------------------------ data
    def steps_per_epoch(self) -> int:
        t = self.cfg.train
        if t.steps_per_epoch is not None:
            return t.steps_per_epoch
        n = len(self.dataset.x) if not self.dataset.fresh else self.cfg.data.n_points
        steps = n // (t.batch_size * t.n_critic)
        if steps < 1:
            raise ConfigError(
                f"train.batch_size: {t.batch_size} x n_critic {t.n_critic} exceeds the "
                f"{n} samples of data {self.cfg.data.name!r}; lower it or set train.steps_per_epoch"
            )
        return steps

    def sampler(self, batches: int) -> Callable[[int], Batch]:
        order = None if self.dataset.fresh else self._epoch_order(batches)
        return lambda index: self._real_batch(order, index)

    def _epoch_order(self, batches: int) -> Tensor:
        """(M, batches, B) sample indices: each member shuffles with its own data generator."""
        n, b = len(self._x), self.cfg.train.batch_size
        need = batches * b
        orders = []
        for gen in self.streams.data:
            perms = [torch.randperm(n, generator=gen) for _ in range(-(-need // n))]
            orders.append(torch.cat(perms)[:need].view(batches, b))
        return torch.stack(orders).to(self.device)

    def _real_batch(self, order: Tensor | None, index: int) -> Batch:
        if order is None:
            draws = [self.dataset.sample(self.cfg.train.batch_size, g) for g in self.streams.data]
            x = torch.stack([d[0] for d in draws]).to(self.device)
            y = torch.stack([d[1] for d in draws]).to(self.device) if self.cfg.conditional else None
            return x, y
        idx = order[:, index]
        y = self._y[idx] if self.cfg.conditional and self._y is not None else None
        return self._x[idx], y

    # ------------------------------------------------------------------ objectives
    def d_objective(self, batch: Batch, noise_std: float) -> Objective:
        """D's loss on a real batch (M, B, ...) and fakes of the same size."""
        real, labels = batch
        t = self.cfg.train
        b = real.shape[1]
        fake_labels = self._fake_labels(b)
        with torch.no_grad():
            fake = self.G(self._latents(b), fake_labels)
        real_in, fake_in = self._noisy(real, noise_std), self._noisy(fake, noise_std)
        real_logits, _ = self.D(real_in, labels)
        fake_logits, _ = self.D(fake_in, fake_labels)
        sizes = self.D.scale_sizes
        r, f = over_scales(lambda a, b: self.loss.d_terms(a, b, t), sizes, real_logits, fake_logits)
        metrics: dict[str, Tensor] = {"loss/d_real": r, "loss/d_fake": f}
        total = add_penalties(
            r + f,
            metrics,
            t,
            lambda name: self._penalty(name, real_in, fake_in, labels, fake_labels),
        )
        metrics["loss/d_total"] = total.detach()
        with torch.no_grad():
            self._threshold = self.loss.threshold(real_logits, fake_logits, t).detach()
            metrics.update(d_output_metrics(self.loss, real_logits, fake_logits, self._threshold))
        return total, metrics

    def g_objective(self, batch: Batch, noise_std: float) -> Objective:
        """G's loss; the real batch serves feature matching only.

        Instance noise reaches D's inputs here too: G trains against the noise-convolved D
        that the D step trained (Sonderby et al. 2016).
        """
        real, labels = batch
        t = self.cfg.train
        b = real.shape[1]
        fake_labels = self._fake_labels(b)
        fake = self.G(self._latents(b), fake_labels)
        logits, fake_features = self.D(self._noisy(fake, noise_std), fake_labels)
        g_loss = over_scales(lambda a: self.loss.g(a, t), self.D.scale_sizes, logits)
        total = g_loss
        if t.feature_matching_weight > 0:
            with torch.no_grad():
                _, real_features = self.D(self._noisy(real, noise_std), labels)
            total = total + t.feature_matching_weight * feature_matching(
                real_features, fake_features
            )
        with torch.no_grad():
            out_fake = self.loss.outputs(logits)
            fooled = (out_fake > self._threshold.unsqueeze(-1)).float().mean(-1)
        # d/fake_g: Artifex's d_fake_g, D's output on the fakes G was just trained against.
        return total, {
            "loss/g": g_loss.detach(),
            "g/accuracy": fooled,
            "d/fake_g": out_fake.mean(-1),
        }

    def _latents(self, b: int) -> Tensor:
        return member_randn(self.streams.latent, (b, self.cfg.generator.latent_dim), self.device)

    def _fake_labels(self, b: int) -> Tensor | None:
        if not self.cfg.conditional:
            return None
        u = member_rand(self.streams.latent, (b,), self.device)
        return (u * self.dataset.num_classes).long().clamp_(max=self.dataset.num_classes - 1)

    def _noisy(self, x: Tensor, std: float) -> Tensor:
        if std <= 0:
            return x
        return x + std * member_randn(self.streams.latent, x.shape[1:], self.device)

    def _penalty(
        self,
        name: str,
        real: Tensor,
        fake: Tensor,
        labels: Tensor | None,
        fake_labels: Tensor | None,
    ) -> Tensor:
        if name == "gp":
            eps = member_rand(self.streams.latent, real.shape[1:2], self.device)
            # Interpolates take the real sample's label (cGAN-GP convention).
            return gradient_penalty(
                lambda x: self.D(x, labels)[0], real, fake, eps, self.cfg.train.gp_target
            )
        return r1_penalty(lambda x: self.D(x, labels)[0], real)

    # ------------------------------------------------------------------ samples
    def generate(
        self, n: int, position: int, labels: Tensor | None, generator: torch.Generator | None
    ) -> Tensor:
        z = torch.randn((n, self.cfg.generator.latent_dim), generator=generator, device=self.device)
        return self.generate_from(z, position, labels)

    @torch.no_grad()
    def generate_from(self, z: Tensor, position: int, labels: Tensor | None) -> Tensor:
        """G(z) of the member at `position`; batch norm uses its running statistics."""
        m = len(self.streams.latent)
        zs = z.unsqueeze(0).expand(m, -1, -1).contiguous()
        ys = (
            None
            if labels is None
            else labels.to(self.device).unsqueeze(0).expand(m, -1).contiguous()
        )
        was_training = self.G.training
        self.G.eval()
        try:
            return self.G(zs, ys)[position]
        finally:
            self.G.train(was_training)

    def member_model(self, position: int) -> nn.Module:
        """z (n, latent_dim) float32 -> the member's samples (n, *sample_shape) in data space.

        Unconditional runs only: a conditional G needs labels beside z.
        """
        if self.cfg.conditional:
            raise ValueError("a conditional generator takes labels beside z: no one-input model")
        return MemberModel(one_member(self.G, position))

    def model_inputs(self, n: int, generator: torch.Generator | None) -> Tensor:
        """n standard-normal latents, as `generate` draws them."""
        return torch.randn(
            (n, self.cfg.generator.latent_dim), generator=generator, device=self.device
        )

    def eval_labels(self, n: int) -> Tensor | None:
        """Balanced labels for conditional samples; None for unconditional runs."""
        if not self.cfg.conditional:
            return None
        return torch.arange(n, device=self.device) % self.dataset.num_classes

    def evaluate(self, position: int, generator: torch.Generator) -> dict[str, float]:
        if self._evaluator is None:
            from ..quality import QualityEvaluator

            self._evaluator = QualityEvaluator(
                self.dataset, self.cfg.eval.feature_extractor, self.cfg.eval.n_samples, self.device
            )
        n = self.cfg.eval.n_samples
        return self._evaluator(self.generate(n, position, self.eval_labels(n), generator))

    def figures(
        self, directory: Path, position: int, generator: torch.Generator
    ) -> dict[str, str | os.PathLike]:
        from ..plots import save_sample_grid

        n = self.cfg.eval.samples_grid if self.dataset.kind == "images" else 1000
        samples = self.generate(n, position, self.eval_labels(n), generator).cpu()
        path = save_sample_grid(samples, directory / "samples.png", centers=self.dataset.centers)
        return {"samples": path}

    def interpolate(
        self, z0: Tensor, z1: Tensor, steps: int, position: int, labels: Tensor | None
    ) -> Tensor:
        w = torch.linspace(0, 1, steps, device=self.device).unsqueeze(1)
        z = (1 - w) * z0.to(self.device) + w * z1.to(self.device)
        return self.generate_from(z, position, labels)
