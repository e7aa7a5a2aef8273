"""The sweep's results tables: `trials.parquet` and `epochs.parquet` (docs/CONTRACTS.md).

`TrialOutcome` is everything the driver knows about a finished trial; `trial_row`
turns it into one row of `trials.parquet`. `SweepTables` appends each finished trial's
rows to both tables as a new Parquet part and never rewrites a part in the sweep's hot
path: the driver's cost per trial stays flat at any sweep size (bench/scale.py).
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import re
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from analysis.load import (
    THROUGH_KEY,
    concat,
    conform,
    latest_rows,
    read_sweep_table,
    table_sources,
    through,
    unify,
)
from gan_core.config import flatten_config
from gan_core.metric_keys import QUALITY_DIRECTIONS

from .sweepdir import _FILE_MODE, SweepDir

__all__ = [
    "TrialOutcome",
    "SweepTables",
    "trial_row",
    "epoch_rows",
    "varied_paths",
    "FIXED_COLUMNS",
    "QUALITY_DIRECTIONS",
    "PARTS",
    "MERGE_AT",
]

TRIALS, EPOCHS = "trials", "epochs"
_TABLES = (TRIALS, EPOCHS)
PARTS = "parts"  # SWEEP_DIR/parts/{trials,epochs}/<first>-<last>.parquet
MERGE_AT = 64  # single parts merged into one once there are this many
_COMPACT_EVERY = 20  # trials.parquet is refreshed at most every 20x its last duration
_ROW_GROUP = 65536  # rows per row group of a compacted epochs.parquet

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


def _param_cell(value: Any) -> Any:
    """A varied parameter as a cell: containers as JSON text, None as null (not NaN)."""
    if value is None:
        return None
    if isinstance(value, (list, tuple, dict)):
        return json.dumps(value)
    return _cell(value)


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
            row[path] = _param_cell(flat.get(path))
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
    """Both result tables of one sweep directory, written as append-only parts.

    `upsert` stages a trial's rows; `append` writes what is staged as one new part of each
    table (`parts/trials/<seq>-<seq>.parquet`, `parts/epochs/...`), so a finished trial costs
    the same whether it is the 10th or the 10,000th, and a killed driver keeps every part
    written. Every `MERGE_AT` single parts are merged into one (bounded file count);
    `compact_trials` and `flush` fold the parts into `trials.parquet` and `epochs.parquet`.
    Only the driver writes; readers use `analysis.load.read_sweep_table`.
    """

    def __init__(self, sweep_dir: SweepDir):
        self.dir = sweep_dir
        self._rows: dict[str, dict[str, Any]] = {}  # staged trials rows by trial id
        self._epochs: dict[str, list[dict[str, Any]]] = {}  # staged epochs rows by trial id
        self.seq = 1 + max(
            [through(self._file(n)) for n in _TABLES]
            + [last for n in _TABLES for _, last in _part_ranges(self._folder(n))]
        )
        self._recent: dict[tuple[str, int], pa.Table] = {}  # single parts this object wrote
        self.compact_s = 0.0  # how long the last compaction of trials.parquet took
        self._compacted_at = -math.inf

    def _file(self, name: str) -> Path:
        return self.dir.root / f"{name}.parquet"

    def _folder(self, name: str) -> Path:
        return self.dir.root / PARTS / name

    # ------------------------------------------------------------------ reading
    def read(
        self, name: str, columns: list[str] | None = None, trial_ids: list[str] | None = None
    ) -> pa.Table:
        """Table `name` as it is on disk (files and parts), without what is staged."""
        return read_sweep_table(self.dir.root, name, columns, trial_ids)

    @cached_property
    def trials(self) -> dict[str, dict[str, Any]]:
        """Every trial's row by id, read once (for one-off readers: resume, sync, summary)."""
        rows = {str(r["trial_id"]): r for r in self.read("trials").to_pylist()}
        rows.update(self._rows)
        return dict(sorted(rows.items()))

    @cached_property
    def epochs(self) -> dict[str, list[dict[str, Any]]]:
        """Every epoch row by trial (all in memory: use `epochs_of` for large sweeps)."""
        return self.epochs_of(None)

    def epochs_of(self, trial_ids: list[str] | None) -> dict[str, list[dict[str, Any]]]:
        """Epoch rows of these trials (all when None); a key a trial never logged is absent."""
        table = read_sweep_table(self.dir.root, "epochs", trial_ids=trial_ids)
        out: dict[str, list[dict[str, Any]]] = {}
        for r in table.to_pylist():
            row = {k: v for k, v in r.items() if v is not None}
            out.setdefault(str(row["trial_id"]), []).append(row)
        return out

    # ------------------------------------------------------------------ writing
    def upsert(self, row: dict[str, Any], epochs: list[dict[str, Any]] | None) -> None:
        """Stage one trial's row (replacing any earlier one) and, unless None, its epochs."""
        self._rows[row["trial_id"]] = row
        if epochs is not None:
            self._epochs[row["trial_id"]] = epochs
        if "trials" in self.__dict__:
            self.trials[row["trial_id"]] = row

    def set_run_id(self, trial_id: str, run_id: str | None, tracking_uri: str | None) -> None:
        row = self.trials.get(trial_id)
        if row is not None and (row.get("mlflow_run_id"), row.get("tracking_uri")) != (
            run_id,
            tracking_uri,
        ):
            self.upsert({**row, "mlflow_run_id": run_id, "tracking_uri": tracking_uri}, None)

    def discard(self) -> None:
        """Forget what is staged (a failed write: `resume` rebuilds it from checkpoints)."""
        self._rows, self._epochs = {}, {}

    def append(self) -> None:
        """Write what is staged as one new part per table (temp file + rename each)."""
        if not self._rows:
            return
        seq, rows = self.seq, list(self._rows.values())
        epochs = [r for rows_of in self._epochs.values() for r in rows_of]
        written = {TRIALS: _table(rows, ("trial_id",))}
        if epochs:
            written[EPOCHS] = _table(epochs, ("trial_id", "epoch"))
        for name, table in sorted(written.items()):  # epochs first: a trial is done with its row
            _write(table, self._part(name, seq, seq))
            self._recent[(name, seq)] = table  # merged from memory, not read back
        self.seq += 1
        self.discard()
        for name in _TABLES:
            self._merge_parts(name)

    def _part(self, name: str, first: int, last: int) -> Path:
        return self._folder(name) / f"{first:08d}-{last:08d}.parquet"

    def _merge_parts(self, name: str) -> None:
        """Once MERGE_AT single parts are there, merge them into one (then delete them)."""
        singles = [(f, p) for f, p in _part_ranges(self._folder(name)) if f == p]
        if len(singles) < MERGE_AT:
            return
        paths = [self._part(name, f, f) for f, _ in singles]
        tables = [
            self._recent.pop((name, f), None) or pq.read_table(p).replace_schema_metadata(None)
            for (f, _), p in zip(singles, paths, strict=True)
        ]
        merged = concat(latest_rows(tables))
        _write(merged, self._part(name, singles[0][0], singles[-1][0]))
        for path in paths:
            path.unlink()

    def compact_trials(self) -> None:
        """Fold trials' parts into trials.parquet (sorted by trial id), then delete them."""
        t0 = time.monotonic()
        last = self.seq - 1
        table = self.read(TRIALS)
        _write(table.replace_schema_metadata({THROUGH_KEY: str(last)}), self._file(TRIALS))
        self._drop_parts(TRIALS, last)
        self._recent = {key: t for key, t in self._recent.items() if key[0] != TRIALS}
        self.compact_s, self._compacted_at = time.monotonic() - t0, time.monotonic()

    def compact_trials_if_due(self) -> None:
        """Keep trials.parquet current for its readers at <= 5% of the driver's time.

        Its cost grows with the sweep, so it runs at most every 20x its last duration (as
        Tune paces its experiment snapshots).
        """
        if time.monotonic() - self._compacted_at >= _COMPACT_EVERY * self.compact_s:
            self.compact_trials()

    def flush(self) -> None:
        """Append what is staged, then compact both tables into their single files."""
        self.append()
        if any(s != self._file(TRIALS) for s in table_sources(self.dir.root, TRIALS)):
            self.compact_trials()
        self._compact_epochs()
        with contextlib.suppress(OSError):  # not empty: a part written meanwhile stays
            self._folder(TRIALS).rmdir()
            self._folder(EPOCHS).rmdir()
            (self.dir.root / PARTS).rmdir()

    def _compact_epochs(self) -> None:
        """Stream files and parts into a new epochs.parquet (memory: one batch at a time)."""
        sources = table_sources(self.dir.root, EPOCHS)
        if not sources or sources == [self._file(EPOCHS)]:
            return
        ids = [_trial_ids(source) for source in sources]
        later: set[str] = set()
        dropped = []
        for held in reversed(ids):
            dropped.append(later & held)
            later |= held
        dropped.reverse()
        schema = unify([pq.read_schema(s) for s in sources])
        schema = schema.with_metadata({THROUGH_KEY: str(self.seq - 1)})
        with _atomic(self._file(EPOCHS)) as tmp, pq.ParquetWriter(tmp, schema) as writer:
            batches: list[pa.RecordBatch] = []
            for source, drop in zip(sources, dropped, strict=True):
                for batch in pq.ParquetFile(source).iter_batches(batch_size=_ROW_GROUP):
                    if drop:
                        keep = pc.invert(pc.is_in(batch.column("trial_id"), pa.array(list(drop))))
                        batch = batch.filter(keep)
                    batches.append(conform(batch, schema))
                    if sum(len(b) for b in batches) >= _ROW_GROUP:
                        writer.write_table(pa.Table.from_batches(batches, schema))
                        batches = []
            if batches:
                writer.write_table(pa.Table.from_batches(batches, schema))
        self._drop_parts(EPOCHS, self.seq - 1)
        self._recent.clear()

    def _drop_parts(self, name: str, last: int) -> None:
        """Delete the parts a compacted file now holds."""
        for first, end in _part_ranges(self._folder(name)):
            if end <= last:
                self._part(name, first, end).unlink(missing_ok=True)


def _part_ranges(folder: Path) -> list[tuple[int, int]]:
    """(first, last) sequence numbers of the parts in a folder."""
    if not folder.is_dir():
        return []
    found = (re.match(r"^(\d+)-(\d+)\.parquet$", p.name) for p in folder.iterdir())
    return sorted((int(m[1]), int(m[2])) for m in found if m)


def _trial_ids(path: Path) -> set[str]:
    return set(pc.unique(pq.read_table(path, columns=["trial_id"])[0]).to_pylist())


def _table(rows: list[dict[str, Any]], first: tuple[str, ...]) -> pa.Table:
    """Rows as an Arrow table: a key a row lacks is null, NaN stays NaN (unlike in pandas)."""
    keys = list(dict.fromkeys([*first, *(k for r in rows for k in r)]))
    return pa.table({k: _column([r.get(k) for r in rows]) for k in keys})


def _column(values: list[Any]) -> pa.Array:
    """Values as one Arrow column; numbers mixed with text become text (as readers unify)."""
    try:
        return pa.array(values)
    except (pa.ArrowInvalid, pa.ArrowTypeError):
        return pa.array([None if v is None else str(v) for v in values], pa.string())


@contextlib.contextmanager
def _atomic(path: Path) -> Iterator[str]:
    """A temporary file beside `path`, renamed onto it when the block succeeds."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.fchmod(fd, _FILE_MODE)
    os.close(fd)
    try:
        yield tmp
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _write(table: pa.Table, path: Path) -> None:
    with _atomic(path) as tmp:
        pq.write_table(table, tmp)
