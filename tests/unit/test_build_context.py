"""The Bento's build context holds every mlship module the server imports (a module left out would only
fail in the container, at import)."""

from __future__ import annotations

import ast
from pathlib import Path

from mlship import build

PACKAGE = Path(build.__file__).resolve().parent


def _is_module(name: str) -> bool:
    """Whether ``mlship.a.b`` is a module (or package) of the source tree, not a name defined in one."""
    rel = Path(*name.split(".")[1:])
    return (PACKAGE / rel).with_suffix(".py").is_file() or (PACKAGE / rel / "__init__.py").is_file()


def _mlship_imports(path: Path) -> set[str]:
    """Every mlship module ``path`` imports (``from mlship.x import y`` imports y too when y is a module)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("mlship"):
            found.add(node.module)
            found.update(
                f"{node.module}.{a.name}" for a in node.names if _is_module(f"{node.module}.{a.name}")
            )
        elif isinstance(node, ast.Import):
            found.update(a.name for a in node.names if a.name.startswith("mlship"))
    return found


def test_every_mlship_module_the_server_imports_is_staged(tmp_path):
    context = build.stage_context(tmp_path / "ctx")
    staged = {
        p.relative_to(context).with_suffix("").as_posix().replace("/", ".") for p in context.rglob("*.py")
    }
    staged = {s.removesuffix(".__init__") for s in staged}
    missing = set()
    for source in context.rglob("*.py"):
        missing.update(f"{source.relative_to(context)}: {n}" for n in _mlship_imports(source) - staged)
    assert not missing, f"add to mlship.build.SERVING_MODULES: {sorted(missing)}"
    assert "mlship.feedback.endpoint" in staged
