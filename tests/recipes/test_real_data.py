"""Real data for the method cards: Fashion-MNIST from Debian's files, the corrupted-label training split, and the
deep network of Neelakantan et al. (2015) as ``experiment=fashion_gradient`` builds it."""

from __future__ import annotations

import math
from pathlib import Path

import hydra
import numpy as np
import pytest
import torch
from scipy import stats
from torch import nn

from noisy_recipes import data as data_lib
from noisy_recipes.data import FashionMNISTDataModule, corrupt_labels
from noisy_recipes.models import MLP
from tests.recipes.conftest import write_fashion_mnist

DEBIAN = Path(data_lib.DEBIAN_FASHION_MNIST)
needs_debian_files = pytest.mark.skipif(
    not (DEBIAN / "t10k-labels-idx1-ubyte.gz").is_file(),
    reason="Debian's dataset-fashion-mnist is not installed (apt-get install dataset-fashion-mnist)",
)


# ---------------------------------------------------------------------------------------------- Fashion-MNIST
@needs_debian_files
def test_fashion_mnist_loads_from_the_debian_files_by_default():
    dm = FashionMNISTDataModule(train_size=200, val_size=100, test_size=300, seed=0)
    assert dm.root == DEBIAN
    assert dm.split_sizes() == {"train": 200, "val": 100, "test": 300}
    assert dm.spec.input_shape == (1, 28, 28) and dm.spec.out_features == 10
    x, y = dm.datasets["train"].tensors
    assert abs(float(x.mean())) < 0.1 and abs(float(x.std()) - 1) < 0.1  # standardized with training statistics
    assert set(y.tolist()) == set(range(10))  # a stratified draw holds every class
    raw = data_lib.read_idx(DEBIAN / "t10k-labels-idx1-ubyte.gz")
    assert raw.shape == (10000,) and np.bincount(raw).tolist() == [1000] * 10  # the official test set


@needs_debian_files
def test_fashion_mnist_config_needs_no_root(compose_cfg):
    cfg = compose_cfg(["data=fashion_mnist", "data.train_size=100", "data.val_size=50", "data.test_size=50"])
    assert cfg.data.root is None
    dm = hydra.utils.instantiate(cfg.data)
    assert dm.split_sizes() == {"train": 100, "val": 50, "test": 50}


def test_unit_range_puts_the_grey_levels_in_zero_one(tmp_path):
    """``unit_range=True`` with ``standardize=False``: the grey levels / 255, the scale at which the smoothing
    literature quotes sigma (experiment=fashion_certify); standardized inputs do not change."""
    root = write_fashion_mnist(tmp_path / "fm", n_train=40, n_test=20)
    kw = {"root": str(root), "train_size": 20, "val_size": 10, "seed": 0}

    def test_images(**more) -> torch.Tensor:
        dm = FashionMNISTDataModule(**kw, **more)
        dm.setup()
        return dm.datasets["test"].tensors[0]

    raw, unit = test_images(standardize=False), test_images(standardize=False, unit_range=True)
    assert float(raw.max()) > 200 and 0.9 < float(unit.max()) <= 1.0 and float(unit.min()) >= 0.0
    torch.testing.assert_close(unit, raw / 255)
    standardized = [test_images(unit_range=u) for u in (False, True)]
    torch.testing.assert_close(*standardized, rtol=1e-5, atol=1e-5)
    with pytest.raises(TypeError, match=r"data.unit_range must be true or false, got 'yes'"):
        FashionMNISTDataModule(**kw, unit_range="yes")


def test_fashion_certify_certifies_in_zero_one_pixel_units(compose_cfg):
    cfg = compose_cfg(["experiment=fashion_certify", "variant=input_at_sigma", "eval.certification.sigma=0.5"])
    assert cfg.data.unit_range is True and cfg.data.standardize is False
    assert cfg.noise.input.std.amount == 0.5 and cfg.eval.certification.n == 10_000
    assert cfg.eval.certification.max_samples == 500 and cfg.eval.certification.alpha == 0.001


def test_missing_files_say_how_to_install_them(tmp_path, monkeypatch):
    with pytest.raises(FileNotFoundError, match=r"apt-get install dataset-fashion-mnist.*data\.root") as error:
        FashionMNISTDataModule(root=str(tmp_path)).setup()
    assert "\n" not in str(error.value)  # one line
    monkeypatch.setattr(data_lib, "DEBIAN_FASHION_MNIST", str(tmp_path / "absent"))
    with pytest.raises(FileNotFoundError, match=r"absent.*apt-get install dataset-fashion-mnist"):
        FashionMNISTDataModule().setup()


# ---------------------------------------------------------------------------------------------- noisy labels
@pytest.mark.parametrize("fraction", [0.2, 0.4])
def test_corrupt_labels_flips_exactly_the_fraction_to_other_classes(fraction):
    y = np.arange(5000) % 10
    noisy, flipped = corrupt_labels(y, fraction, 10, seed=3)
    assert flipped.sum() == round(fraction * len(y))
    assert np.array_equal(noisy != y, flipped)  # every flipped label changed class; no other label changed
    assert np.array_equal(y, np.arange(5000) % 10)  # the input is not modified
    again, _ = corrupt_labels(y, fraction, 10, seed=3)
    assert np.array_equal(noisy, again)  # fixed by the seed
    assert not np.array_equal(noisy, corrupt_labels(y, fraction, 10, seed=4)[0])
    # symmetric: the new class is uniform among the 9 others (chi-square, fixed seed, 0.1% level)
    offsets = (noisy[flipped] - y[flipped]) % 10
    counts = np.bincount(offsets, minlength=10)[1:]
    assert stats.chisquare(counts).pvalue > 1e-3


@pytest.mark.parametrize(
    "fraction,classes,match",
    [(1.0, 10, "`fraction` must be in"), (-0.1, 10, "`fraction` must be in"), (0.2, 1, "`num_classes`")],
)
def test_corrupt_labels_refuses_bad_arguments(fraction, classes, match):
    with pytest.raises(ValueError, match=match):
        corrupt_labels(np.zeros(10, dtype=int), fraction, classes)


def test_label_noise_corrupts_the_training_split_only(tmp_path):
    root = write_fashion_mnist(tmp_path / "fm", n_train=300, n_test=50)
    kw = dict(root=str(root), train_size=200, val_size=50, seed=1)
    clean = FashionMNISTDataModule(**kw)
    noisy = FashionMNISTDataModule(**kw, label_noise=0.4, label_noise_seed=7)
    clean.setup(), noisy.setup()
    y_clean, y_noisy = clean.datasets, noisy.datasets
    assert (y_clean["train"].tensors[1] != y_noisy["train"].tensors[1]).sum() == 80  # 40% of 200, never the same
    assert torch.equal(y_clean["train"].tensors[0], y_noisy["train"].tensors[0])  # the same images
    for split in ("val", "test"):
        assert torch.equal(y_clean[split].tensors[1], y_noisy[split].tensors[1])  # clean labels


def test_label_noise_is_refused_on_regression_data():
    with pytest.raises(ValueError, match="`data.label_noise`=0.2 flips class labels, but diabetes is regression"):
        data_lib.SklearnDataModule(dataset="diabetes", label_noise=0.2).setup()
    with pytest.raises(ValueError, match="`data.label_noise` must be a fraction in"):
        data_lib.SklearnDataModule(dataset="iris", label_noise=1.5)


# ---------------------------------------------------------------------------------------------- Neelakantan et al.
FASHION = data_lib.DataSpec("fashion_mnist", "image", "classification", (1, 28, 28), 10)


def _gradient_setting(compose_cfg, *overrides: str) -> tuple:
    cfg = compose_cfg(["experiment=fashion_gradient", *overrides])
    torch.manual_seed(0)
    model = hydra.utils.instantiate(cfg.model, _partial_=True, _convert_="all")(FASHION)
    return cfg, model


@pytest.mark.parametrize("init", ["normal", "he_normal"])
def test_neelakantan_network_layer_by_layer(init, compose_cfg):
    cfg, model = _gradient_setting(compose_cfg, f"model.init={init}")
    assert isinstance(model, MLP)
    flatten, stack = model.net  # Flatten, then the Linear/ReLU stack
    assert isinstance(flatten, nn.Flatten)
    layers = [flatten, *stack]
    linears = [m for m in layers if isinstance(m, nn.Linear)]
    assert [(m.in_features, m.out_features) for m in linears] == [(784, 50)] + [(50, 50)] * 19 + [(50, 10)]
    # Linear, ReLU, Linear, ReLU, ... Linear: a ReLU after each of the 20 hidden layers, none after the output
    kinds = [type(m) for m in layers[1:]]
    assert kinds == [nn.Linear, nn.ReLU] * 20 + [nn.Linear]
    for layer in linears:
        w = layer.weight.detach()
        expected = 0.1 if init == "normal" else math.sqrt(2 / layer.in_features)
        # sample std of n normal draws: relative standard error ~ 1 / sqrt(2 n) (<= 7% at n = 500); 4 errors allowed
        tolerance = 4 / math.sqrt(2 * w.numel())
        assert abs(float(w.std()) / expected - 1) < tolerance, (init, layer, float(w.std()))
        assert abs(float(w.mean())) < 4 * expected / math.sqrt(w.numel())
        assert stats.kstest((w.flatten() / expected).numpy(), "norm").pvalue > 1e-3  # Gaussian, not uniform
        assert torch.count_nonzero(layer.bias) == 0  # biases zero (our choice; the paper does not say)


def test_neelakantan_optimizer_noise_and_clipping(compose_cfg):
    cfg, model = _gradient_setting(
        compose_cfg, "variant=gradient_neelakantan", "model.optimizer.lr=0.1", "trainer.gradient_clip_val=10"
    )
    optimizer = model.configure_optimizers()
    assert type(optimizer) is torch.optim.SGD
    group = optimizer.param_groups[0]
    assert group["lr"] == 0.1 and group["momentum"] == 0 and group["weight_decay"] == 0 and not group["nesterov"]
    assert cfg.trainer.gradient_clip_val == 10 and cfg.trainer.gradient_clip_algorithm == "norm"
    assert cfg.noise.gradient._target_ == "lightning_noise.GradientNoise"
    std = hydra.utils.instantiate(cfg.noise.gradient.std)  # the std schedule the callback receives
    for t in (0, 1, 10, 1000):  # the paper's variance eta / (1 + t) ** gamma, eta = 0.01, gamma = 0.55
        assert std(t) ** 2 == pytest.approx(0.01 / (1 + t) ** 0.55, rel=1e-6)
    # a diverged run ends as the no-noise arm's does (EarlyStopping on a non-finite validation loss), not in an error
    assert hydra.utils.instantiate(cfg.noise.gradient).check_finite is False
    assert cfg.callbacks.early_stopping.check_finite is True
    plain = compose_cfg(["experiment=fashion_gradient"])
    assert not plain.noise and plain.trainer.gradient_clip_val is None and plain.model.optimizer.lr == 0.01
    assert plain.data.train_size is None and plain.trainer.max_epochs == 15  # 55,000 images x 15 epochs


def test_fashion_cnn_pools_to_seven_by_seven(compose_cfg):
    """The cards' CNN keeps a 7x7 map for its head (model.pooled=7); the default 2x2 (for 8x8 digits) left a
    Fashion-MNIST CNN at 76% test accuracy."""
    cfg = compose_cfg(["experiment=fashion_cnn"])
    model = hydra.utils.instantiate(cfg.model, _partial_=True, _convert_="all")(FASHION)
    pool, head = model.net[-3], model.net[-1]
    assert isinstance(pool, nn.AdaptiveAvgPool2d) and pool.output_size == 7
    assert head.in_features == 32 * 7 * 7
    assert model.net(torch.zeros(2, 1, 28, 28)).shape == (2, 10)
    assert compose_cfg(["model=cnn"]).model.pooled == 2
    with pytest.raises(ValueError, match=r"model.pooled must be an integer >= 1 .* got 0"):
        hydra.utils.instantiate(cfg.model, pooled=0, _partial_=True, _convert_="all")(FASHION)
