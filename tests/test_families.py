"""Model families (audit_cli/families/): one interface to fit K models, query their
logits and unlearn them, for torch networks and scikit-learn estimators alike."""

import numpy as np
import pytest

from audit_cli.errors import UsageError
from audit_cli.families import family_of
from audit_cli.families.estimators import ESTIMATORS
from audit_cli.families.networks import NETWORKS
from audit_cli.models.recipe import Recipe
from audit_cli.models.sklearn_model import SklearnRecipe
from audit_cli.unlearn import UnlearnTask, get_method, parse_params


@pytest.fixture(scope="module")
def data():
    from audit_cli.data import load_dataset

    return load_dataset("synthetic", {"n_samples": "240", "n_features": "8", "n_classes": "3"})


def test_the_recipe_decides_the_family():
    assert family_of(Recipe()) is NETWORKS
    assert family_of(SklearnRecipe(arch="decision-tree")) is ESTIMATORS


@pytest.mark.parametrize("family,recipe", [
    (NETWORKS, Recipe(arch="mlp", arch_args={"hidden": (16,)}, epochs=3, batch_size=32)),
    (ESTIMATORS, SklearnRecipe(arch="decision-tree", params={"max_depth": 3})),
])  # fmt: skip
def test_fit_k_models_and_query_their_logits(data, family, recipe):
    ids = [data.train_ids[:100], data.train_ids[50:150]]
    models = family.fit(data, recipe, ids, [0, 1], "cpu")
    logits = family.logits(models, data, recipe)
    assert logits.shape == (1, 2, len(data.ids), data.num_classes) and np.isfinite(logits).all()
    again = family.logits(family.fit(data, recipe, ids, [0, 1], "cpu"), data, recipe)
    np.testing.assert_array_equal(logits, again)  # same ids and seeds: the same models


def test_an_estimator_is_unlearned_exactly_or_not_at_all(data):
    recipe = SklearnRecipe(arch="decision-tree", params={"max_depth": 3})
    ESTIMATORS.check_method(get_method("retrain"), recipe)
    ESTIMATORS.check_method(get_method("mpru"), recipe)  # a filter works on any family's outputs
    with pytest.raises(UsageError, match="unlearned by retrain or by an output filter"):
        ESTIMATORS.check_method(get_method("neggrad"), recipe)
    trained, forget = data.train_ids[:120], data.train_ids[:20]
    retain = np.setdiff1d(trained, forget)
    models = ESTIMATORS.fit(data, recipe, [trained], [3], "cpu")
    task = UnlearnTask(data, [forget], [retain], recipe, [3])
    entry = get_method("retrain")
    unlearned = ESTIMATORS.unlearn(models, task, entry, parse_params(entry, {}), "cpu")
    refit = ESTIMATORS.fit(data, recipe, [retain], [3], "cpu")
    np.testing.assert_array_equal(ESTIMATORS.logits(unlearned, data, recipe), ESTIMATORS.logits(refit, data, recipe))
