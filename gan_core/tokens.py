"""Token-sequence data for the `sequence` family: fixed-length sequences of token ids.

Built-in sets need no download and their quality can be checked exactly:

- ``markov``: a first-order Markov chain over ``sequence.vocab_size`` tokens in which each
  token has ``sequence.markov_successors`` possible successors (a fixed chain: its seed is
  part of the data set's definition, like the ring's centres); every bigram a sample may
  hold is known.
- ``code``: short Python statements (``x=a*(b+1)``, ``y-2``) at character level, padded to
  ``sequence.length`` with the pad token; a sample is valid when its text, pads stripped from
  the end only, parses with ``ast.parse``.

User data: ``text`` (a text or code file, tokenised by character, whitespace or a regex; one
sequence per line or consecutive windows of the token stream; the vocabulary is built from the
file by frequency) and ``parquet`` (a column of token-id lists). Shorter sequences are padded
with an explicit pad token (id 0 for text, max id + 1 for Parquet); longer lines are refused
(counted in the error), never cut silently.
"""

from __future__ import annotations

import ast
import random
import re
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from .config import ConfigError, RunConfig
from .data import DataError

__all__ = [
    "TokenSet",
    "load_tokens",
    "ngram_counts",
    "TOKEN_SETS",
    "PAD",
    "markov_chain",
    "python_code",
]

PAD = "<pad>"
TOKEN_SETS = ("markov", "code", "text", "parquet")
_CHAIN_SEED = 20171  # the Markov set's chain: fixed, part of its definition
_CODE_SEED = 3  # the code set's statements: fixed, part of its definition


@dataclass
class TokenSet:
    """Sequences (N, L) of int64 token ids with their vocabulary.

    Attributes:
        name: the data set's name.
        x: (N, L) token ids in [0, len(vocab)).
        vocab: token strings by id.
        pad: id of the pad token, None when sequences fill L.
        joiner: text between decoded tokens ("" character level, " " word level).
        valid: a decoded text -> parses (the code set), None when validity is not defined.
    """

    name: str
    x: Tensor
    vocab: tuple[str, ...]
    pad: int | None = None
    joiner: str = ""
    valid: Callable[[str], bool] | None = None

    @property
    def length(self) -> int:
        return int(self.x.shape[1])

    @property
    def vocab_size(self) -> int:
        return len(self.vocab)

    def decode(self, ids: Tensor | list[int]) -> str:
        """One sequence as text; pads at the end are dropped, a pad inside shows as PAD."""
        tokens = [int(i) for i in ids]
        while tokens and tokens[-1] == self.pad:
            tokens.pop()
        return self.joiner.join(self.vocab[i] for i in tokens)


def markov_chain(n: int, length: int, vocab_size: int, successors: int) -> TokenSet:
    """n sequences of a fixed sparse Markov chain (uniform start token)."""
    gen = torch.Generator().manual_seed(_CHAIN_SEED)
    transition = torch.zeros(vocab_size, vocab_size)
    for token in range(vocab_size):
        nxt = torch.randperm(vocab_size, generator=gen)[:successors]
        transition[token, nxt] = 0.5 + torch.rand(successors, generator=gen)
    transition /= transition.sum(1, keepdim=True)
    x = torch.empty(n, length, dtype=torch.long)
    x[:, 0] = torch.randint(vocab_size, (n,), generator=gen)
    for t in range(1, length):
        x[:, t] = torch.multinomial(transition[x[:, t - 1]], 1, generator=gen).squeeze(1)
    vocab = tuple(f"t{i}" for i in range(vocab_size))
    return TokenSet("markov", x, vocab, None, " ")


_CODE_VOCAB = (PAD, "a", "b", "x", "y", "1", "2", "3", "+", "-", "*", "=", "(", ")")


def _expression(rng: random.Random, depth: int) -> str:
    def term() -> str:
        if depth < 2 and rng.random() < 0.25:
            return "(" + _expression(rng, depth + 1) + ")"
        return rng.choice("abxy123")

    out = term()
    for _ in range(rng.randint(0, 2)):
        out += rng.choice("+-*") + term()
    return out


def _parses(text: str) -> bool:
    if not text.strip() or PAD in text:
        return False
    try:
        ast.parse(text, mode="exec")
    except (SyntaxError, ValueError):
        return False
    return True


def python_code(n: int, length: int) -> TokenSet:
    """n short Python statements (an assignment or an expression), character level."""
    rng = random.Random(_CODE_SEED)
    index = {c: i for i, c in enumerate(_CODE_VOCAB)}
    rows = []
    while len(rows) < n:
        text = _expression(rng, 0)
        if rng.random() < 0.5:
            text = rng.choice("abxy") + "=" + text
        if len(text) <= length:
            rows.append([index[c] for c in text] + [0] * (length - len(text)))
    return TokenSet("code", torch.tensor(rows), _CODE_VOCAB, 0, "", _parses)


def _tokenize(text: str, cfg: RunConfig) -> list[str]:
    s = cfg.sequence
    if s.tokenizer == "char":
        return list(text)
    if s.tokenizer == "whitespace":
        return text.split()
    return re.findall(s.token_pattern or "", text)


def _load_text(cfg: RunConfig) -> TokenSet:
    path = _user_file(cfg)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as err:
        raise DataError(f"{path}: cannot read as UTF-8 text: {err}") from err
    s = cfg.sequence
    units = (
        [_tokenize(line, cfg) for line in text.splitlines()]
        if s.split == "lines"
        else [_tokenize(text, cfg)]
    )
    units = [u for u in units if u]
    counts = Counter(t for u in units for t in u)
    if not counts:
        raise DataError(f"{path}: no tokens (tokenizer {s.tokenizer!r})")
    vocab = (PAD, *sorted(counts, key=lambda t: (-counts[t], t)))
    index = {t: i for i, t in enumerate(vocab)}
    if s.split == "windows":
        stream = units[0]
        rows = [stream[i : i + s.length] for i in range(0, len(stream) - s.length + 1, s.length)]
    else:
        rows = [u for u in units if len(u) <= s.length]
        if not rows:
            raise DataError(
                f"{path}: every one of its {len(units)} lines is longer than sequence.length "
                f"{s.length} tokens; raise it or use sequence.split: windows"
            )
    if not rows:
        raise DataError(f"{path}: {len(units[0])} tokens, fewer than sequence.length {s.length}")
    x = torch.tensor([[index[t] for t in r] + [0] * (s.length - len(r)) for r in rows])
    joiner = "" if s.tokenizer == "char" else " "
    return TokenSet("text", x, vocab, 0, joiner)


def _load_parquet(cfg: RunConfig) -> TokenSet:
    import pyarrow as pa
    import pyarrow.parquet as pq

    path = _user_file(cfg)
    try:
        table = pq.read_table(path)
    except (pa.ArrowException, OSError) as err:
        raise DataError(f"{path}: cannot read as Parquet: {err}") from err
    column = cfg.data.column or table.column_names[0]
    if column not in table.column_names:
        raise ConfigError(
            f"data.column: {path} has no column {column!r}; "
            f"columns: {', '.join(table.column_names)}"
        )
    if not (
        pa.types.is_list(table.schema.field(column).type)
        or pa.types.is_large_list(table.schema.field(column).type)
    ) or not pa.types.is_integer(table.schema.field(column).type.value_type):
        raise DataError(f"{path}: column {column!r} is not a column of integer lists (token ids)")
    rows = table.column(column).to_pylist()
    length = cfg.sequence.length
    for i, row in enumerate(rows):
        if row is None or not row or len(row) > length or min(row) < 0:
            what = "empty" if not row else "negative ids" if min(row) < 0 else f"{len(row)} ids"
            raise DataError(
                f"{path}: row {i} of column {column!r} has {what}; every row needs 1 to "
                f"sequence.length = {length} ids >= 0"
            )
    pad = max(max(r) for r in rows) + 1
    x = torch.tensor([r + [pad] * (length - len(r)) for r in rows])
    vocab = (*(str(i) for i in range(pad)), PAD)
    return TokenSet("parquet", x, vocab, pad, " ")


def _user_file(cfg: RunConfig) -> Path:
    if cfg.data.path is None:
        raise ConfigError(f"data.path: data {cfg.data.name!r} reads a file; set its path")
    path = Path(cfg.data.path).expanduser()
    if not path.exists():
        raise DataError(f"{path}: no such file")
    return path


def load_tokens(cfg: RunConfig) -> TokenSet:
    """The run's token set (data.name one of TOKEN_SETS); ConfigError or DataError otherwise."""
    s, name = cfg.sequence, cfg.data.name
    if name == "markov":
        data = markov_chain(cfg.data.n_points, s.length, s.vocab_size, s.markov_successors)
    elif name == "code":
        data = python_code(cfg.data.n_points, s.length)
    elif name == "text":
        data = _load_text(cfg)
    elif name == "parquet":
        data = _load_parquet(cfg)
    else:
        raise ConfigError(
            f"data.name: family sequence needs token data, got {name!r}; "
            f"allowed: {', '.join(TOKEN_SETS)}"
        )
    if len(data.x) < 2:
        raise DataError(f"data {name!r}: {len(data.x)} sequence(s); a GAN needs more")
    return data


def ngram_counts(x: np.ndarray, n: int, vocab: int) -> Counter[int]:
    """Counts of the n-grams of (N, L) token ids, each n-gram coded as one integer."""
    if x.shape[1] < n:
        return Counter()
    code = np.zeros((x.shape[0], x.shape[1] - n + 1), dtype=np.int64)
    for k in range(n):
        code = code * vocab + x[:, k : x.shape[1] - n + 1 + k]
    values, counts = np.unique(code, return_counts=True)
    return Counter(dict(zip(values.tolist(), counts.tolist(), strict=True)))
