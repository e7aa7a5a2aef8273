"""Health monitor: a run's phase, its problems and a verdict, from its metric history.

Everything here is a pure function of the per-epoch records of docs/CONTRACTS.md, so
the same code judges a live run (called every epoch), a checkpointed one and a row
group read back from ``epochs.parquet``. Failures are data: nothing here raises on
NaN; a NaN loss is evidence of divergence. Thresholds live in `MonitorConfig`, each
with its unit and source; `bench/verdicts.py` measures the rules on labelled runs.

Sources: "001" is ../shared/seeds/001_f2814c4aeb27dcae.txt (GAN Training Guide),
"004" is ../shared/seeds/004_a9ccca2a940fbf32.txt (Training Dynamics).

Rules, in precedence order (the first that holds at the end decides the verdict):

- diverged -> ``diverged``: in ANY epoch a loss/* non-finite or |loss| > loss_explode, or
  weights/{d,g}_abs_mean non-finite or > weight_explode, or generated samples non-finite
  (quality/nonfinite > 0) while the losses are finite. Terminal (STYLE.md habit 11). The
  onset is the first epoch of the sustained growth that ended in the explosion: walking
  back from it, each epoch grown at least divergence_rate-fold from the one before and
  above divergence_growth x the key's early level (the median of its first `window`
  epochs).
- mode_collapse -> ``mode_collapse``: any decisive signal below holds at the end.
- vanishing_gradients -> ``vanishing_gradients``: grad/g_norm < vanishing_grad (004),
  stuck; or its median over each window below vanishing_grad_drop x its own early peak
  (three orders of magnitude), stuck.
- d_too_strong -> ``d_dominance``: D(real) > 0.95 and D(fake) < 0.05 (004, probability
  losses), stuck; or, for every loss, D accuracy >= dominance_accuracy with the margin
  between D's real and fake outputs (d/real - d/fake; loss/w_dist for critics) at least
  dominance_margin_keep x its early level, stuck: D separates every sample and G is not
  closing the gap (a hinge D at loss 0, a critic whose W-distance never falls, an NS D
  at 0.93/0.07).
- poor_quality -> ``poor_quality``: at the latest evaluation quality/hq_fraction <
  poor_quality_hq_fraction (mixtures), quality/fid_rel > poor_quality_fid_rel (images:
  the FID nearer noise than held-out real data), quality/fid > poor_quality_fid (off by
  default: 001's bands are Inception's), or quality/is < poor_quality_is (001); sequence
  GANs: seq/js_rel > seq_poor_js_rel (the bigram JS nearer uniform noise than real data)
  or, for the code set, seq/valid_fraction < seq_poor_valid.
- warnings, which decide nothing: d_too_weak (004 "G is winning", outside the converged
  band), d_at_chance (004: BCE D loss near log 2 with chance accuracy: "may need more D
  capacity"), losses_flat (004 "both losses flat: training stuck"), persistent_clipping
  (001 Clip% > 50%), low_dg_ratio (001 D/G < 0.01), low_distance_spread (004
  detect_mode_collapse: pairwise-distance std < 0.1 x mean, "possible partial collapse";
  a warning because a healthy high-dimensional sample concentrates its distances too).

Mode-collapse signals (decisive unless marked):

- loss signature (BCE losses): loss/d in 0.72-0.75, D accuracy within 0.05 of 0.5 and
  G accuracy >= 0.99, stuck (001 "Mode Collapse Triage / Symptoms").
- PixVar (images): latest quality/pixvar < collapse_pixvar (001), for data-like samples
  (below): an untrained G's nearly constant output is garbage, not a collapse.
- few modes (mixtures, with ``n_modes``): latest quality/modes <= collapse_modes_fraction x
  n_modes with quality/hq_fraction >= poor_quality_hq_fraction: G covers part of the data
  well (004 "Cluster analysis").
- partial collapse (mixtures, with ``n_modes``): latest quality/modes_reached <=
  collapse_modes_fraction x n_modes, diversity/ratio < collapse_spread_ratio and
  quality/near_fraction >= collapse_near_fraction: however blurry, most samples sit on the
  data's support, in one or a few blobs or on a short arc, far less spread than the data.
  A G spread over the whole support but off the modes reaches every mode, and one that has
  not found the data (a blob between the modes, as at initialisation) has few samples
  near a mode: both poor quality, not collapse.
- few classes (labelled images): latest quality/class_coverage <= collapse_class_coverage,
  for data-like samples.
- near-duplicate samples (images): latest diversity/min < collapse_min_distance (004), for
  data-like samples.
- "data-like" images: quality/fid_rel < collapse_max_fid_rel (nearer the data than noise)
  or no relative FID. Collapse is G covering part of the data; a classifier sorts noise and
  an untrained G's grey output into few classes too, and those are poor quality.
- one point (any data): latest diversity/ratio < collapse_diversity_ratio.
- constant translation (CycleGAN records, with ``cycle/g_change``): latest diversity/ratio
  (G(a)'s spread over domain B's) < cycle_constant_ratio: G maps every image to one.
- few sequences (sequence GANs, with ``seq/bigram_precision``): samples whose bigrams are
  mostly the data's (precision >= seq_collapse_precision) and that are few
  (seq/unique_sequences < seq_collapse_unique), use few tokens (seq/token_coverage <
  seq_collapse_tokens) or repeat their n-grams (seq/mode_collapse_score > seq_collapse_score).
  An untrained G's near-constant output is not data-like: poor quality, not collapse.
- supporting only: D(fake) nearly constant (004 GANMonitor), added to the evidence.

CycleGAN rules (docs/families.md; they read keys only the cyclegan family writes):

- g_identity -> ``poor_quality``: latest cycle/g_change < cycle_identity_change: G(a) is
  nearly a, the generator learned the identity instead of the translation.
- cycle_stalled -> ``d_dominance``: the mean of loss/cycle_a + loss/cycle_b over the last
  window fell less than cycle_stall_drop of the window before, while the mean D accuracy
  is >= cycle_stall_accuracy: D wins and G no longer improves its cycle.

"Stuck" means the condition held in each of the last ``cfg.window`` epochs; the onset is
the first epoch of that unbroken trailing run, so a problem that appeared and resolved is
not reported, and D too strong in the first epochs only is normal early training (004
"Phase 1"). Rules relative to a run's own early level need two windows of history. Quality
rules read the latest evaluation; their onset is the first of the trailing bad evaluations.

Progressive growing (records with ``progressive/resolution``): losses, D's margin and G's
gradient norm jump when G and D grow, so the early level of the relative rules (dominance
margin, vanishing-gradient drop, divergence growth, W-distance phase) is that of the current
resolution, those rules need two windows at it, and a jump into a resolution is no growth
towards divergence (whose explosion limits are absolute, so a jump alone never decides it).

Loss awareness: minimax and non_saturating report D outputs as probabilities, so every
rule applies. least_squares reports raw scores that, with the default targets (a, b) =
(0, 1), sit on the same scale (Mao et al. 2017, Prop. 1): the D(real)/D(fake) bands and
phases apply, the BCE loss bands do not. wasserstein and hinge have unbounded critic
scores: no probability band and no loss band; dominance reads their accuracy and margin,
and their phase follows the W-distance trend.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from .config import LOSS_TYPES, MonitorConfig
from .metric_keys import EVAL_KEYS, IMAGE_KEYS, MIXTURE_KEYS, NONFINITE_KEY, SEQUENCE_KEYS

__all__ = [
    "PHASES",
    "STATUSES",
    "PROBLEMS",
    "PROBLEM_LABELS",
    "Problem",
    "Health",
    "RunSummary",
    "Verdict",
    "assess",
    "confident_failure",
    "divergence",
    "health_line",
    "summarize",
    "verdict",
]

Record = Mapping[str, Any]
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

_PROBABILITY = frozenset({"minimax", "non_saturating"})  # D outputs are probabilities
_BANDED = _PROBABILITY | {"least_squares"}  # D outputs on a [0, 1] scale
_BCE = _PROBABILITY  # the loss bands are BCE values

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
_QUALITY_KEYS = IMAGE_KEYS + MIXTURE_KEYS + SEQUENCE_KEYS


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
    stage: int = 0  # index of the first record at the latest record's resolution (progressive)


@dataclass(frozen=True)
class _Finding:
    start: int  # index into history of the onset record
    evidence: dict[str, float]
    message: str


@dataclass(frozen=True)
class _Rule:
    name: str
    status: str | None  # the verdict it decides; None: a warning that decides nothing
    label: str  # the words of 004's health line
    check: Callable[[_Context], _Finding | None]


# ---------------------------------------------------------------- record helpers
def _value(rec: Record, key: str) -> float:
    """The record's value as a float; NaN when missing, null (parquet) or not a number."""
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


def _early_level(history: History, key: str, n: int, peak: bool = False) -> float:
    """Median (or, with `peak`, the maximum) of |key| over the first `n` epochs that hold it."""
    values = []
    for rec in history:
        v = _value(rec, key)
        if math.isfinite(v):
            values.append(abs(v))
            if len(values) == n:
                break
    if not values:
        return math.nan
    return max(values) if peak else statistics.median(values)


def _stage_start(history: History, index: int) -> int:
    """First index of the run of records at the resolution of record `index`; 0 without one.

    The progressive family writes `progressive/resolution`: when G and D grow, losses, D's
    margin and gradient norms jump (Karras et al. 2018), so the rules relative to a run's
    early level read the early level of the current resolution, and a jump into it is no
    growth towards divergence. Records of other families lack the key: the whole history.
    """
    side = _value(history[index], "progressive/resolution")
    if not math.isfinite(side):
        return 0
    while index > 0 and _value(history[index - 1], "progressive/resolution") == side:
        index -= 1
    return index


def _trailing_start(history: History, holds: Callable[[Record], bool]) -> int | None:
    """Index of the first record of the unbroken trailing run where `holds`; None if the last fails.

    Scans backwards only while the condition holds, so a healthy run costs O(1).
    """
    i = len(history)
    while i > 0 and holds(history[i - 1]):
        i -= 1
    return i if i < len(history) else None


def _is_evaluation(rec: Record) -> bool:
    return any(k in rec for k in EVAL_KEYS)


def _latest_evaluation(history: History) -> int | None:
    """Index of the last record holding any evaluation key; found once per call."""
    for i in range(len(history) - 1, -1, -1):
        if _is_evaluation(history[i]):
            return i
    return None


def _evaluated(ctx: _Context, key: str) -> float:
    """`key` at the latest evaluation; NaN when that evaluation lacks it."""
    return math.nan if ctx.last_eval is None else _value(ctx.history[ctx.last_eval], key)


def _bad_evaluations(ctx: _Context, bad: Callable[[Record], bool]) -> int | None:
    """Index of the first evaluation in the trailing run of bad ones; None if the latest is fine."""
    start = ctx.last_eval
    if start is None or not bad(ctx.history[start]):
        return None
    for i in range(start - 1, -1, -1):
        rec = ctx.history[i]
        if not _is_evaluation(rec):
            continue
        if not bad(rec):
            break
        start = i
    return start


def _shown(evidence: Mapping[str, float]) -> str:
    return "  ".join(f"{k}={v:.4g}" for k, v in evidence.items())


# ---------------------------------------------------------------- "stuck" rules
Predicate = Callable[[Record, _Context], bool]


def _stuck(
    predicate: Predicate,
    keys: tuple[str, ...],
    message: str,
    losses: frozenset[str] = frozenset(LOSS_TYPES),
    relative: bool = False,
) -> Callable[[_Context], _Finding | None]:
    """A check that holds when `predicate` held in each of the last `cfg.window` epochs.

    `relative` rules compare with the run's early level, so they need two windows of epochs.
    """

    def check(ctx: _Context) -> _Finding | None:
        if ctx.loss not in losses:
            return None
        n = ctx.cfg.window
        if relative and len(ctx.history) - ctx.stage < 2 * n:
            return None
        start = _trailing_start(ctx.history, lambda rec: predicate(rec, ctx))
        if start is None or len(ctx.history) - start < n:
            return None
        evidence = _window_means(ctx, keys)
        run = len(ctx.history) - start
        return _Finding(start, evidence, f"{message} for {run} epochs ({_shown(evidence)})")

    return check


def _d_strong(rec: Record, ctx: _Context) -> bool:
    cfg = ctx.cfg
    return _value(rec, "d/real") > cfg.d_strong_real and _value(rec, "d/fake") < cfg.d_strong_fake


def _margin(rec: Record, loss: str) -> float:
    """D's real-fake separation in its own output units."""
    if loss in _BANDED:
        return _value(rec, "d/real") - _value(rec, "d/fake")
    return _value(rec, "loss/w_dist")


def _early_margin(ctx: _Context) -> float:
    early = ctx.history[ctx.stage : ctx.stage + ctx.cfg.window]
    return _mean([_margin(r, ctx.loss) for r in early])


def _d_separates(rec: Record, ctx: _Context) -> bool:
    """D classifies (nearly) every sample right and keeps its early margin."""
    if not _value(rec, "d/accuracy") >= ctx.cfg.dominance_accuracy:
        return False
    early = _early_margin(ctx)
    return early > 0 and _margin(rec, ctx.loss) >= ctx.cfg.dominance_margin_keep * early


def _in_converged_band(real: float, fake: float, cfg: MonitorConfig) -> bool:
    tol = cfg.converged_tol
    return abs(real - 0.5) < tol and abs(fake - 0.5) < tol


def _d_weak(rec: Record, ctx: _Context) -> bool:
    real, fake = _value(rec, "d/real"), _value(rec, "d/fake")
    weak = real < ctx.cfg.d_weak_real and fake > ctx.cfg.d_weak_fake
    # 0.5/0.5 is the Nash equilibrium (004 Phase 3), not a struggling D.
    return weak and not _in_converged_band(real, fake, ctx.cfg)


def _d_at_chance(rec: Record, ctx: _Context) -> bool:
    cfg = ctx.cfg
    return (
        abs(_value(rec, "loss/d") - math.log(2)) < cfg.log2_tol
        and abs(_value(rec, "d/accuracy") - 0.5) <= cfg.collapse_d_accuracy_tol
    )


def _vanishing(rec: Record, ctx: _Context) -> bool:
    return _value(rec, "grad/g_norm") < ctx.cfg.vanishing_grad


def _clipping(rec: Record, ctx: _Context) -> bool:
    return _value(rec, "weights/clip_pct") > ctx.cfg.clip_persistent_pct


def _low_dg(rec: Record, ctx: _Context) -> bool:
    return _value(rec, "stability/dg_ratio") < ctx.cfg.dg_ratio_min


def _collapse_signature(rec: Record, ctx: _Context) -> bool:
    cfg = ctx.cfg
    lo, hi = cfg.collapse_d_loss
    return (
        lo <= _value(rec, "loss/d") <= hi
        and abs(_value(rec, "d/accuracy") - 0.5) <= cfg.collapse_d_accuracy_tol
        and _value(rec, "g/accuracy") >= cfg.collapse_g_accuracy
    )


def _check_losses_flat(ctx: _Context) -> _Finding | None:
    """004 "Both losses flat: training stuck": D and G loss barely move over the window."""
    n = ctx.cfg.window
    if len(ctx.history) < n:
        return None
    evidence = {}
    for key in ("loss/d", "loss/g"):
        values = [_value(r, key) for r in ctx.history[-n:]]
        if not all(math.isfinite(v) for v in values) or n < 2:
            return None
        spread = statistics.pstdev(values)
        if spread >= ctx.cfg.flat_tol * max(abs(statistics.fmean(values)), 1e-12):
            return None
        evidence[f"{key}_std"] = spread
    return _Finding(len(ctx.history) - n, evidence, f"D and G losses flat ({_shown(evidence)})")


# ---------------------------------------------------------------- divergence
def divergence(rec: Record, cfg: MonitorConfig) -> dict[str, float]:
    """One record's evidence of divergence: exploded losses or weights, or non-finite samples.

    Empty for a healthy record. The trainer stops a member on the first non-empty one.
    """
    bad = {}
    for keys, limit in ((_LOSS_KEYS, cfg.loss_explode), (_WEIGHT_KEYS, cfg.weight_explode)):
        for k in keys:
            v = rec.get(k)
            if v is not None and not abs(v) <= limit:  # also true for NaN and inf
                bad[k] = float(v)
    if _value(rec, NONFINITE_KEY) > 0:
        bad[NONFINITE_KEY] = _value(rec, NONFINITE_KEY)
    return bad


def _growth_start(ctx: _Context, index: int, key: str) -> int:
    """First index of the sustained growth of |key| that ends in the explosion at `index`.

    Walking back from the explosion, an epoch belongs to the growth while it grew by at least
    divergence_rate from the epoch before and stands above divergence_growth x the key's early
    level: geometric growth, not the slow rise of a healthy critic's loss.
    """
    cfg, stage = ctx.cfg, _stage_start(ctx.history, index)
    floor = cfg.divergence_growth * _early_level(ctx.history[stage:index], key, cfg.window)
    start = index
    for j in range(index - 1, stage, -1):
        v, before = abs(_value(ctx.history[j], key)), abs(_value(ctx.history[j - 1], key))
        if not (math.isfinite(v) and v > floor and v >= cfg.divergence_rate * before):
            break
        start = j
    return start


def _check_diverged(ctx: _Context) -> _Finding | None:
    """First epoch with exploded losses, weights or samples, anywhere: divergence is terminal.

    The one full scan per call (a few dict lookups per epoch): a NaN never "resolves".
    """
    for i, rec in enumerate(ctx.history):
        bad = divergence(rec, ctx.cfg)
        if not bad:
            continue
        start = min((_growth_start(ctx, i, k) for k in bad if k != NONFINITE_KEY), default=i)
        shown = ", ".join(f"{k}={v:.4g}" for k, v in bad.items())
        grew = "" if start == i else f", growing from epoch {_epoch(ctx.history, start)}"
        return _Finding(start, bad, f"diverged in epoch {_epoch(ctx.history, i)}: {shown}{grew}")
    return None


# ---------------------------------------------------------------- evaluation signals
def _signal_at_evaluations(
    bad: Callable[[Record, _Context], bool],
    keys: tuple[str, ...],
    what: str,
) -> Callable[[_Context], _Finding | None]:
    """A signal that holds when `bad` holds at the latest evaluation (onset: first of its run)."""

    def check(ctx: _Context) -> _Finding | None:
        start = _bad_evaluations(ctx, lambda rec: bad(rec, ctx))
        if start is None:
            return None
        evidence = {k: _evaluated(ctx, k) for k in keys}
        evidence = {k: v for k, v in evidence.items() if math.isfinite(v)}
        return _Finding(start, evidence, f"{what} ({_shown(evidence)})")

    return check


def _below(rec: Record, key: str, limit: float | None, inclusive: bool = False) -> bool:
    v = _value(rec, key)  # NaN is never below anything
    return limit is not None and (v <= limit if inclusive else v < limit)


def _modes_limit(ctx: _Context) -> float | None:
    return None if ctx.n_modes is None else ctx.cfg.collapse_modes_fraction * ctx.n_modes


def _few_modes(rec: Record, ctx: _Context) -> bool:
    """Few modes whose samples sit on them: G covers part of the data well.

    Few modes with mostly low-quality samples is either partial collapse (the samples are
    bunched: `_partial_collapse`) or G has not found the data (poor quality).
    """
    return _below(rec, "quality/modes", _modes_limit(ctx), inclusive=True) and not _below(
        rec, "quality/hq_fraction", ctx.cfg.poor_quality_hq_fraction
    )


def _partial_collapse(rec: Record, ctx: _Context) -> bool:
    cfg = ctx.cfg
    return (
        _below(rec, "quality/modes_reached", _modes_limit(ctx), inclusive=True)
        and _below(rec, "diversity/ratio", cfg.collapse_spread_ratio)
        and not _below(rec, "quality/near_fraction", cfg.collapse_near_fraction)
    )


def _few_classes(rec: Record, ctx: _Context) -> bool:
    cfg = ctx.cfg
    return _below(
        rec, "quality/class_coverage", cfg.collapse_class_coverage, inclusive=True
    ) and _data_like(rec, ctx)


def _near_duplicates(rec: Record, ctx: _Context) -> bool:
    # 2-D mixtures (quality/modes present): tight modes make tiny distances healthy.
    return (
        "quality/modes" not in rec
        and _below(rec, "diversity/min", ctx.cfg.collapse_min_distance)
        and _data_like(rec, ctx)
    )


def _data_like(rec: Record, ctx: _Context) -> bool:
    """Images nearer the data than noise (relative FID), or no relative FID to tell."""
    fid_rel = _value(rec, "quality/fid_rel")
    return not math.isfinite(fid_rel) or fid_rel < ctx.cfg.collapse_max_fid_rel


def _low_pixvar(rec: Record, ctx: _Context) -> bool:
    return _below(rec, "quality/pixvar", ctx.cfg.collapse_pixvar) and _data_like(rec, ctx)


_COLLAPSE_SIGNALS: tuple[Callable[[_Context], _Finding | None], ...] = (
    _stuck(
        _collapse_signature,
        ("loss/d", "d/accuracy", "g/accuracy"),
        "D loss in the collapse band, D at chance, G fooling D",
        _BCE,
    ),
    _signal_at_evaluations(
        _low_pixvar, ("quality/pixvar", "quality/fid_rel"), "low pixel variance"
    ),
    _signal_at_evaluations(
        _few_modes, ("quality/modes", "quality/hq_fraction"), "few modes captured"
    ),
    _signal_at_evaluations(
        _partial_collapse,
        ("quality/modes_reached", "quality/near_fraction", "diversity/ratio"),
        "samples bunched on few modes",
    ),
    _signal_at_evaluations(
        _few_classes,
        ("quality/classes", "quality/class_coverage", "quality/class_kl", "quality/fid_rel"),
        "few classes generated",
    ),
    _signal_at_evaluations(
        _near_duplicates, ("diversity/min", "quality/fid_rel"), "near-duplicate samples"
    ),
    _signal_at_evaluations(
        lambda rec, ctx: _below(rec, "diversity/ratio", ctx.cfg.collapse_diversity_ratio),
        ("diversity/ratio",),
        "samples far less spread than the data",
    ),
    _signal_at_evaluations(
        lambda rec, ctx: _constant_translation(rec, ctx),
        ("diversity/ratio", "cycle/g_change"),
        "G translates every image to nearly the same one",
    ),
    _signal_at_evaluations(
        lambda rec, ctx: _few_sequences(rec, ctx),
        (
            "seq/unique_sequences",
            "seq/token_coverage",
            "seq/mode_collapse_score",
            "seq/bigram_precision",
        ),
        "G repeats a few data-like sequences",
    ),
)


def _few_sequences(rec: Record, ctx: _Context) -> bool:
    """Sequence GANs: data-like samples (their bigrams mostly real) that are few and alike."""
    cfg = ctx.cfg
    if "seq/bigram_precision" not in rec or _below(
        rec, "seq/bigram_precision", cfg.seq_collapse_precision
    ):
        return False
    return (
        _below(rec, "seq/unique_sequences", cfg.seq_collapse_unique)
        or _below(rec, "seq/token_coverage", cfg.seq_collapse_tokens)
        or _value(rec, "seq/mode_collapse_score") > cfg.seq_collapse_score
    )


def _constant_translation(rec: Record, ctx: _Context) -> bool:
    return "cycle/g_change" in rec and _below(rec, "diversity/ratio", ctx.cfg.cycle_constant_ratio)


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
        spread = statistics.pstdev(fakes)
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


def _check_d_dominance(ctx: _Context) -> _Finding | None:
    keys = ("d/real", "d/fake", "d/accuracy", "loss/w_dist", "stability/dg_ratio", "grad/g_norm")
    found = _strong_band(ctx) or _separating(ctx)
    if found is None:
        return None
    early = _early_margin(ctx)
    evidence = {k: v for k, v in _window_means(ctx, keys).items() if math.isfinite(v)}
    if math.isfinite(early):
        evidence["d/early_margin"] = early
    return _Finding(found.start, evidence, found.message)


_strong_band = _stuck(_d_strong, ("d/real", "d/fake"), "D separates real from fake", _BANDED)
_separating = _stuck(
    _d_separates,
    ("d/accuracy",),
    "D classifies every sample right and keeps its early margin",
    relative=True,
)

# (key, limit name, bad when the value is "below" or "above" the limit)
_QUALITY_LIMITS = (
    ("quality/hq_fraction", "poor_quality_hq_fraction", "below"),
    ("quality/fid_rel", "poor_quality_fid_rel", "above"),
    ("quality/fid", "poor_quality_fid", "above"),
    ("quality/is", "poor_quality_is", "below"),
    ("seq/js_rel", "seq_poor_js_rel", "above"),
    ("seq/valid_fraction", "seq_poor_valid", "below"),
)


def _poor(rec: Record, key: str, limit: float | None, side: str) -> bool:
    v = _value(rec, key)
    return limit is not None and (v < limit if side == "below" else v > limit)


def _check_poor_quality(ctx: _Context) -> _Finding | None:
    found = []
    for key, name, side in _QUALITY_LIMITS:
        limit = getattr(ctx.cfg, name)
        start = _bad_evaluations(ctx, lambda rec, k=key, t=limit, s=side: _poor(rec, k, t, s))
        if start is not None:
            value = _evaluated(ctx, key)
            found.append(_Finding(start, {key: value}, f"{key}={value:.4g} {side} {limit:.4g}"))
    if not found:
        return None
    evidence = {k: v for f in found for k, v in f.evidence.items()}
    message = "poor quality at the latest evaluation: " + "; ".join(f.message for f in found)
    return _Finding(min(f.start for f in found), evidence, message)


def _check_distance_spread(ctx: _Context) -> _Finding | None:
    def bad(rec: Record) -> bool:
        mean = _value(rec, "diversity/mean")
        return _value(rec, "diversity/std") < ctx.cfg.distance_spread * mean

    start = _bad_evaluations(ctx, bad)
    if start is None:
        return None
    evidence = {k: _evaluated(ctx, k) for k in ("diversity/std", "diversity/mean")}
    return _Finding(start, evidence, f"pairwise distances uniform ({_shown(evidence)})")


def _check_vanishing(ctx: _Context) -> _Finding | None:
    found = _vanishing_absolute(ctx) or _vanishing_drop(ctx)
    if found is None:
        return None
    early = _early_level(ctx.history[ctx.stage :], "grad/g_norm", ctx.cfg.window, peak=True)
    if math.isfinite(early):
        found.evidence["grad/g_norm_early"] = early
    return found


_vanishing_absolute = _stuck(_vanishing, ("grad/g_norm", "d/fake"), "G gradient norm below 1e-6")


def _vanishing_drop(ctx: _Context) -> _Finding | None:
    """G's gradient norm, as a median over each window, 1000x below its early peak, stuck.

    Gradient norms jump by orders of magnitude from one epoch to the next; the window median
    keeps one spike from hiding a vanished gradient. The peak of the first window is the early
    level: a D that saturates within the first epochs has already cut the median.
    """
    n, stage = ctx.cfg.window, ctx.stage
    g = [_value(r, "grad/g_norm") for r in ctx.history]
    if len(g) - stage < 2 * n:
        return None
    early = _early_level(ctx.history[stage:], "grad/g_norm", n, peak=True)
    limit = ctx.cfg.vanishing_grad_drop * early

    def low(t: int) -> bool:
        values = [v for v in g[max(stage, t - n + 1) : t + 1] if math.isfinite(v)]
        return bool(values) and statistics.median(values) < limit

    t = len(g)
    while t > stage + n and low(t - 1):
        t -= 1
    if len(g) - t < n:
        return None
    start = next((i for i in range(max(stage, t - n + 1), len(g)) if g[i] < limit), t)
    evidence = _window_means(ctx, ("grad/g_norm", "d/fake"))
    return _Finding(
        start,
        evidence,
        f"G gradient norm {limit / ctx.cfg.vanishing_grad_drop:.3g} early, "
        f"now 1000x lower for {len(g) - start} epochs ({_shown(evidence)})",
    )


_check_g_identity = _signal_at_evaluations(
    lambda rec, ctx: _below(rec, "cycle/g_change", ctx.cfg.cycle_identity_change),
    ("cycle/g_change",),
    "G(a) nearly equals a: the generator learned the identity",
)


def _check_cycle_stalled(ctx: _Context) -> _Finding | None:
    """CycleGAN: the cycle loss stopped falling over the last window while D wins."""
    n = ctx.cfg.window
    if len(ctx.history) < 2 * n or "loss/cycle_a" not in ctx.history[-1]:
        return None
    cycle = [_value(r, "loss/cycle_a") + _value(r, "loss/cycle_b") for r in ctx.history]
    before, now = _mean(cycle[-2 * n : -n]), _mean(cycle[-n:])
    accuracy = _mean([_value(r, "d/accuracy") for r in ctx.history[-n:]])
    fell = before - now > ctx.cfg.cycle_stall_drop * before
    if not (math.isfinite(now) and math.isfinite(accuracy)) or fell:
        return None
    if accuracy < ctx.cfg.cycle_stall_accuracy:
        return None
    evidence = {"loss/cycle": now, "loss/cycle_before": before, "d/accuracy": accuracy}
    return _Finding(
        len(ctx.history) - n, evidence, f"cycle loss stalled while D wins ({_shown(evidence)})"
    )


_RULES: tuple[_Rule, ...] = (
    _Rule("diverged", "diverged", "diverged", _check_diverged),
    _Rule("mode_collapse", "mode_collapse", "possible mode collapse", _check_mode_collapse),
    _Rule("vanishing_gradients", "vanishing_gradients", "vanishing G gradients", _check_vanishing),
    _Rule("d_too_strong", "d_dominance", "D too strong", _check_d_dominance),
    _Rule("cycle_stalled", "d_dominance", "cycle loss stalled, D wins", _check_cycle_stalled),
    _Rule("g_identity", "poor_quality", "G copies its input", _check_g_identity),
    _Rule("poor_quality", "poor_quality", "poor sample quality", _check_poor_quality),
    _Rule(
        "d_too_weak",
        None,
        "D too weak",
        _stuck(_d_weak, ("d/real", "d/fake"), "D struggling (G winning)", _BANDED),
    ),
    _Rule(
        "d_at_chance",
        None,
        "D at chance (may need more capacity)",
        _stuck(_d_at_chance, ("loss/d", "d/accuracy"), "D loss near log 2 at chance", _BCE),
    ),
    _Rule("losses_flat", None, "losses flat (training stuck)", _check_losses_flat),
    _Rule(
        "persistent_clipping",
        None,
        "persistent clipping",
        _stuck(_clipping, ("weights/clip_pct",), "critic weights at the clip bound (raise it)"),
    ),
    _Rule(
        "low_dg_ratio",
        None,
        "low D/G ratio",
        _stuck(_low_dg, ("stability/dg_ratio",), "D/G loss ratio very low (possible collapse)"),
    ),
    _Rule("low_distance_spread", None, "possible partial collapse", _check_distance_spread),
)
PROBLEMS = tuple(rule.name for rule in _RULES)
PROBLEM_LABELS = {rule.name: rule.label for rule in _RULES}
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
    w = [_value(r, "loss/w_dist") for r in ctx.history[ctx.stage :]]
    w = [v for v in w if math.isfinite(v)]
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
    stage = _stage_start(history, len(history) - 1)
    return _Context(history, cfg, loss, n_modes, _latest_evaluation(history), stage)


def assess(
    history: History, cfg: MonitorConfig, loss: str, *, n_modes: int | None = None
) -> Health:
    """The phase a run is in and the problems it has at the end of `history`.

    Args:
        history: the run's per-epoch records (docs/CONTRACTS.md), oldest first.
        cfg: thresholds.
        loss: resolved loss name (``TrainingConfig.loss``), one of LOSS_TYPES.
        n_modes: number of modes of a 2-D mixture data set (enables the modes rules).

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


def health_line(health: Health) -> str:
    """004's health status: ``Healthy`` or ``Issues: D too strong, ...``."""
    if not health.problems:
        return "Healthy"
    return "Issues: " + ", ".join(PROBLEM_LABELS[p.name] for p in health.problems)


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
    are listed but decide nothing.

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


@dataclass(frozen=True)
class RunSummary:
    """004's training summary: the recent losses, the health now and the issues seen.

    Attributes:
        epochs: epochs in the history.
        window: epochs behind the means and stds.
        means, stds: loss/d, loss/g, loss/w_dist, d/real, d/fake over the last window.
        phase: the phase at the end.
        health: `health_line` at the end.
        issues_seen: every issue label any epoch's ``monitor/health`` named, first seen first.
        verdict: the run's `Verdict`.
    """

    epochs: int
    window: int
    means: dict[str, float]
    stds: dict[str, float]
    phase: str
    health: str
    issues_seen: tuple[str, ...]
    verdict: Verdict

    def to_dict(self) -> dict[str, Any]:
        return {
            "epochs": self.epochs,
            "window": self.window,
            "means": dict(self.means),
            "stds": dict(self.stds),
            "phase": self.phase,
            "health": self.health,
            "issues_seen": list(self.issues_seen),
            "verdict": self.verdict.to_dict(),
        }


def summarize(
    history: History, cfg: MonitorConfig, loss: str, *, n_modes: int | None = None
) -> RunSummary:
    """The run's summary (004 ``print_summary``); arguments and errors as `assess`."""
    ctx = _context(history, cfg, loss, n_modes)
    health = _assess(ctx)
    recent = history[-cfg.window :]
    means, stds = {}, {}
    for key in ("loss/d", "loss/g", "loss/w_dist", "d/real", "d/fake"):
        values = [v for v in (_value(r, key) for r in recent) if math.isfinite(v)]
        if values:
            means[key] = statistics.fmean(values)
            stds[key] = statistics.pstdev(values)
    seen: dict[str, None] = {}
    for rec in history:
        line = rec.get("monitor/health")
        if isinstance(line, str) and line.startswith("Issues: "):
            seen.update(dict.fromkeys(line[len("Issues: ") :].split(", ")))
    return RunSummary(
        epochs=len(history),
        window=min(cfg.window, len(history)),
        means=means,
        stds=stds,
        phase=health.phase,
        health=health_line(health),
        issues_seen=tuple(seen),
        verdict=verdict(history, cfg, loss, n_modes=n_modes),
    )


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
    if now.status not in statuses or not _is_evaluation(history[-1]):
        return None
    evaluations = [i for i, rec in enumerate(history) if _is_evaluation(rec)]
    if len(evaluations) < patience:
        return None
    for i in evaluations[-patience:-1]:
        if verdict(history[: i + 1], cfg, loss, n_modes=n_modes).status != now.status:
            return None
    return now
