"""Structural checks of a loaded tree model, before scikit-learn's compiled code walks it.

skops loads only trusted types, but trusted types can hold untrusted numbers: a decision
tree whose child or feature indices point outside its arrays makes scikit-learn's Cython
tree code read out of bounds and crash the process (a segfault, no message). So every
tree of a loaded estimator is checked: node counts agree with the arrays, every internal
node's children lie after it and inside the tree (no cycles, no escapes), leaves have no
children, features lie in ``[0, n_features_in_)``, and categorical splits name a bitset
that exists.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from audit_cli.errors import CheckpointError


def check_trees(est: object, path: Path) -> None:
    """Refuse (CheckpointError) an estimator whose trees could not be walked safely."""
    n_features = getattr(est, "n_features_in_", None)
    if not isinstance(n_features, (int, np.integer)) or n_features < 1:
        raise CheckpointError(f"{path}: the model does not say how many features it takes")
    if hasattr(est, "_predictors"):  # HistGradientBoosting
        for i, per_class in enumerate(est._predictors):
            for j, predictor in enumerate(per_class):
                _check_hist_tree(predictor, int(n_features), f"{path}: tree {i}.{j}")
        return
    trees = [est.tree_] if hasattr(est, "tree_") else [e.tree_ for e in getattr(est, "estimators_", [])]
    if not trees:
        raise CheckpointError(f"{path}: the model holds no trees")
    for i, tree in enumerate(trees):
        _check_decision_tree(tree, int(n_features), f"{path}: tree {i}")


def _children_ok(left: np.ndarray, right: np.ndarray, internal: np.ndarray, n: int) -> bool:
    index = np.arange(n)
    inside = (left > index) & (left < n) & (right > index) & (right < n)
    return bool(inside[internal].all())


def _check_decision_tree(tree: object, n_features: int, label: str) -> None:
    state = tree.__getstate__()
    nodes, values, n = state["nodes"], state["values"], int(state["node_count"])
    if n < 1 or len(nodes) != n or len(values) != n:
        raise CheckpointError(f"{label}: {n} nodes claimed, {len(nodes)} stored, {len(values)} values")
    left, right, feature = nodes["left_child"], nodes["right_child"], nodes["feature"]
    leaf = left == -1
    if not (right[leaf] == -1).all():
        raise CheckpointError(f"{label}: a leaf has a right child")
    if not _children_ok(left, right, ~leaf, n):
        raise CheckpointError(f"{label}: a node's child index lies outside the tree or before the node")
    if not ((feature[~leaf] >= 0) & (feature[~leaf] < n_features)).all():
        raise CheckpointError(f"{label}: a split names a feature outside 0..{n_features - 1}")
    if tree.n_features != n_features:
        raise CheckpointError(f"{label}: built for {tree.n_features} features, the model takes {n_features}")


def _check_hist_tree(predictor: object, n_features: int, label: str) -> None:
    nodes = predictor.nodes
    n = len(nodes)
    if n < 1:
        raise CheckpointError(f"{label}: no nodes")
    internal = ~nodes["is_leaf"].astype(bool)
    if not _children_ok(nodes["left"].astype(np.int64), nodes["right"].astype(np.int64), internal, n):
        raise CheckpointError(f"{label}: a node's child index lies outside the tree or before the node")
    feature = nodes["feature_idx"].astype(np.int64)
    if not ((feature[internal] >= 0) & (feature[internal] < n_features)).all():
        raise CheckpointError(f"{label}: a split names a feature outside 0..{n_features - 1}")
    categorical = internal & nodes["is_categorical"].astype(bool)
    if categorical.any():
        bitsets = min(len(predictor.raw_left_cat_bitsets), len(predictor.binned_left_cat_bitsets))
        index = nodes["bitset_idx"].astype(np.int64)[categorical]
        if not ((index >= 0) & (index < bitsets)).all():
            raise CheckpointError(f"{label}: a categorical split names a bitset that does not exist")
