"""Background user traffic through the proxy (mlship.local.load, open loop), counting every lost request."""

from __future__ import annotations

import threading
from collections.abc import Mapping, Sequence
from types import TracebackType
from typing import Any

from mlship.local import load


class Traffic:
    """Constant-rate traffic in a thread; ``lost`` = 5xx answers + requests that got no answer."""

    def __init__(self, proxy_url: str, rows: Sequence[Mapping[str, Any]], rps: float) -> None:
        self.proxy_url = proxy_url
        self.rows = rows
        self.rps = rps
        self.report = load.LoadReport(target=proxy_url, rps=rps, duration_s=3600)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def __enter__(self) -> Traffic:
        self._thread = threading.Thread(
            target=load.run_load,
            args=(self.proxy_url, self.rows),
            kwargs={"rps": self.rps, "duration_s": 3600, "stop": self._stop, "report": self.report},
            daemon=True,
        )
        self._thread.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=30)

    @property
    def sent(self) -> int:
        return self.report.sent

    @property
    def lost(self) -> int:
        return self.report.server_errors + self.report.failed

    @property
    def unanswered(self) -> int:
        """Requests that got no HTTP answer at all (connection refused or reset, timeout)."""
        return self.report.failed

    def mark(self) -> tuple[int, int, int]:
        """(sent, lost, unanswered) now, to count what happens between two marks."""
        return self.sent, self.lost, self.unanswered

    def since(self, mark: tuple[int, int, int]) -> tuple[int, int]:
        """(sent, lost) since ``mark``."""
        return self.sent - mark[0], self.lost - mark[1]

    def unanswered_since(self, mark: tuple[int, int, int]) -> int:
        return self.unanswered - mark[2]
