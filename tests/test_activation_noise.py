"""ActivationNoise: module selection, noise level, stages, tuple outputs, errors, mixed precision."""

import math

import lightning.pytorch as pl
import pytest
import torch
from torch import nn

from lightning_noise import ActivationNoise, InputNoise
from tests.helpers import RecordingMLP, loader, regression_data, trainer


class Probe(pl.LightningModule):
    """x -> Identity ("probe") -> Linear; records the probe's clean input and what the Linear receives."""

    def __init__(self, features=64):
        super().__init__()
        self.probe = nn.Identity()
        self.out = nn.Linear(features, 1)
        self.received = []
        self.out.register_forward_pre_hook(lambda m, a: self.received.append(a[0].detach().clone()))

    def forward(self, x):
        return self.out(self.probe(x))

    def training_step(self, batch, batch_idx):
        return self(batch[0]).pow(2).mean()

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.0)


@pytest.mark.parametrize(
    "kind,amount,expected_std,sampler",
    [
        ("gaussian", 0.3, 0.3, "exact"),
        ("uniform", 0.3, 0.3, "exact"),
        ("multiplicative", 0.3, 0.3 * 2.0, "exact"),
        ("gaussian", 0.3, 0.3, "table"),
        ("multiplicative", 0.3, 0.3 * 2.0, "table"),
    ],
)
def test_noise_level_on_a_probe(kind, amount, expected_std, sampler):
    x = torch.full((512, 64), 2.0)
    model = Probe()
    callback = ActivationNoise(std=amount, kind=kind, modules=["probe"], sampler=sampler, table_size=1 << 16)
    trainer(callbacks=[callback]).fit(model, loader(torch.utils.data.TensorDataset(x), batch_size=128))
    noise = torch.cat(model.received) - x
    n = noise.numel()
    assert abs(noise.std().item() / expected_std - 1) < 5 / math.sqrt(2 * n)
    assert abs(noise.mean().item()) < 5 * expected_std / math.sqrt(n)


def test_dropout_kind_and_input_side():
    x = torch.ones(256, 64)
    model = Probe()
    trainer(callbacks=[ActivationNoise(p=0.25, kind="dropout", modules=["out"], where="input")]).fit(
        model, loader(torch.utils.data.TensorDataset(x), batch_size=128)
    )
    received = torch.cat(model.received)
    assert torch.allclose(received.unique(), torch.tensor([0.0, 1 / 0.75]))
    assert abs((received == 0).float().mean().item() - 0.25) < 5 * math.sqrt(0.25 * 0.75 / received.numel())


def test_selection_by_glob_and_class_name():
    model = RecordingMLP()
    callback = ActivationNoise(std=0.1, modules=["encoder.*", "Linear"])
    trainer(callbacks=[callback]).fit(model, loader(regression_data(n=16)))
    assert callback.matched_modules == ["encoder.0", "encoder.1", "head"]


def test_pattern_that_matches_nothing_lists_the_modules():
    with pytest.raises(
        ValueError,
        match=r"pattern\(s\) \['decoder\.\*'\] match no submodule of RecordingMLP.*"
        r"encoder \(Sequential\), encoder.0 \(Linear\), encoder.1 \(ReLU\), head \(Linear\)",
    ):
        trainer(callbacks=[ActivationNoise(std=0.1, modules=["encoder.*", "decoder.*"])]).fit(
            RecordingMLP(), loader(regression_data(n=16))
        )


def test_hidden_noise_in_training_only():
    data = regression_data(n=32)
    model = RecordingMLP()
    t = trainer(callbacks=[ActivationNoise(std=0.5, modules=["encoder.1"])], num_sanity_val_steps=1)
    t.fit(model, loader(data), loader(data))
    assert min(h.min().item() for s, h in model.hidden if s == "train") < 0  # noisy ReLU outputs
    model.hidden.clear()
    t.validate(model, loader(data))
    t.test(model, loader(data))
    t.predict(model, loader(data))
    with torch.no_grad():
        clean = model.encoder(data.tensors[0]).split(16)
    for stage in ("validate", "test", "predict"):
        seen = [h for s, h in model.hidden if s == stage]
        assert len(seen) == 2 and all(torch.equal(h, c) for h, c in zip(seen, clean, strict=True)), stage


def test_sanity_check_is_clean():
    data = regression_data(n=32)
    model = RecordingMLP()
    trainer(callbacks=[ActivationNoise(std=0.5, modules=["encoder.1"])], num_sanity_val_steps=2, max_steps=0).fit(
        model, loader(data), loader(data)
    )
    sanity = [h for s, h in model.hidden if s == "sanity_check"]
    assert len(sanity) == 2 and all(h.min() >= 0 for h in sanity)


class LSTMModel(pl.LightningModule):
    def __init__(self):
        super().__init__()
        self.embedding = nn.Embedding(20, 8)
        self.lstm = nn.LSTM(8, 8, batch_first=True)
        self.out = nn.Linear(8, 1)

    def forward(self, ids):
        out, _ = self.lstm(self.embedding(ids))
        return self.out(out[:, -1])

    def training_step(self, batch, batch_idx):
        return self(batch[0]).pow(2).mean()

    def validation_step(self, batch, batch_idx):
        self(batch[0])

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.01)


def _token_data():
    return torch.utils.data.TensorDataset(torch.randint(0, 20, (16, 5), generator=torch.Generator().manual_seed(0)))


def test_tuple_outputs_and_embeddings():
    callback = ActivationNoise(std=0.1, modules=["embedding", "lstm"])
    trainer(callbacks=[callback]).fit(LSTMModel(), loader(_token_data()))
    assert callback.matched_modules == ["embedding", "lstm"]


def test_integer_module_input_fails_before_training():
    with pytest.raises(
        TypeError,
        match=r"matched 'embedding' \(Embedding\), but gaussian noise cannot be added to its input.*"
        r"holds no floating-point tensor \(got torch.int64 \(16, 5\)\).*noise the embedding's output",
    ):
        trainer(callbacks=[ActivationNoise(std=0.1, modules=["embedding"], where="input")]).fit(
            LSTMModel(), loader(_token_data()), loader(_token_data())
        )


def test_modules_that_never_run_are_an_error():
    class Unused(RecordingMLP):
        def __init__(self):
            super().__init__()
            self.spare = nn.Linear(4, 4)

    with pytest.raises(RuntimeError, match=r"hooks \['spare'\], but none of them ran during the first training batch"):
        trainer(callbacks=[ActivationNoise(std=0.1, modules=["spare"])]).fit(Unused(), loader(regression_data()))


def test_bf16_mixed_noise_has_the_activation_dtype():
    seen = []

    class Model(RecordingMLP):
        def __init__(self):
            super().__init__()
            self.head.register_forward_pre_hook(lambda m, a: seen.append(a[0].dtype))

    model = Model()
    trainer(precision="bf16-mixed", callbacks=[ActivationNoise(std=0.5, modules=["encoder.0"])]).fit(
        model, loader(regression_data(n=32))
    )
    assert seen and all(dtype == torch.bfloat16 for dtype in seen)
    assert min(h.float().min().item() for s, h in model.hidden if s == "train") == 0  # ReLU after noise: clean path


@pytest.mark.parametrize(
    "kwargs,match",
    [
        (dict(std=0.1, modules=[]), r"`modules` must be a non-empty list"),
        (dict(std=0.1, modules=[""]), r"`modules` must be a non-empty list"),
        (dict(std=0.1, modules=["Linear"], where="inside"), r"`where` must be 'output' or 'input', got 'inside'"),
        (dict(std=-1.0, modules=["Linear"]), r"`std` for 'gaussian' noise must be in \[0.0, inf\], got -1.0"),
    ],
)
def test_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        ActivationNoise(**kwargs)


def test_table_sampler_draws_differ_between_calls_and_batches_and_repeat_with_the_seed():
    """Each call of a hook within a batch and each batch read other windows of the table; the seed fixes them."""

    def received(seed):
        model = Probe(features=8)
        model.forward = lambda x: model.out(model.probe(model.probe(x)))  # the probe runs twice per batch
        cb = ActivationNoise(std=1.0, modules=["probe"], sampler="table", table_size=1 << 12, seed=seed)
        trainer(max_epochs=1, callbacks=[cb]).fit(model, loader(torch.utils.data.TensorDataset(torch.zeros(64, 8)), 32))
        return torch.stack(model.received)

    a, b = received(0), received(0)
    assert torch.equal(a, b) and not torch.equal(a, received(1))
    first_batch, second_batch = a
    assert not torch.equal(first_batch, second_batch)
    # Two noise draws per batch: the received value is the sum of two draws, so its std is sqrt(2).
    assert abs(a.std().item() - 2**0.5) < 5 * 2**0.5 / (2 * a.numel()) ** 0.5


def test_table_sampler_needs_a_normal_kind():
    with pytest.raises(ValueError, match=r"`sampler='table'` holds normal numbers.*got kind='dropout'"):
        ActivationNoise(p=0.1, kind="dropout", modules=["Linear"], sampler="table")
    with pytest.raises(ValueError, match=r"`sampler` must be 'exact' or 'table', got 'fast'"):
        ActivationNoise(std=0.1, modules=["Linear"], sampler="fast")


def test_hooks_are_removed_at_teardown_and_reinstalled_on_the_next_fit():
    model = RecordingMLP()
    noise = [ActivationNoise(std=0.5, modules=["encoder.1"]), InputNoise(std=0.5)]
    hooks_before = {name: (len(m._forward_hooks), len(m._forward_pre_hooks)) for name, m in model.named_modules()}
    t = trainer(callbacks=noise)
    t.fit(model, loader(regression_data(n=32)))
    hooks_after = {name: (len(m._forward_hooks), len(m._forward_pre_hooks)) for name, m in model.named_modules()}
    assert hooks_after == hooks_before
    x = regression_data(n=32).tensors[0]
    with torch.no_grad():
        model.train()
        assert torch.equal(model(x), model.head(model.encoder(x)))  # outside the trainer: clean, even in train mode
    model.hidden.clear()
    trainer(callbacks=noise).fit(model, loader(regression_data(n=32)))  # the same instances work again
    assert min(h.min().item() for s, h in model.hidden if s == "train") < 0


# ------------------------------------------------------------------------------ issue 10: items 7, 9, 10
class KeywordCall(Probe):
    """Calls its probe with a keyword argument: ``self.probe(input=x)``."""

    def __init__(self, features=32):
        super().__init__(features)

    def forward(self, x):
        return self.out(self.probe(input=x))


def test_input_side_noise_reaches_keyword_inputs():
    x = torch.full((256, 32), 2.0)
    model = KeywordCall()
    trainer(callbacks=[ActivationNoise(std=0.3, modules=["probe"], where="input", seed=0)]).fit(
        model, loader(torch.utils.data.TensorDataset(x), batch_size=128)
    )
    noise = torch.cat(model.received) - x
    assert abs(noise.std().item() / 0.3 - 1) < 5 / math.sqrt(2 * noise.numel())


def test_input_side_error_names_the_real_cause():
    class NoTensor(KeywordCall):
        def forward(self, x):
            self.probe(input=None)
            return self.out(x)

    with pytest.raises(
        TypeError, match=r"its input \(positional and keyword arguments\): the call passed no tensor at all"
    ):
        trainer(callbacks=[ActivationNoise(std=0.1, modules=["probe"], where="input")]).fit(
            NoTensor(), loader(torch.utils.data.TensorDataset(torch.ones(8, 32)), batch_size=8)
        )


def test_a_submodule_kept_in_eval_mode_is_warned_about_once():
    class Frozen(Probe):
        def on_train_epoch_start(self):
            self.probe.eval()

    model = Frozen()
    callback = ActivationNoise(std=0.1, modules=["probe", "out"])
    with pytest.warns(UserWarning, match=r"added no noise at \['probe'\] during the first training epoch") as record:
        trainer(callbacks=[callback], max_epochs=2).fit(
            model, loader(torch.utils.data.TensorDataset(torch.ones(64, 64)), batch_size=32)
        )
    assert sum("added no noise" in str(w.message) for w in record) == 1


def test_no_eval_mode_warning_when_the_module_trains(recwarn):
    trainer(callbacks=[ActivationNoise(std=0.1, modules=["probe"])]).fit(
        Probe(), loader(torch.utils.data.TensorDataset(torch.ones(64, 64)), batch_size=32)
    )
    assert not [w for w in recwarn if "added no noise" in str(w.message)]


def _per_sample_callbacks():
    from lightning_noise import TargetNoise

    return [
        InputNoise(std=0.5, seed=0),
        ActivationNoise(std=0.5, modules=["probe"], seed=0),
        ActivationNoise(std=0.5, modules=["out"], where="input", seed=0, name="act_in"),
        TargetNoise(std=0.5, seed=0),
    ]


class PicklesMidFit(pl.LightningModule):
    """Pickles every callback, deep-copies and pickles itself in the middle of the first training batch."""

    def __init__(self):
        super().__init__()
        self.probe = nn.Identity()
        self.out = nn.Linear(64, 1)
        self.loss = nn.MSELoss()
        self.copies = []

    def forward(self, x):
        return self.out(self.probe(x))

    def training_step(self, batch, batch_idx):
        if batch_idx == 0:
            import copy
            import pickle

            for callback in self.trainer.callbacks:
                restored = pickle.loads(pickle.dumps(callback))
                assert type(restored) is type(callback) and restored.amounts == callback.amounts
            trainer_ref, self._trainer = self._trainer, None  # the Trainer itself is not picklable
            self.copies.append(copy.deepcopy(self))
            self.copies.append(pickle.loads(pickle.dumps(self)))
            self._trainer = trainer_ref
        return self.loss(self(batch[0]), batch[0][:, :1])

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.0)


def test_callbacks_pickle_and_model_copies_are_inert_during_fit():
    model = PicklesMidFit()
    callbacks = _per_sample_callbacks()
    x = torch.full((64, 64), 2.0)
    trainer(callbacks=callbacks).fit(model, loader(torch.utils.data.TensorDataset(x), batch_size=32))
    assert len(model.copies) == 2
    clean = x[:4]
    for callback in callbacks:  # switch the callbacks on: the copies' hooks must still add nothing
        callback._active_stage = "train"
    try:
        for copy in model.copies:
            copy.train()
            with torch.no_grad():
                assert torch.equal(copy(clean), copy.out(clean))
                target = torch.ones(4, 1)
                assert torch.equal(copy.loss(copy.out(clean), target), nn.functional.mse_loss(copy.out(clean), target))
    finally:
        for callback in callbacks:
            callback._active_stage = None


def test_parameter_noise_callbacks_pickle_and_model_copies_during_fit():
    """WeightNoise (whose state-dict hooks sit on the model) and GradientNoise pickle mid-fit too; the model's
    copies keep inert hooks, and the live hooks are cut from the callback at teardown."""
    import pickle

    from lightning_noise import GradientNoise, WeightNoise
    from lightning_noise._hooks import InertHook

    model = PicklesMidFit()
    callbacks = [
        WeightNoise(std=0.5, seed=0),
        WeightNoise(std=0.5, seed=0, prefetch=False, name="w2"),
        GradientNoise(std=0.5, seed=0),
    ]
    x = torch.full((64, 64), 2.0)
    trainer(callbacks=callbacks).fit(model, loader(torch.utils.data.TensorDataset(x), batch_size=32))
    assert len(model.copies) == 2
    for copy in model.copies:
        hooks = list(copy.out._state_dict_hooks.values())
        assert hooks and all(isinstance(hook, InertHook) for hook in hooks)
        pickle.dumps(copy.state_dict())
    assert not model.out._state_dict_hooks  # removed at teardown
    for callback in callbacks:
        pickle.loads(pickle.dumps(callback))
