"""Kubernetes environments with Pulumi: stack config, components, offline rendering and validation.

The Pulumi program in ``pulumi/`` composes the components defined here. Everything in this package
runs without a cluster or the Pulumi CLI: the program is rendered under Pulumi's mocks and the
manifests are checked against the Kubernetes and CRD schemas (``mlship render``).
"""
