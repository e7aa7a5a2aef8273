"""Turn any results table into the canonical one the triage reads.

Canonical columns (after `normalize_results`): ``trial_id`` (str), ``seed``, ``init_seed``,
``data_seed`` (int where the seeds are whole numbers, str otherwise), ``batch_size`` (int), ``lr``,
``g_lr``, ``d_lr`` (float, NaN when unknown), ``lr_key`` (str: the learning-rate level a trial is
compared within), ``failed`` (bool), ``verdict`` (str: ``stable`` or the failure mode), ``errored``
(bool: the trial raised or has no outcome), ``pruned`` (bool: a scheduler or pruner stopped it,
status ``pruned``: its outcome is censored, neither a success nor a failure), ``excluded``
(errored or pruned: reported, not triaged) and ``excluded_reason``. Every other column is kept as
it was. ``table.attrs`` records the
``group_columns`` (other varied parameters), the ``lr_scaling`` found and where the table came from.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd

from analysis.errors import AnalysisInputError

__all__ = ["CANONICAL_COLUMNS", "DEFAULT_SUCCESS", "normalize_results"]

CANONICAL_COLUMNS = (
    "trial_id",
    "seed",
    "init_seed",
    "data_seed",
    "batch_size",
    "lr",
    "g_lr",
    "d_lr",
    "failed",
    "verdict",
)
DEFAULT_SUCCESS = ("stable",)

# Columns of trials.parquet (docs/CONTRACTS.md) that describe a trial's outcome, not its config.
_NOT_PARAMS = {
    "status",
    "error",
    "onset_epoch",
    "epochs_run",
    "stopped_early",
    "evidence",
    "mlflow_run_id",
    "tracking_uri",
    "mlflow_experiment_id",
    "started_at",
    "finished_at",
    "errored",
    "excluded_reason",
    "excluded",
    "pruned",
    "lr_key",
}
_SEED_LIKE = {"seed", "init_seed", "data_seed"}
_LR_LIKE = {"lr", "g_lr", "d_lr", "train.g_lr", "train.d_lr", "train.lr"}
_BATCH_LIKE = {"batch_size", "train.batch_size"}
_MAX_BATCH = 2**31 - 1  # larger is no batch size, and int64 arithmetic on it would overflow
_WHOLE = r"^[+-]?\d+(?:\.0*)?$"
_TRUE = {"true", "1", "yes", "y", "t", "failed", "fail"}
_FALSE = {"false", "0", "no", "n", "f", "ok", "success", "succeeded"}


def normalize_results(
    table: pd.DataFrame,
    columns: Mapping[str, str] | None = None,
    group_by: Sequence[str] | None = None,
    success: Sequence[str] = DEFAULT_SUCCESS,
) -> pd.DataFrame:
    """Validate a results table and bring it to the canonical columns.

    Args:
        table: One row per trial.
        columns: Maps canonical names to the table's own, e.g. ``{"seed": "random_state",
            "batch_size": "bs"}``. Valid canonical names: `CANONICAL_COLUMNS`.
        group_by: Other varied parameters to compare within (besides the LR). Default: the
            ``group_columns`` recorded by the reader (a sweep's varied params), else every column
            named by a dotted config path (``train.n_critic``) that takes more than one value.
        success: Verdicts that count as success (case-insensitive).

    Returns:
        A new DataFrame with the canonical columns described in the module docstring.

    Raises:
        AnalysisInputError: Missing required columns, no trials, non-numeric or non-positive
            batch sizes, unreadable outcomes, empty seeds or duplicate trial ids.
    """
    if table.attrs.get("normalized"):
        return _renormalize(table, columns, group_by, success)
    attrs = {"source": "a DataFrame", **table.attrs}
    df = _apply_mapping(table, columns or {})
    if len(df) == 0:
        raise AnalysisInputError("the results table has no trials (0 rows)")
    df = df.reset_index(drop=True)
    df["trial_id"] = _trial_ids(df)
    _check_required(df)
    _seeds(df)
    df["batch_size"] = _batch_sizes(df)
    lr_known = _learning_rates(df)
    _outcomes(df, {s.strip().lower() for s in success})
    if not (~df["excluded"]).any():
        raise AnalysisInputError(
            f"no trials with an outcome: all {len(df)} rows errored, were pruned or have no outcome"
        )
    groups = _group_columns(df, group_by, attrs.get("group_columns"))
    scaling = _lr_keys(df, groups, lr_known)
    df.attrs.update(attrs)
    df.attrs.update(
        normalized=True,
        group_columns=groups,
        lr_known=lr_known,
        lr_scaling=scaling,
        success=list(success),
    )
    return df


def _renormalize(table: pd.DataFrame, columns, group_by, success) -> pd.DataFrame:
    """An already normalised table: only the grouping can still change."""
    if columns:
        raise AnalysisInputError(
            "the table is already normalised; give the column mapping to load_results instead"
        )
    if [s.lower() for s in success] != [s.lower() for s in table.attrs.get("success", success)]:
        raise AnalysisInputError(
            "the table is already normalised with success verdicts "
            f"{table.attrs.get('success')}; give other success verdicts to load_results instead"
        )
    if group_by is None or list(group_by) == table.attrs.get("group_columns"):
        return table
    df = table.copy()
    df.attrs.update(table.attrs)
    groups = _group_columns(df, group_by, None)
    scaling = _lr_keys(df, groups, bool(df.attrs.get("lr_known")))
    df.attrs.update(group_columns=groups, lr_scaling=scaling)
    return df


def _apply_mapping(table: pd.DataFrame, columns: Mapping[str, str]) -> pd.DataFrame:
    unknown = sorted(set(columns) - set(CANONICAL_COLUMNS))
    if unknown:
        raise AnalysisInputError(
            f"unknown column role {unknown[0]!r} in the column mapping; valid roles: "
            + ", ".join(CANONICAL_COLUMNS)
        )
    missing = [f"{role}={src}" for role, src in columns.items() if src not in table.columns]
    if missing:
        raise AnalysisInputError(
            f"column mapping {missing[0]} names a column the table does not have; it has: "
            + _preview(table.columns)
        )
    df = table.copy()
    for role, src in columns.items():
        if src != role:
            if role in df.columns:
                df = df.drop(columns=role)
            df = df.rename(columns={src: role})
    return df


def _preview(names, limit: int = 12) -> str:
    names = [str(n) for n in names]
    more = f", ... ({len(names)} in all)" if len(names) > limit else ""
    return ", ".join(names[:limit]) + more


def _trial_ids(df: pd.DataFrame) -> pd.Series:
    if "trial_id" not in df.columns:
        return pd.Series([f"row{i}" for i in range(len(df))], index=df.index)
    ids = df["trial_id"].astype("string").fillna("").astype(str)
    empty = ids == ""
    ids = ids.where(~empty, [f"row{i}" for i in range(len(df))])
    dup = ids[ids.duplicated()]
    if len(dup):
        raise AnalysisInputError(
            f"trial_id {dup.iloc[0]!r} appears more than once; trial ids must be unique "
            "(map another column with --col trial_id=NAME)"
        )
    return ids


def _check_required(df: pd.DataFrame) -> None:
    if not {"seed", "init_seed"} & set(df.columns):
        raise AnalysisInputError(
            "missing required column 'seed' (or 'init_seed'); map yours with --col seed=NAME. "
            "The table has: " + _preview(df.columns)
        )
    if "batch_size" not in df.columns:
        raise AnalysisInputError(
            "missing required column 'batch_size'; map yours with --col batch_size=NAME. "
            "The table has: " + _preview(df.columns)
        )
    if not {"failed", "verdict"} & set(df.columns):
        raise AnalysisInputError(
            "missing an outcome column: give 'failed' (true/false) or 'verdict' ('stable' is "
            "success); map yours with --col failed=NAME or --col verdict=NAME"
        )


def _seed_labels(values: pd.Series) -> pd.Series:
    """Whole numbers as Python ints (any size: a seed is a label), anything else as text."""
    if pd.api.types.is_integer_dtype(values.dtype) and not values.isna().any():
        return pd.Series(values.tolist(), index=values.index, dtype=object)  # the usual case
    present = values.notna()
    text = values.astype("string").str.strip()
    present &= text.notna() & (text != "")
    if present.any() and text[present].str.fullmatch(_WHOLE).all():
        ints = [int(t.split(".")[0]) if ok else None for t, ok in zip(text, present, strict=True)]
        return pd.Series(ints, index=values.index, dtype=object)
    return text.astype(object).where(present, None)


def _seeds(df: pd.DataFrame) -> None:
    if "seed" not in df.columns:
        df["seed"] = df["init_seed"]
    elif "init_seed" in df.columns:  # a row that set only the init seed is known by it
        df["seed"] = df["seed"].where(df["seed"].notna(), df["init_seed"])
    df["seed"] = _seed_labels(df["seed"])
    for name in ("init_seed", "data_seed"):
        if name in df.columns:
            own = _seed_labels(df[name])
            df[name] = own.where(own.notna(), df["seed"])
        else:
            df[name] = df["seed"]
    empty = df["seed"].isna()
    if empty.any():
        raise AnalysisInputError(
            f"seed is empty in {int(empty.sum())} row(s), "
            f"e.g. trial {df.loc[empty, 'trial_id'].iloc[0]!r}"
        )
    # Seeds that are all whole numbers stay ints (sorted numerically); otherwise all strings.
    for name in ("seed", "init_seed", "data_seed"):
        if pd.api.types.infer_dtype(df[name], skipna=False) != "integer":
            df[name] = df[name].astype(str)


def _batch_sizes(df: pd.DataFrame) -> pd.Series:
    raw = df["batch_size"]
    num = pd.to_numeric(raw, errors="coerce")
    bad = num.isna() & raw.notna()
    if bad.any():
        examples = ", ".join(
            f"{v!r} (trial {t})"
            for v, t in zip(raw[bad].head(3), df.loc[bad, "trial_id"].head(3), strict=False)
        )
        raise AnalysisInputError(f"batch_size must be a number; got {examples}")
    if num.isna().any():
        raise AnalysisInputError(
            f"batch_size is empty in {int(num.isna().sum())} row(s), e.g. trial "
            f"{df.loc[num.isna(), 'trial_id'].iloc[0]!r}"
        )
    bad = (num <= 0) | (num > _MAX_BATCH) | ~np.isclose(num % 1, 0)
    if bad.any():
        raise AnalysisInputError(
            f"batch_size must be a positive whole number up to {_MAX_BATCH}; got "
            f"{num[bad].iloc[0]:g} (trial {df.loc[bad, 'trial_id'].iloc[0]})"
        )
    return num.astype(np.int64)


def _numeric_lr(df: pd.DataFrame, name: str) -> pd.Series:
    raw = df[name]
    num = pd.to_numeric(raw, errors="coerce")
    bad = num.isna() & raw.notna() & (raw.astype(str).str.strip().str.lower() != "none")
    if bad.any():
        raise AnalysisInputError(
            f"{name} must be a number; got {raw[bad].iloc[0]!r} "
            f"(trial {df.loc[bad, 'trial_id'].iloc[0]})"
        )
    bad = (num <= 0) | np.isinf(num)
    if bad.any():
        raise AnalysisInputError(
            f"{name} must be a finite positive number; got {num[bad].iloc[0]:g} "
            f"(trial {df.loc[bad, 'trial_id'].iloc[0]})"
        )
    return num.astype(float)


def _learning_rates(df: pd.DataFrame) -> bool:
    present = [n for n in ("lr", "g_lr", "d_lr") if n in df.columns]
    if not present:
        for n in ("lr", "g_lr", "d_lr"):
            df[n] = np.nan
        return False
    lr = {n: _numeric_lr(df, n) for n in present}
    base = lr.get("lr", lr.get("g_lr", lr.get("d_lr")))
    g = lr.get("g_lr", base).fillna(base)
    d = lr.get("d_lr", base).fillna(base)
    if g.isna().any() or d.isna().any():
        row = df.loc[g.isna() | d.isna(), "trial_id"].iloc[0]
        raise AnalysisInputError(f"the learning rate is empty for trial {row!r}")
    df["g_lr"], df["d_lr"] = g, d
    df["lr"] = g.where(np.isclose(g, d, rtol=1e-9, atol=0), np.nan)
    return True


def _parse_failed(df: pd.DataFrame) -> pd.Series:
    raw = df["failed"]
    if raw.dtype == bool:
        return raw.astype(object)
    text = raw.astype("string").str.strip().str.lower()
    out = pd.Series(None, index=df.index, dtype=object)
    out[text.isin(_TRUE).fillna(False)] = True
    out[text.isin(_FALSE).fillna(False)] = False
    num = pd.to_numeric(raw, errors="coerce")
    out[out.isna() & num.eq(1)] = True
    out[out.isna() & num.eq(0)] = False
    bad = out.isna() & raw.notna() & (text != "")
    if bad.any():
        raise AnalysisInputError(
            f"failed must be true/false (or 1/0); got {raw[bad].iloc[0]!r} "
            f"(trial {df.loc[bad, 'trial_id'].iloc[0]})"
        )
    return out


def _outcomes(df: pd.DataFrame, success: set[str]) -> None:
    verdict = (
        df["verdict"].astype("string").str.strip().str.lower()
        if "verdict" in df.columns
        else pd.Series(pd.NA, index=df.index, dtype="string")
    )
    status = (
        df["status"].astype("string").str.strip().str.lower()
        if "status" in df.columns
        else pd.Series(pd.NA, index=df.index, dtype="string")
    )
    errored = verdict.eq("error").fillna(False) | status.eq("error").fillna(False)
    # Stopped by a scheduler or pruner: censored, whatever its verdict read when it stopped.
    pruned = ~errored & (status.eq("pruned").fillna(False) | verdict.eq("pruned").fillna(False))
    if "failed" in df.columns:
        failed = _parse_failed(df)
    else:
        failed = (
            (~verdict.isin(success)).astype(object).where(verdict.notna() & (verdict != ""), None)
        )
    no_outcome = failed.isna() & ~errored & ~pruned
    df["errored"] = (errored | no_outcome).astype(bool)
    df["pruned"] = pruned.astype(bool)
    df["excluded"] = df["errored"] | df["pruned"]
    df["excluded_reason"] = np.select(
        [errored, pruned, no_outcome], ["error", "pruned", "no outcome"], None
    )
    df["failed"] = failed.where(~df["excluded"], False).astype(bool)
    mode = verdict.where(verdict.notna() & (verdict != "") & ~verdict.isin(success), None)
    df["verdict"] = np.select(
        [df["errored"], df["pruned"], df["failed"]],
        ["error", "pruned", mode.fillna("failed").astype(object)],
        "stable",
    )


def _group_columns(df: pd.DataFrame, group_by, recorded) -> list[str]:
    if group_by is not None:
        missing = [c for c in group_by if c not in df.columns]
        if missing:
            raise AnalysisInputError(
                f"--group-by column {missing[0]!r} is not in the table; it has: "
                + _preview(df.columns)
            )
        return list(group_by)
    skip = _SEED_LIKE | _LR_LIKE | _BATCH_LIKE | _NOT_PARAMS | set(CANONICAL_COLUMNS)
    if recorded is not None:
        candidates = [c for c in recorded if c in df.columns and c not in skip]
    else:
        candidates = [
            c
            for c in df.columns
            if isinstance(c, str) and "." in c and "/" not in c and c not in skip
        ]
    live = df.loc[~df["excluded"]]
    return [c for c in candidates if live[c].astype(str).nunique(dropna=False) > 1]


def _group_key(df: pd.DataFrame, groups: list[str]) -> pd.Series:
    if not groups:
        return pd.Series("", index=df.index)
    parts = [c + "=" + df[c].astype(str) for c in groups]
    key = parts[0]
    for p in parts[1:]:
        key = key + ", " + p
    return key


def _lr_keys(df: pd.DataFrame, groups: list[str], lr_known: bool) -> str:
    """Pick the LR level trials are compared within, undoing a batch/LR scaling rule if found.

    A sweep that scales the LR with the batch size (linear or sqrt rule) gives every batch size
    its own LR; comparing within raw LRs would then leave nothing to compare. The rule whose
    base LR (the LR rescaled to the smallest batch) takes the fewest distinct values wins;
    "none" unless a rule strictly reduces them.
    """
    df["group_key"] = _group_key(df, groups)
    if not lr_known:
        df["lr_key"] = "n/a"
        return "none"
    live = ~df["excluded"]
    ref = float(df.loc[live, "batch_size"].min())
    ratio = df["batch_size"].astype(float) / ref
    best, best_count, best_vals = "none", None, None
    for rule, factor in (("none", 1.0), ("linear", ratio), ("sqrt", np.sqrt(ratio))):
        g = _round_sig(df["g_lr"] / factor)
        d = _round_sig(df["d_lr"] / factor)
        count = pd.DataFrame({"g": g, "d": d})[live].drop_duplicates().shape[0]
        if best_count is None or count < best_count:
            best, best_count, best_vals = rule, count, (g, d)
    g, d = best_vals
    same = np.isclose(g, d, rtol=1e-9, atol=0)
    g_text, d_text = _lr_text(g), _lr_text(d)
    label = np.where(same, g_text, "g " + g_text + " / d " + d_text)
    suffix = "" if best == "none" else f" at batch {int(ref)} ({best} scaling)"
    df["lr_key"] = pd.Series(label, index=df.index).astype(str) + suffix
    return best


def _round_sig(x: pd.Series, digits: int = 6) -> pd.Series:
    x = x.astype(float)
    mag = np.floor(np.log10(np.abs(x.where(x != 0, 1.0))))
    scale = 10.0 ** (digits - 1 - mag)
    return np.round(x * scale) / scale


def _lr_text(values: pd.Series) -> pd.Series:
    """`_fmt_lr` of every value, formatting each distinct value once."""
    return values.map({v: _fmt_lr(v) for v in values.unique()})


def _fmt_lr(x: float) -> str:
    return f"{x:.3g}"
