"""The ``triage`` subcommand: ``gansweep triage SOURCE --out DIR``.

`register` adds it to an argparse subparsers object (the ``gansweep`` console command); `main`
runs it standalone (``python -m analysis triage ...``).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from analysis.errors import AnalysisInputError
from analysis.normalize import CANONICAL_COLUMNS, DEFAULT_SUCCESS

__all__ = ["register", "run_triage", "main"]

_EPILOG = """\
SOURCE is a results table (.parquet, .csv, .tsv; one row per trial), a sweep directory
(trials.parquet, sweep.json), or an MLflow sweep: mlflow:<parent_run_id> (or the bare run id
with --tracking-uri). Several SOURCEs (a sweep and its follow-ups) are triaged together. The
table needs a seed, a batch size and an outcome (failed true/false, or verdict with 'stable'
meaning success; status 'pruned' marks a trial a scheduler stopped: censored, not triaged); a
learning rate (lr, or g_lr and d_lr) is used when present. Map other names with --col, e.g.
--col seed=random_state --col failed=diverged.
Exit status: 0 when the triage ran (whatever it found), 2 on unusable input.
"""


def _mapping(pairs: Sequence[str]) -> dict[str, str]:
    out = {}
    for pair in pairs:
        role, sep, name = pair.partition("=")
        if not sep or not role or not name:
            raise AnalysisInputError(
                f"--col takes ROLE=COLUMN, e.g. seed=random_state; got {pair!r}"
            )
        out[role.strip()] = name.strip()
    return out


def register(subparsers) -> argparse.ArgumentParser:
    """Add the ``triage`` subcommand; its handler is ``args.func`` (returns an exit code).

    Args:
        subparsers: The object returned by ``ArgumentParser.add_subparsers()``.

    Returns:
        The subcommand's parser.
    """
    p = subparsers.add_parser(
        "triage",
        help="explain why a sweep's runs failed (init, batch size, LR) and what to do",
        description="Triage a sweep's failed runs: cause, confidence, evidence, fix; writes "
        "triage.json, report.md and a self-contained report.html.",
        epilog=_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument(
        "source",
        metavar="SOURCE",
        nargs="+",
        help="results table, sweep directory or mlflow:<run_id>; several are read as one",
    )
    p.add_argument("--out", required=True, metavar="DIR", help="directory for the report files")
    p.add_argument("--tracking-uri", metavar="URI", help="MLflow tracking URI for an MLflow source")
    p.add_argument(
        "--col",
        action="append",
        default=[],
        metavar="ROLE=COLUMN",
        help=f"map a column to a role ({', '.join(CANONICAL_COLUMNS)}); repeatable",
    )
    p.add_argument(
        "--group-by",
        action="append",
        metavar="COLUMN",
        help="other varied parameter to compare within (repeatable; default: the "
        "sweep's varied params or dotted config columns that vary)",
    )
    p.add_argument(
        "--success",
        action="append",
        metavar="VERDICT",
        help=f"verdict that counts as success (repeatable; default: {', '.join(DEFAULT_SUCCESS)})",
    )
    p.add_argument(
        "--sweep-dir",
        metavar="DIR",
        help="sweep directory with epochs.parquet and "
        "samples, when SOURCE is a table exported from it",
    )
    p.add_argument(
        "--target-confidence",
        type=float,
        default=0.9,
        metavar="C",
        help="confidence the follow-up sweeps are sized for (default 0.9)",
    )
    p.add_argument("--quiet", action="store_true", help="do not print the summary table")
    p.set_defaults(func=run_triage)
    return p


def run_triage(args: argparse.Namespace) -> int:
    """Handle ``triage``: load, triage, write the report, print the summary.

    Returns:
        0 on success, 2 (with one message on stderr) when the input cannot be used.
    """
    try:
        if not 0.5 <= args.target_confidence < 1:
            raise AnalysisInputError(
                f"--target-confidence must be in [0.5, 1); got {args.target_confidence}"
            )
        from analysis.report import triage_to_report  # pandas, scipy: only when it runs
        from analysis.summary import format_summary

        sources = [args.source] if isinstance(args.source, str) else list(args.source)
        result, paths = triage_to_report(
            sources[0] if len(sources) == 1 else sources,
            args.out,
            tracking_uri=args.tracking_uri,
            columns=_mapping(args.col),
            group_by=args.group_by,
            success=args.success or DEFAULT_SUCCESS,
            target_confidence=args.target_confidence,
            sweep_dir=args.sweep_dir,
        )
    except AnalysisInputError as exc:
        print(f"gansweep triage: error: {exc}", file=sys.stderr)
        return 2
    if not args.quiet:
        print(format_summary(result))
        print(f"\nReport: {paths['html']}")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Standalone entry point: ``python -m analysis triage SOURCE --out DIR``."""
    parser = argparse.ArgumentParser(prog="python -m analysis")
    sub = parser.add_subparsers(dest="command", required=True)
    register(sub)
    args = parser.parse_args(argv)
    return args.func(args)
