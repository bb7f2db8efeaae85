"""Every pinned upstream version is listed in versions.yaml, and the code pins exactly those versions.

versions.yaml records for each pin the upstream tag, commit and file where the version was seen to exist
(checked with the stored upstream repositories: no chart repository or registry is reachable here). This
test ties the code to that list, so a version cannot be changed, or invented, in one place only: the
Loki chart 8.2.0 (never released) was pinned by the code while no list said where it had been checked.
"""

from __future__ import annotations

import importlib
import re
from pathlib import Path
from typing import Any

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
VERSIONS = yaml.safe_load((REPO / "versions.yaml").read_text(encoding="utf-8"))
ENTRIES = {e["name"]: e for e in VERSIONS["entries"]}


def pinned_value(reference: str) -> str:
    """The value a ``FILE:NAME`` reference points to in the repository."""
    file_name, _, name = reference.partition(":")
    path = REPO / file_name
    assert path.is_file(), f"{reference}: {file_name} does not exist"
    text = path.read_text(encoding="utf-8")
    if path.name == "Makefile":
        (value,) = re.findall(rf"^{re.escape(name)} := (\S+)", text, flags=re.M)
        return value
    if path.name == "requirements.lock":
        (value,) = re.findall(rf"^{re.escape(name)}==(\S+)$", text, flags=re.M)
        return value
    if ".github/workflows/" in file_name:  # uses: owner/action@<commit>  # <tag>
        pins = set(re.findall(rf"uses: {re.escape(name)}@([0-9a-f]{{40}})\s+#\s*(\S+)", text))
        assert len(pins) == 1, f"{reference}: expected one pinned commit, found {pins}"
        ((commit, tag),) = pins
        entry = next(e for e in VERSIONS["entries"] if reference in e["pinned_in"])
        assert commit == entry["checked"]["commit"], f"{reference} pins {commit}"
        return tag
    if path.suffix == ".py":
        module = importlib.import_module(file_name.removesuffix(".py").replace("/", "."))
        return str(getattr(module, name))
    doc: dict[str, Any] = yaml.safe_load(path.read_text(encoding="utf-8"))
    if doc.get("kind") == "CustomResourceDefinition":
        return str(doc["metadata"]["annotations"][name])
    value: Any = doc
    for key in name.split("."):  # all.vars.mlship_k3s_version in an inventory
        value = value[key]
    return str(value)


PINS = [(e["name"], ref) for e in VERSIONS["entries"] for ref in e["pinned_in"]]


@pytest.mark.parametrize(("name", "reference"), PINS, ids=[f"{n}@{r}" for n, r in PINS])
def test_code_pins_the_listed_version(name, reference):
    listed = str(ENTRIES[name]["version"])
    assert pinned_value(reference) == listed, (
        f"{reference} pins {pinned_value(reference)!r}, versions.yaml lists {name} {listed!r}: "
        "check the new version upstream and change both"
    )


CHECKSUMS = [
    (e["name"], ref, digest) for e in VERSIONS["entries"] for ref, digest in e.get("sha256", {}).items()
]


@pytest.mark.parametrize(
    ("name", "reference", "digest"), CHECKSUMS, ids=[f"{n}@{r}" for n, r, _ in CHECKSUMS]
)
def test_code_pins_the_listed_checksum(name, reference, digest):
    """A downloaded tool is checked against the SHA-256 listed here, next to where it was found."""
    assert pinned_value(reference) == digest, f"{reference}: versions.yaml lists {name} {digest}"


@pytest.mark.parametrize("entry", VERSIONS["entries"], ids=lambda e: e["name"])
def test_every_entry_says_where_it_was_checked(entry):
    checked = entry["checked"]
    assert {"repo", "tag", "commit", "path", "says"} <= set(checked)
    assert str(entry["version"]).lstrip("v") in str(checked["tag"]) + str(checked["says"])


def test_vendored_crds_match_the_charts_that_install_them():
    # The cluster gets its CRDs from the charts: the schemas mlship validates against must be theirs.
    for chart in (e for e in VERSIONS["entries"] if "bundles" in e):
        for crd_entry, version in chart["bundles"].items():
            assert str(ENTRIES[crd_entry]["version"]) == str(version), (chart["name"], crd_entry)


def test_every_vendored_crd_is_listed():
    crds = [e for e in VERSIONS["entries"] if e["kind"] == "crd"]
    listed = {ref.partition(":")[0] for e in crds for ref in e["pinned_in"]}
    vendored = {str(p.relative_to(REPO)) for p in (REPO / "pulumi" / "crds").glob("*.yaml")}
    assert vendored == listed


def test_validation_uses_the_clusters_kubernetes_minor():
    from mlship.k8s import validate

    k3s = str(ENTRIES[VERSIONS["kubernetes"]["from"]]["version"])  # v1.34.3+k3s1
    minor = ".".join(k3s.lstrip("v").split(".")[:2])
    assert VERSIONS["kubernetes"]["minor"] == minor
    for reference in VERSIONS["kubernetes"]["pinned_in"]:
        assert pinned_value(reference) == minor
    assert minor == validate.KUBERNETES_VERSION


def test_every_chart_the_program_installs_is_listed(render):
    releases = render("prod").releases
    charts = {"gateway-helm" if "gateway-helm" in r["chart"] else r["chart"]: r for r in releases}
    for chart, release in charts.items():
        assert chart in ENTRIES, f"Helm chart {chart} is installed but not in versions.yaml"
        assert release["version"] == ENTRIES[chart]["version"]
        assert (
            (release["repository"] or release["chart"])
            .rstrip("/")
            .endswith(ENTRIES[chart]["repository"].removeprefix("oci://docker.io/envoyproxy/").rstrip("/"))
        )
