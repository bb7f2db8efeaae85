"""The documentation matches the repository: links resolve, the README stays a short entry page, every role
variable, CLI command and `mlship.yaml` key a user can set is documented (with its real default).

Pure file reading plus one walk of the CLI's command tree and of the pydantic configuration models: no process
is started. A page that names a command, option, key or file that does not exist fails here, so a rename in
the code shows up as a failing test instead of a stale page.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from pydantic import BaseModel

from mlship.config import Config

REPO = Path(__file__).resolve().parents[2]
DOCS = REPO / "docs"
README = REPO / "README.md"
ROLES = sorted(p for p in (REPO / "roles").iterdir() if p.is_dir())
PAGES = sorted([README, *DOCS.rglob("*.md"), *(role / "README.md" for role in ROLES)])
README_LIMIT = 20_000

FENCE = re.compile(r"^(```|~~~).*?^\1", re.M | re.S)
CODE_SPAN = re.compile(r"(`+)(.+?)\1", re.S)
LINK = re.compile(r"!?\[(?:[^\]\[]|\[[^\]]*\])*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
HEADING = re.compile(r"^(#{1,6})\s+(.+?)\s*#*\s*$", re.M)


def _without_code(text: str) -> str:
    """Markdown outside fenced blocks and code spans (links inside code are not links)."""
    return CODE_SPAN.sub("", FENCE.sub("", text))


def _anchor(heading: str) -> str:
    """GitHub's heading id: markup dropped, lower case, punctuation removed, spaces to hyphens."""
    text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", heading).replace("`", "")
    text = re.sub(r"[^\w\- ]", "", text.strip().lower())
    return text.replace(" ", "-")


def _anchors(page: Path) -> set[str]:
    seen: dict[str, int] = {}
    anchors = set()
    for _, title in HEADING.findall(FENCE.sub("", page.read_text(encoding="utf-8"))):
        base = _anchor(title)
        count = seen.get(base, 0)
        seen[base] = count + 1
        anchors.add(base if count == 0 else f"{base}-{count}")
    return anchors


def _relative_links(page: Path) -> Iterator[str]:
    for target in LINK.findall(_without_code(page.read_text(encoding="utf-8"))):
        if not re.match(r"^[a-z][a-z0-9+.-]*:", target):  # http:, https:, mailto: ...
            yield target


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(REPO)))
def test_every_relative_link_resolves_to_a_file_and_heading(page: Path):
    broken = []
    for target in _relative_links(page):
        path_part, _, fragment = target.partition("#")
        dest = (page.parent / path_part).resolve() if path_part else page
        if not dest.exists():
            broken.append(f"{target}: no such file")
        elif fragment and dest.suffix == ".md" and fragment not in _anchors(dest):
            broken.append(f"{target}: no heading #{fragment} in {dest.relative_to(REPO)}")
    assert not broken, f"{page.relative_to(REPO)}: " + "; ".join(broken)


def test_the_readme_is_a_short_entry_page_naming_both_commands():
    text = README.read_text(encoding="utf-8")
    size = len(text.encode("utf-8"))
    assert size < README_LIMIT, f"README.md is {size} bytes; move detail to docs/ (limit {README_LIMIT})"
    for command in ("make demo", "make test"):
        assert f"`{command}`" in text, f"README.md does not mention `{command}`"


def test_the_readme_states_the_request_size_limit_with_its_413():
    # devtools/reliability/scans.py (size_limit_documented) looks for one sentence with both in README.md.
    sentences = re.split(r"(?<=\.)\s", README.read_text(encoding="utf-8"))
    assert any("1 MiB" in s and "413" in s for s in sentences)


def _role_variables(role: Path) -> set[str]:
    names: set[str] = set()
    defaults = role / "defaults" / "main.yml"
    if defaults.exists():
        names |= set(yaml.safe_load(defaults.read_text(encoding="utf-8")) or {})
    specs = yaml.safe_load((role / "meta" / "argument_specs.yml").read_text(encoding="utf-8"))
    for entry in specs["argument_specs"].values():
        names |= set(entry.get("options", {}))
    return names


@pytest.mark.parametrize("role", ROLES, ids=lambda p: p.name)
def test_every_role_has_a_readme_naming_each_of_its_variables(role: Path):
    readme = role / "README.md"
    assert readme.exists(), f"roles/{role.name} has no README.md"
    text = readme.read_text(encoding="utf-8")
    variables = _role_variables(role)
    assert variables or role.name == "k3s_common", f"roles/{role.name} declares no variable"
    missing = sorted(v for v in variables if f"`{v}`" not in text)
    assert not missing, f"roles/{role.name}/README.md does not document {missing}"


def _mlship_invocations(text: str) -> Iterator[tuple[str, list[str]]]:
    """(code, tokens after `mlship`) for every code span or code-block line that runs the CLI."""
    snippets = [m.group(2) for m in CODE_SPAN.finditer(FENCE.sub("", text))]
    for block in FENCE.finditer(text):
        snippets += block.group(0).splitlines()
    for snippet in snippets:
        tokens = snippet.split("#", 1)[0].split()
        if tokens and re.fullmatch(r"(\S*/)?mlship", tokens[0]):
            yield snippet, tokens[1:]


def _subcommands(command: Any) -> dict[str, Any] | None:
    """A group's sub-commands, None for a leaf (typer vendors click: no isinstance on click's classes)."""
    commands = getattr(command, "commands", None)
    return commands if isinstance(commands, dict) else None


def _resolve(root: Any, tokens: list[str]) -> tuple[Any, list[str], str]:
    """Follow sub-commands; return the command reached (None: unknown), the remaining tokens, the path."""
    command, path = root, "mlship"
    for i, token in enumerate(tokens):
        subcommands = _subcommands(command)
        if subcommands is None or not re.fullmatch(r"[a-z][a-z-]*", token):
            return command, tokens[i:], path
        if token not in subcommands:
            return None, tokens[i:], f"{path} {token}"
        command, path = subcommands[token], f"{path} {token}"
    return command, [], path


def _options(command: Any) -> set[str]:
    names = {"--help"}
    for param in command.params:
        names |= {*param.opts, *param.secondary_opts}
    return names


def _cli_problems(page: Path, root: Any) -> list[str]:
    text = page.read_text(encoding="utf-8")
    problems = []
    checked = [
        (code, tokens, [t for t in tokens if t.startswith("-")]) for code, tokens in _mlship_invocations(text)
    ]
    # In a table row that starts with a command, the options named in the other cells are that command's.
    for row in re.findall(r"^\|.*\|$", text, re.M):
        cells = row.strip("|").split("|")
        first = list(_mlship_invocations(cells[0]))
        if first:
            spans = [m.group(2) for m in CODE_SPAN.finditer("|".join(cells[1:]))]
            options = [w.rstrip(",") for s in spans for w in s.split() if w.startswith("--")]
            checked.append((first[0][0], first[0][1], options))
    for code, tokens, options in checked:
        command, _, path = _resolve(root, tokens)
        if command is None:
            problems.append(f"`{code}`: `{path}` is not a command")
            continue
        for option in options:
            if option.split("=", 1)[0] not in _options(command):
                problems.append(f"`{code}`: {path} has no option {option}")
    return problems


def test_every_mlship_command_and_option_in_the_docs_exists():
    import typer.main

    from mlship.cli import app

    root = typer.main.get_command(app)
    problems = [f"{page.relative_to(REPO)}: {p}" for page in PAGES for p in _cli_problems(page, root)]
    assert not problems, "\n".join(problems)


def test_the_cli_reference_lists_every_command():
    import typer.main

    from mlship.cli import app

    def leaves(command: Any, path: str) -> Iterator[str]:
        subcommands = _subcommands(command)
        if subcommands is not None:
            for name, sub in subcommands.items():
                yield from leaves(sub, f"{path} {name}")
        else:
            yield path

    text = (DOCS / "cli.md").read_text(encoding="utf-8")
    documented = {" ".join(["mlship", *tokens]) for _, tokens in _mlship_invocations(text)}
    missing = [
        path
        for path in leaves(typer.main.get_command(app), "mlship")
        if not any(d == path or d.startswith(path + " ") for d in documented)
    ]
    assert not missing, f"docs/cli.md does not list {missing}"


def _config_keys(model: type[BaseModel], prefix: str = "") -> Iterator[tuple[str, object]]:
    for name, field in model.model_fields.items():
        annotation = field.annotation
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            yield from _config_keys(annotation, f"{prefix}{name}.")
        else:
            yield f"{prefix}{name}", field.default


def test_the_configuration_page_lists_every_key_with_its_real_default():
    text = (DOCS / "configuration.md").read_text(encoding="utf-8")
    rows = {key: default for key, default in re.findall(r"^\| `([a-z_.0-9]+)` \| `([^`]*)` \|", text, re.M)}
    keys = dict(_config_keys(Config))
    missing = sorted(set(keys) - set(rows))
    assert not missing, f"docs/configuration.md does not document {missing}"
    unknown = sorted(k for k in rows if "." in k and k not in keys)
    assert not unknown, f"docs/configuration.md documents keys mlship.yaml does not accept: {unknown}"
    wrong = {k: (rows[k], keys[k]) for k in keys if yaml.safe_load(rows[k]) != keys[k]}
    assert not wrong, f"documented default differs from mlship/config.py (page, code): {wrong}"


def test_the_stack_reference_shows_the_pinned_chart_versions():
    """docs/kubernetes.md's defaults for the chart versions are the ones the code pins."""
    from mlship.k8s import stack_config as sc

    text = (DOCS / "kubernetes.md").read_text(encoding="utf-8")
    pins = {
        "mlship:gateway.chartVersion": sc.ENVOY_GATEWAY_CHART,
        "mlship:monitoring.kubePrometheusStackVersion": sc.KUBE_PROMETHEUS_STACK_CHART,
        "mlship:monitoring.lokiVersion": sc.LOKI_CHART,
        "mlship:monitoring.alloyVersion": sc.ALLOY_CHART,
    }
    for key, version in pins.items():
        row = next(line for line in text.splitlines() if line.startswith(f"| `{key}` |"))
        assert row.rstrip().endswith(f"| `{version}` |"), row
