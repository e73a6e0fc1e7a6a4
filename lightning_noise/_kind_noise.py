"""KindNoise: one registered noise kind at one amount, the shared part of InputNoise, ActivationNoise, TargetNoise.

The callbacks decide *when* and *where* (which tensors, which calls); this mixin holds *what*: the kind and its
amount, checked in ``__init__``, and the draw, one call into :mod:`lightning_noise.functional` (or into the noise
table, or into the counter-based generator under ``torch.compile``).

**Precision.** Noise on a 16-bit tensor (bf16/fp16 activations under mixed precision) is computed in float32 and
the noisy result cast back once, so the noise is not drawn or scaled at 8 or 11 bits of mantissa. Noise smaller
than the dtype's spacing at the tensor's magnitude is still rounded away by that cast: the first 16-bit draw at
each site checks it, and a warning (once) says so when most elements came out unchanged.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import torch
from lightning.pytorch.utilities import rank_zero_warn
from torch import Tensor

from lightning_noise import _counter_rng
from lightning_noise._hooks import KeyedDraws
from lightning_noise._noise_table import add_table_noise
from lightning_noise._table_sampling import DEFAULT_TABLE_SIZE, Sampler, TableSampling
from lightning_noise.functional.kinds import NoiseKind, check_kind_kwargs, resolve_kind_amount
from lightning_noise.schedules import ScheduleLike

_LOW_PRECISION = (torch.float16, torch.bfloat16)
# Kinds that change every element: most elements unchanged means the noise was rounded away.
_EVERY_ELEMENT_KINDS = ("gaussian", "uniform", "multiplicative", "snr")


class KindNoise(KeyedDraws, TableSampling):
    """Mixin (before :class:`~lightning_noise._callback.NoiseCallback` in the bases) of the per-sample callbacks
    that add one registered noise kind at one amount.

    ``__init__`` resolves ``kind`` and its one amount argument, checks the amount's range (now and, for a plain
    callable or an unbounded schedule, at every step), the sampler and ``kind_kwargs``, and passes the other
    arguments on to the next base. The kind and its ``kind_kwargs`` are part of the state key.

    Args:
        kind: a registered noise kind (see :mod:`lightning_noise.functional`).
        std: the amount, for ``gaussian``, ``uniform``, ``multiplicative``.
        p: the amount, for ``salt_and_pepper`` and ``dropout``.
        snr_db: the amount, for ``snr``.
        amount: the amount under its generic name, for kinds registered by users.
        kind_kwargs: extra keyword arguments of the noise function.
        sampler: ``"exact"`` or ``"table"`` (TargetNoise takes no ``sampler=``: it always draws exactly).
        table_size: entries of the noise table.
        callback_arguments: the arguments of the next base (``name=``, ``stages=``, ...; ``loss=`` for TargetNoise).

    Raises:
        ValueError: an unknown kind, no amount or several, an amount outside the kind's range or not finite, a
            table sampler with a kind other than ``gaussian`` or ``multiplicative``, or ``kind_kwargs`` the noise
            function does not take.
        TypeError: an argument of the wrong type.
    """

    add_amount_check: Callable[..., None]  # NoiseCallback's

    def __init__(
        self,
        *,
        kind: str,
        std: ScheduleLike | None,
        p: ScheduleLike | None,
        snr_db: ScheduleLike | None,
        amount: ScheduleLike | None,
        kind_kwargs: Mapping[str, Any] | None,
        sampler: Sampler = "exact",
        table_size: int = DEFAULT_TABLE_SIZE,
        **callback_arguments: Any,
    ) -> None:
        owner = type(self).__name__
        noise_kind, argument, value = resolve_kind_amount(owner, kind, std=std, p=p, snr_db=snr_db, amount=amount)
        self.kind: NoiseKind = noise_kind  # before the bases' __init__: the keyed draws read its "no noise" amount
        self.amount_name = argument
        super().__init__(amounts={argument: value}, **callback_arguments)
        self.add_amount_check(argument, noise_kind.check_amount, noise_kind.zero)
        self._init_sampler(sampler, table_size, noise_kind.name)
        self.kind_kwargs = check_kind_kwargs(owner, noise_kind, kind_kwargs)
        self._resolution_checked: set[int] = set()
        self._resolution_warned = False

    def _extra_key_fields(self) -> dict[str, Any]:
        return {"kind_kwargs": tuple(sorted(self.kind_kwargs.items()))}

    def _draw(self, x: Tensor, amount: float | Tensor, site: int, call: int, index: int) -> Tensor:
        """``x`` with the kind's noise at ``amount``, keyed by (batch, site, call, index).

        Under compile, built-in kinds draw from the counter-based generator; otherwise :meth:`_eager_draw` draws.
        16-bit tensors get their noise in float32.
        """
        if torch.compiler.is_compiling() and self.kind.name in _counter_rng.KEYED_KINDS:
            key = _counter_rng.derive_key(self._key, site, call, index)
            return _counter_rng.keyed_noise(self.kind.name, x, amount, key, **self.kind_kwargs)
        seed = self._draw_seed(site, call, index)
        if x.dtype in _LOW_PRECISION:
            out = self._eager_draw(x.float(), amount, seed).to(x.dtype)
            if not torch.compiler.is_compiling() and site not in self._resolution_checked:
                self._check_resolution(site, x, out, amount)
            return out
        return self._eager_draw(x, amount, seed)

    def _check_resolution(self, site: int, x: Tensor, out: Tensor, amount: float | Tensor) -> None:
        """Once per site, at its first 16-bit draw: warn (once per callback, rank zero) when most elements came
        out unchanged, i.e. the noise is below the dtype's spacing at the tensor's magnitude and was rounded away
        by the cast back (bf16 keeps 8 significant bits: values near 30 are 0.125 apart). One host sync per site,
        once; only for kinds that change every element (not dropout or salt-and-pepper)."""
        self._resolution_checked.add(site)
        if self._resolution_warned or self.kind.name not in _EVERY_ELEMENT_KINDS or x.numel() == 0:
            return
        unchanged = (out == x).float().mean().item()
        if unchanged <= 0.5:
            return
        self._resolution_warned = True
        magnitude = x.detach().float().abs().median().item()
        spacing = magnitude * torch.finfo(x.dtype).eps
        value = amount if not isinstance(amount, Tensor) else amount.float().mean().item()
        rank_zero_warn(
            f"{type(self).__name__}: {self.kind.name} noise with {self.amount_name}={value:g} left {unchanged:.0%} of "
            f"the elements of a {str(x.dtype).removeprefix('torch.')} tensor of shape {tuple(x.shape)} unchanged: at "
            f"its typical magnitude (median |x| = {magnitude:.3g}) that dtype's values are about {spacing:.2g} apart, "
            "so smaller noise is rounded away when the noisy result is cast back. Use a larger amount, "
            "kind='multiplicative' (noise relative to each value), or keep this tensor in float32.",
            category=UserWarning,
        )

    def _eager_draw(self, x: Tensor, amount: float | Tensor, seed: int) -> Tensor:
        """The draw of ``seed`` in eager mode: from the noise table with ``sampler="table"``, else the kind's
        function with the callback's generator seeded with ``seed``."""
        table = self._noise_table()
        if table is not None:
            return add_table_noise(x, amount, table, seed, multiplicative=self.kind.name == "multiplicative")
        return self.kind.fn(x, amount, self._seeded_generator(x.device, seed), **self.kind_kwargs)
