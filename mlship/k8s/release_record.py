"""The cluster's record of each model's stable version: a ConfigMap the canary controller owns.

Pulumi deploys whatever ``Pulumi.<stack>.yaml`` says, and that file lives in a checkout: a pipeline that
deploys an older tag, a promotion whose commit was never pushed, or a manual promotion never committed would
make the next ``pulumi up`` bring the previous version back. So every change of the stable version mlship
makes (a promotion, ``rollback --to previous``, a checked deploy) is also recorded in the cluster, in
ConfigMap ``<model>-release`` of the model namespace, applied server-side by field manager ``mlship-canary``
(Pulumi never declares it, so no ``pulumi up`` touches it), and ``mlship deploy`` compares the stack config
with it and with the live stable Deployment before running ``pulumi up`` (mlship/k8s/deploy.py).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol

from mlship.k8s import naming

API = ("v1", "ConfigMap")
FIELD_MANAGER = "mlship-canary"
DEPLOYMENT_API = ("apps/v1", "Deployment")


class Api(Protocol):
    def get(self, api_version: str, kind: str, namespace: str, name: str) -> dict[str, Any] | None: ...

    def apply(self, body: dict[str, Any], *, field_manager: str, force: bool) -> dict[str, Any]: ...


@dataclass(frozen=True)
class Record:
    stable: str
    previous: str | None
    how: str  # promoted | deployed-stable | deployed
    at: str


def name(model: str) -> str:
    return f"{model}-release"


def read(api: Api, namespace: str, model: str) -> Record | None:
    found = api.get(*API, namespace, name(model))
    data = (found or {}).get("data") or {}
    if not data.get("stable"):
        return None
    return Record(
        stable=str(data["stable"]),
        previous=data.get("previous") or None,
        how=str(data.get("how", "")),
        at=str(data.get("at", "")),
    )


def write(api: Api, namespace: str, model: str, stable: str, how: str) -> Record:
    """Record ``stable`` as ``model``'s stable version (the previous record becomes ``previous``)."""
    before = read(api, namespace, model)
    previous: str | None = None
    if before is not None:
        previous = before.previous if before.stable == stable else before.stable
    now = datetime.now(UTC).isoformat(timespec="seconds")
    record = Record(stable=stable, previous=previous, how=how, at=now)
    data = {"stable": record.stable, "how": record.how, "at": record.at}
    if record.previous:
        data["previous"] = record.previous
    api.apply(
        {
            "apiVersion": API[0],
            "kind": API[1],
            "metadata": {
                "name": name(model),
                "namespace": namespace,
                "labels": {
                    naming.PART_OF: "mlship",
                    naming.MANAGED_BY: FIELD_MANAGER,
                    naming.COMPONENT: "release-record",
                    naming.MODEL: model,
                },
            },
            "data": data,
        },
        field_manager=FIELD_MANAGER,
        force=True,
    )
    return record


def live_stable(api: Api, namespace: str, model: str) -> str | None:
    """The version the live stable Deployment's pod template runs (None: no Deployment yet)."""
    from mlship import names

    deployment = api.get(*DEPLOYMENT_API, namespace, naming.workload_name(model, names.ROLE_STABLE))
    if deployment is None:
        return None
    labels = deployment.get("spec", {}).get("template", {}).get("metadata", {}).get("labels", {})
    version = labels.get(naming.VERSION)
    return str(version) if version else None
