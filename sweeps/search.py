"""Optuna search through Ray Tune: TPE over the sweep file's space, with a persistent study.

`ray.tune.search.optuna.OptunaSearch` takes an Optuna storage and a study name and
creates the study with `load_if_exists=True`, so the study lives in an RDB (SQLite in
the sweep directory by default) that `optuna-dashboard` can open, and a later
`gansweep search` continues it: TPE sees the earlier trials, trial numbers go on.

`GanOptunaSearch` adds what the stock searcher lacks for us: each suggestion is
wrapped as a gansweep trial (`o<number>`), NaN objectives (diverged runs) end as
FAIL instead of a stuck RUNNING trial, trials stopped early end as PRUNED, and an
Optuna pruner can be used through `OptunaPrunerScheduler`.
"""

from __future__ import annotations

import math
from typing import Any

import optuna
from ray.tune.schedulers import ASHAScheduler, FIFOScheduler, TrialScheduler
from ray.tune.search.optuna import OptunaSearch

from .spec import AshaScheduler, CategoricalParam, FloatParam, IntParam, OptunaPruner, SweepSpec

__all__ = ["GanOptunaSearch", "OptunaPrunerScheduler", "build_search", "optuna_space", "OBJECTIVE"]

OBJECTIVE = "objective"  # the key every trial report carries (trial.objective_value)


def optuna_space(spec: SweepSpec) -> dict[str, optuna.distributions.BaseDistribution]:
    """The file's space as Optuna distributions, keyed as written (shortcut or dotted path)."""
    assert spec.search is not None
    space: dict[str, optuna.distributions.BaseDistribution] = {}
    for key, p in spec.search.space.items():
        if isinstance(p, FloatParam):
            space[key] = optuna.distributions.FloatDistribution(
                p.low, p.high, log=p.type == "log_float"
            )
        elif isinstance(p, IntParam):
            step = None if p.log else p.step
            space[key] = optuna.distributions.IntDistribution(
                p.low, p.high, log=p.log, step=step or 1
            )
        elif isinstance(p, CategoricalParam):
            space[key] = optuna.distributions.CategoricalDistribution(p.values)
    return space


class GanOptunaSearch(OptunaSearch):
    """OptunaSearch whose suggestions are gansweep trials and whose study keeps clean states."""

    def __init__(self, *args: Any, pruner: optuna.pruners.BasePruner | None = None, **kwargs: Any):
        self._pruner = pruner
        self._reported: dict[str, int] = {}
        self._pruned: set[str] = set()
        super().__init__(*args, **kwargs)

    def _setup_study(self, mode: Any) -> None:
        super()._setup_study(mode)
        if self._pruner is not None:
            self._ot_study.pruner = self._pruner

    def suggest(self, trial_id: str) -> dict | None:
        params = super().suggest(trial_id)
        if params is None:
            return None
        number = self._ot_trials[trial_id].number
        return {"trial": {"members": [{"trial_id": f"o{number:04d}", "point": params}]}}

    def report(self, trial_id: str, result: dict) -> None:
        """Intermediate value for Optuna's pruners and dashboard (once per step, never NaN)."""
        ot_trial = self._ot_trials.get(trial_id)
        value, step = result.get(self.metric), result.get("training_iteration")
        if ot_trial is None or step is None or self._reported.get(trial_id, 0) >= step:
            return
        if isinstance(value, (int, float)) and math.isfinite(value):
            ot_trial.report(float(value), int(step))
            self._reported[trial_id] = int(step)

    def should_prune(self, trial_id: str) -> bool:
        ot_trial = self._ot_trials.get(trial_id)
        if ot_trial is not None and ot_trial.should_prune():
            self._pruned.add(trial_id)
            return True
        return False

    def on_trial_result(self, trial_id: str, result: dict) -> None:
        self.report(trial_id, result)

    def on_trial_complete(
        self, trial_id: str, result: dict | None = None, error: bool = False
    ) -> None:
        if trial_id in self._completed_trials or trial_id not in self._ot_trials:
            return
        ot_trial = self._ot_trials[trial_id]
        value = (result or {}).get(self.metric)
        finite = isinstance(value, (int, float)) and math.isfinite(value)
        errors = any(k == "errors" or k.startswith("errors/") for k in (result or {}))
        if error or not result or (errors and not finite):
            state, value = optuna.trial.TrialState.FAIL, None
        elif trial_id in self._pruned or not result.get("final", False):
            state, value = optuna.trial.TrialState.PRUNED, None
        elif not finite:  # diverged or never measured: no value to learn from
            state, value = optuna.trial.TrialState.FAIL, None
        else:
            state = optuna.trial.TrialState.COMPLETE
        self._ot_study.tell(ot_trial, value, state=state)
        self._completed_trials.add(trial_id)


class OptunaPrunerScheduler(FIFOScheduler):
    """A Tune scheduler that stops a trial when the study's Optuna pruner says so."""

    def __init__(self, searcher: GanOptunaSearch):
        super().__init__()
        self.searcher = searcher

    def on_trial_result(self, tune_controller: Any, trial: Any, result: dict) -> str:
        self.searcher.report(trial.trial_id, result)
        if not result.get("final") and self.searcher.should_prune(trial.trial_id):
            return TrialScheduler.STOP
        return TrialScheduler.CONTINUE


def _pruner(cfg: OptunaPruner) -> optuna.pruners.BasePruner:
    if cfg.pruner == "median":
        return optuna.pruners.MedianPruner(cfg.n_startup_trials, cfg.n_warmup_steps)
    if cfg.pruner == "percentile":
        return optuna.pruners.PercentilePruner(
            cfg.percentile, cfg.n_startup_trials, cfg.n_warmup_steps
        )
    if cfg.pruner == "successive_halving":
        return optuna.pruners.SuccessiveHalvingPruner(min_resource=max(1, cfg.n_warmup_steps))
    return optuna.pruners.HyperbandPruner(min_resource=max(1, cfg.n_warmup_steps))


def build_search(
    spec: SweepSpec, storage_url: str, study_name: str, max_concurrent: int
) -> tuple[Any, Any]:
    """(searcher, scheduler) for Tune: TPE over the space, and ASHA, an Optuna pruner or FIFO."""
    from ray.tune.search import ConcurrencyLimiter

    assert spec.search is not None
    s = spec.search
    sched_cfg = s.scheduler
    storage = optuna.storages.RDBStorage(storage_url)
    searcher = GanOptunaSearch(
        space=optuna_space(spec),
        metric=OBJECTIVE,
        mode=s.objective.mode,
        sampler=optuna.samplers.TPESampler(seed=s.seed),
        study_name=study_name,
        storage=storage,
        pruner=_pruner(sched_cfg) if isinstance(sched_cfg, OptunaPruner) else None,
    )
    if isinstance(sched_cfg, AshaScheduler):
        scheduler: Any = ASHAScheduler(
            time_attr="training_iteration",
            max_t=spec.base_config().train.epochs,
            grace_period=sched_cfg.grace_period,
            reduction_factor=sched_cfg.reduction_factor,
        )
    elif isinstance(sched_cfg, OptunaPruner):
        scheduler = OptunaPrunerScheduler(searcher)
    else:
        scheduler = FIFOScheduler()
    # TPE learns only from finished trials: never ask it for more than can run at once.
    return ConcurrencyLimiter(searcher, max_concurrent=max_concurrent), scheduler
