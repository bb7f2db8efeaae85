"""`mlship images build`: offline base images from a Debian rootfs."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from mlship import images

app = typer.Typer(help="Base images built from a Debian rootfs (no registry needed).", no_args_is_help=True)


@app.command("build")
def build(
    which: Annotated[list[str] | None, typer.Argument(help="systemd, python (default: both)")] = None,
    ca_bundle: Annotated[
        Path | None,
        typer.Option(help="CA bundle to trust inside the image (default: the one pip uses on this machine)"),
    ] = None,
    mirror: Annotated[str, typer.Option(help="Debian mirror")] = images.DEFAULT_MIRROR,
    force: Annotated[bool, typer.Option(help="rebuild even if the spec is unchanged")] = False,
) -> None:
    """Build (or reuse) the base images; prints their references."""
    names = which or sorted(images.IMAGES)
    unknown = [n for n in names if n not in images.IMAGES]
    if unknown:
        raise typer.BadParameter(f"unknown image {unknown}; choose from {sorted(images.IMAGES)}")
    bundle = ca_bundle or images.default_ca_bundle()
    for name in names:
        typer.echo(images.ensure_image(images.IMAGES[name], ca_bundle=bundle, mirror=mirror, force=force))
