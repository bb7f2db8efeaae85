"""Vendor an upstream CRD's schema into ``pulumi/crds/`` (what ``mlship render`` validates against).

    python -m devtools.crds --source "prometheus-operator/prometheus-operator v0.93.0 \
        example/prometheus-operator-crd/monitoring.coreos.com_servicemonitors.yaml" UPSTREAM_FILE

Reads the CRD exactly as upstream publishes it at the pinned tag (``git show TAG:PATH`` of the upstream
repository), keeps the storage version only, and removes what jsonschema cannot evaluate or does not
need: ``description`` texts and CEL rules (``x-kubernetes-validations``, which only an API server runs).
Every other keyword (types, enums, patterns, bounds, required, lists) is kept as upstream wrote it. The
file's header names the upstream repository, tag, path and the SHA-256 of the upstream file, so anyone
can check the vendored schema against upstream; ``versions.yaml`` lists the same facts.
"""

from __future__ import annotations

import argparse
import hashlib
import sys
from pathlib import Path
from typing import Any

import yaml

from mlship.paths import project_root

DROPPED_KEYS = ("x-kubernetes-validations",)


def strip(node: Any) -> Any:
    """The schema without descriptions and CEL rules. A *property* named ``description`` is kept."""
    if isinstance(node, dict):
        out = {}
        for key, value in node.items():
            if key in DROPPED_KEYS or (key == "description" and isinstance(value, str)):
                continue
            out[key] = strip(value)
        return out
    if isinstance(node, list):
        return [strip(v) for v in node]
    return node


def vendor(upstream: bytes, source: str) -> str:
    """The vendored text of one upstream CRD file; ``source`` is "<owner/repo> <tag> <path>"."""
    repo, tag, path = source.split()
    doc = yaml.safe_load(upstream)
    if not isinstance(doc, dict) or doc.get("kind") != "CustomResourceDefinition":
        raise SystemExit(f"{path}: not a CustomResourceDefinition")
    spec = doc["spec"]
    storage = [v for v in spec["versions"] if v.get("storage")]
    if len(storage) != 1:
        raise SystemExit(f"{path}: expected one storage version, found {len(storage)}")
    version = strip(storage[0])
    version.pop("additionalPrinterColumns", None)
    annotations = {
        k: v
        for k, v in (doc["metadata"].get("annotations") or {}).items()
        if k.startswith(("operator.prometheus.io/", "gateway.networking.k8s.io/"))
    }
    annotations["mlship.io/source"] = f"{repo} {tag} {path}"
    annotations["mlship.io/upstream-sha256"] = hashlib.sha256(upstream).hexdigest()
    out = {
        "apiVersion": doc["apiVersion"],
        "kind": doc["kind"],
        "metadata": {"name": doc["metadata"]["name"], "annotations": annotations},
        "spec": {
            "group": spec["group"],
            "names": spec["names"],
            "scope": spec["scope"],
            "versions": [version],
        },
    }
    header = (
        f"# {spec['names']['kind']} CRD schema ({version['name']}), used by `mlship render` to validate "
        "rendered objects offline.\n"
        f"# Source: {repo} at {tag}, {path}\n"
        f"# (sha256 of the upstream file: {annotations['mlship.io/upstream-sha256']}).\n"
        "# Written by `python -m devtools.crds`: the storage version only, without descriptions and\n"
        "# CEL rules (x-kubernetes-validations need an API server). Do not edit; re-vendor when\n"
        "# versions.yaml changes.\n"
    )
    return header + yaml.safe_dump(out, sort_keys=False, width=120)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--source", required=True, help='"<owner/repo> <tag> <path>" of the upstream file')
    parser.add_argument("upstream", type=Path, help="the upstream CRD file (git show TAG:PATH)")
    parser.add_argument("--out-dir", type=Path, default=project_root() / "pulumi" / "crds")
    args = parser.parse_args(argv)
    args.out_dir.mkdir(parents=True, exist_ok=True)
    target = args.out_dir / Path(args.source.split()[2]).name
    target.write_text(vendor(args.upstream.read_bytes(), args.source), encoding="utf-8")
    print(f"wrote {target}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
