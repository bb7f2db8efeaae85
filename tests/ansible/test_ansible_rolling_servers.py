"""Issue 11 defect 6: servers restarted together on a configuration change (no `serial`, no Ready check), so
embedded etcd could lose quorum. Now ansible/cluster.yml rolls the servers after the first one at a time, and
the k3s_server role returns only once the (re)started server's API answers ready and its node is Ready.

k3s cannot run on these machines (no binary, no kernel access in containers), so the wait itself is
tagged needs_binary and skipped in Molecule; this test reads the playbook and the role as Ansible does."""

from __future__ import annotations

from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[2]


def load(path: str):
    return yaml.safe_load((REPO / path).read_text())


def plays_running(role: str) -> list[dict]:
    return [
        play for play in load("ansible/cluster.yml") if role in [r["role"] for r in play.get("roles", [])]
    ]


def test_first_server_alone_then_the_others_one_at_a_time_then_agents():
    plays = [play for play in load("ansible/cluster.yml") if "roles" in play]
    assert [play["hosts"] for play in plays] == ["k3s_servers[0]", "k3s_servers[1:]", "k3s_agents"]
    first, others, _agents = plays
    assert "serial" not in first  # a single host
    # One server per batch, and a failed server stops the play before the next one is touched.
    assert others["serial"] == 1
    assert others["max_fail_percentage"] == 0
    assert plays_running("k3s_server") == [first, others]


def test_role_waits_for_the_restarted_server_before_returning():
    tasks = load("roles/k3s_server/tasks/main.yml")
    names = [task["name"] for task in tasks]
    restart = names.index("Apply configuration changes before starting")  # handlers: restart if running
    start = names.index("Start k3s")
    api = names.index("Wait until the API server on this node is ready")
    node = names.index("Wait until this node is Ready")
    assert restart < start < api < node == len(names) - 1
    assert tasks[restart]["ansible.builtin.meta"] == "flush_handlers"


def test_waits_ask_the_local_api_and_this_node_until_the_timeout():
    tasks = {task["name"]: task for task in load("roles/k3s_server/tasks/main.yml")}
    variables = load("roles/k3s_server/vars/main.yml")
    timeout = load("roles/k3s_server/defaults/main.yml")["k3s_server_ready_timeout"]
    # kubectl through k3s with the local kubeconfig, which points at this server's own API (127.0.0.1).
    assert variables["__k3s_server_kubectl"] == [
        "/usr/local/bin/k3s",
        "kubectl",
        "--kubeconfig",
        "/etc/rancher/k3s/k3s.yaml",
    ]
    api = tasks["Wait until the API server on this node is ready"]
    assert "'/readyz'" in api["ansible.builtin.command"]["argv"]
    assert api["until"] == "__k3s_server_readyz.rc == 0 and __k3s_server_readyz.stdout == 'ok'"
    node = tasks["Wait until this node is Ready"]
    assert "__k3s_server_node_name" in node["ansible.builtin.command"]["argv"]
    assert (
        node["vars"]["__k3s_server_ready_jsonpath"]
        == 'jsonpath={.status.conditions[?(@.type=="Ready")].status}'
    )
    assert node["until"] == "__k3s_server_node_ready.rc == 0 and __k3s_server_node_ready.stdout == 'True'"
    for task in (api, node):
        assert task["retries"] == "{{ (k3s_server_ready_timeout / 5) | round(0, 'ceil') | int }}"
        assert task["delay"] == 5 and timeout == 300
        assert task["changed_when"] is False
        # Skipped where k3s cannot run: in check mode, and (tag) on machines without the binary.
        assert task["when"] == "not ansible_check_mode"
        assert "needs_binary" in task["tags"]
