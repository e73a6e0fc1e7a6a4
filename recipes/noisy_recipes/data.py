"""LightningDataModules for the recipes. Nothing is downloaded: every dataset is generated, ships inside an
installed package (scikit-learn, sktime, statsmodels), or is read from files the user points at.

Splits are explicit and seeded. A dataset without an official test split is one pool from which the test set,
then the validation set, then the training set are drawn (stratified for classification), so changing
``train_size`` leaves the test and validation sets unchanged. A dataset with an official split (sktime's UCR
archives, Fashion-MNIST) keeps its test set and carves validation from its training set. Features (and
regression targets) are standardized with statistics of the training split only.
"""

from __future__ import annotations

import csv
import functools
import gzip
import math
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import lightning.pytorch as pl
import numpy as np
import torch
from torch.utils.data import DataLoader, TensorDataset

Kind = Literal["tabular", "image", "sequence"]
Task = Literal["classification", "regression"]
Size = int | float | None


@dataclass(frozen=True)
class DataSpec:
    """What a model needs to know about the data: built by the data module at ``setup``."""

    name: str
    kind: Kind
    task: Task
    input_shape: tuple[int, ...]  # of one sample: (features,), (channels, H, W) or (time, channels)
    out_features: int  # number of classes, or of regression targets

    def describe(self) -> str:
        return f"{self.name}: {self.kind} {self.input_shape}, {self.task} ({self.out_features} outputs)"


@dataclass
class Pool:
    """Arrays as loaded: one pool, or a training pool plus an official test set."""

    x: np.ndarray
    y: np.ndarray
    x_test: np.ndarray | None = None
    y_test: np.ndarray | None = None


def _count(size: Size, n: int, argument: str) -> int | None:
    """Turn a size (count, fraction of ``n`` or None) into a count; None stays None."""
    if size is None:
        return None
    if isinstance(size, bool) or not isinstance(size, (int, float)):
        raise ValueError(f"`data.{argument}` must be a count, a fraction in (0, 1) or null, got {size!r}.")
    if isinstance(size, float) and not size.is_integer():
        if not 0.0 < size < 1.0:
            raise ValueError(f"`data.{argument}` as a fraction must be in (0, 1), got {size!r}.")
        return max(1, round(size * n))
    if size < 0:
        raise ValueError(f"`data.{argument}` must be >= 0, got {size!r}.")
    return int(size)


def _take(idx: np.ndarray, y: np.ndarray, k: int, seed: int, stratify: bool) -> tuple[np.ndarray, np.ndarray]:
    """Split ``idx`` into ``k`` drawn indices and the rest; stratified by ``y`` when it can be."""
    if k == len(idx):
        return idx, idx[:0]
    if k == 0:
        return idx[:0], idx
    from sklearn.model_selection import train_test_split

    labels = y[idx] if stratify else None
    if labels is not None:
        _, counts = np.unique(labels, return_counts=True)
        classes = len(counts)
        if counts.min() < 2 or k < classes or len(idx) - k < classes:
            labels = None  # too few samples per class to stratify: plain seeded draw
    taken, rest = train_test_split(idx, train_size=k, random_state=seed, stratify=labels)
    return np.sort(taken), np.sort(rest)


def _encode_labels(*parts: np.ndarray) -> list[np.ndarray]:
    classes = np.unique(np.concatenate([np.asarray(p).ravel() for p in parts]))
    return [np.searchsorted(classes, np.asarray(p).ravel()).astype(np.int64) for p in parts]


def corrupt_labels(y: np.ndarray, fraction: float, num_classes: int, *, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Symmetric label noise: ``round(fraction * len(y))`` labels, drawn without replacement, each replaced by a
    class drawn uniformly among the ``num_classes - 1`` other classes.

    Args:
        y: integer class labels in ``[0, num_classes)``.
        fraction: fraction of labels to flip, in [0, 1).
        num_classes: number of classes (at least 2).
        seed: seed of a NumPy generator of its own (the global RNG is not touched).

    Returns:
        ``(noisy labels, mask of the flipped positions)``; ``y`` itself is not modified.

    Raises:
        ValueError: a fraction outside [0, 1), fewer than 2 classes, or labels outside ``[0, num_classes)``.

    Example:
        >>> noisy, flipped = corrupt_labels(np.arange(10) % 2, 0.2, 2, seed=0)
        >>> int(flipped.sum()), bool((noisy != np.arange(10) % 2)[flipped].all())
        (2, True)
    """
    if not 0 <= fraction < 1:
        raise ValueError(f"`fraction` must be in [0, 1), got {fraction!r}.")
    if num_classes < 2:
        raise ValueError(f"`num_classes` must be >= 2 to flip labels, got {num_classes!r}.")
    y = np.asarray(y)
    if len(y) and (y.min() < 0 or y.max() >= num_classes):
        raise ValueError(f"labels must lie in [0, {num_classes}), got values in [{y.min()}, {y.max()}].")
    rng = np.random.default_rng(seed)
    flipped = np.zeros(len(y), dtype=bool)
    flipped[rng.choice(len(y), size=round(fraction * len(y)), replace=False)] = True
    noisy = y.copy()
    shift = rng.integers(1, num_classes, size=int(flipped.sum()))  # 1..k-1: never the original class
    noisy[flipped] = (y[flipped] + shift) % num_classes
    return noisy, flipped


class ArrayDataModule(pl.LightningDataModule):
    """Base data module: loads arrays (``load``), splits, standardizes, serves ``TensorDataset`` loaders.

    Args:
        train_size: training samples (count, fraction of what remains after test and validation, or null
            for all of it; with ``test_size`` null, test is the rest, so a fraction counts from what validation
            leaves).
        val_size: validation samples, drawn from the pool (or the official training set); 0 for no validation
            split (then turn validation off: ``trainer.limit_val_batches=0 callbacks=none``).
        test_size: test samples drawn from the pool; with an official test set, null keeps all of it and a
            number subsamples it.
        batch_size: mini-batch size of every loader.
        standardize: standardize inputs (and regression targets) with training-split statistics.
        seed: seed of the splits and of the training loader's shuffling.
        split: ``"random"`` (seeded draws, stratified for classification) or ``"ordered"``: the pool's first
            ``train_size`` samples train, the next ``val_size`` validate, the next ``test_size`` (null: the rest)
            test; an official test set is kept (its first ``test_size`` samples).
        label_noise: fraction of the *training* labels replaced by another class, drawn uniformly among the
            others (symmetric label noise: data corrupted on purpose to study learning with noisy labels; the
            validation and test labels stay clean). Classification only; 0 leaves the labels as they are.
        label_noise_seed: seed of which training labels are flipped and to what (kept apart from ``seed`` so
            that one corruption can be held fixed while the training seed varies).

    Raises:
        ValueError: a bad batch size, split mode or label noise fraction, or label noise on regression data.
    """

    kind: Kind = "tabular"
    task: Task = "classification"
    name = "data"

    def __init__(
        self,
        *,
        train_size: Size = None,
        val_size: Size = 0.2,
        test_size: Size = 0.2,
        batch_size: int = 32,
        standardize: bool = True,
        seed: int = 0,
        split: Literal["random", "ordered"] = "random",
        label_noise: float = 0.0,
        label_noise_seed: int = 0,
    ) -> None:
        super().__init__()
        if isinstance(label_noise, bool) or not isinstance(label_noise, (int, float)) or not 0 <= label_noise < 1:
            raise ValueError(f"`data.label_noise` must be a fraction in [0, 1), got {label_noise!r}.")
        self.label_noise, self.label_noise_seed = float(label_noise), int(label_noise_seed)
        if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
            raise ValueError(f"`data.batch_size` must be a positive integer, got {batch_size!r}.")
        if split not in ("random", "ordered"):
            raise ValueError(f"`data.split` must be 'random' or 'ordered', got {split!r}.")
        self.split = split
        self.train_size, self.val_size, self.test_size = train_size, val_size, test_size
        self.batch_size = batch_size
        self.standardize = bool(standardize)
        self.seed = int(seed)
        self.datasets: dict[str, TensorDataset] = {}
        self._spec: DataSpec | None = None

    # ------------------------------------------------------------------------------------------ subclass API
    def load(self) -> Pool:
        raise NotImplementedError

    # ------------------------------------------------------------------------------------------ splits
    def setup(self, stage: str | None = None) -> None:
        if self.datasets:
            return
        pool = self.load()
        if self.label_noise and self.task != "classification":  # subclasses settle the task after __init__
            raise ValueError(
                f"`data.label_noise`={self.label_noise!r} flips class labels, but {self.name} is {self.task} data. "
                "Set data.label_noise=0 (for noisy regression targets use noise=target)."
            )
        x, y = np.asarray(pool.x, dtype=np.float32), np.asarray(pool.y)
        stratify = self.task == "classification"
        if stratify:
            parts = [y] if pool.y_test is None else [y, pool.y_test]
            encoded = _encode_labels(*parts)
            y = encoded[0]
            if pool.y_test is not None:
                pool.y_test = encoded[1]
        idx = np.arange(len(x))
        if pool.x_test is None:
            test_k = _count(self.test_size, len(x), "test_size")
            val_k = _count(self.val_size, len(x), "val_size") or 0
            # a fraction counts from what test and validation leave (test_size null: from what validation leaves)
            train_k = _count(self.train_size, max(len(x) - val_k - (test_k or 0), 0), "train_size")
            if test_k is None:
                test_k = len(x) - val_k - (train_k or 0)
            self._check_total(len(x), train_k, val_k, test_k)
            if self.split == "ordered":
                first = (len(x) - val_k - test_k) if train_k is None else train_k
                test_idx = idx[first + val_k : first + val_k + test_k]
                rest = idx[: first + val_k]
            else:
                test_idx, rest = _take(idx, y, test_k, self.seed, stratify)
            x_test, y_test = x[test_idx], y[test_idx]
        else:
            x_test, y_test = np.asarray(pool.x_test, dtype=np.float32), np.asarray(pool.y_test)
            test_k = _count(self.test_size, len(x_test), "test_size")
            if test_k is not None and test_k < len(x_test):
                keep = np.arange(test_k)
                if self.split == "random":
                    keep, _ = _take(np.arange(len(x_test)), y_test, test_k, self.seed, stratify)
                x_test, y_test = x_test[keep], y_test[keep]
            val_k = _count(self.val_size, len(x), "val_size") or 0
            train_k = _count(self.train_size, max(len(x) - val_k, 0), "train_size")  # fraction: of what val leaves
            self._check_total(len(x), train_k, val_k, 0)
            rest = idx
        if self.split == "ordered":
            first = len(rest) - val_k if train_k is None else train_k
            train_idx, val_idx = rest[:first], rest[first : first + val_k]
        else:
            val_idx, rest = _take(rest, y, val_k, self.seed + 1, stratify)
            train_idx, _ = _take(rest, y, len(rest) if train_k is None else train_k, self.seed + 2, stratify)
        if len(train_idx) == 0 or (len(val_idx) == 0 and self.val_size != 0) or len(x_test) == 0:
            raise ValueError(
                f"{self.name}: every split needs samples, got train {len(train_idx)}, validation {len(val_idx)}, "
                f"test {len(x_test)}. Set data.train_size, data.val_size and data.test_size to positive sizes "
                "(data.val_size=0 means no validation split)."
            )
        y_train = y[train_idx]
        if self.label_noise:
            classes = len(np.unique(y if pool.y_test is None else np.r_[y, y_test]))
            y_train, _ = corrupt_labels(y_train, self.label_noise, classes, seed=self.label_noise_seed)
        arrays = {"train": (x[train_idx], y_train), "val": (x[val_idx], y[val_idx]), "test": (x_test, y_test)}
        if self.standardize:
            arrays = self._standardize(arrays)
        self.datasets = {split: self._tensors(*xy) for split, xy in arrays.items()}
        self._spec = self._make_spec(arrays["train"][0], arrays, y if pool.y_test is None else np.r_[y, y_test])

    def _check_total(self, n: int, train_k: int | None, val_k: int, test_k: int) -> None:
        if (train_k or 0) + val_k + test_k > n:
            raise ValueError(
                f"{self.name}: train_size ({train_k}) + val_size ({val_k}) + test_size ({test_k}) exceed the {n} "
                "samples available. Lower data.train_size, data.val_size or data.test_size."
            )

    def _stat_axes(self) -> tuple[int, ...]:
        return {"tabular": (0,), "image": tuple(range(4)), "sequence": (0, 1)}[self.kind]

    def _standardize(self, arrays: dict) -> dict:
        x_train, y_train = arrays["train"]
        axes = self._stat_axes()
        mean = x_train.mean(axis=axes, keepdims=True)
        std = x_train.std(axis=axes, keepdims=True)
        std = np.where(std > 1e-8, std, 1.0)
        if self.task == "regression":
            y_mean, y_std = y_train.mean(axis=0, keepdims=True), y_train.std(axis=0, keepdims=True)
            y_std = np.where(y_std > 1e-8, y_std, 1.0)
        out = {}
        for split, (x, y) in arrays.items():
            x = ((x - mean) / std).astype(np.float32)
            if self.task == "regression":
                y = ((y - y_mean) / y_std).astype(np.float32)
            out[split] = (x, y)
        return out

    def _tensors(self, x: np.ndarray, y: np.ndarray) -> TensorDataset:
        if self.task == "classification":
            target = torch.as_tensor(y, dtype=torch.long)
        else:
            target = torch.as_tensor(np.asarray(y, dtype=np.float32).reshape(len(y), -1))
        return TensorDataset(torch.as_tensor(x, dtype=torch.float32), target)

    def _make_spec(self, x_train: np.ndarray, arrays: dict, all_labels: np.ndarray) -> DataSpec:
        if self.task == "classification":
            out = int(len(np.unique(all_labels)))
        else:
            out = int(np.asarray(arrays["train"][1]).reshape(len(x_train), -1).shape[1])
        return DataSpec(self.name, self.kind, self.task, tuple(int(s) for s in x_train.shape[1:]), out)

    # ------------------------------------------------------------------------------------------ access
    @property
    def spec(self) -> DataSpec:
        """Shapes and task of the data (loads and splits the data on first access)."""
        self.setup()
        assert self._spec is not None
        return self._spec

    def split_sizes(self) -> dict[str, int]:
        self.setup()
        return {split: len(ds) for split, ds in self.datasets.items()}

    def _loader(self, split: str, shuffle: bool = False) -> DataLoader:
        self.setup()
        generator = torch.Generator().manual_seed(self.seed) if shuffle else None
        return DataLoader(self.datasets[split], batch_size=self.batch_size, shuffle=shuffle, generator=generator)

    def train_dataloader(self) -> DataLoader:
        return self._loader("train", shuffle=True)

    def val_dataloader(self) -> DataLoader:
        return self._loader("val")

    def test_dataloader(self) -> DataLoader:
        return self._loader("test")

    def eval_dataloaders(self) -> dict[str, DataLoader]:
        """Unshuffled loaders of every non-empty split, for the final clean evaluation of the best checkpoint."""
        self.setup()
        return {split: self._loader(split) for split in ("train", "val", "test") if len(self.datasets[split])}


# ---------------------------------------------------------------------------------------------- tabular
class CirclesDataModule(ArrayDataModule):
    """scikit-learn's two concentric circles (``make_circles``): the classic small-data case.

    100 points with noise 0.1: 30 for training and 70 held out, of which 20 validate (early stopping) and 50
    test, so the training set is the classic 30 points and no training point is spent on validation.

    Args:
        n_samples: points generated.
        noise: standard deviation of the Gaussian noise ``make_circles`` adds to the points.
        factor: radius of the inner circle relative to the outer one.
        **kwargs: split, batch and seed arguments of :class:`ArrayDataModule`.
    """

    name = "circles"

    def __init__(self, *, n_samples: int = 100, noise: float = 0.1, factor: float = 0.5, **kwargs) -> None:
        super().__init__(**kwargs)
        self.n_samples, self.noise, self.factor = n_samples, noise, factor

    def load(self) -> Pool:
        from sklearn.datasets import make_circles

        x, y = make_circles(n_samples=self.n_samples, noise=self.noise, factor=self.factor, random_state=self.seed)
        return Pool(x, y)


SKLEARN_DATASETS: dict[str, tuple[str, Task]] = {
    "breast_cancer": ("load_breast_cancer", "classification"),
    "wine": ("load_wine", "classification"),
    "iris": ("load_iris", "classification"),
    "diabetes": ("load_diabetes", "regression"),
    "linnerud": ("load_linnerud", "regression"),
}


class SklearnDataModule(ArrayDataModule):
    """A tabular dataset bundled with scikit-learn, by name (no download).

    Args:
        dataset: one of ``breast_cancer``, ``wine``, ``iris`` (classification), ``diabetes``, ``linnerud``
            (regression).
        **kwargs: split, batch and seed arguments of :class:`ArrayDataModule`.

    Raises:
        ValueError: unknown dataset name (the message lists the known ones).
    """

    def __init__(self, *, dataset: str, **kwargs) -> None:
        super().__init__(**kwargs)
        if dataset not in SKLEARN_DATASETS:
            raise ValueError(f"`data.dataset` must be one of {sorted(SKLEARN_DATASETS)}, got {dataset!r}.")
        self.name = dataset
        self.task = SKLEARN_DATASETS[dataset][1]

    def load(self) -> Pool:
        import sklearn.datasets

        bunch = getattr(sklearn.datasets, SKLEARN_DATASETS[self.name][0])()
        return Pool(bunch.data, bunch.target)


class CSVDataModule(ArrayDataModule):
    """A CSV file of the user's own: a header row, numeric feature columns and one target column.

    Args:
        path: the CSV file.
        target: name of the target column.
        task: ``classification`` (target values are class labels, any strings), ``regression`` (numeric
            targets), or ``auto``: classification when the target is non-numeric or takes at most 20 integer
            values, else regression.
        **kwargs: split, batch and seed arguments of :class:`ArrayDataModule`.

    Raises:
        FileNotFoundError: no file at ``path``.
        ValueError: ``target`` is not a column (the message lists them), or a feature is not numeric.
    """

    def __init__(
        self, *, path: str, target: str, task: Literal["auto", "classification", "regression"] = "auto", **kwargs
    ) -> None:
        super().__init__(**kwargs)
        if task not in ("auto", "classification", "regression"):
            raise ValueError(f"`data.task` must be 'auto', 'classification' or 'regression', got {task!r}.")
        self.path, self.target, self.requested_task = Path(path), target, task
        self.name = self.path.stem
        self.task = "classification" if task == "auto" else task  # settled in `columns()` for auto

    def columns(self) -> tuple[list[str], list[list[str]]]:
        """Read the file, check the target column and settle the task; returns header and rows."""
        if not self.path.is_file():
            raise FileNotFoundError(f"`data.path`: no CSV file at {str(self.path)!r}.")
        with self.path.open(newline="") as f:
            rows = [row for row in csv.reader(f) if row]
        header = [h.strip() for h in rows[0]]
        if self.target not in header:
            raise ValueError(
                f"`data.target`={self.target!r} is not a column of {self.path.name}; its columns are {header}. "
                f"Set data.target to one of them."
            )
        if self.requested_task == "auto":
            values = [row[header.index(self.target)].strip() for row in rows[1:]]
            try:
                numbers = np.array(values, dtype=np.float64)
                integral = np.all(numbers == np.round(numbers))
                self.task = "classification" if integral and len(np.unique(numbers)) <= 20 else "regression"
            except ValueError:
                self.task = "classification"
        return header, rows[1:]

    def load(self) -> Pool:
        header, rows = self.columns()
        t = header.index(self.target)
        features = [i for i in range(len(header)) if i != t]
        try:
            x = np.array([[float(row[i]) for i in features] for row in rows], dtype=np.float32)
        except ValueError as err:
            raise ValueError(
                f"{self.path.name}: every column except the target must be numeric ({err}). Encode categorical "
                "features as numbers first."
            ) from None
        y = [row[t].strip() for row in rows]
        return Pool(x, np.array(y, dtype=np.float32) if self.task == "regression" else np.array(y))


# ---------------------------------------------------------------------------------------------- images
class DigitsDataModule(ArrayDataModule):
    """scikit-learn's 8x8 handwritten digits (1,797 images, 10 classes) as ``(1, 8, 8)`` images."""

    kind = "image"
    name = "digits"

    def load(self) -> Pool:
        from sklearn.datasets import load_digits

        bunch = load_digits()
        return Pool(bunch.images[:, None].astype(np.float32), bunch.target)


def read_idx(path: Path) -> np.ndarray:
    """Read an idx file (the MNIST format), gzipped or not."""
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rb") as f:
        data = f.read()
    zero, dtype_code, ndim = struct.unpack(">HBB", data[:4])
    if zero != 0 or dtype_code != 0x08:
        raise ValueError(f"{path} is not an unsigned-byte idx file (magic {data[:4].hex()}).")
    shape = struct.unpack(f">{ndim}I", data[4 : 4 + 4 * ndim])
    array = np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * ndim)
    if array.size != math.prod(shape):
        raise ValueError(f"{path}: header says shape {shape}, file holds {array.size} values.")
    return array.reshape(shape)


DEBIAN_FASHION_MNIST = "/usr/share/datasets/fashion-mnist"  # where Debian's dataset-fashion-mnist installs it


@functools.lru_cache(maxsize=2)
def _read_fashion_mnist(files: tuple[Path, ...]) -> tuple[np.ndarray, ...]:
    """The four arrays, read once per process (a multirun trains many models on them)."""
    return tuple(read_idx(path) for path in files)


class FashionMNISTDataModule(ArrayDataModule):
    """Fashion-MNIST (Xiao et al. 2017: 60,000 training and 10,000 test 28x28 grey images of 10 clothing
    classes) read from its four standard idx files (plain or ``.gz``); nothing is downloaded.

    Args:
        root: folder holding ``train-images-idx3-ubyte``, ``train-labels-idx1-ubyte``, ``t10k-images-idx3-ubyte``
            and ``t10k-labels-idx1-ubyte`` (each optionally ``.gz``); None: where Debian's
            ``dataset-fashion-mnist`` package puts them (``/usr/share/datasets/fashion-mnist``).
        unit_range: divide the grey levels (0-255) by 255, so that with ``standardize=False`` the inputs are in
            [0, 1], the scale at which the randomized-smoothing literature quotes sigma (0.25, 0.5). Standardized
            inputs are the same either way.
        **kwargs: split, batch, seed and label-noise arguments of :class:`ArrayDataModule`
            (``train_size=10000`` trains on a stratified subset of the 60,000 for quick runs).

    Raises:
        FileNotFoundError: a file is missing; the one-line message names it and the folder, and says how to
            install the Debian package or set ``data.root``.

    Example:
        >>> dm = FashionMNISTDataModule(train_size=1000, val_size=500, test_size=200)  # doctest: +SKIP
        >>> dm.split_sizes()  # doctest: +SKIP
        {'train': 1000, 'val': 500, 'test': 200}
    """

    kind = "image"
    name = "fashion_mnist"
    FILES = ("train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")

    def __init__(self, *, root: str | None = None, unit_range: bool = False, **kwargs) -> None:
        kwargs.setdefault("test_size", None)  # keep the official test set
        super().__init__(**kwargs)
        self.root = Path(DEBIAN_FASHION_MNIST if root is None else root)
        if not isinstance(unit_range, bool):
            raise TypeError(f"data.unit_range must be true or false, got {unit_range!r}.")
        self.unit_range = unit_range

    def _file(self, stem: str) -> Path:
        for candidate in (self.root / stem, self.root / f"{stem}.gz"):
            if candidate.is_file():
                return candidate
        raise FileNotFoundError(
            f"Fashion-MNIST: no {stem}[.gz] in {str(self.root)!r}: install it with `apt-get install "
            "dataset-fashion-mnist` (Debian/Ubuntu) or set data.root to a folder holding the four idx files."
        )

    def load(self) -> Pool:
        x, y, x_test, y_test = _read_fashion_mnist(tuple(self._file(stem) for stem in self.FILES))
        scale = np.float32(1 / 255 if self.unit_range else 1)
        return Pool(x[:, None].astype(np.float32) * scale, y, x_test[:, None].astype(np.float32) * scale, y_test)


# ---------------------------------------------------------------------------------------------- sequences
class UCRDataModule(ArrayDataModule):
    """A time-series classification dataset bundled with sktime, by name, with its official train/test split.

    Samples are ``(time, channels)`` sequences; each channel is standardized with training statistics.

    Args:
        dataset: a dataset shipped in ``sktime/datasets/data`` (``ItalyPowerDemand``, ``GunPoint``,
            ``BasicMotions``, ``ArrowHead``, ``OSULeaf``, ``JapaneseVowels`` (unequal lengths, not supported)...).
        **kwargs: split, batch and seed arguments of :class:`ArrayDataModule`.

    Raises:
        ValueError: a dataset sktime does not ship (the message lists those it does).
    """

    kind = "sequence"

    def __init__(self, *, dataset: str, **kwargs) -> None:
        kwargs.setdefault("test_size", None)  # keep the official test set
        super().__init__(**kwargs)
        self.name = dataset

    @staticmethod
    def available() -> list[str]:
        import sktime.datasets

        root = Path(sktime.datasets.__file__).parent / "data"
        return sorted(p.name for p in root.iterdir() if (p / f"{p.name}_TRAIN.ts").is_file())

    def load(self) -> Pool:
        from sktime.datasets import load_UCR_UEA_dataset

        if self.name not in self.available():
            raise ValueError(f"`data.dataset` must be one of sktime's bundled {self.available()}, got {self.name!r}.")
        x, y = load_UCR_UEA_dataset(self.name, split="train", return_type="numpy3D")
        x_test, y_test = load_UCR_UEA_dataset(self.name, split="test", return_type="numpy3D")
        # sktime gives (samples, channels, time); the models take (samples, time, channels).
        return Pool(x.transpose(0, 2, 1), y, x_test.transpose(0, 2, 1), y_test)


STATSMODELS_SERIES: dict[str, str] = {
    "sunspots": "SUNACTIVITY",
    "nile": "volume",
    "co2": "co2",
    "elnino": "",  # the 12 monthly columns, read row by row
}


class ForecastDataModule(ArrayDataModule):
    """Forecasting windows over a univariate series bundled with statsmodels: predict the next ``horizon``
    values from the previous ``window``.

    The split is chronological, never shuffled across time: the first windows train, the next validate, the
    last test (``val_size``/``test_size`` as fractions or counts of windows). Values are standardized with the
    mean and standard deviation of the training part of the series.

    Args:
        dataset: ``sunspots`` (yearly, 309), ``nile`` (yearly, 100), ``co2`` (weekly, gaps interpolated),
            ``elnino`` (monthly sea temperature).
        window: input length.
        horizon: values predicted.
        **kwargs: split, batch and seed arguments of :class:`ArrayDataModule`.
    """

    kind = "sequence"
    task = "regression"

    def __init__(self, *, dataset: str, window: int = 24, horizon: int = 1, **kwargs) -> None:
        super().__init__(**kwargs)
        if dataset not in STATSMODELS_SERIES:
            raise ValueError(f"`data.dataset` must be one of {sorted(STATSMODELS_SERIES)}, got {dataset!r}.")
        if window < 1 or horizon < 1:
            raise ValueError(f"`data.window` and `data.horizon` must be >= 1, got {window} and {horizon}.")
        self.name, self.window, self.horizon = dataset, int(window), int(horizon)

    def series(self) -> np.ndarray:
        import importlib

        frame = importlib.import_module(f"statsmodels.datasets.{self.name}").load_pandas().data
        if self.name == "elnino":
            values = frame.drop(columns=["YEAR"]).to_numpy(dtype=np.float64).ravel()
        else:
            values = frame[STATSMODELS_SERIES[self.name]].interpolate(limit_direction="both").to_numpy(np.float64)
        return values

    def load(self) -> Pool:
        return Pool(*self._windows(self.series()))

    def _windows(self, values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        n = len(values) - self.window - self.horizon + 1
        if n < 3:
            raise ValueError(f"{self.name}: {len(values)} values are too few for window {self.window}.")
        x = np.stack([values[i : i + self.window] for i in range(n)])[:, :, None]
        y = np.stack([values[i + self.window : i + self.window + self.horizon] for i in range(n)])
        return x, y

    def setup(self, stage: str | None = None) -> None:
        if self.datasets:
            return
        if self.label_noise:
            raise ValueError(
                f"`data.label_noise`={self.label_noise!r} flips class labels, but forecasting is regression. "
                "Set data.label_noise=0 (for noisy regression targets use noise=target)."
            )
        values = self.series()
        x, y = self._windows(values)
        n = len(x)
        test_k = _count(self.test_size, n, "test_size") or 0
        val_k = _count(self.val_size, n, "val_size") or 0
        end = n - test_k - val_k
        train_k = _count(self.train_size, max(end, 0), "train_size")  # a fraction of the windows before validation
        start = 0 if train_k is None else max(0, end - train_k)
        if end - start < 1 or val_k < 1 or test_k < 1:
            raise ValueError(
                f"{self.name}: {n} windows leave train {end - start}, validation {val_k}, test {test_k}; "
                "every split needs windows. Lower data.window or change data.val_size/test_size."
            )
        # Training statistics from the values the training windows can see (inputs and targets).
        train_values = values[start : end + self.window + self.horizon - 1]
        mean, std = (train_values.mean(), train_values.std() or 1.0) if self.standardize else (0.0, 1.0)
        x, y = ((x - mean) / std).astype(np.float32), ((y - mean) / std).astype(np.float32)
        bounds = {"train": (start, end), "val": (end, end + val_k), "test": (end + val_k, n)}
        self.datasets = {split: self._tensors(x[a:b], y[a:b]) for split, (a, b) in bounds.items()}
        self._spec = DataSpec(self.name, "sequence", "regression", (self.window, 1), self.horizon)
