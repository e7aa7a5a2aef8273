"""Quality of generated token sequences against the data (the `seq/*` record keys).

n-gram Jensen-Shannon divergences as in Gulrajani et al. 2017's language experiments, placed
between a real subset and uniform noise of the same size; distinct tokens, sequences and
n-grams for mode collapse; and, for the code set, the share of samples that parse.
Definitions and ranges: docs/CONTRACTS.md.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import numpy as np

from .tokens import TokenSet, ngram_counts

__all__ = ["SequenceEvaluator", "js_divergence", "save_text_image"]

_ORDERS = (1, 2, 3, 4)


def js_divergence(p: Counter[int], q: Counter[int]) -> float:
    """Jensen-Shannon divergence of two count tables, in bits (0: same, 1: disjoint)."""
    keys = list(p.keys() | q.keys())
    if not keys:
        return float("nan")
    a = np.array([p.get(k, 0) for k in keys], dtype=np.float64)
    b = np.array([q.get(k, 0) for k in keys], dtype=np.float64)
    a, b = a / a.sum(), b / b.sum()
    m = 0.5 * (a + b)

    def kl(x: np.ndarray) -> float:
        nz = x > 0
        return float(np.sum(x[nz] * np.log2(x[nz] / m[nz])))

    return 0.5 * kl(a) + 0.5 * kl(b)


class SequenceEvaluator:
    """Scores (n, L) token-id samples against the whole data set's n-gram statistics.

    The baselines (a real subset of the evaluation's size and uniform-noise sequences of that
    size) are drawn once from a fixed generator: every evaluation of every run compares
    against the same ones.
    """

    def __init__(self, data: TokenSet, n_samples: int, ngram: int):
        x = data.x.numpy()
        self.vocab, self.ngram = data.vocab_size, ngram
        self.valid = data.valid
        self.decode = data.decode
        self.pad_pad = None if data.pad is None else data.pad * (self.vocab + 1)
        self.ref = {k: ngram_counts(x, k, self.vocab) for k in _ORDERS}
        rng = np.random.default_rng(0)
        m = min(n_samples, len(x))
        subset = x[rng.choice(len(x), m, replace=False)]
        noise = rng.integers(0, self.vocab, subset.shape)
        self.data_tokens = len(self.ref[1])
        self.data_ngrams = len(ngram_counts(subset, ngram, self.vocab))
        self.js_real = js_divergence(ngram_counts(subset, 2, self.vocab), self.ref[2])
        self.js_noise = js_divergence(ngram_counts(noise, 2, self.vocab), self.ref[2])

    def __call__(self, ids: np.ndarray) -> dict[str, float]:
        out: dict[str, float] = {}
        for k in _ORDERS:
            out[f"seq/js_{k}"] = js_divergence(ngram_counts(ids, k, self.vocab), self.ref[k])
        out["seq/js_rel"] = (out["seq/js_2"] - self.js_real) / (self.js_noise - self.js_real)
        tokens = len(np.unique(ids))
        out["seq/unique_tokens"] = float(tokens)
        out["seq/token_coverage"] = tokens / self.data_tokens
        out["seq/unique_sequences"] = len(np.unique(ids, axis=0)) / len(ids)
        distinct = len(ngram_counts(ids, self.ngram, self.vocab))
        out["seq/mode_collapse_score"] = max(0.0, 1.0 - distinct / self.data_ngrams)
        bigrams = ngram_counts(ids, 2, self.vocab)
        bigrams.pop(self.pad_pad, None)  # padding after padding is real but says nothing
        seen = sum(c for g, c in bigrams.items() if g in self.ref[2])
        out["seq/bigram_precision"] = seen / max(1, sum(bigrams.values()))
        if self.valid is not None:
            out["seq/valid_fraction"] = float(np.mean([self.valid(self.decode(r)) for r in ids]))
        return out


def save_text_image(lines: list[str], path: Path) -> Path:
    """Lines of text drawn on a white PNG (the sample figure every family writes)."""
    from PIL import Image, ImageDraw, ImageFont

    font = ImageFont.load_default()
    width = 8 + 7 * max((len(s) for s in lines), default=1)
    image = Image.new("RGB", (max(width, 64), 8 + 14 * max(1, len(lines))), "white")
    draw = ImageDraw.Draw(image)
    for i, line in enumerate(lines):
        draw.text((4, 4 + 14 * i), line, fill="black", font=font)
    image.save(path, format="PNG")
    return path
