"""How much the sweep driver prints, and the progress line's parts.

The verbosity is chosen on the command line (`--quiet`, `--verbose`) and kept in the
environment (`GANSWEEP_VERBOSITY`), so that a driver started as a Ray Job, and Tune's
callbacks restored after a killed driver, follow the same choice.

- quiet: no per-trial lines and no periodic progress; errors, warnings and the end
  summary only.
- normal: gansweep's own lines (a line per finished trial, progress every 15 s).
- verbose: those, plus Ray Tune's own progress table.
"""

from __future__ import annotations

import os
from typing import Literal

__all__ = [
    "ENV",
    "Verbosity",
    "eta_seconds",
    "running_text",
    "set_verbosity",
    "show_progress",
    "tune_verbose",
    "verbosity",
]

ENV = "GANSWEEP_VERBOSITY"
Verbosity = Literal["quiet", "normal", "verbose"]


def set_verbosity(level: Verbosity) -> None:
    """Set this process's (and its children's) verbosity."""
    os.environ[ENV] = level


def verbosity() -> Verbosity:
    level = os.environ.get(ENV, "normal")
    return level if level in ("quiet", "verbose") else "normal"  # type: ignore[return-value]


def show_progress() -> bool:
    """Per-trial lines and the periodic progress line (not with --quiet)."""
    return verbosity() != "quiet"


def tune_verbose() -> int:
    """`tune.RunConfig(verbose=...)`: Tune's own table only with --verbose."""
    return 2 if verbosity() == "verbose" else 0


def running_text(epochs: dict[str, int], total: int, limit: int = 6) -> str | None:
    """A sign of life per running trial: `running: t0003 e4/10, t0004 e2/10`."""
    if not epochs:
        return None
    shown = [f"{tid} e{epoch}/{total}" for tid, epoch in sorted(epochs.items())[:limit]]
    more = f" +{len(epochs) - limit} more" if len(epochs) > limit else ""
    return "running: " + ", ".join(shown) + more


def eta_seconds(
    epochs_done: float, epochs_left: float, elapsed_s: float, min_epochs: float = 1.0
) -> float | None:
    """Time left from the epoch rate so far: moves with every epoch, not only at completions.

    `epochs_done`: epochs trained in this driver so far (all trials); `epochs_left`: epochs
    the unfinished trials (started or not) still have to train. None until one epoch is done.
    """
    if epochs_done < min_epochs or elapsed_s <= 0:
        return None
    return max(0.0, epochs_left) * elapsed_s / epochs_done
