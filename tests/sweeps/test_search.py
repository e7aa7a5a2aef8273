"""The Optuna searcher on a real SQLite study, without Ray trials: continuation without
repeated points, study states and user attributes, intermediate values under every
scheduler, Optuna-style spaces and multi-objective studies."""

from __future__ import annotations

import json
import math

import optuna
import pytest

from sweeps.search import OBJECTIVE, build_search, optuna_space, sampler_seed
from sweeps.spec import SpecError, parse_spec

from .conftest import sweep_dict

S = optuna.trial.TrialState


def _spec(tmp_path, scheduler=None, space=None, **search):
    values = {
        "space": space
        or {
            "lr": {"type": "log_float", "low": 1e-4, "high": 1e-2},
            "train.n_critic": {"type": "int", "low": 1, "high": 3},
            "batch_size": {"type": "categorical", "values": [64, 128]},
        },
        "objective": {"metric": "quality/modes", "mode": "max"},
        **search,
    }
    if scheduler is not None:
        values["scheduler"] = scheduler
    return parse_spec(sweep_dict(tmp_path, search=values, grid=None))


def _result(tid, epoch, final=False, **record):
    """A Tune result as the searcher gets it: the records as one JSON string."""
    records = json.dumps({tid: {"loss/d": 0.7, **record}})
    return {"training_iteration": epoch, "epoch": epoch, "final": final, OBJECTIVE: math.nan,
            "records": records}  # fmt: skip


def _run(searcher, ray_id, values_by_epoch, final=True, complete_at=None):
    """Suggest a trial, feed its epochs, complete it; returns its gansweep trial id."""
    tid = searcher.suggest(ray_id)["trial"]["members"][0]["trial_id"]
    last = len(values_by_epoch)
    for epoch, value in enumerate(values_by_epoch[:-1], start=1):
        searcher.on_trial_result(ray_id, _result(tid, epoch, **{"quality/modes": value}))
    searcher.on_trial_complete(
        ray_id, _result(tid, complete_at or last, final, **{"quality/modes": values_by_epoch[-1]})
    )
    return tid


def test_second_call_continues_without_repeating_points(tmp_path):
    spec = _spec(tmp_path, {"type": "none"})
    url = f"sqlite:///{tmp_path / 'optuna.db'}"
    first = build_search(spec, url, "s", max_concurrent=1)[0].searcher
    points = []
    for i in range(3):
        points.append(first.suggest(f"a{i}")["trial"]["members"][0]["point"])
        first.on_trial_complete(f"a{i}", _result(f"o{i:04d}", 1, True, **{"quality/modes": 3.0}))
    again = build_search(spec, url, "s", max_concurrent=1)[0].searcher  # a second `search` call
    later = [again.suggest(f"b{i}")["trial"]["members"] for i in range(3)]
    assert [m[0]["trial_id"] for m in later] == ["o0003", "o0004", "o0005"]
    assert all(m[0]["point"] not in points for m in later), (points, later)
    assert sampler_seed(0, 0) == 0 and sampler_seed(0, 3) != sampler_seed(0, 6)


def test_study_states_values_and_user_attributes(tmp_path):
    spec = _spec(tmp_path, {"type": "none"})
    url = f"sqlite:///{tmp_path / 'optuna.db'}"
    searcher = build_search(spec, url, "study", max_concurrent=4)[0].searcher
    tid = searcher.suggest("ray0")["trial"]["members"][0]["trial_id"]
    assert tid == "o0000"
    searcher.on_trial_result("ray0", _result(tid, 1, **{"quality/modes": 4.0}))
    final = {**_result(tid, 2, True, **{"quality/modes": 6.0}), "verdict": "stable"}
    searcher.on_trial_complete("ray0", final)
    tid1 = searcher.suggest("ray1")["trial"]["members"][0]["trial_id"]
    searcher.on_trial_complete("ray1", _result(tid1, 2, True, **{"loss/d": math.nan}))  # diverged
    tid2 = searcher.suggest("ray2")["trial"]["members"][0]["trial_id"]
    searcher.on_trial_complete("ray2", _result(tid2, 2, False, **{"quality/modes": 2.0}))
    searcher.suggest("ray3")
    searcher.on_trial_complete("ray3", None, error=True)
    study = optuna.load_study(study_name="study", storage=url)
    assert [t.state for t in study.trials] == [S.COMPLETE, S.FAIL, S.PRUNED, S.FAIL]
    best = study.trials[0]
    assert best.value == 6.0 and best.intermediate_values == {1: 4.0, 2: 6.0}
    assert best.user_attrs == {"gansweep_trial_id": "o0000", "verdict": "stable", "epochs_run": 2}
    assert study.trials[2].user_attrs["verdict"] == "pruned"
    assert study.trials[2].intermediate_values == {2: 2.0}  # the epoch it was stopped at
    assert [t.user_attrs["verdict"] for t in study.trials[1:4:2]] == ["", "error"]


def test_asha_stop_and_last_epoch_reach_the_study(tmp_path):
    """Tune passes neither a trial's last result nor the one ASHA stopped it at to
    on_trial_result; both must still be intermediate values."""
    spec = _spec(tmp_path, {"type": "asha", "grace_period": 3})
    url = f"sqlite:///{tmp_path / 'o.db'}"
    searcher = build_search(spec, url, "s", max_concurrent=2)[0].searcher
    _run(searcher, "done", [1.0, 2.0, 5.0])
    _run(searcher, "stopped", [1.0, 0.5], final=False)
    trials = optuna.load_study(study_name="s", storage=url).trials
    assert trials[0].intermediate_values == {1: 1.0, 2: 2.0, 3: 5.0} and trials[0].value == 5.0
    assert trials[1].state == S.PRUNED and trials[1].intermediate_values == {1: 1.0, 2: 0.5}
    assert trials[1].user_attrs["epochs_run"] == 2


def test_optuna_pruner_scheduler_stops_bad_trials(tmp_path):
    from ray.tune.schedulers import TrialScheduler

    sched = {"type": "optuna", "pruner": "median", "n_startup_trials": 1, "n_warmup_steps": 3}
    spec = _spec(tmp_path, sched)
    limiter, scheduler = build_search(spec, f"sqlite:///{tmp_path / 'o.db'}", "s", 2)
    searcher = limiter.searcher

    class _Trial:
        def __init__(self, trial_id):
            self.trial_id = trial_id

    _run(searcher, "good", [8.0] * 6)
    tid = searcher.suggest("bad")["trial"]["members"][0]["trial_id"]
    decisions = []
    for step in range(1, 6):
        result = _result(tid, step, **{"quality/modes": 1.0})
        decisions.append(scheduler.on_trial_result(None, _Trial("bad"), result))
        if decisions[-1] == TrialScheduler.STOP:
            break
    assert decisions[:2] == [TrialScheduler.CONTINUE] * 2  # warm-up: steps before 3
    assert decisions[-1] == TrialScheduler.STOP
    stop = len(decisions)
    searcher.on_trial_complete("bad", result)  # Tune completes it with the last result
    trial = optuna.load_study(study_name="s", storage=f"sqlite:///{tmp_path / 'o.db'}").trials[1]
    assert trial.state == S.PRUNED and max(trial.intermediate_values) == stop


def test_optuna_style_space_keys(tmp_path):
    space = {
        "lr": {"type": "float", "low": 1e-4, "high": 1e-2, "log": True},
        "train.n_critic": {"type": "int", "low": 1, "high": 5, "step": 2},
        "batch_size": {"type": "categorical", "choices": [64, 128]},
        "train.gp_weight": {"type": "float", "low": 0.0, "high": 10.0, "step": 0.5},
    }
    dists = optuna_space(_spec(tmp_path, {"type": "none"}, space=space))
    D = optuna.distributions
    assert dists["lr"] == D.FloatDistribution(1e-4, 1e-2, log=True)
    assert dists["train.n_critic"] == D.IntDistribution(1, 5, step=2)
    assert dists["batch_size"] == D.CategoricalDistribution([64, 128])
    assert dists["train.gp_weight"] == D.FloatDistribution(0.0, 10.0, step=0.5)
    old = _spec(tmp_path, {"type": "none"})  # the older keys still work
    assert optuna_space(old)["lr"] == D.FloatDistribution(1e-4, 1e-2, log=True)


@pytest.mark.parametrize(
    "space, expected",
    [
        ({"lr": {"type": "float", "low": 0.0, "high": 1e-2, "log": True}}, "needs low > 0"),
        ({"lr": {"type": "float", "low": 1e-4, "high": 1e-2, "log": True, "step": 1e-4}}, "step"),
        ({"batch_size": {"type": "categorical"}}, "choices"),
        ({"batch_size": {"type": "categorical", "choices": [64], "values": [64]}}, "once"),
        ({"train.n_critic": {"type": "int", "low": 1, "high": 8, "step": 2, "log": True}}, "log"),
    ],
)
def test_bad_spaces_name_the_key(tmp_path, space, expected):
    with pytest.raises(SpecError, match=expected) as err:
        _spec(tmp_path, {"type": "none"}, space=space)
    assert str(err.value).startswith(f"search.space.{next(iter(space))}")


def test_multi_objective_study_and_pareto_front(tmp_path):
    objectives = [
        {"metric": "quality/modes", "mode": "max"},
        {"metric": "quality/kl", "mode": "min"},
    ]
    spec = parse_spec(
        sweep_dict(
            tmp_path,
            grid=None,
            search={
                "space": {"lr": {"type": "float", "low": 1e-4, "high": 1e-2, "log": True}},
                "objective": objectives,
                "sampler": "nsga2",
            },
        )
    )
    assert spec.search.scheduler.type == "none" and spec.search.objective.metric == "quality/modes"
    url = f"sqlite:///{tmp_path / 'mo.db'}"
    searcher = build_search(spec, url, "mo", max_concurrent=3)[0].searcher
    for i, (modes, kl) in enumerate([(8.0, 0.5), (6.0, 0.1), (5.0, 0.9)]):
        tid = searcher.suggest(f"r{i}")["trial"]["members"][0]["trial_id"]
        record = {"quality/modes": modes, "quality/kl": kl}
        searcher.on_trial_complete(f"r{i}", {**_result(tid, 3, True, **record), "verdict": "x"})
    study = optuna.load_study(study_name="mo", storage=url)
    assert [d.name for d in study.directions] == ["MAXIMIZE", "MINIMIZE"]
    assert sorted(t.number for t in study.best_trials) == [0, 1]
    with pytest.raises(SpecError, match="multi-objective search needs scheduler"):
        parse_spec(
            sweep_dict(
                tmp_path,
                grid=None,
                search={
                    "space": {"lr": {"type": "float", "low": 1e-4, "high": 1e-2}},
                    "objective": objectives,
                    "scheduler": {"type": "asha", "grace_period": 3},
                },
            )
        )


def test_failure_as_an_objective(tmp_path):
    """Maximise modes and minimise failures: `failed` is 1 for a failed verdict, 0 for stable."""
    objectives = [{"metric": "quality/modes", "mode": "max"}, {"metric": "failed", "mode": "min"}]
    search = {
        "space": {"lr": {"type": "float", "low": 1e-4, "high": 1e-2, "log": True}},
        "objective": objectives,
    }
    spec = parse_spec(sweep_dict(tmp_path, grid=None, search=search))
    url = f"sqlite:///{tmp_path / 'f.db'}"
    searcher = build_search(spec, url, "f", max_concurrent=2)[0].searcher
    for i, (modes, verdict) in enumerate([(8.0, "mode_collapse"), (6.0, "stable")]):
        tid = searcher.suggest(f"r{i}")["trial"]["members"][0]["trial_id"]
        result = {**_result(tid, 3, True, **{"quality/modes": modes}), "verdict": verdict}
        searcher.on_trial_complete(f"r{i}", result)
    study = optuna.load_study(study_name="f", storage=url)
    assert [t.values for t in study.trials] == [[8.0, 1.0], [6.0, 0.0]]
    assert len(study.best_trials) == 2  # neither dominates the other
    with pytest.raises(SpecError, match="failed is known only when a run ends"):
        one = {**search, "objective": objectives[1], "scheduler": {"type": "asha"}}
        parse_spec(sweep_dict(tmp_path, grid=None, search=one))
