"""Failure triage for GAN sweeps: why did each run fail (init, batch size, LR) and what to do.

A pure function of a results table: `load_results` reads one (Parquet/CSV, a sweep directory or
an MLflow parent run), `triage` decides a cause with a confidence, evidence and a fix for every
failed trial plus sweep-level findings, and `write_report` writes triage.json, report.md and a
self-contained report.html. It knows nothing of training.
"""

from analysis.causes import CAUSES
from analysis.errors import AnalysisInputError
from analysis.findings import Findings
from analysis.fixes import Fix
from analysis.followup import FollowUp
from analysis.load import load_epochs, load_results
from analysis.normalize import CANONICAL_COLUMNS, normalize_results
from analysis.report import experiment_log, triage_to_report, write_report
from analysis.stats import TrendTest, cochran_armitage, fisher_greater
from analysis.summary import format_summary
from analysis.triage import Diagnosis, TriageResult, triage

__all__ = [
    "AnalysisInputError",
    "CANONICAL_COLUMNS",
    "CAUSES",
    "Diagnosis",
    "Findings",
    "Fix",
    "FollowUp",
    "TrendTest",
    "TriageResult",
    "cochran_armitage",
    "experiment_log",
    "fisher_greater",
    "format_summary",
    "load_epochs",
    "load_results",
    "normalize_results",
    "triage",
    "triage_to_report",
    "write_report",
]
