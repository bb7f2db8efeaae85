"""Stack config validation: a bad value fails naming the key, before any resource is declared."""

from __future__ import annotations

import runpy
from pathlib import Path

import pulumi
import pytest
from pulumi_helpers import PROGRAM, stack_models

from mlship.errors import ConfigError
from mlship.k8s import render as renderer
from mlship.k8s.stack_config import parse_quantity, read_stack_file, validate


@pytest.mark.parametrize("stack", ["dev", "staging", "prod"])
def test_shipped_stack_files_are_valid(stack):
    raw, secret = read_stack_file(PROGRAM / f"Pulumi.{stack}.yaml")
    config = validate(raw)
    assert config.environment == stack
    assert secret == set()


def _models(**change):
    models = stack_models("dev")
    models[0].update(change)
    return models


@pytest.mark.parametrize(
    ("overrides", "key", "message"),
    [
        (
            {"models": _models(canary={"version": "2.0.0", "weight": 150})},
            "mlship:models.0.canary.weight",
            "100",
        ),
        (
            {"models": _models(canary={"version": "2.0.0", "weight": 10, "shadow": True})},
            "mlship:models.0.canary",
            "weight must be 0",
        ),
        ({"models": _models(stable="latest")}, "mlship:models.0.stable", "moving tag"),
        (
            {"models": _models(canary={"version": stack_models("dev")[0]["stable"]})},
            "mlship:models.0",
            "equals the stable version",
        ),
        (
            {
                "models": _models(
                    resources={
                        "requests": {"cpu": "2", "memory": "1Gi"},
                        "limits": {"cpu": "1", "memory": "1Gi"},
                    }
                )
            },
            "mlship:models.0.resources",
            "limits.cpu (1) is below requests.cpu (2)",
        ),
        (
            {"models": _models(replicas=5, maxReplicas=2)},
            "mlship:models.0",
            "maxReplicas (2) is below replicas (5)",
        ),
        ({"models": _models(imagee="x")}, "mlship:models.0.imagee", "Extra inputs are not permitted"),
        ({"models": stack_models("dev") * 2}, "mlship:", "model names must be unique"),
        ({"gateway": {"classname": "x"}}, "mlship:gateway.classname", "Extra inputs are not permitted"),
        ({"models": _models(env={"MLSHIP_MODEL_TAG": "x:1"})}, "mlship:models.0.env", "cannot be overridden"),
        (
            {"monitoring": {"kubePrometheusStackVersion": "^88.0"}},
            "mlship:monitoring.kubePrometheusStackVersion",
            "",
        ),
        ({"environment": "qa"}, "mlship:environment", "'dev', 'staging' or 'prod'"),
    ],
)
def test_bad_values_fail_naming_the_key(overrides, key, message):
    with pytest.raises(ConfigError) as err:
        renderer.run_program("dev", PROGRAM, overrides)
    text = str(err.value)
    assert f"  {key}" in text, text
    assert message in text


def test_unknown_top_level_key_is_reported(tmp_path):
    (tmp_path / "Pulumi.yaml").write_text((PROGRAM / "Pulumi.yaml").read_text())
    (tmp_path / "__main__.py").write_text((PROGRAM / "__main__.py").read_text())
    stack = (PROGRAM / "Pulumi.dev.yaml").read_text() + "  mlship:replica: 3\n"
    (tmp_path / "Pulumi.dev.yaml").write_text(stack)
    with pytest.raises(ConfigError, match=r"mlship:replica: Extra inputs are not permitted"):
        renderer.run_program("dev", tmp_path)


def test_program_validates_before_declaring_any_resource():
    """Bypass render's own pre-check: the program itself must refuse before registering anything."""
    mocks = renderer.CaptureMocks()
    pulumi.runtime.set_mocks(mocks, project="mlship", stack="dev", preview=False)
    pulumi.runtime.set_all_config(
        {"mlship:environment": "dev", "mlship:models": '[{"name": "m", "image": "r/m", "stable": "latest"}]'}
    )

    def program():
        runpy.run_path(str(PROGRAM / "__main__.py"), run_name="__main__")

    with pytest.raises(ConfigError, match=r"mlship:models\.0\.stable"):
        pulumi.runtime.test(program)()
    assert mocks.registered == []


def test_quantities_compare_like_kubernetes():
    assert parse_quantity("500m") == parse_quantity("0.5")
    assert parse_quantity("1Gi") == 1024 * parse_quantity("1Mi")
    assert parse_quantity("1G") < parse_quantity("1Gi")
    with pytest.raises(ValueError, match="quantity"):
        parse_quantity("1 GB")


def test_shipped_stacks_name_no_canary():
    """Review of issue 11, defect 9: Pulumi.staging.yaml shipped a canary (314bbd1dbc02) whose image no
    pipeline had pushed, so the first `pulumi up` of staging waited on a Deployment that could never pull."""
    for stack in ("dev", "staging", "prod"):
        assert all("canary" not in model for model in stack_models(stack)), stack


def test_production_page_has_the_one_time_commands(render):
    """Review of issue 11, defect 9: the page named no `pulumi stack init` and no TLS Secret for prod."""
    page = (Path(__file__).resolve().parents[2] / "docs" / "production.md").read_text(encoding="utf-8")
    assert "pulumi stack init prod" in page
    config = render("prod").config
    assert config.gateway.tls is not None
    secret = f"kubectl -n {config.namespace} create secret tls {config.gateway.tls.secret_name}"
    assert secret in page
    assert page.index("make release-deploy STACK=prod") < page.index(secret)  # the namespace exists first
