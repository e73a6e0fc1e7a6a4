"""Every public constructor against every kind of bad argument: out of range, wrong type, a string, NaN, inf.

Each row builds a constructor with one argument replaced. The constructor must raise the stated error in
``__init__``, and the message must name the argument (in backticks), say what was expected ("must be" or
"expected") and show the value given.
"""

from __future__ import annotations

import math
import re
from typing import Any

import pytest
import torch

from lightning_noise import (
    ActivationNoise,
    GradientNoise,
    InputNoise,
    LabelNoise,
    RandomizedSmoothing,
    RobustnessEvaluation,
    TargetNoise,
    WeightNoise,
    schedules,
)
from lightning_noise.corruptions import Corruption, gaussian_noise

NAN, INF = float("nan"), float("inf")
Row = tuple[str, Any, type[Exception]]


def amount(argument: str, out_of_range: float) -> list[Row]:
    return [
        (argument, out_of_range, ValueError),
        (argument, [0.1], TypeError),
        (argument, "0.1", TypeError),
        (argument, True, TypeError),
        (argument, NAN, ValueError),
        (argument, INF, ValueError),
        (argument, -INF, ValueError),
        (argument, schedules.Constant(INF), ValueError),
    ]


def number(argument: str, out_of_range: float) -> list[Row]:
    return [
        (argument, out_of_range, ValueError),
        (argument, [0.1], TypeError),
        (argument, "0.1", TypeError),
        (argument, NAN, ValueError),
        (argument, INF, ValueError),
    ]


def boolean(argument: str, none: bool = False) -> list[Row]:
    """Rows for a bool argument; ``none=True``: None is a valid value (it means "decide from the environment")."""
    return [(argument, v, TypeError) for v in ("false", "True", 0, 1.0, None, NAN, INF) if not (none and v is None)]


def integer(argument: str, minimum: int) -> list[Row]:
    return [
        (argument, minimum - 1, ValueError),
        (argument, float(minimum), TypeError),
        (argument, str(minimum), TypeError),
        (argument, True, TypeError),
        (argument, NAN, TypeError),
        (argument, INF, TypeError),
    ]


def choice(argument: str) -> list[Row]:
    return [(argument, "bogus", ValueError), (argument, 1, TypeError), (argument, NAN, TypeError)]


def name(argument: str, none_ok: bool = True) -> list[Row]:
    rows = [
        (argument, "", ValueError),
        (argument, 1, TypeError),
        (argument, NAN, TypeError),
        (argument, INF, TypeError),
    ]
    return rows if none_ok else [*rows, (argument, None, TypeError)]


def common(*, samplers: bool = True, stages: bool = True) -> list[Row]:
    rows = integer("seed", 0) + choice("unit") + boolean("log_amounts") + name("name", none_ok=False)
    if stages:
        rows += [
            ("stages", ["training"], ValueError),
            ("stages", "fit", ValueError),
            ("stages", 1, TypeError),
            ("stages", NAN, TypeError),
        ]
    if samplers:
        rows += choice("sampler") + integer("table_size", 2)
    return rows


def kind_kwargs() -> list[Row]:
    return [
        ("kind_kwargs", {"lo": 1.0}, ValueError),
        ("kind_kwargs", "low=1", TypeError),
        ("kind_kwargs", 1.0, TypeError),
    ]


def noise_kind() -> list[Row]:
    return [("kind", "gausian", ValueError), ("kind", 1, ValueError), ("kind", NAN, ValueError)]


def modules(required: bool) -> list[Row]:
    rows = [
        ("modules", [], ValueError),
        ("modules", [""], ValueError),
        ("modules", "", ValueError),
        ("modules", 1.0, TypeError),
        ("modules", NAN, TypeError),
    ]
    return rows + ([("modules", None, TypeError)] if required else [])


def line(x: torch.Tensor, level: float, generator: Any = None) -> torch.Tensor:
    return gaussian_noise(x, level, generator, clip=None)


CONSTRUCTORS: dict[str, tuple[Any, dict[str, Any], list[Row]]] = {
    "InputNoise": (
        InputNoise,
        {"std": 0.1},
        amount("std", -0.1)
        + noise_kind()
        + kind_kwargs()
        + name("module")
        + boolean("relative")
        + common()
        + [
            ("inputs", [], ValueError),
            ("inputs", [1.5], ValueError),
            ("inputs", 1.5, TypeError),
            ("inputs", NAN, TypeError),
        ],
    ),
    "InputNoise(kind='dropout')": (InputNoise, {"p": 0.1, "kind": "dropout"}, amount("p", 1.0)),
    "InputNoise(kind='snr')": (
        InputNoise,
        {"snr_db": 10.0, "kind": "snr"},
        amount("snr_db", NAN),
    ),
    "ActivationNoise": (
        ActivationNoise,
        {"std": 0.1, "modules": ["Linear"]},
        amount("std", -0.1) + noise_kind() + kind_kwargs() + modules(required=True) + choice("where") + common(),
    ),
    "WeightNoise": (
        WeightNoise,
        {"std": 0.1},
        amount("std", -0.1)
        + modules(required=False)
        + choice("kind")
        + boolean("biases")
        + boolean("prefetch")
        + boolean("check_finite")
        + common(stages=False),
    ),
    "GradientNoise": (
        GradientNoise,
        {"std": 0.1},
        amount("std", -0.1)
        + boolean("prefetch")
        + boolean("check_finite")
        + common(stages=False)
        + [
            ("param_groups", -1, ValueError),
            ("param_groups", [-1], ValueError),
            ("param_groups", [], ValueError),
            ("param_groups", 1.0, TypeError),
            ("param_groups", [0.0], TypeError),
            ("param_groups", "0", TypeError),
            ("param_groups", True, TypeError),
            ("param_groups", NAN, TypeError),
            ("param_groups", INF, TypeError),
        ],
    ),
    "GradientNoise(eta=...)": (GradientNoise, {"eta": 0.3}, number("eta", -0.3) + number("gamma", -0.5)),
    "LabelNoise": (
        LabelNoise,
        {"smoothing": 0.1},
        amount("smoothing", 1.0)
        + amount("flip", 1.5)
        + choice("style")
        + name("loss")
        + common(samplers=False)
        + [
            ("transition", [[0.5, 0.6], [0.0, 1.0]], ValueError),
            ("transition", "eye", ValueError),
            ("transition", [[NAN, 1.0], [0.0, 1.0]], ValueError),
            ("transition", [[INF, 0.0], [0.0, 1.0]], ValueError),
            ("transition", 1.0, ValueError),
        ],
    ),
    "TargetNoise": (
        TargetNoise,
        {"std": 0.1},
        amount("std", -0.1) + noise_kind() + kind_kwargs() + name("loss") + common(samplers=False),
    ),
    "RobustnessEvaluation": (
        RobustnessEvaluation,
        {"plot": False, "print_table": False},
        integer("seed", 0)
        + integer("dataloader_idx", 0)
        + integer("max_batches", 1)
        + choice("when")
        + boolean("plot", none=True)
        + boolean("print_table", none=True)
        + boolean("log")
        + name("metric_name")
        + name("dataset_name")
        + [
            ("corruptions", ["fog"], ValueError),
            ("corruptions", "fog", ValueError),
            ("corruptions", [], ValueError),
            ("corruptions", 1.0, TypeError),
            ("corruptions", NAN, TypeError),
            ("metric", "f1", ValueError),
            ("metric", 1, ValueError),
            ("metric", NAN, ValueError),
            ("batch_to_inputs_targets", "x", TypeError),
            ("batch_to_inputs_targets", 1, TypeError),
            ("output_dir", 1, TypeError),
            ("output_dir", NAN, TypeError),
        ],
    ),
    "RandomizedSmoothing": (
        RandomizedSmoothing,
        {"sigma": 0.25, "plot": False, "print_table": False},
        number("sigma", 0.0)
        + [("sigma", -0.1, ValueError), ("sigma", True, TypeError)]
        + integer("n0", 1)
        + integer("n", 1)
        + number("alpha", 1.0)
        + [("alpha", 0.0, ValueError)]
        + integer("batch_size", 1)
        + integer("max_samples", 1)
        + integer("seed", 0)
        + integer("dataloader_idx", 0)
        + choice("when")
        + boolean("plot", none=True)
        + boolean("print_table", none=True)
        + boolean("log")
        + name("dataset_name")
        + [
            ("radii", [], ValueError),
            ("radii", [-0.5], ValueError),
            ("radii", [NAN], ValueError),
            ("radii", [INF], ValueError),
            ("radii", NAN, ValueError),
            ("radii", ["0.5"], TypeError),
            ("radii", "0.5", TypeError),
            ("radii", [True], TypeError),
            ("batch_to_inputs_targets", "x", TypeError),
            ("batch_to_inputs_targets", 1, TypeError),
            ("output_dir", 1, TypeError),
            ("output_dir", NAN, TypeError),
        ],
    ),
    "Corruption": (
        Corruption,
        {"name": "line", "fn": line, "levels": (0.1, 0.2)},
        name("name", none_ok=False)
        + name("amount", none_ok=False)
        + boolean("unit_range")
        + [
            ("levels", [-0.1], ValueError),
            ("levels", [], ValueError),
            ("levels", ["0.1"], TypeError),
            ("levels", "0.1", TypeError),
            ("levels", 0.1, TypeError),
            ("levels", [NAN], ValueError),
            ("levels", [INF], ValueError),
            ("levels", [True], TypeError),
            ("fn", "gaussian", TypeError),
            ("fn", None, TypeError),
        ],
    ),
    **{
        f"{cls.__name__}({argument}=...)": (cls, {**extra, **kind}, amount(argument, bad))
        for cls, extra in ((InputNoise, {}), (ActivationNoise, {"modules": ["Linear"]}), (TargetNoise, {}))
        for argument, kind, bad in (
            ("p", {"kind": "dropout"}, 1.0),
            ("snr_db", {"kind": "snr"}, NAN),
            ("amount", {}, -0.1),
        )
        if not (argument == "snr_db" and cls is InputNoise)  # InputNoise's snr rows are above
    },
    "schedules.Constant": (
        schedules.Constant,
        {"value": 0.1},
        [("value", v, e) for _, v, e in number("value", 0) if v not in (0, INF)],
    ),
    "schedules.Linear": (
        schedules.Linear,
        {"start": 0.1, "end": 0.0, "steps": 10},
        number("start", -0.1) + number("end", -0.1) + integer("steps", 1),
    ),
    "schedules.Cosine": (
        schedules.Cosine,
        {"start": 0.1, "end": 0.0, "steps": 10},
        number("start", -0.1) + number("end", -0.1) + integer("steps", 1),
    ),
    "schedules.Step": (
        schedules.Step,
        {"value": 0.1, "step_size": 10},
        number("value", -0.1) + number("gamma", -0.1) + integer("step_size", 1),
    ),
    "schedules.Step(milestones=...)": (
        schedules.Step,
        {"value": 0.1, "milestones": [5, 10]},
        [
            ("milestones", [10, 5], ValueError),
            ("milestones", [-1], ValueError),
            ("milestones", ["5"], TypeError),
            ("milestones", [5.0], TypeError),
            ("milestones", "5", TypeError),
            ("milestones", 5, TypeError),
            ("milestones", [NAN], TypeError),
            ("milestones", [INF], TypeError),
        ],
    ),
    "schedules.Exponential": (
        schedules.Exponential,
        {"start": 0.1, "decay": 0.9},
        number("start", -0.1) + number("decay", 1.5) + number("end", 0.5),
    ),
    "schedules.Annealed": (schedules.Annealed, {"eta": 0.3}, number("eta", -0.3) + number("gamma", -0.5)),
    "schedules.Scaled": (
        schedules.Scaled,
        {"shape": schedules.Constant(1.0), "factor": 0.1},
        number("factor", -0.1)
        + [
            ("shape", 0.1, TypeError),
            ("shape", "linear", TypeError),
            ("shape", NAN, TypeError),
            ("shape", lambda step: 1.0, TypeError),
        ],
    ),
}

CASES = [
    pytest.param(cls, base, argument, value, error, id=f"{label}-{argument}={value!r}")
    for label, (cls, base, rows) in CONSTRUCTORS.items()
    for argument, value, error in rows
    # snr_db=inf means no noise and is accepted: test_snr_db_inf_means_no_noise_and_is_accepted
    if not (argument == "snr_db" and value in (INF, schedules.Constant(INF)))
]


def _shown(value: Any) -> str:
    """How a message shows ``value``: ``repr`` (floats too: ``nan``, ``inf``, ``-0.1``)."""
    if isinstance(value, schedules.Schedule):
        return str(value(0))  # the message shows the offending value of the schedule
    return repr(value)


@pytest.mark.parametrize(("cls", "base", "argument", "value", "error"), CASES)
def test_bad_argument_is_refused_in_init_with_a_message_naming_it(cls, base, argument, value, error):
    kwargs = {**base, argument: value}
    if cls is GradientNoise and argument == "gamma" and "eta" not in kwargs:
        kwargs["eta"] = 0.3
    if argument == "flip":
        kwargs.pop("smoothing", None)
    # `amount=` is the generic name of a kind's amount: the message names the kind's own (`std` for gaussian).
    named = "std" if argument == "amount" and cls is not Corruption else argument
    with pytest.raises(error, match=rf"`{re.escape(named)}`") as caught:
        cls(**kwargs)
    message = str(caught.value)
    assert re.search(r"must be|expected", message), message
    # The value given, or for a list the offending item of it.
    shown = [_shown(value)] + ([repr(item) for item in value] if isinstance(value, list) else [])
    assert any(s in message for s in shown), message


# Public classes that take no user arguments to check, each with the reason.
NOT_CONSTRUCTED_BY_USERS = {
    "ComparisonReport": "the result compare_runs returns",
    "ComparisonResult": "the data of a ComparisonReport (its base class), built by compare_runs",
    "Comparison": "a row of a ComparisonReport",
    "GroupSummary": "a row of a ComparisonReport",
    "Schedule": "the abstract base of the schedules (no arguments)",
    "NoiseKind": "a registration record for register_noise (not checked yet)",
}


def _public_classes() -> dict[str, type]:
    """Every class in ``lightning_noise.__all__`` and in the ``__all__`` of the public modules it lists."""
    import inspect

    import lightning_noise

    classes: dict[str, type] = {}
    for item in (getattr(lightning_noise, n) for n in lightning_noise.__all__):
        members = [getattr(item, n) for n in getattr(item, "__all__", [])] if inspect.ismodule(item) else [item]
        classes.update({c.__name__: c for c in members if inspect.isclass(c) and not issubclass(c, BaseException)})
    return classes


def test_the_table_covers_every_argument_of_every_public_constructor():
    """Every public class must have rows here, one per argument (a new class or argument gets rows)."""
    import inspect

    covered: dict[Any, set[str]] = {}
    for cls, _, rows in CONSTRUCTORS.values():
        covered.setdefault(cls, set()).update(argument for argument, _, _ in rows)
    classes = _public_classes()
    assert {"RandomizedSmoothing", "RobustnessEvaluation", "Corruption", "Linear", "InputNoise"} <= set(classes)
    for cls_name, cls in sorted(classes.items()):
        if cls_name in NOT_CONSTRUCTED_BY_USERS:
            continue
        assert cls in covered, f"{cls_name} is public but has no rows in CONSTRUCTORS"
        expected = set(inspect.signature(cls).parameters)
        assert expected <= covered[cls], f"{cls_name}: no rows for {sorted(expected - covered[cls])}"


@pytest.mark.parametrize(
    "make",
    [
        lambda: InputNoise(std=math.inf),
        lambda: WeightNoise(std=math.inf),
        lambda: GradientNoise(std=math.inf),
        lambda: GradientNoise(eta=math.inf),
        lambda: InputNoise(snr_db=-math.inf, kind="snr"),
        lambda: LabelNoise(flip=lambda step: math.inf),
    ],
    ids=["input-std", "weight-std", "gradient-std", "gradient-eta", "snr_db=-inf", "callable-flip"],
)
def test_infinite_amounts_are_refused(make):
    """Issue 10.1: an infinite amount constructed and trained to non-finite weights."""
    with pytest.raises(ValueError, match=r"must be a finite number.*got -?inf"):
        make()


def test_snr_db_inf_means_no_noise_and_is_accepted():
    assert InputNoise(snr_db=math.inf, kind="snr").amounts == {"snr_db": math.inf}


def test_growing_step_schedule_is_checked_at_every_step():
    """Step with gamma > 1 is unbounded but finite at every step: accepted, and its values checked per step."""
    callback = WeightNoise(std=schedules.Step(1.0, gamma=10.0, step_size=1))
    assert callback.update_amounts(3)["std"] == 1000.0
    with pytest.raises(ValueError, match=r"`std \(its schedule at step 400\)` must be a finite number, got inf"):
        callback.update_amounts(400)


def test_a_callback_with_a_per_step_check_still_pickles():
    import pickle

    callback = pickle.loads(pickle.dumps(InputNoise(std=schedules.Step(0.1, gamma=2.0, step_size=10))))
    assert callback.update_amounts(20)["std"] == pytest.approx(0.4)


def test_plain_callable_returning_a_string_is_refused():
    with pytest.raises(TypeError, match=r"`std` \(its schedule at step 0\) must return a number, got '0.1' \(str\)"):
        InputNoise(std=lambda step: "0.1")


@pytest.mark.parametrize(
    ("make", "attribute"),
    [
        (lambda b: WeightNoise(std=0.1, biases=b), "biases"),
        (lambda b: InputNoise(std=0.1, relative=b), "relative"),
        (lambda b: InputNoise(std=0.1, log_amounts=b), "log_amounts"),
    ],
)
def test_numpy_bools_are_accepted_and_stored_as_bools(make, attribute):
    np = pytest.importorskip("numpy")
    callback = make(np.bool_(False))
    assert getattr(callback, attribute) is False


@pytest.mark.parametrize(
    ("make", "error", "message"),
    [
        (
            lambda: InputNoise(p=0.1, kind="salt_and_pepper", kind_kwargs={"high": "1"}),
            TypeError,
            r"InputNoise: `kind_kwargs\['high'\]` of 'salt_and_pepper' noise must be a number like its default 1.0, "
            r"got '1' \(str\)",
        ),
        (
            lambda: ActivationNoise(p=0.1, kind="salt_and_pepper", modules=["Linear"], kind_kwargs={"low": NAN}),
            ValueError,
            r"`kind_kwargs\['low'\]` of 'salt_and_pepper' noise must be a finite number, got nan",
        ),
        (
            lambda: TargetNoise(p=0.1, kind="salt_and_pepper", kind_kwargs={"high": True}),
            TypeError,
            r"`kind_kwargs\['high'\]`.*got True \(bool\)",
        ),
        (
            lambda: LabelNoise(),
            ValueError,
            r"LabelNoise needs an amount: `smoothing=` .*`flip=` .*`transition=`.*got none",
        ),
        (
            lambda: LabelNoise(seed=0, name="x"),
            ValueError,
            r"LabelNoise needs an amount",
        ),
        (
            lambda: InputNoise(std=lambda step: "abc"),
            TypeError,
            r"`std` \(its schedule at step 0\) must return a number, got 'abc' \(str\)",
        ),
        (
            lambda: WeightNoise(std=lambda step: None),
            TypeError,
            r"`std` \(its schedule at step 0\) must return a number, got None \(NoneType\)",
        ),
        (
            lambda: GradientNoise(std=lambda step: [0.1]),
            TypeError,
            r"`std` \(its schedule at step 0\) must return a number, got \[0.1\] \(list\)",
        ),
    ],
    ids=[
        "kind_kwargs-string",
        "kind_kwargs-nan",
        "kind_kwargs-bool",
        "label-no-amount",
        "label-no-amount-other-args",
        "callable-string",
        "callable-none",
        "callable-list",
    ],
)
def test_issue_20_item_6_arguments_are_refused_in_init_naming_the_argument(make, error, message):
    """Issue 20 item 6: `kind_kwargs` values were not checked (the first forward failed inside torch.where),
    `LabelNoise()` trained as a silent no-op, and a callable returning 'abc' failed with "could not convert string
    to float" without naming the argument."""
    with pytest.raises(error, match=message):
        make()


def test_explicit_zero_label_noise_and_a_single_stage_name_are_accepted():
    """What stays accepted: an explicit zero amount (a baseline in a sweep), and one stage name for `stages`,
    like one name for `modules` (a string stands for a list of one wherever a list of names is expected)."""
    assert LabelNoise(smoothing=0.0).amounts == {"smoothing": 0.0, "flip": 0.0}
    assert LabelNoise(transition=[[0.9, 0.1], [0.2, 0.8]]).amounts == {"smoothing": 0.0}
    assert InputNoise(std=0.1, stages="test").stages == ("test",)
    assert ActivationNoise(std=0.1, modules="Linear", stages=["train", "test"]).stages == ("train", "test")
    with pytest.raises(ValueError, match=r"`stages` must be a non-empty subset of .*got \['fit'\]"):
        InputNoise(std=0.1, stages="fit")
