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
from .families import Streams, get_family
from .layers import MemberDropout
from .monitor import RunSummary, Verdict, assess, divergence, health_line, summarize, verdict
from .optim import MemberOptimizer, backward
from .regularizers import clip_fraction, clip_weights, instance_noise_std
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
    """Trains one GAN family's generator and discriminator sides for one or more members.

    The family (cfg.family, docs/families.md) supplies networks, step objectives, data,
    evaluation and figures; this loop, the optimizers, packing, seeding, checkpoints and
    records are the same for every family.

    Args:
        cfg: the validated run configuration.
        members: the runs to train together; default one member with cfg's seeds.
        dataset: already loaded data in the family's layout (default: the family loads cfg.data).
    Raises:
        ConfigError: the configuration does not fit the data (before any training).
    """

    def __init__(
        self,
        cfg: RunConfig,
        members: Sequence[Member] | None = None,
        dataset: Any = None,
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
        family_cls = get_family(cfg.family)
        self.dataset = dataset if dataset is not None else family_cls.load_data(cfg)
        weight_gens = [make_generator(m.init_seed, WEIGHTS) for m in self.members]
        self.streams = Streams(
            latent=[make_generator(m.init_seed, LATENTS, self.device) for m in self.members],
            data=[make_generator(m.data_seed, DATA) for m in self.members],
        )
        self.family = family_cls(cfg, self.dataset, weight_gens, self.streams, self.device)
        self.steps_per_epoch = self.family.steps_per_epoch()
        for net in self.family.networks.values():
            net.to(self.device)
        self._share_dropout_streams()
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
        self._layers = {"g": _layer_params(self.G), "d": _layer_params(self.D)}
        self.epoch = 0
        self.history: list[list[dict[str, float]]] = [[] for _ in self.members]
        self.active = [True] * len(self.members)
        # member index of each position on the member axis
        self._slots = list(range(len(self.members)))

    @property
    def G(self) -> torch.nn.Module:
        """The generator side (for CycleGAN: both generators)."""
        return self.family.networks["generator"]

    @property
    def D(self) -> torch.nn.Module:
        """The discriminator side (for CycleGAN: both discriminators)."""
        return self.family.networks["discriminator"]

    # ------------------------------------------------------------------ public API
    def epochs(self) -> Iterator[dict[int, dict[str, float]]]:
        """Train to cfg.train.epochs, yielding {member index: record} after each epoch."""
        while self.epoch < self.cfg.train.epochs and any(self.active):
            self._compact()
            self._apply_lr_schedule()
            self.family.begin_epoch(self.epoch)
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
        return self.cfg.monitor, self.cfg.train.loss, self.family.n_modes

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

    def generate(
        self,
        n: int,
        member: int = 0,
        labels: Tensor | None = None,
        generator: torch.Generator | None = None,
    ) -> Tensor:
        """n samples of one member, with the networks in evaluation mode.

        In evaluation mode batch norm uses running statistics.
        """
        gen = generator or self._eval_generator(member)
        return self.family.generate(n, self._position(member), labels, gen)

    def interpolate(
        self, z0: Tensor, z1: Tensor, steps: int, member: int = 0, labels: Tensor | None = None
    ) -> Tensor:
        """Samples along the straight line from latent z0 to z1 (steps points, ends included)."""
        return self.family.interpolate(z0, z1, steps, self._position(member), labels)

    def save_checkpoint(self, path: str | os.PathLike) -> None:
        """Everything needed to resume exactly: networks, optimizers, RNG states, epoch, history."""
        state = {
            "format": CHECKPOINT_FORMAT,
            "config": _plain(self.cfg.to_dict()),
            "members": [asdict(m) for m in self.members],
            "epoch": self.epoch,
            **{name: net.state_dict() for name, net in self.family.networks.items()},
            "opt_g": self.opt_g.state_dict(),
            "opt_d": self.opt_d.state_dict(),
            "latent_gens": [g.get_state() for g in self.streams.latent],
            "data_gens": [g.get_state() for g in self.streams.data],
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
        state = _read_checkpoint(path, self.device)
        if state["config"] != _plain(self.cfg.to_dict()) or state["members"] != [
            asdict(m) for m in self.members
        ]:
            raise CheckpointError(
                f"{path}: checkpoint was written for another configuration or members"
            )
        self.active = list(state["active"])
        self._compact(list(state["slots"]))
        for name, net in self.family.networks.items():
            try:
                net.load_state_dict(state[name])
            except (RuntimeError, KeyError) as err:  # e.g. a gansweep version whose layers differ
                raise CheckpointError(
                    f"{path}: its {name} weights do not fit this model, which has other "
                    f"layers (written by another gansweep version?): {str(err).splitlines()[0]}"
                ) from err
        self.opt_g.load_state_dict(state["opt_g"])
        self.opt_d.load_state_dict(state["opt_d"])
        for gen, s in zip(self.streams.latent, state["latent_gens"], strict=False):
            gen.set_state(s.cpu() if self.device.type == "cpu" else s)
        for gen, s in zip(self.streams.data, state["data_gens"], strict=False):
            gen.set_state(s.cpu())
        self.epoch = int(state["epoch"])
        self.history = [list(h) for h in state["history"]]

    def save_artifacts(self, directory: str | os.PathLike, member: int = 0) -> dict[str, Path]:
        """The family's sample figures, training-dynamics figure and gradient norms as PNGs."""
        from .plots import plot_dynamics, plot_grad_norms

        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        paths = self.family.figures(directory, self._position(member), self._eval_generator(member))
        if self.history[member]:
            paths["dynamics"] = plot_dynamics(self.history[member], directory / "dynamics.png")
            paths["grad_norms"] = plot_grad_norms(
                self.history[member], directory / "grad_norms.png"
            )
        return {k: Path(v) for k, v in paths.items()}

    # ------------------------------------------------------------------ steps
    def discriminator_step(
        self, real: Any, labels: Tensor | None = None, noise_std: float = 0.0
    ) -> tuple[Tensor, dict[str, Tensor]]:
        """One D update. Returns (per-member total loss, metrics).

        Args:
            real: the family's real batch: (M, B, ...) samples (gan), or a pair of domain
                batches (a, b) (cyclegan).
            labels: class labels of `real` (conditional gan), else None.
            noise_std: instance noise on D's inputs.
        """
        total, metrics = self.family.d_objective((real, labels), noise_std)
        self.opt_d.zero_grad()
        backward(total.sum())
        metrics.update(self._grad_norms("d"))
        self.opt_d.step()
        if self.cfg.train.clip_threshold is not None:
            clip_weights(self.opt_d.params, self.cfg.train.clip_threshold)
        return total.detach(), metrics

    def generator_step(
        self, real: Any, labels: Tensor | None = None, noise_std: float = 0.0
    ) -> tuple[Tensor, dict[str, Tensor]]:
        """One G update on the batch of the last D step (arguments as `discriminator_step`).

        Returns (per-member loss, metrics).
        """
        total, metrics = self.family.g_objective((real, labels), noise_std)
        # Differentiate with respect to G only: D's gradients from G's loss are never computed.
        self.opt_g.zero_grad()
        backward(total.sum(), self.opt_g.params)
        metrics = {**self._grad_norms("g"), **metrics}
        self.opt_g.step()
        return total.detach(), metrics

    # ------------------------------------------------------------------ internals
    def _train_epoch(self) -> dict[str, Tensor]:
        t = self.cfg.train
        noise = instance_noise_std(t.instance_noise, t.instance_noise_epochs, self.epoch + 1)
        batches = self.family.sampler(self.steps_per_epoch * t.n_critic)
        # Each step's metrics as one (K, M) row; averaged once at the end of the epoch.
        rows: dict[tuple[str, ...], list[Tensor]] = {}
        for step in range(self.steps_per_epoch):
            for k in range(t.n_critic):
                real, labels = batches(step * t.n_critic + k)
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
        return self.family.evaluate(self._position(member), self._eval_generator(member))

    def _position(self, member: int) -> int:
        if member not in self._slots:
            raise ValueError(
                f"member {member} left the pack after it stopped; generate before the next epoch"
            )
        return self._slots.index(member)

    def _eval_generator(self, member: int) -> torch.Generator:
        """A fresh EVAL stream: every evaluation of a member sees the same latents."""
        return make_generator(self.members[member].init_seed, EVAL, self.device)

    def _share_dropout_streams(self) -> None:
        for net in self.family.networks.values():
            for module in net.modules():
                if isinstance(module, MemberDropout):
                    module.gens = self.streams.latent

    def _compact(self, keep: list[int] | None = None) -> None:
        """Drop stopped members from every member-axis tensor: the pack computes only live runs."""
        keep = [i for i in self._slots if self.active[i]] if keep is None else keep
        if keep == self._slots or not keep:
            return
        positions = torch.tensor([self._slots.index(i) for i in keep], device=self.device)
        for net in self.family.networks.values():
            for module in net.modules():
                for name, param in module._parameters.items():
                    if param is not None:
                        module._parameters[name] = torch.nn.Parameter(
                            param.detach()[positions].clone()
                        )
                for name, buffer in module._buffers.items():
                    if buffer is not None:
                        module._buffers[name] = buffer[positions].clone()
                if hasattr(module, "members"):
                    module.members = len(keep)
        pos_list = positions.tolist()
        self.streams.latent = [self.streams.latent[p] for p in pos_list]
        self.streams.data = [self.streams.data[p] for p in pos_list]
        self._share_dropout_streams()
        self.opt_g.select(positions, list(self.G.parameters()))
        self.opt_d.select(positions, list(self.D.parameters()))
        self._layers = {"g": _layer_params(self.G), "d": _layer_params(self.D)}
        self._slots = list(keep)

    def _apply_lr_schedule(self) -> None:
        """Set each member's learning rates for the coming epoch (MultiStepLR semantics).

        The family may scale them further (CycleGAN's linear decay); its factor is 1 otherwise.
        """
        t = self.cfg.train
        factor = t.lr_gamma ** sum(m <= self.epoch for m in t.lr_milestones)
        factor *= self.family.lr_factor(self.epoch)
        positions = torch.tensor(self._slots, device=self.opt_g.lr.device)
        self.opt_g.lr = self._base_lr["g"][positions] * factor
        self.opt_d.lr = self._base_lr["d"][positions] * factor

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
        out = {f"grad/{net}/{name}": norm for (name, _), norm in zip(layers, norms, strict=True)}
        out[f"grad/{net}_norm"] = torch.linalg.vector_norm(torch.stack(norms), dim=0)
        return out


def _read_checkpoint(path: str | os.PathLike, device: torch.device) -> dict[str, Any]:
    try:
        state = torch.load(path, map_location=device, weights_only=True)
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
    return state


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
