"""mlship.yaml is validated before anything is touched; errors name the key."""

from __future__ import annotations

import pytest

from mlship.config import Config, load_config
from mlship.errors import ConfigError


def test_missing_file_means_defaults(tmp_path):
    assert load_config(tmp_path / "mlship.yaml") == Config()


def test_values_are_read(tmp_path):
    path = tmp_path / "mlship.yaml"
    path.write_text("canary:\n  steps: [20, 100]\n  min_samples: 50\nlocal:\n  proxy_port: 18080\n")
    config = load_config(path)
    assert config.canary.steps == [20, 100]
    assert config.canary.min_samples == 50
    assert config.local.proxy_port == 18080


@pytest.mark.parametrize(
    ("text", "key"),
    [
        ("canary:\n  steps: [50, 10, 100]\n", "canary.steps"),
        ("canary:\n  steps: [10, 50]\n", "canary.steps"),
        ("canary:\n  false_rollback_rate: 2\n", "canary.false_rollback_rate"),
        ("local:\n  proxy_port: 80\n", "local.proxy_port"),
        ("local:\n  proxy_port: 9090\n", "local"),
        ("local:\n  stable_replicas: 3\n", "local.stable_replicas"),
        ("local:\n  stable_2_port: 3002\n", "local"),
        ("canary:\n  stepz: [100]\n", "canary.stepz"),
        ("slo:\n  availability: high\n", "slo.availability"),
    ],
)
def test_invalid_values_fail_naming_the_key(tmp_path, text, key):
    path = tmp_path / "mlship.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert f"  {key}" in str(info.value)


def test_not_yaml_is_a_clear_error(tmp_path):
    path = tmp_path / "mlship.yaml"
    path.write_text("canary: [unclosed\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(path)


def test_top_level_must_be_a_mapping(tmp_path):
    path = tmp_path / "mlship.yaml"
    path.write_text("- 1\n- 2\n")
    with pytest.raises(ConfigError, match="expected a mapping"):
        load_config(path)
