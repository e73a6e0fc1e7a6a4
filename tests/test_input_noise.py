"""InputNoise: where and when noise reaches forward's inputs, and the errors that stop silent no-ops."""

import math

import lightning.pytorch as pl
import pytest
import torch
from torch import nn

from lightning_noise import InputNoise, schedules
from tests.helpers import RecordingMLP, loader, regression_data, trainer


def _seen(model, stage):
    return [x for s, x in model.seen if s == stage]


def test_noise_in_training_only_and_clean_everywhere_else():
    data = regression_data(n=64)
    model = RecordingMLP()
    t = trainer(max_epochs=2, callbacks=[InputNoise(std=0.5, seed=0)], num_sanity_val_steps=2)
    t.fit(model, loader(data), loader(data))
    t.validate(model, loader(data))
    t.test(model, loader(data))
    t.predict(model, loader(data))
    clean = data.tensors[0]
    batches = list(clean.split(16))
    train_seen = _seen(model, "train")
    assert len(train_seen) == 8
    diffs = torch.cat([seen - batches[i % 4] for i, seen in enumerate(train_seen)])
    # 512 noise draws of std 0.5: the sample std is within 5 SE (0.5 / sqrt(2 * 512) = 0.016) of 0.5.
    assert abs(diffs.std().item() - 0.5) < 5 * 0.5 / math.sqrt(2 * diffs.numel())
    for stage in ("sanity_check", "validate", "test", "predict"):
        seen = _seen(model, stage)
        assert seen, stage
        for i, x in enumerate(seen):
            assert torch.equal(x, batches[i % 4]), stage


def test_training_step_keeps_the_clean_batch():
    """The hook changes only what forward sees: a denoising target built from the batch stays clean."""

    class Denoiser(RecordingMLP):
        def __init__(self):
            super().__init__(features=4)
            self.head = nn.Linear(16, 4)
            self.targets = []

        def training_step(self, batch, batch_idx):
            x, _ = batch
            self.targets.append(x.clone())
            return nn.functional.mse_loss(self(x), x)

    data = regression_data(n=32)
    model = Denoiser()
    trainer(callbacks=[InputNoise(std=1.0)]).fit(model, loader(data))
    for target, batch in zip(model.targets, data.tensors[0].split(16), strict=True):
        assert torch.equal(target, batch)
    assert not torch.equal(_seen(model, "train")[0], data.tensors[0][:16])


def test_table_sampler_on_inputs_is_training_only_and_at_the_right_level():
    data = torch.utils.data.TensorDataset(torch.zeros(1024, 4), torch.zeros(1024, 1))
    model = RecordingMLP(lr=0.0)
    t = trainer(callbacks=[InputNoise(std=0.5, sampler="table", table_size=1 << 14)], num_sanity_val_steps=1)
    t.fit(model, loader(data, batch_size=256), loader(data, batch_size=256))
    noise = torch.cat(_seen(model, "train"))
    assert abs(noise.std().item() - 0.5) < 5 * 0.5 / (2 * noise.numel()) ** 0.5
    assert all(torch.equal(x, torch.zeros_like(x)) for x in _seen(model, "sanity_check") + _seen(model, "validate"))


def test_test_time_noise_on_request():
    data = regression_data(n=32)
    model = RecordingMLP()
    t = trainer(callbacks=[InputNoise(std=0.5, stages=["test"])])
    t.fit(model, loader(data))
    t.test(model, loader(data))
    assert all(torch.equal(x, b) for x, b in zip(_seen(model, "train"), data.tensors[0].split(16), strict=True))
    assert not any(torch.equal(x, b) for x, b in zip(_seen(model, "test"), data.tensors[0].split(16), strict=True))


def test_no_noise_when_the_module_is_in_eval_mode_during_training():
    class EvalInTraining(RecordingMLP):
        def training_step(self, batch, batch_idx):
            self.eval()
            out = self(batch[0])
            self.train()
            return nn.functional.mse_loss(out, batch[1])

    data = regression_data(n=32)
    model = EvalInTraining()
    with pytest.warns(
        UserWarning, match=r"InputNoise added no noise at \['EvalInTraining'\] during the first training epoch"
    ):
        trainer(callbacks=[InputNoise(std=0.5)]).fit(model, loader(data))
    assert all(torch.equal(x, b) for x, b in zip(_seen(model, "train"), data.tensors[0].split(16), strict=True))


class DictModel(pl.LightningModule):
    def __init__(self):
        super().__init__()
        self.embed = nn.Embedding(10, 3)
        self.lin = nn.Linear(4 + 3, 1)
        self.seen = []

    def forward(self, batch):
        self.seen.append({k: v.clone() for k, v in batch.items()})
        return self.lin(torch.cat([batch["dense"], self.embed(batch["ids"])], dim=1))

    def training_step(self, batch, batch_idx):
        return self({"dense": batch[0], "ids": batch[1], "other": batch[0]}).pow(2).mean()

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.01)


def _dict_data():
    g = torch.Generator().manual_seed(0)
    return torch.utils.data.TensorDataset(torch.randn(16, 4, generator=g), torch.randint(0, 10, (16,), generator=g))


def test_dict_inputs_noise_floats_only_and_selected_keys():
    model = DictModel()
    trainer(callbacks=[InputNoise(std=0.5, inputs=["dense"])]).fit(model, loader(_dict_data()))
    seen = model.seen[0]
    x, ids = _dict_data().tensors
    assert not torch.equal(seen["dense"], x) and torch.equal(seen["other"], x) and torch.equal(seen["ids"], ids)

    model = DictModel()
    trainer(callbacks=[InputNoise(std=0.5)]).fit(model, loader(_dict_data()))
    seen = model.seen[0]
    assert not torch.equal(seen["dense"], x) and not torch.equal(seen["other"], x) and torch.equal(seen["ids"], ids)


class TokenModel(pl.LightningModule):
    def __init__(self):
        super().__init__()
        self.embed = nn.Embedding(10, 4)
        self.out = nn.Linear(4, 1)
        self.steps = 0

    def forward(self, ids):
        return self.out(self.embed(ids)).squeeze(-1)

    def training_step(self, batch, batch_idx):
        self.steps += 1
        return self(batch[0]).pow(2).mean()

    def validation_step(self, batch, batch_idx):
        self(batch[0])

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.01)


def test_integer_inputs_fail_before_training_with_a_hint():
    data = torch.utils.data.TensorDataset(torch.randint(0, 10, (16,)))
    model = TokenModel()
    with pytest.raises(
        TypeError,
        match=r"no floating-point tensor.*torch.int64.*ActivationNoise\(std=\.\.\., modules=\['Embedding'\]\)",
    ):
        trainer(callbacks=[InputNoise(std=0.1)]).fit(model, loader(data), loader(data))
    assert model.steps == 0  # raised in the sanity check, before any training step


def test_unknown_input_name_is_reported():
    with pytest.raises(
        ValueError, match=r"`inputs` \['dens'\] are not among the arguments.*dict keys \['dense', 'ids', 'other'\]"
    ):
        trainer(callbacks=[InputNoise(std=0.1, inputs=["dens"])]).fit(DictModel(), loader(_dict_data()))


def test_hook_that_never_fires_is_an_error():
    class CallsSubmodule(RecordingMLP):
        def training_step(self, batch, batch_idx):
            x, y = batch
            return nn.functional.mse_loss(self.head(self.encoder(x)), y)

    with pytest.raises(RuntimeError, match=r"nothing called it during the first training batch.*module='model'"):
        trainer(callbacks=[InputNoise(std=0.1)]).fit(CallsSubmodule(), loader(regression_data()))


def test_submodule_inputs():
    data = regression_data(n=32)
    model = RecordingMLP()
    trainer(callbacks=[InputNoise(std=0.5, module="head")]).fit(model, loader(data))
    # forward sees clean inputs; the head sees noisy hidden units (ReLU outputs turn negative). The noise hook is
    # prepended, so the model's own recording hook on the head sees what the head sees.
    assert all(torch.equal(x, b) for x, b in zip(_seen(model, "train"), data.tensors[0].split(16), strict=True))
    assert min(h.min().item() for s, h in model.hidden if s == "train") < 0


def test_missing_submodule_lists_names():
    with pytest.raises(
        ValueError, match=r"`module`='decoder' is not a submodule of RecordingMLP.*encoder.0 \(Linear\)"
    ):
        trainer(callbacks=[InputNoise(std=0.1, module="decoder")]).fit(RecordingMLP(), loader(regression_data()))


def test_relative_noise_follows_each_feature_std():
    scales = torch.tensor([0.1, 1.0, 10.0, 100.0])
    g = torch.Generator().manual_seed(0)
    x = torch.randn(2048, 4, generator=g) * scales
    data = torch.utils.data.TensorDataset(x, torch.zeros(2048, 1))
    model = RecordingMLP(lr=0.0)
    trainer(callbacks=[InputNoise(std=0.2, relative=True)]).fit(model, loader(data, batch_size=256))
    seen = torch.cat(_seen(model, "train"))
    ratio = (seen - x).std(0) / (0.2 * x.std(0))
    # Later batches use the running estimate; the first uses its own 256 samples (std estimate within ~5%).
    assert torch.allclose(ratio, torch.ones(4), atol=0.06), ratio


def test_amount_schedule_is_logged(tmp_path):
    data = regression_data(n=64)
    logger = pl.loggers.CSVLogger(tmp_path, name="run")
    sched = schedules.Linear(0.4, 0.0, steps=8)
    t = trainer(max_epochs=2, callbacks=[InputNoise(std=sched)], logger=logger, log_every_n_steps=1)
    t.fit(RecordingMLP(), loader(data))
    import csv

    rows = [r for r in csv.DictReader(open(logger.log_dir + "/metrics.csv")) if r.get("noise/input_std")]
    assert len(rows) == 8
    for row in rows:
        assert float(row["noise/input_std"]) == pytest.approx(sched(int(row["step"])))


@pytest.mark.parametrize(
    "kwargs,error,match",
    [
        (dict(std=-0.1), ValueError, r"`std` for 'gaussian' noise must be in \[0.0, inf\], got -0.1"),
        (dict(), ValueError, r"'gaussian' noise takes its amount as `std=` \(or `amount=`\), got no amount"),
        (dict(std=0.1, kind="dropout"), ValueError, r"'dropout' noise takes its amount as `p=`.*got std=0.1"),
        (dict(std=0.1, p=0.1), ValueError, r"got std=0.1, p=0.1"),
        (
            dict(p=1.5, kind="salt_and_pepper"),
            ValueError,
            r"`p` for 'salt_and_pepper' noise must be in \[0.0, 1.0\], got 1.5",
        ),
        (dict(p=schedules.Linear(0.5, 1.0, steps=10), kind="dropout"), ValueError, r"\[0.0, 1.0\), got 1.0"),
        (dict(std=0.1, kind="gausian"), ValueError, r"Unknown noise `kind` 'gausian'"),
        (
            dict(std=0.1, stages=["training"]),
            ValueError,
            r"`stages` must be a non-empty subset of \['train', 'validate', 'test', 'predict'\], got \['training'\]",
        ),
        (dict(std=0.1, seed=-1), ValueError, r"`seed` must be an integer >= 0 or None, got -1"),
        (dict(std=0.1, unit="batch"), ValueError, r"`unit` must be 'step' or 'epoch', got 'batch'"),
        (dict(p=0.1, kind="dropout", relative=True), ValueError, r"`relative=True` needs a kind.*got kind='dropout'"),
        (dict(std="0.1"), TypeError, r"`std` must be a float or a schedule, got str '0.1'"),
        (dict(std=0.1, inputs=[]), ValueError, r"`inputs` must be None or a non-empty list"),
    ],
)
def test_bad_arguments_fail_in_init(kwargs, error, match):
    with pytest.raises(error, match=match):
        InputNoise(**kwargs)


def test_relative_std_stays_float32_for_16_bit_inputs():
    """The per-feature std of bf16 inputs is kept in float32 until the noise is added (not rounded to bf16)."""
    from lightning_noise.input_noise import _feature_std

    callback = InputNoise(std=0.2, relative=True, seed=0)
    callback._active_stage = "train"
    x = (torch.randn(64, 5, generator=torch.Generator().manual_seed(0)) * 3.0 + 1.0).bfloat16()
    std = _feature_std(callback, "0.0", x, 0)
    assert std.dtype == torch.float32
    assert torch.allclose(std, x.float().std(dim=0), rtol=1e-6)
