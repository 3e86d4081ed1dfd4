"""Model families behind one interface: torch networks and scikit-learn estimators.

The shadow bank, and anything else that trains many models like the audited one, asks a
family to fit K models on K id sets, to query their logits on every example, and to
unlearn them with a registered method. Which family a model belongs to follows from its
recipe (a network ``Recipe`` or a ``SklearnRecipe``); that is the one place it is decided.

A family also says which methods it can replay: networks run every weight update; an
estimator has no weights to update, so it is unlearned exactly (fitting again on the
retain set) or through an output filter, which works on any family's outputs. The user's
own training code (``--trainer``) is a family too: it trains the shadows as it trained the
audited model, and the user's unlearning code (``--unlearner``) unlearns them.

The registry: each family module says which recipes it claims (``claims(recipe)``), and
``family_of`` asks them in order. A new family is a module here with its class and its
``claims``, and one line in ``FAMILIES``.
"""

from __future__ import annotations

from collections.abc import Callable

from audit_cli.errors import UsageError
from audit_cli.families import estimators, federations, networks, user_code
from audit_cli.families.base import ModelFamily

# Asked in order; the first that claims a recipe trains it (a federated Recipe is a Recipe
# too, so federations come before networks).
FAMILIES: tuple[tuple[Callable[[object], bool], Callable[[object], ModelFamily]], ...] = (
    (user_code.claims, user_code.UserCode),
    (federations.claims, lambda recipe: federations.FEDERATIONS),
    (estimators.claims, lambda recipe: estimators.ESTIMATORS),
    (networks.claims, lambda recipe: networks.NETWORKS),
)


def family_of(recipe: object) -> ModelFamily:
    """The family that trains ``recipe``."""
    for claims, family in FAMILIES:
        if claims(recipe):
            return family(recipe)
    raise UsageError(f"no model family trains a {type(recipe).__name__}")
