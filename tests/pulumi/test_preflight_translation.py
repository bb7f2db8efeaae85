"""`mlship preflight` runs a rendered pod with the Docker flags its spec implies (no Docker needed here).

The run itself is tested with Docker in tests/integration/test_release_artifact.py; this file pins the
translation: each security-relevant field of the pod spec has its Docker counterpart, and a field Docker
cannot reproduce is refused instead of silently dropped.
"""

from __future__ import annotations

import copy

import pytest
from pulumi_helpers import one

from mlship.k8s import naming
from mlship.k8s.preflight import Failed, docker_run_args, empty_dir_volumes, registry_host


def _deployment(render, stack: str = "prod") -> dict:
    return copy.deepcopy(one(render(stack), "Deployment", "diabetes-regressor-stable"))


def test_security_context_resources_and_volumes(render):
    deployment = _deployment(render)
    args = docker_run_args(deployment, name="p", network="n")
    pod = deployment["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    uid = naming.MODEL_UID
    assert args[args.index("--user") + 1] == f"{uid}:{uid}"
    assert args[args.index("--group-add") + 1] == str(pod["securityContext"]["fsGroup"])
    assert "--read-only" in args and "--cap-drop=ALL" in args
    assert args[args.index("--security-opt") + 1] == "no-new-privileges"
    assert args[args.index("--network") + 1] == "n"
    assert args[args.index("--memory") + 1] == str(2 * 2**30)  # prod limits: 2Gi, 2 CPUs
    # the kubelet runs pods without swap; Docker's default would allow as much swap again as --memory
    assert args[args.index("--memory-swap") + 1] == str(2 * 2**30)
    assert args[args.index("--cpus") + 1] == "2"
    # emptyDir on disk: a Docker volume (tmpfs pages would count against the memory limit), prepared as the
    # kubelet prepares it, the image's files hidden (volume-nocopy)
    mounts = [args[i + 1] for i, a in enumerate(args) if a == "--mount"]
    assert mounts == [
        f"type=volume,source=p-{m['name']},target={m['mountPath']},volume-nocopy"
        for m in container["volumeMounts"]
    ]
    assert "--tmpfs" not in args
    assert empty_dir_volumes(deployment, name="p") == [
        (f"p-{m['name']}", uid) for m in container["volumeMounts"]
    ]
    env = [args[i + 1] for i, a in enumerate(args) if a == "--env"]
    assert env == [f"{e['name']}={e['value']}" for e in container["env"]]
    assert args[-1] == container["image"]  # no command/args: the image's entrypoint, as the kubelet runs it


def test_memory_medium_empty_dir_is_a_tmpfs(render):
    """medium: Memory is a tmpfs in the kubelet too, counted against the container's memory limit."""
    deployment = _deployment(render)
    pod = deployment["spec"]["template"]["spec"]
    pod["volumes"][0]["emptyDir"]["medium"] = "Memory"
    args = docker_run_args(deployment, name="p", network="n")
    (tmpfs,) = [args[i + 1] for i, a in enumerate(args) if a == "--tmpfs"]
    mount = next(m for m in pod["containers"][0]["volumeMounts"] if m["name"] == pod["volumes"][0]["name"])
    assert tmpfs == f"{mount['mountPath']}:rw,exec,mode=2777,gid={naming.MODEL_UID},size={2**30}"
    assert len(empty_dir_volumes(deployment, name="p")) == len(pod["volumes"]) - 1


@pytest.mark.parametrize(
    ("image", "host"),
    [
        ("registry.example.com/mlship/diabetes-regressor:1c35", "registry.example.com"),
        ("localhost:5000/m:1", "localhost:5000"),
        ("127.0.0.1:5000/m:1", "127.0.0.1:5000"),
        ("mlship-model:1c35", None),
        ("library/python:3", None),
    ],
)
def test_which_images_preflight_may_pull(image, host):
    assert registry_host(image) == host


def test_dev_cpu_limit_in_millicores(render):
    args = docker_run_args(_deployment(render, "dev"), name="p", network="n")
    assert args[args.index("--cpus") + 1] == "0.5"


def test_command_and_args_follow_kubernetes_semantics(render):
    deployment = _deployment(render)
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    container["command"] = ["/bin/sh", "-c"]
    container["args"] = ["exec serve"]
    args = docker_run_args(deployment, name="p", network="n")
    assert args[args.index("--entrypoint") + 1] == "/bin/sh"
    assert args[-3:] == [container["image"], "-c", "exec serve"]


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda pod: pod["volumes"][0].update(emptyDir=None, configMap={"name": "x"}), "only emptyDir"),
        (lambda pod: pod["containers"][0]["env"].append({"name": "X", "valueFrom": {}}), "valueFrom"),
        (lambda pod: pod["containers"][0]["securityContext"].update(privileged=True), "privileged"),
        (lambda pod: pod["containers"].append(pod["containers"][0]), "exactly one container"),
    ],
)
def test_what_docker_cannot_reproduce_is_refused(render, mutate, message):
    deployment = _deployment(render)
    pod = deployment["spec"]["template"]["spec"]
    mutate(pod)
    for volume in pod["volumes"]:
        if volume.get("emptyDir", 1) is None:
            del volume["emptyDir"]
    with pytest.raises(Failed, match=message):
        docker_run_args(deployment, name="p", network="n")
