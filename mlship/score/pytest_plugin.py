"""A pytest plugin that binds the JUnit report to the commit it ran on (for `mlship score`).

Load it with ``-p mlship.score.pytest_plugin`` (this repository does it in ``pyproject.toml``'s
``addopts``). When pytest writes a JUnit report (``--junitxml``), the plugin adds to it, as testsuite
properties, the commit HEAD pointed at when the session started and whether the tree was clean then
(``mlship.commit``, ``mlship.dirty``). `mlship score` refuses a report without them, from another commit or
from a dirty tree.

The plugin imports nothing from pytest: pytest calls its hooks by name. The JUnit writer is found among
the registered plugins by the one method this plugin needs from it (``add_global_property``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from mlship.score import provenance


def _junit_writer(config: Any) -> Any | None:
    for plugin in config.pluginmanager.get_plugins():
        if callable(getattr(plugin, "add_global_property", None)):
            return plugin
    return None


def pytest_sessionstart(session: Any) -> None:
    """Before any test runs: record HEAD and the tree's state in the JUnit report, if one is written."""
    writer = _junit_writer(session.config)
    if writer is None:
        return
    root = Path(str(session.config.rootpath))
    state = provenance.tree_state(root)
    writer.add_global_property(provenance.PROP_COMMIT, state.commit or f"none: {state.error}")
    writer.add_global_property(provenance.PROP_DIRTY, state.describe_dirty())
    writer.add_global_property(provenance.PROP_ROOT, str(root))
