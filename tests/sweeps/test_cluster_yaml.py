"""cluster.yaml is a valid Ray cluster-launcher config, checked with Ray's own schema."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import jsonschema
import pytest
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


def test_cluster_yaml_installs_this_project():
    config = _config()
    assert "~/gansweep" in config["file_mounts"]
    setup = "\n".join(config["setup_commands"])
    assert "-c ~/gansweep/constraints.txt -e ~/gansweep" in setup
    assert config["available_node_types"]["head"]["resources"] == {"CPU": 0}


def test_schema_check_catches_a_broken_config():
    config = copy.deepcopy(_config())
    config["available_node_types"]["head"]["max_wrkers"] = 2
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(config, _schema())
