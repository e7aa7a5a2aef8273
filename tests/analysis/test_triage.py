"""The classifier on grids whose true cause is known by construction."""

from __future__ import annotations

import math

import pandas as pd
import pytest
import yaml

from analysis import AnalysisInputError, triage
from tests.analysis.grids import by_id, causes_of, grid, thresholds_both


def test_pure_init_failures_are_init_with_the_good_seeds_named():
    result = triage(grid(lambda s, b, lr: s == 7))
    assert set(causes_of(result).values()) == {"init"}
    assert result.n_failed == 3
    d = by_id(result, "s7-b256-lr0.001")
    assert d.confidence == pytest.approx(0.9)  # 1 failure vs 9 other seeds: p = 1/10
    assert d.confidence_label == "medium"
    # Stratified by batch size: it failed at 64 and at 1024, each 1 of 10 there: (1/10)^2.
    assert d.tests["p_seed_elsewhere"] == pytest.approx(0.01)
    assert d.fix.known_good == [1, 2, 3, 4, 5, 6, 8, 9, 10]
    assert "Seed 7 also failed at 64 and 1024" in " ".join(d.evidence)
    assert "At batch 256, seeds 1-6 and 8-10 succeeded." in d.evidence
    assert d.seed_stream == "seed"  # one seed set both init and data order


def test_pure_batch_failures_are_batch_with_largest_working_batch_and_scaled_lr():
    result = triage(grid(lambda s, b, lr: b == 1024))
    assert set(causes_of(result).values()) == {"batch"}
    d = by_id(result, "s3-b1024-lr0.001")
    assert d.confidence > 0.99
    assert d.fix.largest_working_batch == 256
    assert d.fix.lr_linear["lr"] == pytest.approx(1e-3 * 256 / 1024)
    assert d.fix.lr_sqrt["lr"] == pytest.approx(1e-3 * math.sqrt(256 / 1024))
    assert "At batch 1024, seeds 1-2 and 4-10 also failed." in d.evidence or any(
        "seeds 1, 2 and 4-10 also failed" in e for e in d.evidence
    )
    assert result.findings.trend.p_increasing < 0.001
    assert result.findings.trend_text.startswith("Smaller batches are more robust")


def test_seed_specific_thresholds_are_both():
    result = triage(thresholds_both())
    causes = causes_of(result)
    assert result.n_failed == 4 * 2 + 4 * 4
    assert set(causes.values()) == {"both"}
    fragile = by_id(result, "s9-b128-lr0.001")
    assert fragile.fix.largest_working_batch == 64  # the largest this seed survived
    assert set(fragile.fix.known_good) >= {1, 2, 3, 4}  # seeds that succeeded at 128


def test_learning_rate_failures_are_lr_and_point_to_the_working_lr():
    result = triage(grid(lambda s, b, lr: lr == 1e-2, lrs=(1e-4, 1e-3, 1e-2)))
    assert set(causes_of(result).values()) == {"lr"}
    d = result.diagnoses[0]
    assert d.fix.better_lr == "0.0001"
    assert d.confidence > 0.99
    assert "at lr 0.0001 in the same group, 30 of 30 succeeded" in " ".join(d.evidence)


def test_lr_is_not_claimed_when_no_other_lr_was_tried_but_lower_lrs_are_proposed():
    result = triage(grid(lambda s, b, lr: True))
    assert set(causes_of(result).values()) == {"inconclusive"}
    (plan,) = result.followups
    assert plan.purpose == "lr" and len(plan.decides) == 30
    g = yaml.safe_load(plan.yaml)["grid"]
    assert g["lr"] == [0.0001, 0.0003] and g["batch_size"] == [64] and len(g["seed"]) == 5
    assert "no other LR" in " ".join(result.diagnoses[0].evidence)


def test_sporadic_failures_no_factor_explains_are_inconclusive_with_a_repeat_planned():
    cells = {(1, 64), (4, 256), (7, 1024)}
    result = triage(grid(lambda s, b, lr: (s, b) in cells))
    assert set(causes_of(result).values()) == {"inconclusive"}
    assert all(d.best_guess is None for d in result.diagnoses)
    plans = [p for p in result.followups if p.purpose == "streams"]
    assert sorted(t for p in plans for t in p.decides) == sorted(
        d.trial_id for d in result.diagnoses
    )
    grid_1 = yaml.safe_load(plans[0].yaml)["grid"]
    assert grid_1["init_seed"] == grid_1["data_seed"] and len(grid_1["batch_size"]) == 1


@pytest.mark.parametrize(
    ("fail", "cause"),
    [(lambda s, b, lr: s == 7, "init"), (lambda s, b, lr: b == 1024, "batch")],
    ids=["init", "batch"],
)
def test_missing_cells_do_not_change_the_cause(fail, cause):
    missing = {(2, 64), (3, 256), (5, 1024), (8, 64), (9, 1024)}
    result = triage(grid(fail, drop=lambda s, b, lr: (s, b) in missing))
    assert set(causes_of(result).values()) == {cause}
    assert result.n_trials == 30 - len(missing)


def test_two_seeds_give_lower_confidence_than_ten():
    init_10 = triage(grid(lambda s, b, lr: s == 2))
    init_2 = triage(grid(lambda s, b, lr: s == 2, seeds=(1, 2)))
    assert (
        by_id(init_2, "s2-b256-lr0.001").confidence < by_id(init_10, "s2-b256-lr0.001").confidence
    )
    # One comparison seed cannot decide an init failure: inconclusive, leaning init.
    assert {d.cause for d in init_2.diagnoses} == {"inconclusive"}
    assert {d.best_guess for d in init_2.diagnoses} == {"init"}
    batch_10 = triage(grid(lambda s, b, lr: b == 1024))
    batch_2 = triage(grid(lambda s, b, lr: b == 1024, seeds=(1, 2)))
    two = by_id(batch_2, "s1-b1024-lr0.001")
    assert (two.cause, two.best_guess) == ("inconclusive", "batch")
    assert two.confidence == pytest.approx(2 / 3, abs=1e-3)  # 1 other seed vs its 2 smaller runs
    assert by_id(batch_10, "s1-b1024-lr0.001").confidence_label == "high"
    batch_4 = triage(grid(lambda s, b, lr: b == 1024, seeds=(1, 2, 3, 4)))
    assert {d.cause for d in batch_4.diagnoses} == {"batch"}
    assert (
        two.confidence
        < batch_4.diagnoses[0].confidence
        < by_id(batch_10, "s1-b1024-lr0.001").confidence
    )


def test_two_seed_followup_is_a_ready_grid_that_adds_seeds_where_the_failures_are():
    result = triage(grid(lambda s, b, lr: s == 2, seeds=(1, 2)))
    (plan,) = [p for p in result.followups if p.purpose == "decide"]
    g = yaml.safe_load(plan.yaml)["grid"]
    assert g["batch_size"] == [64, 256, 1024] and g["lr"] == [0.001]
    assert 2 in g["seed"] and len(g["seed"]) == 9  # seed 2 plus 8 new ones: 9 others at each b
    assert plan.runs == 27 and plan.new_runs == 24
    assert all(d.fix.followup == plan.index for d in result.diagnoses)


def test_one_seed_only_is_inconclusive():
    result = triage(grid(lambda s, b, lr: b == 1024, seeds=(5,)))
    assert {d.cause for d in result.diagnoses} == {"inconclusive"}


def test_comparison_stays_within_other_varied_params():
    broken = grid(lambda s, b, lr: b == 1024, extra={"train.n_critic": 1})
    fine = grid(lambda s, b, lr: False, extra={"train.n_critic": 5})
    result = triage(pd.concat([broken, fine], ignore_index=True))
    assert result.settings["group_columns"] == ["train.n_critic"]
    assert set(causes_of(result).values()) == {"batch"}
    assert all(d.panel == "lr 0.001, train.n_critic=1" for d in result.diagnoses)
    assert result.diagnoses[0].params["train.n_critic"] == 1


def _streams(fail) -> pd.DataFrame:
    rows = []
    for i in range(1, 7):
        for d in range(1, 7):
            for b in (64, 256):
                rows.append(
                    {
                        "trial_id": f"i{i}-d{d}-b{b}",
                        "seed": i,
                        "init_seed": i,
                        "data_seed": d,
                        "batch_size": b,
                        "lr": 1e-3,
                        "failed": fail(i, d),
                    }
                )
    return pd.DataFrame(rows)


def test_independent_init_and_data_seeds_separate_unlucky_init_from_unlucky_data_order():
    unlucky_init = triage(_streams(lambda i, d: i == 3))
    assert unlucky_init.settings["seed_streams_separated"]
    assert {(d.cause, d.seed_stream) for d in unlucky_init.diagnoses} == {("init", "init")}
    assert not [p for p in unlucky_init.followups if p.purpose == "streams"]
    unlucky_data = triage(_streams(lambda i, d: d == 5))
    assert {(d.cause, d.seed_stream) for d in unlucky_data.diagnoses} == {("init", "data")}
    assert "Use a known-good data seed" in unlucky_data.diagnoses[0].fix.text


def test_linear_lr_scaling_is_undone_so_batch_sizes_stay_comparable():
    table = grid(lambda s, b, lr: b == 1024, batches=(64, 128, 256, 512, 1024))
    table["lr"] = 1e-4 * table["batch_size"] / 64
    result = triage(table)
    assert result.settings["lr_scaling"] == "linear"
    assert set(causes_of(result).values()) == {"batch"}
    assert result.diagnoses[0].panel == "lr 0.0001 at batch 64 (linear scaling)"


def test_separate_g_and_d_learning_rates_are_scaled_separately():
    table = grid(lambda s, b, lr: b == 1024).drop(columns="lr").assign(g_lr=1e-4, d_lr=4e-4)
    d = triage(table).diagnoses[0]
    assert d.fix.lr_linear == {"g_lr": pytest.approx(2.5e-5), "d_lr": pytest.approx(1e-4)}
    assert d.params["g_lr"] == 1e-4 and "lr" not in d.params


def test_errored_trials_are_reported_not_triaged():
    table = grid(lambda s, b, lr: s == 7)
    table.loc[0, "verdict"] = "error"
    table["error"] = None
    table.loc[0, "error"] = "CUDA out of memory"
    result = triage(table)
    assert result.n_errored == 1 and result.n_trials == 29
    assert result.to_dict()["errored"] == [
        {"trial_id": "s1-b64-lr0.001", "excluded_reason": "error", "error": "CUDA out of memory"}
    ]


def test_collapse_symptom_table_uses_the_sweeps_own_numbers():
    table = grid(lambda s, b, lr: b == 1024)
    failed = table["verdict"] != "stable"
    table["final/loss/d"] = failed.map({True: 0.735, False: 0.70})
    table["final/d/accuracy"] = failed.map({True: 0.50, False: 0.62})
    table["final/g/accuracy"] = failed.map({True: 0.995, False: 0.88})
    f = triage(table).findings
    rows = f.collapse.set_index("metric")
    assert list(rows.index) == ["D loss", "D accuracy", "G accuracy"]
    assert rows.loc["D loss", "mode_collapse"] == "0.735 [0.735-0.735]; 10/10 in collapse range"
    assert rows.loc["G accuracy", "stable"] == "88% [88%-88%]; 0/20 in collapse range"
    assert f.collapse_matches == 10 and f.collapse_failed == 10


def test_failure_rates_by_factor_and_seed_outliers():
    result = triage(grid(lambda s, b, lr: s in (3, 7), seeds=range(1, 21)))
    by_seed = result.findings.by_factor["seed"].set_index("value")
    assert by_seed.loc[7, "rate"] == 1.0 and by_seed.loc[1, "rate"] == 0.0
    assert set(result.findings.seed_outliers["value"]) == {3, 7}
    assert not result.findings.trend.testable or result.findings.trend.p_increasing > 0.05


def test_triage_json_is_plain_json_with_every_failure():
    import json

    result = triage(grid(lambda s, b, lr: s == 7 or b == 1024))
    doc = json.loads(json.dumps(result.to_dict(), allow_nan=False))
    assert doc["counts"]["failed"] == len(doc["failures"]) == 12
    first = doc["failures"][0]
    assert {"trial_id", "params", "failure_mode", "cause", "confidence", "evidence", "fix"} <= set(
        first
    )
    assert doc["findings"]["batch_trend"]["p_increasing"] < 0.05
    assert "Fisher" in doc["method"]


def test_bad_table_raises_one_clear_error():
    with pytest.raises(AnalysisInputError, match="batch_size"):
        triage(pd.DataFrame({"seed": [1], "failed": [True]}))


def test_a_bad_seed_at_a_bad_batch_size_is_both_and_elsewhere_still_init():
    result = triage(grid(lambda s, b, lr: s == 7 or b == 1024))
    assert by_id(result, "s7-b1024-lr0.001").cause == "both"
    # A batch size where every seed failed says nothing about seed 7 (stratified test).
    assert by_id(result, "s7-b1024-lr0.001").fix.known_good == [1, 2, 3, 4, 5, 6, 8, 9, 10]
    assert "Use batch_size 256 or smaller with a seed that worked there (1-6 and 8-10)" in (
        by_id(result, "s7-b1024-lr0.001").fix.text
    )
    init = by_id(result, "s7-b64-lr0.001")
    assert init.cause == "init" and init.tests["p_seed_elsewhere"] == pytest.approx(0.1)
    assert by_id(result, "s3-b1024-lr0.001").cause == "batch"
