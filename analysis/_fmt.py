"""Small formatting helpers shared by the evidence, fixes and reports."""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence

_MAX_SEGMENTS = 8


def join_words(items: Sequence[str]) -> str:
    """'a', 'a and b', 'a, b and c'."""
    items = list(items)
    if not items:
        return ""
    if len(items) == 1:
        return items[0]
    return ", ".join(items[:-1]) + " and " + items[-1]


def compress(values: Iterable) -> list[str]:
    """Sorted values as segments, consecutive integers folded into ranges: [1-6, 8, 10]."""
    values = sorted(set(values), key=_sort_key)
    if not values or not all(isinstance(v, int) for v in values):
        return [str(v) for v in values]
    segments, start, prev = [], values[0], values[0]
    for v in values[1:]:
        if v == prev + 1:
            prev = v
            continue
        segments.append(_segment(start, prev))
        start = prev = v
    segments.append(_segment(start, prev))
    return segments


def _segment(start: int, end: int) -> str:
    if start == end:
        return str(start)
    if end == start + 1:
        return f"{start}, {end}"
    return f"{start}-{end}"


def _sort_key(v):
    return (0, v, "") if isinstance(v, (int, float)) else (1, 0, str(v))


def values_phrase(values: Iterable, limit: int = _MAX_SEGMENTS) -> str:
    """'1-6, 8 and 10', shortened to the first segments and a count when long."""
    values = list(values)
    segments = compress(values)
    if len(segments) > limit:
        return ", ".join(segments[:limit]) + f", ... ({len(set(values))} in all)"
    return join_words(segments)


def units_phrase(unit: str, values: Iterable) -> str:
    """'seed 7', 'seeds 1-6 and 8'."""
    values = list(values)
    word = unit if len(set(values)) == 1 else unit + "s"
    return f"{word} {values_phrase(values)}"


def batches_phrase(values: Iterable) -> str:
    """'64, 256 and 1024' (never folded into ranges)."""
    return join_words([str(v) for v in sorted(set(values))])


def fmt_p(p: float) -> str:
    """A p-value for people: '<0.001' or three decimals."""
    if p is None or (isinstance(p, float) and math.isnan(p)):
        return "n/a"
    return "<0.001" if p < 0.001 else f"{p:.3f}"


def p_eq(p: float) -> str:
    """'p<0.001' or 'p=0.012'."""
    text = fmt_p(p)
    return "p" + text if text.startswith("<") else "p=" + text


def fmt_num(x, digits: int = 3) -> str:
    """A float with a few significant digits; '' for missing."""
    if x is None:
        return ""
    try:
        x = float(x)
    except (TypeError, ValueError):
        return str(x)
    if math.isnan(x):
        return ""
    return f"{x:.{digits}g}"


def fmt_pct(x) -> str:
    """A share in [0, 1] as a percentage; '' for missing."""
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return ""
    pct = 100 * float(x)
    # 99.6% must not print as 100%: near the ends, one decimal.
    return f"{pct:.1f}%" if (0 < pct < 1 or 99 < pct < 100) else f"{pct:.0f}%"
