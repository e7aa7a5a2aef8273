"""The one user-facing error of the analysis package."""

from __future__ import annotations

__all__ = ["AnalysisInputError"]


class AnalysisInputError(ValueError):
    """The results given to the analysis cannot be used; the message says why and how to fix it."""
