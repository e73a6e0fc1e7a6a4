"""Data modules: explicit seeded splits, training-only statistics, the file readers."""

from __future__ import annotations

import gzip

import numpy as np
import pytest
import torch

from noisy_recipes.data import (
    CirclesDataModule,
    CSVDataModule,
    DigitsDataModule,
    FashionMNISTDataModule,
    ForecastDataModule,
    SklearnDataModule,
    UCRDataModule,
    read_idx,
)
from tests.recipes.conftest import write_csv, write_fashion_mnist, write_idx


def _x(dm, split):
    dm.setup()
    return dm.datasets[split].tensors[0]


def test_circles_classic_split():
    dm = CirclesDataModule(train_size=30, val_size=20, test_size=50, seed=0)
    assert dm.split_sizes() == {"train": 30, "val": 20, "test": 50}
    y = dm.datasets["train"].tensors[1]
    assert int(y.sum()) == 15  # stratified: 15 points of each circle
    assert dm.spec.input_shape == (2,) and dm.spec.out_features == 2


def test_training_size_is_one_override_and_leaves_test_unchanged():
    small = CirclesDataModule(train_size=10, val_size=20, test_size=50, seed=0)
    large = CirclesDataModule(train_size=30, val_size=20, test_size=50, seed=0, standardize=False)
    small_raw = CirclesDataModule(train_size=10, val_size=20, test_size=50, seed=0, standardize=False)
    assert small.split_sizes()["train"] == 10
    assert torch.equal(_x(small_raw, "test"), _x(large, "test"))
    assert torch.equal(_x(small_raw, "val"), _x(large, "val"))


def test_splits_are_seeded():
    a, b, c = (CirclesDataModule(train_size=30, val_size=20, test_size=50, seed=s) for s in (0, 0, 1))
    assert torch.equal(_x(a, "train"), _x(b, "train"))
    assert not torch.equal(_x(a, "train"), _x(c, "train"))


def test_standardized_with_training_statistics_only():
    dm = SklearnDataModule(dataset="wine", train_size=50, val_size=0.2, test_size=0.2, seed=0)
    train, test = _x(dm, "train"), _x(dm, "test")
    torch.testing.assert_close(train.mean(0), torch.zeros(train.shape[1]), atol=1e-5, rtol=0)
    torch.testing.assert_close(train.std(0, unbiased=False), torch.ones(train.shape[1]), atol=1e-4, rtol=0)
    assert test.mean(0).abs().max() > 0.05  # test statistics were not used


def test_too_many_samples_requested():
    with pytest.raises(ValueError, match=r"exceed the 100 samples.*data.train_size"):
        CirclesDataModule(train_size=60, val_size=20, test_size=50).setup()


def test_regression_targets_standardized():
    dm = SklearnDataModule(dataset="diabetes", seed=0)
    dm.setup()
    y = dm.datasets["train"].tensors[1]
    assert y.dtype == torch.float32 and y.shape[1] == 1 and abs(float(y.mean())) < 1e-5
    assert dm.spec.task == "regression" and dm.spec.out_features == 1


def test_unknown_sklearn_dataset():
    with pytest.raises(ValueError, match=r"`data.dataset` must be one of .*'wine'.*got 'cars'"):
        SklearnDataModule(dataset="cars")


def test_csv_task_auto_and_string_labels(tmp_path):
    dm = CSVDataModule(path=str(write_csv(tmp_path / "d.csv")), target="label", seed=0)
    assert dm.spec.task == "classification" and dm.spec.out_features == 2 and dm.spec.input_shape == (3,)
    with pytest.raises(FileNotFoundError, match="no CSV file"):
        CSVDataModule(path=str(tmp_path / "nope.csv"), target="label").setup()


def test_digits_images():
    dm = DigitsDataModule(seed=0)
    assert dm.spec.kind == "image" and dm.spec.input_shape == (1, 8, 8) and dm.spec.out_features == 10


def test_idx_reader_roundtrip(tmp_path):
    array = np.arange(2 * 3 * 4).reshape(2, 3, 4) % 256
    write_idx(tmp_path / "a-idx3-ubyte", array)
    (tmp_path / "a-idx3-ubyte.gz").write_bytes(gzip.compress((tmp_path / "a-idx3-ubyte").read_bytes()))
    assert np.array_equal(read_idx(tmp_path / "a-idx3-ubyte"), array)
    assert np.array_equal(read_idx(tmp_path / "a-idx3-ubyte.gz"), array)


def test_fashion_mnist_from_idx_files(tmp_path):
    root = write_fashion_mnist(tmp_path / "fm", n_train=40, n_test=20)
    dm = FashionMNISTDataModule(root=str(root), val_size=10, seed=0)
    assert dm.split_sizes() == {"train": 30, "val": 10, "test": 20}  # the official test set is kept whole
    assert dm.spec.input_shape == (1, 28, 28) and dm.spec.out_features == 10
    with pytest.raises(FileNotFoundError, match=r"no t10k-images-idx3-ubyte.*data.root"):
        (root / "t10k-images-idx3-ubyte").unlink()
        FashionMNISTDataModule(root=str(root)).setup()


@pytest.mark.parametrize("name,shape,classes", [("ItalyPowerDemand", (24, 1), 2), ("BasicMotions", (100, 6), 4)])
def test_sktime_dataset_keeps_official_test_split(name, shape, classes):
    dm = UCRDataModule(dataset=name, val_size=0.2, test_size=None, seed=0)
    sizes = dm.split_sizes()
    official_test = {"ItalyPowerDemand": 1029, "BasicMotions": 40}[name]
    assert sizes["test"] == official_test
    assert dm.spec.input_shape == shape and dm.spec.out_features == classes and dm.spec.kind == "sequence"


def test_forecast_windows_are_chronological():
    dm = ForecastDataModule(dataset="nile", window=10, horizon=2, val_size=0.15, test_size=0.15, standardize=False)
    dm.setup()
    train_x, train_y = dm.datasets["train"].tensors
    test_x, _ = dm.datasets["test"].tensors
    assert train_x.shape[1:] == (10, 1) and train_y.shape[1] == 2
    assert torch.equal(train_x[1, :-1, 0], train_x[0, 1:, 0])  # consecutive windows slide by one step
    values = dm.series()
    torch.testing.assert_close(train_y[0], torch.tensor(values[10:12], dtype=torch.float32))  # the next 2 values
    assert float(test_x[-1, -1, 0]) == pytest.approx(values[-3])  # the last window ends where the series does


def test_training_fraction_counts_from_what_test_and_validation_leave():
    # 100 points - 50 test - 20 validation = 30 left; half of them train.
    sizes = CirclesDataModule(train_size=0.5, val_size=20, test_size=50).split_sizes()
    assert sizes == {"train": 15, "val": 20, "test": 50}
    # test_size null: test is the rest, so the fraction counts from what validation leaves (80 points).
    sizes = CirclesDataModule(train_size=0.5, val_size=20, test_size=None).split_sizes()
    assert sizes == {"train": 40, "val": 20, "test": 40}
    # An official test set: ItalyPowerDemand's 67 training series, 13 validate, half of the other 54 train.
    ucr = UCRDataModule(dataset="ItalyPowerDemand", train_size=0.5, val_size=0.2, test_size=None).split_sizes()
    assert (ucr["train"], ucr["val"]) == (27, 13)
    # Forecast windows: 89 windows - 13 test - 13 validation = 63; half of them (the latest) train.
    nile = ForecastDataModule(dataset="nile", window=10, horizon=2, train_size=0.5, val_size=0.15, test_size=0.15)
    assert nile.split_sizes() == {"train": 32, "val": 13, "test": 13}
