"""The one interface every traffic backend implements (local HAProxy, Kubernetes via Pulumi).

A backend changes where user traffic goes; it never judges. Every method either fully applies its
change or raises and leaves the previous routing in place.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

# The route's paths (/predict, /predict_batch, ...) give the canary different shares: never a rollout's.
MIXED_WEIGHTS = -1


@dataclass(frozen=True)
class Routing:
    """Where traffic goes now."""

    stable_version: str | None
    canary_version: str | None
    weight: int  # percent of user traffic on the canary, 0..100; MIXED_WEIGHTS if the paths disagree
    shadow: bool  # canary receives a mirrored copy of stable traffic, answers never served


class TrafficBackend(Protocol):
    name: str

    def routing(self) -> Routing:
        """Read the routing actually in effect (from the proxy / the stack config)."""
        ...

    def deploy_canary(self, version: str, *, shadow: bool) -> None:
        """Run ``version`` as the canary with 0% of user traffic (mirrored traffic if ``shadow``)."""
        ...

    def set_weight(self, weight: int) -> None:
        """Send ``weight`` percent of user traffic to the canary (shadow mirroring stops)."""
        ...

    def promote(self) -> None:
        """Make the canary's version the stable version and remove the canary."""
        ...

    def rollback(self) -> None:
        """Send 0% to the canary at once, then remove it."""
        ...

    def deploy_stable(self, version: str) -> None:
        """Replace the stable version without analysis (``rollback --to previous``, first deploy)."""
        ...
