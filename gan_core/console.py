"""Per-epoch console output in the block format of the GAN training guide.

The layout is 001's "Training Log Output" (../shared/seeds/001_f2814c4aeb27dcae.txt):
a heavy rule, ``Epoch e/E [t s]``, a light rule, then Losses / Weights / Stability rows
and, on evaluation epochs, a Quality row (inside the block here, since the record already
holds the quality metrics), then a closing heavy rule. Formatting is a pure function of
one record, so the training step never prints; `ConsoleSink` is the only writer.
"""

from __future__ import annotations

import sys
from collections.abc import Mapping
from typing import Any, TextIO

from .monitor import Verdict

__all__ = ["RULE_WIDTH", "format_epoch", "format_verdict", "ConsoleSink"]

RULE_WIDTH = 75  # the guide's rule length
_HEAVY = "═" * RULE_WIDTH
_LIGHT = "─" * RULE_WIDTH
_MISSING = "n/a"

# Quality row: (record key, label, format spec, scale); only keys present are shown.
_QUALITY_FIELDS = (
    ("quality/fid", "FID: ", ".1f", 1.0),
    ("quality/kid", "KID: ", ".4f", 1.0),
    ("quality/is", "IS: ", ".2f", 1.0),
    ("quality/pixvar", "PixVar: ", ".4f", 1.0),
    ("quality/modes", "Modes: ", ".0f", 1.0),
    ("quality/hq_fraction", "HQ%: ", ".1f", 100.0),
    ("quality/kl", "KL: ", ".3f", 1.0),
)


def _num(record: Mapping[str, Any], key: str, spec: str, scale: float = 1.0) -> str:
    """`record[key]` formatted; 'n/a' when missing, 'nan'/'inf' as Python writes them."""
    value = record.get(key)
    if value is None:
        return _MISSING
    try:
        return format(float(value) * scale, spec)
    except (TypeError, ValueError):
        return _MISSING


def _row(label: str, body: str) -> str:
    return f"  {label:<11}│ {body}"


def _header(record: Mapping[str, Any], total_epochs: int | None) -> str:
    epoch = _num(record, "epoch", ".0f")
    text = f"Epoch {epoch}" if total_epochs is None else f"Epoch {epoch}/{total_epochs}"
    if record.get("time/epoch_s") is not None:
        text += f" [{_num(record, 'time/epoch_s', '.2f')}s]"
    return text


def _quality(record: Mapping[str, Any]) -> str | None:
    parts = [
        label + _num(record, key, spec, scale) + ("%" if key == "quality/hq_fraction" else "")
        for key, label, spec, scale in _QUALITY_FIELDS
        if record.get(key) is not None
    ]
    return "  ".join(parts) if parts else None


def format_epoch(record: Mapping[str, Any], total_epochs: int | None = None) -> str:
    """One epoch's record as the guide's console block (no trailing newline).

    Args:
        record: a per-epoch record (docs/CONTRACTS.md); missing keys print as 'n/a'.
        total_epochs: E in ``Epoch e/E``; None prints ``Epoch e``.

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
    clip = _num(r, "weights/clip_pct", ".1f")
    stability = (
        f"D/G Ratio: {_num(r, 'stability/dg_ratio', '.4f')}  "
        f"Clip%: {clip}{'' if clip == _MISSING else '%'}  "
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
    quality = _quality(r)
    if quality is not None:
        lines.append(_row("Quality", quality))
    lines.append(_HEAVY)
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
        self, total_epochs: int | None = None, *, stream: TextIO | None = None, quiet: bool = False
    ) -> None:
        """
        Args:
            total_epochs: E in ``Epoch e/E``.
            stream: where to print; None means ``sys.stdout`` at the time of each call.
            quiet: print nothing.
        """
        self.total_epochs = total_epochs
        self.stream = stream
        self.quiet = quiet

    def start(self, params: Mapping[str, Any] | None = None) -> None:
        """No-op: the console shows epochs only."""

    def log_params(self, params: Mapping[str, Any]) -> None:
        """No-op: the resolved config is printed by the CLI's --dry-run."""

    def log(self, metrics: Mapping[str, Any], step: int) -> None:
        """Print one epoch's block; `step` stands in for a missing ``epoch`` key."""
        if self.quiet:
            return
        record = metrics if "epoch" in metrics else {**metrics, "epoch": step}
        print(format_epoch(record, self.total_epochs), file=self.stream or sys.stdout, flush=True)

    def finish(self, status: str | None = None) -> None:
        """No-op: nothing to flush or close."""
