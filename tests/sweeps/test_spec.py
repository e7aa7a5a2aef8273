"""The sweep file: validation, grid expansion, and every bad input -> exit 2, nothing written."""

from __future__ import annotations

import math
import sys

import pytest
import yaml

from sweeps.cli import main
from sweeps.spec import SpecError, check_resources, expand_grid, load_spec, parse_spec

from .conftest import TINY_BASE, sweep_dict, write_sweep


def _spec(tmp_path, **overrides):
    return parse_spec(sweep_dict(tmp_path, **overrides))


# ---------------------------------------------------------------------- grid semantics
def test_lr_sets_both_learning_rates(tmp_path):
    plans = expand_grid(_spec(tmp_path, grid={"lr": [1e-3, 2e-4]}))
    assert [(p.config["train"]["g_lr"], p.config["train"]["d_lr"]) for p in plans] == [
        (1e-3, 1e-3),
        (2e-4, 2e-4),
    ]


def test_g_lr_beside_lr_wins_for_g(tmp_path):
    (plan,) = expand_grid(_spec(tmp_path, grid={"lr": [1e-3], "g_lr": [5e-4]}))
    assert plan.config["train"]["g_lr"] == 5e-4 and plan.config["train"]["d_lr"] == 1e-3


def test_grid_order_ids_and_dotted_paths(tmp_path):
    plans = expand_grid(_spec(tmp_path, grid={"seed": [0, 1], "train.n_critic": [1, 5]}))
    assert [p.trial_id for p in plans] == ["t0000", "t0001", "t0002", "t0003"]
    assert [(p.config["seed"], p.config["train"]["n_critic"]) for p in plans] == [
        (0, 1),
        (0, 5),
        (1, 1),
        (1, 5),
    ]
    assert plans[1].point == {"seed": 0, "train.n_critic": 5}


@pytest.mark.parametrize("rule, factor", [("linear", 4.0), ("sqrt", 2.0)])
def test_scaling_rules(tmp_path, rule, factor):
    spec = _spec(tmp_path, grid={"batch_size": [64, 256]}, scaling={"rule": rule, "base_batch": 64})
    small, big = expand_grid(spec)
    assert small.config["train"]["g_lr"] == pytest.approx(1e-3)
    assert big.config["train"]["g_lr"] == pytest.approx(1e-3 * factor)
    assert big.config["train"]["d_lr"] == pytest.approx(1e-3 * factor)


def test_epochs_and_eval_every_override_base(tmp_path):
    cfg = _spec(tmp_path, epochs=7, eval_every=2).base_config()
    assert cfg.train.epochs == 7 and cfg.eval.every == 2


def test_yaml_exponent_floats(tmp_path):
    path = tmp_path / "s.yaml"
    path.write_text(
        yaml.safe_dump(sweep_dict(tmp_path)).replace(
            "grid:\n  seed:\n  - 0\n  - 1", "grid:\n  lr: [1e-3, 2E-4]"
        )
    )
    (a, b) = expand_grid(load_spec(path))
    assert a.config["train"]["g_lr"] == 1e-3 and b.config["train"]["g_lr"] == 2e-4


def test_resources_must_fit_a_node(tmp_path):
    spec = _spec(tmp_path, resources={"cpus": 3})
    with pytest.raises(SpecError, match="resources.cpus"):
        check_resources(spec, [{"CPU": 2.0}, {"CPU": 2.0}])
    check_resources(spec, [{"CPU": 2.0}, {"CPU": 4.0}])


# ---------------------------------------------------------------------- bad inputs via the CLI
BAD_INPUTS = {
    "unknown top-level key": ({"epoch": 3}, "epoch: unknown key"),
    "unknown base key": ({"base": {**TINY_BASE, "train": {"lr": 1}}}, "base.train.lr: unknown key"),
    "wrong type": ({"epochs": "ten"}, "epochs: Input should be a valid integer"),
    "wrong nested type": ({"resources": {"cpus": "one"}}, "resources.cpus"),
    "empty grid": ({"grid": {}}, "grid: the grid is empty"),
    "empty grid values": ({"grid": {"seed": []}}, "grid: seed: empty list"),
    "grid not a list": ({"grid": {"seed": 3}}, "grid.seed: Input should be a valid list"),
    "unknown grid key": ({"grid": {"train.nope": [1]}}, "grid.train.nope: not a config field"),
    "invalid grid point": ({"grid": {"batch_size": [64, 0]}}, "train.batch_size: must be > 0"),
    "invalid base": ({"base": {"train": {"loss_type": "nope"}}}, "base.train.loss_type"),
    "unknown data set": ({"base": {"data": {"name": "rings"}}}, "base.data.name: unknown data set"),
    "too many cpus": ({"resources": {"cpus": 4096}}, "resources.cpus"),
    "gpus on a CPU machine": ({"resources": {"gpus": 1}}, "resources.gpus"),
    "more trials than the limit": (
        {"grid": {"seed": list(range(5))}, "max_trials": 4},
        "grid: 5 trials is more than max_trials=4",
    ),
    "lr without effect": ({"grid": {"lr": [1e-3], "g_lr": [1e-3], "d_lr": [1e-3]}}, "grid.lr"),
    "bad name": ({"name": "../x"}, "name:"),
    "experiment outside the artifact root": (
        {"tracking": {"experiment": "../../../x"}},
        "tracking.experiment:",
    ),
    "unknown verdict to log models for": (
        {"tracking": {"log_model": ["stabel"]}},
        "tracking.log_model: unknown verdict 'stabel'",
    ),
    "multi-objective with a pruning scheduler": (
        {
            "search": {
                "space": {"lr": {"type": "float", "low": 1e-4, "high": 1e-2}},
                "objective": [
                    {"metric": "quality/modes", "mode": "max"},
                    {"metric": "quality/kl", "mode": "min"},
                ],
                "scheduler": {"type": "optuna", "n_warmup_steps": 3},
            }
        },
        "search.scheduler: optuna stops trials by one objective",
    ),
    "unknown scaling rule": ({"scaling": {"rule": "cubic"}}, "scaling.rule"),
    "negative max_failures": ({"failure": {"max_failures": -1}}, "failure.max_failures"),
    "search low above high": (
        {
            "search": {
                "space": {"lr": {"type": "log_float", "low": 1e-2, "high": 1e-4}},
                "objective": {"metric": "quality/modes", "mode": "max"},
                "scheduler": {"type": "none"},
            }
        },
        "search.space.lr: low",
    ),
    "search unknown metric": (
        {
            "search": {
                "space": {"lr": {"type": "float", "low": 1e-4, "high": 1e-2}},
                "objective": {"metric": "quality/mode", "mode": "max"},
            }
        },
        "search.objective.metric: unknown metric",
    ),
    "search metric of the wrong data": (
        {
            "search": {
                "space": {"lr": {"type": "float", "low": 1e-4, "high": 1e-2}},
                "objective": {"metric": "quality/fid", "mode": "min"},
            }
        },
        "search.objective.metric: quality/fid is not computed",
    ),
    "search unknown param type": (
        {
            "search": {
                "space": {"lr": {"type": "gaussian"}},
                "objective": {"metric": "quality/modes", "mode": "max"},
            }
        },
        "search.space.lr",
    ),
    "search invalid corner": (
        {
            "search": {
                "space": {"batch_size": {"type": "int", "low": 0, "high": 64}},
                "objective": {"metric": "quality/modes", "mode": "max"},
                "scheduler": {"type": "none"},
            }
        },
        "train.batch_size: must be > 0",
    ),
    "asha before the first evaluation": (
        {
            "search": {
                "space": {"lr": {"type": "float", "low": 1e-4, "high": 1e-2}},
                "objective": {"metric": "quality/modes", "mode": "max"},
                "scheduler": {"type": "asha", "grace_period": 1},
            }
        },
        "search.scheduler.grace_period",
    ),
}


def _assert_user_error(capsys, code, expected, tmp_path):
    err = capsys.readouterr().err
    assert code == 2, err
    assert err.startswith("gansweep: error: ") and err.count("\n") == 1, err
    assert expected in err, err
    assert "Traceback" not in err
    assert not (tmp_path / "runs").exists() and not (tmp_path / "mlflow.db").exists()


@pytest.mark.parametrize("overrides, expected", BAD_INPUTS.values(), ids=list(BAD_INPUTS))
@pytest.mark.parametrize("command", ["run", "dry-run"])
def test_bad_sweep_file_exits_2_and_writes_nothing(tmp_path, capsys, overrides, expected, command):
    path = write_sweep(tmp_path, **overrides)
    argv = ["run", str(path)] + (["--dry-run"] if command == "dry-run" else [])
    _assert_user_error(capsys, main(argv), expected, tmp_path)


@pytest.mark.parametrize(
    "argv, expected",
    [
        (["run", "{tmp}/missing.yaml"], "missing.yaml: no such file"),
        (["search", "{sweep}", "--trials", "3"], "search: required"),
        (["resume", "{tmp}"], "not a sweep directory"),
        (["sync", "{tmp}"], "not a sweep directory"),
        (["train", "{tmp}/missing.yaml", "--out", "{tmp}/out"], "no such file"),
    ],
)
def test_bad_command_lines_exit_2(tmp_path, capsys, argv, expected):
    sweep = write_sweep(tmp_path)
    argv = [a.format(tmp=tmp_path, sweep=sweep) for a in argv]
    _assert_user_error(capsys, main(argv), expected, tmp_path)


def test_malformed_yaml(tmp_path, capsys):
    path = tmp_path / "bad.yaml"
    path.write_text("name: [unclosed\n")
    _assert_user_error(capsys, main(["run", str(path)]), "not valid YAML", tmp_path)


def test_search_trials_over_limit(tmp_path, capsys):
    search = {
        "space": {"lr": {"type": "log_float", "low": 1e-4, "high": 1e-2}},
        "objective": {"metric": "quality/modes", "mode": "max"},
        "scheduler": {"type": "none"},
        "trials": 4,
    }
    path = write_sweep(tmp_path, search=search, max_trials=5)
    _assert_user_error(
        capsys, main(["search", str(path), "--trials", "6"]), "--trials: 6", tmp_path
    )


def test_dry_run_prints_plan_and_starts_nothing(tmp_path, capsys):
    path = write_sweep(
        tmp_path, grid={"seed": [0, 1, 2], "lr": [1e-3, 1e-2]}, resources={"cpus": 1}
    )
    ray_before = "ray" in sys.modules
    assert main(["run", str(path), "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert "resolved base config:" in out and "hidden_dims:" in out
    assert "trials: 6" in out and "1 CPU, 0 GPU" in out
    assert "varied: train.g_lr, train.d_lr, seed" in out
    assert not (tmp_path / "runs").exists() and not (tmp_path / "mlflow.db").exists()
    assert ray_before or "ray" not in sys.modules  # no Ray was even imported


def test_search_dry_run(tmp_path, capsys):
    search = {
        "space": {
            "lr": {"type": "log_float", "low": 1e-4, "high": 1e-2},
            "train.n_critic": {"type": "int", "low": 1, "high": 3},
        },
        "objective": {"metric": "quality/modes", "mode": "max"},
        "scheduler": {"type": "asha", "grace_period": 3},
    }
    path = write_sweep(tmp_path, search=search)
    assert main(["search", str(path), "--trials", "7", "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert "(search); trials: 7" in out
    assert not (tmp_path / "runs").exists()


def test_examples_are_valid():
    from pathlib import Path

    examples = sorted((Path(__file__).parents[2] / "sweeps" / "examples").glob("*.yaml"))
    assert {p.name for p in examples} >= {"demo.yaml", "digits_dcgan.yaml", "wgan_gp.yaml"}
    for path in examples:
        spec = load_spec(path)
        assert spec.grid is None or expand_grid(spec), path
        assert spec.grid is not None or spec.search is not None, path
        assert not math.isnan(spec.base_config().train.g_lr)


def test_a_cyclegan_search_may_optimise_the_translation_error_and_a_gan_search_may_not(tmp_path):
    cycle_base = {"family": "cyclegan", "data": {"name": "digits_inverted"}}
    space = {"lr": {"type": "float", "low": 1e-4, "high": 1e-3, "log": True}}
    objective = {"metric": "quality/translation_error_rel", "mode": "min"}
    search = {"space": space, "objective": objective, "scheduler": {"type": "none"}}
    spec = parse_spec(sweep_dict(tmp_path, base=cycle_base, search=search))
    assert spec.search.objective.metric == "quality/translation_error_rel"
    with pytest.raises(SpecError, match="not computed for data 'ring'"):
        parse_spec(sweep_dict(tmp_path, search=search))
