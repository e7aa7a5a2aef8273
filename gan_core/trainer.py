"""The GAN trainer: one loop for one run or a pack of runs (members) trained side by side.

Every tensor carries a leading member axis M; a plain run is M = 1. Members share
the architecture and loss but have their own seeds (and may have their own learning
rates); nothing in the arithmetic mixes them, so member m of a pack computes what a
solo run of m would. The trainer yields one plain metrics record per member per epoch
(keys in docs/CONTRACTS.md); printing, Tune, MLflow and Parquet consume those records.
"""

from __future__ import annotations

import os
import pickle
import time
import zipfile
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from .config import ConfigError, RunConfig
from .data import Dataset, load_dataset
from .layers import MemberDropout, member_rand, member_randn
from .losses import get_loss
from .models import build_models
from .monitor import RunSummary, Verdict, assess, divergence, health_line, summarize, verdict
from .optim import MemberOptimizer, backward
from .regularizers import (
    PENALTIES,
    clip_fraction,
    clip_weights,
    feature_matching,
    gradient_penalty,
    instance_noise_std,
    r1_penalty,
)
from .seeding import (
    DATA,
    EVAL,
    LATENTS,
    WEIGHTS,
    configure_determinism,
    make_generator,
    resolve_device,
    seed_globals,
)

__all__ = ["Member", "Trainer", "CheckpointError"]

CHECKPOINT_FORMAT = "gansweep-checkpoint-v1"


class CheckpointError(ValueError):
    """A checkpoint file is corrupt, foreign, or from another configuration."""


@dataclass(frozen=True)
class Member:
    """One run inside a pack: its two seeds and, optionally, its own learning rates."""

    init_seed: int
    data_seed: int
    g_lr: float | None = None  # None: the config's train.g_lr
    d_lr: float | None = None


class Trainer:
    """Trains G and D for one or more members.

    Args:
        cfg: the validated run configuration.
        members: the runs to train together; default one member with cfg's seeds.
        dataset: an already loaded data set (default: load cfg.data).
    Raises:
        ConfigError: the configuration does not fit the data (before any training).
    """

    def __init__(
        self,
        cfg: RunConfig,
        members: Sequence[Member] | None = None,
        dataset: Dataset | None = None,
    ):
        self.cfg = cfg
        self.members = list(members) if members else [Member(*cfg.seeds)]
        for m in self.members:
            for name in ("g_lr", "d_lr"):
                if getattr(m, name) is not None and not getattr(m, name) > 0:
                    raise ConfigError(f"train.{name}: must be > 0, got {getattr(m, name)}")
        self.device = resolve_device(cfg.device)
        configure_determinism()
        seed_globals(self.members[0].init_seed)
        self.dataset = dataset if dataset is not None else load_dataset(cfg.data)
        self.loss = get_loss(cfg.train.loss)
        weight_gens = [make_generator(m.init_seed, WEIGHTS) for m in self.members]
        self.G, self.D = build_models(
            cfg, self.dataset.sample_shape, self.dataset.num_classes, weight_gens
        )
        self.steps_per_epoch = self._steps_per_epoch()
        self.G.to(self.device)
        self.D.to(self.device)
        self._latent_gens = [
            make_generator(m.init_seed, LATENTS, self.device) for m in self.members
        ]
        self._data_gens = [make_generator(m.data_seed, DATA) for m in self.members]
        for module in (*self.G.modules(), *self.D.modules()):
            if isinstance(module, MemberDropout):
                module.gens = self._latent_gens
        t = cfg.train
        self.opt_g = MemberOptimizer(
            list(self.G.parameters()),
            [m.g_lr or t.g_lr for m in self.members],
            t.optimizer,
            t.g_betas,
        )
        self.opt_d = MemberOptimizer(
            list(self.D.parameters()),
            [m.d_lr or t.d_lr for m in self.members],
            t.optimizer,
            t.d_betas,
        )
        self._base_lr = {"g": self.opt_g.lr.clone(), "d": self.opt_d.lr.clone()}
        self._x = self.dataset.x.to(self.device)
        self._y = self.dataset.y.to(self.device) if self.dataset.y is not None else None
        self._layers = {"g": _layer_params(self.G), "d": _layer_params(self.D)}
        self._evaluator: Any = None
        self.epoch = 0
        self.history: list[list[dict[str, float]]] = [[] for _ in self.members]
        self.active = [True] * len(self.members)
        # member index of each position on the member axis
        self._slots = list(range(len(self.members)))

    # ------------------------------------------------------------------ public API
    def epochs(self) -> Iterator[dict[int, dict[str, float]]]:
        """Train to cfg.train.epochs, yielding {member index: record} after each epoch."""
        while self.epoch < self.cfg.train.epochs and any(self.active):
            self._compact()
            self._apply_lr_schedule()
            start = time.perf_counter()
            stats = self._train_epoch()
            self.epoch += 1
            records = self._records(stats, time.perf_counter() - start)
            for i, record in records.items():
                self.history[i].append(record)
                cfg, loss, modes = self._monitor_args
                health = assess(self.history[i], cfg, loss, n_modes=modes)
                record["monitor/phase"] = health.phase
                record["monitor/health"] = health_line(health)
                if divergence(record, self.cfg.monitor):
                    self.active[i] = False  # diverged: its verdict says so; the others go on
            yield records

    @property
    def _monitor_args(self) -> tuple[Any, str, int | None]:
        modes = len(self.dataset.centers) if self.dataset.centers is not None else None
        return self.cfg.monitor, self.cfg.train.loss, modes

    def verdicts(self) -> list[Verdict]:
        """The verdict of every member from its history so far."""
        cfg, loss, modes = self._monitor_args
        return [verdict(h, cfg, loss, n_modes=modes) for h in self.history]

    def summaries(self) -> list[RunSummary]:
        """Every member's run summary (recent losses, health, issues seen, verdict)."""
        cfg, loss, modes = self._monitor_args
        return [summarize(h, cfg, loss, n_modes=modes) for h in self.history]

    def stop_member(self, index: int) -> None:
        """Stop training member `index` (its history and verdict stay as they are).

        Its weights leave the pack when the next epoch starts, so the others run faster:
        save its artifacts before asking for that epoch.
        """
        self.active[index] = False

    @torch.no_grad()
    def generate(
        self,
        n: int,
        member: int = 0,
        labels: Tensor | None = None,
        generator: torch.Generator | None = None,
    ) -> Tensor:
        """n samples of one member, with G in evaluation mode.

        In evaluation mode batch norm uses running statistics.
        """
        gen = generator or make_generator(self.members[member].init_seed, EVAL, self.device)
        z = torch.randn((n, self.cfg.generator.latent_dim), generator=gen, device=self.device)
        return self._generate_from(z, member, labels)

    @torch.no_grad()
    def interpolate(
        self, z0: Tensor, z1: Tensor, steps: int, member: int = 0, labels: Tensor | None = None
    ) -> Tensor:
        """Samples along the straight line from latent z0 to z1 (steps points, ends included)."""
        w = torch.linspace(0, 1, steps, device=self.device).unsqueeze(1)
        z = (1 - w) * z0.to(self.device) + w * z1.to(self.device)
        return self._generate_from(z, member, labels)

    def save_checkpoint(self, path: str | os.PathLike) -> None:
        """Everything needed to resume exactly: models, optimizers, RNG states, epoch, history."""
        state = {
            "format": CHECKPOINT_FORMAT,
            "config": _plain(self.cfg.to_dict()),
            "members": [asdict(m) for m in self.members],
            "epoch": self.epoch,
            "generator": self.G.state_dict(),
            "discriminator": self.D.state_dict(),
            "opt_g": self.opt_g.state_dict(),
            "opt_d": self.opt_d.state_dict(),
            "latent_gens": [g.get_state() for g in self._latent_gens],
            "data_gens": [g.get_state() for g in self._data_gens],
            "history": self.history,
            "active": self.active,
            "slots": self._slots,
        }
        path = Path(path)
        tmp = path.with_name(path.name + ".tmp")
        torch.save(state, tmp)
        os.replace(tmp, path)

    def load_checkpoint(self, path: str | os.PathLike) -> None:
        """Restore a checkpoint of this same configuration and members (weights_only loading)."""
        try:
            state = torch.load(path, map_location=self.device, weights_only=True)
        except (
            pickle.UnpicklingError,
            RuntimeError,
            EOFError,
            zipfile.BadZipFile,
            OSError,
            ValueError,
        ) as err:
            raise CheckpointError(
                f"{path}: not a readable gansweep checkpoint ({type(err).__name__}: "
                f"{str(err).splitlines()[0] if str(err) else ''})"
            ) from err
        if not isinstance(state, dict) or state.get("format") != CHECKPOINT_FORMAT:
            raise CheckpointError(
                f"{path}: not a gansweep checkpoint (no {CHECKPOINT_FORMAT!r} marker)"
            )
        if state["config"] != _plain(self.cfg.to_dict()) or state["members"] != [
            asdict(m) for m in self.members
        ]:
            raise CheckpointError(
                f"{path}: checkpoint was written for another configuration or members"
            )
        self.active = list(state["active"])
        self._compact(list(state["slots"]))
        for name, net, saved in (("generator", self.G, state["generator"]),
                                 ("discriminator", self.D, state["discriminator"])):
            try:
                net.load_state_dict(saved)
            except RuntimeError as err:  # e.g. a gansweep version whose layers differ
                raise CheckpointError(
                    f"{path}: its {name} weights do not fit this model, which has other "
                    f"layers (written by another gansweep version?): {str(err).splitlines()[0]}"
                ) from err
        self.opt_g.load_state_dict(state["opt_g"])
        self.opt_d.load_state_dict(state["opt_d"])
        for gen, s in zip(self._latent_gens, state["latent_gens"], strict=False):
            gen.set_state(s.cpu() if self.device.type == "cpu" else s)
        for gen, s in zip(self._data_gens, state["data_gens"], strict=False):
            gen.set_state(s.cpu())
        self.epoch = int(state["epoch"])
        self.history = [list(h) for h in state["history"]]

    def save_artifacts(self, directory: str | os.PathLike, member: int = 0) -> dict[str, Path]:
        """Sample grid (or scatter), training-dynamics figure and gradient norms as PNG files."""
        from .plots import plot_dynamics, plot_grad_norms, save_sample_grid

        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        n = self.cfg.eval.samples_grid if self.dataset.kind == "images" else 1000
        labels = self._eval_labels(n) if self.cfg.conditional else None
        samples = self.generate(n, member, labels).cpu()
        paths = {
            "samples": save_sample_grid(
                samples, directory / "samples.png", centers=self.dataset.centers
            )
        }
        if self.history[member]:
            paths["dynamics"] = plot_dynamics(self.history[member], directory / "dynamics.png")
            paths["grad_norms"] = plot_grad_norms(
                self.history[member], directory / "grad_norms.png"
            )
        return {k: Path(v) for k, v in paths.items()}

    # ------------------------------------------------------------------ steps
    def discriminator_step(
        self, real: Tensor, labels: Tensor | None, noise_std: float = 0.0
    ) -> tuple[Tensor, dict[str, Tensor]]:
        """One D update on a real batch (M, B, ...). Returns (per-member total loss, metrics)."""
        t = self.cfg.train
        m, b = real.shape[:2]
        fake_labels = self._fake_labels(b)
        with torch.no_grad():
            fake = self.G(self._latents(b), fake_labels)
        real_in, fake_in = self._noisy(real, noise_std), self._noisy(fake, noise_std)
        real_logits, _ = self.D(real_in, labels)
        fake_logits, _ = self.D(fake_in, fake_labels)
        r, f = self.loss.d_terms(real_logits, fake_logits, t)
        total = r + f
        metrics: dict[str, Tensor] = {"loss/d_real": r, "loss/d_fake": f}
        for name, penalty in PENALTIES.items():
            weight = getattr(t, penalty.weight_field)
            if weight > 0:
                value = self._penalty(name, real_in, fake_in, labels, fake_labels)
                total = total + weight * value
                metrics[penalty.key] = value
        self.opt_d.zero_grad()
        backward(total.sum())
        metrics.update(self._grad_norms("d"))
        self.opt_d.step()
        if t.clip_threshold is not None:
            clip_weights(self.opt_d.params, t.clip_threshold)
        with torch.no_grad():
            out_real, out_fake = self.loss.outputs(real_logits), self.loss.outputs(fake_logits)
            self._threshold = self.loss.threshold(real_logits, fake_logits, t).detach()
            th = self._output_threshold()
            metrics.update(
                {
                    "loss/d_total": total.detach(),
                    "loss/w_dist": real_logits.mean(-1) - fake_logits.mean(-1),
                    "d/real": out_real.mean(-1),
                    "d/fake": out_fake.mean(-1),
                    "d/fake_batch_std": out_fake.std(-1),
                    "d/accuracy": 0.5
                    * ((out_real > th).float().mean(-1) + (out_fake < th).float().mean(-1)),
                }
            )
        return total.detach(), metrics

    def generator_step(
        self, real: Tensor, labels: Tensor | None, noise_std: float = 0.0
    ) -> tuple[Tensor, dict[str, Tensor]]:
        """One G update. `real` is used only by feature matching.

        Instance noise reaches D's inputs here too: G trains against the noise-convolved D
        that the D step trained (Sonderby et al. 2016).

        Returns (per-member loss, metrics).
        """
        t = self.cfg.train
        b = real.shape[1]
        fake_labels = self._fake_labels(b)
        fake = self.G(self._latents(b), fake_labels)
        logits, fake_features = self.D(self._noisy(fake, noise_std), fake_labels)
        g_loss = self.loss.g(logits, t)
        total = g_loss
        if t.feature_matching_weight > 0:
            with torch.no_grad():
                _, real_features = self.D(self._noisy(real, noise_std), labels)
            total = total + t.feature_matching_weight * feature_matching(
                real_features, fake_features
            )
        # Differentiate with respect to G only: D's gradients from G's loss are never computed.
        self.opt_g.zero_grad()
        backward(total.sum(), self.opt_g.params)
        metrics = self._grad_norms("g")
        self.opt_g.step()
        with torch.no_grad():
            out_fake = self.loss.outputs(logits)
            fooled = (out_fake > self._output_threshold()).float().mean(-1)
        # d/fake_g: Artifex's d_fake_g, D's output on the fakes G was just trained against.
        metrics.update(
            {"loss/g": g_loss.detach(), "g/accuracy": fooled, "d/fake_g": out_fake.mean(-1)}
        )
        return total.detach(), metrics

    # ------------------------------------------------------------------ internals
    def _train_epoch(self) -> dict[str, Tensor]:
        t = self.cfg.train
        noise = instance_noise_std(t.instance_noise, t.instance_noise_epochs, self.epoch + 1)
        d_steps = self.steps_per_epoch * t.n_critic
        order = None if self.dataset.fresh else self._epoch_order(d_steps)
        # Each step's metrics as one (K, M) row; averaged once at the end of the epoch.
        rows: dict[tuple[str, ...], list[Tensor]] = {}
        for step in range(self.steps_per_epoch):
            for k in range(t.n_critic):
                real, labels = self._real_batch(order, step * t.n_critic + k)
                _, d_metrics = self.discriminator_step(real, labels, noise)
                _accumulate(rows, d_metrics)
            _, g_metrics = self.generator_step(real, labels, noise)
            _accumulate(rows, g_metrics)
        sums: dict[str, Tensor] = {}
        with torch.no_grad():
            for keys, steps in rows.items():
                table = torch.stack(steps)  # (steps, K, M)
                sums.update(zip(keys, table.mean(dim=0).unbind(0), strict=True))
                if "loss/d_real" in keys:
                    real_fake = table[:, [keys.index("loss/d_real"), keys.index("loss/d_fake")]]
                    d_loss = 0.5 * (real_fake[:, 0] + real_fake[:, 1])
                    sums["stability/loss_var"] = d_loss.var(dim=0, correction=0)
        return sums

    def _records(self, stats: dict[str, Tensor], seconds: float) -> dict[int, dict[str, float]]:
        t = self.cfg.train
        stats["loss/d"] = 0.5 * (stats["loss/d_real"] + stats["loss/d_fake"])
        stats["stability/dg_ratio"] = stats["loss/d"].abs() / stats["loss/g"].abs()
        stats.update(_weight_stats("d", self.opt_d.params))
        stats.update(_weight_stats("g", self.opt_g.params))
        if t.clip_threshold is not None:
            stats["weights/clip_pct"] = 100.0 * clip_fraction(self.opt_d.params, t.clip_threshold)
        keys = list(stats)
        table = (
            torch.stack([stats[k].detach().float() for k in keys]).cpu().tolist()
        )  # one sync per epoch
        records = {}
        for pos, i in enumerate(self._slots):
            if not self.active[i]:
                continue
            record = {"epoch": float(self.epoch), "step": float(self.epoch * self.steps_per_epoch)}
            record.update({k: row[pos] for k, row in zip(keys, table, strict=True)})
            record["time/epoch_s"] = seconds
            records[i] = record
        if self._is_eval_epoch():
            for i, record in records.items():
                if not divergence(record, self.cfg.monitor):
                    start = time.perf_counter()
                    record.update(self._quality(i))
                    record["time/eval_s"] = time.perf_counter() - start
        return records

    def _is_eval_epoch(self) -> bool:
        every = self.cfg.eval.every
        return self.epoch == self.cfg.train.epochs or (every > 0 and self.epoch % every == 0)

    def _quality(self, member: int) -> dict[str, float]:
        if self._evaluator is None:
            from .quality import QualityEvaluator

            self._evaluator = QualityEvaluator(
                self.dataset, self.cfg.eval.feature_extractor, self.cfg.eval.n_samples, self.device
            )
        n = self.cfg.eval.n_samples
        labels = self._eval_labels(n) if self.cfg.conditional else None
        return self._evaluator(self.generate(n, member, labels))

    def _generate_from(self, z: Tensor, member: int, labels: Tensor | None) -> Tensor:
        if member not in self._slots:
            raise ValueError(
                f"member {member} left the pack after it stopped; generate before the next epoch"
            )
        m = len(self._slots)
        zs = z.unsqueeze(0).expand(m, -1, -1).contiguous()
        ys = (
            None
            if labels is None
            else labels.to(self.device).unsqueeze(0).expand(m, -1).contiguous()
        )
        was_training = self.G.training
        self.G.eval()
        try:
            return self.G(zs, ys)[self._slots.index(member)]
        finally:
            self.G.train(was_training)

    def _compact(self, keep: list[int] | None = None) -> None:
        """Drop stopped members from every member-axis tensor: the pack computes only live runs."""
        keep = [i for i in self._slots if self.active[i]] if keep is None else keep
        if keep == self._slots or not keep:
            return
        positions = torch.tensor([self._slots.index(i) for i in keep], device=self.device)
        for module in (*self.G.modules(), *self.D.modules()):
            for name, param in module._parameters.items():
                if param is not None:
                    module._parameters[name] = torch.nn.Parameter(param.detach()[positions].clone())
            for name, buffer in module._buffers.items():
                if buffer is not None:
                    module._buffers[name] = buffer[positions].clone()
            if hasattr(module, "members"):
                module.members = len(keep)
        pos_list = positions.tolist()
        self._latent_gens = [self._latent_gens[p] for p in pos_list]
        self._data_gens = [self._data_gens[p] for p in pos_list]
        for module in (*self.G.modules(), *self.D.modules()):
            if isinstance(module, MemberDropout):
                module.gens = self._latent_gens
        self.opt_g.select(positions, list(self.G.parameters()))
        self.opt_d.select(positions, list(self.D.parameters()))
        self._layers = {"g": _layer_params(self.G), "d": _layer_params(self.D)}
        self._slots = list(keep)

    def _apply_lr_schedule(self) -> None:
        """Set each member's learning rates for the coming epoch (MultiStepLR semantics)."""
        t = self.cfg.train
        factor = t.lr_gamma ** sum(m <= self.epoch for m in t.lr_milestones)
        positions = torch.tensor(self._slots, device=self.opt_g.lr.device)
        self.opt_g.lr = self._base_lr["g"][positions] * factor
        self.opt_d.lr = self._base_lr["d"][positions] * factor

    def _eval_labels(self, n: int) -> Tensor:
        return torch.arange(n, device=self.device) % self.dataset.num_classes

    def _steps_per_epoch(self) -> int:
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

    def _epoch_order(self, batches: int) -> Tensor:
        """(M, batches, B) sample indices: each member shuffles with its own data generator."""
        n, b = len(self._x), self.cfg.train.batch_size
        need = batches * b
        orders = []
        for gen in self._data_gens:
            perms = [torch.randperm(n, generator=gen) for _ in range(-(-need // n))]
            orders.append(torch.cat(perms)[:need].view(batches, b))
        return torch.stack(orders).to(self.device)

    def _real_batch(self, order: Tensor | None, index: int) -> tuple[Tensor, Tensor | None]:
        if order is None:
            draws = [self.dataset.sample(self.cfg.train.batch_size, g) for g in self._data_gens]
            x = torch.stack([d[0] for d in draws]).to(self.device)
            y = torch.stack([d[1] for d in draws]).to(self.device) if self.cfg.conditional else None
            return x, y
        idx = order[:, index]
        y = self._y[idx] if self.cfg.conditional else None
        return self._x[idx], y

    def _latents(self, b: int) -> Tensor:
        return member_randn(self._latent_gens, (b, self.cfg.generator.latent_dim), self.device)

    def _fake_labels(self, b: int) -> Tensor | None:
        if not self.cfg.conditional:
            return None
        u = member_rand(self._latent_gens, (b,), self.device)
        return (u * self.dataset.num_classes).long().clamp_(max=self.dataset.num_classes - 1)

    def _noisy(self, x: Tensor, std: float) -> Tensor:
        return (
            x if std <= 0 else x + std * member_randn(self._latent_gens, x.shape[1:], self.device)
        )

    def _penalty(
        self,
        name: str,
        real: Tensor,
        fake: Tensor,
        labels: Tensor | None,
        fake_labels: Tensor | None,
    ) -> Tensor:
        if name == "gp":
            eps = member_rand(self._latent_gens, real.shape[1:2], self.device)
            # Interpolates take the real sample's label (cGAN-GP convention).
            return gradient_penalty(
                lambda x: self.D(x, labels)[0], real, fake, eps, self.cfg.train.gp_target
            )
        return r1_penalty(lambda x: self.D(x, labels)[0], real)

    def _output_threshold(self) -> Tensor:
        """The last D step's decision boundary in output space, shaped (M, 1) for broadcasting."""
        return self._threshold.unsqueeze(-1)

    def _grad_norms(self, net: str) -> dict[str, Tensor]:
        """Per-layer and total gradient norms per member, as (M,) tensors (no host sync)."""
        opt = self.opt_d if net == "d" else self.opt_g
        layers = [
            (name, params)
            for name, params in self._layers[net].items()
            if any(p.grad is not None for p in params)
        ]
        if not layers:
            return {}
        norms = opt.grad_norms([params for _, params in layers])
        out = {
            f"grad/{net}/{name}": norm
            for (name, _), norm in zip(layers, norms, strict=True)
        }
        out[f"grad/{net}_norm"] = torch.linalg.vector_norm(torch.stack(norms), dim=0)
        return out


def _layer_params(model: torch.nn.Module) -> dict[str, list[Tensor]]:
    """Trainable parameters grouped by the module that owns them (e.g. 'body.0')."""
    layers: dict[str, list[Tensor]] = {}
    for name, p in model.named_parameters():
        layers.setdefault(name.rsplit(".", 1)[0], []).append(p)
    return layers


def _accumulate(rows: dict[tuple[str, ...], list[Tensor]], metrics: dict[str, Tensor]) -> None:
    """Append one step's metrics, stacked into one (K, M) tensor, under their key tuple."""
    with torch.no_grad():
        rows.setdefault(tuple(metrics), []).append(torch.stack(list(metrics.values())))


@torch.no_grad()
def _weight_stats(net: str, params: list[Tensor]) -> dict[str, Tensor]:
    flat = torch.cat([p.flatten(1) for p in params], dim=1)
    return {
        f"weights/{net}_mean": flat.mean(1),
        f"weights/{net}_std": flat.std(1),
        f"weights/{net}_abs_mean": flat.abs().mean(1),
    }


def _plain(value: Any) -> Any:
    """Tuples -> lists, so configs compare equal after a checkpoint round trip."""
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value
