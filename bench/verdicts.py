"""Labelled verdict benchmark: how often gan_core's monitor names the right verdict, and when.

Two kinds of labelled cases, each with the reason it has its label:

* Real runs (`REAL_CASES`): gan_core trains configurations chosen because they produce a known
  outcome (healthy runs of every loss family, a frozen G against a learning D, a saturating
  loss whose gradient dies, generators that collapse, learning rates that jump 1,000-fold at a
  known epoch, runs too short to be precise). After training, an independent check on the run
  itself (fresh samples from latents the evaluation never used, its gradients, its losses)
  confirms that it did what it was designed to do; a run whose check fails is reported and
  not scored, since its label would be a guess. Their metric histories are stored in
  ``bench/verdict_histories.json.gz`` so that judging them takes seconds; ``--train`` trains
  them again (about 10 minutes on 2 cores) and rewrites the file.
* Sequence runs (`SEQUENCE_CASES`, family sequence): the same kind of real runs on the
  Markov-chain and code sets, checked on fresh samples' n-gram statistics and stored apart in
  ``bench/verdict_sequence.json.gz`` (``--train-sequence`` trains them again, ~3 minutes).
* Synthetic histories (`synthetic_cases`): a real healthy history of each loss family with a
  failure injected at a known epoch (D dominance, vanishing gradients, divergence that grows,
  NaN, absurd weights, non-finite samples), and healthy dynamics whose evaluations are the real
  `QualityEvaluator` on constructed samples (blobs, arcs, a blurry ring, one class of digits,
  noise, ...). Their onsets are known by construction.

Prints a line per misjudged case, a confusion matrix, per-group accuracy (mixtures, images,
sequences and every loss family), then ``verdict_accuracy=``, ``onset_within_one_eval=``
(share of cases with a labelled onset whose verdict onset is within one evaluation interval of it),
``healthy_judged_failed=`` and ``unconfirmed_runs=``; writes bench/verdicts.json.

    python bench/verdicts.py                    # judge stored histories + synthetic cases (~20 s)
    python bench/verdicts.py --train            # train the real runs again (~10 min, 2 cores)
    python bench/verdicts.py --train --cases ring-too-short   # retrain some, keep the rest
    python bench/verdicts.py --holdout          # real runs of seeds 3-5, never used for tuning

Target (issue 12): accuracy >= 0.95 on each of mixtures, images and every loss family, and no
healthy run judged a failure.
"""

from __future__ import annotations

import argparse
import copy
import gzip
import json
import math
import sys
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

import torch  # noqa: E402

from gan_core import Member, RunConfig, Trainer  # noqa: E402
from gan_core.config import LOSS_TYPES, DataConfig, MonitorConfig  # noqa: E402
from gan_core.data import Dataset, load_dataset  # noqa: E402
from gan_core.monitor import STATUSES, verdict  # noqa: E402
from gan_core.quality import QualityEvaluator, mode_coverage  # noqa: E402

FIXTURE = HERE / "verdict_histories.json.gz"
FIXTURE_VERSION = 1
SEEDS = (0, 1, 2)
# Seeds never looked at while the rules and thresholds were set: their accuracy is the
# honest estimate (`--holdout`).
HOLDOUT = HERE / "verdict_holdout.json.gz"
HOLDOUT_SEEDS = (3, 4, 5)

History = list[dict[str, Any]]

# ------------------------------------------------------------------------ real runs
RING = {
    "data": {"name": "ring", "n_points": 20000},
    "train": {"steps_per_epoch": 100, "epochs": 20, "batch_size": 256, "g_lr": 1e-3, "d_lr": 5e-3},
    "eval": {"every": 2},
}
# Healthy on the ring: D ahead of G (d_lr 5x g_lr), 30 epochs, both rates x0.2 after epoch 20
# to sharpen the modes. Measured 2026-12-02: 15 of 15 runs (5 losses x seeds 0-2) stable.
HEALTHY = {"train": {"epochs": 30, "lr_milestones": [20], "lr_gamma": 0.2}, "eval": {"every": 3}}
WGAN_GP = {"loss_type": "wasserstein", "gp_weight": 1.0, "n_critic": 2, "steps_per_epoch": 50,
           "g_betas": [0.5, 0.9], "d_betas": [0.5, 0.9]}
# Learning rates x1,000 after epoch 8 (lr_milestones: epochs 9.. run at 1 and 5): Adam moves
# every weight by ~1 per step, losses overflow within epoch 9. The onset is epoch 9 by design.
JUMP = {"lr_milestones": [8], "lr_gamma": 1000.0}
DIGITS = {
    "data": {"name": "digits"},
    "generator": {"arch": "dcgan", "latent_dim": 32, "base_channels": 32},
    "discriminator": {"arch": "dcgan", "base_channels": 32},
    "train": {"loss_type": "non_saturating", "batch_size": 64, "epochs": 20,
              "g_lr": 1e-3, "d_lr": 1e-3},
    "eval": {"every": 4, "n_samples": 1000},
}
GRID_BLURRED = {  # tests/gan_core/test_verdicts_real.py measured it: spread, 1-2% on a mode
    "data": {"name": "grid", "n_points": 50000},
    "generator": {"hidden_dims": [128, 128, 128]},
    "discriminator": {"hidden_dims": [128, 128, 128]},
    "train": {"loss_type": "wasserstein", "gp_weight": 10.0, "n_critic": 2,
              "g_betas": [0.5, 0.9], "d_betas": [0.5, 0.9], "batch_size": 256,
              "g_lr": 5e-4, "d_lr": 5e-4, "epochs": 10, "steps_per_epoch": 100},
    "eval": {"every": 2},
}


@dataclass(frozen=True)
class RealCase:
    """A configuration trained for its known outcome.

    Attributes:
        name: unique id.
        base: the data set's base config (RING, DIGITS, GRID_BLURRED).
        spec: overrides of `base`.
        label: the verdict the design produces.
        check: name of the independent check in `CHECKS` that confirms it on the trained run.
        why: the mechanism, in one sentence.
        onset: the failure's first epoch where the design fixes it; None: not scored.
    """

    name: str
    base: dict[str, Any]
    spec: dict[str, Any]
    label: str
    check: str
    why: str
    onset: int | None = None


def _merge(a: dict[str, Any], b: dict[str, Any]) -> dict[str, Any]:
    out = copy.deepcopy(a)
    for k, v in b.items():
        out[k] = _merge(out.get(k, {}), v) if isinstance(v, dict) else v
    return out


def _loss(name: str, **train: Any) -> dict[str, Any]:
    return {"train": {"loss_type": name, **train}}


REAL_CASES = (
    *(
        RealCase(f"ring-healthy-{loss}", RING, _merge(HEALTHY, _loss(loss, **extra)), "stable",
                 "stable_mixture", "D a little ahead of G, sharpened by a late LR decay")
        for loss, extra in (("non_saturating", {}), ("hinge", {}), ("least_squares", {}),
                            ("minimax", {}), ("wasserstein", WGAN_GP))
    ),
    *(
        RealCase(f"ring-frozen-g-{loss}", RING, _loss(loss, **{**extra, "g_lr": 1e-7}),
                 "d_dominance", "dominance",
                 "G's LR is 1e-7: D learns to separate every sample from epoch 1, G never "
                 "moves, and these losses keep G's gradient alive", onset=1)
        for loss, extra in (("non_saturating", {}), ("hinge", {}), ("least_squares", {}),
                            ("wasserstein", WGAN_GP))
    ),
    RealCase("ring-saturated-minimax", RING,
             {"train": {"loss_type": "minimax", "g_lr": 1e-7, "d_lr": 2e-2, "epochs": 30},
              "eval": {"every": 3}},
             "vanishing_gradients", "vanishing",
             "the saturating loss log(1 - D(G(z))) against a D at lr 2e-2 whose fakes score ~0: "
             "G's gradient falls 1000x within 30 epochs (20 were not enough for every seed)"),
    RealCase("ring-slow-g-collapse", RING, _loss("non_saturating", g_lr=2e-5),
             "mode_collapse", "collapse_mixture",
             "G at 2e-5 against D at 5e-3: D's gradient pulls every sample to the nearest mode"),
    RealCase("ring-bottleneck-collapse", RING,
             {"generator": {"hidden_dims": [2]}, "train": {"g_lr": 1e-3, "d_lr": 1e-3}},
             "mode_collapse", "collapse_mixture",
             "a 2-unit G maps the latent plane onto a point and a few rays (see "
             "tests/gan_core/test_verdicts_real.py)"),
    RealCase("ring-fast-g-partial-collapse", RING, _loss("non_saturating", g_lr=5e-3,
                                                          d_lr=1e-3),
             "mode_collapse", "collapse_mixture",
             "G 5x faster than D chases D's current favourite region: its samples bunch, "
             "blurred, over one or two modes"),
    *(
        RealCase(f"ring-lr-jump-{loss}", RING, _loss(loss, **{**extra, **JUMP}), "diverged",
                 "diverged", "learning rates x1,000 after epoch 8", onset=9)
        for loss, extra in (("non_saturating", {}), ("hinge", {}), ("least_squares", {}),
                            ("minimax", {}), ("wasserstein", WGAN_GP))
    ),
    RealCase("ring-lr-jump-30x", RING, _loss("non_saturating", lr_milestones=[8],
                                             lr_gamma=30.0),
             "diverged", "diverged",
             "learning rates x30 after epoch 8: losses reach 1e3-1e5, finite but absurd", onset=9),
    RealCase("ring-too-short", RING, _loss("non_saturating", epochs=6), "poor_quality",
             "poor_mixture", "6 epochs: G has spread over the ring but not onto its modes"),
    RealCase("grid-wgan-gp-blurred", GRID_BLURRED, {}, "poor_quality", "poor_mixture",
             "10 epochs of WGAN-GP: spread over the grid, 1-2% of samples on a mode"),
    RealCase("digits-healthy-ns", DIGITS, {}, "stable", "stable_image",
             "DCGAN on 8x8 digits at 1e-3"),
    RealCase("digits-healthy-ls", DIGITS, _loss("least_squares"), "stable", "stable_image",
             "DCGAN on 8x8 digits at 1e-3, least squares"),
    RealCase("digits-untrained", DIGITS, _loss("non_saturating", g_lr=1e-8, d_lr=1e-8),
             "poor_quality", "poor_image",
             "both LRs 1e-8: G's output stays the grey pattern of its initialisation, "
             "farther from the data than noise"),
    RealCase("digits-frozen-g", DIGITS, _loss("non_saturating", g_lr=1e-8), "d_dominance",
             "dominance", "G frozen at initialisation, D learns to reject it", onset=1),
    RealCase("digits-bottleneck-collapse", DIGITS,
             {"generator": {"arch": "mlp", "hidden_dims": [2], "latent_dim": 2}},
             "mode_collapse", "collapse_image",
             "an MLP G through 2 ReLUs draws a 2-D sheet of images: a few digit classes"),
    RealCase("digits-lr-jump", DIGITS, _loss("non_saturating", **JUMP), "diverged", "diverged",
             "learning rates x1,000 after epoch 8", onset=9),
)


# ------------------------------------------------------------------------ independent checks
@dataclass
class _Trained:
    trainer: Trainer
    member: int
    evaluator: QualityEvaluator

    @property
    def history(self) -> History:
        return self.trainer.history[self.member]

    def fresh(self) -> dict[str, float]:
        """Metrics of 2,500 samples from latents the evaluation never used."""
        gen = torch.Generator(device=self.trainer.device).manual_seed(10_000 + self.member)
        samples = self.trainer.generate(2500, member=self.member, generator=gen)
        out = self.evaluator(samples)
        ds = self.trainer.dataset
        if ds.centers is not None:
            out["reached"], out["near"] = mode_coverage(samples, ds.centers)
        return out


def _check_stable_mixture(t: _Trained) -> tuple[bool, str]:
    q, k = t.fresh(), len(t.trainer.dataset.centers)
    ok = q["quality/modes"] == k and q["quality/hq_fraction"] >= 0.5
    hq = q["quality/hq_fraction"]
    return ok, f"fresh samples: {q['quality/modes']:.0f}/{k} modes, hq {hq:.2f}"


def _check_collapse_mixture(t: _Trained) -> tuple[bool, str]:
    q, k = t.fresh(), len(t.trainer.dataset.centers)
    bunched = q["reached"] <= k / 2 and q["near"] >= 0.5 and q["diversity/ratio"] < 0.5
    on_few = q["quality/modes"] <= k / 2 and q["quality/hq_fraction"] >= 0.5
    ok = bunched or on_few or q["diversity/ratio"] < 0.01
    return ok, (f"fresh samples reach {q['reached']}/{k} modes, {q['near']:.2f} near a mode, "
                f"spread {q['diversity/ratio']:.2f} of the data's")


def _check_poor_mixture(t: _Trained) -> tuple[bool, str]:
    """Few samples on a mode, but not bunched: spread over the support like the data."""
    q, k = t.fresh(), len(t.trainer.dataset.centers)
    spread = q["reached"] > k / 2 or q["diversity/ratio"] >= 0.5
    ok = q["quality/hq_fraction"] < 0.5 and spread
    return ok, (f"fresh samples: hq {q['quality/hq_fraction']:.2f}, reach {q['reached']}/{k} "
                f"modes, spread {q['diversity/ratio']:.2f} of the data's")


def _check_stable_image(t: _Trained) -> tuple[bool, str]:
    q = t.fresh()
    ok = q["quality/fid_rel"] < 0.3 and q["quality/class_coverage"] >= 0.9
    return ok, (f"fresh samples: relative FID {q['quality/fid_rel']:.2f}, classes "
                f"{q['quality/class_coverage']:.1f}")


def _check_collapse_image(t: _Trained) -> tuple[bool, str]:
    q = t.fresh()
    ok = q["quality/class_coverage"] <= 0.5 and q["quality/fid_rel"] < 0.8
    return ok, (f"fresh samples: classes {q['quality/class_coverage']:.1f}, relative FID "
                f"{q['quality/fid_rel']:.2f}")


def _check_poor_image(t: _Trained) -> tuple[bool, str]:
    q = t.fresh()
    return q["quality/fid_rel"] > 0.8, f"fresh samples: relative FID {q['quality/fid_rel']:.2f}"


def _check_dominance(t: _Trained) -> tuple[bool, str]:
    last, first = t.history[-1], t.history[0]
    moved = abs(last["weights/g_abs_mean"] / first["weights/g_abs_mean"] - 1)
    ok = last["d/accuracy"] >= 0.95 and moved < 0.01
    return ok, f"D accuracy {last['d/accuracy']:.3f} at the end, G's weights moved {moved:.1%}"


def _check_vanishing(t: _Trained) -> tuple[bool, str]:
    g = [r["grad/g_norm"] for r in t.history]
    early, late = max(g[:5]), sorted(g[-5:])[2]
    return late <= 1e-3 * early, f"G gradient: early peak {early:.2g}, last 5 median {late:.2g}"


def _check_diverged(t: _Trained) -> tuple[bool, str]:
    worst = max(
        abs(r.get(k, 0.0)) if math.isfinite(r.get(k, 0.0)) else math.inf
        for r in t.history for k in ("loss/d", "loss/g", "weights/g_abs_mean")
    )
    return worst > 1e3, f"largest |loss| or mean |weight|: {worst:.3g}"


CHECKS: dict[str, Callable[[_Trained], tuple[bool, str]]] = {
    "stable_mixture": _check_stable_mixture,
    "collapse_mixture": _check_collapse_mixture,
    "poor_mixture": _check_poor_mixture,
    "stable_image": _check_stable_image,
    "collapse_image": _check_collapse_image,
    "poor_image": _check_poor_image,
    "dominance": _check_dominance,
    "vanishing": _check_vanishing,
    "diverged": _check_diverged,
}

# Per-layer gradient norms and timings are not read by the monitor; the monitor's own
# per-epoch keys are recomputed from the rest.
_DROPPED = ("grad/g/", "grad/d/", "time/", "monitor/")


def train_real_cases(
    names: set[str] | None = None, seeds: tuple[int, ...] = SEEDS
) -> list[dict[str, Any]]:
    """Train the real cases (all, or those named), a pack of `seeds` each on one thread."""
    torch.set_num_threads(1)
    rows = []
    for case in REAL_CASES:
        if names is not None and case.name not in names:
            continue
        start = time.perf_counter()
        cfg = RunConfig.from_dict(_merge(case.base, case.spec))
        trainer = Trainer(cfg, members=[Member(s, s) for s in seeds])
        for _ in trainer.epochs():
            pass
        evaluator = QualityEvaluator(trainer.dataset, n_samples=2500)
        for i, seed in enumerate(seeds):
            confirmed, detail = CHECKS[case.check](_Trained(trainer, i, evaluator))
            history = [
                {k: v for k, v in r.items() if not k.startswith(_DROPPED)}
                for r in trainer.history[i]
            ]
            rows.append({
                "case": case.name, "seed": seed, "data": _data_family(cfg.data.name),
                "loss": cfg.train.loss, "label": case.label, "onset": case.onset,
                "eval_every": cfg.eval.every, "n_modes": _n_modes(trainer.dataset),
                "confirmed": confirmed, "check": detail, "why": case.why, "history": history,
            })
        print(f"trained {case.name} in {time.perf_counter() - start:.0f} s", flush=True)
    return rows


def _data_family(name: str) -> str:
    return "mixture" if name in ("ring", "grid") else "image"


def _n_modes(ds: Dataset) -> int | None:
    return None if ds.centers is None else len(ds.centers)


def save_fixture(rows: list[dict[str, Any]], path: Path = FIXTURE) -> None:
    payload = {"version": FIXTURE_VERSION, "created": time.strftime("%Y-%m-%d"),
               "torch": torch.__version__, "runs": rows}
    with gzip.open(path, "wt", encoding="utf-8") as f:
        json.dump(payload, f, allow_nan=True, separators=(",", ":"))


def load_fixture(path: Path = FIXTURE) -> list[dict[str, Any]]:
    with gzip.open(path, "rt", encoding="utf-8") as f:
        payload = json.load(f)
    if payload.get("version") != FIXTURE_VERSION:
        raise SystemExit(f"{path}: fixture version {payload.get('version')}; run --train")
    return payload["runs"]


# ------------------------------------------------------------------------ synthetic histories
@dataclass
class Case:
    """One labelled history to judge."""

    name: str
    data: str  # mixture or image
    loss: str
    label: str
    history: History
    n_modes: int | None
    eval_every: int
    onset: int | None = None
    extra: dict[str, Any] = field(default_factory=dict)


def _base(rows: list[dict[str, Any]], case: str, seed: int = 0) -> dict[str, Any]:
    return next(r for r in rows if r["case"] == case and r["seed"] == seed)


def _inject(history: History, since: int, change: Callable[[dict[str, Any], int], None]) -> History:
    out = copy.deepcopy(history)
    for rec in out:
        if rec["epoch"] >= since:
            change(rec, int(rec["epoch"]) - since)
    return out


def _truncate_at_divergence(history: History) -> History:
    """The trainer stops a member after its first diverged epoch; so do the synthetic ones."""
    from gan_core.monitor import divergence

    cfg = MonitorConfig()
    for i, rec in enumerate(history):
        if divergence(rec, cfg):
            return history[: i + 1]
    return history


def _dominate(rec: dict[str, Any], t: int, loss: str) -> None:
    """D separates every sample and widens its margin, in its own output units."""
    rec["d/accuracy"] = 1.0 if t % 3 else 0.985
    if loss in ("minimax", "least_squares"):
        rec["d/real"], rec["d/fake"] = 0.99, 0.01
    elif loss == "non_saturating":  # the issue's case: inside 0.95/0.05's band edges
        rec["d/real"], rec["d/fake"] = 0.93, 0.07
    else:
        rec["d/real"], rec["d/fake"] = 1.5 + 0.2 * t, -1.5 - 0.2 * t
        rec["loss/w_dist"] = rec["d/real"] - rec["d/fake"]
        if loss == "hinge":
            rec["loss/d"] = rec["loss/d_real"] = rec["loss/d_fake"] = 0.0


def _vanish(rec: dict[str, Any], t: int) -> None:
    rec["grad/g_norm"] *= 10.0 ** -(min(t, 2) + 2.5)  # down 10^2.5 at once, 10^4.5 after 2


def _grow(rec: dict[str, Any], t: int) -> None:
    """Sustained growth: x4 per epoch on losses and weights from the onset."""
    for key in ("loss/d", "loss/g", "loss/d_real", "loss/d_fake", "loss/d_total"):
        if key in rec:
            rec[key] = (abs(rec[key]) + 1.0) * 4.0 ** (t + 1) * 3
    for key in ("weights/d_abs_mean", "weights/g_abs_mean"):
        rec[key] *= 4.0 ** (t + 1)


def _nan(rec: dict[str, Any], t: int) -> None:
    for key in ("loss/d", "loss/g", "loss/d_real", "loss/d_fake"):
        rec[key] = math.nan


def _huge_weights(rec: dict[str, Any], t: int) -> None:
    rec["weights/g_abs_mean"] = 0.3 * 3.0 ** (t + 1)  # 0.9, 2.7, ..., 66 (in the hundreds next)


def _dynamics_cases(rows: list[dict[str, Any]]) -> list[Case]:
    cases = []
    for loss in LOSS_TYPES:
        base = _base(rows, f"ring-healthy-{loss}")
        h, every, k = base["history"], base["eval_every"], base["n_modes"]

        def make(name: str, label: str, since: int, change: Any, onset: int | None = None,
                 h: History = h, every: int = every, k: int | None = k,
                 loss: str = loss) -> Case:
            history = _truncate_at_divergence(_inject(h, since, change))
            return Case(f"synthetic-{name}-{loss}", "mixture", loss, label, history, k, every,
                        since if onset is None else onset)

        cases += [
            Case(f"synthetic-healthy-{loss}", "mixture", loss, "stable", h, k, every),
            make("dominance", "d_dominance", 13, lambda r, t, loss=loss: _dominate(r, t, loss)),
            make("vanishing", "vanishing_gradients", 16, _vanish),
            make("growth", "diverged", 10, _grow),
            make("nan", "diverged", 17, _nan),
            make("weights", "diverged", 11, _huge_weights),
        ]
    return cases


def _ring_samples(kind: str, ds: Dataset, gen: torch.Generator) -> torch.Tensor:
    n, c = 2500, ds.centers
    noise = torch.randn(n, 2, generator=gen)
    if kind == "healthy":
        return c[torch.randint(len(c), (n,), generator=gen)] + ds.std * noise
    if kind == "blob":  # blurry partial collapse over one mode
        return c[3] + 0.15 * noise
    if kind == "arc":  # a short arc over two neighbouring modes
        a = torch.rand(n, generator=gen) * math.pi / 4 + math.pi / 4
        return torch.stack([a.cos(), a.sin()], 1) + 0.02 * noise
    if kind == "two_modes":
        return c[torch.randint(2, (n,), generator=gen)] + ds.std * noise
    if kind == "point":
        return c[5] * 0.6 + 1e-4 * noise
    if kind == "blurry_ring":  # spread over the support, off the modes
        a = torch.rand(n, generator=gen) * 2 * math.pi
        r = 1 + 0.1 * noise[:, 0]
        return torch.stack([r * a.cos(), r * a.sin()], 1)
    if kind == "wide":  # one wide Gaussian over the whole ring
        return 1.2 * noise
    if kind == "centre":  # where an untrained G sits
        return 0.1 * noise
    raise ValueError(kind)


def _digit_samples(kind: str, ds: Dataset, gen: torch.Generator) -> torch.Tensor:
    x, y = ds.x, ds.y
    idx = torch.randperm(len(x), generator=gen)[:1000]
    if kind == "healthy":
        return (x[idx] + 0.05 * torch.randn(x[idx].shape, generator=gen)).clamp(-1, 1)
    if kind == "two_classes":
        pool = x[(y == 0) | (y == 1)]
        return pool[torch.randint(len(pool), (1000,), generator=gen)]
    if kind == "duplicates":
        return x[7].expand(1000, -1, -1, -1) + 1e-4 * torch.randn(1000, *x.shape[1:],
                                                                    generator=gen)
    if kind == "noise":
        return torch.rand(1000, *x.shape[1:], generator=gen) * 2 - 1
    if kind == "grey":
        return -0.2 + 0.05 * torch.randn(1000, *x.shape[1:], generator=gen)
    raise ValueError(kind)


# (kind, label) of the constructed samples; healthy up to the onset, then this
MIXTURE_SAMPLES = (("blob", "mode_collapse"), ("arc", "mode_collapse"),
                   ("two_modes", "mode_collapse"), ("point", "mode_collapse"),
                   ("blurry_ring", "poor_quality"), ("wide", "poor_quality"),
                   ("centre", "poor_quality"))
IMAGE_SAMPLES = (("two_classes", "mode_collapse"), ("duplicates", "mode_collapse"),
                 ("noise", "poor_quality"), ("grey", "poor_quality"))
QUALITY_ONSET = 12


Sampler = Callable[[str, torch.Generator], torch.Tensor]


def _with_samples(
    base: dict[str, Any], evaluator: QualityEvaluator, sample: Sampler, kind: str
) -> History:
    """The base history with every evaluation recomputed on constructed samples."""
    gen = torch.Generator().manual_seed(0)
    healthy = evaluator(sample("healthy", gen))
    failed = evaluator(sample(kind, gen))
    out = copy.deepcopy(base["history"])
    for rec in out:
        if any(k.startswith(("quality/", "diversity/")) for k in rec):
            rec.update(failed if rec["epoch"] >= QUALITY_ONSET else healthy)
    return out


def _quality_cases(rows: list[dict[str, Any]]) -> list[Case]:
    cases = []
    for data, name, kinds, loader in (
        ("mixture", "ring-healthy-non_saturating", MIXTURE_SAMPLES,
         DataConfig(name="ring", n_points=20000)),
        ("image", "digits-healthy-ns", IMAGE_SAMPLES, DataConfig(name="digits")),
    ):
        ds = load_dataset(loader)
        evaluator = QualityEvaluator(ds, n_samples=2500)
        sample = _ring_samples if data == "mixture" else _digit_samples
        base = _base(rows, name)
        every = base["eval_every"]
        onset = -(-QUALITY_ONSET // every) * every  # first evaluation at or after it
        def sampler(k: str, g: torch.Generator, ds: Dataset = ds, sample: Any = sample) -> Any:
            return sample(k, ds, g)

        for kind, label in (("healthy", "stable"), *kinds):
            history = _truncate_at_divergence(_with_samples(base, evaluator, sampler, kind))
            cases.append(Case(f"synthetic-{data}-{kind}", data, base["loss"], label, history,
                              base["n_modes"], every, None if label == "stable" else onset))
    # Non-finite samples with finite losses: BN running statistics gone bad, say.
    base = _base(rows, "ring-healthy-non_saturating")
    history = _inject(base["history"], 15, lambda r, t: r.update({"quality/nonfinite": 0.2})
                      if "quality/nonfinite" in r else None)
    cases.append(Case("synthetic-mixture-nonfinite-samples", "mixture", base["loss"], "diverged",
                      _truncate_at_divergence(history), base["n_modes"], base["eval_every"], 15))
    return cases


def synthetic_cases(rows: list[dict[str, Any]]) -> list[Case]:
    return _dynamics_cases(rows) + _quality_cases(rows)


def real_cases(rows: list[dict[str, Any]]) -> list[Case]:
    return [
        Case(f"{r['case']}-seed{r['seed']}", r["data"], r["loss"], r["label"], r["history"],
             r["n_modes"], r["eval_every"], r["onset"],
             {"confirmed": r["confirmed"], "check": r["check"]})
        for r in rows
    ]


# ------------------------------------------------------------------------ sequence runs
# Family sequence (gan_core/families/sequence.py) on the built-in Markov chain and code sets:
# real runs of a known outcome like REAL_CASES, stored apart so that the image and mixture
# fixture stays as it is. `--train-sequence` trains them again (about 3 minutes on 2 cores).
SEQUENCE_FIXTURE = HERE / "verdict_sequence.json.gz"
MARKOV = {
    "family": "sequence",
    "sequence": {"length": 12, "vocab_size": 8, "markov_successors": 2, "g_channels": 32,
                 "d_channels": 32, "n_blocks": 1, "latent_dim": 32},
    "data": {"name": "markov", "n_points": 4000},
    "train": {"epochs": 12, "steps_per_epoch": 15, "batch_size": 32, "g_lr": 3e-3,
              "d_lr": 3e-3},
    "eval": {"every": 2, "n_samples": 500},
}
CODE = _merge(MARKOV, {"data": {"name": "code"}})
SEQUENCE_CASES = (
    RealCase("markov-healthy", MARKOV, {}, "stable", "stable_sequence",
             "WGAN-GP at 3e-3 learns the chain's bigrams in 180 G steps"),
    RealCase("code-healthy", CODE, {}, "stable", "stable_sequence",
             "the same on short Python statements"),
    RealCase("markov-untrained", MARKOV, {"train": {"g_lr": 1e-8, "d_lr": 1e-8}},
             "poor_quality", "poor_sequence", "neither network moves: G's tokens stay noise"),
    RealCase("code-untrained", CODE, {"train": {"g_lr": 1e-8, "d_lr": 1e-8}},
             "poor_quality", "poor_sequence", "neither network moves: G's code does not parse"),
    RealCase("markov-frozen-g", MARKOV, {"train": {"g_lr": 1e-8}}, "d_dominance", "dominance",
             "G cannot move, the critic separates real from its fixed output"),
    RealCase("markov-bottleneck-collapse", MARKOV, {"sequence": {"latent_dim": 1}},
             "mode_collapse", "collapse_sequence",
             "a 1-D latent line: the argmax decodes to few distinct, data-like sequences"),
    RealCase("markov-lr-jump", MARKOV, {"train": JUMP}, "diverged", "diverged",
             "learning rates x1,000 after epoch 8", onset=9),
)


@dataclass
class _SeqTrained(_Trained):
    evaluator: Any  # a gan_core.seq_metrics.SequenceEvaluator

    def fresh(self) -> dict[str, float]:
        """Metrics of 2,500 samples from latents the evaluation never used."""
        gen = torch.Generator(device=self.trainer.device).manual_seed(10_000 + self.member)
        ids = self.trainer.generate(2500, member=self.member, generator=gen)
        return dict(self.evaluator(ids.cpu().numpy()))

    def real_distinct(self) -> float:
        """Share of distinct sequences among 2,500 data sequences (short code repeats itself)."""
        x = self.trainer.dataset.x
        rows = x[torch.randperm(len(x), generator=torch.Generator().manual_seed(0))[:2500]]
        return len(torch.unique(rows, dim=0)) / len(rows)


def _check_stable_sequence(t: _Trained) -> tuple[bool, str]:
    q, real = t.fresh(), t.real_distinct()  # type: ignore[attr-defined]
    ok = q["seq/js_rel"] < 0.4 and q["seq/token_coverage"] >= 0.75
    ok = ok and q["seq/unique_sequences"] >= 0.7 * real and q.get("seq/valid_fraction", 1) > 0.1
    return ok, (f"fresh samples: bigram JS rel {q['seq/js_rel']:.2f}, tokens "
                f"{q['seq/token_coverage']:.2f}, distinct {q['seq/unique_sequences']:.2f} "
                f"(data {real:.2f})")


def _check_poor_sequence(t: _Trained) -> tuple[bool, str]:
    q = t.fresh()
    ok = q["seq/js_rel"] > 0.8 and q.get("seq/valid_fraction", 0.0) < 0.05
    return ok, f"fresh samples: bigram JS rel {q['seq/js_rel']:.2f}"


def _check_collapse_sequence(t: _Trained) -> tuple[bool, str]:
    q = t.fresh()
    few = q["seq/unique_sequences"] < 0.2 or q["seq/token_coverage"] < 0.5
    ok = few and q["seq/bigram_precision"] >= 0.5
    return ok, (f"fresh samples: distinct {q['seq/unique_sequences']:.2f}, tokens "
                f"{q['seq/token_coverage']:.2f}, bigram precision {q['seq/bigram_precision']:.2f}")


CHECKS.update({
    "stable_sequence": _check_stable_sequence,
    "poor_sequence": _check_poor_sequence,
    "collapse_sequence": _check_collapse_sequence,
})


def train_sequence_cases(seeds: tuple[int, ...] = SEEDS) -> list[dict[str, Any]]:
    """Train SEQUENCE_CASES, a pack of `seeds` each on one thread (rows as train_real_cases)."""
    from gan_core.seq_metrics import SequenceEvaluator

    torch.set_num_threads(1)
    rows = []
    for case in SEQUENCE_CASES:
        start = time.perf_counter()
        cfg = RunConfig.from_dict(_merge(case.base, case.spec))
        trainer = Trainer(cfg, members=[Member(s, s) for s in seeds])
        for _ in trainer.epochs():
            pass
        evaluator = SequenceEvaluator(trainer.dataset, 2500, cfg.sequence.ngram)
        for i, seed in enumerate(seeds):
            confirmed, detail = CHECKS[case.check](_SeqTrained(trainer, i, evaluator))
            history = [
                {k: v for k, v in r.items() if not k.startswith(_DROPPED)}
                for r in trainer.history[i]
            ]
            rows.append({
                "case": case.name, "seed": seed, "data": "sequence", "loss": cfg.train.loss,
                "label": case.label, "onset": case.onset, "eval_every": cfg.eval.every,
                "n_modes": None, "confirmed": confirmed, "check": detail, "why": case.why,
                "history": history,
            })
        print(f"trained {case.name} in {time.perf_counter() - start:.0f} s", flush=True)
    return rows


# ------------------------------------------------------------------------ scoring
def judge(cases: list[Case], cfg: MonitorConfig | None = None) -> dict[str, Any]:
    """Verdicts of every case and the benchmark's figures."""
    cfg = cfg or MonitorConfig()
    scored, unconfirmed, misses = [], [], []
    for case in cases:
        if not case.extra.get("confirmed", True):
            unconfirmed.append(f"{case.name}: {case.extra['check']}")
            continue
        v = verdict(case.history, cfg, case.loss, n_modes=case.n_modes)
        right = v.status == case.label
        onset_ok = None
        if case.onset is not None and right:
            onset_ok = abs(v.onset_epoch - case.onset) <= case.eval_every
        scored.append((case, v.status, right, onset_ok))
        if not right or onset_ok is False:
            misses.append(f"{case.name}: labelled {case.label} (onset {case.onset}), judged "
                          f"{v.status} (onset {v.onset_epoch}); problems {list(v.problems)}")
    groups: dict[str, list[bool]] = {}
    for case, _, right, _ in scored:
        for group in (case.data, case.loss):
            groups.setdefault(group, []).append(right)
    onsets = [ok for *_, ok in scored if ok is not None]
    confusion = Counter((case.label, status) for case, status, _, _ in scored)
    return {
        "cases": len(scored),
        "verdict_accuracy": sum(r for _, _, r, _ in scored) / len(scored),
        "onset_within_one_eval": sum(onsets) / len(onsets) if onsets else math.nan,
        "onsets_scored": len(onsets),
        "groups": {
            g: {"n": len(v), "accuracy": sum(v) / len(v)} for g, v in sorted(groups.items())
        },
        "healthy_judged_failed": sum(
            1 for case, status, _, _ in scored if case.label == "stable" and status != "stable"
        ),
        "unconfirmed": unconfirmed,
        "misses": misses,
        "confusion": {f"{a}->{b}": n for (a, b), n in sorted(confusion.items())},
    }


def _print_confusion(confusion: dict[str, int]) -> None:
    labels = [s for s in STATUSES if any(k.startswith(s + "->") for k in confusion)]
    width = max(len(s) for s in STATUSES)
    print("confusion (rows: label, columns: verdict)")
    print(" " * width + " " + " ".join(f"{s[:9]:>9}" for s in STATUSES))
    for a in labels:
        counts = [confusion.get(f"{a}->{b}", 0) for b in STATUSES]
        print(f"{a:>{width}} " + " ".join(f"{n:>9}" for n in counts))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--train", action="store_true", help="train the real runs again first")
    parser.add_argument("--cases", nargs="+", metavar="NAME",
                        help="with --train: train only these real cases, keep the others")
    parser.add_argument("--train-sequence", action="store_true",
                        help="train the sequence-family runs again first")
    parser.add_argument("--holdout", action="store_true",
                        help=f"judge the held-out seeds {HOLDOUT_SEEDS} (with --train: train them)")
    args = parser.parse_args()
    fixture, seeds = (HOLDOUT, HOLDOUT_SEEDS) if args.holdout else (FIXTURE, SEEDS)
    if args.train or not fixture.exists():
        known = {c.name for c in REAL_CASES}
        unknown = set(args.cases or ()) - known
        if unknown:
            parser.error(f"unknown case {sorted(unknown)[0]!r}; cases: {', '.join(sorted(known))}")
        names = set(args.cases) if args.cases else None
        kept = [r for r in load_fixture(fixture) if r["case"] not in names] if names else []
        save_fixture(kept + train_real_cases(names, seeds), fixture)
    rows = load_fixture(fixture)
    if not args.holdout:
        if args.train_sequence or not SEQUENCE_FIXTURE.exists():
            save_fixture(train_sequence_cases(), SEQUENCE_FIXTURE)
        rows += load_fixture(SEQUENCE_FIXTURE)
    start = time.perf_counter()
    # Synthetic cases are built on the seed-0 healthy runs of the main fixture.
    result = judge(real_cases(rows) + ([] if args.holdout else synthetic_cases(rows)))
    for line in result["unconfirmed"]:
        print(f"unconfirmed (not scored): {line}")
    for line in result["misses"]:
        print(f"miss: {line}")
    _print_confusion(result["confusion"])
    for group, g in result["groups"].items():
        print(f"accuracy_{group}={g['accuracy']:.3f} (n={g['n']})")
    print(f"verdict_accuracy={result['verdict_accuracy']:.3f} (n={result['cases']})")
    print(f"onset_within_one_eval={result['onset_within_one_eval']:.3f} "
          f"(n={result['onsets_scored']})")
    print(f"healthy_judged_failed={result['healthy_judged_failed']}")
    print(f"unconfirmed_runs={len(result['unconfirmed'])}")
    print(f"judged in {time.perf_counter() - start:.1f} s")
    name = "verdicts_holdout.json" if args.holdout else "verdicts.json"
    (HERE / name).write_text(json.dumps(result, indent=1, allow_nan=True))


if __name__ == "__main__":
    main()
