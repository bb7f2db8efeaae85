"""Security scans: checkov (Dockerfile and rendered manifests), bandit, a secret scan, non-root
containers, the documented request size limit, ansible-lint (production profile).

A finding passes only with a written justification kept next to it: bandit findings carry the same
rule's ruff `noqa` with a reason on the flagged line; checkov skips carry a reason in the object's
annotation; secret-scan hits are listed in ``AUDITED_SECRETS`` with what the value really is.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from devtools.reliability.result import CaseResult, errored, skipped, verdict
from mlship import build, images, names
from mlship.errors import EnvironmentNotReady
from mlship.paths import project_root

AREA = "scans"
BANDIT_TARGETS = ("mlship", "bento", "pulumi")
CHECKOV_VENV = ".venv-checkov"
MODEL_IMAGE = "mlship-model"
# Secret-scan hits reviewed by hand: file, sha1 of the flagged value, what the value really is.
_AUDITED = [
    (
        "mlship/k8s/components/monitoring.py",
        "7a64ff8446b06d38dc271019994f13823a2cbcf4",  # pragma: allowlist secret
        "name of the Kubernetes Secret holding Grafana's admin credentials, not a credential",
    ),
    (
        "mlship/k8s/components/monitoring.py",
        "fc4b79ff2005c1bfacead828184f0c8aad8fd860",  # pragma: allowlist secret
        "key name inside that Secret (passwordKey), not a credential",
    ),
    (
        "pulumi/Pulumi.prod.yaml",
        "5fa98fa60d49da4d58b3b6c90e3792d2f2db99f5",  # pragma: allowlist secret
        "name of the TLS Secret the gateway references (secretName), not key material",
    ),
    (
        "molecule/k3s_server/converge.yml",
        "a915f4019a3800e63bef36bf419abb7430e814c3",  # pragma: allowlist secret
        "throwaway registry password of a Molecule test container, checked to be templated",
    ),
    (
        "molecule/log_agent/converge.yml",
        "80992db6d62156d3f46af7f6178b0c0111f7f9d7",  # pragma: allowlist secret
        "throwaway Loki password of a Molecule test container, checked to stay out of the config",
    ),
    (
        "tests/pulumi/test_monitoring.py",
        "f11c688a3d8135620abe1562ee996f4b1f720726",  # pragma: allowlist secret
        "test value asserted never to reach rendered files",
    ),
]
AUDITED_SECRETS: dict[tuple[str, str], str] = {(path, sha1): why for path, sha1, why in _AUDITED}
# A hex string whose key names it a digest, version or id is an identifier, not a credential
# (lock-file sha256, model versions, commit ids): `"sha256": "8cc2..."`, `"canary_version": "d0fb..."`.
IDENTIFIER_KEY = re.compile(
    r"""["']?[\w.-]*(sha1|sha256|sha512|digest|checksum|hash|version|commit|rollout_id)["']?\s*[:=]""",
    re.IGNORECASE,
)
HEX_PLUGIN = "Hex High Entropy String"


def _bin(name: str) -> Path:
    return Path(sys.executable).with_name(name)


# --- bandit ------------------------------------------------------------------------------------------
def _justified(path: Path, line: int, test_id: str) -> bool:
    """The flagged line carries ruff's same rule (B108 -> S108) as `noqa` followed by a reason."""
    try:
        text = path.read_text(encoding="utf-8").splitlines()[line - 1]
    except (OSError, IndexError):
        return False
    match = re.search(rf"noqa:[^#]*\bS{test_id[1:]}\b\s*[-:]+\s*(.+)$", text)
    return bool(match and len(match.group(1).split()) >= 3)


def bandit_scan(root: Path) -> CaseResult:
    expected = "0 high; every medium finding justified on its line (ruff noqa of the same rule + reason)"
    case = f"bandit on {', '.join(d + '/' for d in BANDIT_TARGETS)}"
    try:
        done = subprocess.run(
            [str(_bin("bandit")), "-r", *BANDIT_TARGETS, "-f", "json", "-q"],
            cwd=root,
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )
        if not done.stdout.strip():
            raise EnvironmentNotReady(f"bandit produced no report: {done.stderr.strip()}")
        report = json.loads(done.stdout)
        findings = report["results"]
        by_severity = {
            s: [f for f in findings if f["issue_severity"] == s] for s in ("HIGH", "MEDIUM", "LOW")
        }
        unjustified = [
            f"{f['test_id']} {f['filename']}:{f['line_number']}"
            for f in by_severity["HIGH"] + by_severity["MEDIUM"]
            if f["issue_severity"] == "HIGH"
            or not _justified(root / f["filename"], f["line_number"], f["test_id"])
        ]
        lines = report["metrics"]["_totals"]["loc"]
        low_ids = sorted({f["test_id"] for f in by_severity["LOW"]})
        observed = (
            f"{lines} lines: {len(by_severity['HIGH'])} high, {len(by_severity['MEDIUM'])} medium "
            f"({len(by_severity['MEDIUM']) - len(unjustified)} justified), {len(by_severity['LOW'])} low "
            f"({', '.join(low_ids)})"
        )
        if unjustified:
            observed += f"; unjustified: {', '.join(unjustified)}"
        return verdict(
            AREA,
            case,
            expected=expected,
            observed=observed,
            ok=not unjustified,
            counts={s: len(v) for s, v in by_severity.items()},
        )
    except Exception as exc:
        return errored(AREA, case, expected=expected, exc=exc)


# --- secrets -----------------------------------------------------------------------------------------
SKIPPED_DIRS = {"__pycache__", "node_modules", "build", "dist"}


def repository_files(root: Path) -> list[str]:
    """Tracked files and new files not ignored by .gitignore (what a commit could contain).

    Outside a git checkout (a release archive): every file but hidden folders (.venv, .mlship, ...)
    and build output.
    """
    done = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=root,
        capture_output=True,
        check=False,
    )
    if done.returncode == 0:
        return [p for p in done.stdout.decode().split("\0") if p and (root / p).is_file()]
    return sorted(
        str(path.relative_to(root))
        for path in root.rglob("*")
        if path.is_file()
        and not any(
            part.startswith(".") or part in SKIPPED_DIRS or part.endswith(".egg-info")
            for part in path.relative_to(root).parts[:-1]
        )
    )


def _labelled_identifier(path: Path, secret: Any) -> bool:
    try:
        line = path.read_text(encoding="utf-8").splitlines()[secret.line_number - 1]
    except (OSError, IndexError, UnicodeDecodeError):
        return False
    return bool(IDENTIFIER_KEY.search(line))


def secret_scan(root: Path) -> CaseResult:
    expected = "no plaintext secret: every detect-secrets hit audited (listed with what the value is)"
    case = "secret scan of the repository (detect-secrets)"
    try:
        try:
            from detect_secrets import SecretsCollection
            from detect_secrets.settings import default_settings
        except ImportError as exc:
            raise EnvironmentNotReady("detect-secrets is not installed: `make setup` (dev extra)") from exc
        files = repository_files(root)
        collection = SecretsCollection(root=str(root))  # file names stay relative to the repository
        with default_settings():
            collection.scan_files(*files, num_processors=2)
        hits = [(filename, secret) for filename, secret in collection]
        identifiers = [(f, s) for f, s in hits if s.type == HEX_PLUGIN and _labelled_identifier(root / f, s)]
        unaudited = [
            f"{f}:{s.line_number} ({s.type})"
            for f, s in hits
            if (f, s.secret_hash) not in AUDITED_SECRETS and (f, s) not in identifiers
        ]
        audited = len(hits) - len(identifiers) - len(unaudited)
        observed = (
            f"{len(files)} files: {len(hits)} hits: {audited} audited as not secrets, {len(identifiers)} "
            "hex digests/versions labelled as such"
        )
        if unaudited:
            observed += f"; NOT audited: {', '.join(unaudited)}"
        return verdict(
            AREA,
            case,
            expected=expected,
            observed=observed,
            ok=not unaudited,
            files=len(files),
            hits=len(hits),
        )
    except Exception as exc:
        return errored(AREA, case, expected=expected, exc=exc)


# --- Dockerfile and manifests --------------------------------------------------------------------------
def generated_dockerfile(model_tag: str, out: Path) -> Path:
    """The Dockerfile `mlship build --containerize` builds from (the Bento is built, then removed)."""
    bento_tag = build.build_bento(model_tag, base_image=images.PYTHON.reference)
    out.mkdir(parents=True, exist_ok=True)
    target = out / "Dockerfile"
    try:
        # BentoML reads the Dockerfile template only below the working directory (as in mlship.build).
        done = subprocess.run(
            [
                sys.executable,
                "-c",
                "import bentoml, sys; bentoml.container.get_containerfile("
                "sys.argv[1], output_path=sys.argv[2], enable_buildkit=False)",
                bento_tag,
                str(target),
            ],
            cwd=tempfile.gettempdir(),
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )
        if not target.exists():
            raise EnvironmentNotReady(
                f"BentoML generated no Dockerfile for {bento_tag}: {done.stderr.strip()[-400:]}"
            )
    finally:
        import bentoml

        bentoml.bentos.delete(bento_tag)
    return target


def render_stacks(stacks: list[str], out: Path) -> list[dict[str, Any]]:
    from mlship.k8s import render as renderer

    manifests: list[dict[str, Any]] = []
    for stack in stacks:
        result = renderer.run_program(stack, project_root() / "pulumi")
        renderer.write(result, out / stack)
        manifests += result.manifests
    return manifests


def run_checkov(directory: Path, frameworks: list[str]) -> list[dict[str, Any]]:
    checkov = project_root() / CHECKOV_VENV / "bin" / "checkov"
    if not checkov.exists():
        raise EnvironmentNotReady(f"{checkov} is missing: `make checkov-venv` (checkov has its own venv)")
    done = subprocess.run(
        [str(checkov), "-d", str(directory), "--framework", *frameworks, "--skip-download", "-o", "json"],
        capture_output=True,
        text=True,
        timeout=900,
        env={**os.environ, "BC_SKIP_MAPPING": "TRUE"},
        check=False,
    )
    if not done.stdout.strip():
        raise EnvironmentNotReady(f"checkov produced no report: {done.stderr.strip()[-500:]}")
    report = json.loads(done.stdout)
    return report if isinstance(report, list) else [report]


def checkov_case(report: dict[str, Any], what: str) -> CaseResult:
    expected = "0 failed checks, 0 parsing errors; every skipped check carries a written reason"
    summary = report["summary"]
    failed = [f"{c['check_id']} {c['resource']}" for c in report["results"].get("failed_checks", [])]
    unexplained = [
        c["check_id"]
        for c in report["results"].get("skipped_checks", [])
        if len((c["check_result"].get("suppress_comment") or "").split()) < 5
    ]
    observed = (
        f"checkov {summary['checkov_version']}: {summary['passed']} passed, {summary['failed']} failed, "
        f"{summary['skipped']} skipped, {summary['parsing_errors']} parsing errors"
    )
    if failed:
        observed += f"; failed: {', '.join(failed[:5])}"
    if unexplained:
        observed += f"; skipped without reason: {', '.join(unexplained)}"
    ok = not failed and not unexplained and summary["parsing_errors"] == 0 and summary["passed"] > 0
    return verdict(AREA, f"checkov on {what}", expected=expected, observed=observed, ok=ok, summary=summary)


def _last_user(dockerfile: Path) -> str | None:
    users = re.findall(r"^USER\s+(\S+)", dockerfile.read_text(encoding="utf-8"), re.MULTILINE)
    return users[-1] if users else None


def _pod_specs(manifest: dict[str, Any]) -> Iterator[dict[str, Any]]:
    spec = manifest.get("spec") or {}
    if manifest.get("kind") == "CronJob":
        spec = ((spec.get("jobTemplate") or {}).get("spec")) or {}
    template = spec.get("template")
    if isinstance(template, dict) and isinstance(template.get("spec"), dict):
        yield template["spec"]


def _non_root(pod: dict[str, Any], container: dict[str, Any]) -> bool:
    pod_ctx = pod.get("securityContext") or {}
    ctx = container.get("securityContext") or {}
    as_non_root = ctx.get("runAsNonRoot", pod_ctx.get("runAsNonRoot"))
    user = ctx.get("runAsUser", pod_ctx.get("runAsUser"))
    return bool(as_non_root) and user != 0


def _image_user() -> str:
    """`Config.User` and `id -u` of the newest mlship-model image, when one was built here."""
    if not images.docker_available():
        return "no Docker engine: image not checked"
    listed = subprocess.run(
        ["docker", "image", "ls", MODEL_IMAGE, "--format", "{{.Repository}}:{{.Tag}}"],
        capture_output=True,
        text=True,
        check=False,
    ).stdout.split()
    if not listed:
        return "no mlship-model image built here (`mlship build --containerize`): image not checked"
    image = listed[0]
    user = subprocess.run(
        ["docker", "image", "inspect", "--format", "{{.Config.User}}", image],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    uid = subprocess.run(
        ["docker", "run", "--rm", "--network", "none", "--entrypoint", "id", image, "-u"],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    ).stdout.strip()
    return f"image {image}: Config.User {user or '(empty = root)'}, runs as uid {uid or '?'}"


def non_root_case(dockerfile: Path, manifests: list[dict[str, Any]]) -> CaseResult:
    expected = (
        f"Dockerfile's final USER is uid {build.NON_ROOT_UID}; every rendered container runAsNonRoot; "
        "a built image's Config.User non-root"
    )
    case = "containers run as non-root"
    user = _last_user(dockerfile)
    containers = [
        (m["metadata"]["name"], c, pod)
        for m in manifests
        for pod in _pod_specs(m)
        for c in [*pod.get("initContainers", []), *pod.get("containers", [])]
    ]
    root_ones = [f"{name}/{c.get('name')}" for name, c, pod in containers if not _non_root(pod, c)]
    image = _image_user()
    image_ok = "uid 0" not in image and "(empty = root)" not in image
    ok = user is not None and user.split(":")[0] == str(build.NON_ROOT_UID) and not root_ones and image_ok
    observed = (
        f"Dockerfile USER {user}; {len(containers) - len(root_ones)}/{len(containers)} rendered containers "
        f"non-root{' (root: ' + ', '.join(root_ones) + ')' if root_ones else ''}; {image}"
    )
    return verdict(AREA, case, expected=expected, observed=observed, ok=ok, containers=len(containers))


def size_limit_documented(root: Path) -> CaseResult:
    limit = names.MAX_REQUEST_BYTES
    mib = limit / 2**20
    phrase = f"{mib:g} MiB"
    readme = (root / "README.md").read_text(encoding="utf-8")
    sentences = [s.strip() for s in re.split(r"(?<=\.)\s", readme) if phrase in s and "413" in s]
    ok = bool(sentences)
    observed = (
        f"README: \u201c{' '.join(sentences[0].split())}\u201d = names.MAX_REQUEST_BYTES ({limit}); "
        "enforcement: api cases `request size limit`"
        if ok
        else f"README does not state the {phrase} limit with its 413 answer"
    )
    return verdict(
        AREA,
        "request size limit documented",
        expected=f"README states the limit ({phrase}) and the 413 answer, equal to the enforced value",
        observed=observed,
        ok=ok,
    )


def ansible_lint(root: Path) -> CaseResult:
    expected = "ansible-lint, production profile (.ansible-lint): 0 failures, 0 warnings"
    case = "ansible-lint production on ansible/ roles/ molecule/ inventory/"
    bindir = Path(sys.executable).parent
    done = subprocess.run(
        [str(bindir / "ansible-lint"), "ansible", "roles", "molecule", "inventory"],
        cwd=root,
        env={**os.environ, "PATH": f"{bindir}{os.pathsep}{os.environ.get('PATH', '')}", "NO_COLOR": "1"},
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )
    output = done.stdout + done.stderr
    summary = re.search(r"(Passed|Failed):.*", output)
    observed = f"exit {done.returncode}: {summary.group(0) if summary else output.strip()[-200:]}"
    return verdict(AREA, case, expected=expected, observed=observed, ok=done.returncode == 0)


def run_scans(model_tag: str, *, short: bool, progress: Any = lambda _msg: None) -> list[CaseResult]:
    root = project_root()
    results = []
    progress("bandit")
    results.append(bandit_scan(root))
    progress("secret scan")
    results.append(secret_scan(root))
    stacks = ["prod"] if short else ["dev", "staging", "prod"]
    with tempfile.TemporaryDirectory(prefix="mlship-reliability-scan-") as tmp:
        out = Path(tmp)
        dockerfile: Path | None = None
        manifests: list[dict[str, Any]] = []
        try:
            progress("generating the model image's Dockerfile")
            dockerfile = generated_dockerfile(model_tag, out / "dockerfile")
            progress(f"rendering stacks {', '.join(stacks)}")
            manifests = render_stacks(stacks, out / "manifests")
            progress("checkov")
            reports = {r["check_type"]: r for r in run_checkov(out, ["dockerfile", "kubernetes"])}
            for framework, what in (
                ("dockerfile", "the generated Dockerfile"),
                ("kubernetes", f"rendered manifests ({', '.join(stacks)})"),
            ):
                if framework in reports:
                    results.append(checkov_case(reports[framework], what))
                else:
                    results.append(
                        verdict(
                            AREA, f"checkov on {what}", expected="a report", observed="no report", ok=False
                        )
                    )
        except Exception as exc:
            results.append(
                errored(AREA, "checkov (Dockerfile, manifests)", expected="0 failed checks", exc=exc)
            )
        if dockerfile is not None and dockerfile.exists():
            results.append(non_root_case(dockerfile, manifests))
        else:
            results.append(
                verdict(
                    AREA, "containers run as non-root", expected="checked", observed="no Dockerfile", ok=False
                )
            )
    results.append(size_limit_documented(root))
    if short:
        results.append(
            skipped(
                AREA,
                "ansible-lint production",
                expected="0 failures, 0 warnings",
                why="full campaign only (about 3 min); also run by `make test-ansible`",
            )
        )
    else:
        progress("ansible-lint")
        results.append(ansible_lint(root))
    return results
