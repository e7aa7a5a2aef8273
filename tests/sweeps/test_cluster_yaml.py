"""cluster.yaml is a valid Ray cluster-launcher config, checked with Ray's own schema."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import jsonschema
import pytest
import tomllib
import yaml

CLUSTER_YAML = Path(__file__).parents[2] / "cluster.yaml"


def _schema() -> dict:
    import ray.autoscaler

    return json.loads((Path(ray.autoscaler.__file__).parent / "ray-schema.json").read_text())


def _config() -> dict:
    return yaml.safe_load(CLUSTER_YAML.read_text())


def test_cluster_yaml_matches_ray_schema():
    jsonschema.validate(_config(), _schema())


def test_cluster_yaml_passes_rays_own_validation_with_defaults():
    from ray.autoscaler._private.util import prepare_config, validate_config

    config = prepare_config(_config())  # what `ray up` does before launching anything
    validate_config(config)
    assert config["head_node_type"] in config["available_node_types"]


def test_cluster_yaml_installs_this_project_with_its_job_server():
    config = _config()
    assert "~/gansweep" in config["file_mounts"]
    setup = "\n".join(config["setup_commands"])
    # The `cluster` extra brings ray[default]: without it the head has no job server.
    assert '-c ~/gansweep/constraints.txt -e "$HOME/gansweep[cluster]"' in setup
    pyproject = tomllib.loads((CLUSTER_YAML.parent / "pyproject.toml").read_text())
    assert "ray[default]" in pyproject["project"]["optional-dependencies"]["cluster"]
    assert config["available_node_types"]["head"]["resources"] == {"CPU": 0}


def test_cluster_yaml_keeps_ray_authentication_on():
    config = _config()
    starts = config["head_start_ray_commands"] + config["worker_start_ray_commands"]
    ray_starts = [c for c in starts if " start " in c]
    assert len(ray_starts) == 2
    assert all(c.startswith("RAY_AUTH_MODE=token ") for c in ray_starts)
    assert config["file_mounts"]["~/.ray/auth_token"] == "~/.ray/auth_token"
    text = CLUSTER_YAML.read_text()
    assert "RAY_AUTH_MODE=disabled" not in text and "--dashboard-host=0.0.0.0" not in text


def test_schema_check_catches_a_broken_config():
    config = copy.deepcopy(_config())
    config["available_node_types"]["head"]["max_wrkers"] = 2
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(config, _schema())
