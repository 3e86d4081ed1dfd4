"""Built-in datasets: stable ids and splits, fingerprints, options."""

import numpy as np
import pytest

from audit_cli.data import DATASETS, load_dataset, resolve_spec
from audit_cli.errors import DatasetError, IdFileError, UsageError


def test_digits_split_is_fixed_stratified_and_ids_are_sklearn_rows():
    from sklearn.datasets import load_digits

    ds = load_dataset("digits")
    raw = load_digits()
    assert ds.x.shape == (1797, 64) and ds.x.dtype == np.float32
    assert np.array_equal(ds.ids, np.arange(1797))
    np.testing.assert_allclose(ds.x, raw.data / 16.0, rtol=1e-6)
    assert np.array_equal(ds.y, raw.target)
    assert ds.is_train.sum() == 1347 and (~ds.is_train).sum() == 450
    # Stratified: each class's test share is within a rounding of 25%.
    for c in range(10):
        share = (~ds.is_train[ds.y == c]).mean()
        assert abs(share - 0.25) < 0.02
    again = load_dataset("digits")
    assert again.fingerprint == ds.fingerprint and np.array_equal(again.is_train, ds.is_train)


def test_digits_images_are_the_digits_as_standardised_8x8_images():
    flat, images = load_dataset("digits"), load_dataset("digits-images")
    assert images.x.shape == (1797, 1, 8, 8) and images.modality == "image" and images.input_shape == (1, 8, 8)
    assert np.array_equal(images.ids, flat.ids) and np.array_equal(images.is_train, flat.is_train)
    assert np.array_equal(images.y, flat.y) and images.fingerprint != flat.fingerprint
    (mean,), (std,) = images.pixel_stats
    train = flat.x[flat.is_train]
    assert mean == pytest.approx(train.mean(), rel=1e-5) and std == pytest.approx(train.std(), rel=1e-4)
    # Undoing the standardisation gives the flat pixels back, row for row.
    np.testing.assert_allclose((images.x * std + mean).reshape(1797, 64), flat.x, atol=1e-5)


def test_blocks_put_the_forget_set_in_one_block_coupled_by_the_correlation():
    independent = load_dataset("blocks")
    coupled = load_dataset("blocks", {"correlation": "1.0"})
    for ds in (independent, coupled):
        assert ds.x.shape == (700, 20) and ds.is_train.sum() == 500 and ds.num_classes == 2
        assert ds.is_train[:500].all() and not ds.is_train[500:].any()
    a, b = slice(0, 10), slice(10, 20)
    # ε = 0: block-A examples (ids 0..99) have nothing in block B, block-B ones nothing in A.
    assert not independent.x[:100, b].any() and not independent.x[100:500, a].any()
    assert independent.x[:100, a].std() == pytest.approx(1.0, abs=0.15)
    # ε = 1: the other block is a rotation of the own one (plus 10% noise): same energy.
    ratio = np.linalg.norm(coupled.x[:100, b]) / np.linalg.norm(coupled.x[:100, a])
    assert ratio == pytest.approx(1.0, abs=0.05)
    with pytest.raises(UsageError, match="correlation must lie"):
        load_dataset("blocks", {"correlation": "-1"})


def test_fingerprint_changes_with_content():
    a = load_dataset("digits")
    b = load_dataset("digits", {"test_fraction": "0.3"})
    assert a.fingerprint != b.fingerprint
    assert b.spec.options["test_fraction"] == 0.3


def test_mnist1d_is_generated_offline_and_sized():
    ds = load_dataset("mnist1d", {"num_samples": "500"})
    assert ds.x.shape == (500, 40) and ds.modality == "sequence"
    assert ds.is_train.sum() == 400
    assert set(np.unique(ds.y)) == set(range(10))
    state = np.random.get_state()[1].copy()
    again = load_dataset("mnist1d", {"num_samples": "500"})
    assert again.fingerprint == ds.fingerprint
    assert np.array_equal(np.random.get_state()[1], state), "mnist1d must not move the global numpy RNG"


def test_synthetic_options_shape_the_data():
    ds = load_dataset("synthetic", {"n_samples": "300", "n_classes": "3", "n_features": "5", "seed": "4"})
    assert ds.x.shape == (300, 5) and ds.num_classes == 3
    assert ds.is_train.sum() == 225
    other = load_dataset("synthetic", {"n_samples": "300", "n_classes": "3", "n_features": "5", "seed": "5"})
    assert other.fingerprint != ds.fingerprint


def test_unknown_dataset_and_options_are_usage_errors():
    with pytest.raises(UsageError, match="unknown dataset"):
        load_dataset("imagenet-22k")
    with pytest.raises(UsageError, match="no option 'size'"):
        resolve_spec("digits", {"size": "3"})
    with pytest.raises(UsageError, match="expected int"):
        resolve_spec("mnist1d", {"num_samples": "many"})


def test_rows_and_class_ids():
    ds = load_dataset("digits")
    ids = ds.train_ids[[5, 0, 9]]
    assert np.array_equal(ds.ids[ds.rows(ids)], ids)
    with pytest.raises(IdFileError, match="not in dataset"):
        ds.rows(np.array([0, 5000]))
    threes = ds.ids_of_class(3)
    assert len(threes) == (ds.y[ds.is_train] == 3).sum() and (ds.y[ds.rows(threes)] == 3).all()
    with pytest.raises(DatasetError, match="class 12"):
        ds.ids_of_class(12)


def test_every_registered_dataset_has_a_description():
    assert {"digits", "mnist1d", "synthetic"} <= set(DATASETS)
    assert all(e.description for e in DATASETS.values())


def test_cifar10_shaped_images_have_cifars_shape_a_seed_and_learnable_classes():
    from sklearn.linear_model import LogisticRegression

    ds = load_dataset("cifar10-shaped", {"n_train": 600, "n_test": 200})
    assert ds.x.shape == (800, 3, 32, 32) and ds.x.dtype == np.float32 and ds.modality == "image"
    assert ds.num_classes == 10 and ds.input_shape == (3, 32, 32)
    assert ds.is_train.sum() == 600 and np.bincount(ds.y[~ds.is_train]).tolist() == [20] * 10
    # Standardised per channel on the training images, with the statistics recorded.
    train = ds.x[ds.is_train]
    assert np.allclose(train.mean(axis=(0, 2, 3)), 0, atol=1e-3) and np.allclose(train.std(axis=(0, 2, 3)), 1, atol=1e-3)
    assert len(ds.pixel_stats[0]) == 3
    again, other = load_dataset("cifar10-shaped", {"n_train": 600, "n_test": 200}), load_dataset(
        "cifar10-shaped", {"n_train": 600, "n_test": 200, "seed": 1})  # fmt: skip
    assert again.fingerprint == ds.fingerprint and other.fingerprint != ds.fingerprint
    # Classes are learnable and not trivial: a linear model beats chance (0.1) by far on
    # held-out images, and remembers its training images better than it predicts new ones.
    flat = ds.x.reshape(len(ds.x), -1)
    model = LogisticRegression(max_iter=200, C=0.01).fit(flat[ds.is_train], ds.y[ds.is_train])
    test_acc = model.score(flat[~ds.is_train], ds.y[~ds.is_train])
    assert 0.25 < test_acc < 0.9 and model.score(flat[ds.is_train], ds.y[ds.is_train]) > test_acc + 0.05


def test_cifar10_shaped_sizes_are_bounded_before_anything_is_generated():
    with pytest.raises(UsageError, match="together at most 60000"):
        load_dataset("cifar10-shaped", {"n_train": 60_000, "n_test": 1000})
    with pytest.raises(UsageError, match="noise must lie in 0..10"):
        load_dataset("cifar10-shaped", {"noise": -1})
