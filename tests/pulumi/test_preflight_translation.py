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
from mlship.k8s.preflight import Failed, docker_run_args


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
    assert args[args.index("--cpus") + 1] == "2"
    tmpfs = [args[i + 1] for i, a in enumerate(args) if a == "--tmpfs"]
    assert tmpfs == [
        f"{m['mountPath']}:rw,exec,uid={uid},gid={uid},size={2**30}" for m in container["volumeMounts"]
    ]
    env = [args[i + 1] for i, a in enumerate(args) if a == "--env"]
    assert env == [f"{e['name']}={e['value']}" for e in container["env"]]
    assert args[-1] == container["image"]  # no command/args: the image's entrypoint, as the kubelet runs it


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
