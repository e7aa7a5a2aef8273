"""Run, search, resume and sync sweeps: the driver's side of `gansweep`.

Everything that can be wrong with the user's input is checked before a directory
is created or a trial launched (`plan_run`, `plan_search`). Ray is embedded (all
cores of this machine, no dashboard unless asked) unless an address is given.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import logging
import math
import os
import secrets
import signal
import socket
import sys
import tempfile
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from .console import tune_verbose
from .packing import resolve_pack_size
from .rayauth import AUTH_DISABLED_WARNING, enable_token_auth
from .recorder import Recorder, describe_os_error, now_iso, on_sigterm, say, sync_outcomes
from .results import FIXED_COLUMNS, SweepTables, varied_paths
from .spec import (
    SpecError,
    SweepSpec,
    check_resources,
    expand_grid,
    load_spec,
    pack_plans,
    resolve_path,
)
from .sweepdir import SweepDir, atomic_write_text, json_safe
from .tracking import Tracker, resolve_tracking_uri

__all__ = [
    "SweepPlan",
    "plan_run",
    "plan_search",
    "run_sweep",
    "search_sweep",
    "resume_sweep",
    "sync_sweep",
    "format_plan",
    "EXIT_INTERRUPTED",
    "EXIT_TERMINATED",
    "EXIT_WRITE_ERROR",
    "cluster_nodes",
    "configure_ray_env",
    "connect_ray",
    "RAY_SETTINGS",
    "ray_address",
    "ray_session",
    "run_triage",
]

EXIT_INTERRUPTED = 130  # Ctrl-C (SIGINT)
EXIT_TERMINATED = 143  # SIGTERM: Slurm, Kubernetes, systemd
EXIT_WRITE_ERROR = 74  # sysexits' EX_IOERR: the sweep directory could not be written


@dataclass
class SweepPlan:
    """A validated sweep, ready to start: nothing has been written or launched yet."""

    spec: SweepSpec
    spec_path: Path
    mode: str  # grid or search
    root: Path
    tracking_uri: str
    n_trials: int
    packs: list[dict[str, Any]] = field(default_factory=list)  # grid: one Tune trial each
    varied: list[str] = field(default_factory=list)
    nodes: list[dict[str, float]] = field(default_factory=list)
    resumes: bool = False  # search: continues the study in an existing directory
    out_given: bool = False  # --out: exactly this directory (else the next free name-K)
    reserved: bool = False  # its directory is claimed (sweep.json written, see _reserve)
    spec_text: str = ""  # the sweep file as validated (a job's working dir may not last)
    packing: str = ""  # how the pack size was chosen (grid; said by --dry-run)


# ---------------------------------------------------------------------- planning
def _machine_nodes(want_gpus: bool) -> list[dict[str, float]]:
    if _ray_initialized():
        return cluster_nodes()
    if ray_address(None):  # RAY_ADDRESS: the sweep runs there, like --address
        connect_ray(ray_address(None) or "")
        return cluster_nodes()
    gpus = 0
    if want_gpus and os.environ.get("CUDA_VISIBLE_DEVICES", None) != "":  # torch is slow to import
        with contextlib.suppress(Exception):
            import torch

            gpus = torch.cuda.device_count()
    return [{"CPU": float(os.cpu_count() or 1), "GPU": float(gpus)}]


def _ray_initialized() -> bool:
    ray = sys.modules.get("ray")  # not imported yet: certainly not initialized (and fast)
    return ray is not None and ray.is_initialized()


def _preflight(spec: SweepSpec, nodes: list[dict[str, float]]) -> None:
    """A trial must fit a node: of this machine strictly; of a Ray cluster, as a warning.

    A cluster's autoscaler adds nodes only once trials ask for them (cluster.yaml's head has
    no CPUs and starts with no workers), so the nodes alive now do not bound the sweep.
    """
    try:
        check_resources(spec, nodes)
    except SpecError as err:
        if not _ray_initialized():
            raise
        say(
            f"warning: {err} now; starting anyway, as the cluster's autoscaler may add nodes "
            "(Tune waits for them; on a cluster without one the trials wait forever)"
        )


def cluster_nodes() -> list[dict[str, float]]:
    """The total resources of each alive node of the connected Ray cluster."""
    import ray

    return [n["Resources"] for n in ray.nodes() if n.get("Alive")]


def _free_dir(results_dir: Path, name: str) -> Path:
    root = results_dir / name
    k = 2
    while root.exists() and any(root.iterdir()):
        root = results_dir / f"{name}-{k}"
        k += 1
    return root


def _check_writable(path: Path, what: str) -> None:
    """A file can be created where the sweep writes (its nearest existing folder), or SpecError.

    Tried, not asked with os.access: root passes every permission check, yet not a read-only
    or full filesystem nor an immutable folder.
    """
    folder = path.absolute()
    while not folder.exists() and folder != folder.parent:
        folder = folder.parent
    try:
        fd, tmp = tempfile.mkstemp(dir=folder, prefix=".gansweep-write-check-")
        os.close(fd)
        os.unlink(tmp)
    except OSError as err:
        raise SpecError(f"{what}: cannot write to {folder} ({err.strerror or err})") from None


def plan_run(
    spec_path: str | Path,
    out: str | None = None,
    tracking_uri: str | None = None,
    nodes: list[dict[str, float]] | None = None,
) -> SweepPlan:
    """Validate a grid sweep completely. Raises SpecError; writes nothing."""
    spec = load_spec(spec_path)
    # The sweep file as validated, at an absolute path: what the sweep directory keeps.
    spec_path, text = Path(spec_path).resolve(), Path(spec_path).read_text()
    plans = expand_grid(spec)
    nodes = nodes if nodes is not None else _machine_nodes(spec.resources.gpus > 0)
    _preflight(spec, nodes)
    root = Path(out) if out else _free_dir(Path(spec.results_dir), spec.name)
    _check_writable(root, "--out" if out else "results_dir")
    if out and SweepDir(root).exists():
        raise SpecError(
            f"--out: {root} already holds a sweep; `gansweep resume {root}` continues it"
        )
    packing = resolve_pack_size(spec, plans, nodes)
    packs = pack_plans(plans, packing.size)
    # Each pack is one Tune trial's config["trial"] (sweeps.gridsearch hands them to Tune).
    trial_packs = [
        {"members": [{"trial_id": p.trial_id, "point": p.point} for p in pack]} for pack in packs
    ]
    return SweepPlan(
        spec,
        Path(spec_path),
        "grid",
        root.resolve(),
        resolve_tracking_uri(tracking_uri, spec.tracking.uri),
        len(plans),
        trial_packs,
        varied_paths([p.config for p in plans]),
        nodes,
        out_given=bool(out),
        spec_text=text,
        packing=packing.reason,
    )


def plan_search(
    spec_path: str | Path,
    trials: int | None,
    out: str | None = None,
    tracking_uri: str | None = None,
    nodes: list[dict[str, float]] | None = None,
) -> SweepPlan:
    """Validate a search completely. Raises SpecError; writes nothing."""
    spec = load_spec(spec_path)
    spec_path, text = Path(spec_path).resolve(), Path(spec_path).read_text()  # see plan_run
    if spec.search is None:
        raise SpecError("search: required for `gansweep search`; declare a space and an objective")
    n = trials if trials is not None else spec.search.trials
    if n < 1:
        raise SpecError(f"--trials: must be >= 1, got {n}")
    if n > spec.max_trials:
        raise SpecError(f"--trials: {n} is more than max_trials={spec.max_trials}")
    nodes = nodes if nodes is not None else _machine_nodes(spec.resources.gpus > 0)
    _preflight(spec, nodes)
    root = Path(out) if out else Path(spec.results_dir) / f"{spec.name}-search"
    _check_writable(root, "--out" if out else "results_dir")
    sweep_dir = SweepDir(root)
    if sweep_dir.exists() and sweep_dir.read_meta().get("mode") != "search":
        raise SpecError(f"--out: {root} holds a grid sweep, not a search")
    varied = [p for key in spec.search.space for p in resolve_path(key, "search.space")]
    return SweepPlan(
        spec,
        Path(spec_path),
        "search",
        root.resolve(),
        resolve_tracking_uri(tracking_uri, spec.tracking.uri),
        n,
        {},
        varied,
        nodes,
        resumes=sweep_dir.exists(),
        spec_text=text,
    )


def format_plan(plan: SweepPlan) -> str:
    """What --dry-run prints: the resolved base config, trial count, resources, places."""
    import yaml

    spec = plan.spec
    base = spec.base_config().to_dict()
    cpus = max(n.get("CPU", 0) for n in plan.nodes)
    parallel = int(sum(n.get("CPU", 0) for n in plan.nodes) // spec.resources.cpus)
    lines = [
        "resolved base config:",
        yaml.safe_dump(_yaml_ready(base), sort_keys=False).rstrip(),
        "",
        f"sweep: {spec.name} ({plan.mode}); trials: {plan.n_trials}"
        + (f"; varied: {', '.join(plan.varied)}" if plan.varied else ""),
        *_packing_lines(plan),
        f"resources per trial: {spec.resources.cpus:g} CPU, {spec.resources.gpus:g} GPU; "
        f"up to {min(parallel, plan.n_trials)} trials at once (largest node: {cpus:g} CPUs)",
        f"epochs: {base['train']['epochs']}; checkpoint every {spec.checkpoint_every}; "
        f"max_failures (infrastructure): {spec.failure.max_failures}",
        f"results: {plan.root}",
        f"MLflow tracking: {plan.tracking_uri} "
        f"(experiment {spec.tracking.experiment or spec.name})",
    ]
    return "\n".join(lines)


def _packing_lines(plan: SweepPlan) -> list[str]:
    packs = plan.packs
    if not packs or len(packs) == plan.n_trials:
        return [f"packing: none ({plan.packing})"] if plan.packing.startswith("auto") else []
    sizes = [len(p["members"]) for p in packs]
    shown = str(max(sizes)) if min(sizes) == max(sizes) else f"{min(sizes)}-{max(sizes)}"
    return [f"packed: {plan.n_trials} runs in {len(packs)} Tune trials of {shown} members "
            f"({plan.packing}); each member is its own row"]


def _yaml_ready(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _yaml_ready(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_yaml_ready(v) for v in value]
    return value


# ---------------------------------------------------------------------- sweep directory
def _create_dir(plan: SweepPlan) -> SweepDir:
    sweep_dir = SweepDir(plan.root)
    if plan.resumes:
        meta = sweep_dir.read_meta()
        # This call's trials come on top of those already recorded (an earlier call that was
        # interrupted and not resumed leaves its unfinished trials out of the count).
        meta["n_trials"] = len(SweepTables(sweep_dir).trials) + plan.n_trials
        meta["tracking_uri"] = plan.tracking_uri
        sweep_dir.write_meta(meta)
        return sweep_dir
    if plan.reserved:
        return sweep_dir
    sweep_dir = _reserve(plan)
    atomic_write_text(sweep_dir.spec_path, plan.spec_text or plan.spec_path.read_text())
    return sweep_dir


def _reserve(plan: SweepPlan) -> SweepDir:
    """Claim the sweep directory atomically: its sweep.json is created exclusively.

    Two launches of one sweep file never share a directory: the second finds sweep.json
    taken and moves on to name-2, name-3, ... (or, with --out, stops with a SpecError).
    """
    meta = json.dumps(json_safe(_initial_meta(plan)), indent=2, sort_keys=True)
    planned = plan.root  # the CLI has said where a taken name sends this run; say only a change
    if plan.out_given or plan.mode == "search":
        first = plan.root
    else:  # planned as the first free name-K; taken since, perhaps, by another launch
        first = Path(plan.spec.results_dir).resolve() / plan.spec.name
    root = first
    for k in itertools.count(2):
        try:
            root.mkdir(parents=True, exist_ok=True)
            # A folder with other files in it is someone else's; an empty one may be taken.
            if plan.out_given or not any(p.name != "sweep.json" for p in root.iterdir()):
                fd = os.open(root / "sweep.json", os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
                with os.fdopen(fd, "w") as f:
                    f.write(meta)
                break
        except FileExistsError:
            if plan.out_given:
                raise SpecError(
                    f"--out: {root} already holds a sweep; `gansweep resume {root}` continues it"
                ) from None
        except OSError as err:
            raise SpecError(f"results_dir: cannot write to {root} ({err.strerror})") from None
        root = first.with_name(f"{first.name}-{k}")
    if root != planned:
        say(f"{planned} was taken by another launch; writing to {root}")
    plan.root, plan.reserved = root, True
    return SweepDir(root)


def _initial_meta(plan: SweepPlan) -> dict[str, Any]:
    spec = plan.spec
    return {
        "name": spec.name,
        "sweep_id": f"{spec.name}-{datetime.now():%Y%m%d-%H%M%S}-{secrets.token_hex(2)}",
        "created": now_iso(),
        "mode": plan.mode,
        "varied": plan.varied,
        "varied_columns": [_column(p) for p in plan.varied],
        "n_trials": plan.n_trials,
        "tracking_uri": plan.tracking_uri,
        "experiment": spec.tracking.experiment or spec.name,
        "parent_run_id": None,
        "tune_experiments": [],
        "spec_file": str(plan.spec_path.resolve()),
    }


def _column(path: str) -> str:
    for column, dotted in FIXED_COLUMNS.items():
        if dotted == path:
            return column
    return path


def _storage(spec: SweepSpec, sweep_dir: SweepDir) -> str:
    if spec.execution.storage is None:
        return str(sweep_dir.tune_root)
    if "://" in spec.execution.storage:
        return spec.execution.storage
    return str(Path(spec.execution.storage).resolve())


# ---------------------------------------------------------------------- Ray
@contextlib.contextmanager
def ray_session(address: str | None = None, dashboard: bool = False) -> Iterator[None]:
    """Embedded Ray on all cores (or a connection to `address`, else RAY_ADDRESS); shut down
    if started or connected here."""
    import ray

    if ray.is_initialized():
        yield
        return
    address = ray_address(address)
    if address:
        connect_ray(address)
    else:
        configure_ray_env(embedded=True)
        # "local": a new Ray of our own, even if another one runs on this machine (without it,
        # ray.init() silently joins a cluster started by `ray start`).
        ray.init(
            address="local",
            num_cpus=os.cpu_count(),
            include_dashboard=dashboard,
            logging_level=logging.WARNING,
        )
    try:
        yield
    finally:
        ray.shutdown()


def ray_address(address: str | None) -> str | None:
    """--address, else RAY_ADDRESS (as Ray itself reads it), else None: embedded Ray."""
    return address or os.environ.get("RAY_ADDRESS") or None


def connect_ray(address: str) -> None:
    """Connect to a running Ray cluster, or raise SpecError in one line within seconds.

    Ray's own connection retries for minutes, silently, when nothing answers: the address
    is probed first. With Ray Client (ray://) the driver runs on the cluster, so gansweep's
    Ray and Tune settings travel with it as the job's environment.
    """
    import ray

    settings = configure_ray_env()
    _probe(address)
    kwargs: dict[str, Any] = {"address": address, "logging_level": logging.WARNING}
    if address.startswith("ray://"):
        kwargs["runtime_env"] = {"env_vars": settings}
    try:
        ray.init(**kwargs)
    except (ConnectionError, ValueError, RuntimeError) as err:
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise SpecError(f"--address: cannot connect to Ray at {address} ({first})") from None


def _probe(address: str, timeout_s: float = 5.0) -> None:
    """A TCP connection to the address's host and port, or SpecError naming it."""
    if address == "auto":
        return  # Ray looks up the cluster started on this machine
    hostport = address.split("://", 1)[-1].rstrip("/")
    host, _, port = hostport.rpartition(":")
    if not host or not port.isdigit():
        raise SpecError(f"--address: {address!r} is not HOST:PORT, ray://HOST:PORT or auto")
    try:
        with socket.create_connection((host.strip("[]"), int(port)), timeout=timeout_s):
            pass
    except OSError as err:
        reason = err.strerror or type(err).__name__
        raise SpecError(
            f"--address: nothing answers at {host}:{port} ({reason}); is the Ray cluster up?"
        ) from None


RAY_SETTINGS = {
    # Tune's own CSV/TensorBoard trial logs duplicate the Parquet and MLflow sinks.
    "TUNE_DISABLE_AUTO_CALLBACK_LOGGERS": "1",
    # num_to_keep forces a state snapshot when short epochs checkpoint quickly; that is fine.
    "TUNE_WARN_EXCESSIVE_EXPERIMENT_CHECKPOINT_SYNC_THRESHOLD_S": "0",
    # Recording a finished trial (figures, MLflow artifacts, Parquet) takes about a second
    # inside Tune's result processing, which Tune would flag as slow from 0.5 s on.
    "TUNE_WARN_THRESHOLD_S": "5",
    # The classic reporter at verbose=0 prints nothing; the Recorder prints progress.
    "RAY_AIR_NEW_OUTPUT": "0",
}


def configure_ray_env(embedded: bool = False) -> dict[str, str]:
    """Ray settings for every gansweep driver (set before Ray starts; users may override).

    An embedded Ray keeps token authentication on (sweeps.rayauth); turning it off is the
    user's explicit choice (RAY_AUTH_MODE=disabled), which is warned about. Returns the
    Tune settings in force, for a driver that runs elsewhere (Ray Client).
    """
    if embedded and not enable_token_auth():
        say(AUTH_DISABLED_WARNING)
    for key, value in RAY_SETTINGS.items():
        os.environ.setdefault(key, value)
    # Tune's ResultGrid warns about every trial that never started; the count we print says it.
    logging.getLogger("ray.tune.analysis.experiment_analysis").setLevel(logging.ERROR)
    return {key: os.environ[key] for key in RAY_SETTINGS}


def _trial_name(trial: Any) -> str:
    ids = [m["trial_id"] for m in trial.config["trial"]["members"]]
    return ids[0] if len(ids) == 1 else f"pack-{ids[0]}-{len(ids)}"


def _trainable(spec: SweepSpec) -> Any:
    from ray import tune

    from .trial import train_trial

    fn = tune.with_parameters(train_trial, spec=spec.model_dump(mode="python"))
    return tune.with_resources(fn, {"cpu": spec.resources.cpus, "gpu": spec.resources.gpus})


def _run_config(spec: SweepSpec, sweep_dir: SweepDir, name: str) -> Any:
    from ray import tune
    from ray.tune.logger import JsonLoggerCallback

    from .callback import SweepCallback

    configure_ray_env()
    return tune.RunConfig(
        name=name,
        storage_path=_storage(spec, sweep_dir),
        failure_config=tune.FailureConfig(max_failures=spec.failure.max_failures),
        checkpoint_config=tune.CheckpointConfig(num_to_keep=2),
        # result.json per trial, which Tune's ExperimentAnalysis reads; no CSV/TensorBoard copies.
        callbacks=[SweepCallback(sweep_dir.root), JsonLoggerCallback()],
        verbose=tune_verbose(),  # Tune's own table with --verbose; the Recorder prints progress
    )


def _parallel_slots(spec: SweepSpec) -> int:
    nodes = cluster_nodes()
    return max(1, int(sum(math.floor(n.get("CPU", 0) / spec.resources.cpus) for n in nodes)))


def _fit(tuner: Any, sweep_dir: SweepDir) -> int:
    callback = _sweep_callback(tuner)
    if callback is not None:  # runs MLflow falls behind on are logged after Ray stops
        callback.log_left_behind_later = True
    with _sigterm_stops_tune() as terminated:
        tuner.fit()
    meta = sweep_dir.read_meta()
    done = len(SweepTables(sweep_dir).trials)
    unfinished = meta.get("n_trials", done) - done
    write_error = _write_error(tuner)
    if write_error is not None:
        say(
            f"error: {describe_os_error(write_error)}: the sweep stopped with {unfinished} "
            f"trial(s) not in the tables. Once {sweep_dir.root} is writable again, "
            f"`gansweep resume {sweep_dir.root}` writes them and runs the rest"
        )
        return EXIT_WRITE_ERROR
    if unfinished > 0:
        how = "stopped by SIGTERM" if terminated else "interrupted"
        say(
            f"{how}: {unfinished} trial(s) unfinished; results so far are in "
            f"{sweep_dir.root}. Continue with: gansweep resume {sweep_dir.root}"
        )
        return EXIT_TERMINATED if terminated else EXIT_INTERRUPTED
    return 0


def _sweep_callback(tuner: Any) -> Any:
    """The sweep's callback as it ran in this driver (None with Ray Client, which runs the
    callbacks remotely)."""
    from .callback import SweepCallback

    local = getattr(tuner, "_local_tuner", None)
    callbacks = local.get_run_config().callbacks if local is not None else None
    return next((c for c in callbacks or [] if isinstance(c, SweepCallback)), None)


def _write_error(tuner: Any) -> OSError | None:
    """The write error the sweep's callback met in this driver."""
    callback = _sweep_callback(tuner)
    return callback.write_error if callback is not None else None


def _log_left_behind(tuner: Any, code: int) -> None:
    """Runs MLflow fell behind on, logged once Ray (and the trials' processes) has stopped;
    a sweep that did not complete (interrupted, a write error) leaves them for `sync`."""
    callback = _sweep_callback(tuner)
    if callback is not None:
        callback.log_left_behind(now=code == 0)


@contextlib.contextmanager
def _sigterm_stops_tune() -> Iterator[list[int]]:
    """SIGTERM stops Tune gracefully, as Ctrl-C does: through Tune's own stop handler.

    Tune installs that handler for SIGINT and SIGUSR1 when `fit` starts; without this,
    Ray's SIGTERM handler exits the driver mid-step. A second SIGTERM stops at once.
    """
    received: list[int] = []

    def handler(signum: int, frame: Any) -> None:
        if received:
            raise SystemExit(EXIT_TERMINATED)
        received.append(signum)
        say("SIGTERM: stopping the sweep after this step (send it again to stop at once)")
        tune_stop = signal.getsignal(signal.SIGUSR1)
        if callable(tune_stop):
            tune_stop(signal.SIGUSR1, frame)

    with on_sigterm(handler):
        yield received


def _warm_tracking(plan: SweepPlan) -> threading.Thread:
    """Import MLflow and create its store and experiment while Ray starts (about 3 s each).

    The sweep's Recorder connects afterwards and finds them ready; a store that cannot be
    reached is reported by the Recorder, so this thread stays silent.
    """
    experiment = plan.spec.tracking.experiment or plan.spec.name
    tracker = Tracker(plan.tracking_uri, experiment, sweep_id="", say=lambda message: None)

    def warm() -> None:
        with _sqlite_creation_lock(plan.tracking_uri):
            tracker.connect()

    thread = threading.Thread(target=warm, name="gansweep-mlflow-warm", daemon=True)
    thread.start()
    return thread


@contextlib.contextmanager
def _sqlite_creation_lock(uri: str) -> Iterator[None]:
    """One process at a time creates (migrates) a SQLite store: MLflow's migrations crash
    when two sweeps launched together both find it new (`table ... already exists`)."""
    if not uri.startswith("sqlite:///"):
        yield
        return
    import fcntl

    path = Path(uri[len("sqlite:///") :])
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path.with_name(f".{path.name}.lock"), os.O_RDWR | os.O_CREAT, 0o644)
    except OSError:  # an unwritable store is reported when the Recorder connects
        yield
        return
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


# ---------------------------------------------------------------------- commands
def run_sweep(
    plan: SweepPlan, address: str | None = None, dashboard: bool = False, triage: bool = True
) -> int:
    """Start a validated grid sweep. Returns the exit code."""
    from ray import tune

    from .gridsearch import LiveFIFOScheduler, limited

    name = "grid"
    sweep_dir = _create_dir(plan)  # before Ray starts: a second launch must see it taken
    warming = _warm_tracking(plan)
    with ray_session(address, dashboard):
        warming.join()
        sweep_dir.update_meta(tune_experiments=[name], address=address)
        say(f"sweep {plan.spec.name}: {plan.n_trials} trials -> {sweep_dir.root}")
        _warn_storage(plan.spec, address)
        packs = plan.packs
        cpus = sum(n.get("CPU", 0) for n in cluster_nodes())
        tuner = tune.Tuner(
            _trainable(plan.spec),
            tune_config=tune.TuneConfig(
                search_alg=limited(packs, plan.spec.execution.max_concurrent, cpus),
                scheduler=LiveFIFOScheduler(),
                num_samples=len(packs),
                reuse_actors=plan.spec.execution.reuse_actors,
                trial_name_creator=_trial_name,
                trial_dirname_creator=_trial_name,
            ),
            run_config=_run_config(plan.spec, sweep_dir, name),
        )
        code = _fit(tuner, sweep_dir)
    _log_left_behind(tuner, code)
    return _finish(sweep_dir, code, triage)


def search_sweep(
    plan: SweepPlan, address: str | None = None, dashboard: bool = False, triage: bool = True
) -> int:
    """Start (or continue) an Optuna search. Returns the exit code."""
    from ray import tune

    from .search import OBJECTIVE, StudyLink, build_search, summary_lines

    spec = plan.spec
    assert spec.search is not None
    warming = _warm_tracking(plan)
    with ray_session(address, dashboard):
        warming.join()
        sweep_dir = _create_dir(plan)
        meta = sweep_dir.read_meta()
        name = f"search-{len(meta['tune_experiments']) + 1}"
        storage = spec.search.storage or sweep_dir.optuna_url
        study = spec.search.study_name or spec.name
        sweep_dir.update_meta(
            tune_experiments=[*meta["tune_experiments"], name],
            address=address,
            optuna_storage=storage,
            optuna_study=study,
        )
        say(f"search {spec.name}: {plan.n_trials} trials, study {study!r} in {storage}")
        _warn_storage(spec, address)
        slots = spec.search.max_concurrent or _parallel_slots(spec)
        searcher, scheduler = build_search(spec, storage, study, slots)
        run_config = _run_config(spec, sweep_dir, name)
        sweep_callback = next(c for c in run_config.callbacks if hasattr(c, "recorder"))
        run_config.callbacks.append(StudyLink(sweep_callback, storage, study))
        tuner = tune.Tuner(
            _trainable(spec),
            tune_config=tune.TuneConfig(
                metric=OBJECTIVE,
                mode=spec.search.objective.mode,
                search_alg=searcher,
                scheduler=scheduler,
                num_samples=plan.n_trials,
                reuse_actors=spec.execution.reuse_actors,
                trial_name_creator=_trial_name,
                trial_dirname_creator=_trial_name,
            ),
            run_config=run_config,
        )
        code = _fit(tuner, sweep_dir)
    _log_left_behind(tuner, code)
    for line in summary_lines(storage, study, spec):
        say(line)
    return _finish(sweep_dir, code, triage)


def resume_sweep(
    root: str | Path,
    address: str | None = None,
    tracking_uri: str | None = None,
    dashboard: bool = False,
    triage: bool = True,
) -> int:
    """Finish a sweep whose driver died: finished trials are not re-run, MLflow not duplicated."""
    from ray import tune

    sweep_dir = SweepDir(Path(root).resolve())
    if not sweep_dir.exists():
        raise SpecError(f"{root}: not a sweep directory (no sweep.json)")
    meta = sweep_dir.read_meta()
    if not meta.get("tune_experiments"):
        raise SpecError(f"{root}: the sweep never started; run it again instead")
    spec = load_spec(sweep_dir.spec_path)
    if tracking_uri:
        sweep_dir.update_meta(tracking_uri=resolve_tracking_uri(tracking_uri, None))
    path = f"{_storage(spec, sweep_dir).rstrip('/')}/{meta['tune_experiments'][-1]}"
    with ray_session(address or meta.get("address"), dashboard):
        if not tune.Tuner.can_restore(path):
            raise SpecError(f"{root}: no Tune experiment state at {path}")
        say(f"resuming {meta['name']} from {path}")
        tuner = tune.Tuner.restore(path, trainable=_trainable(spec), resume_errored=True)
        code = _fit(tuner, sweep_dir)
    _log_left_behind(tuner, code)
    return _finish(sweep_dir, code, triage)


def sync_sweep(root: str | Path, tracking_uri: str | None = None) -> int:
    """Log to MLflow every trial of a sweep directory that is not there yet (idempotent)."""
    sweep_dir = SweepDir(Path(root).resolve())
    if not sweep_dir.exists():
        raise SpecError(f"{root}: not a sweep directory (no sweep.json)")
    meta = sweep_dir.read_meta()
    uri = resolve_tracking_uri(tracking_uri, meta["tracking_uri"])
    tracker = Tracker(uri, meta["experiment"], meta["sweep_id"], say)
    if not tracker.connect():
        return 1
    parent = tracker.ensure_parent(
        meta.get("parent_run_id") if uri == meta["tracking_uri"] else None, meta["name"]
    )
    new, old = sync_outcomes(sweep_dir.root, tracker)
    if tracker.down_reason:
        return 1
    tracker.finish_parent()
    sweep_dir.update_meta(tracking_uri=uri, parent_run_id=parent)
    say(f"synced {sweep_dir.root} to {uri}: {new} run(s) logged, {old} already there")
    return 0


def _warn_storage(spec: SweepSpec, address: str | None) -> None:
    if address and spec.execution.storage is None:
        say(
            "note: Tune checkpoints go to the sweep directory on this machine; on a cluster of "
            "several machines set execution.storage to shared storage (NFS path or s3://...)"
        )


def _finish(sweep_dir: SweepDir, code: int, triage: bool) -> int:
    from .parent import log_sweep_run

    recorder_line = Recorder(sweep_dir.root).status_line(0, elapsed=False)
    say(f"results: {sweep_dir.trials_parquet} | {recorder_line}")
    log_sweep_run(sweep_dir.root)
    if code == 0 and triage:
        run_triage(sweep_dir.root)
    return code


def run_triage(root: Path) -> None:
    """Hand the finished sweep to the analysis package; the report goes to SWEEP_DIR/triage/.

    A triage that cannot use the table (e.g. every trial errored) is reported, not raised:
    the sweep itself succeeded and its results are on disk.
    """
    from analysis import AnalysisInputError, format_summary, load_results, triage, write_report

    try:
        result = triage(load_results(root))
        paths = write_report(result, root / "triage", sweep_dir=root)
    except AnalysisInputError as err:
        say(f"triage skipped: {err}")
        return
    # The details first; the end says, in this order: where the report is, what it found,
    # and how to see the runs in MLflow.
    print(format_summary(result).removeprefix(result.summary).strip("\n"), flush=True)
    _log_report(root, root / "triage", result.cause_counts)
    print(flush=True)
    say(f"triage report: {_shown(paths['html'])} (open it in a browser; again: "
        f"gansweep triage {_shown(root)} --out DIR)")
    print(result.summary, flush=True)
    meta = SweepDir(root).read_meta()
    say(f"runs in MLflow: {_mlflow_ui(meta['tracking_uri'])} (experiment {meta['experiment']})")


def _shown(path: Path) -> str:
    """A path relative to the current directory when it is below it (shorter to read)."""
    try:
        return str(Path(path).resolve().relative_to(Path.cwd()))
    except ValueError:
        return str(path)


def _mlflow_ui(uri: str) -> str:
    if uri.startswith(("http://", "https://")):
        return f"open {uri}"
    if uri == f"sqlite:///{Path.cwd() / 'mlflow.db'}":  # MLflow's default, here
        uri = "sqlite:///mlflow.db"
    return f"mlflow ui --backend-store-uri {uri}"


def _log_report(root: Path, directory: Path, cause_counts: dict[str, int]) -> None:
    """The report also goes to the sweep's parent MLflow run, where its trials are."""
    from .parent import log_sweep_run

    meta = SweepDir(root).read_meta()
    if not meta.get("parent_run_id"):
        say("triage report not logged to MLflow: the sweep has no parent run (tracking was down)")
        return
    tracker = Tracker(meta["tracking_uri"], meta["experiment"], meta["sweep_id"], say=say)
    if tracker.connect() and tracker.log_report(meta["parent_run_id"], directory):
        log_sweep_run(root, cause_counts)  # the counts per cause join the sweep's metrics
        say(f"triage report logged to MLflow run {meta['parent_run_id']} (artifacts: triage/)")
