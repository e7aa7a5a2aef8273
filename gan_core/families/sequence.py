"""The `sequence` family: GANs over discrete token sequences (seeds/000's CodeGan).

G maps z to L x V logits; D reads one-hot real sequences and relaxed one-hot fakes through a
linear token embedding (Gulrajani et al. 2017's character language model): the fakes are
softmax(logits / T), or with `sequence.output: gumbel` straight-through Gumbel-softmax (one-hot
forward, relaxed gradient; Jang et al. 2017) with T annealed over the G steps. Every loss and
penalty of the registries applies; WGAN-GP interpolates real one-hot and fake relaxed
sequences, with one weight per sample (Gulrajani et al.) or per batch (CodeGan).

Batches are (one-hot real (M, B, L, V), None); samples are token ids (n, L), the argmax of
G's logits. Evaluation metrics (`seq/*`, docs/CONTRACTS.md): gan_core.seq_metrics.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..config import ConfigError, RunConfig
from ..layers import member_rand, member_randn
from ..losses import get_loss
from ..regularizers import gradient_penalty, r1_penalty
from ..seq_metrics import SequenceEvaluator
from ..seq_models import build_sequence_models
from ..tokens import TokenSet, load_tokens
from .base import (
    Family,
    MemberModel,
    Objective,
    Streams,
    add_penalties,
    d_output_metrics,
    one_member,
)

__all__ = ["SequenceFamily", "TokenIds"]

Batch = tuple[Tensor, None]


class TokenIds(nn.Module):
    """Logits (..., V) -> token ids (...), int64: the argmax, as the family's samples are."""

    def forward(self, logits: Tensor) -> Tensor:
        return logits.argmax(-1)


class SequenceFamily(Family):
    """A GAN over fixed-length token sequences (Markov chains, short code, user text)."""

    name = "sequence"

    def __init__(
        self,
        cfg: RunConfig,
        data: TokenSet,
        weight_gens: list[torch.Generator],
        streams: Streams,
        device: torch.device,
    ):
        super().__init__(cfg, data, weight_gens, streams, device)
        self.tokens = data
        self.vocab, self.length = data.vocab_size, data.length
        self.loss = get_loss(cfg.train.loss)
        self.G, self.D = build_sequence_models(cfg.sequence, self.length, self.vocab, weight_gens)
        self._x = data.x.to(device)
        self._threshold = torch.zeros(len(weight_gens), device=device)
        self._evaluator: SequenceEvaluator | None = None

    @staticmethod
    def load_data(cfg: RunConfig) -> TokenSet:
        return load_tokens(cfg)

    @property
    def networks(self) -> dict[str, nn.Module]:
        return {"generator": self.G, "discriminator": self.D}

    # ------------------------------------------------------------------ data
    def steps_per_epoch(self) -> int:
        t = self.cfg.train
        if t.steps_per_epoch is not None:
            return t.steps_per_epoch
        steps = len(self._x) // (t.batch_size * t.n_critic)
        if steps < 1:
            raise ConfigError(
                f"train.batch_size: {t.batch_size} x n_critic {t.n_critic} exceeds the "
                f"{len(self._x)} sequences of data {self.cfg.data.name!r}; lower it or set "
                "train.steps_per_epoch"
            )
        return steps

    def sampler(self, batches: int) -> Callable[[int], Batch]:
        """Each member shuffles the sequences with its own data generator; batches one-hot."""
        n, b = len(self._x), self.cfg.train.batch_size
        need = batches * b
        orders = []
        for gen in self.streams.data:
            perms = [torch.randperm(n, generator=gen) for _ in range(-(-need // n))]
            orders.append(torch.cat(perms)[:need].view(batches, b))
        order = torch.stack(orders).to(self.device)
        return lambda i: (F.one_hot(self._x[order[:, i]], self.vocab).float(), None)

    # ------------------------------------------------------------------ G's output
    def temperature(self) -> Tensor:
        """(M,) softmax temperature at each member's current G step (geometric schedule)."""
        s = self.cfg.sequence
        if s.temperature_final is None:
            return torch.full_like(self.G.steps, s.temperature)
        total = max(1, self.cfg.train.epochs * self.steps_per_epoch() - 1)
        progress = (self.G.steps / total).clamp(max=1.0)
        return s.temperature * (s.temperature_final / s.temperature) ** progress

    def _fake(self, b: int) -> Tensor:
        """(M, B, L, V) relaxed one-hot fakes (gumbel: one-hot forward, relaxed backward)."""
        logits = self.G(
            member_randn(self.streams.latent, (b, self.cfg.sequence.latent_dim), self.device)
        )
        tau = self.temperature().view(-1, 1, 1, 1)
        if self.cfg.sequence.output == "softmax":
            return torch.softmax(logits / tau, dim=-1)
        u = member_rand(self.streams.latent, logits.shape[1:], self.device).clamp_min(1e-10)
        soft = torch.softmax((logits - torch.log(-torch.log(u))) / tau, dim=-1)
        hard = F.one_hot(soft.argmax(-1), self.vocab).to(soft.dtype)
        return hard - soft.detach() + soft

    # ------------------------------------------------------------------ objectives
    def d_objective(self, batch: Batch, noise_std: float) -> Objective:
        """D's loss on one-hot real sequences and as many relaxed fakes."""
        real, _ = batch
        t = self.cfg.train
        with torch.no_grad():
            fake = self._fake(real.shape[1])
        real_logits, _ = self.D(real)
        fake_logits, _ = self.D(fake)
        r, f = self.loss.d_terms(real_logits, fake_logits, t)
        metrics: dict[str, Tensor] = {"loss/d_real": r, "loss/d_fake": f}
        total = add_penalties(r + f, metrics, t, lambda name: self._penalty(name, real, fake))
        metrics["loss/d_total"] = total.detach()
        with torch.no_grad():
            self._threshold = self.loss.threshold(real_logits, fake_logits, t).detach()
            metrics.update(d_output_metrics(self.loss, real_logits, fake_logits, self._threshold))
        return total, metrics

    def _penalty(self, name: str, real: Tensor, fake: Tensor) -> Tensor:
        def critic(x: Tensor) -> Tensor:
            return self.D(x)[0]

        if name != "gp":
            return r1_penalty(critic, real)
        b = real.shape[1]
        if self.cfg.sequence.gp_alpha == "batch":  # CodeGan: one alpha for the whole batch
            eps = member_rand(self.streams.latent, (1,), self.device).expand(-1, b)
        else:
            eps = member_rand(self.streams.latent, (b,), self.device)
        return gradient_penalty(critic, real, fake, eps, self.cfg.train.gp_target)

    def g_objective(self, batch: Batch, noise_std: float) -> Objective:
        real, _ = batch
        tau = self.temperature()
        logits, _ = self.D(self._fake(real.shape[1]))
        g_loss = self.loss.g(logits, self.cfg.train)
        with torch.no_grad():
            out_fake = self.loss.outputs(logits)
            fooled = (out_fake > self._threshold.unsqueeze(-1)).float().mean(-1)
            self.G.steps += 1
        return g_loss, {
            "loss/g": g_loss.detach(),
            "g/accuracy": fooled,
            "d/fake_g": out_fake.mean(-1),
            "seq/temperature": tau,
        }

    # ------------------------------------------------------------------ samples
    @torch.no_grad()
    def _logits(self, z: Tensor, position: int) -> Tensor:
        m = len(self.streams.latent)
        out = [
            self.G(chunk.to(self.device).unsqueeze(0).expand(m, -1, -1).contiguous())[position]
            for chunk in z.split(512)
        ]
        return torch.cat(out)

    def generate(
        self, n: int, position: int, labels: Tensor | None, generator: torch.Generator | None
    ) -> Tensor:
        """n sequences of token ids (n, L): the argmax of G's logits for fresh latents."""
        z = torch.randn((n, self.cfg.sequence.latent_dim), generator=generator, device=self.device)
        return self._logits(z, position).argmax(-1)

    def interpolate(
        self, z0: Tensor, z1: Tensor, steps: int, position: int, labels: Tensor | None
    ) -> Tensor:
        w = torch.linspace(0, 1, steps, device=self.device).unsqueeze(1)
        z = (1 - w) * z0.to(self.device) + w * z1.to(self.device)
        return self._logits(z, position).argmax(-1)

    def member_model(self, position: int) -> nn.Module:
        """z (n, latent_dim) float32 -> token ids (n, L) int64, the argmax of G's logits.

        Ids, not G's softmax: they are the samples every metric and figure of the family
        reads, they do not depend on the temperature schedule, and vocab.json decodes them.
        """
        return MemberModel(one_member(self.G, position), TokenIds())

    def model_inputs(self, n: int, generator: torch.Generator | None) -> Tensor:
        """n standard-normal latents of `sequence.latent_dim`, as `generate` draws them."""
        dim = self.cfg.sequence.latent_dim
        return torch.randn((n, dim), generator=generator, device=self.device)

    def evaluate(self, position: int, generator: torch.Generator) -> dict[str, float]:
        if self._evaluator is None:
            self._evaluator = SequenceEvaluator(
                self.tokens, self.cfg.eval.n_samples, self.cfg.sequence.ngram
            )
        z = torch.randn(
            (self.cfg.eval.n_samples, self.cfg.sequence.latent_dim),
            generator=generator,
            device=self.device,
        )
        logits = self._logits(z, position)
        if not torch.isfinite(logits).all():
            return {"quality/nonfinite": 1.0}
        return {"quality/nonfinite": 0.0, **self._evaluator(logits.argmax(-1).cpu().numpy())}

    def figures(
        self, directory: Path, position: int, generator: torch.Generator
    ) -> dict[str, str | os.PathLike]:
        """samples.txt and samples.png (32 decoded samples) and the vocabulary (vocab.json)."""
        from ..seq_metrics import save_text_image

        ids = self.generate(32, position, None, generator).cpu()
        lines = [self.tokens.decode(row) for row in ids]
        text = directory / "samples.txt"
        text.write_text("\n".join(lines) + "\n", encoding="utf-8")
        vocab = directory / "vocab.json"
        vocab.write_text(
            json.dumps({"tokens": list(self.tokens.vocab), "pad": self.tokens.pad}), "utf-8"
        )
        png = save_text_image(lines, directory / "samples.png")
        return {"samples": png, "samples_text": text, "vocab": vocab}
