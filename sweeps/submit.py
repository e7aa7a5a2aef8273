"""`gansweep submit`: send a sweep to a Ray cluster as a Ray Job.

The job's runtime environment has the project as its `working_dir` (a staged copy of
this checkout plus the sweep file), so the cluster runs exactly this code; its nodes
need the project's dependencies, which cluster.yaml's setup commands install.
"""

from __future__ import annotations

import shlex
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

from .runner import RAY_SETTINGS
from .spec import SpecError, load_spec

__all__ = ["submit_sweep", "stage_project", "project_root", "STAGED_SPEC"]

STAGED_SPEC = "gansweep_job_sweep.yaml"
_IGNORE = (
    ".git",
    "runs",
    "mlruns",
    "mlflow.db",
    "*.egg-info",
    "__pycache__",
    ".pytest_cache",
    ".ruff_cache",
    ".venv",
    "gansweep_cache",
    "*.pt",
)


def project_root() -> Path:
    """The checkout this package runs from (the folder holding pyproject.toml)."""
    root = Path(__file__).resolve().parent.parent
    if not (root / "pyproject.toml").is_file():
        raise SpecError(
            "submit: gansweep is not running from a project checkout "
            "(no pyproject.toml beside sweeps/); submit from a clone of the project"
        )
    return root


def stage_project(spec_path: Path, into: Path) -> Path:
    """Copy the project (without results, caches, .git) and the sweep file into `into`."""
    root = project_root()
    stage = into / "gansweep"
    shutil.copytree(root, stage, ignore=shutil.ignore_patterns(*_IGNORE))
    shutil.copyfile(spec_path, stage / STAGED_SPEC)
    return stage


def submit_sweep(
    spec_path: str | Path,
    address: str,
    search: bool = False,
    trials: int | None = None,
    tracking_uri: str | None = None,
    client: Any = None,
) -> str:
    """Validate the sweep here, then submit it; returns the Ray job id.

    Args:
        spec_path: the sweep file.
        address: the cluster's job server, e.g. http://head:8265.
        search: run `gansweep search` instead of `gansweep run`.
        trials: --trials for a search.
        tracking_uri: passed on as --tracking-uri.
        client: a JobSubmissionClient (tests pass a stand-in).
    """
    spec_path = Path(spec_path)
    spec = load_spec(spec_path)
    if search and spec.search is None:
        raise SpecError("search: required for `gansweep submit --search`")
    args = [
        "python",
        "-m",
        "sweeps.cli",
        "search" if search else "run",
        STAGED_SPEC,
        "--address",
        "auto",
    ]
    if search and trials is not None:
        args += ["--trials", str(trials)]
    if tracking_uri:
        args += ["--tracking-uri", tracking_uri]
    if client is None:
        from ray.job_submission import JobSubmissionClient

        try:
            client = JobSubmissionClient(address)
        except ConnectionError as err:
            raise SpecError(
                f"--address: no Ray job server at {address} (is the cluster up? "
                f"`ray dashboard cluster.yaml` forwards it to localhost:8265): "
                f"{str(err).splitlines()[0]}"
            ) from None
    with tempfile.TemporaryDirectory(prefix="gansweep-submit-") as tmp:
        stage = stage_project(spec_path, Path(tmp))
        job = {
            "entrypoint": shlex.join(args),
            # The job inherits the cluster's Ray authentication; gansweep's Tune settings travel.
            "runtime_env": {"working_dir": str(stage), "env_vars": dict(RAY_SETTINGS)},
            "metadata": {"gansweep_sweep": spec.name},
        }
        return _submit(client, job)


def _submit(client: Any, job: dict[str, Any], wait_s: float = 90.0) -> str:
    """Submit, waiting while a head that just started has no job agent yet (it says so)."""
    deadline = time.monotonic() + wait_s
    while True:
        try:
            return str(client.submit_job(**job))
        except RuntimeError as err:
            if "No available agent" not in str(err) or time.monotonic() > deadline:
                raise
            time.sleep(2)
