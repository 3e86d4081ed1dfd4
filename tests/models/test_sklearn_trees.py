"""Tree models whose trusted types hold out-of-range indices are refused when loaded,
before scikit-learn's compiled tree code walks them (it would crash the process)."""

import numpy as np
import pytest
import skops.io as sio
from sklearn.ensemble import HistGradientBoostingClassifier, RandomForestClassifier
from sklearn.tree import DecisionTreeClassifier

from audit_cli.errors import CheckpointError
from audit_cli.models.sklearn_model import load_sklearn
from audit_cli.models.sklearn_trees import check_trees

X = np.random.default_rng(0).random((200, 4))
Y = (X[:, 0] + X[:, 1] > 1).astype(int)


def corrupt_tree(tree, field, node, value):
    state = tree.__getstate__()
    nodes = state["nodes"].copy()
    nodes[field][node] = value
    tree.__setstate__({**state, "nodes": nodes})


@pytest.mark.parametrize("field,value,message", [
    ("left_child", 10**6, "child index lies outside"),
    ("right_child", 0, "child index lies outside"),  # a cycle back to the root
    ("feature", 99, "feature outside"),
])  # fmt: skip
def test_a_decision_tree_with_bad_indices_is_refused_from_a_file(tmp_path, field, value, message):
    est = DecisionTreeClassifier(max_depth=3, random_state=0).fit(X, Y)
    check_trees(est, tmp_path)  # a real tree passes
    corrupt_tree(est.tree_, field, 0, value)
    path = tmp_path / "tree.skops"
    path.write_bytes(sio.dumps(est))
    with pytest.raises(CheckpointError, match=message):
        load_sklearn(path)


def test_forests_and_boosted_trees_are_checked_tree_by_tree(tmp_path):
    forest = RandomForestClassifier(n_estimators=3, max_depth=3, random_state=0).fit(X, Y)
    check_trees(forest, tmp_path)
    corrupt_tree(forest.estimators_[2].tree_, "feature", 0, -7)
    with pytest.raises(CheckpointError, match="tree 2: a split names a feature"):
        check_trees(forest, tmp_path)
    boosted = HistGradientBoostingClassifier(max_iter=3, random_state=0).fit(X, Y)
    check_trees(boosted, tmp_path)
    boosted._predictors[1][0].nodes["left"][0] = 10**6
    with pytest.raises(CheckpointError, match="tree 1.0: a node's child index"):
        check_trees(boosted, tmp_path)
