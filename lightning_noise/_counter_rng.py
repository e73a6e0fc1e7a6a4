"""A stateless, counter-based random number generator written in plain torch integer ops.

A draw is a pure function of a *key* (two 32-bit words held in an ``int64`` tensor) and of each element's index:
no generator state, nothing consumed, nothing that depends on how many draws came before. Because the key is a
tensor and the arithmetic is ordinary tensor arithmetic, ``torch.compile`` traces a draw into the graph (no
graph break; inductor fuses it into one kernel), and a key that changes every batch does not recompile.

Construction: each 32-bit counter goes through two rounds of Chris Wellons' ``lowbias32`` integer hash (a
bijection of 32-bit words with near-ideal avalanche), with one key word XOR-ed in before each round. A uniform
number takes one counter per element; normal numbers come in pairs from Box-Muller, pair ``p`` using counters
``2 p`` and ``2 p + 1``. Counters are 32-bit words: a draw of ``2**31`` elements or more folds the high bits of
the index into the key. Everything is computed in ``int64`` with every product kept below ``2**63`` (no
overflow, so the result is the same in eager, inductor C++ and Triton code) and in ``float32``, whatever the
dtype of the tensor that gets the noise: callers cast the noisy result to that dtype at the end.

Example::

    >>> import torch
    >>> from lightning_noise._counter_rng import derive_key, key_tensor, normal
    >>> key = derive_key(key_tensor(1234), 7)
    >>> torch.equal(normal((3, 4), key), normal((3, 4), key))
    True
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor

from lightning_noise.functional.additive import UNIFORM_HALF_WIDTH, salt_and_pepper_from_uniform, snr_noise_std

_M32 = 0xFFFFFFFF
_GOLDEN = 0x9E3779B9
_TWO_PI = 2.0 * math.pi


def key_tensor(seed: int, device: torch.device | str | None = None) -> Tensor:
    """A key (two 32-bit words in an ``int64`` tensor of shape ``(2,)``) from a non-negative integer seed."""
    seed = int(seed) & ((1 << 64) - 1)
    return torch.tensor([seed & _M32, (seed >> 32) & _M32], dtype=torch.int64, device=device)


def set_key_(key: Tensor, seed: int) -> Tensor:
    """Write ``seed`` into an existing key tensor in place (so a compiled graph that reads it sees the new value)."""
    seed = int(seed) & ((1 << 64) - 1)
    key[0] = seed & _M32
    key[1] = (seed >> 32) & _M32
    return key


def _mul32(x: Tensor, constant: int) -> Tensor:
    """``(x * constant) mod 2**32`` for ``x`` in [0, 2**32), without overflowing int64 (two 16-bit halves)."""
    low, high = constant & 0xFFFF, constant >> 16
    return (x * low + (((x * high) & 0xFFFF) << 16)) & _M32


def hash32(x: Tensor) -> Tensor:
    """Chris Wellons' ``lowbias32``: a bijection of 32-bit words (held in int64) with good avalanche."""
    x = x ^ (x >> 16)
    x = _mul32(x, 0x7FEB352D)
    x = x ^ (x >> 15)
    x = _mul32(x, 0x846CA68B)
    return x ^ (x >> 16)


def derive_key(key: Tensor, *values: int) -> Tensor:
    """A new key from ``key`` and integers (site, call, index): tensor ops on the key, constants from the values.

    Different values give keys that are, for all practical purposes, independent; the same values give the same
    key. The values are Python integers: under ``torch.compile`` they become constants of the graph.
    """
    k0, k1 = key[0], key[1]
    for value in values:
        value = int(value) & ((1 << 64) - 1)
        k0 = hash32(k0 ^ (value & _M32))
        k1 = hash32(k1 ^ k0 ^ ((value >> 32) & _M32) ^ _GOLDEN)
    return torch.stack((k0, k1))


def _bits(counter: Tensor, key: Tensor) -> Tensor:
    return hash32(hash32(counter ^ key[0]) ^ key[1])


def _counters(numel: int, key: Tensor, device: torch.device) -> tuple[Tensor, Tensor]:
    index = torch.arange(numel, dtype=torch.int64, device=device)
    if numel >= 1 << 31:  # fold the high bits into the key, so counters stay 32-bit words
        key = torch.stack((key[0], key[1] ^ hash32(index >> 31)))
        index = index & ((1 << 31) - 1)
    return index, key.to(device)


def uniform(shape: Sequence[int], key: Tensor, device: torch.device | str | None = None) -> Tensor:
    """Uniform numbers in (0, 1) (24 random bits each, never 0 or 1), float32, a pure function of ``key``."""
    numel = math.prod(shape)
    device = torch.device(device) if device is not None else key.device
    index, key = _counters(numel, key, device)
    bits = _bits(index, key) >> 8
    return ((bits.to(torch.float32) + 0.5) * (1.0 / (1 << 24))).reshape(shape)


def normal(shape: Sequence[int], key: Tensor, device: torch.device | str | None = None) -> Tensor:
    """Standard normal numbers, float32, a pure function of ``key``.

    Box-Muller on pairs: the pair ``p`` takes two 24-bit uniforms from counters ``2 p`` and ``2 p + 1`` and gives
    elements ``2 p`` (``r cos t``) and ``2 p + 1`` (``r sin t``), two independent normal numbers. The tails are
    cut at ``sqrt(2 ln 2**25) = 5.9`` standard deviations (a probability of 4e-9 per element).
    """
    numel = math.prod(shape)
    device = torch.device(device) if device is not None else key.device
    index, key = _counters((numel + 1) // 2, key, device)
    u1 = ((_bits(2 * index, key) >> 8).to(torch.float32) + 0.5) * (1.0 / (1 << 24))
    u2 = (_bits(2 * index + 1, key) >> 8).to(torch.float32) * (1.0 / (1 << 24))
    radius, angle = torch.sqrt(-2.0 * torch.log(u1)), _TWO_PI * u2
    pairs = torch.stack((radius * torch.cos(angle), radius * torch.sin(angle)), dim=-1)
    return pairs.reshape(-1)[:numel].reshape(shape)


# ------------------------------------------------------------------------------------ keyed noise kinds
def _amount(amount: float | Tensor, x: Tensor) -> float | Tensor:
    return amount.to(device=x.device, dtype=torch.float32) if isinstance(amount, Tensor) else float(amount)


def keyed_noise(name: str, x: Tensor, amount: float | Tensor, key: Tensor, **kwargs: Any) -> Tensor:
    """The built-in noise kind ``name`` applied to ``x`` with draws from ``key``; computed in float32 and cast back.

    The same maths as :mod:`lightning_noise.functional` with other random numbers (salt-and-pepper and SNR share
    its helpers); ``tests/test_counter_rng.py`` checks every kind's statistics against the analytic values.

    ``amount`` may be a tensor (a 0-d amount updated in place by a schedule, or per-feature scales), so a
    compiled graph does not bake it in as a constant.

    Raises:
        KeyError: ``name`` is not a built-in kind (kinds registered by users draw from a ``torch.Generator``).
    """
    amount = _amount(amount, x)
    xf = x.float()
    if name == "gaussian":
        out = xf + amount * normal(x.shape, key, x.device)
    elif name == "multiplicative":
        out = xf * (1.0 + amount * normal(x.shape, key, x.device))
    elif name == "uniform":
        out = xf + (amount * UNIFORM_HALF_WIDTH) * (2.0 * uniform(x.shape, key, x.device) - 1.0)
    elif name == "dropout":
        keep = 1.0 - amount
        out = xf * (uniform(x.shape, key, x.device) < keep).float() / keep
    elif name == "salt_and_pepper":
        low, high = float(kwargs.get("low", 0.0)), float(kwargs.get("high", 1.0))
        out = salt_and_pepper_from_uniform(xf, uniform(x.shape, key, x.device), amount, low, high)
    elif name == "snr":
        out = xf + snr_noise_std(xf, amount) * normal(x.shape, key, x.device)
    else:
        raise KeyError(name)
    return out.to(x.dtype)


KEYED_KINDS: tuple[str, ...] = ("gaussian", "multiplicative", "uniform", "dropout", "salt_and_pepper", "snr")
