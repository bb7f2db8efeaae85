"""`mlship preflight`: run the stack's rendered model pods in the local Docker engine, as the pod spec says.

The stack is rendered under Pulumi's mocks (what ``pulumi up`` would create); each model Deployment's pod
(stable and, during a release, canary) is then started with Docker translated from its spec:

  image (imagePullPolicy IfNotPresent: used if here, else pulled when its repository names a registry, as
  the kubelet would), command/args, env, runAsUser/runAsGroup -> --user, fsGroup -> --group-add,
  runAsNonRoot -> the uid is checked, readOnlyRootFilesystem -> --read-only, emptyDir -> a Docker volume
  on disk prepared as the kubelet prepares an emptyDir (mode 0777, group fsGroup with setgid, the image's
  files hidden), or --tmpfs for ``medium: Memory`` (tmpfs pages count against the memory limit, in the
  kernel's cgroup as in the kubelet's), capabilities.drop ALL -> --cap-drop ALL, allowPrivilegeEscalation
  false -> --security-opt no-new-privileges, limits -> --memory/--cpus with --memory-swap equal to --memory
  (the kubelet runs pods without swap: Docker would otherwise allow as much swap again), and the
  namespace's NetworkPolicy (no egress for model pods) -> an internal Docker network (no route out, no DNS).

Then, from inside the pod's network (``docker exec``; kubelet probes the pod IP, so the server must
answer on the pod's address, not only on loopback): the startup probe within its failureThreshold x
periodSeconds, the liveness and readiness probes within their timeouts, one valid prediction answered by
the version the image tag and MLSHIP_MODEL_TAG name, an invalid one answered 4xx naming the field, the
metrics the ServiceMonitor scrapes (its port and path) with the series the canary analysis, the rules and
the dashboards read, and no label that ``honorLabels`` would let override a target label. Probes run on the
kubelet's schedule: the first after initialDelaySeconds, then every periodSeconds, each answer within
timeoutSeconds; the startup probe gets failureThreshold attempts, liveness and readiness must not fail
failureThreshold times in a row, readiness needs successThreshold successes in a row. Last, the pod stops as
the kubelet stops it: the preStop hook first (the server must still answer during it), then SIGTERM, all
within terminationGracePeriodSeconds.

What it cannot show: scheduling, the kubelet's probe timing under load, an emptyDir's sizeLimit (the kubelet
evicts a pod over it; a Docker volume has no limit), the gateway and NetworkPolicy enforcement by the CNI
(k3s: flannel + kube-router's policy controller).
"""

from __future__ import annotations

import json
import os
import subprocess
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from prometheus_client.parser import text_string_to_metric_families

from mlship import names
from mlship.errors import EnvironmentNotReady
from mlship.k8s import naming
from mlship.k8s import render as renderer
from mlship.k8s.stack_config import parse_quantity, read_stack_file

PREFIX = "mlship-preflight"
# Labels the Prometheus Operator (or the ServiceMonitor's relabelings) puts on every target. With
# honorLabels a scraped series carrying one of them would override the target's.
TARGET_LABELS = frozenset(
    {"namespace", "service", "pod", "container", "job", "instance", "node", "role", "model"}
)
# What the canary analysis, the rules and the dashboards read from a model server.
REQUIRED_SERIES = (
    names.METRIC_BENTO_REQUESTS,
    f"{names.METRIC_BENTO_DURATION}_bucket",
    f"{names.METRIC_PREDICTION}_bucket",
    names.METRIC_REJECTED,
    names.METRIC_MODEL_INFO,
    names.METRIC_FEATURE_BIN,
)
# A tiny HTTP client run with the image's own python3 inside the container (stdin: JSON request).
_CLIENT = """
import json, sys, urllib.request, urllib.error
r = json.load(sys.stdin)
req = urllib.request.Request(r["url"], data=r.get("body", "").encode() or None, method=r["method"],
                             headers={"Content-Type": "application/json"})
try:
    with urllib.request.urlopen(req, timeout=r["timeout"]) as resp:
        out = {"status": resp.status, "body": resp.read().decode()}
except urllib.error.HTTPError as e:
    out = {"status": e.code, "body": e.read().decode()}
except Exception as e:
    out = {"status": 0, "body": repr(e)}
print(json.dumps(out))
"""


@dataclass
class Check:
    name: str
    ok: bool
    detail: str
    seconds: float = 0.0


@dataclass
class PodReport:
    deployment: str
    role: str
    image: str
    docker_run: list[str] = field(default_factory=list)
    checks: list[Check] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return bool(self.checks) and all(c.ok for c in self.checks)


@dataclass
class Report:
    stack: str
    pods: list[PodReport]
    seconds: float

    @property
    def ok(self) -> bool:
        return bool(self.pods) and all(p.ok for p in self.pods)

    def failures(self) -> list[str]:
        return [f"{p.deployment}: {c.name}: {c.detail}" for p in self.pods for c in p.checks if not c.ok]

    def to_dict(self) -> dict[str, Any]:
        return {
            "stack": self.stack,
            "ok": self.ok,
            "seconds": round(self.seconds, 1),
            "pods": [
                {
                    "deployment": p.deployment,
                    "role": p.role,
                    "image": p.image,
                    "ok": p.ok,
                    "docker_run": p.docker_run,
                    "checks": [asdict(c) | {"seconds": round(c.seconds, 2)} for c in p.checks],
                }
                for p in self.pods
            ],
        }


class Failed(Exception):
    """A check failed: the pod's remaining checks cannot run."""


def _docker(*args: str, timeout: float = 120, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["docker", *args], capture_output=True, text=True, check=False, timeout=timeout, input=stdin
    )


def _bytes(quantity: str) -> int:
    return int(parse_quantity(quantity))


def _cpus(quantity: str) -> str:
    return format(parse_quantity(quantity).normalize(), "f")


def volume_name(container: str, volume: str) -> str:
    """The Docker volume standing in for one emptyDir of one preflight pod."""
    return f"{container}-{volume}"


def _empty_dirs(
    pod: dict[str, Any], container: dict[str, Any]
) -> list[tuple[dict[str, Any], dict[str, Any]]]:
    """(mount, volume) of every volume the container mounts; anything but an emptyDir is refused."""
    volumes = {v["name"]: v for v in pod.get("volumes", [])}
    found = []
    for mount in container.get("volumeMounts", []):
        volume = volumes.get(mount["name"], {})
        if "emptyDir" not in volume:
            raise Failed(f"volume {mount['name']}: only emptyDir volumes are run by preflight")
        found.append((mount, volume))
    return found


def empty_dir_volumes(deployment: dict[str, Any], *, name: str) -> list[tuple[str, int | None]]:
    """(Docker volume, fsGroup) of each on-disk emptyDir of the pod ``docker_run_args`` runs as ``name``."""
    pod = deployment["spec"]["template"]["spec"]
    fs_group = pod.get("securityContext", {}).get("fsGroup")
    return [
        (volume_name(name, mount["name"]), fs_group)
        for mount, volume in _empty_dirs(pod, pod["containers"][0])
        if volume["emptyDir"].get("medium") != "Memory"
    ]


def prepare_volume(volume: str, fs_group: int | None, image: str) -> subprocess.CompletedProcess[str]:
    """Create ``volume`` and set it up as the kubelet sets up an emptyDir: a directory with mode 0777, and
    with an fsGroup, group-owned by it with the setgid bit (pkg/volume/volume_linux.go SetVolumeOwnership).
    Done as root in a throw-away container of the pod's image, as the kubelet does it as root."""
    created = _docker("volume", "create", "--label", f"{PREFIX}=1", volume)
    if created.returncode != 0:
        return created
    script = "chmod 0777 /v" if fs_group is None else f"chgrp {int(fs_group)} /v && chmod 2777 /v"
    return _docker(
        "run", "--rm", "--user", "0", "--network", "none", "--entrypoint", "/bin/sh",
        "--mount", f"type=volume,source={volume},target=/v", image, "-c", script,
    )  # fmt: skip


def registry_host(image: str) -> str | None:
    """The registry an image reference names (``registry.example.com``, ``localhost:5000``), or None."""
    first, slash, _ = image.partition("/")
    if slash and ("." in first or ":" in first or first == "localhost"):
        return first
    return None


def ensure_image(image: str, build_hint: str, *, timeout: float = 1800) -> tuple[bool, str]:
    """(present, detail): the image is here, or pulled from its registry (IfNotPresent, as the kubelet)."""
    if _docker("image", "inspect", "--format", "{{.Id}}", image).returncode == 0:
        return True, f"{image} present"
    host = registry_host(image)
    if host is None:
        return False, f"image {image} is not here: build it with `{build_hint}`"
    pulled = _docker("pull", "--quiet", image, timeout=timeout)
    if pulled.returncode == 0:
        return True, f"{image} pulled from {host}"
    why = " ".join((pulled.stderr or pulled.stdout).split())[-300:]
    return False, (
        f"image {image} is not here and `docker pull` failed ({why}): log in with `docker login {host}` "
        f"(make registry-login), check that the version was pushed, or build it with `{build_hint}`"
    )


def docker_run_args(deployment: dict[str, Any], *, name: str, network: str) -> list[str]:
    """``docker run`` arguments for the pod of a rendered Deployment (one container). Raises ``Failed``
    for a pod spec feature Docker cannot reproduce faithfully."""
    pod = deployment["spec"]["template"]["spec"]
    containers = pod["containers"]
    if len(containers) != 1 or pod.get("initContainers"):
        raise Failed("preflight runs pods of exactly one container and no init container")
    (container,) = containers
    pod_sc = pod.get("securityContext", {})
    sc = pod_sc | container.get("securityContext", {})
    args = ["run", "--detach", "--name", name, "--network", network, "--hostname", name]
    args += ["--label", f"{PREFIX}=1"]
    uid, gid = sc.get("runAsUser"), sc.get("runAsGroup")
    if uid is not None:
        args += ["--user", f"{uid}:{gid if gid is not None else uid}"]
    fs_group = pod_sc.get("fsGroup")
    if fs_group is not None:
        args += ["--group-add", str(fs_group)]
    if sc.get("privileged"):
        raise Failed("privileged containers are not run by preflight")
    if sc.get("readOnlyRootFilesystem"):
        args.append("--read-only")
    if sc.get("allowPrivilegeEscalation") is False:
        args += ["--security-opt", "no-new-privileges"]
    caps = sc.get("capabilities", {})
    args += [f"--cap-drop={c}" for c in caps.get("drop", [])]
    args += [f"--cap-add={c}" for c in caps.get("add", [])]
    for mount, volume in _empty_dirs(pod, container):
        if volume["emptyDir"].get("medium") == "Memory":
            options = ["rw", "exec", "mode=1777" if fs_group is None else "mode=2777"]
            if fs_group is not None or gid is not None:
                options.append(f"gid={fs_group if fs_group is not None else gid}")
            size = volume["emptyDir"].get("sizeLimit")
            if size:
                options.append(f"size={_bytes(size)}")
            args += ["--tmpfs", f"{mount['mountPath']}:{','.join(options)}"]
        else:
            source = volume_name(name, mount["name"])
            args += ["--mount", f"type=volume,source={source},target={mount['mountPath']},volume-nocopy"]
    limits = container.get("resources", {}).get("limits", {})
    if "memory" in limits:
        # The kubelet runs pods without swap (NodeSwap off, k3s' default): no swap beyond the limit.
        args += ["--memory", str(_bytes(limits["memory"])), "--memory-swap", str(_bytes(limits["memory"]))]
    if "cpu" in limits:
        args += ["--cpus", _cpus(limits["cpu"])]
    for env in container.get("env", []):
        if "value" not in env:
            raise Failed(f"env {env['name']}: valueFrom is not run by preflight")
        args += ["--env", f"{env['name']}={env['value']}"]
    command = container.get("command")
    if command:
        args += ["--entrypoint", command[0]]
    args.append(container["image"])
    if command:
        args += command[1:]
    args += container.get("args", [])
    return args


class PodRun:
    """One rendered pod running in Docker; HTTP to it from inside its network namespace."""

    def __init__(
        self, deployment: dict[str, Any], monitor: dict[str, Any] | None, service: dict[str, Any] | None
    ) -> None:
        self.deployment = deployment
        self.monitor = monitor
        self.service = service
        self.pod = deployment["spec"]["template"]["spec"]
        self.container = self.pod["containers"][0]
        self.role = deployment["spec"]["template"]["metadata"]["labels"].get(naming.ROLE, "?")
        meta = deployment["metadata"]
        self.name = f"{PREFIX}-{meta['name']}-{os.getpid()}-{threading.get_ident() % 10000}"
        self.report = PodReport(deployment=meta["name"], role=self.role, image=self.container["image"])
        self.address = ""
        self.started_at = time.monotonic()

    # --- helpers ----------------------------------------------------------------------------------
    def _check(self, name: str, ok: bool, detail: str, started: float) -> None:
        self.report.checks.append(Check(name, ok, detail, time.monotonic() - started))
        if not ok:
            raise Failed(detail)

    def _port(self, port: int | str) -> int:
        if isinstance(port, int):
            return port
        for p in self.container.get("ports", []):
            if p.get("name") == port:
                return int(p["containerPort"])
        raise Failed(f"port {port!r} is not a named port of container {self.container['name']}")

    def http(
        self, method: str, port: int | str, path: str, body: Any = None, timeout: float = 5
    ) -> tuple[int, str]:
        request = {
            "method": method,
            "url": f"http://{self.address}:{self._port(port)}{path}",
            "body": json.dumps(body) if body is not None else "",
            "timeout": timeout,
        }
        done = _docker(
            "exec", "-i", self.name, "python3", "-c", _CLIENT, stdin=json.dumps(request), timeout=timeout + 30
        )
        if done.returncode != 0:
            return 0, (done.stderr or done.stdout).strip()[-300:]
        answer = json.loads(done.stdout.strip().splitlines()[-1])
        return int(answer["status"]), str(answer["body"])

    def _running(self) -> bool:
        state = _docker("inspect", "--format", "{{.State.Running}}", self.name)
        return state.stdout.strip() == "true"

    def logs(self) -> str:
        done = _docker("logs", "--tail", "15", self.name)  # the server logs to both streams
        return "\n".join((done.stdout + done.stderr).splitlines()[-15:])

    # --- the checks -----------------------------------------------------------------------------
    def run(self, network: str, valid_row: dict[str, Any]) -> PodReport:
        try:
            self._start(network)
            self._probes()
            version = self._predict(valid_row)
            self._reject(valid_row)
            self._metrics(version)
            self._stop()
        except Failed:
            pass
        finally:
            self.remove()
        return self.report

    def remove(self) -> None:
        _docker("rm", "--force", self.name)
        try:
            volumes = empty_dir_volumes(self.deployment, name=self.name)
        except Failed:  # a volume preflight does not run: none was created
            volumes = []
        for volume, _ in volumes:
            _docker("volume", "rm", "--force", volume)

    def _start(self, network: str) -> None:
        started = time.monotonic()
        image = self.container["image"]
        policy = self.container.get("imagePullPolicy", "IfNotPresent")
        self._check("imagePullPolicy", policy == "IfNotPresent", f"imagePullPolicy is {policy}", started)
        version = image.rsplit("@", 1)[0].rsplit(":", 1)[-1]
        build = f"mlship build --containerize --model {version} --image-repository {image.rsplit(':', 1)[0]}"
        present, detail = ensure_image(image, build)
        self._check("image", present, detail, started)
        present_user = _docker("image", "inspect", "--format", "{{.Config.User}}", image)
        sc = self.pod.get("securityContext", {}) | self.container.get("securityContext", {})
        if sc.get("runAsNonRoot"):
            user = str(sc.get("runAsUser", present_user.stdout.strip().split(":")[0] or "0"))
            self._check(
                "runAsNonRoot", user.isdigit() and user != "0", f"the container runs as uid {user}", started
            )
        self.report.docker_run = [
            "docker",
            *docker_run_args(self.deployment, name=self.name, network=network),
        ]
        for volume, fs_group in empty_dir_volumes(self.deployment, name=self.name):
            prepared = prepare_volume(volume, fs_group, image)
            self._check(
                f"emptyDir {volume.removeprefix(self.name + '-')}",
                prepared.returncode == 0,
                (prepared.stderr or "a volume on disk, mode 0777, group fsGroup (setgid)").strip()[-300:],
                started,
            )
        created = _docker(*self.report.docker_run[1:])
        self.started_at = time.monotonic()
        self._check(
            "docker run", created.returncode == 0, (created.stderr or "started").strip()[-300:], started
        )
        ip = _docker(
            "inspect", "--format", "{{range .NetworkSettings.Networks}}{{.IPAddress}}{{end}}", self.name
        )
        self.address = ip.stdout.strip()

    def _probe(self, kind: str, spec: dict[str, Any], since: float) -> None:
        """One probe on the kubelet's schedule (pkg/kubelet/prober/worker.go): first attempt at
        ``since + initialDelaySeconds``, then every periodSeconds; each answer within timeoutSeconds. The
        startup probe passes on its first success within failureThreshold attempts; liveness and readiness
        fail only after failureThreshold failures in a row; readiness needs successThreshold in a row."""
        get = spec.get("httpGet")
        if get is None:
            raise Failed(f"{kind}: only httpGet probes are run by preflight")
        path, port = get.get("path", "/"), get["port"]
        name = f"{kind} GET {path} :{port}"
        period = float(spec.get("periodSeconds", 10))
        timeout = float(spec.get("timeoutSeconds", 1))
        failures_allowed = int(spec.get("failureThreshold", 3))
        successes_needed = int(spec.get("successThreshold", 1)) if kind == "readinessProbe" else 1
        started = time.monotonic()
        next_at = max(started, since + float(spec.get("initialDelaySeconds", 0)))
        failures = successes = attempts = 0
        last = ""
        while True:
            time.sleep(max(0.0, next_at - time.monotonic()))
            next_at += period
            attempts += 1
            if not self._running():
                self._check(name, False, f"the container exited:\n{self.logs()}", started)
            asked = time.monotonic()
            status, body = self.http("GET", port, path, timeout=timeout)
            answered = time.monotonic() - asked
            if 200 <= status < 400:
                successes, failures = successes + 1, 0
                if successes >= successes_needed:
                    detail = f"{status} after {attempts} attempt(s), answered within {timeout:g}s"
                    self._check(name, True, detail, started)
                    return
                continue
            successes, failures = 0, failures + 1
            last = f"{status} {body[:120]}" if status else f"no answer within {timeout:g}s ({answered:.1f}s)"
            if failures >= failures_allowed:
                what = f"{failures} failure(s) in a row, every {period:g}s"
                self._check(name, False, f"{what} (last: {last}); logs:\n{self.logs()}", started)

    def _probes(self) -> None:
        """Startup first (the others wait for it, as in the kubelet), then liveness and readiness."""
        since = self.started_at
        if "startupProbe" in self.container:
            self._probe("startupProbe", self.container["startupProbe"], since)
            since = time.monotonic()
        for kind in ("livenessProbe", "readinessProbe"):
            if kind in self.container:
                self._probe(kind, self.container[kind], since)

    def _env(self, name: str) -> str:
        return next((e.get("value", "") for e in self.container.get("env", []) if e["name"] == name), "")

    def _served_version(self) -> str:
        return self._env("MLSHIP_MODEL_TAG").rpartition(":")[2]

    def _predict(self, row: dict[str, Any]) -> str:
        started = time.monotonic()
        version = self._served_version()
        image_version = self.container["image"].rsplit("@", 1)[0].rsplit(":", 1)[-1]
        status, body = self.http("POST", naming.MODEL_PORT_NAME, names.ENDPOINT_PREDICT, row, timeout=10)
        ok = status == 200
        detail = f"{status} {body[:200]}"
        if ok:
            served = json.loads(body).get("model_version")
            ok = served == version
            detail = f"200, model_version {served} (MLSHIP_MODEL_TAG {version}, image tag {image_version})"
            if "@sha256:" not in self.container["image"]:
                ok = ok and image_version == version
        self._check("valid prediction", ok, detail, started)
        return version

    def _reject(self, row: dict[str, Any]) -> None:
        started = time.monotonic()
        bad = {**row, "bmi": "heavy"}
        status, body = self.http("POST", naming.MODEL_PORT_NAME, names.ENDPOINT_PREDICT, bad, timeout=10)
        ok = 400 <= status < 500 and "bmi" in body
        self._check("invalid prediction is a 4xx naming the field", ok, f"{status} {body[:200]}", started)

    def _metrics(self, version: str) -> None:
        started = time.monotonic()
        if self.monitor is None or self.service is None:
            self._check("metrics", False, "no ServiceMonitor selects this pod's Service", started)
            return
        (endpoint,) = self.monitor["spec"]["endpoints"]
        (service_port,) = [p for p in self.service["spec"]["ports"] if p["name"] == endpoint["port"]]
        status, body = self.http(
            "GET", service_port["targetPort"], endpoint.get("path", "/metrics"), timeout=10
        )
        self._check("metrics endpoint", status == 200, f"GET {endpoint.get('path')} -> {status}", started)
        seen: dict[str, list[tuple[dict[str, str], float]]] = {}
        for family in text_string_to_metric_families(body):
            for sample in family.samples:
                seen.setdefault(sample.name, []).append((dict(sample.labels), float(sample.value)))
        missing = [s for s in REQUIRED_SERIES if s not in seen]
        detail = f"missing {missing}" if missing else f"{len(seen)} series names"
        self._check("scraped series", not missing, detail, started)
        counted: dict[str, float] = {}
        for labels, value in seen[names.METRIC_BENTO_REQUESTS]:
            if labels.get("endpoint") == names.ENDPOINT_PREDICT:
                code = labels.get("http_response_code", "")
                counted[code] = counted.get(code, 0.0) + value
        rejected = sum(v for c, v in counted.items() if c.startswith("4"))
        self._check(
            "requests counted by endpoint and code",
            counted.get("200", 0.0) >= 1 and rejected >= 1,
            f'{names.METRIC_BENTO_REQUESTS}{{endpoint="{names.ENDPOINT_PREDICT}"}} by code {counted}',
            started,
        )
        clashing = sorted(
            {k for samples in seen.values() for labels, _ in samples for k in labels} & TARGET_LABELS
        )
        self._check(
            "no scraped label overrides a target label",
            not clashing,
            f"scraped labels {clashing}" if clashing else "none",
            started,
        )
        versions = {labels.get(names.LABEL_MODEL_VERSION) for labels, _ in seen[names.METRIC_MODEL_INFO]}
        self._check(
            "model_version label",
            versions == {version},
            f"{names.METRIC_MODEL_INFO} model_version {sorted(map(str, versions))}",
            started,
        )

    def _stop(self) -> None:
        """Stop as the kubelet does (pkg/kubelet/kuberuntime/kuberuntime_container.go killContainer): the
        preStop hook first, then SIGTERM, then SIGKILL when terminationGracePeriodSeconds (which counts
        from the hook's start) runs out. The server must still answer during the hook: that is what the
        hook is for (the gateway drops the endpoint meanwhile)."""
        started = time.monotonic()
        grace = int(self.pod.get("terminationGracePeriodSeconds", 30))
        hook = self.container.get("lifecycle", {}).get("preStop")
        if hook is not None:
            if "sleep" in hook:
                seconds = float(hook["sleep"]["seconds"])
                time.sleep(seconds / 2)
                status, _ = self.http("GET", naming.MODEL_PORT_NAME, "/livez", timeout=3)
                time.sleep(max(0.0, seconds - (time.monotonic() - started)))
                self._check(
                    "serves during the preStop hook",
                    200 <= status < 400,
                    f"preStop sleep {seconds:g}s; GET /livez half-way: {status}",
                    started,
                )
            elif "exec" in hook:
                done = _docker("exec", self.name, *hook["exec"]["command"], timeout=grace)
                self._check("preStop exec", done.returncode == 0, done.stderr.strip()[-200:] or "ok", started)
            elif "httpGet" in hook:
                get = hook["httpGet"]
                status, _ = self.http("GET", get["port"], get.get("path", "/"), timeout=grace)
                self._check("preStop httpGet", 200 <= status < 400, f"{status}", started)
            else:
                raise Failed(
                    f"preStop {sorted(hook)}: only sleep, exec and httpGet hooks are run by preflight"
                )
        left = max(0, int(grace - (time.monotonic() - started)))
        _docker("stop", "--time", str(left), self.name, timeout=left + 30)
        elapsed = time.monotonic() - started
        code = _docker("inspect", "--format", "{{.State.ExitCode}}", self.name).stdout.strip()
        ok = elapsed < grace and code in ("0", "143")
        self._check(
            "stops on SIGTERM within the grace period",
            ok,
            f"exit {code} {elapsed:.1f}s after the stop began, preStop included (grace {grace}s)",
            started,
        )


def valid_row(version: str, model_name: str) -> dict[str, Any]:
    """A request the model accepts: the registered model's schema if it is here, else the bundled data's."""
    from mlship.errors import RefusedError
    from mlship.model import registry

    try:
        row: dict[str, Any] = {
            str(k): v for k, v in registry.resolve(model_name, version).schema.edge_rows().iloc[0].items()
        }
    except RefusedError:
        from mlship.local import load

        return dict(load.traffic_rows(seed=42, test_size=0.2, size=1)[0])
    row["sex"] = int(row["sex"])
    return row


def _find(result: renderer.RenderResult, kind: str, name: str, namespace: str) -> dict[str, Any] | None:
    for m in result.manifests:
        meta = m["metadata"]
        if m["kind"] == kind and meta["name"] == name and meta.get("namespace") == namespace:
            return m
    return None


def _monitor_for(result: renderer.RenderResult, service: dict[str, Any] | None) -> dict[str, Any] | None:
    if service is None:
        return None
    labels = service["metadata"].get("labels", {})
    for m in result.manifests:
        if (
            m["kind"] != "ServiceMonitor"
            or m["metadata"].get("namespace") != service["metadata"]["namespace"]
        ):
            continue
        wanted = m["spec"]["selector"].get("matchLabels", {})
        if wanted.items() <= labels.items():
            return m
    return None


def preflight(
    stack: str,
    program_dir: Path,
    *,
    image_repository: str | None = None,
    canary: tuple[str, str] | None = None,
) -> Report:
    """Render ``stack`` and run each model pod (stable and canary, in parallel) with its checks.

    ``canary`` = (model name, version): render the stack as ``mlship canary start VERSION`` will run it,
    with that version as the model's canary (what a release pipeline checks before its first step).
    """
    from mlship import images

    overrides: dict[str, Any] = {}
    if image_repository is not None or canary is not None:
        raw, _ = read_stack_file(program_dir / f"Pulumi.{stack}.yaml")
        models = [dict(m) for m in raw["models"]]
        for model in models:
            if image_repository is not None:
                model["image"] = image_repository
            if canary is not None and model.get("name") == canary[0]:
                model["canary"] = {"version": canary[1], "weight": 0}
        overrides["models"] = models
    started = time.monotonic()
    result = renderer.run_program(stack, program_dir, overrides)
    if not images.docker_available():
        raise EnvironmentNotReady("no Docker engine answers `docker info`: run `make setup`")
    runs = []
    for deployment in result.manifests:
        labels = deployment.get("metadata", {}).get("labels", {})
        if deployment["kind"] != "Deployment" or labels.get(naming.COMPONENT) != naming.COMPONENT_MODEL:
            continue
        meta = deployment["metadata"]
        service = _find(result, "Service", meta["name"], meta["namespace"])
        runs.append(PodRun(deployment, _monitor_for(result, service), service))
    network = f"{PREFIX}-{stack}-{os.getpid()}"
    # The model namespace's NetworkPolicy denies all egress: an internal network has no route out.
    created = _docker("network", "create", "--internal", "--label", f"{PREFIX}=1", network)
    if created.returncode != 0:
        raise EnvironmentNotReady(f"docker network create failed: {created.stderr.strip()}")
    try:
        threads = []
        for run in runs:
            row = valid_row(run._served_version(), run._env("MLSHIP_MODEL_NAME"))
            thread = threading.Thread(target=run.run, args=(network, row), daemon=True)
            thread.start()
            threads.append(thread)
        for thread in threads:
            thread.join()
    finally:
        for run in runs:
            run.remove()
        _docker("network", "rm", network)
    return Report(stack=stack, pods=[r.report for r in runs], seconds=time.monotonic() - started)
