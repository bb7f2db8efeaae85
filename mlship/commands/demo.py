"""`mlship demo`: the whole job end to end on this machine (what `make demo` runs)."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.console import Console

from mlship.config import load_config
from mlship.errors import ExitCode

app = typer.Typer()


@app.command()
def demo(
    containerize: Annotated[bool, typer.Option(help="also build the container image")] = False,
) -> None:
    """Train, gate, build, run the local environment, release a good and three bad versions."""
    from mlship.local.demo import run_demo

    outcomes = run_demo(load_config(), Console(), containerize=containerize)
    if any(o.decision != o.expected for o in outcomes):
        raise typer.Exit(ExitCode.ERROR)
