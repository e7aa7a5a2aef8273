"""The classifier on grids whose true cause is known by construction."""

from __future__ import annotations

import json
import math

import pandas as pd
import pytest

from analysis import AnalysisInputError, triage
from tests.analysis.grids import by_id, causes_of, grid, thresholds_both


def test_pure_init_failures_are_one_init_group_with_the_good_seeds_named():
    result = triage(grid(lambda s, b, lr: s == 7))
    assert set(causes_of(result).values()) == {"init"}
    assert result.n_failed == 3
    (group,) = result.groups
    assert group.trials == ["s7-b64-lr0.001", "s7-b256-lr0.001", "s7-b1024-lr0.001"]
    d = by_id(result, "s7-b256-lr0.001")
    assert d.confidence >= 0.97 and d.confidence_label == "high"
    assert d.group == group.index and d.fix is group.fix
    assert group.fix.known_good == [1, 2, 3, 4, 5, 6, 8, 9, 10]
    assert "Seed 7 failed in 3 of 3 runs: lr 0.001 failed at 64, 256 and 1024." in group.evidence
    assert any("the other seeds in 0 of 27 runs" in e for e in group.evidence)
    assert d.seed_stream == "seed"  # one seed set both init and data order


def test_pure_batch_failures_are_batch_with_largest_working_batch_and_scaled_lr():
    result = triage(grid(lambda s, b, lr: b == 1024))
    assert set(causes_of(result).values()) == {"batch"}
    (group,) = result.groups
    d = by_id(result, "s3-b1024-lr0.001")
    assert d.confidence > 0.97
    assert group.fix.largest_working_batch == 256
    assert group.fix.lr_linear["lr"] == pytest.approx(1e-3 * 256 / 1024)
    assert group.fix.lr_sqrt["lr"] == pytest.approx(1e-3 * math.sqrt(256 / 1024))
    assert group.evidence[0].startswith("At lr 0.001 batch 1024 failed in 10 of 10 runs")
    assert result.findings.trend.p_increasing < 0.001
    assert result.findings.trend_text.startswith("Smaller batches are more robust")


def test_a_seed_failing_from_its_own_batch_size_up_is_both():
    """Seed 3 succeeds at 32-128 and fails from 256 up, where every other seed succeeds."""
    fail = lambda s, b, lr: s == 3 and b >= 256  # noqa: E731
    result = triage(grid(fail, seeds=range(1, 11), batches=(32, 64, 128, 256, 512, 1024)))
    assert set(causes_of(result).values()) == {"both"}
    (group,) = result.groups
    assert group.title == "seed 3" and group.fix.largest_working_batch == 128
    assert "With seed 3 use batch_size 128 or smaller" in group.fix.text


def test_a_seed_is_not_implicated_for_failing_where_most_seeds_fail():
    """The issue's rule: a seed that succeeded at every smaller batch size, like the others,
    failing where most seeds fail, is a batch failure."""
    result = triage(thresholds_both())
    causes = {d.trial_id: d for d in result.diagnoses}
    for s in (5, 6, 7, 8):  # fail only at 512 and 1024, where 8 of 12 seeds fail
        assert causes[f"s{s}-b512-lr0.001"].cause == "batch"
    # Seeds 9-12 fail from 128 up, where the others succeed: the seed matters.
    assert {causes[f"s{s}-b128-lr0.001"].best_guess for s in (9, 10, 11, 12)} == {"both"}


def test_learning_rate_failures_are_lr_and_point_to_the_working_lr():
    result = triage(grid(lambda s, b, lr: lr == 1e-2, lrs=(1e-4, 1e-3, 1e-2)))
    assert set(causes_of(result).values()) == {"lr"}
    (group,) = result.groups
    assert group.fix.better_lr in ("0.0001", "0.001")
    assert result.diagnoses[0].confidence > 0.99
    assert "in the same group, 30 of 30 runs succeeded" in " ".join(group.evidence)


def test_lr_is_not_claimed_when_no_other_lr_was_tried_and_lower_lrs_are_proposed():
    result = triage(grid(lambda s, b, lr: True))
    assert set(causes_of(result).values()) == {"inconclusive"}
    (group,) = result.groups
    assert group.reason == "shared"
    (plan,) = result.followups
    assert plan.purpose == "lr" and len(plan.decides) == 30
    # Lower LRs, not more seeds at the same LR; the seeds are the sweep's own.
    assert plan.grid["lr"] == [0.0001, 0.000333]
    assert set(plan.grid["seed"]) <= set(range(1, 11)) and plan.runs > 0
    assert "no other LR here that works" in group.evidence[0]


def test_sporadic_failures_no_factor_explains_are_chance_without_a_followup():
    cells = {(1, 64), (4, 256), (7, 1024)}
    result = triage(grid(lambda s, b, lr: (s, b) in cells))
    assert set(causes_of(result).values()) == {"inconclusive"}
    assert {g.reason for g in result.groups} == {"chance"}
    assert all(d.probabilities["chance"] > 0.7 for d in result.diagnoses)
    assert result.followups == []


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


def test_two_seeds_give_lower_confidence_than_ten_and_stay_inconclusive():
    init_10 = triage(grid(lambda s, b, lr: s == 2))
    init_2 = triage(grid(lambda s, b, lr: s == 2, seeds=(1, 2)))
    two, ten = by_id(init_2, "s2-b256-lr0.001"), by_id(init_10, "s2-b256-lr0.001")
    assert two.confidence < ten.confidence
    assert (two.cause, two.best_guess) == ("inconclusive", "init")
    assert init_2.groups[0].reason == "weak"


def test_is_this_seed_bad_is_decided_by_its_init_with_new_data_seeds():
    """A rerun of seed 2 would repeat its result; seed 2's initialisation with new data
    orders (beside seed 1, which worked) is new evidence, and no point is one already run."""
    result = triage(grid(lambda s, b, lr: s == 2, seeds=(1, 2)))
    (plan,) = result.followups
    assert plan.purpose == "decide"
    assert plan.grid["init_seed"] == [2, 1] and not set(plan.grid["data_seed"]) & {1, 2}
    assert plan.grid["batch_size"] == [64, 256, 1024] and plan.grid["lr"] == [0.001]
    assert plan.runs == 2 * len(plan.grid["data_seed"]) * 3 == plan.new_runs
    assert plan.reached == {1: pytest.approx(plan.reached[1])} and plan.reached[1] >= 0.9
    assert result.groups[0].fix.followup == plan.index


def test_a_weak_batch_question_gets_new_seeds_at_the_failing_and_a_working_batch():
    result = triage(grid(lambda s, b, lr: b == 1024 and s != 3, seeds=(1, 2, 3)))
    assert {(g.reason, g.best_guess) for g in result.groups} == {("weak", "batch")}
    (plan,) = result.followups
    assert plan.purpose == "decide" and "(batch)" in plan.promise
    assert plan.grid["batch_size"] == [256, 1024] and not set(plan.grid["seed"]) & {1, 2, 3}
    assert min(plan.reached.values()) >= 0.9


def test_a_seed_failing_at_every_lr_is_pooled_evidence():
    """Each LR replicates the seed's failure: more LRs, more confidence."""
    conf = []
    for lrs in [(1e-3,), (1e-4, 1e-3), (1e-4, 3e-4, 1e-3)]:
        t = grid(lambda s, b, lr: s == 2, seeds=(1, 2, 3, 4), batches=(64, 256), lrs=lrs)
        d = by_id(triage(t), "s2-b256-lr0.001")
        assert d.best_guess == "init"
        conf.append(d.confidence)
    assert conf[0] < 0.9 <= conf[1] < conf[2]


def test_a_single_batch_size_with_several_lrs_shows_an_init_cause():
    t = grid(lambda s, b, lr: s == 2, seeds=range(1, 9), batches=(256,), lrs=(1e-4, 3e-4, 1e-3))
    result = triage(t)
    assert set(causes_of(result).values()) == {"init"}
    assert len(result.groups) == 1 and result.groups[0].title == "seed 2"


def test_a_batch_size_failing_at_every_lr_is_pooled_evidence():
    conf = []
    for lrs in [(1e-3,), (1e-4, 1e-3), (1e-4, 3e-4, 1e-3)]:
        t = grid(lambda s, b, lr: b == 256, seeds=(1, 2, 3), batches=(64, 256), lrs=lrs)
        conf.append(by_id(triage(t), "s2-b256-lr0.001").confidence)
    assert conf[0] < conf[1] < conf[2]


def test_a_batch_limit_that_moves_with_the_lr_is_stratified():
    limit = {1e-4: 1024, 1e-3: 256}
    t = grid(lambda s, b, lr: b >= limit[lr], batches=(64, 128, 256, 512, 1024), lrs=(1e-4, 1e-3))
    result = triage(t)
    assert set(causes_of(result).values()) == {"batch"}
    fixes = {g.title: g.fix.largest_working_batch for g in result.groups}
    assert fixes == {"lr 0.0001, batch 1024": 512, "lr 0.001, batch 256, 512 and 1024": 128}
    rows = {(k.lr, tuple(k.worked)) for k in result.known_good}
    assert rows == {("0.0001", (64, 128, 256, 512)), ("0.001", (64, 128))}


def test_repeats_of_a_cell_count_as_replications():
    base = grid(lambda s, b, lr: s == 2, seeds=(1, 2, 3))
    repeated = pd.concat(
        [base.assign(trial_id=base["trial_id"] + f"-r{r}") for r in range(3)], ignore_index=True
    )
    once = by_id(triage(base), "s2-b256-lr0.001").confidence
    thrice = by_id(triage(repeated), "s2-b256-lr0.001-r0").confidence
    assert once < thrice and thrice > 0.99


def test_a_clean_init_failure_is_as_confident_as_an_equally_clean_batch_failure():
    batches = (32, 64, 128, 256, 512, 1024)
    rows = [{"seed": s, "batch_size": b, "lr": 1e-3} for s in range(6) for b in batches]
    square = pd.DataFrame(rows)
    init = triage(square.assign(failed=square["seed"] == 2))
    batch = triage(square.assign(failed=square["batch_size"] == 1024))
    c_init = min(d.confidence for d in init.diagnoses)
    c_batch = min(d.confidence for d in batch.diagnoses)
    assert {d.cause for d in init.diagnoses} == {"init"}
    assert {d.cause for d in batch.diagnoses} == {"batch"}
    assert c_init >= 0.97 and c_batch >= 0.97 and abs(c_init - c_batch) < 0.02


def test_comparison_stays_within_other_varied_params():
    broken = grid(lambda s, b, lr: b == 1024, extra={"train.n_critic": 1})
    fine = grid(lambda s, b, lr: False, extra={"train.n_critic": 5})
    result = triage(pd.concat([broken, fine], ignore_index=True))
    assert result.settings["group_columns"] == ["train.n_critic"]
    assert set(causes_of(result).values()) == {"batch"}
    assert all(d.panel == "lr 0.001, train.n_critic=1" for d in result.diagnoses)
    assert result.diagnoses[0].params["train.n_critic"] == 1
    assert result.groups[0].group == "train.n_critic=1"


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
    assert "Use a known-good data seed" in unlucky_data.groups[0].fix.text


def test_an_init_failure_gets_a_streams_followup_with_new_data_seeds_only():
    result = triage(grid(lambda s, b, lr: s == 7))
    (plan,) = result.followups
    assert plan.purpose == "streams"
    assert plan.grid["init_seed"][0] == 7 and 7 not in plan.grid["data_seed"]
    assert not set(plan.grid["data_seed"]) & set(range(1, 11))  # all new: nothing rerun
    assert min(plan.reached.values()) >= 0.9


def test_linear_lr_scaling_is_undone_so_batch_sizes_stay_comparable():
    table = grid(lambda s, b, lr: b == 1024, batches=(64, 128, 256, 512, 1024))
    table["lr"] = 1e-4 * table["batch_size"] / 64
    result = triage(table)
    assert result.settings["lr_scaling"] == "linear"
    assert set(causes_of(result).values()) == {"batch"}
    assert result.diagnoses[0].panel == "lr 0.0001 at batch 64 (linear scaling)"


def test_separate_g_and_d_learning_rates_are_scaled_separately():
    table = grid(lambda s, b, lr: b == 1024).drop(columns="lr").assign(g_lr=1e-4, d_lr=4e-4)
    result = triage(table)
    assert result.groups[0].fix.lr_linear == {
        "g_lr": pytest.approx(2.5e-5),
        "d_lr": pytest.approx(1e-4),
    }
    assert result.diagnoses[0].params["g_lr"] == 1e-4 and "lr" not in result.diagnoses[0].params


def test_errored_trials_are_reported_not_triaged():
    table = grid(lambda s, b, lr: s == 7)
    table.loc[0, "verdict"] = "error"
    table["error"] = None
    table.loc[0, "error"] = "CUDA out of memory"
    result = triage(table)
    assert result.n_errored == 1 and result.n_trials == 29
    assert result.to_dict()["excluded"] == [
        {"trial_id": "s1-b64-lr0.001", "reason": "error", "error": "CUDA out of memory"}
    ]


def test_pruned_trials_are_censored_not_failures():
    """Trials an ASHA or Optuna pruner stopped are neither successes nor failures."""
    table = grid(lambda s, b, lr: s == 7)
    table["status"], table["epochs_run"] = "ok", 20
    pruned = table["seed"].isin([2, 3])  # stopped early by the scheduler, verdicts vary
    table.loc[pruned, "status"] = "pruned"
    table.loc[pruned, "epochs_run"] = 5
    table.loc[table["seed"] == 2, "verdict"] = "pruned"
    table.loc[table["seed"] == 3, "verdict"] = "mode_collapse"  # its last evaluation's verdict
    result = triage(table)
    assert result.n_pruned == 6 and result.n_trials == 24 and result.n_failed == 3
    assert set(causes_of(result).values()) == {"init"}
    assert "6 pruned (censored)" in result.summary
    doc = result.to_dict()
    assert doc["counts"]["pruned"] == 6 and doc["counts"]["failed"] == 3
    reasons = {r["trial_id"]: (r["reason"], r["epochs_run"]) for r in doc["excluded"]}
    assert reasons["s3-b64-lr0.001"] == ("pruned", 5)
    rates = result.findings.by_factor["seed"].set_index("value")
    assert 3 not in rates.index  # left out of the failure rates too


def test_every_trial_pruned_is_one_clear_error():
    table = grid(lambda s, b, lr: False).assign(status="pruned")
    with pytest.raises(AnalysisInputError, match="errored, were pruned or have no outcome"):
        triage(table)


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
    assert {g.title for g in result.groups} == {"seed 3", "seed 7"}


def test_triage_json_is_plain_json_with_groups_and_every_failure():
    result = triage(grid(lambda s, b, lr: s == 7 or b == 1024))
    doc = json.loads(json.dumps(result.to_dict(), allow_nan=False))
    assert doc["schema"] == "gansweep.triage/2"
    assert doc["counts"]["failed"] == len(doc["failures"]) == 12
    assert sum(g["failures"] for g in doc["groups"]) == 12
    first = doc["failures"][0]
    assert {"trial_id", "params", "failure_mode", "cause", "confidence", "group"} <= set(first)
    group = doc["groups"][first["group"] - 1]
    assert first["trial_id"] in group["trials"] and group["evidence"] and group["fix"]["text"]
    assert doc["findings"]["batch_trend"]["p_increasing"] < 0.05
    assert "posterior" in doc["method"]


def test_bad_table_raises_one_clear_error():
    with pytest.raises(AnalysisInputError, match="batch_size"):
        triage(pd.DataFrame({"seed": [1], "failed": [True]}))


def test_a_bad_seed_at_a_bad_batch_size_is_both_and_elsewhere_still_init():
    result = triage(grid(lambda s, b, lr: s == 7 or b == 1024))
    both = by_id(result, "s7-b1024-lr0.001")
    assert both.cause == "both"
    group = result.groups[both.group - 1]
    assert group.fix.known_good == [1, 2, 3, 4, 5, 6, 8, 9, 10]
    assert "Use a seed that never failed here (1-6 and 8-10)" in group.fix.text
    assert by_id(result, "s7-b64-lr0.001").cause == "init"
    assert by_id(result, "s3-b1024-lr0.001").cause == "batch"


def test_known_good_settings_come_first_in_the_actions():
    result = triage(grid(lambda s, b, lr: b == 1024 or lr == 1e-2, lrs=(1e-3, 1e-2)))
    assert result.actions[0].startswith("Known-good settings: lr 0.001 with batch 64 and 256")
    assert "seeds that never failed: 1-10" in result.actions[0]
