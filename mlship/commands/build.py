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
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Build the Bento of a model; with --containerize, its non-root container image."""
    config = load_config()
    result = builder.build(
        model,
        model_name=config.model.name,
        containerize_image=containerize,
        base_image=base_image,
        offline=offline,
        ca_bundle=ca_bundle,
    )
    if as_json:
        typer.echo(json.dumps(result.__dict__))
        return
    console.print(f"bento [bold]{result.bento_tag}[/] with model {result.model_tag}")
    if result.image:
        size = (result.image_size_bytes or 0) / 1e6
        console.print(f"image [bold]{result.image}[/] ({size:.0f} MB), runs as uid {builder.NON_ROOT_UID}")
