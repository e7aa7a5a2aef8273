"""Reading results: files, sweep directories, MLflow; one clear error for bad input."""

from __future__ import annotations

import json
from types import SimpleNamespace

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


def _fake_run(i: int, parent: str, verdict: str | None, status: str = "FINISHED"):
    params = {
        "seed": str(i),
        "init_seed": "None",
        "data_seed": "None",
        "train.batch_size": "256",
        "train.g_lr": "0.001",
        "train.d_lr": "0.001",
        "train.n_critic": "5" if i % 2 else "1",
        "data.name": "ring",
    }
    tags = {"gansweep.trial_id": f"t{i}", "mlflow.parentRunId": parent}
    if verdict:
        tags["gansweep.verdict"] = verdict
        tags["gansweep.onset_epoch"] = "4" if verdict != "stable" else "None"
    return SimpleNamespace(
        info=SimpleNamespace(
            run_id=f"run{i}",
            run_name=f"trial {i}",
            experiment_id="7",
            status=status,
            start_time=1_700_000_000_000,
            end_time=None,
        ),
        data=SimpleNamespace(
            params=params, tags=tags, metrics={"loss/d": 0.73, "loss/g": 1.2, "epoch": 10.0}
        ),
    )


class _FakeClient:
    """Stands in for mlflow.MlflowClient: a parent run with paged child runs."""

    def __init__(self, tracking_uri=None):
        self.tracking_uri = tracking_uri or "sqlite:///x.db"
        self.children = [
            _fake_run(0, "p1", "stable"),
            _fake_run(1, "p1", "mode_collapse"),
            _fake_run(2, "p1", None, status="FAILED"),
        ]

    def get_run(self, run_id):
        from mlflow.exceptions import MlflowException

        if run_id != "p1":
            raise MlflowException(f"Run with id={run_id} not found")
        return SimpleNamespace(info=SimpleNamespace(experiment_id="7", run_name="demo-sweep"))

    def search_runs(self, experiment_ids, filter_string, max_results, page_token=None):
        assert filter_string == "tags.mlflow.parentRunId = 'p1'"
        start = int(page_token or 0)
        page = _Page(self.children[start : start + 2])
        page.token = str(start + 2) if start + 2 < len(self.children) else None
        return page


class _Page(list):
    token = None


def test_mlflow_children_become_a_trials_table(monkeypatch):
    import mlflow

    monkeypatch.setattr(mlflow, "MlflowClient", _FakeClient)
    table = load_results("mlflow:p1", tracking_uri="http://mlflow:5000")
    assert list(table["trial_id"]) == ["t0", "t1", "t2"]
    assert list(table["batch_size"]) == [256] * 3 and list(table["lr"]) == [0.001] * 3
    assert list(table["seed"]) == [0, 1, 2] and list(table["init_seed"]) == [0, 1, 2]
    assert list(table["verdict"]) == ["stable", "mode_collapse", "error"]
    assert table.loc[1, "final/loss/d"] == 0.73 and table.loc[1, "onset_epoch"] == 4
    assert table.attrs["group_columns"] == ["train.n_critic"]  # varies; data.name does not
    assert table.attrs["source"] == "mlflow:p1" and table.attrs["sweep_name"] == "demo-sweep"
    with pytest.raises(AnalysisInputError, match="MLflow run nope at http://mlflow:5000"):
        load_results("mlflow:nope", tracking_uri="http://mlflow:5000")


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
    # The report reads the failed trials' loss curves back from MLflow.
    data = prepare_report(triage(load_results(f"mlflow:{pid}", tracking_uri=uri)))
    assert sorted(data.curves) == ["s1b1024", "s2b1024"] and not data.notes


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
