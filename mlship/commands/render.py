"""`mlship render`: what `pulumi up` would create, rendered offline under Pulumi's mocks."""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Annotated

import typer

from mlship.errors import ValidationFailed
from mlship.progress import status

app = typer.Typer(help="Render the Kubernetes environment offline.")


@app.command("render")
def render(
    stack: Annotated[str, typer.Option("--stack", "-s", help="Pulumi stack: dev, staging, prod, ...")],
    out: Annotated[Path, typer.Option("--out", "-o", help="directory for the YAML files (one per object)")],
    program: Annotated[
        Path | None, typer.Option(help="Pulumi program directory (default: the repository's pulumi/)")
    ] = None,
    validate: Annotated[
        bool, typer.Option(help="check core kinds (kubernetes-validate) and CRD instances (schemas)")
    ] = True,
) -> None:
    """Run the Pulumi program of STACK under mocks and write every Kubernetes object as YAML.

    Nothing is deployed and no cluster or Pulumi CLI is needed. The stack file is validated first:
    a bad value stops here, naming the key.
    """
    from mlship.k8s import render as renderer
    from mlship.k8s import validate as validation
    from mlship.paths import project_root

    program = program or project_root() / "pulumi"
    with status(f"rendering stack {stack} from {program}/ under Pulumi mocks"):
        result = renderer.run_program(stack, program)
        written = renderer.write(result, out)
    kinds = Counter(m["kind"] for m in result.manifests)
    typer.echo(
        f"{len(result.manifests)} objects and {len(result.releases)} Helm releases written to {out}/ "
        f"({len(written)} files)"
    )
    typer.echo("  " + ", ".join(f"{kind} {n}" for kind, n in sorted(kinds.items())))
    if result.secret_paths:
        typer.echo(f"  {len(result.secret_paths)} secret value(s) redacted")
    if not validate:
        return
    with status(f"validating against Kubernetes {validation.KUBERNETES_VERSION} and the CRD schemas"):
        core, custom, problems = validation.validate_all(result.manifests, program / "crds")
    if problems:
        raise ValidationFailed(
            f"{len(problems)} validation problem(s):\n" + "\n".join(f"  {p}" for p in problems)
        )
    typer.echo(
        f"valid: {core} objects against Kubernetes {validation.KUBERNETES_VERSION} (strict), "
        f"{custom} custom resources against their CRD schemas"
    )
