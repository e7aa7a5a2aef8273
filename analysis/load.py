"""Readers: a results table from Parquet/CSV, a sweep directory or an MLflow parent run.

A sweep directory's tables are `trials.parquet` and `epochs.parquet` plus, while a sweep
runs (or after its driver was killed), the parts under `parts/trials/` and `parts/epochs/`
that were appended since the last compaction (docs/CONTRACTS.md); `read_sweep_table` reads
both as one table.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from analysis.errors import AnalysisInputError
from analysis.normalize import DEFAULT_SUCCESS, normalize_results

__all__ = [
    "load_results",
    "load_epochs",
    "resolve_source",
    "read_sweep_table",
    "table_sources",
    "latest_rows",
    "through",
    "THROUGH_KEY",
    "unify",
    "conform",
    "concat",
]

_RUN_ID = re.compile(r"^[0-9a-f]{32}$")
_TABLE_SUFFIXES = {".parquet": "parquet", ".pq": "parquet", ".csv": "csv", ".tsv": "tsv"}
_PART = re.compile(r"^(\d+)-(\d+)\.parquet$")
THROUGH_KEY = b"gansweep.through"  # a compacted file's metadata: the last part it holds


def resolve_source(source: str | Path, tracking_uri: str | None = None) -> tuple[str, str]:
    """Say what kind of source a string names.

    Args:
        source: ``mlflow:<parent_run_id>``, a bare 32-hex run id together with ``tracking_uri``,
            a sweep directory, or a ``.parquet``/``.csv``/``.tsv`` file.
        tracking_uri: MLflow tracking URI, when the source is an MLflow run.

    Returns:
        ``(kind, value)`` with kind one of ``mlflow``, ``sweep_dir``, ``parquet``, ``csv``,
        ``tsv``.

    Raises:
        AnalysisInputError: The source does not exist or has an unknown file type.
    """
    text = str(source)
    if text.startswith("mlflow:"):
        run_id = text[len("mlflow:") :].strip("/ ")
        if not run_id:
            raise AnalysisInputError("mlflow: source needs a run id, e.g. mlflow:<parent_run_id>")
        return "mlflow", run_id
    path = Path(text)
    if path.is_dir():
        return "sweep_dir", str(path)
    if path.is_file():
        kind = _TABLE_SUFFIXES.get(path.suffix.lower())
        if kind is None:
            raise AnalysisInputError(
                f"{path}: unknown file type {path.suffix!r}; give a .parquet, .csv or .tsv table, "
                "a sweep directory or mlflow:<parent_run_id>"
            )
        return kind, str(path)
    if tracking_uri and _RUN_ID.match(text):
        return "mlflow", text
    raise AnalysisInputError(
        f"{text}: no such file or directory (for an MLflow sweep give mlflow:<parent_run_id>)"
    )


def load_results(
    source: str | Path | pd.DataFrame | Sequence[str | Path],
    columns: Mapping[str, str] | None = None,
    *,
    tracking_uri: str | None = None,
    group_by: Sequence[str] | None = None,
    success: Sequence[str] = DEFAULT_SUCCESS,
) -> pd.DataFrame:
    """Read a results table and normalise it for `analysis.triage`.

    Args:
        source: A DataFrame; a ``.parquet``/``.csv``/``.tsv`` file with one row per trial; a
            sweep directory (``trials.parquet`` and ``sweep.json``, see docs/CONTRACTS.md); an
            MLflow parent run as ``mlflow:<run_id>`` (or a bare run id with ``tracking_uri``);
            or a list of these (a sweep and its follow-ups), read as one table.
        columns: Maps canonical column names to the table's own, e.g.
            ``{"seed": "random_state", "failed": "diverged"}``.
        tracking_uri: MLflow tracking URI (default: MLflow's own default / MLFLOW_TRACKING_URI).
        group_by: Other varied parameters to compare within; default: the sweep's varied
            parameters, or the dotted config columns that vary.
        success: Verdicts that count as success.

    Returns:
        The normalised table (see `analysis.normalize_results`); ``attrs`` carries ``source``,
        ``sweep_name`` and, for a sweep directory, ``sweep_dir``.

    Raises:
        AnalysisInputError: The source cannot be read or the table is not usable.
    """
    if isinstance(source, pd.DataFrame):
        raw = source
    elif isinstance(source, (list, tuple)):
        raw = _combine([_read(*resolve_source(s, tracking_uri), tracking_uri) for s in source])
    else:
        kind, value = resolve_source(source, tracking_uri)
        raw = _read(kind, value, tracking_uri)
    return normalize_results(raw, columns=columns, group_by=group_by, success=success)


def _combine(tables: list[pd.DataFrame]) -> pd.DataFrame:
    """Several results tables as one; trial ids that repeat get their sweep's name in front.

    The first table names the result (sweep name, directory for figures, follow-up base).
    """
    if len(tables) == 1:
        return tables[0]
    ids = [t["trial_id"].astype(str) if "trial_id" in t else None for t in tables]
    known = [i for i in ids if i is not None]
    clash = len(known) > 1 and pd.concat(known).duplicated().any()
    frames = []
    for i, (table, own) in enumerate(zip(tables, ids, strict=True)):
        frame = table.copy()
        if clash and own is not None:
            frame["trial_id"] = f"{table.attrs.get('sweep_name') or i}#{i}:" + own
        frames.append(frame)
    out = pd.concat(frames, ignore_index=True)
    groups = [g for t in tables for g in t.attrs.get("group_columns", []) if g]
    out.attrs.update(tables[0].attrs)
    out.attrs["source"] = " + ".join(str(t.attrs.get("source", "?")) for t in tables)
    if any("group_columns" in t.attrs for t in tables):
        out.attrs["group_columns"] = list(dict.fromkeys(groups))
    return out


def _read(kind: str, value: str, tracking_uri: str | None) -> pd.DataFrame:
    if kind == "mlflow":
        from analysis._mlflow import read_mlflow_sweep

        return read_mlflow_sweep(value, tracking_uri)
    if kind == "sweep_dir":
        return _read_sweep_dir(Path(value))
    return _read_table(Path(value), kind)


def _read_table(path: Path, kind: str) -> pd.DataFrame:
    try:
        if kind == "parquet":
            df = pd.read_parquet(path)
        else:
            df = pd.read_csv(path, sep="\t" if kind == "tsv" else ",")
    except (OSError, ValueError) as exc:  # pyarrow and the CSV parser raise subclasses of these
        raise AnalysisInputError(f"{path}: cannot read the table ({exc})") from exc
    df.attrs.update(source=str(path), sweep_name=path.stem)
    return df


def _read_sweep_dir(path: Path) -> pd.DataFrame:
    if not table_sources(path, "trials"):
        tables = sorted(p.name for p in path.glob("*.parquet")) + sorted(
            p.name for p in path.glob("*.csv")
        )
        hint = f" (found {', '.join(tables[:5])}; pass the file itself)" if tables else ""
        raise AnalysisInputError(f"{path}: not a sweep directory, it has no trials.parquet{hint}")
    meta = _sweep_meta(path)
    try:
        df = read_sweep_table(path, "trials").to_pandas()
    except (OSError, ValueError) as exc:  # pyarrow raises subclasses of these
        raise AnalysisInputError(f"{path}: cannot read trials.parquet ({exc})") from exc
    df.attrs.update(
        source=str(path),
        sweep_dir=str(path),
        sweep_name=meta.get("name") or path.name,
        tracking_uri=meta.get("tracking_uri"),
        parent_run_id=meta.get("parent_run_id"),
    )
    if isinstance(meta.get("varied"), list):
        df.attrs["group_columns"] = [str(v) for v in meta["varied"]]
    return df


def _sweep_meta(path: Path) -> dict:
    meta_path = path / "sweep.json"
    if not meta_path.is_file():
        return {}
    try:
        meta = json.loads(meta_path.read_text())
    except (OSError, ValueError) as exc:
        raise AnalysisInputError(f"{meta_path}: not valid JSON ({exc})") from exc
    return meta if isinstance(meta, dict) else {}


def load_epochs(
    sweep_dir: str | Path | None, trial_ids: Sequence[str] | None = None
) -> pd.DataFrame | None:
    """Per-epoch metrics of a sweep directory (``epochs.parquet``), or None when it has none.

    Args:
        sweep_dir: The sweep directory.
        trial_ids: Keep only these trials.

    Returns:
        Long table with ``trial_id``, ``epoch`` and the record keys, or None.
    """
    if sweep_dir is None or not table_sources(Path(sweep_dir), "epochs"):
        return None
    try:
        table = read_sweep_table(Path(sweep_dir), "epochs", trial_ids=trial_ids)
    except (OSError, ValueError):
        return None
    if "trial_id" not in table.column_names or "epoch" not in table.column_names:
        return None
    epochs = table.to_pandas()
    epochs["trial_id"] = epochs["trial_id"].astype(str)
    return epochs


def through(path: Path) -> int:
    """The last part a compacted table file holds (0: none, or a file from before parts)."""
    if not path.is_file():
        return 0
    metadata = pq.read_schema(path).metadata or {}
    return int(metadata.get(THROUGH_KEY, b"0"))


def table_sources(root: Path, name: str) -> list[Path]:
    """The files that make up table `name` (trials, epochs) of a sweep directory, oldest first.

    The compacted file, then the parts it does not hold yet. Parts that a merge or a
    compaction already covers (left by a driver killed before it deleted them) are skipped.
    """
    compacted = root / f"{name}.parquet"
    sources, end = ([compacted] if compacted.is_file() else []), through(compacted)
    folder = root / "parts" / name
    found = []
    for part in folder.glob("*.parquet") if folder.is_dir() else []:
        match = _PART.match(part.name)
        if match:
            found.append((int(match[1]), int(match[2]), part))
    for _, last, part in sorted(found, key=lambda f: (f[0], -f[1])):
        if last > end:
            sources.append(part)
            end = last
    return sources


def latest_rows(tables: list[pa.Table]) -> list[pa.Table]:
    """Each trial's rows from the last table that has any: a later part replaces a trial."""
    later: set[str] = set()
    out = []
    for table in reversed(tables):
        ids = table.column("trial_id")
        own = {str(i) for i in pc.unique(ids).to_pylist()}
        replaced = own & later
        if replaced:
            table = table.filter(pc.invert(pc.is_in(ids, pa.array(sorted(replaced), ids.type))))
        later |= own
        out.append(table)
    return out[::-1]


def read_sweep_table(
    root: Path,
    name: str,
    columns: Sequence[str] | None = None,
    trial_ids: Sequence[str] | None = None,
) -> pa.Table:
    """Table `name` (trials or epochs) of a sweep directory: compacted file and parts as one.

    Read through Arrow: a key a trial never logged is null, a diverged loss NaN.

    Args:
        root: The sweep directory.
        name: ``trials`` or ``epochs``.
        columns: Read only these (``trial_id`` is always read); absent ones are left out.
        trial_ids: Keep only these trials.

    Returns:
        One Arrow table; trials sorted by ``trial_id``, epochs in the order they were written.
    """
    for attempt in range(5):
        try:
            tables = [_read_source(path, columns, trial_ids) for path in table_sources(root, name)]
            break
        except FileNotFoundError:  # a running sweep merged parts after we listed them: list again
            if attempt == 4:
                raise
    if not tables:
        return pa.table({"trial_id": pa.array([], pa.string())})
    table = concat(latest_rows(tables))
    return table.sort_by("trial_id") if name == "trials" else table


def _read_source(
    path: Path, columns: Sequence[str] | None, trial_ids: Sequence[str] | None
) -> pa.Table:
    names = pq.read_schema(path).names
    wanted = None if columns is None else [c for c in names if c in {"trial_id", *columns}]
    if trial_ids is None:
        return pq.read_table(path, columns=wanted).replace_schema_metadata(None)
    ids = pa.array([str(t) for t in trial_ids], pa.string())
    source = pq.ParquetFile(path)
    column = names.index("trial_id")
    groups = [
        g
        for g in range(source.num_row_groups if len(ids) else 0)
        if _may_hold(source.metadata.row_group(g).column(column).statistics, ids)
    ]
    table = source.read_row_groups(groups, columns=wanted)
    table = table.filter(pc.is_in(table.column("trial_id"), ids))
    return table.replace_schema_metadata(None)


def _may_hold(stats: pq.Statistics | None, ids: pa.Array) -> bool:
    """Whether a row group whose trial_id column has `stats` can hold any of `ids` (no
    statistics: it can).

    Compacted tables are written in completion order, so a chunk of consecutive trials
    reads a few row groups instead of the whole file."""
    if stats is None or not stats.has_min_max:
        return True
    inside = pc.and_(pc.greater_equal(ids, stats.min), pc.less_equal(ids, stats.max))
    return bool(pc.any(inside).as_py())


def unify(schemas: Sequence[pa.Schema]) -> pa.Schema:
    """One schema for tables written apart: a column missing in some is null there, an int
    column that is float elsewhere is float, and one that is text anywhere is text."""
    fields: dict[str, pa.DataType] = {}
    for schema in schemas:
        for field in schema:
            have = fields.get(field.name)
            if have is None or pa.types.is_null(have):
                fields[field.name] = field.type
            elif have != field.type and not pa.types.is_null(field.type):
                try:
                    fields[field.name] = pa.unify_schemas(
                        [pa.schema([(field.name, have)]), pa.schema([field])],
                        promote_options="permissive",
                    ).field(0).type
                except (pa.ArrowTypeError, pa.ArrowInvalid):
                    fields[field.name] = pa.string()
    return pa.schema(list(fields.items()))


def conform(table: pa.Table | pa.RecordBatch, schema: pa.Schema) -> pa.Table | pa.RecordBatch:
    """`table` with exactly `schema`'s columns: those it lacks are null, the others cast."""
    names = table.schema.names
    arrays = [
        table.column(f.name).cast(f.type) if f.name in names else pa.nulls(len(table), f.type)
        for f in schema
    ]
    if isinstance(table, pa.RecordBatch):
        return pa.RecordBatch.from_arrays(arrays, schema=schema)
    return pa.Table.from_arrays(arrays, schema=schema)


def concat(tables: Sequence[pa.Table]) -> pa.Table:
    """Tables written apart (a sweep's parts) as one, on their `unify`-ed schema."""
    try:  # the common case, in Arrow: missing columns null, ints widened to floats
        return pa.concat_tables(tables, promote_options="permissive")
    except (pa.ArrowTypeError, pa.ArrowInvalid):
        pass
    schema = unify([t.schema for t in tables])
    return pa.concat_tables([conform(t, schema) for t in tables])
