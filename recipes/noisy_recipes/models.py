"""LightningModules of the recipes: an MLP, a small CNN, an LSTM and a denoising autoencoder.

They share :class:`NoisyModule`: the loss is one ``torch.nn`` loss module held as ``self.criterion`` and
called as ``self.criterion(prediction, target)`` (the label and target noise callbacks hook it), ``forward``
is called as ``self(x)`` (the input noise callback hooks it), training metrics are logged under ``train/``,
validation under ``val/``, and the final evaluation of the best checkpoint on every split, with noise off,
under ``final/{split}/`` (``final/train/acc``, ``final/test/loss``...): its own keys, so that it adds no last
point to the training curves (``recipes/train.py`` reports these as ``train/acc``, ``test/acc``... in
``metrics.json``).
"""

from __future__ import annotations

import math
from collections import OrderedDict
from collections.abc import Callable, Sequence
from typing import Any, ClassVar, Literal

import lightning.pytorch as pl
import torch
import torchmetrics
from torch import Tensor, nn

from noisy_recipes.data import DataSpec

OptimizerFactory = Callable[..., torch.optim.Optimizer]

FINAL = "final"  # prefix of the final evaluation's keys (final/test/acc), apart from the training curves' keys


class NoisyModule(pl.LightningModule):
    """Base class: loss, metrics, optimizer and logging; subclasses build ``self.net`` in ``build``.

    Args:
        spec: shapes and task of the data (given by the recipe from the data module).
        optimizer: a partial optimizer (``torch.optim.Adam`` with its arguments, ``_partial_: true``).
        scheduler: an optional partial learning-rate scheduler, stepped every epoch.
        eval_splits: the split each ``trainer.test`` dataloader holds, in order (its metrics are logged as
            ``final/{split}/...``).
        **net: architecture arguments of the subclass.

    Raises:
        ValueError: the data does not fit the model (``check_data``), raised before training.
    """

    accepts: ClassVar[tuple[str, ...]] = ("tabular", "image", "sequence")
    suggestion: ClassVar[str] = ""

    def __init__(
        self,
        spec: DataSpec,
        *,
        optimizer: OptimizerFactory,
        scheduler: Callable[..., Any] | None = None,
        eval_splits: Sequence[str] = ("test",),
        **net: Any,
    ) -> None:
        super().__init__()
        self.check_data(spec)
        self.spec = spec
        self.optimizer_factory = optimizer
        self.scheduler_factory = scheduler
        self.save_hyperparameters({"model": type(self).__name__, "data": spec.describe(), **net})
        self.net = self.build(spec, **net)
        self.task = self.task_of(spec)
        self.criterion: nn.Module = nn.CrossEntropyLoss() if self.task == "classification" else nn.MSELoss()
        self.eval_splits = list(eval_splits)
        names = ("fit_train", "fit_val", "eval_train", "eval_val", "eval_test")
        self.metrics = nn.ModuleDict({name: self._metric() for name in names})

    # ------------------------------------------------------------------------------------------ subclass API
    def build(self, spec: DataSpec, **net: Any) -> nn.Module:
        raise NotImplementedError

    @classmethod
    def task_of(cls, spec: DataSpec) -> str:
        return spec.task

    @classmethod
    def check_data(cls, spec: DataSpec) -> None:
        """Raise a ValueError naming what to change when the data does not fit this model."""
        if spec.kind not in cls.accepts:
            raise ValueError(
                f"model={cls.config_name()} takes {' or '.join(cls.accepts)} data, but data {spec.name!r} is "
                f"{spec.kind} with samples of shape {spec.input_shape}. {cls.suggestion}"
            )

    @classmethod
    def config_name(cls) -> str:
        return {"MLP": "mlp", "CNN": "cnn", "LSTMClassifier": "lstm", "DenoisingAutoencoder": "autoencoder"}.get(
            cls.__name__, cls.__name__
        )

    # ------------------------------------------------------------------------------------------ steps
    def _metric(self) -> torchmetrics.Metric:
        if self.task == "classification":
            return torchmetrics.Accuracy(task="multiclass", num_classes=self.spec.out_features)
        return torchmetrics.MeanSquaredError()

    @property
    def metric_name(self) -> str:
        return "acc" if self.task == "classification" else "mse"

    def forward(self, x: Tensor) -> Tensor:
        return self.net(x)

    def target_of(self, batch: Any) -> Tensor:
        return batch[1]

    def _shared_step(self, batch: Any, metric: torchmetrics.Metric) -> Tensor:
        x = batch[0]
        target = self.target_of(batch)
        prediction = self(x)
        loss = self.criterion(prediction, target)
        metric.update(prediction.detach(), target)
        return loss

    def training_step(self, batch: Any, batch_idx: int) -> Tensor:
        loss = self._shared_step(batch, self.metrics["fit_train"])
        self.log("train/loss", loss, on_step=True, on_epoch=True, prog_bar=True, batch_size=len(batch[0]))
        self.log(f"train/{self.metric_name}", self.metrics["fit_train"], on_step=False, on_epoch=True)
        return loss

    def validation_step(self, batch: Any, batch_idx: int) -> None:
        loss = self._shared_step(batch, self.metrics["fit_val"])
        self.log("val/loss", loss, on_epoch=True, prog_bar=True, batch_size=len(batch[0]), sync_dist=True)
        self.log(f"val/{self.metric_name}", self.metrics["fit_val"], on_epoch=True, prog_bar=True)

    def test_step(self, batch: Any, batch_idx: int, dataloader_idx: int = 0) -> None:
        split = self.eval_splits[dataloader_idx]
        metric = self.metrics[f"eval_{split}"]
        loss = self._shared_step(batch, metric)
        kw = dict(on_epoch=True, add_dataloader_idx=False, batch_size=len(batch[0]))
        self.log(f"{FINAL}/{split}/loss", loss, sync_dist=True, **kw)
        self.log(f"{FINAL}/{split}/{self.metric_name}", metric, **kw)

    def configure_optimizers(self) -> Any:
        optimizer = self.optimizer_factory(params=self.parameters())
        if self.scheduler_factory is None:
            return optimizer
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": self.scheduler_factory(optimizer=optimizer)}}


def _mlp(sizes: Sequence[int], dropout: float = 0.0) -> nn.Sequential:
    layers: list[nn.Module] = []
    for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:], strict=True)):
        layers.append(nn.Linear(a, b))
        if i < len(sizes) - 2:
            layers.append(nn.ReLU())
            if dropout:
                layers.append(nn.Dropout(dropout))
    return nn.Sequential(*layers)


class MLP(NoisyModule):
    """Multi-layer perceptron on flattened samples (any data kind).

    Args:
        hidden: widths of the hidden layers (ReLU after each).
        dropout: dropout after each hidden ReLU.
        init: ``"default"`` (PyTorch's ``Linear`` init: weights and biases uniform in +-1/sqrt(fan_in)),
            ``"glorot"`` (Glorot/Xavier-uniform weights, zero biases: Keras's ``Dense`` default), ``"he"``
            (He/Kaiming-uniform weights for ReLU, zero biases: keeps the signal's scale through deep ReLU stacks),
            ``"he_normal"`` (He et al. 2015 as published: weights from N(0, 2 / fan_in), zero biases) or
            ``"normal"`` (weights from N(0, init_std^2), zero biases: the "simple init" of Neelakantan et al.
            2015 with ``init_std=0.1``).
        init_std: standard deviation of the weights for ``init="normal"``.

    Raises:
        ValueError: an unknown ``init`` or a non-positive ``init_std``.

    Example (the deep network of Neelakantan et al. 2015: 20 hidden layers of 50 ReLU, simple init)::

        MLP(spec, optimizer=partial(torch.optim.SGD, lr=0.01), hidden=[50] * 20, init="normal", init_std=0.1)
    """

    def build(
        self,
        spec: DataSpec,
        hidden: Sequence[int] = (32, 32),
        dropout: float = 0.0,
        init: Literal["default", "glorot", "he", "he_normal", "normal"] = "default",
        init_std: float = 0.1,
    ) -> nn.Module:
        inits = ("default", "glorot", "he", "he_normal", "normal")
        if init not in inits:
            raise ValueError(f"`model.init` must be one of {', '.join(map(repr, inits))}, got {init!r}.")
        if not init_std > 0:
            raise ValueError(f"`model.init_std` must be > 0, got {init_std!r}.")
        net = nn.Sequential(nn.Flatten(), _mlp([math.prod(spec.input_shape), *hidden, spec.out_features], dropout))
        if init != "default":
            for layer in net.modules():
                if isinstance(layer, nn.Linear):
                    if init == "glorot":
                        nn.init.xavier_uniform_(layer.weight)
                    elif init == "he":
                        nn.init.kaiming_uniform_(layer.weight, nonlinearity="relu")
                    elif init == "he_normal":
                        nn.init.kaiming_normal_(layer.weight, nonlinearity="relu")
                    else:
                        nn.init.normal_(layer.weight, std=init_std)
                    nn.init.zeros_(layer.bias)
        return net


class CNN(NoisyModule):
    """Two 3x3 convolution blocks, average pooling to ``pooled x pooled``, a linear head: for ``(C, H, W)`` images.

    Args:
        channels: output channels of the two convolution blocks.
        pooled: side of the feature map the head sees (adaptive average pooling; 2 for 8x8 digits, 7 keeps a
            28x28 image's 14x14 map at half resolution).
    """

    accepts = ("image",)
    suggestion = "Use data=digits or data=fashion_mnist for model=cnn, or model=mlp for this data."

    def build(self, spec: DataSpec, channels: Sequence[int] = (16, 32), pooled: int = 2) -> nn.Module:
        c_in = spec.input_shape[0]
        c1, c2 = channels
        if isinstance(pooled, bool) or not isinstance(pooled, int) or pooled < 1:
            raise ValueError(
                f"model.pooled must be an integer >= 1 (the side of the pooled feature map), got {pooled!r}."
            )
        return nn.Sequential(
            nn.Conv2d(c_in, c1, 3, padding=1),
            nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Conv2d(c1, c2, 3, padding=1),
            nn.ReLU(),
            nn.AdaptiveAvgPool2d(pooled),
            nn.Flatten(),
            nn.Linear(pooled * pooled * c2, spec.out_features),
        )


class _LSTMNet(nn.Module):
    def __init__(self, features: int, hidden: int, layers: int, out: int) -> None:
        super().__init__()
        self.lstm = nn.LSTM(features, hidden, num_layers=layers, batch_first=True)
        self.head = nn.Linear(hidden, out)

    def forward(self, x: Tensor) -> Tensor:
        if x.dim() == 4:  # (N, 1, H, W) image: rows as time steps
            x = x.flatten(1, 2)
        output, _ = self.lstm(x)
        return self.head(output[:, -1])


class LSTMClassifier(NoisyModule):
    """An LSTM over ``(time, channels)`` sequences (or the rows of 1-channel images), a linear head on the last
    hidden state: sequence classification, or forecasting for regression data.

    Args:
        hidden: LSTM hidden size.
        layers: stacked LSTM layers.
    """

    accepts = ("sequence", "image")
    suggestion = "Use data=ucr (sktime time series), data=forecast or an image dataset, or model=mlp for this data."

    def build(self, spec: DataSpec, hidden: int = 32, layers: int = 1) -> nn.Module:
        if spec.kind == "image":
            if spec.input_shape[0] != 1:
                raise ValueError(
                    f"model=lstm reads 1-channel images row by row; {spec.name} has shape {spec.input_shape}."
                )
            features = spec.input_shape[2]
        else:
            features = spec.input_shape[-1]
        return _LSTMNet(features, hidden, layers, spec.out_features)


class DenoisingAutoencoder(NoisyModule):
    """An MLP autoencoder trained to reconstruct the clean input (Vincent et al. 2008).

    Pair it with ``noise=input``: the input noise callback corrupts what ``forward`` sees, while the loss is
    computed against the clean batch, which ``training_step`` still holds. Metrics are reconstruction MSE.

    Args:
        hidden: widths of the encoder's hidden layers; the decoder mirrors them.
        code: width of the code layer.
    """

    def build(self, spec: DataSpec, hidden: Sequence[int] = (32,), code: int = 8) -> nn.Module:
        d = math.prod(spec.input_shape)
        encoder = nn.Sequential(nn.Flatten(), _mlp([d, *hidden, code]), nn.ReLU())
        return nn.Sequential(OrderedDict(encoder=encoder, decoder=_mlp([code, *reversed(hidden), d])))

    @classmethod
    def task_of(cls, spec: DataSpec) -> str:
        return "reconstruction"

    def _metric(self) -> torchmetrics.Metric:
        return torchmetrics.MeanSquaredError()

    @property
    def metric_name(self) -> str:
        return "mse"

    def forward(self, x: Tensor) -> Tensor:
        return self.net(x).view_as(x)

    def target_of(self, batch: Any) -> Tensor:
        return batch[0]  # the clean input: input noise only reaches what forward receives
