"""Per-epoch console output in the block format of the GAN training guide.

The layout is 001's "Training Log Output" (../shared/seeds/001_f2814c4aeb27dcae.txt):
a heavy rule, ``Epoch e/E [t s]``, a light rule, then Losses / Weights / Stability rows
(and a Health row: the monitor's phase and health, seeds/004), a closing heavy rule and,
on evaluation epochs, the "Computing quality metrics..." line and the Quality row. IS and
KID print as mean±std. Figures with a band in the guide's tables carry it in brackets:
Clip%, D/G ratio, IS, PixVar, and FID only on the Inception scale (the guide's FID bands are
Inception's; the default classifier-space FID is printed as "FID (classifier)" and has no
band). Formatting is a pure function of one record, so the training step never prints;
`ConsoleSink` is the only writer.
"""

from __future__ import annotations

import math
import sys
from collections.abc import Callable, Mapping
from typing import Any, TextIO

from .monitor import RunSummary, Verdict

__all__ = [
    "RULE_WIDTH",
    "ConsoleSink",
    "band",
    "fid_label",
    "format_epoch",
    "format_summary",
    "format_verdict",
]

RULE_WIDTH = 75  # the guide's rule length
_HEAVY = "═" * RULE_WIDTH
_LIGHT = "─" * RULE_WIDTH
_MISSING = "n/a"
COMPUTING = "  Computing quality metrics..."

# The guide's bands (seeds/001), first match wins; figures outside every band get none.
_BANDS: dict[str, tuple[tuple[Callable[[float], bool], str], ...]] = {
    "weights/clip_pct": (  # "Clip% Interpretation"
        (lambda v: v > 50, "high: raise the bound if it persists"),
        (lambda v: v > 20, "normal early"),
        (lambda v: v < 0.5, "ideal"),
        (lambda v: True, "healthy mid"),
    ),
    "stability/dg_ratio": (  # ">1.0 critic strong, 0.05-0.1 balanced, <0.01 possible collapse"
        (lambda v: v > 1.0, "critic strong"),
        (lambda v: 0.05 <= v <= 0.1, "balanced"),
        (lambda v: v < 0.01, "possible collapse"),
    ),
    "quality/is": (
        (lambda v: v > 4.0, "good"),
        (lambda v: v >= 2.0, "moderate"),
        (lambda v: True, "limited"),
    ),
    "quality/pixvar": (
        (lambda v: v < 0.1, "mode collapse"),
        (lambda v: 0.2 <= v <= 0.5, "healthy"),
    ),
    "quality/fid": (
        (lambda v: v <= 50, "excellent"),
        (lambda v: v <= 100, "good"),
        (lambda v: v <= 200, "moderate"),
        (lambda v: v <= 400, "fair"),
        (lambda v: True, "poor"),
    ),
}


def band(key: str, value: Any) -> str | None:
    """The guide's band of a figure ('balanced', 'moderate', ...); None when it has none."""
    try:
        v = float(value)
    except (TypeError, ValueError):
        return None
    if not math.isfinite(v):
        return None
    return next((label for holds, label in _BANDS.get(key, ()) if holds(v)), None)


def fid_label(feature_extractor: str) -> str:
    """How the FID is named wherever it is shown: its scale is the extractor's."""
    return "FID" if feature_extractor == "inception" else f"FID ({feature_extractor})"


def _num(record: Mapping[str, Any], key: str, spec: str, scale: float = 1.0) -> str:
    """`record[key]` formatted; 'n/a' when missing, 'nan'/'inf' as Python writes them."""
    value = record.get(key)
    if value is None:
        return _MISSING
    try:
        return format(float(value) * scale, spec)
    except (TypeError, ValueError):
        return _MISSING


def _banded(record: Mapping[str, Any], key: str, spec: str, unit: str = "") -> str:
    text = _num(record, key, spec)
    if text == _MISSING:
        return text
    label = band(key, record.get(key))
    return f"{text}{unit}" + (f" ({label})" if label else "")


def _with_std(record: Mapping[str, Any], key: str, spec: str) -> str:
    text = _num(record, key, spec)
    if record.get(f"{key}_std") is not None:
        text += "±" + _num(record, f"{key}_std", spec)
    label = band(key, record.get(key))
    return text + (f" ({label})" if label else "")


def _row(label: str, body: str) -> str:
    return f"  {label:<11}│ {body}"


def _header(record: Mapping[str, Any], total_epochs: int | None) -> str:
    epoch = _num(record, "epoch", ".0f")
    text = f"Epoch {epoch}" if total_epochs is None else f"Epoch {epoch}/{total_epochs}"
    if record.get("time/epoch_s") is not None:
        text += f" [{_num(record, 'time/epoch_s', '.2f')}s]"
    return text


def _quality(record: Mapping[str, Any], feature_extractor: str) -> str | None:
    r = record
    fid = (
        _banded(r, "quality/fid", ".1f")
        if feature_extractor == "inception"
        else _num(r, "quality/fid", ".1f")
    )
    fields = (
        ("quality/fid", f"{fid_label(feature_extractor)}: {fid}"),
        ("quality/fid_rel", f"rel: {_num(r, 'quality/fid_rel', '.2f')}"),
        ("quality/kid", f"KID: {_with_std(r, 'quality/kid', '.4f')}"),
        ("quality/is", f"IS: {_with_std(r, 'quality/is', '.2f')}"),
        ("quality/pixvar", f"PixVar: {_banded(r, 'quality/pixvar', '.4f')}"),
        ("quality/classes", f"Classes: {_num(r, 'quality/classes', '.0f')}"),
        ("quality/modes", f"Modes: {_num(r, 'quality/modes', '.0f')}"),
        ("quality/hq_fraction", f"HQ%: {_num(r, 'quality/hq_fraction', '.1f', 100.0)}%"),
        ("quality/kl", f"KL: {_num(r, 'quality/kl', '.3f')}"),
        ("seq/js_2", f"JS2: {_num(r, 'seq/js_2', '.3f')} (rel {_num(r, 'seq/js_rel', '.2f')})"),
        ("seq/unique_tokens", f"Tokens: {_num(r, 'seq/unique_tokens', '.0f')}"),
        ("seq/unique_sequences", f"Uniq: {_num(r, 'seq/unique_sequences', '.1f', 100.0)}%"),
        ("seq/mode_collapse_score", f"Collapse: {_num(r, 'seq/mode_collapse_score', '.2f')}"),
        ("seq/valid_fraction", f"Valid: {_num(r, 'seq/valid_fraction', '.1f', 100.0)}%"),
    )
    parts = [text for key, text in fields if r.get(key) is not None]
    return "  ".join(parts) if parts else None


def format_epoch(
    record: Mapping[str, Any],
    total_epochs: int | None = None,
    feature_extractor: str = "classifier",
) -> str:
    """One epoch's record as the guide's console block (no trailing newline).

    Args:
        record: a per-epoch record (docs/CONTRACTS.md); missing keys print as 'n/a'.
        total_epochs: E in ``Epoch e/E``; None prints ``Epoch e``.
        feature_extractor: the run's ``eval.feature_extractor``, which names the FID's scale.

    Returns:
        The block, lines joined by newlines.
    """
    r = record
    losses = (
        f"D: {_num(r, 'loss/d', '.4f')} (R:{_num(r, 'loss/d_real', '.4f')} "
        f"F:{_num(r, 'loss/d_fake', '.4f')})  G: {_num(r, 'loss/g', '.3f')}  "
        f"W-dist: {_num(r, 'loss/w_dist', '.2f')}"
    )
    weights = (
        f"Critic μ:{_num(r, 'weights/d_mean', '.4f')} σ:{_num(r, 'weights/d_std', '.4f')}  "
        f"Gen μ:{_num(r, 'weights/g_mean', '.4f')} σ:{_num(r, 'weights/g_std', '.4f')}"
    )
    stability = (
        f"D/G Ratio: {_banded(r, 'stability/dg_ratio', '.4f')}  "
        f"Clip%: {_banded(r, 'weights/clip_pct', '.1f', '%')}  "
        f"Var: {_num(r, 'stability/loss_var', '.6f')}"
    )
    lines = [
        _HEAVY,
        _header(r, total_epochs),
        _LIGHT,
        _row("Losses", losses),
        _row("Weights", weights),
        _row("Stability", stability),
    ]
    if isinstance(r.get("monitor/health"), str):
        lines.append(_row("Health", f"{r.get('monitor/phase', _MISSING)} · {r['monitor/health']}"))
    lines.append(_HEAVY)
    quality = _quality(r, feature_extractor)
    if quality is not None:
        lines += ["", COMPUTING, _row("Quality", quality)]
    return "\n".join(lines)


def format_summary(summary: RunSummary) -> str:
    """004's training summary: recent losses as mean ± std, D outputs, health, issues seen."""
    lines = [
        "=" * 50,
        "GAN Training Summary",
        "=" * 50,
        f"Epochs: {summary.epochs} (last {summary.window} below)",
    ]
    for key, name in (("loss/g", "G loss"), ("loss/d", "D loss"), ("loss/w_dist", "W-dist")):
        if key in summary.means:
            lines.append(f"  {name}: {summary.means[key]:.4f} ± {summary.stds[key]:.4f}")
    for key, name in (("d/real", "D(real)"), ("d/fake", "D(fake)")):
        if key in summary.means:
            lines.append(f"  {name}: {summary.means[key]:.4f}")
    lines.append(f"Phase: {summary.phase}")
    lines.append(f"Health status: {summary.health}")
    seen = ", ".join(summary.issues_seen) if summary.issues_seen else "none"
    lines.append(f"Issues seen during the run: {seen}")
    return "\n".join(lines)


def format_verdict(verdict: Verdict) -> str:
    """One line: status, onset and evidence, then every problem seen at the end."""
    if verdict.status == "stable":
        text = "Verdict: stable"
    else:
        evidence = ", ".join(f"{k}={v:.4g}" for k, v in verdict.evidence.items())
        text = f"Verdict: {verdict.status} from epoch {verdict.onset_epoch}"
        if evidence:
            text += f" │ {evidence}"
    if verdict.problems:
        text += f" │ problems: {', '.join(verdict.problems)}"
    return text


class ConsoleSink:
    """Prints each epoch's block to a stream; silent with ``quiet=True``.

    Shares the sink interface ``start / log_params / log(metrics, step) / finish``.
    """

    def __init__(
        self,
        total_epochs: int | None = None,
        *,
        stream: TextIO | None = None,
        quiet: bool = False,
        feature_extractor: str = "classifier",
    ) -> None:
        """
        Args:
            total_epochs: E in ``Epoch e/E``.
            stream: where to print; None means ``sys.stdout`` at the time of each call.
            quiet: print nothing.
            feature_extractor: the run's ``eval.feature_extractor`` (names the FID).
        """
        self.total_epochs = total_epochs
        self.stream = stream
        self.quiet = quiet
        self.feature_extractor = feature_extractor

    def start(self, params: Mapping[str, Any] | None = None) -> None:
        """No-op: the console shows epochs only."""

    def log_params(self, params: Mapping[str, Any]) -> None:
        """No-op: the resolved config is printed by the CLI's --dry-run."""

    def log(self, metrics: Mapping[str, Any], step: int) -> None:
        """Print one epoch's block; `step` stands in for a missing ``epoch`` key."""
        if self.quiet:
            return
        record = metrics if "epoch" in metrics else {**metrics, "epoch": step}
        block = format_epoch(record, self.total_epochs, self.feature_extractor)
        print(block, file=self.stream or sys.stdout, flush=True)

    def finish(self, status: str | None = None) -> None:
        """No-op: nothing to flush or close."""
