"""Follow-ups as complete sweep files that ``gansweep run FILE`` accepts (sweeps/README.md).

The file is the original sweep file with its name suffixed and its grid replaced when the
sweep's own file is known (a sweep directory's sweep.yaml); else its base is the run config
every trial shared (an MLflow sweep's logged params), or empty and marked to be filled in (a
bare results table).
"""

from __future__ import annotations

import re

import yaml

__all__ = ["render_sweep_file", "yaml_loader"]


class _Loader(yaml.SafeLoader):
    """YAML 1.1 reads `1e-3` as a string; read it as the float a sweep file means."""


_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(
        r"""^(?:[-+]?(?:[0-9][0-9_]*)\.[0-9_]*(?:[eE][-+]?[0-9]+)?
        |[-+]?(?:[0-9][0-9_]*)(?:[eE][-+]?[0-9]+)
        |\.[0-9_]+(?:[eE][-+]?[0-9]+)?)$""",
        re.X,
    ),
    list("-+0123456789."),
)


def yaml_loader() -> type:
    """The loader sweep files are read with (floats such as ``1e-3`` are floats)."""
    return _Loader


def _safe_name(name: str) -> str:
    """A sweep name gansweep accepts (letters, digits, ``_.-``) made from any name."""
    text = re.sub(r"[^A-Za-z0-9_.-]+", "-", str(name)).strip("-.")
    return text if text and text[0].isalnum() else f"sweep{('-' + text) if text else ''}"


def _nest(flat: dict) -> dict:
    """``{"train.g_lr": x}`` -> ``{"train": {"g_lr": x}}``."""
    out: dict = {}
    for key, value in flat.items():
        node = out
        *parents, leaf = key.split(".")
        for part in parents:
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                break
        else:
            node[leaf] = value
    return out


_FILL_IN = (
    "FILL IN: the run config of the sweep these results came from (data, model,\n"
    "# loss, epochs, ...). As written it is gansweep's defaults, NOT the original sweep."
)


def render_sweep_file(plan, name: str, sweep: dict | None, base_params: dict | None) -> str:
    """A complete sweep file for ``gansweep run``: the follow-up's grid on the sweep's base.

    Args:
        plan: The `analysis.followup.FollowUp`.
        name: The original sweep's name.
        sweep: The original sweep file (a sweep directory's sweep.yaml), if known.
        base_params: Flattened run config shared by every trial (an MLflow sweep), if known.

    Returns:
        The file's text. Without either, ``base:`` is empty and marked to be filled in.
    """
    header = "".join(f"# {line}\n" for line in plan.header.splitlines())
    header += "".join(f"# Note: {n}\n" for n in plan.notes)
    doc = dict(sweep) if sweep else {}
    rest = {k: v for k, v in doc.items() if k not in ("name", "base", "grid")}
    rest["scaling"] = plan.scaling
    rest["max_trials"] = max(int(rest.get("max_trials") or 0), plan.runs)
    if sweep is not None:
        base, note = doc.get("base") or {}, "the original sweep's"
    elif base_params:
        base, note = _nest(base_params), "the run config every trial of the original sweep shared"
    else:
        base, note = {}, _FILL_IN
    full = {"name": f"{_safe_name(name)}-followup-{plan.index}", "base": base, "grid": plan.grid}
    text = yaml.safe_dump({**full, **rest}, sort_keys=False, default_flow_style=None)
    return header + text.replace("\nbase:", f"\n# base: {note}\nbase:", 1)
