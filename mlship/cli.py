"""`mlship` command line: one typer sub-application per concern, each in mlship/commands/."""

from __future__ import annotations

import importlib
import sys
from typing import NoReturn

import typer
from rich.console import Console

from mlship.errors import ExitCode, MlshipError
from mlship.paths import use_project_bentoml_home

# (module under mlship.commands, sub-command name or None to add its commands at top level)
COMMAND_MODULES: list[tuple[str, str | None]] = [
    ("images", "images"),
    ("model", "model"),
    ("local", "local"),
    ("load", None),
    ("build", None),
    ("demo", None),
    ("canary", "canary"),
    ("render", None),
    ("preflight", None),
    ("deploy", None),
    ("drift", None),
    ("score", None),
    ("feedback", "feedback"),
]

app = typer.Typer(
    name="mlship",
    help="Take a trained ML model to production and keep it healthy there.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)


def _register() -> None:
    for module_name, group in COMMAND_MODULES:
        module = importlib.import_module(f"mlship.commands.{module_name}")
        if group is None:
            app.registered_commands.extend(module.app.registered_commands)
        else:
            app.add_typer(module.app, name=group)


_register()


def _fail(message: str, code: int) -> NoReturn:
    # soft_wrap: the message stays one line whatever the terminal width (logs, CI, grep).
    Console(stderr=True).print(f"[bold red]error:[/] {message}", highlight=False, soft_wrap=True)
    sys.exit(code)


def main() -> None:
    """Entry point: MlshipError becomes one clear message and its exit code, never a traceback."""
    # BentoML reads BENTOML_HOME when first imported (lazily, inside commands): set it first.
    try:
        use_project_bentoml_home()
    except OSError as exc:
        _fail(
            f"cannot use the state folder {exc.filename}: {exc.strerror}; "
            "set MLSHIP_STATE_DIR to a writable folder",
            ExitCode.NOT_READY,
        )
    try:
        app()
    except MlshipError as exc:
        _fail(str(exc), exc.exit_code)
    except OSError as exc:
        # A file or folder the command was pointed at: say which, in one line.
        _fail(f"{exc.strerror or exc}: {exc.filename}" if exc.filename else str(exc), ExitCode.ERROR)
