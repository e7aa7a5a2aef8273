"""Test-wide isolation: caches and data downloads go to a temporary folder, never ~/.cache.

Ray keeps token authentication on in the tests, as in use: the token lives in a temporary
file (RAY_AUTH_TOKEN_PATH) set before any test module imports Ray, which reads its
authentication mode once, at import.
"""

import os
import secrets
import shutil
import tempfile
from pathlib import Path

import pytest

_TOKEN_DIR: list[str] = []


def pytest_configure(config):
    if os.environ.get("RAY_AUTH_MODE") or os.environ.get("RAY_AUTH_TOKEN_PATH"):
        return  # the caller chose (e.g. a CI job with its own token)
    folder = tempfile.mkdtemp(prefix="gansweep-ray-token-")
    _TOKEN_DIR.append(folder)
    path = Path(folder) / "auth_token"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(secrets.token_hex(32))
    os.environ["RAY_AUTH_MODE"] = "token"
    os.environ["RAY_AUTH_TOKEN_PATH"] = str(path)


def pytest_unconfigure(config):
    for folder in _TOKEN_DIR:
        shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture(autouse=True, scope="session")
def _isolated_caches(tmp_path_factory):
    mp = pytest.MonkeyPatch()
    root = tmp_path_factory.mktemp("gansweep-cache")
    mp.setenv("GANSWEEP_CACHE", str(root / "features"))
    mp.setenv("GANSWEEP_DATA", str(root / "data"))
    yield
    mp.undo()
