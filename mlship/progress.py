"""Progress and status lines for long operations (rich), quiet when stdout is not a terminal."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager

from rich.console import Console

console = Console(stderr=True)


@contextmanager
def status(message: str) -> Iterator[None]:
    """Show a spinner with ``message`` while the block runs; log the step when not on a terminal."""
    if console.is_terminal:
        with console.status(message):
            yield
    else:
        print(f"... {message}", file=sys.stderr, flush=True)
        yield
