"""The sweep file: one YAML document, validated in full before anything starts.

`load_spec(path)` parses and validates the file; `expand_grid(spec)` turns its grid
into one `TrialPlan` per point, each validated through `RunConfig.from_dict`. Any
problem raises one `SpecError` whose message starts with the offending key, so the
CLI can print it and exit with code 2 without launching or writing anything.
"""

from __future__ import annotations

import itertools
import json
import math
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from gan_core.config import ConfigError, RunConfig
from gan_core.metric_keys import (
    CLASS_KEYS,
    CYCLE_KEYS,
    DIVERSITY_KEYS,
    IMAGE_KEYS,
    MIXTURE_KEYS,
    SEQUENCE_KEYS,
)

__all__ = [
    "SpecError",
    "SweepSpec",
    "SearchSpec",
    "TrialPlan",
    "GRID_SHORTCUTS",
    "PACK_FIELDS",
    "pack_plans",
    "load_spec",
    "parse_spec",
    "expand_grid",
    "resolve_point",
    "check_resources",
    "resolve_path",
    "expand_path",
    "FAILED_OBJECTIVE",
]

# Grid and search-space shortcuts -> dotted RunConfig paths. `lr` is special: it sets
# both learning rates unless `g_lr` / `d_lr` are given beside it.
GRID_SHORTCUTS: dict[str, tuple[str, ...]] = {
    "seed": ("seed",),
    "init_seed": ("init_seed",),
    "data_seed": ("data_seed",),
    "batch_size": ("train.batch_size",),
    "lr": ("train.g_lr", "train.d_lr"),
    "g_lr": ("train.g_lr",),
    "d_lr": ("train.d_lr",),
}

# Config fields in which the members of one pack may differ (gan_core.Member's fields).
PACK_FIELDS = ("seed", "init_seed", "data_seed", "train.g_lr", "train.d_lr")

# Not a record key: 1 when a run's verdict is a failure (not stable), 0 when it is stable.
# Known at the end of a run only; across a study's trials it is the failure rate.
FAILED_OBJECTIVE = "failed"
# Record keys (docs/CONTRACTS.md) a search objective may name, and `failed`.
_OBJECTIVE_METRICS = (
    (FAILED_OBJECTIVE,)
    + MIXTURE_KEYS
    + IMAGE_KEYS
    + CLASS_KEYS
    + DIVERSITY_KEYS
    + CYCLE_KEYS
    + SEQUENCE_KEYS
    + ("loss/d", "loss/g", "loss/w_dist", "d/accuracy", "g/accuracy", "stability/dg_ratio")
)
_MIXTURE_DATA = ("ring", "grid")


class SpecError(ConfigError):
    """The sweep file is invalid. The message starts with the offending key."""


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)


def expand_path(value: str | None) -> str | None:
    """`~` and `$VARS` expanded, in plain paths and in sqlite:/// and file:// URIs."""
    if value is None:
        return None
    value = os.path.expandvars(value)
    for prefix in ("sqlite:///", "file://"):
        if value.startswith(prefix + "~"):
            return prefix + os.path.expanduser(value[len(prefix) :])
    return value if "://" in value else os.path.expanduser(value)


UserPath = Annotated[str, AfterValidator(expand_path)]  # a path or URI with ~ and $VARS expanded


class Resources(_Model):
    cpus: float = Field(1.0, gt=0)  # CPUs per trial; torch uses this many threads
    gpus: float = Field(0.0, ge=0)  # GPUs per trial (fractions share one GPU)


class Failure(_Model):
    max_failures: int = Field(2, ge=0)  # retries for infrastructure faults only


class Scaling(_Model):
    rule: Literal["none", "linear", "sqrt"] = "none"  # LR x (batch/base_batch)^{1, 0.5}
    base_batch: int | None = Field(None, gt=0)  # batch the LRs are given for; None: base's


class Tracking(_Model):
    uri: UserPath | None = None  # None: --tracking-uri, $MLFLOW_TRACKING_URI, MLflow's default
    experiment: str | None = Field(None, pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")  # None: name
    # Runs ending with one of these verdicts get their generator logged as an MLflow model
    # (mlflow.pyfunc.load_model(...).predict(z) samples); [] logs none.
    log_model: list[str] = Field(default_factory=lambda: ["stable"])

    @field_validator("log_model")
    @classmethod
    def _known_verdicts(cls, verdicts: list[str]) -> list[str]:
        from gan_core.monitor import STATUSES

        for verdict in verdicts:
            if verdict not in STATUSES:
                raise ValueError(f"unknown verdict {verdict!r}; valid: {', '.join(STATUSES)}")
        return verdicts


class Execution(_Model):
    reuse_actors: bool = True  # keep Ray workers between trials (0.3 s vs 2.8 s per trial)
    max_concurrent: int | None = Field(None, gt=0)  # None: as many as the resources allow
    storage: UserPath | None = None  # Tune storage (absolute path or URI); None: SWEEP_DIR/tune
    # Grid points that differ only in seeds and learning rates train as one Tune trial, up to
    # this many at once (members of one pack: gan_core's member axis). 1: one trial per point.
    # auto: the size whose estimated grid time is shortest, from the model's step time measured
    # on this machine with 1 member and with a full pack (sweeps/packing.py); 1 where packing
    # does not pay.
    pack_seeds: Annotated[int, Field(gt=0)] | Literal["auto"] = "auto"


class EarlyStop(_Model):
    """Failure-aware stopping: end a run (or mask a pack member) once its failure is confident."""

    enabled: bool = False  # off by default: a triage sweep sees every run to its end
    patience: int = Field(2, gt=0)  # evaluations the same failure must hold (diverged: at once)
    on: list[Literal["mode_collapse", "d_dominance"]] = Field(
        default_factory=lambda: ["mode_collapse", "d_dominance"]
    )


class FloatParam(_Model):
    """Optuna's `suggest_float`: `{type: float, low, high, log: true}` (or `type: log_float`)."""

    type: Literal["float", "log_float"]
    low: float
    high: float
    log: bool = False  # sample on a log scale (low > 0); `type: log_float` says the same
    step: float | None = Field(None, gt=0)  # discretization step; not with log

    @property
    def is_log(self) -> bool:
        return self.log or self.type == "log_float"


class IntParam(_Model):
    """Optuna's `suggest_int`: `{type: int, low, high, step, log}`."""

    type: Literal["int"]
    low: int
    high: int  # inclusive
    step: int = Field(1, gt=0)
    log: bool = False  # log scale (low > 0); step must then be 1


class CategoricalParam(_Model):
    """Optuna's `suggest_categorical`: `{type: categorical, choices: [...]}` (or `values`)."""

    type: Literal["categorical"]
    choices: list[Any] | None = Field(None, min_length=1)
    values: list[Any] | None = Field(None, min_length=1)  # the older name of `choices`

    @property
    def options(self) -> list[Any]:
        return list(self.choices or self.values or [])


Param = Annotated[FloatParam | IntParam | CategoricalParam, Field(discriminator="type")]


class Objective(_Model):
    metric: str  # a record key, e.g. quality/modes or quality/fid
    mode: Literal["min", "max"]


class AshaScheduler(_Model):
    type: Literal["asha"]
    grace_period: int = Field(1, gt=0)  # epochs before a trial can be stopped
    reduction_factor: float = Field(3.0, gt=1)


class OptunaPruner(_Model):
    type: Literal["optuna"]
    pruner: Literal["median", "percentile", "successive_halving", "hyperband"] = "median"
    n_startup_trials: int = Field(5, ge=0)  # median/percentile: trials before pruning starts
    n_warmup_steps: int = Field(1, ge=0)  # epochs before a trial can be pruned
    percentile: float = Field(25.0, gt=0, lt=100)


class NoScheduler(_Model):
    type: Literal["none"]


Scheduler = Annotated[AshaScheduler | OptunaPruner | NoScheduler, Field(discriminator="type")]


class SearchSpec(_Model):
    """The `search` section: the space, the objective(s) and how trials are scheduled."""

    space: dict[str, Param] = Field(min_length=1)  # shortcut or dotted path -> distribution
    objective: Objective  # the (first) objective: what the console and pruners follow
    # Several objectives: a multi-objective study whose result is its Pareto front. Written as
    # `objective: [{metric, mode}, ...]` (or `objectives:`); always holds every objective.
    objectives: list[Objective] = Field(default_factory=list)
    trials: int = Field(20, gt=0)  # default for --trials
    # Default: ASHA for one objective, none for several (Optuna cannot prune those).
    scheduler: Scheduler = Field(default_factory=lambda: AshaScheduler(type="asha"))
    sampler: Literal["tpe", "nsga2", "random"] = "tpe"  # Optuna sampler (all do multi-objective)
    storage: UserPath | None = None  # Optuna RDB URL; None: sqlite:///SWEEP_DIR/optuna.db
    study_name: str | None = None  # None: the sweep name
    seed: int = 0  # sampler seed of the first call (later calls derive theirs from it)
    max_concurrent: int | None = Field(None, gt=0)  # None: as many as the resources allow

    @model_validator(mode="before")
    @classmethod
    def _objective_list(cls, values: Any) -> Any:
        if not isinstance(values, dict):
            return values
        values = dict(values)
        given = values.get("objective")
        if isinstance(given, list):
            if "objectives" in values and values["objectives"] != given:
                raise ValueError("give the objectives once, as objective: [...] or objectives:")
            values["objectives"] = given
            values["objective"] = given[0] if given else None
        elif given is None and values.get("objectives"):
            values["objective"] = values["objectives"][0]
        elif given is not None and not values.get("objectives"):
            values["objectives"] = [given]
        if len(values.get("objectives") or []) > 1 and "scheduler" not in values:
            values["scheduler"] = {"type": "none"}
        return values

    @property
    def multi_objective(self) -> bool:
        return len(self.objectives) > 1


class SweepSpec(_Model):
    """A validated sweep file. `base` is kept as the nested dict the user wrote."""

    name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
    base: dict[str, Any] = Field(default_factory=dict)  # a RunConfig dict
    grid: dict[str, list[Any]] | None = None  # key -> values; the trials of `gansweep run`
    search: SearchSpec | None = None  # the space of `gansweep search`
    epochs: int | None = Field(None, gt=0)  # overrides base train.epochs
    eval_every: int | None = Field(None, ge=0)  # overrides base eval.every
    resources: Resources = Field(default_factory=Resources)
    failure: Failure = Field(default_factory=Failure)
    checkpoint_every: int = Field(5, gt=0)  # Tune checkpoint every K epochs (and at the end)
    scaling: Scaling = Field(default_factory=Scaling)
    max_trials: int = Field(256, gt=0)  # refuse grids (or --trials) larger than this
    results_dir: UserPath = "runs"  # sweep directories go under here (~ and $VARS expanded)
    tracking: Tracking = Field(default_factory=Tracking)
    execution: Execution = Field(default_factory=Execution)
    early_stop: EarlyStop = Field(default_factory=EarlyStop)

    @field_validator("grid")
    @classmethod
    def _grid_not_empty(cls, grid: dict[str, list[Any]] | None) -> dict[str, list[Any]] | None:
        if grid is not None:
            if not grid:
                raise ValueError("the grid is empty; give at least one key with a list of values")
            for key, values in grid.items():
                if not values:
                    raise ValueError(f"{key}: empty list of values")
        return grid

    def base_config(self) -> RunConfig:
        """The base RunConfig with `epochs` and `eval_every` applied."""
        return _base_config(self)


@dataclass(frozen=True)
class TrialPlan:
    """One grid point: its id, the user's overrides, and the resolved config dict."""

    trial_id: str
    point: dict[str, Any]  # the grid point as written (shortcut or dotted keys)
    overrides: dict[str, Any]  # dotted path -> value, as resolved (LRs after scaling)
    config: dict[str, Any]  # RunConfig.to_dict() of the resolved run


class _Loader(yaml.SafeLoader):
    """YAML 1.1 reads `1e-3` as a string; read it as the float every user means."""


_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(
        r"""^(?:[-+]?(?:[0-9][0-9_]*)\.[0-9_]*(?:[eE][-+]?[0-9]+)?
        |[-+]?(?:[0-9][0-9_]*)(?:[eE][-+]?[0-9]+)
        |\.[0-9_]+(?:[eE][-+]?[0-9]+)?
        |[-+]?\.(?:inf|Inf|INF)
        |\.(?:nan|NaN|NAN))$""",
        re.X,
    ),
    list("-+0123456789."),
)


def load_yaml(path: str | Path) -> Any:
    """Read a YAML file with the float fix above; SpecError when missing or malformed."""
    p = Path(path)
    if not p.is_file():
        raise SpecError(f"{p}: no such file")
    try:
        return yaml.load(p.read_text(), Loader=_Loader)  # noqa: S506 - a SafeLoader subclass
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
        problem = getattr(err, "problem", None) or str(err).splitlines()[0]
        raise SpecError(f"{p}: not valid YAML{where}: {problem}") from None


def load_spec(path: str | Path) -> SweepSpec:
    """Read and validate a sweep file. Raises SpecError naming the offending key."""
    return parse_spec(load_yaml(path))


def parse_spec(values: Any) -> SweepSpec:
    """Validate a sweep dict: the schema, the base config, the grid and the search space."""
    if not isinstance(values, dict):
        raise SpecError("sweep file: expected a mapping at the top level")
    try:
        spec = SweepSpec.model_validate(values)
    except ValidationError as err:
        raise SpecError(_first_error(err)) from None
    base = _base_config(spec)
    if spec.grid is not None:
        _check_grid_keys(spec.grid)
    if spec.search is not None:
        _check_search(spec, base)
    if spec.base.get("device", "auto").startswith("cuda") and spec.resources.gpus == 0:
        raise SpecError("resources.gpus: base.device asks for CUDA but trials get 0 GPUs")
    return spec


def _first_error(err: ValidationError) -> str:
    first = err.errors()[0]
    loc = ".".join(str(p) for p in first["loc"] if not _is_union_tag(p))
    msg = first["msg"].removeprefix("Value error, ")
    if first["type"] == "extra_forbidden":
        msg = "unknown key"
    elif first["type"] == "missing":
        msg = "required key missing"
    elif "input" in first and first["type"].endswith("_type"):
        msg = f"{msg}, got {first['input']!r}"
    return f"{loc or 'sweep file'}: {msg}"


def _is_union_tag(part: Any) -> bool:
    # pydantic puts the discriminator value (e.g. 'float') into error locations.
    return part in ("float", "log_float", "int", "categorical", "asha", "optuna", "none")


def _base_config(spec: SweepSpec) -> RunConfig:
    try:
        cfg = RunConfig.from_dict(spec.base)
        overrides: dict[str, Any] = {}
        if spec.epochs is not None:
            overrides["train.epochs"] = spec.epochs
        if spec.eval_every is not None:
            overrides["eval.every"] = spec.eval_every
        cfg = cfg.replace(**overrides) if overrides else cfg
    except ConfigError as err:
        raise SpecError(f"base.{err}") from None
    _check_data_name(cfg, "base.")
    return cfg


def _check_data_name(cfg: RunConfig, where: str) -> None:
    # RunConfig keeps data.name a free string; the loader would only fail inside a trial.
    from gan_core.data import DATASETS, DOMAIN_PAIRS
    from gan_core.tokens import TOKEN_SETS

    known = tuple(dict.fromkeys(DATASETS + DOMAIN_PAIRS + TOKEN_SETS))
    if cfg.data.name not in known:
        raise SpecError(
            f"{where}data.name: unknown data set {cfg.data.name!r}; valid: {', '.join(known)}"
        )


def resolve_path(key: str, where: str) -> tuple[str, ...]:
    """A grid/space key -> the dotted RunConfig paths it sets; SpecError if unknown."""
    if key in GRID_SHORTCUTS:
        return GRID_SHORTCUTS[key]
    try:
        RunConfig().replace(**{key: _probe_value(key)})
    except ConfigError as err:
        msg = str(err)
        if "unknown key" in msg or "not a config section" in msg:
            raise SpecError(
                f"{where}.{key}: not a config field; use a shortcut "
                f"({', '.join(GRID_SHORTCUTS)}) or a dotted path such as train.n_critic"
            ) from None
    return (key,)


def _probe_value(key: str) -> Any:
    node: Any = RunConfig().to_dict()
    for part in key.split("."):
        if not isinstance(node, dict) or part not in node:
            return None
        node = node[part]
    return node


def _check_grid_keys(grid: dict[str, list[Any]]) -> None:
    paths: dict[str, str] = {}
    for key in grid:
        if key == "lr":
            continue
        for path in resolve_path(key, "grid"):
            if path in paths:
                raise SpecError(f"grid.{key}: sets {path}, which grid.{paths[path]} already sets")
            paths[path] = key
    if "lr" in grid and "g_lr" in grid and "d_lr" in grid:
        raise SpecError("grid.lr: has no effect when both g_lr and d_lr are given")


def resolve_point(spec: SweepSpec, base: RunConfig, point: dict[str, Any], where: str) -> RunConfig:
    """Apply one grid point or search suggestion (shortcut or dotted keys) and the scaling rule."""
    overrides: dict[str, Any] = {}
    if "lr" in point:  # lr first, so that g_lr / d_lr given beside it win
        overrides["train.g_lr"] = overrides["train.d_lr"] = point["lr"]
    for key, value in point.items():
        if key != "lr":
            for path in resolve_path(key, where):
                overrides[path] = value
    shown = ", ".join(f"{k}={v!r}" for k, v in point.items())
    try:
        cfg = _apply_scaling(spec, base, base.replace(**overrides))
    except ConfigError as err:
        raise SpecError(f"{where} point ({shown}): {err}") from None
    _check_data_name(cfg, f"{where} point ({shown}): ")
    return cfg


def _apply_scaling(spec: SweepSpec, base: RunConfig, cfg: RunConfig) -> RunConfig:
    rule = spec.scaling.rule
    if rule == "none":
        return cfg
    base_batch = spec.scaling.base_batch or base.train.batch_size
    ratio = cfg.train.batch_size / base_batch
    factor = ratio if rule == "linear" else math.sqrt(ratio)
    return cfg.replace(
        **{"train.g_lr": cfg.train.g_lr * factor, "train.d_lr": cfg.train.d_lr * factor}
    )


def expand_grid(spec: SweepSpec) -> list[TrialPlan]:
    """Every grid point as a validated TrialPlan, in file order (last key varies fastest)."""
    if spec.grid is None:
        raise SpecError("grid: required for `gansweep run` (or use `gansweep search`)")
    n = math.prod(len(v) for v in spec.grid.values())
    if n > spec.max_trials:
        raise SpecError(
            f"grid: {n} trials is more than max_trials={spec.max_trials}; "
            "shrink the grid or raise max_trials"
        )
    base = _base_config(spec)
    keys = list(spec.grid)
    width = max(4, len(str(n - 1)))
    plans = []
    for i, values in enumerate(itertools.product(*(spec.grid[k] for k in keys))):
        point = dict(zip(keys, values, strict=True))
        cfg = resolve_point(spec, base, point, "grid")
        plans.append(TrialPlan(f"t{i:0{width}d}", point, _overrides(base, cfg), cfg.to_dict()))
    return plans


def pack_plans(plans: list[TrialPlan], size: int) -> list[list[TrialPlan]]:
    """Group grid points that differ only in PACK_FIELDS into packs of at most `size`.

    Packs keep grid order: a pack starts at the first point of its group not yet packed.
    """
    from gan_core.config import flatten_config

    groups: dict[str, list[TrialPlan]] = {}
    for plan in plans:
        flat = flatten_config(plan.config)
        shared = {k: v for k, v in flat.items() if k not in PACK_FIELDS}
        groups.setdefault(json.dumps(shared, sort_keys=True, default=str), []).append(plan)
    packs = [g[i : i + size] for g in groups.values() for i in range(0, len(g), size)]
    order = {p.trial_id: i for i, p in enumerate(plans)}
    return sorted(packs, key=lambda pack: order[pack[0].trial_id])


def _overrides(base: RunConfig, cfg: RunConfig) -> dict[str, Any]:
    from gan_core.config import flatten_config

    a, b = flatten_config(base.to_dict()), flatten_config(cfg.to_dict())
    return {k: v for k, v in b.items() if a.get(k) != v}


def _check_search(spec: SweepSpec, base: RunConfig) -> None:
    search = spec.search
    assert search is not None
    if search.trials > spec.max_trials:
        raise SpecError(f"search.trials: {search.trials} is more than max_trials={spec.max_trials}")
    for key, param in search.space.items():
        resolve_path(key, "search.space")
        where = f"search.space.{key}"
        _check_param(param, where)
        # The corners of the space must be valid configs too.
        for value in _corners(param):
            resolve_point(spec, base, {key: value}, where)
    metrics = [o.metric for o in search.objectives]
    if len(set(metrics)) < len(metrics):
        raise SpecError(f"search.objective: a metric is named twice ({', '.join(metrics)})")
    if search.multi_objective and not isinstance(search.scheduler, NoScheduler):
        raise SpecError(
            f"search.scheduler: {search.scheduler.type} stops trials by one objective; a "
            "multi-objective search needs scheduler: {type: none}"
        )
    for objective in search.objectives:
        _check_objective(objective.metric, search.scheduler, base)


def _check_param(param: Any, where: str) -> None:
    if isinstance(param, CategoricalParam):
        if (param.choices is None) == (param.values is None):
            raise SpecError(f"{where}: give the categories once, as choices: [...]")
        return
    if param.low > param.high:
        raise SpecError(f"{where}: low {param.low} is above high {param.high}")
    log = param.is_log if isinstance(param, FloatParam) else param.log
    if log and param.low <= 0:
        raise SpecError(f"{where}: a log scale needs low > 0, got {param.low}")
    if log and param.step not in (None, 1):
        raise SpecError(f"{where}: step {param.step} cannot be combined with a log scale")


def _corners(param: Any) -> list[Any]:
    if isinstance(param, CategoricalParam):
        return param.options
    return [param.low, param.high]


def _check_objective(metric: str, sched: Any, base: RunConfig) -> None:
    if metric not in _OBJECTIVE_METRICS:
        raise SpecError(
            f"search.objective.metric: unknown metric {metric!r}; "
            f"allowed: {', '.join(_OBJECTIVE_METRICS)}"
        )
    if metric == FAILED_OBJECTIVE and not isinstance(sched, NoScheduler):
        raise SpecError(
            f"search.scheduler: {metric} is known only when a run ends, so nothing can be "
            "pruned by it; use scheduler: {type: none}"
        )
    mixture = base.data.name in _MIXTURE_DATA
    image_only = metric in IMAGE_KEYS or metric in CLASS_KEYS
    translation = base.family == "cyclegan"  # the family whose evaluation writes CYCLE_KEYS
    sequence = base.family == "sequence"  # the family whose evaluation writes SEQUENCE_KEYS
    if (
        (metric in MIXTURE_KEYS and not mixture)
        or (image_only and (mixture or sequence))
        or (metric in CYCLE_KEYS and not translation)
        or (metric in SEQUENCE_KEYS and not sequence)
    ):
        raise SpecError(
            f"search.objective.metric: {metric} is not computed for data {base.data.name!r}"
        )
    every = base.eval.every
    quality = metric.startswith(("quality/", "diversity/", "seq/"))
    first_eval = every if every > 0 else base.train.epochs
    if quality and isinstance(sched, AshaScheduler) and sched.grace_period < first_eval:
        raise SpecError(
            f"search.scheduler.grace_period: {sched.grace_period} is before the first "
            f"evaluation of {metric} (epoch {first_eval}, eval_every)"
        )
    if quality and isinstance(sched, OptunaPruner) and sched.n_warmup_steps < first_eval:
        raise SpecError(
            f"search.scheduler.n_warmup_steps: {sched.n_warmup_steps} is before the first "
            f"evaluation of {metric} (epoch {first_eval}, eval_every)"
        )


def check_resources(spec: SweepSpec, nodes: list[dict[str, float]]) -> None:
    """Refuse a trial that fits on no node. `nodes`: each node's total resources."""
    if not nodes:
        raise SpecError("resources: the Ray cluster has no alive nodes")
    for key, name in (("cpus", "CPU"), ("gpus", "GPU")):
        want = getattr(spec.resources, key)
        have = max(node.get(name, 0.0) for node in nodes)
        if want > have:
            raise SpecError(
                f"resources.{key}: a trial asks for {want:g} {name}s but the largest node "
                f"has {have:g}"
            )
