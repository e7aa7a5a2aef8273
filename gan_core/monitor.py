"""Health monitor: a run's phase, its problems and a verdict, from its metric history.

Everything here is a pure function of the per-epoch records of docs/CONTRACTS.md, so
the same code judges a live run (called every epoch), a checkpointed one and a row
group read back from ``epochs.parquet``. Failures are data: nothing here raises on
NaN; a NaN loss is evidence of divergence.

Sources: "001" is ../shared/seeds/001_f2814c4aeb27dcae.txt (GAN Training Guide),
"004" is ../shared/seeds/004_a9ccca2a940fbf32.txt (Training Dynamics).

Rules, in precedence order (the first that holds at the end decides the verdict):

- diverged -> verdict ``diverged``: any loss/* non-finite or |loss| > loss_explode (1e6,
  ours: healthy losses of every supported loss stay below ~1e3, and an Adam run at lr 1e3
  reached 1e33 before it overflowed), or weights/{d,g}_abs_mean non-finite or >
  weight_explode (1e3, ours: healthy mean |w| is 1e-2..1), in ANY epoch;
  terminal, never "resolved" (STYLE.md habit 11: "A NaN loss ends a run with verdict
  diverged").
- mode_collapse -> ``mode_collapse``: any decisive signal below holds at the end.
- vanishing_gradients -> ``vanishing_gradients``: grad/g_norm < vanishing_grad (1e-6),
  stuck. 004 "Vanishing Gradients" (detect_vanishing_gradients) and GANMonitor.
- d_too_strong -> ``d_dominance``: D(real) > d_strong_real (0.95) and D(fake) <
  d_strong_fake (0.05), stuck. 004 competitive-phase check and GANMonitor "D too strong".
- poor_quality -> ``poor_quality``: at the latest evaluation quality/hq_fraction <
  poor_quality_hq_fraction (0.5, ours; PacGAN's plain GAN reaches 94.8%), or quality/fid >
  400 (001 FID table: >400 Poor, Inception scale), or quality/is < 2.0 (001: <2.0 Limited).
- d_too_weak (warning): D(real) < d_weak_real (0.6) and D(fake) > d_weak_fake (0.4),
  outside the converged band |D - 0.5| < 0.1, stuck. 004 "G is winning (D struggling)";
  the band is 004 check_convergence(tolerance=0.1): 0.5/0.5 is equilibrium, not weakness.
- persistent_clipping (warning): weights/clip_pct > clip_persistent_pct (50), stuck.
  001 Clip% table ">50% Persistent: increase threshold".
- low_dg_ratio (warning): stability/dg_ratio < dg_ratio_min (0.01), stuck. 001 "D/G
  Ratio: <0.01 = possible collapse".

Mode-collapse signals (decisive unless marked):

- loss signature: loss/d in collapse_d_loss (0.72-0.75), |d/accuracy - 0.5| <=
  collapse_d_accuracy_tol (0.05, ours) and g/accuracy >= collapse_g_accuracy (0.99),
  stuck. 001 "Mode Collapse Triage / Symptoms" table.
- PixVar: latest quality/pixvar < collapse_pixvar (0.1). 001 "PixVar: <0.1 = Mode collapse".
- few modes (2-D mixtures, when the caller passes ``n_modes``): latest quality/modes <=
  collapse_modes_fraction (0.5, ours) x n_modes (half the modes dropped is collapse) while
  quality/hq_fraction is not below poor_quality_hq_fraction (few modes and off-mode samples
  is poor quality: G has not found the data, rather than collapsed onto part of it).
  004 "Cluster analysis".
- near-duplicate samples (images only: a tight mixture's healthy samples are closer than
  this): latest diversity/min < collapse_min_distance (0.01). 004 detect_mode_collapse.
- one point (any data): latest diversity/ratio (mean pairwise distance of the samples over
  the real data's) < collapse_diversity_ratio (0.01, ours): G maps every latent to nearly
  the same sample, on a mode or off every mode. 004 "low pairwise distance"; scale-free, so
  it also holds for 2-D mixtures, where the min-distance rule cannot.
- supporting only: D(fake) nearly constant (d/fake_batch_std, or the spread of d/fake
  over the window, < collapse_d_fake_std = 0.01; 004 GANMonitor). It is added to the
  evidence but never decides alone: a saturated D (every fake scored 0) or a converged
  one (every sample 0.5) is just as constant.

"Stuck" means the condition held in each of the last ``cfg.window`` epochs; the onset is
the first epoch of that unbroken trailing run, so a problem that appeared and resolved is
not reported, and D too strong in the first epochs only is normal early training (004
"Phase 1"). A run shorter than ``cfg.window`` epochs can only be diverged, collapsed or
poor by its quality metrics. Quality rules read the latest evaluation; their onset is
the first of the trailing run of bad evaluations.

Loss awareness: vanilla and non_saturating report D outputs as probabilities, so every
rule applies. least_squares reports raw scores that, with the default targets (a, b) =
(0, 1), sit on the same scale (Mao et al. 2017, Prop. 1: D* = p_data / (p_data + p_g)):
the D(real)/D(fake) bands and phases apply, the 0.72-0.75 loss band (a BCE value, ln 2
~ 0.693 at D = 0.5) does not. wasserstein and hinge have unbounded critic scores: no
probability band and no loss band; their phase follows the W-distance trend instead.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from .config import LOSS_TYPES, MonitorConfig
from .metric_keys import DIVERSITY_KEYS, IMAGE_KEYS, MIXTURE_KEYS

__all__ = [
    "PHASES",
    "STATUSES",
    "PROBLEMS",
    "Problem",
    "Health",
    "Verdict",
    "assess",
    "confident_failure",
    "divergence",
    "verdict",
]

Record = Mapping[str, float]
History = Sequence[Record]

PHASES = ("early", "competitive", "converged")
STATUSES = (
    "stable",
    "mode_collapse",
    "diverged",
    "d_dominance",
    "vanishing_gradients",
    "poor_quality",
)

_BANDED = frozenset({"vanilla", "non_saturating", "least_squares"})  # D outputs on a [0, 1] scale
_BCE = frozenset({"vanilla", "non_saturating"})  # the 0.72-0.75 D-loss band is a BCE value

_LOSS_KEYS = (
    "loss/d",
    "loss/d_real",
    "loss/d_fake",
    "loss/g",
    "loss/d_total",
    "loss/w_dist",
    "loss/gp",
    "loss/r1",
)
_WEIGHT_KEYS = ("weights/d_abs_mean", "weights/g_abs_mean")
_SUMMARY_KEYS = ("loss/d", "loss/g", "loss/w_dist", "d/real", "d/fake", "d/accuracy", "g/accuracy")
_QUALITY_KEYS = IMAGE_KEYS + MIXTURE_KEYS
_EVAL_KEYS = _QUALITY_KEYS + DIVERSITY_KEYS


@dataclass(frozen=True)
class Problem:
    """One problem the monitor sees at the end of the history.

    Attributes:
        name: one of PROBLEMS.
        epoch: first epoch of the problem's unbroken trailing run (its onset).
        evidence: metric name -> value (means over the last window for "stuck" rules).
        message: one human-readable line.
    """

    name: str
    epoch: int
    evidence: dict[str, float]
    message: str


@dataclass(frozen=True)
class Health:
    """The phase a run is in and the problems it has now, in precedence order."""

    phase: str
    problems: list[Problem] = field(default_factory=list)


@dataclass(frozen=True)
class Verdict:
    """How a run ended: ``stable`` or the failure that decided it (docs/CONTRACTS.md)."""

    status: str
    onset_epoch: int | None
    evidence: dict[str, float]
    problems: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-ready dict (evidence may hold NaN, which ``json`` writes as NaN)."""
        return {
            "status": self.status,
            "onset_epoch": self.onset_epoch,
            "evidence": dict(self.evidence),
            "problems": list(self.problems),
        }


@dataclass(frozen=True)
class _Context:
    history: History
    cfg: MonitorConfig
    loss: str
    n_modes: int | None
    last_eval: int | None  # index of the latest evaluation epoch, None before the first


@dataclass(frozen=True)
class _Finding:
    start: int  # index into history of the onset record
    evidence: dict[str, float]
    message: str


@dataclass(frozen=True)
class _Rule:
    name: str
    status: str | None  # the verdict it decides; None: a warning that decides nothing
    check: Callable[[_Context], _Finding | None]


# ---------------------------------------------------------------- record helpers
def _value(rec: Record, key: str) -> float:
    """The record's value as a float; NaN when missing or null (parquet)."""
    v = rec.get(key)
    if v is None:
        return math.nan
    try:
        return float(v)
    except (TypeError, ValueError):
        return math.nan


def _epoch(history: History, index: int) -> int:
    e = _value(history[index], "epoch")
    return int(e) if math.isfinite(e) else index + 1


def _mean(values: Sequence[float]) -> float:
    finite = [v for v in values if math.isfinite(v)]
    return sum(finite) / len(finite) if finite else math.nan


def _window_means(ctx: _Context, keys: Sequence[str]) -> dict[str, float]:
    recent = ctx.history[-ctx.cfg.window :]
    return {k: _mean([_value(r, k) for r in recent]) for k in keys}


def _trailing_start(history: History, holds: Callable[[Record], bool]) -> int | None:
    """Index of the first record of the unbroken trailing run where `holds`; None if the last fails.

    Scans backwards only while the condition holds, so a healthy run costs O(1).
    """
    i = len(history)
    while i > 0 and holds(history[i - 1]):
        i -= 1
    return i if i < len(history) else None


def _latest_evaluation(history: History) -> int | None:
    """Index of the last record holding any quality or diversity key; found once per call."""
    for i in range(len(history) - 1, -1, -1):
        rec = history[i]
        if any(k in rec for k in _EVAL_KEYS):
            return i
    return None


def _evaluated(ctx: _Context, key: str) -> float:
    """`key` at the latest evaluation; NaN when that evaluation lacks it."""
    return math.nan if ctx.last_eval is None else _value(ctx.history[ctx.last_eval], key)


def _bad_evaluations(ctx: _Context, key: str, bad: Callable[[float], bool]) -> int | None:
    """Index of the first evaluation in the trailing run of bad ones; None if the latest is fine."""
    start = ctx.last_eval
    if start is None or not bad(_evaluated(ctx, key)):  # NaN is never bad: NaN < t is False
        return None
    for i in range(start - 1, -1, -1):
        v = _value(ctx.history[i], key)
        if not math.isfinite(v):
            continue  # not an evaluation epoch
        if not bad(v):
            break
        start = i
    return start


# ---------------------------------------------------------------- per-epoch predicates
def _d_strong(rec: Record, cfg: MonitorConfig) -> bool:
    return _value(rec, "d/real") > cfg.d_strong_real and _value(rec, "d/fake") < cfg.d_strong_fake


def _in_converged_band(real: float, fake: float, cfg: MonitorConfig) -> bool:
    tol = cfg.converged_tol
    return abs(real - 0.5) < tol and abs(fake - 0.5) < tol


def _d_weak(rec: Record, cfg: MonitorConfig) -> bool:
    real, fake = _value(rec, "d/real"), _value(rec, "d/fake")
    weak = real < cfg.d_weak_real and fake > cfg.d_weak_fake
    # 0.5/0.5 is the Nash equilibrium (004 Phase 3), not a struggling D.
    return weak and not _in_converged_band(real, fake, cfg)


def _vanishing(rec: Record, cfg: MonitorConfig) -> bool:
    return _value(rec, "grad/g_norm") < cfg.vanishing_grad


def _clipping(rec: Record, cfg: MonitorConfig) -> bool:
    return _value(rec, "weights/clip_pct") > cfg.clip_persistent_pct


def _low_dg(rec: Record, cfg: MonitorConfig) -> bool:
    return _value(rec, "stability/dg_ratio") < cfg.dg_ratio_min


def _collapse_signature(rec: Record, cfg: MonitorConfig) -> bool:
    lo, hi = cfg.collapse_d_loss
    tol = cfg.collapse_d_accuracy_tol
    return (
        lo <= _value(rec, "loss/d") <= hi
        and abs(_value(rec, "d/accuracy") - 0.5) <= tol
        and _value(rec, "g/accuracy") >= cfg.collapse_g_accuracy
    )


def _stuck(
    predicate: Callable[[Record, MonitorConfig], bool],
    keys: tuple[str, ...],
    message: str,
    losses: frozenset[str] = frozenset(LOSS_TYPES),
) -> Callable[[_Context], _Finding | None]:
    """A check that holds when `predicate` held in each of the last `cfg.window` epochs."""

    def check(ctx: _Context) -> _Finding | None:
        if ctx.loss not in losses:
            return None
        start = _trailing_start(ctx.history, lambda rec: predicate(rec, ctx.cfg))
        if start is None or len(ctx.history) - start < ctx.cfg.window:
            return None
        evidence = _window_means(ctx, keys)
        shown = "  ".join(f"{k}={v:.4g}" for k, v in evidence.items())
        return _Finding(
            start, evidence, f"{message} for {len(ctx.history) - start} epochs ({shown})"
        )

    return check


# ---------------------------------------------------------------- checks
def divergence(rec: Record, cfg: MonitorConfig) -> dict[str, float]:
    """One record's evidence of divergence: non-finite or exploded losses and weight statistics.

    Empty for a healthy record. The trainer stops a member on the first non-empty one.
    """
    bad = {}
    for keys, limit in ((_LOSS_KEYS, cfg.loss_explode), (_WEIGHT_KEYS, cfg.weight_explode)):
        for k in keys:
            v = rec.get(k)
            if v is not None and not abs(v) <= limit:  # also true for NaN and inf
                bad[k] = float(v)
    return bad


def _check_diverged(ctx: _Context) -> _Finding | None:
    """First epoch with a non-finite or exploded loss or weights, anywhere: divergence is terminal.

    The one full scan per call (a few dict lookups per epoch): a NaN never "resolves".
    """
    for i, rec in enumerate(ctx.history):
        bad = divergence(rec, ctx.cfg)
        if bad:
            shown = ", ".join(f"{k}={v:.4g}" for k, v in bad.items())
            return _Finding(i, bad, f"diverged in epoch {_epoch(ctx.history, i)}: {shown}")
    return None


_signal_loss_signature = _stuck(
    _collapse_signature,
    ("loss/d", "d/accuracy", "g/accuracy"),
    "D loss in the collapse band, D at chance, G fooling D",
    _BCE,
)


def _signal_latest(
    key: str,
    limit_of: Callable[[_Context], float | None],
    what: str,
    inclusive: bool = False,
) -> Callable[[_Context], _Finding | None]:
    """A signal that holds when the latest evaluation of `key` is below (or at) a limit."""
    sign = "<=" if inclusive else "<"

    def check(ctx: _Context) -> _Finding | None:
        limit = limit_of(ctx)
        if limit is None:
            return None
        bad = (lambda v: v <= limit) if inclusive else (lambda v: v < limit)
        start = _bad_evaluations(ctx, key, bad)
        if start is None:
            return None
        value = _evaluated(ctx, key)
        return _Finding(start, {key: value}, f"{what}: {key}={value:.4g} {sign} {limit:.4g}")

    return check


def _modes_limit(ctx: _Context) -> float | None:
    return None if ctx.n_modes is None else ctx.cfg.collapse_modes_fraction * ctx.n_modes


_few_modes = _signal_latest("quality/modes", _modes_limit, "few modes captured", inclusive=True)


def _signal_few_modes(ctx: _Context) -> _Finding | None:
    """Few modes whose samples sit on them: G covers part of the data well.

    Few modes with mostly low-quality samples means G lands between or away from the
    modes (early training, a blurry ring): poor quality, not collapse.
    """
    found = _few_modes(ctx)
    hq = _evaluated(ctx, "quality/hq_fraction")
    if found is None or hq < ctx.cfg.poor_quality_hq_fraction:
        return None
    if math.isfinite(hq):
        found.evidence["quality/hq_fraction"] = hq
    return found


def _duplicates_limit(ctx: _Context) -> float | None:
    if math.isfinite(_evaluated(ctx, "quality/modes")):
        return None  # 2-D mixtures: tight modes make tiny distances healthy
    return ctx.cfg.collapse_min_distance


_COLLAPSE_SIGNALS: tuple[Callable[[_Context], _Finding | None], ...] = (
    _signal_loss_signature,
    _signal_latest("quality/pixvar", lambda ctx: ctx.cfg.collapse_pixvar, "low pixel variance"),
    _signal_few_modes,
    _signal_latest("diversity/min", _duplicates_limit, "near-duplicate samples"),
    _signal_latest(
        "diversity/ratio",
        lambda ctx: ctx.cfg.collapse_diversity_ratio,
        "samples far less spread than the data",
    ),
)


def _d_fake_constancy(ctx: _Context) -> dict[str, float]:
    """Supporting evidence: D gives every fake (nearly) the same score (004 GANMonitor)."""
    limit = ctx.cfg.collapse_d_fake_std
    recent = ctx.history[-ctx.cfg.window :]
    evidence = {}
    batch_std = _mean([_value(r, "d/fake_batch_std") for r in recent])
    if batch_std < limit:
        evidence["d/fake_batch_std"] = batch_std
    fakes = [v for v in (_value(r, "d/fake") for r in recent) if math.isfinite(v)]
    if len(fakes) >= 2:
        mu = sum(fakes) / len(fakes)
        spread = math.sqrt(sum((v - mu) ** 2 for v in fakes) / len(fakes))
        if spread < limit:
            evidence["d/fake_window_std"] = spread
    return evidence


def _check_mode_collapse(ctx: _Context) -> _Finding | None:
    found = [f for f in (signal(ctx) for signal in _COLLAPSE_SIGNALS) if f is not None]
    if not found:
        return None
    evidence: dict[str, float] = {}
    for f in found:
        evidence.update(f.evidence)
    evidence.update(_d_fake_constancy(ctx))
    message = "mode collapse: " + "; ".join(f.message for f in found)
    return _Finding(min(f.start for f in found), evidence, message)


# (key, limit name, bad when the value is "below" or "above" the limit)
_QUALITY_LIMITS = (
    ("quality/hq_fraction", "poor_quality_hq_fraction", "below"),
    ("quality/fid", "poor_quality_fid", "above"),
    ("quality/is", "poor_quality_is", "below"),
)


def _check_poor_quality(ctx: _Context) -> _Finding | None:
    found = []
    for key, name, side in _QUALITY_LIMITS:
        limit = getattr(ctx.cfg, name)
        if limit is None:
            continue
        bad = (lambda v, t=limit: v < t) if side == "below" else (lambda v, t=limit: v > t)
        start = _bad_evaluations(ctx, key, bad)
        if start is not None:
            value = _evaluated(ctx, key)
            found.append(_Finding(start, {key: value}, f"{key}={value:.4g} {side} {limit:.4g}"))
    if not found:
        return None
    evidence = {k: v for f in found for k, v in f.evidence.items()}
    message = "poor quality at the latest evaluation: " + "; ".join(f.message for f in found)
    return _Finding(min(f.start for f in found), evidence, message)


_RULES: tuple[_Rule, ...] = (
    _Rule("diverged", "diverged", _check_diverged),
    _Rule("mode_collapse", "mode_collapse", _check_mode_collapse),
    _Rule(
        "vanishing_gradients",
        "vanishing_gradients",
        _stuck(_vanishing, ("grad/g_norm", "d/fake"), "G gradient norm below threshold"),
    ),
    _Rule(
        "d_too_strong",
        "d_dominance",
        _stuck(_d_strong, ("d/real", "d/fake"), "D separates real from fake", _BANDED),
    ),
    _Rule("poor_quality", "poor_quality", _check_poor_quality),
    _Rule(
        "d_too_weak",
        None,
        _stuck(_d_weak, ("d/real", "d/fake"), "D struggling (G winning)", _BANDED),
    ),
    _Rule(
        "persistent_clipping",
        None,
        _stuck(_clipping, ("weights/clip_pct",), "critic weights at the clip bound (raise it)"),
    ),
    _Rule(
        "low_dg_ratio",
        None,
        _stuck(_low_dg, ("stability/dg_ratio",), "D/G loss ratio very low (possible collapse)"),
    ),
)
PROBLEMS = tuple(rule.name for rule in _RULES)
_STATUS_OF = {rule.name: rule.status for rule in _RULES}


# ---------------------------------------------------------------- phases
def _band_phase(ctx: _Context) -> str:
    """004 summary table: early ~1/~0, converged ~0.5/~0.5, competitive in between."""
    means = _window_means(ctx, ("d/real", "d/fake"))
    real, fake = means["d/real"], means["d/fake"]
    if not (math.isfinite(real) and math.isfinite(fake)):
        return "early"
    if _in_converged_band(real, fake, ctx.cfg):
        return "converged"
    if real > ctx.cfg.early_real and fake < ctx.cfg.early_fake:
        return "early"
    return "competitive"


def _score_phase(ctx: _Context) -> str:
    """Critic losses: W-dist rises (early), then falls (competitive), then stabilizes (converged).

    001 "Healthy Signs: W-dist increases then stabilizes". Early while the W-dist peak is
    within the last window (or fewer than two windows exist); converged when the mean of the
    last window moved less than `w_flat` x |peak| from the window before; else competitive.
    """
    n = ctx.cfg.window
    w = [v for v in (_value(r, "loss/w_dist") for r in ctx.history) if math.isfinite(v)]
    if len(w) < 2 * n:
        return "early"
    peak = max(range(len(w)), key=lambda i: w[i])
    if peak >= len(w) - n:
        return "early"
    change = abs(_mean(w[-n:]) - _mean(w[-2 * n : -n]))
    scale = max(abs(w[peak]), 1e-12)
    return "converged" if change <= ctx.cfg.w_flat * scale else "competitive"


# ---------------------------------------------------------------- public API
def _context(history: History, cfg: MonitorConfig, loss: str, n_modes: int | None) -> _Context:
    if not history:
        raise ValueError("monitor: empty history; at least one epoch record is needed")
    if loss not in LOSS_TYPES:
        raise ValueError(
            f"monitor: unknown loss {loss!r}; expected a resolved name "
            f"(TrainingConfig.loss), one of {', '.join(LOSS_TYPES)}"
        )
    if n_modes is not None and n_modes < 1:
        raise ValueError(f"monitor: n_modes must be >= 1, got {n_modes}")
    return _Context(history, cfg, loss, n_modes, _latest_evaluation(history))


def assess(
    history: History, cfg: MonitorConfig, loss: str, *, n_modes: int | None = None
) -> Health:
    """The phase a run is in and the problems it has at the end of `history`.

    Args:
        history: the run's per-epoch records (docs/CONTRACTS.md), oldest first.
        cfg: thresholds.
        loss: resolved loss name (``TrainingConfig.loss``), one of LOSS_TYPES.
        n_modes: number of modes of a 2-D mixture data set (enables the modes rule).

    Returns:
        Health whose problems are in precedence order.

    Raises:
        ValueError: empty history, unknown loss name or n_modes < 1.
    """
    return _assess(_context(history, cfg, loss, n_modes))


def _assess(ctx: _Context) -> Health:
    problems = []
    for rule in _RULES:
        found = rule.check(ctx)
        if found is not None:
            epoch = _epoch(ctx.history, found.start)
            problems.append(Problem(rule.name, epoch, found.evidence, found.message))
    phase = _band_phase(ctx) if ctx.loss in _BANDED else _score_phase(ctx)
    return Health(phase, problems)


def _final_evidence(ctx: _Context) -> dict[str, float]:
    """For a stable run: the last epoch's losses and D outputs, the latest quality metrics."""
    last = ctx.history[-1]
    evidence = {k: _value(last, k) for k in _SUMMARY_KEYS if k in last}
    for key in _QUALITY_KEYS:
        v = _evaluated(ctx, key)
        if math.isfinite(v):
            evidence[key] = v
    return evidence


def verdict(
    history: History, cfg: MonitorConfig, loss: str, *, n_modes: int | None = None
) -> Verdict:
    """How the run ended: the highest-precedence failure present at the end, else stable.

    Precedence: diverged > mode_collapse > vanishing_gradients > d_dominance >
    poor_quality > stable. Divergence first because NaN or exploded weights make every
    other metric meaningless; collapse before the D-balance problems because it is what
    the samples show (D dominance and vanishing gradients are its usual causes, kept in
    `problems`); poor_quality last, only when nothing more specific explains it. Warnings
    (d_too_weak, persistent_clipping, low_dg_ratio) are listed but decide nothing.

    Args/Raises: as `assess`.

    Returns:
        Verdict with the deciding problem's onset epoch and evidence; for ``stable``, the
        final losses, D outputs and latest quality metrics as evidence.
    """
    ctx = _context(history, cfg, loss, n_modes)
    health = _assess(ctx)
    names = tuple(p.name for p in health.problems)
    for problem in health.problems:
        status = _STATUS_OF[problem.name]
        if status is not None:
            return Verdict(status, problem.epoch, dict(problem.evidence), names)
    return Verdict("stable", None, _final_evidence(ctx), names)


def confident_failure(
    history: History,
    cfg: MonitorConfig,
    loss: str,
    *,
    n_modes: int | None = None,
    patience: int = 2,
    statuses: Sequence[str] = ("mode_collapse", "d_dominance"),
) -> Verdict | None:
    """The verdict to stop a run on now, or None to let it train on.

    Divergence is confident at once. A failure in `statuses` is confident when the verdict
    has been that same failure at each of the last `patience` evaluation epochs (records
    with quality metrics) and the latest record is one of them: a collapse that a later
    evaluation no longer shows would not have been stopped.
    """
    if patience < 1:
        raise ValueError(f"monitor: patience must be >= 1, got {patience}")
    now = verdict(history, cfg, loss, n_modes=n_modes)
    if now.status == "diverged":
        return now
    if now.status not in statuses or not any(k in history[-1] for k in _EVAL_KEYS):
        return None
    evaluations = [i for i, rec in enumerate(history) if any(k in rec for k in _EVAL_KEYS)]
    if len(evaluations) < patience:
        return None
    for i in evaluations[-patience:-1]:
        if verdict(history[: i + 1], cfg, loss, n_modes=n_modes).status != now.status:
            return None
    return now
