"""Test-wide isolation: caches and data downloads go to a temporary folder, never ~/.cache."""

import pytest


@pytest.fixture(autouse=True, scope="session")
def _isolated_caches(tmp_path_factory):
    mp = pytest.MonkeyPatch()
    root = tmp_path_factory.mktemp("gansweep-cache")
    mp.setenv("GANSWEEP_CACHE", str(root / "features"))
    mp.setenv("GANSWEEP_DATA", str(root / "data"))
    mp.setenv("RAY_AUTH_MODE", "disabled")
    yield
    mp.undo()
