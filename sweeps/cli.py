"""The `gansweep` command.

    gansweep train CONFIG.yaml --out DIR         one run on this machine, no Ray
    gansweep run SWEEP.yaml [--dry-run]          the grid, on Ray Tune, tracked in MLflow
    gansweep search SWEEP.yaml --trials N        Optuna TPE over the file's search space
    gansweep resume SWEEP_DIR                    finish a sweep whose driver was killed
    gansweep sync SWEEP_DIR                      log to MLflow what it could not reach
    gansweep submit SWEEP.yaml --address URL     run the sweep on a Ray cluster as a Ray Job
    gansweep triage ...                          triage a finished sweep (analysis package)

User errors (a bad file, key or value) print one line and exit with code 2.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from typing import Any

from .tracking import DEFAULT_URI_HELP

__all__ = ["main", "build_parser"]


def _add_ray_options(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--address",
        help="Ray cluster address (e.g. ray://head:10001 or auto); "
        "default: start Ray embedded on this machine with all its cores",
    )
    p.add_argument("--tracking-uri", help=DEFAULT_URI_HELP)
    p.add_argument("--dashboard", action="store_true", help="start Ray's dashboard (embedded Ray)")
    p.add_argument("--no-triage", action="store_true", help="do not triage the sweep at the end")
    _add_verbosity(p)


def _add_verbosity(p: argparse.ArgumentParser) -> None:
    group = p.add_mutually_exclusive_group()
    group.add_argument(
        "--quiet",
        "-q",
        action="store_const",
        const="quiet",
        dest="verbosity",
        help="no per-trial lines or progress; errors and the end summary only",
    )
    group.add_argument(
        "--verbose",
        "-v",
        action="store_const",
        const="verbose",
        dest="verbosity",
        help="also show Ray Tune's own progress table",
    )


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("gansweep")
    except PackageNotFoundError:  # run from a source tree that was never installed
        return "unknown (not installed)"


def build_parser() -> argparse.ArgumentParser:
    """The `gansweep` argument parser with every subcommand (triage comes from analysis)."""
    parser = argparse.ArgumentParser(
        prog="gansweep",
        description="Run GAN experiment sweeps on Ray Tune, track them in MLflow, triage failures.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {_version()}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("train", help="train one run on this machine (no Ray)")
    p.add_argument("config", help="a run config YAML (sections generator, train, data, ...)")
    p.add_argument("--out", required=True, help="output directory")
    p.add_argument("--quiet", action="store_true", help="no per-epoch console blocks")
    p.set_defaults(func=_cmd_train)

    p = sub.add_parser("run", help="run a sweep file's grid on Ray Tune")
    p.add_argument("sweep", help="the sweep file (YAML)")
    p.add_argument(
        "--dry-run",
        action="store_true",
        help="validate, print the resolved base config, trial count and resources; start nothing",
    )
    p.add_argument(
        "--out", help="sweep directory (default: results_dir/name, or name-2, ... if taken)"
    )
    _add_ray_options(p)
    p.set_defaults(func=_cmd_run)

    p = sub.add_parser("search", help="Optuna (TPE) search over the sweep file's space")
    p.add_argument("sweep", help="the sweep file (YAML) with a `search` section")
    p.add_argument("--trials", type=int, help="trials in this call (default: search.trials)")
    p.add_argument(
        "--dry-run", action="store_true", help="validate and print the plan; start nothing"
    )
    p.add_argument(
        "--out",
        help="sweep directory (default: results_dir/<name>-search; "
        "a second call continues its study)",
    )
    _add_ray_options(p)
    p.set_defaults(func=_cmd_search)

    p = sub.add_parser("resume", help="finish a sweep whose driver was killed or interrupted")
    p.add_argument("sweep_dir")
    _add_ray_options(p)
    p.set_defaults(func=_cmd_resume)

    p = sub.add_parser("sync", help="log a sweep's trials to MLflow (only those not there yet)")
    p.add_argument("sweep_dir")
    p.add_argument("--tracking-uri", help="default: the URI the sweep used")
    p.set_defaults(func=_cmd_sync)

    p = sub.add_parser("submit", help="submit a sweep to a Ray cluster as a Ray Job")
    p.add_argument("sweep")
    p.add_argument(
        "--address", required=True, help="the cluster's job server, e.g. http://HEAD:8265"
    )
    p.add_argument("--search", action="store_true", help="run `gansweep search` instead of `run`")
    p.add_argument("--trials", type=int, help="--trials for a search")
    p.add_argument("--tracking-uri", help="MLflow URI the job logs to (seen from the head node)")
    p.set_defaults(func=_cmd_submit)

    _add_triage(sub)
    return parser


def _add_triage(sub: Any) -> None:
    try:
        from analysis.cli import register
    except ImportError as err:
        message = f"triage: the analysis package is not available ({err})"
        p = sub.add_parser("triage", help="triage a sweep (needs the analysis package)")
        p.set_defaults(func=lambda args: _fail(message))
        return
    register(sub)


def _fail(message: str) -> int:
    print(f"gansweep: error: {message}", file=sys.stderr)
    return 2


def _cmd_train(args: argparse.Namespace) -> int:
    from .local import train_one

    return train_one(args.config, args.out, quiet=args.quiet)


def _nodes(address: str | None) -> list[dict[str, float]] | None:
    """With --address, the cluster's nodes (connects to Ray); None: this machine."""
    if not address:
        return None
    from .runner import cluster_nodes, connect_ray

    connect_ray(address)  # probes first: a dead address fails in seconds, in one line
    return cluster_nodes()


def _check_dashboard(args: argparse.Namespace) -> None:
    if getattr(args, "dashboard", False) and not args.address:
        from ray._private.utils import get_dashboard_dependency_error

        from gan_core.config import ConfigError

        missing = get_dashboard_dependency_error()
        if missing:
            raise ConfigError(
                f"--dashboard: Ray's dashboard needs ray[default] "
                f"(pip install 'ray[default]'): {missing}"
            )


def _cmd_run(args: argparse.Namespace) -> int:
    from .runner import format_plan, plan_run, run_sweep

    _check_dashboard(args)
    plan = plan_run(args.sweep, args.out, args.tracking_uri, _nodes(args.address))
    taken = plan.root.parent / plan.spec.name
    if not args.out and plan.root != taken.resolve():
        print(
            f"note: {taken} already holds a sweep; this run writes to {plan.root} "
            f"(to continue the earlier one instead: gansweep resume {taken})"
        )
    if args.dry_run:
        print(format_plan(plan))
        return 0
    return run_sweep(plan, args.address, args.dashboard, triage=not args.no_triage)


def _cmd_search(args: argparse.Namespace) -> int:
    from .runner import format_plan, plan_search, search_sweep

    _check_dashboard(args)
    plan = plan_search(args.sweep, args.trials, args.out, args.tracking_uri, _nodes(args.address))
    if args.dry_run:
        print(format_plan(plan))
        return 0
    return search_sweep(plan, args.address, args.dashboard, triage=not args.no_triage)


def _cmd_resume(args: argparse.Namespace) -> int:
    from .runner import resume_sweep

    _check_dashboard(args)
    return resume_sweep(
        args.sweep_dir, args.address, args.tracking_uri, args.dashboard, triage=not args.no_triage
    )


def _cmd_sync(args: argparse.Namespace) -> int:
    from .runner import sync_sweep

    return sync_sweep(args.sweep_dir, args.tracking_uri)


def _cmd_submit(args: argparse.Namespace) -> int:
    from .spec import load_spec
    from .submit import submit_sweep

    job = submit_sweep(args.sweep, args.address, args.search, args.trials, args.tracking_uri)
    print(f"submitted Ray job {job} to {args.address}")
    print(f"follow it with: ray job logs --address {args.address} --follow {job}")
    spec = load_spec(args.sweep)
    if not os.path.isabs(spec.results_dir) or not (args.tracking_uri or spec.tracking.uri):
        print(
            "note: a relative results_dir and the default MLflow store (./mlflow.db) resolve "
            "inside the job's working directory on the head node, which Ray may delete; set an "
            "absolute results_dir and tracking.uri (or --tracking-uri) to keep them"
        )
    return 0


def _expand_paths(args: argparse.Namespace) -> None:
    """`~` and `$VARS` in path options, as in the sweep file (quoted ones reach us unexpanded)."""
    from .spec import expand_path

    for name in ("out", "sweep_dir", "tracking_uri", "sweep", "config"):
        if isinstance(getattr(args, name, None), str):
            setattr(args, name, expand_path(getattr(args, name)))


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the `gansweep` console command; returns the exit code."""
    args = build_parser().parse_args(argv)
    _expand_paths(args)
    if hasattr(args, "verbosity"):  # run, search, resume: normal unless asked
        from .console import set_verbosity

        set_verbosity(args.verbosity or "normal")
    try:
        return int(args.func(args) or 0)
    except KeyboardInterrupt:  # a second Ctrl-C: Tune's graceful stop was skipped
        print(
            "gansweep: interrupted; finished trials are in the sweep directory "
            "(continue with `gansweep resume SWEEP_DIR`)",
            file=sys.stderr,
        )
        return 130
    except Exception as err:
        # Imported here so that `gansweep --help` does not load torch.
        from gan_core.config import ConfigError

        if isinstance(err, ConfigError):  # SpecError included: the user's input, not a bug
            return _fail(str(err))
        raise


if __name__ == "__main__":
    sys.exit(main())
