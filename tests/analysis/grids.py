"""Constructed results tables whose true failure cause is known by construction."""

from __future__ import annotations

import itertools

import pandas as pd

BATCHES = (64, 256, 1024)
SEEDS = tuple(range(1, 11))


def grid(fail, seeds=SEEDS, batches=BATCHES, lrs=(1e-3,), extra=None, drop=None) -> pd.DataFrame:
    """One row per (seed, batch, lr); ``fail(seed, batch, lr)`` says whether it failed.

    Args:
        fail: The construction: which cells fail.
        seeds: Seeds of the grid.
        batches: Batch sizes of the grid.
        lrs: Learning rates of the grid.
        extra: Dict of column -> value added to every row (e.g. another varied param).
        drop: Predicate on (seed, batch, lr): cells that were never run (missing).
    """
    rows = []
    for s, b, lr in itertools.product(seeds, batches, lrs):
        if drop is not None and drop(s, b, lr):
            continue
        failed = bool(fail(s, b, lr))
        rows.append(
            {
                "trial_id": f"s{s}-b{b}-lr{lr:g}"
                + ("".join(f"-{v}" for v in (extra or {}).values())),
                "seed": s,
                "batch_size": b,
                "lr": lr,
                "verdict": "mode_collapse" if failed else "stable",
                **(extra or {}),
            }
        )
    return pd.DataFrame(rows)


def thresholds_both() -> pd.DataFrame:
    """Each seed has its own largest working batch: 1-4 never fail, 5-8 fail from 512 on,
    9-12 from 128 on. Failure rises with batch size AND depends on the seed."""
    limit = {
        **dict.fromkeys(range(1, 5), 10**9),
        **dict.fromkeys(range(5, 9), 512),
        **dict.fromkeys(range(9, 13), 128),
    }
    return grid(
        lambda s, b, lr: b >= limit[s], seeds=range(1, 13), batches=(32, 64, 128, 256, 512, 1024)
    )


def causes_of(result) -> dict[str, str]:
    """trial_id -> cause."""
    return {d.trial_id: d.cause for d in result.diagnoses}


def by_id(result, trial_id: str):
    """The diagnosis of one trial."""
    return next(d for d in result.diagnoses if d.trial_id == trial_id)


def make_sweep_dir(path, with_error: bool = True):
    """A sweep directory laid out as docs/CONTRACTS.md says, from a known grid.

    Seed 7 collapses at every batch size (init) and batch 1024 collapses for every seed
    (batch); one trial raised. Writes sweep.json, trials.parquet, epochs.parquet and
    trials/<id>/samples.png.
    """
    import json
    from pathlib import Path

    import numpy as np
    from PIL import Image

    path = Path(path)
    trials = grid(lambda s, b, lr: s == 7 or b == 1024)
    trials["init_seed"] = trials["seed"]
    trials["data_seed"] = trials["seed"]
    trials["g_lr"] = trials["d_lr"] = trials["lr"]
    failed = trials["verdict"] != "stable"
    trials["onset_epoch"] = np.where(failed, 6.0, np.nan)
    trials["status"], trials["error"] = "ok", None
    trials["epochs_run"] = 20
    trials["evidence"] = "{}"
    trials["final/loss/d"] = np.where(failed, 0.735, 0.70)
    trials["final/loss/g"] = np.where(failed, 2.9, 0.8)
    trials["final/d/accuracy"] = np.where(failed, 0.5, 0.63)
    trials["final/g/accuracy"] = np.where(failed, 0.996, 0.86)
    trials["mlflow_run_id"] = [f"{i:032x}" for i in range(len(trials))]
    trials["tracking_uri"] = "http://127.0.0.1:5000"
    trials["started_at"] = "2026-11-22T10:00:00+00:00"
    trials["finished_at"] = "2026-11-22T10:05:00+00:00"
    if with_error:
        trials.loc[0, ["verdict", "status", "error"]] = ["error", "error", "RuntimeError: boom"]
    path.mkdir(parents=True, exist_ok=True)
    trials.to_parquet(path / "trials.parquet")
    epochs = []
    for row in trials.itertuples():
        for e in range(1, 21):
            collapsing = row.verdict == "mode_collapse" and e >= 6
            epochs.append(
                {
                    "trial_id": row.trial_id,
                    "epoch": e,
                    "loss/d": 0.735 if collapsing else 0.69 + 0.01 * np.sin(e),
                    "loss/g": 2.9 if collapsing else 0.8 + 0.05 * np.cos(e),
                }
            )
    pd.DataFrame(epochs).to_parquet(path / "epochs.parquet")
    for row in trials.itertuples():
        folder = path / "trials" / row.trial_id
        folder.mkdir(parents=True, exist_ok=True)
        pixels = np.full((32, 32, 3), 200 if row.verdict == "stable" else 40, dtype=np.uint8)
        Image.fromarray(pixels).save(folder / "samples.png")
    (path / "sweep.json").write_text(
        json.dumps(
            {
                "name": "demo",
                "sweep_id": "abc123",
                "created": "2026-11-22T10:00:00+00:00",
                "varied": ["seed", "train.batch_size"],
                "tracking_uri": "http://127.0.0.1:5000",
                "parent_run_id": "f" * 32,
            }
        )
    )
    return path
