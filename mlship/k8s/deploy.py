"""`mlship deploy`: ``pulumi up`` of a stack, refused when it would change a model's stable version unasked.

For each model the stack config's ``stable`` is compared with the cluster: the release record the canary
controller keeps (mlship/k8s/release_record.py) and the version the live stable Deployment runs. They must
agree, or ``pulumi up`` would silently replace the stable version: a checkout of an older tag, a promotion
whose commit was never pushed, or a manual promotion never committed all name the previous version.

* They agree, or the model is not deployed yet: ``pulumi up``, then the record is written if it was missing.
* They differ: refused (nothing changed), naming the versions and the two ways on:
  ``stable_from="cluster"`` writes the cluster's version into the stack config and deploys it (what a
  release pipeline does: a stale checkout never downgrades production); ``stable_from="config"`` deploys the
  stack config's version on purpose (a rollback by hand) and records it.
* The record and the live Deployment disagree with each other (a ``pulumi up`` run outside mlship, or a
  record that could not be written): only ``stable_from="config"``, with the version chosen in the file.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

from mlship.canary.backends.kubernetes import MODELS_KEY, NAMESPACE_KEY, ClusterApi, StackWorkspace
from mlship.errors import RefusedError
from mlship.k8s import release_record

StableFrom = Literal["cluster", "config"]


@dataclass(frozen=True)
class StableCheck:
    model: str
    config: str
    record: str | None
    live: str | None

    @property
    def cluster(self) -> str | None:
        """The cluster's stable version when record and Deployment agree (or only one exists)."""
        if self.record is not None and self.live is not None and self.record != self.live:
            return None
        return self.record or self.live

    @property
    def agrees(self) -> bool:
        return (self.record is None and self.live is None) or self.cluster == self.config


def check(workspace: StackWorkspace, api: ClusterApi) -> list[StableCheck]:
    namespace = str(workspace.get_config(NAMESPACE_KEY) or "mlship")
    models = workspace.get_config(MODELS_KEY) or []
    return [
        StableCheck(
            model=str(entry["name"]),
            config=str(entry["stable"]),
            record=(
                record.stable if (record := release_record.read(api, namespace, entry["name"])) else None
            ),
            live=release_record.live_stable(api, namespace, entry["name"]),
        )
        for entry in models
        if isinstance(entry, dict) and "name" in entry and "stable" in entry
    ]


def _describe(c: StableCheck) -> str:
    cluster = (
        f"the cluster runs {c.cluster}"
        if c.cluster is not None
        else f"the release record says {c.record} but the stable Deployment runs {c.live}"
    )
    return f"{c.model}: the stack config says {c.config}, {cluster}"


def deploy(
    stack: str,
    workspace: StackWorkspace,
    api: ClusterApi,
    *,
    stable_from: StableFrom | None = None,
    on_output: Callable[[str], None] = print,
) -> list[StableCheck]:
    """Check, adopt or accept each model's stable version, then ``pulumi up`` the whole stack."""
    namespace = str(workspace.get_config(NAMESPACE_KEY) or "mlship")
    checks = check(workspace, api)
    differing = [c for c in checks if not c.agrees]
    if differing and stable_from is None:
        raise RefusedError(
            "refused, `pulumi up` would change the stable version: "
            + "; ".join(_describe(c) for c in differing)
            + f". Deploy what the cluster runs with `mlship deploy --stack {stack} --stable-from cluster` "
            f"(it updates Pulumi.{stack}.yaml), or the stack config's on purpose with --stable-from config"
        )
    if stable_from == "cluster":
        undecided = [c for c in differing if c.cluster is None]
        if undecided:
            raise RefusedError(
                "refused, the cluster does not say which version is stable: "
                + "; ".join(_describe(c) for c in undecided)
                + f". Set the version in Pulumi.{stack}.yaml and deploy with --stable-from config"
            )
        if differing:
            with workspace.config_lock():
                models: list[dict[str, Any]] = copy.deepcopy(workspace.get_config(MODELS_KEY))
                adopt = {c.model: c.cluster for c in differing}
                for entry in models:
                    if entry.get("name") in adopt:
                        on_output(
                            f"{entry['name']}: stable {entry['stable']} -> {adopt[entry['name']]} (cluster)"
                        )
                        entry["stable"] = adopt[entry["name"]]
                workspace.set_config(MODELS_KEY, models)
    workspace.up(None)
    for c in check(workspace, api):
        if c.record != c.config:  # a first deploy, or a change made on purpose
            how = "deployed" if c.record is None or stable_from == "config" else "adopted"
            release_record.write(api, namespace, c.model, c.config, how)
    return checks
