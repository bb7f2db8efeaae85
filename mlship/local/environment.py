"""`mlship local up|down|status`: the embedded default environment, on this machine, loopback only.

Components (each a real process mlship starts and stops):
  stable / canary  - `bentoml serve` of bento/service.py, one per slot (ports 3001 / 3002); with
                     `local.stable_replicas: 2` a second stable server, slot `stable-2` (port 3003)
  router           - HAProxy on 127.0.0.1:8080, weighted between stable and canary (runtime API)
  prometheus       - Prometheus on 127.0.0.1:9090, scraping servers, router and node exporter,
                     with the project's rule files loaded
  node_exporter    - Debian's prometheus-node-exporter on 127.0.0.1:9100 (host metrics, and the
                     textfile collector through which the canary runner publishes its state)
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from mlship import names
from mlship.config import Config, LocalConfig
from mlship.errors import EnvironmentNotReady, RefusedError
from mlship.local import haproxy, prometheus
from mlship.local.processes import alive, cmdline, free_ports, require_port, spawn, stop, wait_until
from mlship.local.state import Component, EnvState
from mlship.model import approval, registry
from mlship.paths import bentoml_home, project_root, state_dir
from mlship.progress import status

BINARIES = {
    "router": ("haproxy", "haproxy"),
    "prometheus": ("prometheus", "prometheus"),
    "node_exporter": ("prometheus-node-exporter", "prometheus-node-exporter"),
}


@dataclass(frozen=True)
class ComponentStatus:
    name: str
    running: bool
    ready: bool
    pid: int | None
    url: str | None
    version: str | None
    log: str | None


@dataclass(frozen=True)
class CanaryTarget:
    """The canary an active rollout runs and its routing (``up`` restores them, whatever restarted)."""

    version: str
    weight: int  # percent of user traffic
    shadow: bool  # the stable servers mirror requests to it


PORT_KEYS = (
    "proxy_port",
    "router_metrics_port",
    "prometheus_port",
    "stable_port",
    "stable_2_port",
    "canary_port",
    "node_exporter_port",
)


def on_free_ports(local: LocalConfig) -> LocalConfig:
    """``local`` with every port replaced by a free loopback port (tests, benchmarks, campaigns)."""
    return local.model_copy(update=dict(zip(PORT_KEYS, free_ports(len(PORT_KEYS)), strict=True)))


def _port_key(slot: str) -> str:
    """The `mlship.yaml` key setting a slot's port: `stable-2` -> `local.stable_2_port`."""
    return f"local.{slot.replace('-', '_')}_port"


def _http_ok(url: str) -> bool:
    try:
        return httpx.get(url, timeout=1.0, trust_env=False).status_code == 200
    except httpx.HTTPError:
        return False


class LocalEnvironment:
    def __init__(self, config: Config) -> None:
        self.config = config
        self.dir = state_dir() / "local"
        self.state_file = self.dir / "env.json"
        self.logs = self.dir / "logs"
        self.haproxy_cfg = self.dir / "haproxy.cfg"
        self.haproxy_sock = self.dir / "haproxy.sock"
        self.haproxy_state = self.dir / "haproxy.state"
        self.prometheus_cfg = self.dir / "prometheus.yml"
        self.rules_dir = self.dir / "rules"
        self.targets_dir = self.dir / "targets"
        self.textfile_dir = self.dir / "textfile"
        self.shadow_file = self.dir / "shadow.json"
        # One feedback store for every server (WAL + busy timeout): outcomes join whichever server predicted.
        self.feedback_db = self.dir / "feedback" / "feedback.db"

    # --- addresses ---------------------------------------------------------------------------
    @property
    def proxy_url(self) -> str:
        return f"http://127.0.0.1:{self.config.local.proxy_port}"

    @property
    def prometheus_url(self) -> str:
        return f"http://127.0.0.1:{self.config.local.prometheus_port}"

    @property
    def router_metrics_url(self) -> str:
        return f"http://127.0.0.1:{self.config.local.router_metrics_port}/metrics"

    def stable_slots(self) -> list[str]:
        """The slots serving stable traffic: `stable`, and `stable-2` with two stable replicas."""
        return list(names.STABLE_SLOTS[: self.config.local.stable_replicas])

    def slots(self) -> list[str]:
        return [*self.stable_slots(), names.ROLE_CANARY]

    def server_port(self, slot: str) -> int:
        local = self.config.local
        ports = {
            names.ROLE_STABLE: local.stable_port,
            names.SLOT_STABLE_2: local.stable_2_port,
            names.ROLE_CANARY: local.canary_port,
        }
        return ports[slot]

    def server_url(self, slot: str) -> str:
        return f"http://127.0.0.1:{self.server_port(slot)}"

    def router(self) -> haproxy.RuntimeApi:
        return haproxy.RuntimeApi(self.haproxy_sock)

    # --- state -------------------------------------------------------------------------------
    def load(self) -> EnvState:
        return EnvState.load(self.state_file)

    def running(self, name: str, state: EnvState | None = None) -> Component | None:
        comp = (state or self.load()).components.get(name)
        if comp and alive(comp.pid) and comp.argv0 in cmdline(comp.pid):
            return comp
        return None

    # --- prerequisites -------------------------------------------------------------------------
    def check_prerequisites(self, *, stable_version: str | None) -> None:
        """Everything `up` needs, checked before anything is started or written."""
        state = self.load()
        for comp, (binary, package) in BINARIES.items():
            if self.running(comp, state) is None and shutil.which(binary) is None:
                raise EnvironmentNotReady(
                    f"`{binary}` not found: run `make setup` or `apt-get install {package}`"
                )
        ports = {
            **{
                slot: (self.server_port(slot), f"{slot} model server", _port_key(slot))
                for slot in self.stable_slots()
            },
            "router": (self.config.local.proxy_port, "proxy", "local.proxy_port"),
            "router_metrics": (
                self.config.local.router_metrics_port,
                "router metrics",
                "local.router_metrics_port",
            ),
            "prometheus": (self.config.local.prometheus_port, "Prometheus", "local.prometheus_port"),
            "node_exporter": (
                self.config.local.node_exporter_port,
                "node exporter",
                "local.node_exporter_port",
            ),
        }
        for comp, (port, what, setting) in ports.items():
            owner = "router" if comp == "router_metrics" else comp
            if self.running(owner, state) is None:
                require_port(port, what, setting)
        if stable_version is not None:
            registry.resolve(self.config.model.name, stable_version)

    # --- up / down -------------------------------------------------------------------------------
    def up(
        self,
        stable_version: str | None = None,
        *,
        canary: CanaryTarget | None = None,
        force: bool = False,
    ) -> list[ComponentStatus]:
        """Start whatever is not running (also a stable server that died): idempotent.

        An explicit ``stable_version`` must be blessed by the quality gate (Infra 4) unless ``force``; a
        forced start is recorded in the release history with what the model lacked.
        ``canary``: the canary of an active rollout, started if it is not running, with the router's
        weights and the mirroring set as it says (a router starting afresh starts with them).
        """
        state = self.load()
        self._require_router_slots(state)
        current = next(
            (comp for slot in self.stable_slots() if (comp := self.running(slot, state)) is not None), None
        )
        if current is not None and stable_version and not stable_version.endswith(current.version or "?"):
            raise RefusedError(
                f"the local environment already serves {current.version} as stable; release "
                f"{stable_version} with `mlship canary run {stable_version}` (or `mlship local down` first)"
            )
        version = current.version if current and current.version else self._initial_version(stable_version)
        self.check_prerequisites(stable_version=version if current is None else None)
        forced: list[str] = []
        if current is None and stable_version:
            record = registry.resolve(self.config.model.name, version)
            forced = approval.require(record, action=f"serving {version} as stable", force=force)
        for d in (self.logs, self.rules_dir, self.targets_dir, self.textfile_dir):
            d.mkdir(parents=True, exist_ok=True)
        if current is None and canary is None:
            self.shadow_file.unlink(missing_ok=True)
        missing = {slot: version for slot in self.stable_slots() if self.running(slot) is None}
        if canary is not None:
            running = self.running(names.ROLE_CANARY)
            if running is None:
                missing[names.ROLE_CANARY] = canary.version
            elif running.version != canary.version:
                raise RefusedError(
                    f"a canary server runs {running.version} but the active rollout releases "
                    f"{canary.version}: `mlship canary rollback`, then `mlship local up`"
                )
        canary_failure: EnvironmentNotReady | None = None
        if missing:
            try:
                self.start_servers(missing)
            except EnvironmentNotReady as exc:
                if canary is None or any(self.running(slot) is None for slot in self.stable_slots()):
                    raise
                # Only the canary failed: the router, the stable servers and Prometheus still start, with
                # the canary at 0%, so the rollout can be rolled back or its runner can act on it.
                canary_failure, canary = exc, None
        self._start_router(canary)
        if canary is not None:
            self._route(canary)
        self._start_node_exporter()
        self._start_prometheus()
        if forced:
            from mlship.model.releases import Releases

            Releases.load().record(version, "initial (forced)", forced=forced)
        if canary_failure is not None:
            raise canary_failure
        return self.status()

    def _require_router_slots(self, state: EnvState) -> None:
        """A running router routes to the slots it was started with: refuse a changed replica count."""
        if self.running("router", state) is None:
            return
        try:
            routed = set(self.router().servers())
        except haproxy.RouterError:
            return  # a router that does not answer is restarted by nothing here; `status` shows it
        if routed != set(self.slots()):
            raise RefusedError(
                f"the running router routes to {sorted(routed)}, but local.stable_replicas = "
                f"{self.config.local.stable_replicas} needs {sorted(self.slots())}: `mlship local down` first"
            )

    def _initial_version(self, requested: str | None) -> str:
        if requested:
            return registry.resolve(self.config.model.name, requested).version
        from mlship.model.releases import Releases

        stable = Releases.load().stable
        if stable:
            return stable
        models = registry.list_models(self.config.model.name)
        if not models:
            raise EnvironmentNotReady(registry.NO_MODEL)
        return models[0].version

    def down(self) -> list[str]:
        """Stop exactly what `up` (and the canary commands) started; returns what was stopped."""
        state = self.load()
        stopped = []
        servers = (names.ROLE_CANARY, *reversed(names.STABLE_SLOTS))
        for name in (*servers, "router", "prometheus", "node_exporter"):
            comp = state.components.pop(name, None)
            if comp and stop(comp.pid, expect=comp.argv0):
                stopped.append(name)
        state.save(self.state_file)
        self.shadow_file.unlink(missing_ok=True)
        return stopped

    # --- model servers ---------------------------------------------------------------------------
    def start_server(self, slot: str, version: str) -> Component:
        """Start `bentoml serve` for ``version`` in ``slot`` and wait until /readyz says ready."""
        return self.start_servers({slot: version})[slot]

    def start_servers(self, wanted: dict[str, str]) -> dict[str, Component]:
        """Start model servers (slot -> version) together, then wait until each is ready.

        After a reboot every server starts at once: recovery takes the slowest start, not the sum.
        A server that does not become ready is stopped and forgotten; the others are kept.
        """
        state = self.load()
        for slot in wanted:
            if self.running(slot, state):
                raise RefusedError(f"a {slot} server is already running; stop it first")
            require_port(self.server_port(slot), f"{slot} model server", _port_key(slot))
        records = {slot: registry.resolve(self.config.model.name, v) for slot, v in wanted.items()}
        what = ", ".join(f"{s} {r.version} on 127.0.0.1:{self.server_port(s)}" for s, r in records.items())
        started: dict[str, Component] = {}
        failures: list[EnvironmentNotReady] = []
        with status(f"starting model servers: {what}"):
            spawned = {
                slot: self._spawn_component(
                    slot,
                    *self._server_command(slot, record),
                    argv0="service:ModelService",
                    port=self.server_port(slot),
                    version=record.version,
                )
                for slot, record in records.items()
            }
            for slot, comp in spawned.items():
                try:
                    started[slot] = self._await_component(
                        slot,
                        comp,
                        ready_url=f"{self.server_url(slot)}/readyz",
                        timeout=self.config.local.start_timeout_s,
                        what=f"{slot} model server",
                    )
                except EnvironmentNotReady as exc:
                    failures.append(exc)
        self._write_targets(self.load())
        if failures:
            raise failures[0]
        return started

    def _server_command(self, slot: str, record: registry.ModelRecord) -> tuple[list[str], dict[str, str]]:
        """`bentoml serve` of bento/service.py for ``slot``, and its environment."""
        bentoml = Path(sys.executable).with_name("bentoml")
        argv = [
            str(bentoml),
            "serve",
            "service:ModelService",
            "--host",
            "127.0.0.1",
            "--port",
            str(self.server_port(slot)),
            "--working-dir",
            str(project_root() / "bento"),
            # longer than the router's idle pool (mlship/local/haproxy.py): no reuse race
            "--timeout-keep-alive",
            str(names.SERVER_KEEP_ALIVE_S),
        ]
        role = names.role_of(slot)
        env = {
            "BENTOML_HOME": str(self._server_home(slot)),
            "BENTOML_DO_NOT_TRACK": "True",
            "MLSHIP_MODEL_NAME": record.name,
            "MLSHIP_MODEL_TAG": record.tag,
            "MLSHIP_ROLE": role,
            "MLSHIP_WORKERS": str(self.config.local.workers),
            "MLSHIP_FEEDBACK_DB": str(self.feedback_db),
            "MLSHIP_FEEDBACK_RETENTION_DAYS": str(self.config.feedback.retention_days),
        }
        if role == names.ROLE_STABLE:
            env["MLSHIP_SHADOW_FILE"] = str(self.shadow_file)
        return argv, env

    def _start_component(
        self,
        name: str,
        argv: list[str],
        *,
        argv0: str,
        port: int,
        ready_url: str,
        timeout: float,
        what: str,
        env: dict[str, str] | None = None,
        version: str | None = None,
    ) -> Component:
        """Spawn one component, record it in the state file and wait until ``ready_url`` answers 200.

        ``argv0`` is what its command line must contain for ``running`` to recognise it (a recycled
        pid is never mistaken for it). A component that does not become ready is stopped and forgotten,
        so the state file never names a process that is not serving.
        """
        comp = self._spawn_component(name, argv, env, argv0=argv0, port=port, version=version)
        return self._await_component(name, comp, ready_url=ready_url, timeout=timeout, what=what)

    def _spawn_component(
        self,
        name: str,
        argv: list[str],
        env: dict[str, str] | None,
        *,
        argv0: str,
        port: int,
        version: str | None = None,
    ) -> Component:
        log = self.logs / f"{name}.log"
        proc = spawn(name, argv, log=log, env=env)
        comp = Component(pid=proc.pid, log=str(log), argv0=argv0, port=port, version=version)
        state = self.load()
        state.components[name] = comp
        state.save(self.state_file)
        return comp

    def _await_component(
        self, name: str, comp: Component, *, ready_url: str, timeout: float, what: str
    ) -> Component:
        log = Path(comp.log)
        try:
            wait_until(lambda: _http_ok(ready_url), timeout=timeout, what=what, pid=comp.pid, log=log)
        except EnvironmentNotReady:
            stop(comp.pid)
            state = self.load()
            state.components.pop(name, None)
            state.save(self.state_file)
            raise
        return comp

    def _server_home(self, slot: str) -> Path:
        """A BENTOML_HOME per server, sharing the project's model store.

        BentoML keeps its Prometheus multiprocess files in $BENTOML_HOME/prometheus_multiproc_dir and
        serves every file there on /metrics: two servers sharing a home would report each other's
        samples (and wipe them on start). Each server gets its own home whose `models` is the store.
        """
        home = self.dir / f"bentoml-{slot}"
        home.mkdir(parents=True, exist_ok=True)
        link = home / "models"
        store = bentoml_home() / "models"
        store.mkdir(parents=True, exist_ok=True)
        if not link.is_symlink():
            link.symlink_to(store, target_is_directory=True)
        shutil.rmtree(home / "prometheus_multiproc_dir", ignore_errors=True)
        return home

    def stop_server(self, slot: str) -> bool:
        state = self.load()
        comp = state.components.pop(slot, None)
        stopped = bool(comp and stop(comp.pid, expect=comp.argv0))
        state.save(self.state_file)
        self._write_targets(state)
        return stopped

    def _write_targets(self, state: EnvState) -> None:
        servers = {
            slot: (names.role_of(slot), comp.port or self.server_port(slot))
            for slot, comp in state.components.items()
            if slot in names.SLOTS and self.running(slot, state)
        }
        prometheus.write_model_targets(self.targets_dir, servers)

    # --- shadow ----------------------------------------------------------------------------------
    def set_shadow(self, candidate_version: str | None) -> None:
        """Tell the stable server to mirror requests to the canary slot (None: stop mirroring)."""
        if candidate_version is None:
            self.shadow_file.unlink(missing_ok=True)
            return
        tmp = self.shadow_file.with_suffix(".tmp")
        tmp.write_text(
            json.dumps({"url": self.server_url(names.ROLE_CANARY), "candidate_version": candidate_version})
        )
        tmp.replace(self.shadow_file)

    # --- canary of an active rollout ------------------------------------------------------------------
    def _route(self, canary: CanaryTarget) -> None:
        """Weights and mirroring as ``canary`` says, on a running router (runtime API, no reload)."""
        router = self.router()
        server = router.servers().get(names.ROLE_CANARY)
        if server is not None and server.admin_maint:
            router.set_state(names.ROLE_CANARY, "ready")
        router.set_weights(canary.weight, self.stable_slots())
        self.set_shadow(canary.version if canary.shadow else None)

    # --- router ------------------------------------------------------------------------------------
    def _start_router(self, canary: CanaryTarget | None = None) -> None:
        state = self.load()
        if self.running("router", state):
            return
        # The weights `RuntimeApi.set_weights` would set: a router restarted mid-rollout routes the
        # rollout's share to the canary from its first request.
        percent = canary.weight if canary is not None else 0
        stable_slots = self.stable_slots()
        text = haproxy.render_config(
            self.config.local,
            socket_path=self.haproxy_sock,
            servers={slot: self.server_port(slot) for slot in self.slots()},
            weights={
                **dict.fromkeys(stable_slots, 100 - percent),
                names.ROLE_CANARY: percent * len(stable_slots),
            },
            state_file=self.haproxy_state,
        )
        self.haproxy_state.unlink(missing_ok=True)  # a fresh router starts from the file's weights
        self.haproxy_cfg.write_text(text, encoding="utf-8")
        check = subprocess.run(
            ["haproxy", "-c", "-q", "-f", str(self.haproxy_cfg)], capture_output=True, text=True
        )
        if check.returncode != 0:
            raise EnvironmentNotReady(f"generated HAProxy config is invalid:\n{check.stderr.strip()}")
        self._start_component(
            "router",
            ["haproxy", "-W", "-db", "-f", str(self.haproxy_cfg)],
            argv0=str(self.haproxy_cfg),
            port=self.config.local.proxy_port,
            ready_url=self.router_metrics_url,
            timeout=20,
            what="HAProxy",
        )

    def reload_router(self) -> None:
        """Graceful reload (SIGUSR2 to the master): new workers take over, in-flight requests finish.

        The runtime state (weights, maintenance) is saved first and loaded by the new workers, so a
        reload never moves traffic; returns once the new workers answer on the runtime API.
        """
        comp = self.running("router")
        if comp is None:
            raise RefusedError("the router is not running: `mlship local up`")
        self.haproxy_state.write_text(self.router().command("show servers state"), encoding="utf-8")
        os.kill(comp.pid, signal.SIGUSR2)  # not 10: that is SIGUSR1, a graceful *stop*
        wait_until(self._router_answers, timeout=20, what="HAProxy after reload")

    def _router_answers(self) -> bool:
        try:
            return bool(self.router().servers())
        except haproxy.RouterError:
            return False

    # --- node exporter -------------------------------------------------------------------------------
    def _start_node_exporter(self) -> None:
        state = self.load()
        if self.running("node_exporter", state):
            return
        port = self.config.local.node_exporter_port
        argv = [
            "prometheus-node-exporter",
            f"--web.listen-address=127.0.0.1:{port}",
            f"--collector.textfile.directory={self.textfile_dir}",
        ]
        self._start_component(
            "node_exporter",
            argv,
            argv0="node-exporter",
            port=port,
            ready_url=f"http://127.0.0.1:{port}/metrics",
            timeout=20,
            what="node exporter",
        )

    # --- prometheus ----------------------------------------------------------------------------------
    def write_rules(self) -> list[Path]:
        from mlship.monitoring.rules import write_rule_files

        for old in self.rules_dir.glob("*.yml"):
            old.unlink()
        return write_rule_files(self.rules_dir, self.config)

    def _start_prometheus(self) -> None:
        state = self.load()
        self.write_rules()
        self._write_targets(state)
        self.prometheus_cfg.write_text(
            prometheus.render_config(self.config, targets_dir=self.targets_dir, rules_dir=self.rules_dir),
            encoding="utf-8",
        )
        check = subprocess.run(
            ["promtool", "check", "config", str(self.prometheus_cfg)], capture_output=True, text=True
        )
        if check.returncode != 0:
            raise EnvironmentNotReady(
                f"Prometheus config or rules invalid:\n{(check.stdout + check.stderr).strip()}"
            )
        if (comp := self.running("prometheus", state)) is not None:
            os.kill(comp.pid, 1)  # SIGHUP: reload config and rules
            return
        argv = [
            "prometheus",
            f"--config.file={self.prometheus_cfg}",
            f"--storage.tsdb.path={self.dir / 'prometheus-data'}",
            f"--web.listen-address=127.0.0.1:{self.config.local.prometheus_port}",
            "--storage.tsdb.retention.time=7d",
            "--web.enable-lifecycle",
        ]
        self._start_component(
            "prometheus",
            argv,
            argv0=str(self.prometheus_cfg),
            port=self.config.local.prometheus_port,
            ready_url=f"{self.prometheus_url}/-/ready",
            timeout=30,
            what="Prometheus",
        )

    # --- status --------------------------------------------------------------------------------------
    def status(self) -> list[ComponentStatus]:
        state = self.load()
        checks: dict[str, tuple[str | None, str | None]] = {
            **{slot: (self.server_url(slot), f"{self.server_url(slot)}/readyz") for slot in self.slots()},
            "router": (self.proxy_url, self.router_metrics_url),
            "prometheus": (self.prometheus_url, f"{self.prometheus_url}/-/ready"),
            "node_exporter": (
                f"http://127.0.0.1:{self.config.local.node_exporter_port}",
                f"http://127.0.0.1:{self.config.local.node_exporter_port}/metrics",
            ),
        }
        out = []
        for name, (url, ready_url) in checks.items():
            comp = self.running(name, state)
            out.append(
                ComponentStatus(
                    name=name,
                    running=comp is not None,
                    ready=bool(comp and ready_url and _http_ok(ready_url)),
                    pid=comp.pid if comp else None,
                    url=url if comp else None,
                    version=comp.version if comp else None,
                    log=comp.log if comp else None,
                )
            )
        return out

    def status_dict(self) -> dict[str, Any]:
        return {
            "proxy_url": self.proxy_url,
            "prometheus_url": self.prometheus_url,
            "state_dir": str(self.dir),
            "components": {s.name: s.__dict__ for s in self.status()},
        }
