"""The embedded Ray keeps token authentication on: a client on the machine's other address,
without the token, is refused; the sweep's listening sockets are those docs/reliability.md lists.
"""

from __future__ import annotations

import os
import re
import socket
import stat
import subprocess
import sys
from pathlib import Path

import pytest

DOC = Path(__file__).parents[2] / "docs" / "reliability.md"

CLIENT = """
import os, sys
import ray
try:
    ray.init(address=sys.argv[1], logging_level="ERROR")
    print("RAN", ray.get(ray.remote(lambda: os.getuid()).remote(), timeout=60), flush=True)
except Exception as err:
    print("REFUSED", type(err).__name__, flush=True)
    sys.exit(3)
"""


def _client(address: str, env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-c", CLIENT, address],
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
    )


# ------------------------------------------------------------------ sockets of a process tree
def _listening_inodes() -> dict[int, tuple[str, int]]:
    """Inode -> (address, port) of every listening TCP socket (IPv4 and IPv6), from /proc."""
    found = {}
    for name, family in (("tcp", socket.AF_INET), ("tcp6", socket.AF_INET6)):
        path = Path("/proc/net") / name
        if not path.is_file():
            continue
        for line in path.read_text().splitlines()[1:]:
            fields = line.split()
            if fields[3] != "0A":  # TCP_LISTEN
                continue
            address, port = fields[1].split(":")
            raw = bytes.fromhex(address)
            words = b"".join(raw[i : i + 4][::-1] for i in range(0, len(raw), 4))
            found[int(fields[9])] = (socket.inet_ntop(family, words), int(port, 16))
    return found


def _descendants(pid: int) -> set[int]:
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            children.setdefault(ppid, []).append(int(entry.name))
    seen: set[int] = set()
    todo = [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            if child not in seen:
                seen.add(child)
                todo.append(child)
    return seen


def listeners(pids: set[int]) -> list[tuple[str, str, int]]:
    """(process name, address, port) of every listening TCP socket the processes hold."""
    sockets = _listening_inodes()
    found = set()
    for pid in pids:
        try:
            name = Path(f"/proc/{pid}/comm").read_text().strip()
            links = [os.readlink(fd) for fd in Path(f"/proc/{pid}/fd").iterdir()]
        except OSError:  # the process ended meanwhile
            continue
        for link in links:
            if link.startswith("socket:[") and int(link[8:-1]) in sockets:
                found.add((name, *sockets[int(link[8:-1])]))
    return sorted(found)


def documented_binds() -> dict[str, set[str]]:
    """The table of docs/reliability.md: process name pattern -> {all, node, loopback}."""
    text = DOC.read_text()
    table = text.split("<!-- listeners -->")[1].split("<!-- /listeners -->")[0]
    rows = re.findall(r"^\| `([^`]+)` \| ([a-z, ]+) \|", table, flags=re.M)
    assert rows, "docs/reliability.md lost its table of listening sockets"
    return {name: set(kinds.split(", ")) for name, kinds in rows}


def _kind(address: str, node_ip: str) -> str:
    if address in ("0.0.0.0", "::"):
        return "all"
    if address.startswith("127.") or address == "::1":
        return "loopback"
    return "node" if address == node_ip else f"unexpected address {address}"


# ------------------------------------------------------------------ tests
@pytest.mark.slow
def test_embedded_ray_refuses_a_client_without_the_token(tmp_path, monkeypatch):
    import ray

    from sweeps.runner import ray_session

    monkeypatch.delenv("RAY_AUTH_MODE", raising=False)  # a user's shell: nothing chosen
    with ray_session():
        address = ray.get_runtime_context().gcs_address
        host, port = address.rsplit(":", 1)
        if host.startswith("127."):
            pytest.skip("this machine has no address besides loopback")
        ray.get(ray.remote(lambda: 1).remote())  # start a worker: its sockets count too
        seen = listeners(_descendants(os.getpid()) | {os.getpid()})

        stranger = {k: v for k, v in os.environ.items() if not k.startswith("RAY_AUTH")}
        stranger["HOME"] = str(tmp_path)  # no ~/.ray/auth_token either
        refused = _client(address, stranger)
        allowed = _client(address, dict(os.environ))  # the same client holding the token
    assert refused.returncode == 3, refused.stdout + refused.stderr[-2000:]
    assert "RAN" not in refused.stdout
    assert "Authentication token is missing or incorrect" in refused.stderr
    assert allowed.returncode == 0 and "RAN" in allowed.stdout, allowed.stderr[-2000:]

    binds = documented_binds()
    assert seen, "found no listening sockets of the embedded Ray"
    for name, bind_address, port_ in seen:
        pattern = next((p for p in binds if re.fullmatch(p, name)), None)
        assert pattern is not None, f"{name} listens on {bind_address}:{port_}, not documented"
        assert _kind(bind_address, host) in binds[pattern], (name, bind_address, port_)
    assert any(name == "gcs_server" for name, _, _ in seen)


def test_disabling_auth_is_warned_about(monkeypatch, capsys):
    from sweeps.runner import configure_ray_env

    monkeypatch.setenv("RAY_AUTH_MODE", "disabled")
    configure_ray_env(embedded=True)
    assert os.environ["RAY_AUTH_MODE"] == "disabled"  # the user's choice stands
    assert "without authentication" in capsys.readouterr().out


def test_a_missing_token_is_created_private(tmp_path, monkeypatch):
    from sweeps.rayauth import enable_token_auth

    path = tmp_path / "ray" / "auth_token"
    monkeypatch.delenv("RAY_AUTH_MODE", raising=False)
    monkeypatch.setenv("RAY_AUTH_TOKEN_PATH", str(path))
    try:
        assert enable_token_auth()
        assert os.environ["RAY_AUTH_MODE"] == "token"
        assert len(path.read_text()) == 64
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
        before = path.read_text()
        enable_token_auth()
        assert path.read_text() == before  # an existing token is kept
    finally:
        monkeypatch.undo()
        from sweeps.rayauth import enable_token_auth as again

        again()  # Ray's cached configuration back to the suite's token


@pytest.mark.parametrize("experiment", ["../../../x", "a/b", "..", "x%2F..%2Fy", ""])
def test_experiment_name_cannot_leave_the_artifact_root(tmp_path, experiment):
    from sweeps.spec import SpecError, load_spec

    from .conftest import write_sweep

    path = write_sweep(tmp_path, tracking={"uri": "sqlite:///x.db", "experiment": experiment})
    with pytest.raises(SpecError, match="experiment"):
        load_spec(path)


def test_a_plain_experiment_name_is_accepted(tmp_path):
    from sweeps.spec import load_spec

    from .conftest import write_sweep

    path = write_sweep(tmp_path, tracking={"uri": "sqlite:///x.db", "experiment": "gan-v2.1_a"})
    assert load_spec(path).tracking.experiment == "gan-v2.1_a"
