"""Ray token authentication for the Ray that gansweep embeds.

Ray 2.60's processes (GCS, raylet, workers) listen on every interface of the machine
and Ray has no setting for their bind address, so the token is what keeps other
machines out: a client without it is refused. gansweep keeps token authentication on
(Ray's default for new local clusters); `RAY_AUTH_MODE=disabled` is the user's explicit
choice and gets a warning.
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path

__all__ = ["enable_token_auth", "token_path", "AUTH_DISABLED_WARNING"]

AUTH_DISABLED_WARNING = (
    "warning: RAY_AUTH_MODE=disabled: the embedded Ray listens on every interface without "
    "authentication; anyone who can reach this machine can run code as this user. "
    "Unset RAY_AUTH_MODE to keep Ray's token authentication on"
)


def token_path() -> Path:
    """Where Ray reads its token: RAY_AUTH_TOKEN_PATH, else ~/.ray/auth_token."""
    explicit = os.environ.get("RAY_AUTH_TOKEN_PATH")
    return Path(explicit) if explicit else Path.home() / ".ray" / "auth_token"


def enable_token_auth() -> bool:
    """Turn Ray's token authentication on for this process and its children.

    Returns False (and changes nothing) when the user set RAY_AUTH_MODE to something
    other than `token`. Otherwise makes sure a token exists (created readable by this
    user only, unlike Ray's own 0644 file) and refreshes Ray's configuration, which
    Ray reads once when it is imported: setting the variable afterwards is not enough.
    """
    mode = os.environ.get("RAY_AUTH_MODE")
    if mode is not None and mode.lower() != "token":
        return False
    os.environ["RAY_AUTH_MODE"] = "token"
    if not os.environ.get("RAY_AUTH_TOKEN"):
        _ensure_token_file(token_path())
    import ray._raylet as raylet

    raylet.Config.initialize("")
    raylet.AuthenticationTokenLoader.instance().reset_cache()
    return True


def _ensure_token_file(path: Path) -> None:
    if path.is_file() and path.read_text().strip():
        return
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    tmp = path.with_name(f".{path.name}.{os.getpid()}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(secrets.token_hex(32))  # 256 bits, as Ray's own generator
    try:
        os.link(tmp, path)  # atomic, and never replaces a token another process just wrote
    except FileExistsError:
        pass
    finally:
        tmp.unlink(missing_ok=True)
