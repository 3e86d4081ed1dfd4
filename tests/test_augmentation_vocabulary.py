"""One augmentation vocabulary: `audit train` and `audit unlearn` know the same words with the
same meaning, and each refuses, in one line naming what it accepts, a word it cannot apply."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
import torch
from typer.testing import CliRunner

from audit_cli.app import app
from audit_cli.errors import UsageError
from audit_cli.models.recipe import AUGMENTATIONS, TRAINING_AUGMENTATIONS, Recipe
from audit_cli.training.loop import augment_batch
from audit_cli.unlearn import base
from audit_cli.unlearn.base import UNLEARNING_AUGMENTATIONS, augment_images


def test_both_commands_draw_from_one_tuple():
    assert set(TRAINING_AUGMENTATIONS) <= set(AUGMENTATIONS)
    assert UNLEARNING_AUGMENTATIONS is AUGMENTATIONS  # unlearning applies every word
    assert base.AUGMENTATIONS is AUGMENTATIONS


def test_training_knows_every_word_and_refuses_others_by_name():
    assert TRAINING_AUGMENTATIONS is AUGMENTATIONS
    for word in AUGMENTATIONS:
        assert Recipe(augmentation=word).augmentation == word
    with pytest.raises(UsageError, match=r"^unknown augmentation 'mixup': training accepts none, flip, crop\+flip, "
                       r"trivialaugment, randaugment, autoaugment$"):  # fmt: skip
        Recipe(augmentation="mixup")


def test_a_policy_means_the_same_in_training_and_unlearning():
    from audit_cli.training.loop import augment

    x = torch.randn(2, 4, 1, 8, 8)
    stats = ((0.3,), (0.4,))
    task = SimpleNamespace(augmentation="trivialaugment", dataset=SimpleNamespace(pixel_stats=stats))
    out = augment_images(x, task, [torch.Generator().manual_seed(k) for k in range(2)])
    same = augment(x, "trivialaugment", stats, [torch.Generator().manual_seed(k) for k in range(2)])
    assert torch.equal(out, same) and out.shape == x.shape and not torch.equal(out, x)


def test_flip_means_the_same_when_unlearning():
    x = torch.arange(2 * 8 * 1 * 3 * 3, dtype=torch.float32).reshape(2, 8, 1, 3, 3)
    task = SimpleNamespace(augmentation="flip", dataset=SimpleNamespace(pixel_stats=None))
    out = augment_images(x, task, [torch.Generator().manual_seed(k) for k in range(2)])
    same = augment_batch(x, "flip", [torch.Generator().manual_seed(k) for k in range(2)])
    assert torch.equal(out, same)
    flipped = (out == x.flip(-1)).flatten(2).all(-1)
    assert ((out == x).flatten(2).all(-1) | flipped).all() and flipped.any()


@pytest.mark.parametrize(
    "args,message",
    [
        (["train", "-o", "{tmp}/m.safetensors", "--augment", "randaugment"],
         "error: augmentation 'randaugment' needs image data; 'digits' is tabular"),
        (["train", "-o", "{tmp}/m.safetensors", "--augment", "mixup"], "error: unknown augmentation 'mixup'"),
        # flip is a word unlearning knows now: refused only because digits are not images.
        (["unlearn", "-m", "sample_models/digits_mlp_original.safetensors", "-o", "{tmp}/u.safetensors",
          "--method", "finetune", "--forget-class", "3", "--augment", "flip"], "error: augmentation 'flip' needs image data"),
        (["unlearn", "-m", "sample_models/digits_mlp_original.safetensors", "-o", "{tmp}/u.safetensors",
          "--method", "finetune", "--forget-class", "3", "--augment", "mixup"],
         "error: unknown augmentation 'mixup': unlearning accepts none, flip, crop+flip, trivialaugment"),
    ],
)  # fmt: skip
def test_the_commands_refuse_in_one_line(tmp_path, args, message):
    result = CliRunner().invoke(app, [a.replace("{tmp}", str(tmp_path)) for a in args])
    assert result.exit_code == 2 and result.stdout == ""
    assert result.stderr.startswith(message) and len(result.stderr.strip().split("\n")) == 1, result.stderr
    assert not list(tmp_path.iterdir())
