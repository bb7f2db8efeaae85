"""`mlship deploy`: `pulumi up` of a stack, refused when it would change a model's stable version unasked."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from mlship.errors import EnvironmentNotReady

app = typer.Typer(help="Deploy a stack (pulumi up) without undoing a promotion.")
console = Console()
err = Console(stderr=True, soft_wrap=True)


@app.command("deploy")
def deploy(
    stack: Annotated[str, typer.Option("--stack", "-s", help="Pulumi stack: dev, staging, prod, ...")],
    stable_from: Annotated[
        str | None,
        typer.Option(
            help="when the stack config and the cluster name different stable versions: `cluster` "
            "deploys the cluster's (and writes it to the stack config), `config` the stack config's"
        ),
    ] = None,
    program: Annotated[
        Path | None, typer.Option(help="Pulumi program directory (default: the repository's pulumi/)")
    ] = None,
) -> None:
    """`pulumi up` of STACK, after checking each model's stable version against the cluster's record.

    A stale checkout (an older tag, a promotion never pushed) would otherwise bring the previous version
    back. Exit code 3 (refused, nothing changed) names the versions and the option to choose.
    """
    from pulumi.automation import errors as automation_errors

    from mlship.canary.backends.kubernetes import AutomationWorkspace, KubernetesApi
    from mlship.k8s import deploy as deployer
    from mlship.k8s.render import load_config as load_stack_config
    from mlship.paths import project_root

    if stable_from not in (None, "cluster", "config"):
        raise typer.BadParameter("--stable-from accepts `cluster` or `config`")
    program = program or project_root() / "pulumi"
    config, _, _ = load_stack_config(stack, program)  # a bad stack file stops here, naming the key
    try:
        workspace = AutomationWorkspace(stack, program, on_output=console.print)
    except automation_errors.StackNotFoundError:
        raise EnvironmentNotReady(
            f"stack {stack} does not exist in the Pulumi backend you are logged into: create it once with "
            f"`pulumi stack init {stack} --cwd {program}` (after `pulumi login`)"
        ) from None
    except FileNotFoundError:
        raise EnvironmentNotReady("the Pulumi CLI is not installed: `make pulumi-cli`") from None
    api = KubernetesApi()
    deployer.deploy(stack, workspace, api, stable_from=stable_from, on_output=err.print)  # type: ignore[arg-type]
    if config.gateway.tls is not None:
        name = config.gateway.tls.secret_name
        if api.get("v1", "Secret", config.namespace, name) is None:
            err.print(
                f"[yellow]warning:[/] the Gateway's HTTPS listener has no certificate yet: create it with "
                f"`kubectl -n {config.namespace} create secret tls {name} --cert=tls.crt --key=tls.key`"
            )
    err.print(f"deployed stack {stack}")
