"""Each schedule against its formula at several steps; bounds; validation; serialization."""

import math
import pickle

import pytest

from lightning_noise import schedules as S

STEPS = [0, 1, 7, 50, 99, 100, 101, 10_000]


def test_constant():
    assert [S.Constant(0.3)(t) for t in STEPS] == [0.3] * len(STEPS)


@pytest.mark.parametrize("start,end", [(0.0, 1.0), (0.5, 0.1)])
def test_linear(start, end):
    s = S.Linear(start, end, steps=100)
    for t in STEPS:
        assert s(t) == pytest.approx(start + (end - start) * min(t, 100) / 100)
    assert s.bounds() == (min(start, end), max(start, end))


def test_cosine():
    s = S.Cosine(1.0, 0.2, steps=100)
    for t in STEPS:
        assert s(t) == pytest.approx(0.2 + 0.8 * 0.5 * (1 + math.cos(math.pi * min(t, 100) / 100)))
    assert s(50) == pytest.approx(0.6)


def test_step():
    s = S.Step(1.0, gamma=0.5, step_size=10)
    for t in STEPS:
        assert s(t) == pytest.approx(0.5 ** (t // 10))
    m = S.Step(2.0, gamma=0.1, milestones=[10, 100])
    assert [m(t) for t in (0, 9, 10, 99, 100, 10_000)] == pytest.approx([2.0, 2.0, 0.2, 0.2, 0.02, 0.02])
    assert m.bounds() == pytest.approx((0.02, 2.0))


def test_exponential():
    s = S.Exponential(1.0, decay=0.99, end=0.1)
    for t in STEPS:
        assert s(t) == pytest.approx(max(0.99**t, 0.1))
    assert s.bounds() == (0.1, 1.0)


@pytest.mark.parametrize("eta,gamma", [(0.01, 0.55), (0.3, 0.55), (1.0, 0.55), (0.5, 0.0)])
def test_annealed_is_the_square_root_of_the_variance(eta, gamma):
    s = S.Annealed(eta, gamma)
    for t in STEPS:
        variance = eta / (1 + t) ** gamma
        assert s(t) == pytest.approx(math.sqrt(variance), rel=1e-12)
        assert s(t) ** 2 == pytest.approx(variance, rel=1e-12)


@pytest.mark.parametrize(
    "shape", [S.Constant(1.0), S.Linear(0.0, 1.0, steps=100), S.Annealed(1.0), S.Step(1.0, gamma=0.5, step_size=10)]
)
def test_scaled_is_the_factor_times_the_shape(shape):
    s = S.Scaled(shape, 0.3)
    for t in STEPS:
        assert s(t) == pytest.approx(0.3 * shape(t))
    low, high = shape.bounds()
    assert s.bounds() == pytest.approx((0.3 * low, 0.3 * high))
    assert S.Scaled(shape, 0.0).bounds() == (0.0, 0.0)


def test_scaled_reads_as_factor_times_shape():
    s = S.Scaled(S.Linear(1.0, 0.0, steps=10), 0.2)
    assert repr(s) == "0.2 x Linear(start=1.0, end=0.0, steps=10)"
    assert s == S.Scaled(S.Linear(1.0, 0.0, steps=10), 0.2) and s != S.Scaled(S.Linear(1.0, 0.0, steps=10), 0.3)
    assert pickle.loads(pickle.dumps(s)) == s


@pytest.mark.parametrize(
    "make,match",
    [
        (lambda: S.Linear(-1.0, 0.0, steps=10), r"Linear: `start` must be a finite number >= 0, got -1.0"),
        (lambda: S.Linear(0.0, 1.0, steps=0), r"Linear: `steps` must be an integer >= 1, got 0"),
        (lambda: S.Cosine(0.0, -1.0, steps=5), r"Cosine: `end`"),
        (lambda: S.Step(1.0), r"Step: give exactly one of `step_size` and `milestones`"),
        (lambda: S.Step(1.0, milestones=[5, 3]), r"increasing"),
        (lambda: S.Exponential(1.0, decay=1.5), r"`decay` must be in \[0, 1\], got 1.5"),
        (lambda: S.Annealed(-0.3), r"Annealed: `eta` must be a finite number >= 0, got -0.3"),
        (lambda: S.Annealed(0.3, gamma=-1), r"Annealed: `gamma`"),
        (lambda: S.Constant(float("nan")), r"Constant: `value` must be a number"),
        (lambda: S.Scaled(S.Constant(1.0), -0.1), r"Scaled: `factor` must be a finite number >= 0, got -0.1"),
    ],
)
def test_bad_arguments(make, match):
    with pytest.raises(ValueError, match=match):
        make()


def test_scaled_needs_a_schedule():
    with pytest.raises(TypeError, match=r"Scaled: `shape` must be a lightning_noise schedule, got 0.5 \(float\)"):
        S.Scaled(0.5, 0.1)


def test_as_schedule():
    assert S.as_schedule(0.2) == S.Constant(0.2)
    cos = S.Cosine(1.0, 0.0, steps=3)
    assert S.as_schedule(cos) is cos
    fn = lambda t: 0.1  # noqa: E731
    assert S.as_schedule(fn) is fn
    with pytest.raises(TypeError, match=r"`std` must be a float or a schedule, got str 'big'"):
        S.as_schedule("big", "std")


def test_schedules_are_picklable_and_readable():
    s = S.Step(1.0, gamma=0.5, milestones=[1, 2])
    assert pickle.loads(pickle.dumps(s)) == s
    assert repr(S.Annealed(0.3, 0.55)) == "Annealed(eta=0.3, gamma=0.55)"


def test_hydra_instantiate():
    hydra_utils = pytest.importorskip("hydra.utils")
    s = hydra_utils.instantiate({"_target_": "lightning_noise.schedules.Annealed", "eta": 0.3, "gamma": 0.55})
    assert s == S.Annealed(0.3, 0.55)
