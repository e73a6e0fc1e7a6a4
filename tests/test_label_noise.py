"""LabelNoise: smoothing formulas, flip statistics, transition matrices, stage gating, data integrity, errors, seeds.

Statistical tolerances are 5 binomial standard deviations, sqrt(p (1 - p) / n), with fixed seeds: a correct
implementation fails with probability < 1e-6 per check, while the errors they guard against (flipping to the
same class, which gives a change rate of p (k - 1) / k; ignoring the matrix) shift the estimate by 10+ sd.
"""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn
from torch.nn import functional as F
from torch.utils.data import DataLoader, TensorDataset

from lightning_noise import LabelNoise, schedules
from lightning_noise.functional import flip_labels, smooth_labels, transition_labels
from tests.helpers import trainer
from tests.loss_helpers import Classifier, classification_data, recording

pytestmark = pytest.mark.filterwarnings("ignore:You defined a `validation_step` but have no `val_dataloader`")


def five_sd(p: float, n: int) -> float:
    return 5 * math.sqrt(p * (1 - p) / n)


def formula(y: torch.Tensor, k: int, eps: float, style: str) -> torch.Tensor:
    """The issue's formulas, in float64: book 1-eps / eps/(k-1); uniform (1-eps)*onehot + eps/k."""
    onehot = F.one_hot(y, k).double()
    if style == "book":
        return onehot * (1 - eps) + (1 - onehot) * (eps / (k - 1))
    return (1 - eps) * onehot + eps / k


def fit(callback, model=None, data=None, *, epochs=1, batch_size=16, val=False, **kwargs):
    model = model if model is not None else Classifier()
    data = data if data is not None else classification_data()
    t = trainer(max_epochs=epochs, callbacks=[callback], **kwargs)
    t.fit(model, DataLoader(data, batch_size=batch_size), DataLoader(data, batch_size=batch_size) if val else None)
    return model, t


def train_targets(model) -> tuple[torch.Tensor, torch.Tensor]:
    """(clean labels, targets the loss saw) over all training calls, concatenated."""
    clean = torch.cat([y for s, y in model.clean if s == "train"])
    seen = torch.cat([t for _, t, _ in model.loss.calls("train")])
    return clean, seen


# ------------------------------------------------------------------------------------------------ smoothing
@pytest.mark.parametrize("style", ["book", "uniform"])
@pytest.mark.parametrize("k", [2, 3, 10])
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_smooth_labels_equal_formula_exactly(k, style, dtype):
    y = torch.arange(k).repeat(3)[torch.randperm(3 * k, generator=torch.Generator().manual_seed(k))]
    out = smooth_labels(y, k, 0.15, style=style, dtype=dtype)
    assert out.dtype == dtype
    assert torch.equal(out, formula(y, k, 0.15, style).to(dtype))
    torch.testing.assert_close(out.sum(dim=1), torch.ones(3 * k, dtype=dtype))


@pytest.mark.parametrize("style", ["book", "uniform"])
@pytest.mark.parametrize("k", [2, 3, 10])
def test_loss_sees_formula_and_equals_pytorch_label_smoothing(k, style):
    eps_torch = 0.1
    eps = eps_torch * (k - 1) / k if style == "book" else eps_torch  # eps_book = eps_torch * (k - 1) / k
    callback = LabelNoise(smoothing=eps, style=style, seed=0)
    model, _ = fit(callback, Classifier(classes=k), classification_data(classes=k))
    reference = nn.CrossEntropyLoss(label_smoothing=eps_torch)
    calls = model.loss.calls("train")
    clean = [y for s, y in model.clean if s == "train"]
    assert len(calls) == 4
    for (logits, target, output), y in zip(calls, clean, strict=True):
        assert torch.equal(target, formula(y, k, eps, style).float())
        torch.testing.assert_close(output, reference(logits, y))


def test_weights_and_ignore_index_match_pytorch_label_smoothing():
    # Ignored positions get zero rows, and the soft targets are rescaled so the mean is over the class-weighted,
    # non-ignored positions, exactly as CrossEntropyLoss does for index targets.
    weight = torch.tensor([0.5, 2.0, 1.0, 3.0])
    data = classification_data(classes=4)
    labels = data.tensors[1].clone()
    labels[::3] = -1
    loss = recording(nn.CrossEntropyLoss, weight=weight, ignore_index=-1)
    model, _ = fit(
        LabelNoise(smoothing=0.15, style="uniform", seed=0),
        Classifier(classes=4, loss=loss),
        TensorDataset(data.tensors[0], labels),
    )
    reference = nn.CrossEntropyLoss(weight=weight, ignore_index=-1, label_smoothing=0.15)
    clean = [y for s, y in model.clean if s == "train"]
    for (logits, target, output), y in zip(model.loss.calls("train"), clean, strict=True):
        assert torch.equal(target[y == -1], torch.zeros_like(target[y == -1]))
        torch.testing.assert_close(output, reference(logits, y))


def test_spatial_targets_smoothed_along_class_dim_and_match_pytorch():
    g = torch.Generator().manual_seed(0)
    logits, y = torch.randn(4, 5, 7, generator=g), torch.randint(0, 5, (4, 7), generator=g)
    soft = smooth_labels(y, 5, 0.2, style="uniform", class_dim=1)
    assert soft.shape == (4, 5, 7)
    assert torch.equal(soft.argmax(dim=1), y)
    torch.testing.assert_close(F.cross_entropy(logits, soft), F.cross_entropy(logits, y, label_smoothing=0.2))


def test_binary_targets_smoothed_and_flipped():
    eps, flip = 0.1, 0.3
    g = torch.Generator().manual_seed(1)
    x = torch.randn(2048, 4, generator=g)
    data = TensorDataset(x, (x.sum(dim=1, keepdim=True) > 0).float())
    model = Classifier(classes=1, loss=recording(nn.BCEWithLogitsLoss))
    fit(LabelNoise(smoothing=eps, flip=flip, seed=0), model, data, batch_size=256)
    clean, seen = train_targets(model)
    smoothed = clean * (1 - eps) + (1 - clean) * eps  # y (1 - eps) + (1 - y) eps
    flipped = 1 - clean
    kept = seen == smoothed
    assert torch.all(kept | (seen == flipped * (1 - eps) + (1 - flipped) * eps))
    assert abs((~kept).float().mean().item() - flip) < five_sd(flip, clean.numel())


def test_smoothing_schedule_and_zero_amount_passes_indices_through():
    schedule = schedules.Linear(0.0, 0.3, steps=3)
    model, _ = fit(LabelNoise(smoothing=schedule, seed=0), Classifier(), classification_data(n=64), batch_size=16)
    calls = model.loss.calls("train")
    clean = [y for s, y in model.clean if s == "train"]
    assert torch.equal(calls[0][1], clean[0])  # smoothing 0 at step 0: the class indices themselves
    for step in (1, 2, 3):
        eps = schedule(step)
        assert torch.equal(calls[step][1], formula(clean[step], 3, eps, "book").float())


# ------------------------------------------------------------------------------------------------ flipping
@pytest.mark.parametrize("k", [2, 10])
def test_flip_rate_matches_and_flips_go_to_other_classes_uniformly(k):
    g = torch.Generator().manual_seed(0)
    n, p = 200_000, 0.2
    y = torch.randint(0, k, (n,), generator=g)
    z = flip_labels(y, k, p, g)
    changed = z != y
    # A flip that could land on the original class would change only p (k-1)/k of the labels.
    assert abs(changed.float().mean().item() - p) < five_sd(p, n)
    offsets = torch.remainder(z[changed] - y[changed], k)
    share = torch.bincount(offsets, minlength=k).double() / changed.sum()
    assert share[0] == 0
    tolerance = five_sd(1 / (k - 1), int(changed.sum()))
    assert torch.all((share[1:] - 1 / (k - 1)).abs() <= tolerance), share


def test_flip_keeps_ignored_positions_and_returns_input_at_zero():
    y = torch.tensor([0, -100, 2, -100, 1] * 200)
    z = flip_labels(y, 3, 0.9, torch.Generator().manual_seed(0), ignore_index=-100)
    assert torch.equal(z[y == -100], y[y == -100])
    assert (z != y).any()
    assert flip_labels(y, 3, 0.0) is y


def test_flip_rate_through_the_callback():
    flip = 0.3
    model, _ = fit(
        LabelNoise(flip=flip, seed=0), Classifier(classes=5), classification_data(n=4096, classes=5), batch_size=512
    )
    clean, seen = train_targets(model)
    assert seen.dtype == clean.dtype and clean.numel() == 4096
    assert abs((seen != clean).float().mean().item() - flip) < five_sd(flip, 4096)


TRANSITION = torch.tensor([[0.8, 0.2, 0.0], [0.1, 0.6, 0.3], [0.0, 0.05, 0.95]])


def assert_rows_match(y: torch.Tensor, z: torch.Tensor, matrix: torch.Tensor) -> None:
    for i in range(matrix.shape[0]):
        n = int((y == i).sum())
        empirical = torch.bincount(z[y == i], minlength=matrix.shape[0]).double() / n
        for j in range(matrix.shape[0]):
            p = float(matrix[i, j])
            assert abs(empirical[j] - p) <= five_sd(p, n), (i, j, empirical.tolist())


def test_transition_matrix_rows_are_honoured():
    g = torch.Generator().manual_seed(0)
    y = torch.randint(0, 3, (150_000,), generator=g)
    z = transition_labels(y, TRANSITION, g)
    assert_rows_match(y, z, TRANSITION)  # zero entries are never drawn (tolerance 0 there)


def test_transition_matrix_through_the_callback():
    model, _ = fit(
        LabelNoise(transition=TRANSITION.tolist(), seed=0), Classifier(), classification_data(n=6000), batch_size=1000
    )
    assert_rows_match(*train_targets(model), TRANSITION)


# ------------------------------------------------------------------------------------------------ gating, integrity
def test_no_label_noise_at_validation_test_and_predict():
    data = classification_data(n=64)
    model, t = fit(LabelNoise(smoothing=0.2, flip=0.5, seed=0), val=True, data=data)
    loader = DataLoader(data, batch_size=16)
    t.test(model, loader, verbose=False)
    t.predict(model, loader)
    clean = {stage: [y for s, y in model.clean if s == stage] for stage in ("train", "validate", "test", "predict")}
    for stage in ("validate", "test", "predict"):
        seen = [t for _, t, _ in model.loss.calls(stage)]
        assert seen and len(seen) == len(clean[stage])
        assert all(torch.equal(t, y) for t, y in zip(seen, clean[stage], strict=True)), stage
    assert all(t.is_floating_point() for _, t, _ in model.loss.calls("train"))  # noise was on in training


def test_multi_epoch_flipping_leaves_dataset_and_batch_unchanged():
    data = classification_data(n=64)
    labels = data.tensors[1].clone()
    model = Classifier()
    t = trainer(max_epochs=3, callbacks=[LabelNoise(flip=0.5, seed=0)])
    t.fit(model, DataLoader(data, batch_size=16, shuffle=True))
    assert torch.equal(data.tensors[1], labels)
    assert all(model.intact) and len(model.intact) == 12
    clean, seen = train_targets(model)
    assert (seen != clean).any()


def test_named_loss_with_keyword_call_and_custom_argument_names():
    class Criterion(nn.Module):  # a custom loss: integer targets are class indices
        def forward(self, logits, labels):
            self.seen = labels.clone()
            return F.cross_entropy(logits, labels)

    class Model(Classifier):
        def __init__(self):
            super().__init__()
            self.criterion = Criterion()

        def training_step(self, batch, batch_idx):
            x, y = batch
            self.clean.append(("train", y.clone()))
            return self.criterion(logits=self.net(x), labels=y)

    model = Model()
    fit(LabelNoise(flip=0.9999, loss="criterion", seed=0), model, classification_data(n=16), batch_size=16)
    assert (model.criterion.seen != model.clean[-1][1]).all()


# ------------------------------------------------------------------------------------------------ seeds, resume
def test_same_seed_same_targets_other_seed_other_targets():
    def targets(seed):
        return train_targets(fit(LabelNoise(flip=0.5, seed=seed))[0])[1]

    assert torch.equal(targets(7), targets(7))
    assert not torch.equal(targets(7), targets(8))


def test_resumed_run_sees_the_same_targets(tmp_path):
    data = classification_data(n=64)
    full = Classifier()
    trainer(max_epochs=2, callbacks=[LabelNoise(flip=0.5, seed=3)]).fit(full, DataLoader(data, batch_size=16))
    first = Classifier()
    t = trainer(max_epochs=1, callbacks=[LabelNoise(flip=0.5, seed=3)])
    t.fit(first, DataLoader(data, batch_size=16))
    t.save_checkpoint(tmp_path / "epoch1.ckpt")
    resumed = Classifier()
    trainer(max_epochs=2, callbacks=[LabelNoise(flip=0.5)]).fit(  # seed comes back from the checkpoint
        resumed, DataLoader(data, batch_size=16), ckpt_path=tmp_path / "epoch1.ckpt"
    )
    expected = [t for _, t, _ in full.loss.calls("train")][4:]
    got = [t for _, t, _ in resumed.loss.calls("train")]
    assert len(got) == 4 and all(torch.equal(a, b) for a, b in zip(expected, got, strict=True))


# ------------------------------------------------------------------------------------------------ errors
class FunctionalLoss(Classifier):
    def __init__(self):
        super().__init__()
        del self.loss

    def training_step(self, batch, batch_idx):
        x, y = batch
        return F.cross_entropy(self.net(x), y)


class TwoLosses(Classifier):
    def __init__(self):
        super().__init__()
        self.aux = nn.MSELoss()


def test_no_loss_module_is_an_error_at_setup():
    with pytest.raises(ValueError, match=r"LabelNoise found no loss module in FunctionalLoss.*Submodules: net"):
        fit(LabelNoise(smoothing=0.1), FunctionalLoss())


def test_several_loss_modules_is_an_error_naming_them():
    with pytest.raises(ValueError, match=r"several loss modules.*'loss'.*'aux' \(MSELoss\).*loss='<name>'"):
        fit(LabelNoise(smoothing=0.1), TwoLosses())
    model, _ = fit(LabelNoise(smoothing=0.1, loss="loss"), TwoLosses())  # naming one resolves it
    assert model.loss.calls("train")


def test_unknown_loss_name_and_uncalled_loss():
    with pytest.raises(ValueError, match=r"`loss`='criterion' is not a submodule"):
        fit(LabelNoise(flip=0.1, loss="criterion"))
    model = FunctionalLoss()
    model.unused = nn.CrossEntropyLoss()
    with pytest.raises(RuntimeError, match=r"'unused'.*not called during the first training batch"):
        fit(LabelNoise(flip=0.1), model)


@pytest.mark.parametrize("value", [-0.1, 1.0, 1.5, schedules.Linear(0.0, 1.2, steps=10)])
@pytest.mark.parametrize("argument", ["smoothing", "flip"])
def test_amounts_out_of_range(argument, value):
    with pytest.raises(ValueError, match=rf"`{argument}` must be in \[0, 1\), got"):
        LabelNoise(**{argument: value})
    with pytest.raises(ValueError, match=rf"`{argument}` must be a number, got nan"):
        LabelNoise(**{argument: float("nan")})


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"style": "szegedy"}, r"`style` must be 'book' or 'uniform', got 'szegedy'"),
        ({"transition": [[0.5, 0.6], [0.0, 1.0]]}, r"row-stochastic.*row sums \[1.1, 1.0\]"),
        ({"transition": [[1.0, 0.0, 0.0]]}, r"square k x k matrix.*shape \(1, 3\)"),
        ({"transition": [[1.5, -0.5], [0.0, 1.0]]}, r"probabilities >= 0"),
        ({"transition": [[0.9, 0.1], [0.1, 0.9]], "flip": 0.1}, r"`flip` and `transition` are exclusive"),
        ({"loss": ""}, r"`loss` must be a non-empty string \(the attribute path of the loss module"),
    ],
)
def test_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        LabelNoise(**kwargs)


@pytest.mark.parametrize(
    ("callback", "loss", "error", "match"),
    [
        (LabelNoise(smoothing=0.1), nn.NLLLoss(), ValueError, r"NLLLoss \('loss'\) cannot take"),
        (LabelNoise(smoothing=0.1), nn.CrossEntropyLoss(label_smoothing=0.1), ValueError, r"smooth them twice"),
        (LabelNoise(flip=0.1), nn.MSELoss(), ValueError, r"MSELoss.*Use TargetNoise"),
        (LabelNoise(flip=0.1), nn.MultiMarginLoss(), ValueError, r"does not support.*MultiMarginLoss"),
        (LabelNoise(transition=torch.eye(2)), nn.CrossEntropyLoss(), ValueError, r"2 x 2, but the logits have k = 3"),
    ],
)
def test_incompatible_losses(callback, loss, error, match):
    with pytest.raises(error, match=match):
        fit(callback, Classifier(loss=loss))


def test_flipping_with_nll_loss_works():
    class LogSoftmaxClassifier(Classifier):
        def _step(self, batch, stage):
            x, y = batch
            self.clean.append((stage, y.clone()))
            self.loss.stage = stage
            return self.loss(F.log_softmax(self.net(x), dim=1), y)

    model = LogSoftmaxClassifier(loss=recording(nn.NLLLoss))
    fit(LabelNoise(flip=0.5, seed=0), model)
    clean, seen = train_targets(model)
    assert (seen != clean).any() and seen.dtype == torch.int64


def test_bf16_mixed_precision_keeps_float32_soft_targets():
    model, _ = fit(LabelNoise(smoothing=0.1, seed=0), precision="bf16-mixed")
    target = model.loss.calls("train")[0][1]
    assert target.dtype == torch.float32 and torch.equal(target.max(dim=1).values, torch.full((16,), 0.9))
