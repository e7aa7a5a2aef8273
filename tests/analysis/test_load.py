"""Reading results: files, sweep directories, MLflow; one clear error for bad input."""

from __future__ import annotations

import io
import json

import pandas as pd
import pytest

from analysis import AnalysisInputError, load_results, normalize_results, triage
from analysis.report import prepare_report
from tests.analysis.grids import grid


def _raw(**columns) -> pd.DataFrame:
    base = {
        "seed": [1, 2, 3],
        "batch_size": [64, 64, 64],
        "lr": [1e-3] * 3,
        "verdict": ["stable", "mode_collapse", "stable"],
    }
    base.update(columns)
    return pd.DataFrame({k: v for k, v in base.items() if v is not None})


@pytest.mark.parametrize(
    ("columns", "message"),
    [
        ({"seed": None}, "missing required column 'seed'"),
        ({"batch_size": None}, "missing required column 'batch_size'"),
        ({"verdict": None}, "missing an outcome column"),
        ({"batch_size": [64, "big", 64]}, "batch_size must be a number; got 'big' (trial row1)"),
        ({"batch_size": [64, 0, 64]}, "positive whole number"),
        ({"batch_size": [64, 64.5, 64]}, "positive whole number"),
        ({"batch_size": [64, 1e30, 64]}, "up to 2147483647; got 1e+30 (trial row1)"),
        ({"lr": [1e-3, float("inf"), 1e-3]}, "lr must be a finite positive number; got inf"),
        ({"lr": [1e-3, "-inf", 1e-3]}, "lr must be a finite positive number; got -inf"),
        ({"batch_size": [64, None, 64]}, "batch_size is empty in 1 row"),
        ({"lr": [1e-3, "fast", 1e-3]}, "lr must be a number"),
        ({"seed": [1, None, 3]}, "seed is empty"),
        ({"trial_id": ["a", "a", "b"]}, "trial_id 'a' appears more than once"),
        ({"verdict": [None, None, None]}, "no trials with an outcome"),
        ({"verdict": ["error", "error", "error"]}, "no trials with an outcome"),
    ],
)
def test_bad_tables_give_one_clear_error(columns, message):
    with pytest.raises(AnalysisInputError) as info:
        normalize_results(_raw(**columns))
    assert message in str(info.value)


def test_empty_table():
    with pytest.raises(AnalysisInputError, match="no trials"):
        normalize_results(_raw().iloc[0:0])


def test_failed_column_parses_common_spellings_and_beats_verdict():
    table = normalize_results(_raw(failed=["no", "TRUE", 0], verdict=["stable", "diverged", "x"]))
    assert list(table["failed"]) == [False, True, False]
    assert list(table["verdict"]) == ["stable", "diverged", "stable"]
    with pytest.raises(AnalysisInputError, match="failed must be true/false"):
        normalize_results(_raw(failed=["yes", "maybe", "no"]))


def test_column_mapping_and_its_errors():
    raw = _raw().rename(columns={"seed": "random_state", "batch_size": "bs", "verdict": "outcome"})
    table = normalize_results(
        raw, columns={"seed": "random_state", "batch_size": "bs", "verdict": "outcome"}
    )
    assert list(table["seed"]) == [1, 2, 3] and list(table["failed"]) == [False, True, False]
    with pytest.raises(AnalysisInputError, match="unknown column role 'bacth'"):
        normalize_results(raw, columns={"bacth": "bs"})
    with pytest.raises(AnalysisInputError, match="seed=rs names a column the table does not have"):
        normalize_results(raw, columns={"seed": "rs"})


def test_custom_success_verdicts_and_string_seeds():
    table = normalize_results(
        _raw(seed=["a", "b", "c"], verdict=["ok", "collapsed", "OK"]), success=["ok"]
    )
    assert list(table["failed"]) == [False, True, False]
    assert list(table["seed"]) == ["a", "b", "c"]


def test_lr_from_g_and_d_and_optional_lr():
    table = normalize_results(_raw(lr=None, g_lr=[1e-4] * 3, d_lr=[4e-4] * 3))
    assert table["lr"].isna().all() and list(table["lr_key"].unique()) == ["g 0.0001 / d 0.0004"]
    no_lr = normalize_results(_raw(lr=None))
    assert not no_lr.attrs["lr_known"] and set(no_lr["lr_key"]) == {"n/a"}


def test_init_and_data_seed_default_to_seed():
    table = normalize_results(_raw(init_seed=[7, None, 9]))
    assert list(table["init_seed"]) == [7, 2, 9] and list(table["data_seed"]) == [1, 2, 3]


def test_group_by_must_exist():
    with pytest.raises(AnalysisInputError, match="--group-by column 'train.x' is not in the table"):
        normalize_results(_raw(), group_by=["train.x"])


def test_parquet_and_csv_files(tmp_path):
    table = grid(lambda s, b, lr: s == 7)
    table.to_parquet(tmp_path / "r.parquet")
    table.to_csv(tmp_path / "r.csv", index=False)
    for name in ("r.parquet", "r.csv"):
        loaded = load_results(tmp_path / name)
        assert len(loaded) == 30 and loaded["failed"].sum() == 3
        assert loaded.attrs["source"].endswith(name)


def test_bad_sources(tmp_path):
    with pytest.raises(AnalysisInputError, match="no such file or directory"):
        load_results(tmp_path / "nope.parquet")
    (tmp_path / "r.xlsx").write_text("x")
    with pytest.raises(AnalysisInputError, match="unknown file type '.xlsx'"):
        load_results(tmp_path / "r.xlsx")
    (tmp_path / "broken.parquet").write_text("not parquet")
    with pytest.raises(AnalysisInputError, match="cannot read the table"):
        load_results(tmp_path / "broken.parquet")
    with pytest.raises(AnalysisInputError, match="not a sweep directory"):
        load_results(tmp_path)
    with pytest.raises(AnalysisInputError, match="needs a run id"):
        load_results("mlflow:")


def test_sweep_directory_uses_its_varied_params(tmp_path):
    table = grid(lambda s, b, lr: b == 1024, extra={"train.n_critic": 1, "data.std": 0.01})
    table.to_parquet(tmp_path / "trials.parquet")
    (tmp_path / "sweep.json").write_text(
        json.dumps({"name": "demo", "varied": ["seed", "train.batch_size", "train.n_critic"]})
    )
    loaded = load_results(tmp_path)
    assert loaded.attrs["sweep_name"] == "demo" and loaded.attrs["sweep_dir"] == str(tmp_path)
    # train.n_critic is varied but takes one value here; data.std was not varied.
    assert loaded.attrs["group_columns"] == []


@pytest.mark.slow
def test_mlflow_sqlite_store_end_to_end(tmp_path):
    from mlflow import MlflowClient

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    client = MlflowClient(tracking_uri=uri)
    exp = client.create_experiment("demo")
    parent = client.create_run(exp, run_name="demo", tags={"gansweep.sweep_id": "s1"})
    pid = parent.info.run_id
    for s, b in [(1, 64), (1, 1024), (2, 64), (2, 1024)]:
        run = client.create_run(
            exp,
            tags={
                "mlflow.parentRunId": pid,
                "gansweep.trial_id": f"s{s}b{b}",
                "gansweep.verdict": "diverged" if b == 1024 else "stable",
            },
        )
        for key, value in {
            "seed": s,
            "train.batch_size": b,
            "train.g_lr": 1e-3,
            "train.d_lr": 1e-3,
        }.items():
            client.log_param(run.info.run_id, key, value)
        for epoch in (1, 2, 3):
            client.log_metric(run.info.run_id, "loss/d", 0.7 + 0.01 * epoch, step=epoch)
        client.set_terminated(run.info.run_id)
    table = load_results(pid, tracking_uri=uri)  # a bare run id with --tracking-uri
    assert sorted(table["trial_id"]) == ["s1b1024", "s1b64", "s2b1024", "s2b64"]
    assert table.set_index("trial_id").loc["s2b1024", "failed"]
    assert table["final/loss/d"].round(2).tolist() == [0.73] * 4
    # The report reads the loss curves of each failure group's first trial back from MLflow.
    result = triage(load_results(f"mlflow:{pid}", tracking_uri=uri))
    data = prepare_report(result)
    assert sorted(data.curves) == sorted(g.trials[0] for g in result.groups) and not data.notes


def test_group_by_still_applies_to_a_loaded_table_and_mapping_does_not(tmp_path):
    table = grid(lambda s, b, lr: b == 1024, extra={"opt": "adam"})
    table.loc[table["seed"] > 5, "opt"] = "rmsprop"
    loaded = load_results(table)
    assert loaded.attrs["group_columns"] == []  # "opt" is not a dotted config path
    regrouped = normalize_results(loaded, group_by=["opt"])
    assert regrouped.attrs["group_columns"] == ["opt"]
    assert set(regrouped["group_key"]) == {"opt=adam", "opt=rmsprop"}
    with pytest.raises(AnalysisInputError, match="already normalised"):
        normalize_results(loaded, columns={"seed": "x"})
    with pytest.raises(AnalysisInputError, match="already normalised"):
        normalize_results(loaded, success=["ok"])


def test_seeds_of_any_size_are_labels():
    """A seed of 2**63 or more (beyond int64) is a label like any other, exactly as written."""
    huge = 2**63 + 5
    table = _raw(seed=[1, huge, 2**64 + 1], verdict=["stable", "mode_collapse", "stable"])
    loaded = normalize_results(table.astype({"seed": object}))
    assert list(loaded["seed"]) == [1, huge, 2**64 + 1]
    text = io.StringIO(f"seed,batch_size,failed\n{huge},64,1\n3,64,0\n")
    assert list(normalize_results(pd.read_csv(text))["seed"]) == [huge, 3]


def _mlflow_cli(tmp_path, *args, env_extra=None, timeout=60):
    import os
    import subprocess
    import sys
    import time
    from pathlib import Path

    env = {k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_")}
    env["PYTHONPATH"] = str(Path(__file__).resolve().parents[2])
    env.update(env_extra or {})
    start = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-m", "analysis", "triage", *args, "--out", str(tmp_path / "out")],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    return done, time.perf_counter() - start


@pytest.mark.slow
def test_unknown_mlflow_run_creates_no_database_and_prints_no_mlflow_info(tmp_path):
    done, _ = _mlflow_cli(tmp_path, "mlflow:" + "a" * 32)
    assert done.returncode == 2
    assert done.stderr.strip().splitlines() == [
        "gansweep triage: error: no MLflow tracking store: give --tracking-uri or set "
        "MLFLOW_TRACKING_URI (MLflow's default ./mlflow.db does not exist here)"
    ]
    assert done.stdout == "" and not (tmp_path / "mlflow.db").exists()
    assert not (tmp_path / "mlruns").exists() and not (tmp_path / "out").exists()
    missing = f"sqlite:///{tmp_path / 'other.db'}"
    done, _ = _mlflow_cli(tmp_path, "b" * 32, "--tracking-uri", missing)
    assert done.returncode == 2 and "no such database file" in done.stderr
    assert not (tmp_path / "other.db").exists()


@pytest.mark.slow
def test_unknown_run_in_an_existing_store_is_one_line_without_info_logs(tmp_path):
    from mlflow import MlflowClient

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    MlflowClient(tracking_uri=uri).create_experiment("x")  # the store exists
    done, _ = _mlflow_cli(tmp_path, "mlflow:" + "c" * 32)  # MLflow's default: ./mlflow.db
    assert done.returncode == 2 and done.stdout == ""
    (line,) = done.stderr.strip().splitlines()
    assert line.startswith("gansweep triage: error: MLflow run " + "c" * 32) and "INFO" not in line


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.slow
def test_a_dead_tracking_server_fails_within_ten_seconds(tmp_path):
    uri = f"http://127.0.0.1:{_free_port()}"
    done, seconds = _mlflow_cli(tmp_path, "mlflow:" + "d" * 32, "--tracking-uri", uri)
    assert done.returncode == 2 and seconds < 10
    assert done.stderr.strip().splitlines() == [
        f"gansweep triage: error: MLflow tracking server {uri} is not reachable "
        "(Connection refused)"
    ]


@pytest.mark.slow
def test_a_server_that_never_answers_fails_within_about_ten_seconds(tmp_path):
    import socket

    with socket.socket() as hung:  # accepts connections, never answers
        hung.bind(("127.0.0.1", 0))
        hung.listen(8)
        uri = f"http://127.0.0.1:{hung.getsockname()[1]}"
        done, seconds = _mlflow_cli(tmp_path, "mlflow:" + "e" * 32, "--tracking-uri", uri)
    assert done.returncode == 2 and seconds < 15, (seconds, done.stderr)
    assert len(done.stderr.strip().splitlines()) == 1 and "Traceback" not in done.stderr


_VOCAB = (
    "seed",
    "init_seed",
    "data_seed",
    "batch_size",
    "lr",
    "g_lr",
    "d_lr",
    "failed",
    "verdict",
    "status",
    "trial_id",
    "train.n_critic",
    "error",
    "epochs_run",
    "final/loss/d",
    "x",
    "",
)
_VALUES = (
    0,
    1,
    -1,
    7,
    64,
    256,
    2**63,
    2**64 + 3,
    1e30,
    -1e30,
    0.5,
    1e-3,
    float("nan"),
    float("inf"),
    float("-inf"),
    None,
    True,
    False,
    "",
    " ",
    "stable",
    "mode_collapse",
    "error",
    "pruned",
    "ok",
    "yes",
    "no",
    "1e-3",
    "64",
    "abc",
    "$x^$",
    "<b>bold</b>",
    "ünïcode",
    "a|b",
    "\n",
)


def _random_table(rng) -> pd.DataFrame:
    """A table of random columns (mostly canonical names) and random values of mixed types."""
    columns = {}
    for name in rng.choice(_VOCAB, size=rng.integers(0, 9), replace=False):
        rows = int(rng.integers(0, 12)) if not columns else len(next(iter(columns.values())))
        kind = rng.integers(0, 3)
        if kind == 0:  # mixed garbage
            values = [_VALUES[i] for i in rng.integers(0, len(_VALUES), rows)]
        elif kind == 1:  # plausible numbers
            values = list(rng.choice([1, 2, 3, 64, 256, 1024, 1e-3, 3e-4], rows))
        else:  # plausible outcomes
            values = list(rng.choice(["stable", "mode_collapse", "diverged", "pruned"], rows))
        columns[str(name)] = pd.Series(values, dtype=object)
    return pd.DataFrame(columns)


def test_fuzzed_tables_give_a_result_or_one_clear_error(tmp_path):
    """Random tables, columns and values: the loader, the triage and the report never crash."""
    import numpy as np

    from analysis import write_report

    rng = np.random.default_rng(20261202)
    outcomes = {"ok": 0, "error": 0}
    for i in range(300):
        table = _random_table(rng)
        # Also a usable table with some of its columns replaced by random ones.
        mixed = _raw().astype(object)
        for name in rng.choice(_VOCAB[:10], size=rng.integers(1, 3), replace=False):
            mixed[name] = [_VALUES[j] for j in rng.integers(0, len(_VALUES), len(mixed))]
        for t in (table, mixed):
            try:
                result = triage(t)
            except AnalysisInputError as exc:
                assert str(exc) and "\n" not in str(exc)
                outcomes["error"] += 1
                continue
            outcomes["ok"] += 1
            if outcomes["ok"] % 10 == 1:
                write_report(result, tmp_path / f"r{i}", max_panels=2)
    assert outcomes["ok"] >= 20 and outcomes["error"] >= 100, outcomes


def test_reading_some_trials_skips_row_groups_and_keeps_exactly_their_rows(tmp_path, monkeypatch):
    """`read_sweep_table(..., trial_ids=)` reads only row groups whose trial_id range can hold
    a wanted id, and returns the same rows in the same order as filtering the whole file."""
    import random

    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    from analysis.load import read_sweep_table

    n = 40
    ids = [f"t{i:04d}" for i in range(n) for _ in range(5)]  # 5 epochs each, in trial order
    table = pa.table({"trial_id": ids, "epoch": [e for _ in range(n) for e in range(1, 6)],
                      "loss/d": [float(i) for i in range(len(ids))]})  # fmt: skip
    (tmp_path / "sweep.json").write_text("{}")
    path = tmp_path / "epochs.parquet"
    pq.write_table(table, path, row_group_size=25)  # 8 row groups of 5 trials
    read = []
    original = pq.ParquetFile.read_row_groups

    def recorded(self, groups, **kwargs):
        read.append(list(groups))
        return original(self, groups, **kwargs)

    monkeypatch.setattr(pq.ParquetFile, "read_row_groups", recorded)
    rng = random.Random(0)
    cases = [[], ["t0007"], ["t0007", "t0031"], ["nope"], [f"t{i:04d}" for i in range(10, 15)]]
    cases += [rng.sample(sorted(set(ids)), rng.randint(1, 12)) for _ in range(20)]
    for wanted in cases:
        got = read_sweep_table(tmp_path, "epochs", trial_ids=wanted)
        keep = pc.is_in(table.column("trial_id"), pa.array(wanted, pa.string()))
        assert got.to_pylist() == table.filter(keep).to_pylist(), wanted
    assert read[:5] == [[], [1], [1, 6], [], [2]]  # groups of 5 trials: only those that hold them
