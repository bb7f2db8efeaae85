"""`mlship build`: the Bento (and, with --containerize, the container image) of a model."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from mlship import build as builder
from mlship.config import load_config

app = typer.Typer()
console = Console()


@app.command()
def build(
    model: Annotated[str | None, typer.Option(help="model version (default: the newest registered)")] = None,
    containerize: Annotated[bool, typer.Option(help="also build the container image with Docker")] = False,
    offline: Annotated[
        bool, typer.Option(help="never contact a registry (the default base image is local)")
    ] = False,
    base_image: Annotated[
        str | None, typer.Option(help="use this base image instead of the local Debian one")
    ] = None,
    ca_bundle: Annotated[Path | None, typer.Option(help="CA bundle trusted inside the image")] = None,
    stack: Annotated[
        str | None,
        typer.Option("--stack", "-s", help="tag the image <the stack's image repository>:<model version>"),
    ] = None,
    image_repository: Annotated[
        str | None, typer.Option(help="image repository (default: the stack's, else mlship-model)")
    ] = None,
    push: Annotated[bool, typer.Option(help="push the image to its registry")] = False,
    export: Annotated[
        Path | None,
        typer.Option(help="save the image as DIR/<name>_<version>.tar and record it in DIR/SHA256SUMS"),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Build the Bento of a model; with --containerize, its non-root container image.

    The image is tagged <repository>:<model version>, the version the stack config names and the model
    the image serves. --push sends it to the registry; --export writes a checksummed tarball for an
    air-gapped cluster (the Ansible air-gap path imports it into k3s).
    """
    config = load_config()
    if stack is not None and image_repository is None:
        image_repository = builder.stack_image_repository(stack, config.model.name)
    result = builder.build(
        model,
        model_name=config.model.name,
        containerize_image=containerize,
        base_image=base_image,
        offline=offline,
        ca_bundle=ca_bundle,
        image_repository=image_repository,
        push=push,
        export_dir=export,
    )
    if as_json:
        typer.echo(json.dumps(result.__dict__))
        return
    console.print(f"bento [bold]{result.bento_tag}[/] with model {result.model_tag}")
    if result.image:
        size = (result.image_size_bytes or 0) / 1e6
        console.print(f"image [bold]{result.image}[/] ({size:.0f} MB), runs as uid {builder.NON_ROOT_UID}")
    if result.pushed_digest:
        console.print(f"pushed [bold]{result.pushed_digest}[/] (pin it: mlship:models[].digests)")
    if result.exported:
        console.print(
            f"saved {result.exported}, listed in {Path(result.exported).parent / builder.CHECKSUMS}"
        )
    if result.image and stack is not None:
        console.print(f"next: `mlship preflight --stack {stack}` runs it as the stack's pods do")
