"""What a tree ensemble does per prediction: node visits and node memory, attributed to features.

Deterministic measures of serving cost (the same model and rows give the same figures on any machine),
used for per-feature cost (Data 3) and compute-regression checks (Monitor 6).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np


@dataclass(frozen=True)
class TreeWork:
    """Per-feature work of one model on a set of rows (index = input column)."""

    visits_per_row: np.ndarray  # split nodes testing the feature, visited per prediction (mean)
    split_nodes: np.ndarray  # split nodes testing the feature in the whole model
    node_bytes: int  # memory of one tree node
    total_nodes: int  # every node (splits and leaves)

    @property
    def total_visits_per_row(self) -> float:
        return float(self.visits_per_row.sum())

    @property
    def model_node_memory(self) -> int:
        return self.total_nodes * self.node_bytes


def trees(estimator: Any) -> list[Any]:
    """The fitted decision trees of a scikit-learn tree ensemble (or of a single tree)."""
    if hasattr(estimator, "tree_"):
        return [estimator]
    ensemble = getattr(estimator, "estimators_", None)
    if ensemble is None:
        raise TypeError(
            f"{type(estimator).__name__} is not a fitted scikit-learn tree model; "
            "per-prediction work is measured for tree ensembles only"
        )
    flat = np.asarray(ensemble, dtype=object).ravel()
    return [t for t in flat if hasattr(t, "tree_")]


def tree_work(estimator: Any, x: np.ndarray) -> TreeWork:
    """Split-node visits per prediction attributed to the feature each split tests."""
    n_features = x.shape[1]
    visits = np.zeros(n_features)
    splits = np.zeros(n_features, dtype=int)
    total_nodes = 0
    node_bytes = 0
    for tree in trees(estimator):
        structure = tree.tree_
        internal = structure.feature >= 0
        np.add.at(splits, structure.feature[internal], 1)
        counts = np.asarray(tree.decision_path(x).sum(axis=0)).ravel()
        np.add.at(visits, structure.feature[internal], counts[internal])
        total_nodes += structure.node_count
        node_bytes = structure.__getstate__()["nodes"].dtype.itemsize
    return TreeWork(
        visits_per_row=visits / len(x),
        split_nodes=splits,
        node_bytes=node_bytes,
        total_nodes=total_nodes,
    )
