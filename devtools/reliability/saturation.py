"""Saturation: wrk drives the proxy with as many requests as it can take, through N connections.

wrk (closed loop, `--latency`) reports throughput and latency percentiles; a Lua script counts every
HTTP status, so 5xx answers are counted exactly, and wrk's socket errors count requests that got no
answer at all. The model server's memory (RSS of its whole process tree) is read after a warm-up and
after the run: a server that leaks under load grows between the two.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import psutil

from mlship import names
from mlship.errors import EnvironmentNotReady
from mlship.local.environment import LocalEnvironment

# Counts every status per wrk thread; done() sums the threads and prints one parsable line.
LUA_SCRIPT = """
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.body = [==[%BODY%]==]
local threads = {}
function setup(thread) table.insert(threads, thread) end
function init(args) counts = {} end
function response(status, headers, body)
  local key = tostring(status)
  counts[key] = (counts[key] or 0) + 1
end
function done(summary, latency, requests)
  local total = {}
  for _, t in ipairs(threads) do
    for k, v in pairs(t:get("counts")) do total[k] = (total[k] or 0) + v end
  end
  io.write("MLSHIP_STATUS")
  for k, v in pairs(total) do io.write(" " .. k .. "=" .. v) end
  io.write("\\n")
end
"""
UNITS_MS = {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60_000.0}
# After a warm-up at the same concurrency, the server's memory may move a little, not grow.
MEMORY_GROWTH_LIMIT = 1.2


@dataclass(frozen=True)
class WrkResult:
    requests: int
    seconds: float
    rps: float
    latency_ms: dict[str, float]
    status_counts: dict[int, int]
    socket_errors: dict[str, int] = field(default_factory=dict)

    @property
    def server_errors(self) -> int:
        return sum(n for code, n in self.status_counts.items() if code >= 500)

    @property
    def unanswered(self) -> int:
        return sum(self.socket_errors.values())


def _ms(value: str, unit: str) -> float:
    return float(value) * UNITS_MS[unit]


def parse_wrk(text: str) -> WrkResult:
    """Parse wrk 4's `--latency` report plus the Lua script's status line."""
    total = re.search(r"(\d+) requests in ([\d.]+)(us|ms|s|m),", text)
    rps = re.search(r"Requests/sec:\s+([\d.]+)", text)
    if total is None or rps is None:
        raise ValueError(f"unexpected wrk output:\n{text.strip()}")
    latency = {
        f"p{pct}": round(_ms(value, unit), 2)
        for pct, value, unit in re.findall(
            r"^\s+(50|75|90|99)%\s+([\d.]+)(us|ms|s|m)\s*$", text, re.MULTILINE
        )
    }
    statuses: dict[int, int] = {}
    status_line = re.search(r"^MLSHIP_STATUS(.*)$", text, re.MULTILINE)
    if status_line:
        for code, count in re.findall(r"(\d+)=(\d+)", status_line.group(1)):
            statuses[int(code)] = int(count)
    errors: dict[str, int] = {}
    socket = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", text)
    if socket:
        errors = dict(zip(("connect", "read", "write", "timeout"), map(int, socket.groups()), strict=True))
    return WrkResult(
        requests=int(total.group(1)),
        seconds=_ms(total.group(2), total.group(3)) / 1000,
        rps=float(rps.group(1)),
        latency_ms=latency,
        status_counts=statuses,
        socket_errors=errors,
    )


def run_wrk(
    url: str, body: Mapping[str, object], *, seconds: float, connections: int, threads: int = 2
) -> WrkResult:
    """POST ``body`` as JSON to ``url`` for ``seconds`` through ``connections`` connections."""
    wrk = shutil.which("wrk")
    if wrk is None:
        raise EnvironmentNotReady("`wrk` not found: run `make setup` or `apt-get install wrk`")
    with tempfile.TemporaryDirectory(prefix="mlship-wrk-") as tmp:
        script = Path(tmp) / "post.lua"
        script.write_text(LUA_SCRIPT.replace("%BODY%", json.dumps(body)), encoding="utf-8")
        done = subprocess.run(
            [
                wrk,
                f"-t{threads}",
                f"-c{connections}",
                f"-d{max(1, round(seconds))}s",
                "--latency",
                "--timeout",
                "10s",
                "-s",
                str(script),
                url,
            ],
            capture_output=True,
            text=True,
            timeout=seconds + 60,
            check=False,
        )
    if done.returncode != 0:
        raise EnvironmentNotReady(f"wrk failed ({done.returncode}): {done.stderr.strip() or done.stdout}")
    return parse_wrk(done.stdout)


def tree_rss_bytes(pid: int) -> int:
    """Resident memory of a process and all its descendants (BentoML serves from worker children)."""
    root = psutil.Process(pid)
    total = 0
    for proc in [root, *root.children(recursive=True)]:
        try:
            total += proc.memory_info().rss
        except psutil.NoSuchProcess:
            continue
    return total


def router_5xx(env: LocalEnvironment) -> int:
    """5xx answers the proxy's frontend has sent so far (HAProxy `show stat`, hrsp_5xx)."""
    text = env.router().command("show stat")
    header = text.splitlines()[0].lstrip("# ").split(",")
    for line in text.splitlines()[1:]:
        row = dict(zip(header, line.split(","), strict=False))
        if row.get("pxname") == "model_api" and row.get("svname") == "FRONTEND":
            return int(row.get("hrsp_5xx") or 0)
    return 0


@dataclass(frozen=True)
class Saturation:
    warmup: WrkResult
    run: WrkResult
    rss_before: int
    rss_after: int
    router_5xx: int
    connections: int

    @property
    def memory_ratio(self) -> float:
        return self.rss_after / self.rss_before if self.rss_before else float("inf")


def saturate(
    env: LocalEnvironment,
    row: Mapping[str, object],
    *,
    seconds: float,
    connections: int,
    warmup_s: float = 3.0,
) -> Saturation:
    """Warm up, read the stable server's memory, saturate for ``seconds``, read it again."""
    stable = env.running(names.ROLE_STABLE)
    if stable is None:
        raise EnvironmentNotReady("the stable model server is not running")
    url = env.proxy_url + names.ENDPOINT_PREDICT
    warmup = run_wrk(url, row, seconds=warmup_s, connections=connections)
    rss_before = tree_rss_bytes(stable.pid)
    router_before = router_5xx(env)
    run = run_wrk(url, row, seconds=seconds, connections=connections)
    return Saturation(
        warmup=warmup,
        run=run,
        rss_before=rss_before,
        rss_after=tree_rss_bytes(stable.pid),
        router_5xx=router_5xx(env) - router_before,
        connections=connections,
    )
