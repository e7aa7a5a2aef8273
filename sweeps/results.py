"""The sweep's results tables: `trials.parquet` and `epochs.parquet` (docs/CONTRACTS.md).

`TrialOutcome` is everything the driver knows about a finished trial; `trial_row`
turns it into one row of `trials.parquet`. `SweepTables` keeps both tables in
memory, starts from what is already on disk (so a resumed sweep keeps its rows)
and rewrites both files atomically after every finished trial.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from typing import Any

import pandas as pd
import pyarrow as pa

from gan_core.config import flatten_config
from gan_core.metric_keys import QUALITY_DIRECTIONS

from .sweepdir import SweepDir, write_parquet_atomic

__all__ = [
    "TrialOutcome",
    "SweepTables",
    "trial_row",
    "epoch_rows",
    "varied_paths",
    "FIXED_COLUMNS",
    "QUALITY_DIRECTIONS",
]

# Columns of every trials.parquet row that come from the config, and their dotted paths.
FIXED_COLUMNS = {
    "seed": "seed",
    "init_seed": "init_seed",
    "data_seed": "data_seed",
    "batch_size": "train.batch_size",
    "g_lr": "train.g_lr",
    "d_lr": "train.d_lr",
}

@dataclass
class TrialOutcome:
    """One finished (or failed) trial as the driver saw it."""

    trial_id: str
    config: dict[str, Any]  # resolved RunConfig.to_dict()
    records: list[dict[str, float]] = field(default_factory=list)  # one per epoch
    verdict: dict[str, Any] | None = None  # Verdict.to_dict(); None when the trial raised
    status: str = "ok"  # ok, error, or pruned (stopped by the search scheduler: censored)
    error: str | None = None
    ray_trial_id: str | None = None
    started_at: str | None = None
    finished_at: str | None = None
    pruned: bool = False  # stopped early by the search scheduler
    resumed_from: int = 0  # epoch of the checkpoint a retried or resumed trial started from
    attempts: int = 1  # times the trial was started: 1, plus one per retry or resume
    mlflow_run_id: str | None = None
    tracking_uri: str | None = None


def varied_paths(configs: list[dict[str, Any]]) -> list[str]:
    """Dotted config paths whose value differs between the given resolved configs."""
    flats = [flatten_config(c) for c in configs]
    if not flats:
        return []
    keys = list(flats[0])
    return [k for k in keys if any(_key(f.get(k)) != _key(flats[0].get(k)) for f in flats[1:])]


def _key(value: Any) -> Any:
    return json.dumps(value, sort_keys=True, default=str)


def _cell(value: Any) -> Any:
    if isinstance(value, (list, tuple, dict)):
        return json.dumps(value)
    return value


def trial_row(outcome: TrialOutcome, varied: list[str]) -> dict[str, Any]:
    """One row of trials.parquet (column order and meaning in docs/CONTRACTS.md)."""
    flat = flatten_config(outcome.config)
    init_seed = flat["seed"] if flat.get("init_seed") is None else flat["init_seed"]
    data_seed = flat["seed"] if flat.get("data_seed") is None else flat["data_seed"]
    g_lr, d_lr = float(flat["train.g_lr"]), float(flat["train.d_lr"])
    row: dict[str, Any] = {
        "trial_id": outcome.trial_id,
        "seed": int(flat["seed"]),
        "init_seed": int(init_seed),
        "data_seed": int(data_seed),
        "batch_size": int(flat["train.batch_size"]),
        "g_lr": g_lr,
        "d_lr": d_lr,
        "lr": g_lr if g_lr == d_lr else math.nan,
    }
    for path in varied:
        if path not in FIXED_COLUMNS.values():
            row[path] = _cell(flat.get(path))
    verdict = outcome.verdict or {}
    onset = verdict.get("onset_epoch")
    row.update(
        verdict="error" if outcome.status == "error" else verdict.get("status", "error"),
        onset_epoch=float(onset) if onset is not None else math.nan,
        status=outcome.status,
        error=outcome.error,
        epochs_run=len(outcome.records),
        stopped_early=bool(verdict.get("stopped_early", False)),
        evidence=json.dumps(verdict.get("evidence", {})),
    )
    if outcome.records:
        row.update({f"final/{k}": _cell(v) for k, v in outcome.records[-1].items()})
    row.update(_best(outcome.records))
    row.update(
        mlflow_run_id=outcome.mlflow_run_id,
        tracking_uri=outcome.tracking_uri,
        started_at=outcome.started_at,
        finished_at=outcome.finished_at,
        attempts=outcome.attempts,
    )
    return row


def _float(value: Any) -> float:
    try:
        return float(value)
    except (TypeError, ValueError):
        return math.nan


def _cell(value: Any) -> float | str:
    """A record value as a table cell: text (the monitor's phase and health) stays text."""
    return value if isinstance(value, str) else _float(value)


def _best(records: list[dict[str, float]]) -> dict[str, float]:
    best: dict[str, float] = {}
    for key, direction in QUALITY_DIRECTIONS.items():
        values = [_float(r[key]) for r in records if key in r]
        values = [v for v in values if math.isfinite(v)]
        if values:
            best[f"best/{key}"] = max(values) if direction == "max" else min(values)
        elif any(key in r for r in records):
            best[f"best/{key}"] = math.nan
    return best


def epoch_rows(trial_id: str, records: list[dict[str, float]]) -> list[dict[str, Any]]:
    """Rows of epochs.parquet for one trial: trial_id, epoch, then the record keys."""
    rows = []
    for record in records:
        row: dict[str, Any] = {"trial_id": trial_id, "epoch": int(record.get("epoch", 0))}
        row.update({k: _cell(v) for k, v in record.items() if k != "epoch"})
        rows.append(row)
    return rows


class SweepTables:
    """Both result tables of one sweep directory, rewritten atomically on every update."""

    def __init__(self, sweep_dir: SweepDir):
        self.dir = sweep_dir
        self.trials: dict[str, dict[str, Any]] = {}
        self.epochs: dict[str, list[dict[str, Any]]] = {}
        if sweep_dir.trials_parquet.is_file():
            for row in pd.read_parquet(sweep_dir.trials_parquet).to_dict("records"):
                self.trials[row["trial_id"]] = row
        self.on_disk = set(self.trials)  # trials whose rows the files hold
        if sweep_dir.epochs_parquet.is_file():
            # Through Arrow, not pandas: a key a trial never logged is null, a diverged loss
            # is NaN, and NaN is a result to keep (pandas would make both NaN).
            import pyarrow.parquet as pq

            for r in pq.read_table(sweep_dir.epochs_parquet).to_pylist():
                row = {k: v for k, v in r.items() if v is not None}
                self.epochs.setdefault(str(row["trial_id"]), []).append(row)

    def upsert(self, row: dict[str, Any], epochs: list[dict[str, Any]]) -> None:
        """Insert or replace one trial (and its epoch rows); does not write."""
        self.trials[row["trial_id"]] = row
        self.epochs[row["trial_id"]] = epochs

    def set_run_id(self, trial_id: str, run_id: str | None, tracking_uri: str | None) -> None:
        if trial_id in self.trials:
            self.trials[trial_id].update(mlflow_run_id=run_id, tracking_uri=tracking_uri)

    def flush(self) -> None:
        """Rewrite trials.parquet and epochs.parquet (temp file + rename each)."""
        trials = pd.DataFrame(sorted(self.trials.values(), key=lambda r: r["trial_id"]))
        rows = [r for tid in sorted(self.epochs) for r in self.epochs[tid]]
        keys = list(dict.fromkeys(["trial_id", "epoch", *(k for r in rows for k in r)]))
        # Missing keys as nulls, NaN as NaN (see __init__); pandas readers see NaN for both.
        epochs = pa.table({k: pa.array([r.get(k) for r in rows]) for k in keys})
        for column in ("mlflow_run_id", "error", "tracking_uri", "started_at", "finished_at"):
            if column in trials:
                trials[column] = trials[column].astype("object")
        write_parquet_atomic(epochs, self.dir.epochs_parquet)
        write_parquet_atomic(trials, self.dir.trials_parquet)
        self.on_disk = set(self.trials)
