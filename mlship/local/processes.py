"""Start, find and stop the local environment's processes (each its own session, pid and log file)."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from mlship.errors import EnvironmentNotReady


@dataclass(frozen=True)
class Proc:
    name: str
    pid: int
    log: Path


def port_free(port: int, host: str = "127.0.0.1") -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return False
        return True


def free_ports(n: int) -> list[int]:
    """``n`` distinct free loopback ports (held open together while choosing, then released)."""
    socks = []
    try:
        for _ in range(n):
            sock = socket.socket()
            sock.bind(("127.0.0.1", 0))
            socks.append(sock)
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


def require_port(port: int, what: str, setting: str) -> None:
    if not port_free(port):
        raise EnvironmentNotReady(
            f"port 127.0.0.1:{port} ({what}) is taken by another process: stop it "
            f"(`ss -ltnp 'sport = :{port}'` shows which) or set `{setting}` in mlship.yaml"
        )


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A zombie (exited, not yet reaped) is not alive for our purposes.
    try:
        state = Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0]
    except OSError:
        return False
    return state != "Z"


def cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


def spawn(
    name: str, argv: list[str], *, log: Path, env: dict[str, str] | None = None, cwd: Path | None = None
) -> Proc:
    """Start ``argv`` detached in its own session, stdout+stderr appended to ``log``."""
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("ab") as out:
        proc = subprocess.Popen(
            argv,
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env={**os.environ, **(env or {})},
            cwd=cwd,
            start_new_session=True,
        )
    return Proc(name=name, pid=proc.pid, log=log)


def descendants(pid: int) -> list[int]:
    """Every live process below ``pid`` (BentoML's workers start their own process groups)."""
    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        with contextlib.suppress(OSError, ValueError, IndexError):
            fields = stat.read_text().rsplit(")", 1)[1].split()
            children.setdefault(int(fields[1]), []).append(int(stat.parent.name))
    found, todo = [], [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found


def kill_tree(pid: int, sig: int = signal.SIGKILL) -> list[int]:
    """Send ``sig`` to ``pid``, its process group and every descendant; returns the pids signalled."""
    tree = [pid, *descendants(pid)]
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, sig)
    for member in tree:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(member, sig)
    return tree


def stop(pid: int, *, timeout: float = 15.0, expect: str | None = None) -> bool:
    """SIGTERM the process tree of ``pid``, SIGKILL what is left after ``timeout``.

    Returns True if it was running. ``expect``: a substring the command line must contain (never kill a
    recycled pid). Descendants are collected first: a worker that outlived its parent would keep the
    port open.
    """
    if not alive(pid) or (expect is not None and expect not in cmdline(pid)):
        return False
    tree = [pid, *descendants(pid)]
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        _reap(pid)
        if not any(alive(p) for p in tree):
            return True
        time.sleep(0.1)
    for member in tree:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(member, signal.SIGKILL)
    for _ in range(50):
        _reap(pid)
        if not any(alive(p) for p in tree):
            break
        time.sleep(0.1)
    return True


def _reap(pid: int) -> None:
    with contextlib.suppress(ChildProcessError, OSError):
        os.waitpid(pid, os.WNOHANG)


def wait_until(
    check: Callable[[], bool], *, timeout: float, what: str, pid: int | None = None, log: Path | None = None
) -> None:
    """Poll ``check`` until it is true; fail early if ``pid`` dies, with the log's tail in the error."""
    deadline = time.monotonic() + timeout
    delay = 0.05
    while time.monotonic() < deadline:
        if check():
            return
        if pid is not None and not alive(pid):
            raise EnvironmentNotReady(f"{what} exited during start-up{_tail(log)}")
        time.sleep(delay)
        delay = min(delay * 1.5, 0.5)
    raise EnvironmentNotReady(f"{what} not ready after {timeout:.0f}s{_tail(log)}")


def _tail(log: Path | None, lines: int = 12) -> str:
    if log is None or not log.exists():
        return ""
    text = log.read_text(errors="replace").strip().splitlines()[-lines:]
    return f"; last lines of {log}:\n  " + "\n  ".join(text)
