"""Optuna search through Ray Tune: TPE (or NSGA-II) over the sweep file's space, in a study.

`ray.tune.search.optuna.OptunaSearch` takes an Optuna storage and a study name and
creates the study with `load_if_exists=True`, so the study lives in an RDB (SQLite in
the sweep directory by default) that `optuna-dashboard` can open, and a later
`gansweep search` continues it: the sampler sees the earlier trials, trial numbers go
on, and the sampler's seed is derived from the file's seed and the number of trials
already in the study, so a second call never replays the first call's random draws.

`GanOptunaSearch` adds what the stock searcher lacks for us: each suggestion is
wrapped as a gansweep trial (`o<number>`); the objective values are read from the
trial's own records (one or several objectives); every epoch's value reaches the
study as an intermediate value, the last one and the one at which a scheduler stopped
the trial included; NaN objectives (diverged runs) end as FAIL instead of a stuck
RUNNING trial; trials stopped early end as PRUNED; each study trial carries the
gansweep trial id, its verdict and the epoch it reached as user attributes.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import optuna
from ray.tune import Callback
from ray.tune.schedulers import ASHAScheduler, TrialScheduler
from ray.tune.search.optuna import OptunaSearch

from .gridsearch import LiveFIFOScheduler
from .spec import (
    FAILED_OBJECTIVE,
    AshaScheduler,
    CategoricalParam,
    FloatParam,
    IntParam,
    OptunaPruner,
    SweepSpec,
)
from .trial import result_records

__all__ = [
    "GanOptunaSearch",
    "OptunaPrunerScheduler",
    "StudyLink",
    "summary_lines",
    "build_search",
    "optuna_space",
    "sampler_seed",
    "trial_number",
    "OBJECTIVE",
]

OBJECTIVE = "objective"  # the key every trial report carries (trial.objective_value)
_SUCCESS = ("stable",)  # verdicts that are no failure (analysis.normalize.DEFAULT_SUCCESS)


def optuna_space(spec: SweepSpec) -> dict[str, optuna.distributions.BaseDistribution]:
    """The file's space as Optuna distributions, keyed as written (shortcut or dotted path)."""
    assert spec.search is not None
    space: dict[str, optuna.distributions.BaseDistribution] = {}
    for key, p in spec.search.space.items():
        if isinstance(p, FloatParam):
            space[key] = optuna.distributions.FloatDistribution(
                p.low, p.high, log=p.is_log, step=p.step
            )
        elif isinstance(p, IntParam):
            space[key] = optuna.distributions.IntDistribution(
                p.low, p.high, log=p.log, step=1 if p.log else p.step
            )
        elif isinstance(p, CategoricalParam):
            space[key] = optuna.distributions.CategoricalDistribution(p.options)
    return space


def trial_number(gansweep_trial_id: str) -> int | None:
    """The Optuna trial number of a search trial id (`o0007` -> 7); None for grid trials."""
    if gansweep_trial_id.startswith("o") and gansweep_trial_id[1:].isdigit():
        return int(gansweep_trial_id[1:])
    return None


def sampler_seed(seed: int, n_trials_before: int) -> int:
    """The sampler's seed for a call that finds `n_trials_before` trials in the study.

    The first call uses the file's seed as given; later calls derive a fresh one, so a
    continued study does not draw the same random (startup) points again.
    """
    if n_trials_before == 0:
        return seed
    return int(np.random.SeedSequence([seed, n_trials_before]).generate_state(1)[0])


class GanOptunaSearch(OptunaSearch):
    """OptunaSearch whose suggestions are gansweep trials and whose study keeps clean states."""

    def __init__(
        self,
        *args: Any,
        objectives: list[str],
        pruner: optuna.pruners.BasePruner | None = None,
        **kwargs: Any,
    ):
        self._pruner = pruner
        self._objectives = objectives
        self._reported: dict[str, int] = {}  # trial -> last step seen
        self._pruned: set[str] = set()
        self._latest: dict[str, dict[str, float]] = {}  # trial -> objective -> latest value
        self._diverged: set[str] = set()
        super().__init__(*args, **kwargs)

    @property
    def metric(self) -> str:
        """The key Tune checks in every result. The objectives themselves (one or several,
        `self._metric`) are read from the trial's records, which Tune cannot check."""
        return OBJECTIVE

    @property
    def mode(self) -> str:
        """The first objective's mode, for Tune; the study has one direction per objective."""
        return self._mode[0] if isinstance(self._mode, list) else self._mode

    def _setup_study(self, mode: Any) -> None:
        super()._setup_study(mode)
        if self._pruner is not None:
            self._ot_study.pruner = self._pruner

    def suggest(self, trial_id: str) -> dict | None:
        params = super().suggest(trial_id)
        if params is None:
            return None
        ot_trial = self._ot_trials[trial_id]
        tid = f"o{ot_trial.number:04d}"
        ot_trial.set_user_attr("gansweep_trial_id", tid)
        return {"trial": {"members": [{"trial_id": tid, "point": params}]}}

    def _observe(self, trial_id: str, result: dict) -> None:
        """Keep each objective's latest value from the trial's record of this epoch."""
        ot_trial = self._ot_trials.get(trial_id)
        if ot_trial is None:
            return
        record = result_records(result).get(f"o{ot_trial.number:04d}", {})
        latest = self._latest.setdefault(trial_id, {})
        for name, value in record.items():
            if not isinstance(value, (int, float)):
                continue
            if name.startswith("loss/") and math.isnan(value):
                self._diverged.add(trial_id)
            elif name in self._objectives and not math.isnan(value):
                latest[name] = float(value)  # +-inf is a value (e.g. KL with no mode reached)

    def values(self, trial_id: str) -> list[float] | None:
        """The trial's objective values now; None when diverged or one is not measured yet."""
        latest = self._latest.get(trial_id, {})
        if trial_id in self._diverged or any(m not in latest for m in self._objectives):
            return None
        return [latest[m] for m in self._objectives]

    def report(self, trial_id: str, result: dict) -> None:
        """Intermediate value for Optuna's pruners and dashboard (once per step, never NaN)."""
        ot_trial = self._ot_trials.get(trial_id)
        step = result.get("training_iteration")
        if (
            ot_trial is None
            or step is None
            or trial_id in self._completed_trials
            or self._reported.get(trial_id, 0) >= step
        ):
            return
        self._observe(trial_id, result)
        self._reported[trial_id] = int(step)
        epoch = int(result.get("epoch", step))
        ot_trial.set_user_attr("epochs_run", epoch)
        values = self.values(trial_id)
        if values is not None and len(values) == 1:  # Optuna: intermediate values, one objective
            ot_trial.report(values[0], epoch)

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
        result = result or {}
        # Tune does not pass the last result (nor the one a scheduler stopped at) to
        # on_trial_result: it is reported here, so the study has every epoch.
        self.report(trial_id, result)
        if result.get("final") and "verdict" in result:  # the verdict as an objective: 1 failed
            failed = 0.0 if result["verdict"] in _SUCCESS else 1.0
            self._latest.setdefault(trial_id, {})[FAILED_OBJECTIVE] = failed
        values = self.values(trial_id)
        errors = any(k == "errors" or k.startswith("errors/") for k in result)
        if error or not result or errors:
            state, verdict = optuna.trial.TrialState.FAIL, "error"
        elif trial_id in self._pruned or not result.get("final", False):
            state, verdict = optuna.trial.TrialState.PRUNED, "pruned"
        else:
            verdict = str(result.get("verdict", ""))
            # Diverged or never measured: no value to learn from.
            finished = values is not None
            state = optuna.trial.TrialState.COMPLETE if finished else optuna.trial.TrialState.FAIL
        ot_trial.set_user_attr("verdict", verdict)
        told: float | list[float] | None = None
        if state == optuna.trial.TrialState.COMPLETE and values is not None:
            told = values if len(values) > 1 else values[0]
        self._ot_study.tell(ot_trial, told, state=state)
        self._completed_trials.add(trial_id)


class OptunaPrunerScheduler(LiveFIFOScheduler):
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


def _trials_in_study(storage: optuna.storages.BaseStorage, study_name: str) -> int:
    for study in storage.get_all_studies():
        if study.study_name == study_name:
            return len(storage.get_all_trials(study._study_id, deepcopy=False))
    return 0


def _sampler(name: str, seed: int) -> optuna.samplers.BaseSampler:
    if name == "nsga2":
        return optuna.samplers.NSGAIISampler(seed=seed)
    if name == "random":
        return optuna.samplers.RandomSampler(seed=seed)
    return optuna.samplers.TPESampler(seed=seed)


def build_search(
    spec: SweepSpec, storage_url: str, study_name: str, max_concurrent: int
) -> tuple[Any, Any]:
    """(searcher, scheduler) for Tune: the sampler over the space, and ASHA, a pruner or FIFO."""
    from ray.tune.search import ConcurrencyLimiter

    assert spec.search is not None
    s = spec.search
    sched_cfg = s.scheduler
    storage = optuna.storages.RDBStorage(storage_url)
    seed = sampler_seed(s.seed, _trials_in_study(storage, study_name))
    objectives = s.objectives
    multi = s.multi_objective
    searcher = GanOptunaSearch(
        space=optuna_space(spec),
        metric=[o.metric for o in objectives] if multi else OBJECTIVE,
        mode=[o.mode for o in objectives] if multi else objectives[0].mode,
        objectives=[o.metric for o in objectives],
        sampler=_sampler(s.sampler, seed),
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
        scheduler = LiveFIFOScheduler()
    # The sampler learns only from finished trials: never ask it for more than can run at once.
    return ConcurrencyLimiter(searcher, max_concurrent=max_concurrent), scheduler


class StudyLink(Callback):
    """Links each search trial's Optuna trial and MLflow child run both ways, at its start.

    The Optuna trial gets the run id as user attribute `mlflow_run_id` (it must be set
    while the trial runs: Optuna refuses changes to finished trials); the MLflow run gets
    tags `optuna.study_name` and `optuna.trial_number`. Runs after the sweep's own
    callback, which creates the child run.
    """

    def __init__(self, sweep_callback: Any, storage_url: str, study_name: str):
        self.sweep_callback = sweep_callback
        self.storage_url = storage_url
        self.study_name = study_name
        self._storage: optuna.storages.BaseStorage | None = None

    def __getstate__(self) -> dict[str, Any]:
        return {**self.__dict__, "_storage": None}

    def on_trial_start(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        recorder = self.sweep_callback.recorder
        for member in trial.config["trial"]["members"]:
            number = trial_number(member["trial_id"])
            sink = recorder.sinks.get(member["trial_id"])
            if number is None or sink is None or sink.run_id is None:
                continue
            self._set_run_id(number, sink.run_id)
            tags = {"optuna.study_name": self.study_name, "optuna.trial_number": str(number)}
            recorder.tracker.set_tags(sink.run_id, tags)

    def _set_run_id(self, number: int, run_id: str) -> None:
        if self._storage is None:
            self._storage = optuna.storages.RDBStorage(self.storage_url)
        storage = self._storage
        study_id = storage.get_study_id_from_name(self.study_name)
        trial_id = storage.get_trial_id_from_study_id_trial_number(study_id, number)
        if not storage.get_trial(trial_id).state.is_finished():
            storage.set_trial_user_attr(trial_id, "mlflow_run_id", run_id)


def summary_lines(storage_url: str, study_name: str, spec: SweepSpec) -> list[str]:
    """The study's result: its best trial (params, value), or its Pareto front."""
    assert spec.search is not None
    study = optuna.load_study(study_name=study_name, storage=storage_url)
    done = study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,))
    counts = ", ".join(
        f"{state.name.lower()} {n}"
        for state in optuna.trial.TrialState
        if (n := sum(t.state == state for t in study.trials))
    )
    lines = [f"study {study_name!r}: {len(study.trials)} trials ({counts})"]
    if not done:
        return [*lines, "no completed trial yet: no best value"]
    metrics = [o.metric for o in spec.search.objectives]
    if not spec.search.multi_objective:
        best = study.best_trial
        return [*lines, "best " + _trial_text(best, metrics)]
    front = sorted(study.best_trials, key=lambda t: t.number)
    return [*lines, f"Pareto front ({len(front)} trials):"] + [
        "  " + _trial_text(t, metrics) for t in front
    ]


def _trial_text(trial: optuna.trial.FrozenTrial, metrics: list[str]) -> str:
    values = ", ".join(f"{m}={v:.4g}" for m, v in zip(metrics, trial.values, strict=True))
    params = ", ".join(f"{k}={_short(v)}" for k, v in trial.params.items())
    tid = trial.user_attrs.get("gansweep_trial_id", f"#{trial.number}")
    verdict = trial.user_attrs.get("verdict")
    return f"{tid}: {values} ({verdict or 'no verdict'}) | {params}"


def _short(value: Any) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)
