"""Each role's defaults and its meta/argument_specs.yml describe the same variables, so that a wrong
variable (wrong type, unknown choice) is rejected before the role changes anything."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

ROLES_DIR = Path(__file__).resolve().parents[2] / "roles"
ROLES = sorted(p.name for p in ROLES_DIR.iterdir() if p.is_dir())


def options(role: str) -> dict[str, dict]:
    """Options of all entry points of the role's argument spec."""
    specs = yaml.safe_load((ROLES_DIR / role / "meta" / "argument_specs.yml").read_text())["argument_specs"]
    merged: dict[str, dict] = {}
    for entry in specs.values():
        merged.update(entry.get("options") or {})
    return merged


def defaults(role: str) -> dict:
    path = ROLES_DIR / role / "defaults" / "main.yml"
    return (yaml.safe_load(path.read_text()) or {}) if path.is_file() else {}


def test_the_expected_roles_exist():
    assert set(ROLES) == {
        "base",
        "firewall",
        "k3s_common",
        "k3s_server",
        "k3s_agent",
        "node_exporter",
        "log_agent",
    }


@pytest.mark.parametrize("role", ROLES)
def test_role_has_an_argument_spec_with_main_entry_point(role):
    specs = yaml.safe_load((ROLES_DIR / role / "meta" / "argument_specs.yml").read_text())["argument_specs"]
    assert "main" in specs


@pytest.mark.parametrize("role", ROLES)
def test_every_default_is_in_the_spec(role):
    missing = sorted(set(defaults(role)) - set(options(role)))
    assert missing == [], f"{role}: defaults without an argument spec entry: {missing}"


@pytest.mark.parametrize("role", ROLES)
def test_every_optional_spec_entry_has_a_default(role):
    optional = {name for name, spec in options(role).items() if not spec.get("required", False)}
    missing = sorted(optional - set(defaults(role)))
    assert missing == [], f"{role}: argument spec entries without a default in defaults/main.yml: {missing}"


@pytest.mark.parametrize("role", ROLES)
def test_required_entries_have_no_default(role):
    required = {name for name, spec in options(role).items() if spec.get("required", False)}
    assert sorted(required & set(defaults(role))) == []


@pytest.mark.parametrize("role", ROLES)
def test_variables_are_prefixed_with_the_role_name(role):
    unprefixed = sorted(name for name in {*options(role), *defaults(role)} if not name.startswith(f"{role}_"))
    assert unprefixed == [], f"{role}: variables without the {role}_ prefix: {unprefixed}"


@pytest.mark.parametrize("role", ROLES)
def test_spec_defaults_equal_the_defaults_file(role):
    values = defaults(role)
    mismatched = {
        name: (spec["default"], values[name])
        for name, spec in options(role).items()
        if "default" in spec and name in values and spec["default"] != values[name]
    }
    assert mismatched == {}, f"{role}: argument spec default != defaults/main.yml: {mismatched}"


@pytest.mark.parametrize("role", ROLES)
def test_every_option_is_typed_and_documented(role):
    loose = sorted(
        name for name, spec in options(role).items() if "type" not in spec or not spec.get("description")
    )
    assert loose == [], f"{role}: options without a type or a description: {loose}"


@pytest.mark.parametrize("role", ROLES)
def test_secret_options_are_no_log(role):
    for name, spec in options(role).items():
        if name.endswith(("_token", "_password", "_registries")):
            assert spec.get("no_log") is True, f"{role}: {name} holds a secret but is not marked no_log"
