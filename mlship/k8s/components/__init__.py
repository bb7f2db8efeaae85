"""Pulumi ComponentResources composed by ``pulumi/__main__.py``: one small module per concern."""

from __future__ import annotations

from collections.abc import Sequence

import pulumi


def child_opts(parent: pulumi.Resource, depends_on: Sequence[pulumi.Resource] = ()) -> pulumi.ResourceOptions:
    """Options of a component's child: parented, and waiting for ``depends_on`` explicitly.

    Children do not inherit a component's ``depends_on``, so components pass it down themselves
    (e.g. every namespaced object waits for its Namespace, every CRD instance for its CRD's chart).
    """
    return pulumi.ResourceOptions(parent=parent, depends_on=list(depends_on))
