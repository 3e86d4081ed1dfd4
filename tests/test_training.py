"""The vectorized ensemble trains each model exactly as it would be trained alone."""

import numpy as np
import pytest
import torch

from audit_cli.data import DatasetSpec, make_dataset
from audit_cli.errors import UsageError
from audit_cli.models.recipe import Recipe
from audit_cli.training.loop import accuracy, model_seeds, predict_logits, train_models


def max_param_diff(a, ka, b, kb):
    return max((a.params[n][ka] - b.params[n][kb]).abs().max().item() for n in a.params)


# A stacked model and the same model trained alone run different kernels (a batched matmul or
# grouped convolution over K models, fused optimizer loops over K times the elements) and round
# apart by float32's eps (1.2e-7, relative) per operation. These runs are short (<= 57 optimizer
# steps, |w| < 1), so the difference stays below eps x |w| x steps = 6.8e-6; measured <= 3e-8
# under every CPU code path of tests/test_cpu_code_paths.py. A model swapped for another of the
# stack, or trained on another subset, is off by 4e-3 to 0.3 (asserted in each test).
ROUNDING = 1e-5


@pytest.mark.numerics
def test_ensemble_model_k_matches_model_k_trained_alone(digits):
    recipe = Recipe(epochs=3, batch_size=32)
    rng = np.random.default_rng(1)
    subsets = [np.sort(rng.choice(digits.train_ids, 600, replace=False)) for _ in range(4)]
    seeds = model_seeds(7, 4)
    together = train_models(digits, recipe, subsets, seeds)
    assert together.size == 4
    for k in range(4):
        alone = train_models(digits, recipe, [subsets[k]], [seeds[k]])
        assert max_param_diff(together, k, alone, 0) < ROUNDING
    # The models really differ from each other (different seeds and subsets).
    assert max_param_diff(together, 0, together, 1) > 1e-2


@pytest.mark.numerics
def test_unequal_subsets_are_grouped_and_returned_in_order(digits):
    recipe = Recipe(epochs=2)
    rng = np.random.default_rng(2)
    subsets = [rng.choice(digits.train_ids, n, replace=False) for n in (300, 200, 300, 200)]
    seeds = model_seeds(3, 4)
    mixed = train_models(digits, recipe, subsets, seeds, chunk_size=1)
    for k in (1, 2):
        alone = train_models(digits, recipe, [subsets[k]], [seeds[k]])
        assert max_param_diff(mixed, k, alone, 0) < ROUNDING
    assert max_param_diff(mixed, 1, alone, 0) > 100 * ROUNDING  # model 2 alone is not model 1


def test_same_seed_same_model_and_global_rng_untouched(digits):
    recipe = Recipe(epochs=1)
    torch.manual_seed(123)
    before = torch.rand(1)
    torch.manual_seed(123)
    a = train_models(digits, recipe, [digits.train_ids], [5])
    after = torch.rand(1)
    b = train_models(digits, recipe, [digits.train_ids], [5])
    assert max_param_diff(a, 0, b, 0) == 0.0
    assert torch.equal(before, after)


def test_training_learns_digits(digits):
    ens = train_models(digits, Recipe(epochs=15), [digits.train_ids], [0])
    logits = predict_logits(ens, digits.x)
    test_rows = digits.rows(digits.test_ids)
    acc = accuracy(logits[:, test_rows], digits.y[test_rows])[0].item()
    assert acc > 0.93


@pytest.mark.numerics
@pytest.mark.parametrize("optimizer,schedule", [("sgd", "cosine"), ("adamw", "constant")])
def test_other_optimizers_match_alone_too(digits, optimizer, schedule):
    recipe = Recipe(
        optimizer=optimizer, schedule=schedule, lr=0.05 if optimizer == "sgd" else 1e-3, weight_decay=1e-3, epochs=2
    )
    subsets = [digits.train_ids[:400], digits.train_ids[400:800]]
    together = train_models(digits, recipe, subsets, [1, 2])
    alone = train_models(digits, recipe, subsets[1:], [2])
    assert max_param_diff(together, 1, alone, 0) < ROUNDING
    assert max_param_diff(together, 0, alone, 0) > 100 * ROUNDING  # nor is model 0


def tiny_images(n=48, size=8):
    rng = np.random.default_rng(0)
    y = np.arange(n) % 3
    x = rng.normal(size=(n, 1, size, size)).astype(np.float32) + y[:, None, None, None]
    is_train = np.arange(n) < 36
    return make_dataset(DatasetSpec("tiny-images"), x, y, is_train, ["a", "b", "c"], "image")


@pytest.mark.numerics
def test_augmented_and_batchnorm_ensemble_matches_alone():
    ds = tiny_images()
    recipe = Recipe(
        arch="cnn", arch_args={"channels": 4, "hidden": 8}, augmentation="crop+flip", epochs=2, batch_size=8
    )
    subsets = [ds.train_ids[:24], ds.train_ids[12:36]]
    together = train_models(ds, recipe, subsets, [1, 2])
    alone = train_models(ds, recipe, subsets[1:], [2])
    assert max_param_diff(together, 1, alone, 0) < ROUNDING
    assert max_param_diff(together, 0, alone, 0) > 100 * ROUNDING  # model 0 is not model 1


@pytest.mark.numerics
def test_a_torchvision_policy_trains_each_model_from_its_own_seed():
    """Training with trivialaugment: a stacked model equals the same model trained alone
    (the policy draws from the model's generator, not the chunk's), and the policy acts."""
    from audit_cli.data import load_dataset

    ds = load_dataset("digits-images")
    recipe = Recipe(arch="mlp", arch_args={"hidden": (16,)}, augmentation="trivialaugment", epochs=1, batch_size=64)
    subsets = [ds.train_ids[:128], ds.train_ids[64:192]]
    together = train_models(ds, recipe, subsets, [1, 2])
    alone = train_models(ds, recipe, subsets[1:], [2])
    assert max_param_diff(together, 1, alone, 0) < ROUNDING
    plain = train_models(ds, Recipe(arch="mlp", arch_args={"hidden": (16,)}, epochs=1, batch_size=64), subsets[1:], [2])
    assert max_param_diff(plain, 0, alone, 0) > 1e-3


def test_a_policy_needs_pixel_statistics_and_says_so_before_training():
    ds = tiny_images()  # images without recorded pixel statistics
    with pytest.raises(UsageError, match="needs images with known pixel statistics"):
        train_models(ds, Recipe(arch="mlp", augmentation="randaugment", epochs=1), [ds.train_ids], [0])


def test_batchnorm_buffers_are_stacked_and_updated():
    ds = tiny_images(size=32)
    ds3 = make_dataset(DatasetSpec("rgb"), np.repeat(ds.x, 3, axis=1), ds.y, ds.is_train, ds.class_names, "image")
    recipe = Recipe(arch="resnet18", epochs=1, batch_size=12)
    ens = train_models(ds3, recipe, [ds3.train_ids[:12], ds3.train_ids[12:24]], [1, 2])
    rm = ens.buffers["bn1.running_mean"]
    assert rm.shape == (2, 64)
    assert not torch.equal(rm[0], rm[1]) and rm.abs().sum() > 0
    assert predict_logits(ens, ds3.x[:5]).shape == (2, 5, 3)


def test_augmentation_refused_on_tabular(digits):
    with pytest.raises(UsageError, match="needs image data"):
        train_models(digits, Recipe(augmentation="flip"), [digits.train_ids], [0])


def test_recipe_validation_and_roundtrip():
    r = Recipe(arch="mlp", arch_args={"hidden": "128,64"}, epochs=3)
    assert r.arch_args == {"hidden": (128, 64)}
    assert Recipe.from_dict(r.to_dict()) == r
    for bad in ({"optimizer": "rmsprop"}, {"epochs": 0}, {"lr": -1.0}, {"augmentation": "mixup"}, {"seed": -1},
                {"seed": 2**32}, {"seed": True}, {"momentum": 1.0}, {"momentum": -0.1}):
        with pytest.raises(UsageError):
            Recipe(**bad)
    with pytest.raises(UsageError, match="unknown field"):
        Recipe.from_dict({"epochz": 3})


def test_model_seeds_are_distinct_and_reproducible():
    s = model_seeds(0, 64)
    assert len(set(s)) == 64 and s == model_seeds(0, 64) and s != model_seeds(1, 64)


@pytest.mark.numerics
def test_stacked_resnet18_matches_resnet18_trained_alone_batchnorm_buffers_included():
    # CIFAR-shaped images through the vectorized trainer: a narrow ResNet-18 (width 4),
    # BatchNorm's running statistics stacked like the weights. Eighteen layers of BatchNorm
    # over batches of 8 amplify rounding far past ROUNDING's eps x |w| x steps (measured: one
    # ulp of input moves the weights by up to 3e-3 after 12 steps), so the floor is measured
    # here: the same model trained alone at 1 and at 2 threads, which only reorders its sums.
    # Stacking may differ from alone by a rounding floor (measured 5.8e-4 against a floor of
    # 3.6e-5, 16x, on an AMD EPYC), never by what another model or batch order would (>= 1).
    from audit_cli.data import load_dataset

    ds = load_dataset("cifar10-shaped", {"n_train": 48, "n_test": 12})
    recipe = Recipe(arch="resnet18", arch_args={"width": 4}, epochs=2, batch_size=8, augmentation="crop+flip")
    subsets = [ds.train_ids[:40], ds.train_ids[8:]]
    threads = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        together = train_models(ds, recipe, subsets, [1, 2])
        alone = train_models(ds, recipe, subsets[1:], [2])
        torch.set_num_threads(2)
        reordered = train_models(ds, recipe, subsets[1:], [2])
    finally:
        torch.set_num_threads(threads)
    floor = max(max_param_diff(reordered, 0, alone, 0), ROUNDING)
    stacked = max_param_diff(together, 1, alone, 0)
    other = max_param_diff(together, 0, alone, 0)
    assert stacked < 100 * floor and other > 1000 * stacked, (stacked, floor, other)
    for name in ("bn1.running_mean", "layer4.1.bn2.running_var"):
        assert (together.buffers[name][1] - alone.buffers[name][0]).abs().max().item() < 100 * floor
        assert not torch.equal(together.buffers[name][0], together.buffers[name][1])
    logits = predict_logits(together, ds.x[:5])
    assert logits.shape == (2, 5, 10) and torch.isfinite(logits).all()
