"""The shipped package imports only what its runtime dependencies provide.

A user who installs mlship (its `[project.dependencies]`, not the `dev` extra) must be able to import
every module of `mlship/`: an import of a dev-only package (jsonschema once was one, and `mlship render`
and the Pulumi program died with ModuleNotFoundError) fails here, from the source, without a new venv.
"""

from __future__ import annotations

import ast
import importlib.metadata
import re
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _distribution_names(requirements: list[str]) -> set[str]:
    return {re.split(r"[\s\[<>=!~;]", req, maxsplit=1)[0].lower().replace("_", "-") for req in requirements}


def _runtime_closure(names: set[str]) -> set[str]:
    """The runtime dependencies and, recursively, what they require (as pip would install)."""
    seen: set[str] = set()
    todo = list(names)
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        try:
            requires = importlib.metadata.requires(name) or []
        except importlib.metadata.PackageNotFoundError:
            continue
        todo.extend(_distribution_names([r for r in requires if "extra ==" not in r]))
    return seen


def _imported_top_level_modules() -> dict[str, str]:
    found: dict[str, str] = {}
    for path in sorted((ROOT / "mlship").rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            else:
                continue
            for name in names:
                found.setdefault(name.split(".")[0], str(path.relative_to(ROOT)))
    return found


def test_every_third_party_import_of_the_package_is_a_runtime_dependency():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    installable = _runtime_closure(_distribution_names(project["dependencies"]))
    providers = importlib.metadata.packages_distributions()
    missing = {}
    for module, where in _imported_top_level_modules().items():
        if module == "mlship" or module in sys.stdlib_module_names:
            continue
        dists = {d.lower().replace("_", "-") for d in providers.get(module, [])}
        if not dists & installable:
            missing[module] = f"{where} (provided by {sorted(dists) or 'nothing installed'})"
    assert not missing, f"imports not covered by [project.dependencies]: {missing}"
