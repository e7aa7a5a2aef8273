"""The sweep directory (layout in docs/CONTRACTS.md) and atomic file writes."""

from __future__ import annotations

import json
import math
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

__all__ = ["SweepDir", "atomic_write_text", "write_parquet_atomic", "json_safe"]


@dataclass(frozen=True)
class SweepDir:
    """Paths inside one sweep directory, plus its `sweep.json` metadata."""

    root: Path

    @property
    def meta_path(self) -> Path:
        return self.root / "sweep.json"

    @property
    def spec_path(self) -> Path:
        return self.root / "sweep.yaml"

    @property
    def trials_parquet(self) -> Path:
        return self.root / "trials.parquet"

    @property
    def epochs_parquet(self) -> Path:
        return self.root / "epochs.parquet"

    @property
    def tune_root(self) -> Path:
        """Default Tune storage: experiments live in tune_root/<experiment>."""
        return self.root / "tune"

    @property
    def optuna_url(self) -> str:
        return f"sqlite:///{(self.root / 'optuna.db').resolve()}"

    def trial_dir(self, trial_id: str) -> Path:
        return self.root / "trials" / trial_id

    def exists(self) -> bool:
        return self.meta_path.is_file()

    def read_meta(self) -> dict[str, Any]:
        return json.loads(self.meta_path.read_text())

    def write_meta(self, meta: dict[str, Any]) -> None:
        atomic_write_text(self.meta_path, json.dumps(json_safe(meta), indent=2, sort_keys=True))

    def update_meta(self, **changes: Any) -> dict[str, Any]:
        meta = self.read_meta()
        meta.update(changes)
        self.write_meta(meta)
        return meta


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


# Results are for sharing: mkstemp's private 0600 would hide them from the user's group.
_FILE_MODE = 0o666 & ~_umask()


def atomic_write_text(path: Path, text: str) -> None:
    """Write beside the target, then rename: readers never see half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        os.fchmod(fd, _FILE_MODE)
        with os.fdopen(fd, "w") as f:
            f.write(text)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_parquet_atomic(df: pd.DataFrame | Any, path: Path) -> None:
    """A DataFrame (or an Arrow table) to a temporary file in the same folder, then renamed."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.fchmod(fd, _FILE_MODE)
    os.close(fd)
    try:
        if isinstance(df, pd.DataFrame):
            df.to_parquet(tmp, index=False)
        else:
            import pyarrow.parquet as pq

            pq.write_table(df, tmp)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def json_safe(value: Any) -> Any:
    """Tuples -> lists and non-finite floats -> None, recursively (strict JSON)."""
    if isinstance(value, dict):
        return {str(k): json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(v) for v in value]
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value
