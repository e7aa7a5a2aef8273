"""The `cyclegan` family: unpaired image-to-image translation (Zhu et al. 2017).

G: A -> B and F: B -> A (ResNet generators), D_A and D_B (patch discriminators). D's loss is
the adversarial loss of the registry (least squares by default) on real images and on fakes
drawn through an image pool; G's adds cycle consistency and, optionally, identity:

    L_G = adv(D_B(G(a))) + adv(D_A(F(b)))
          + lambda_cycle (|F(G(a)) - a|_1 + |G(F(b)) - b|_1)
          + lambda_identity lambda_cycle (|F(a) - a|_1 + |G(b) - b|_1)

Batches are ((a (M, B, C, H, W), b (M, B, C, H, W)), None). Record keys: docs/CONTRACTS.md.
gan_core's least-squares loss carries Mao et al.'s 1/2: D's loss R + F equals the reference
implementation's 0.5 (MSE_real + MSE_fake); G's adversarial term is half the reference's.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import torch
from torch import Tensor, nn

from ..config import ConfigError, RunConfig
from ..cycle_models import CycleDiscriminators, CycleGenerators, ImagePools
from ..domains import DomainPair, load_domains
from ..losses import get_loss, over_scales
from ..models import check_architecture
from ..quality import pairwise_stats
from .base import Family, MemberModel, Objective, Streams, one_member

__all__ = ["CycleGanFamily"]

Batch = tuple[tuple[Tensor, Tensor], None]


def _l1(x: Tensor, y: Tensor) -> Tensor:
    """Per-member mean absolute difference of (M, B, ...) tensors -> (M,)."""
    return (x - y).abs().flatten(1).mean(1)


class CycleGanFamily(Family):
    """CycleGAN on a pair of unpaired image domains."""

    name = "cyclegan"

    def __init__(
        self,
        cfg: RunConfig,
        data: DomainPair,
        weight_gens: list[torch.Generator],
        streams: Streams,
        device: torch.device,
    ):
        super().__init__(cfg, data, weight_gens, streams, device)
        shape = data.sample_shape
        if shape[1] % 4 or shape[2] % 4:
            raise ConfigError(
                f"data.image_size: the ResNet generator halves the image twice; data "
                f"{data.name!r} is {shape[1]}x{shape[2]}, set a multiple of 4"
            )
        check_architecture(cfg, shape, 0)
        self.loss = get_loss(cfg.train.loss)
        self.gens = CycleGenerators(cfg.cycle, shape[0], weight_gens)
        self.discs = CycleDiscriminators(cfg.discriminator, shape, weight_gens)
        self.pools = ImagePools(cfg.cycle.pool_size, shape, len(weight_gens))
        self._a, self._b = data.a.to(device), data.b.to(device)
        self._threshold = {"a": torch.zeros(len(weight_gens), device=device)}
        self._threshold["b"] = self._threshold["a"]
        n = min(cfg.eval.n_samples, len(self._a), len(self._b))
        self._eval_a, self._eval_b = self._a[:n], self._b[:n]

    @staticmethod
    def load_data(cfg: RunConfig) -> DomainPair:
        return load_domains(cfg.data)

    @property
    def networks(self) -> dict[str, nn.Module]:
        return {"generator": self.gens, "discriminator": self.discs, "pools": self.pools}

    # ------------------------------------------------------------------ data
    def steps_per_epoch(self) -> int:
        t = self.cfg.train
        if t.steps_per_epoch is not None:
            return t.steps_per_epoch
        n = max(len(self._a), len(self._b))  # the reference's epoch: the larger domain once
        if n < t.batch_size or min(len(self._a), len(self._b)) < t.batch_size:
            raise ConfigError(
                f"train.batch_size: {t.batch_size} exceeds a domain of data {self.cfg.data.name!r}"
                f" ({len(self._a)} and {len(self._b)} images)"
            )
        return n // t.batch_size

    def sampler(self, batches: int) -> Callable[[int], Batch]:
        """Each member shuffles A and B on its own data stream, independently (unpaired)."""
        b = self.cfg.train.batch_size
        orders = [self._orders(len(x), batches * b, batches, b) for x in (self._a, self._b)]
        return lambda i: ((self._a[orders[0][:, i]], self._b[orders[1][:, i]]), None)

    def _orders(self, n: int, need: int, batches: int, b: int) -> Tensor:
        out = []
        for gen in self.streams.data:
            perms = [torch.randperm(n, generator=gen) for _ in range(-(-need // n))]
            out.append(torch.cat(perms)[:need].view(batches, b))
        return torch.stack(out).to(self.device)

    # ------------------------------------------------------------------ objectives
    def _d_terms(self, d: nn.Module, real: Tensor, fake: Tensor) -> tuple[Tensor, ...]:
        t = self.cfg.train
        real_logits, _ = d(real)
        fake_logits, _ = d(fake)
        r, f = over_scales(
            lambda x, y: self.loss.d_terms(x, y, t), d.scale_sizes, real_logits, fake_logits
        )
        return r, f, real_logits, fake_logits

    def d_objective(self, batch: Batch, noise_std: float) -> Objective:
        """D_A on a vs pooled F(b), D_B on b vs pooled G(a)."""
        (a, b), _ = batch
        with torch.no_grad():
            fake_b = self.pools.b.query(self.gens.g_ab(a), self.streams.latent)
            fake_a = self.pools.a.query(self.gens.g_ba(b), self.streams.latent)
        metrics: dict[str, Tensor] = {}
        total = torch.zeros(a.shape[0], device=self.device)
        sides = {"a": (self.discs.d_a, a, fake_a), "b": (self.discs.d_b, b, fake_b)}
        real_out, fake_out = [], []
        for side, (d, real, fake) in sides.items():
            r, f, real_logits, fake_logits = self._d_terms(d, real, fake)
            total = total + r + f
            with torch.no_grad():
                out_r, out_f = self.loss.outputs(real_logits), self.loss.outputs(fake_logits)
                th = self.loss.threshold(real_logits, fake_logits, self.cfg.train).detach()
                self._threshold[side] = th
                acc = 0.5 * (
                    (out_r > th.unsqueeze(-1)).float().mean(-1)
                    + (out_f < th.unsqueeze(-1)).float().mean(-1)
                )
            metrics.update({f"loss/d_{side}": 0.5 * (r + f).detach(), f"d_{side}/accuracy": acc})
            metrics.update({f"d_{side}/real": out_r.mean(-1), f"d_{side}/fake": out_f.mean(-1)})
            metrics.update({f"_r_{side}": r.detach(), f"_f_{side}": f.detach()})
            real_out.append(out_r)
            fake_out.append(out_f)
        return total, self._shared_d_metrics(metrics, total, real_out, fake_out)

    @staticmethod
    def _shared_d_metrics(
        m: dict[str, Tensor], total: Tensor, real_out: list[Tensor], fake_out: list[Tensor]
    ) -> dict[str, Tensor]:
        """The keys every family writes, as means over the two discriminators."""
        r = 0.5 * (m.pop("_r_a") + m.pop("_r_b"))
        f = 0.5 * (m.pop("_f_a") + m.pop("_f_b"))
        real, fake = torch.cat(real_out, dim=1), torch.cat(fake_out, dim=1)
        return {
            "loss/d_real": r,
            "loss/d_fake": f,
            **m,
            "loss/d_total": total.detach(),
            "loss/w_dist": real.mean(-1) - fake.mean(-1),
            "d/real": real.mean(-1),
            "d/fake": fake.mean(-1),
            "d/fake_batch_std": fake.std(-1),
            "d/accuracy": 0.5 * (m["d_a/accuracy"] + m["d_b/accuracy"]),
        }

    def g_objective(self, batch: Batch, noise_std: float) -> Objective:
        """Adversarial terms of G and F, cycle consistency, identity (when its weight is > 0)."""
        (a, b), _ = batch
        c, t = self.cfg.cycle, self.cfg.train
        fake_b, fake_a = self.gens.g_ab(a), self.gens.g_ba(b)
        logits_b, _ = self.discs.d_b(fake_b)
        logits_a, _ = self.discs.d_a(fake_a)
        adv_ab = over_scales(lambda x: self.loss.g(x, t), self.discs.d_b.scale_sizes, logits_b)
        adv_ba = over_scales(lambda x: self.loss.g(x, t), self.discs.d_a.scale_sizes, logits_a)
        cycle_a = _l1(self.gens.g_ba(fake_b), a)
        cycle_b = _l1(self.gens.g_ab(fake_a), b)
        total = adv_ab + adv_ba + c.lambda_cycle * (cycle_a + cycle_b)
        metrics = {"loss/cycle_a": cycle_a.detach(), "loss/cycle_b": cycle_b.detach()}
        if c.lambda_identity > 0:
            identity = _l1(self.gens.g_ba(a), a) + _l1(self.gens.g_ab(b), b)
            total = total + c.lambda_identity * c.lambda_cycle * identity
            metrics["loss/identity"] = identity.detach()
        with torch.no_grad():
            out_b, out_a = self.loss.outputs(logits_b), self.loss.outputs(logits_a)
            fooled_b = (out_b > self._threshold["b"].unsqueeze(-1)).float().mean(-1)
            fooled_a = (out_a > self._threshold["a"].unsqueeze(-1)).float().mean(-1)
        metrics.update(
            {
                "loss/g": (adv_ab + adv_ba).detach(),
                "loss/g_ab": adv_ab.detach(),
                "loss/g_ba": adv_ba.detach(),
                "loss/g_total": total.detach(),
                "g/accuracy": 0.5 * (fooled_a + fooled_b),
                "g_ab/accuracy": fooled_b,
                "g_ba/accuracy": fooled_a,
                "d/fake_g": 0.5 * (out_a.mean(-1) + out_b.mean(-1)),
            }
        )
        return total, metrics

    # ------------------------------------------------------------------ evaluation
    @torch.no_grad()
    def _translate(self, net: nn.Module, x: Tensor, position: int) -> Tensor:
        """net(x) for the member at `position`, in chunks; (n, C, H, W) -> (n, C, H, W)."""
        m = len(self.streams.latent)
        out = []
        for chunk in x.split(256):
            batch = chunk.unsqueeze(0).expand(m, *chunk.shape).contiguous()
            out.append(net(batch)[position])
        return torch.cat(out)

    def evaluate(self, position: int, generator: torch.Generator) -> dict[str, float]:
        """Translation error against the true map (when known), identity and constant checks."""
        a, b = self._eval_a, self._eval_b
        g_a = self._translate(self.gens.g_ab, a, position)
        f_b = self._translate(self.gens.g_ba, b, position)
        if not (torch.isfinite(g_a).all() and torch.isfinite(f_b).all()):
            return {"quality/nonfinite": 1.0}
        spread_a = float((a - a.roll(1, 0)).abs().mean())  # two unrelated A images differ this much
        out = {
            "quality/nonfinite": 0.0,
            "cycle/g_change": float((g_a - a).abs().mean()) / spread_a,
            **pairwise_stats(g_a),
        }
        out["diversity/ratio"] = out["diversity/mean"] / pairwise_stats(b)["diversity/mean"]
        if self.data.true_map is not None and self.data.true_inverse is not None:
            target_b, target_a = self.data.true_map(a), self.data.true_inverse(b)
            err_ab = float((g_a - target_b).abs().mean())
            err_ba = float((f_b - target_a).abs().mean())
            out["quality/translation_error"] = err_ab
            out["quality/translation_error_ba"] = err_ba
            out["quality/translation_error_rel"] = err_ab / float((a - target_b).abs().mean())
        return out

    def generate(
        self, n: int, position: int, labels: Tensor | None, generator: torch.Generator | None
    ) -> Tensor:
        """G(a) of the first n evaluation images of domain A (no latent space)."""
        return self._translate(self.gens.g_ab, self._eval_a[:n], position)

    def member_model(self, position: int) -> nn.Module:
        """Images of domain A (n, C, H, W) in [-1, 1] -> G's translations to B, same shape.

        G (A -> B) only, the direction `generate` and the quality metrics use; F stays in
        the checkpoint. A CycleGAN has no latent space: its model's input is data.
        """
        return MemberModel(one_member(self.gens.g_ab, position))

    def model_inputs(self, n: int, generator: torch.Generator | None) -> Tensor:
        """The first n (at most) held-out images of domain A, which `generate` translates."""
        return self._eval_a[:n]

    def figures(
        self, directory: Path, position: int, generator: torch.Generator
    ) -> dict[str, str | os.PathLike]:
        """Rows of 8: a, G(a), F(G(a)), then b, F(b), G(F(b))."""
        from ..plots import save_sample_grid

        a, b = self._eval_a[:8], self._eval_b[:8]
        g_a = self._translate(self.gens.g_ab, a, position)
        f_b = self._translate(self.gens.g_ba, b, position)
        rows = [
            a,
            g_a,
            self._translate(self.gens.g_ba, g_a, position),
            b,
            f_b,
            self._translate(self.gens.g_ab, f_b, position),
        ]
        path = save_sample_grid(torch.cat(rows).cpu(), directory / "translations.png", nrow=len(a))
        return {"translations": path}

    def lr_factor(self, epoch: int) -> float:
        """Constant, then linear decay towards 0 (the reference's 'linear' policy)."""
        epochs = self.cfg.train.epochs
        start = self.cfg.cycle.decay_start
        start = epochs // 2 if start is None else start
        return 1.0 - max(0, epoch + 1 - start) / (epochs - start + 1)
