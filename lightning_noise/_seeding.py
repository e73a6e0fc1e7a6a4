"""Seeds: the base seed of a callback, and the hash that keys every draw.

Randomness: keyed draws, never a stream. At the start of every batch of an active stage a callback derives a
batch seed, a hash of (base seed, callback identity, rank for per-sample noise, stage, batch counter), built in
one place (:meth:`~lightning_noise._callback.NoiseCallback._batch_key`). Every draw is then keyed by that seed
and by where it goes: the per-sample callbacks key each draw by (site, call index, tensor index)
(:mod:`lightning_noise._hooks`), so a recomputation by activation checkpointing replays the noise of the
forward; WeightNoise draws one flat buffer under the batch seed; GradientNoise keys its draw by (global step,
optimizer index) instead of the batch (:meth:`~lightning_noise.gradient_noise.GradientNoise._step_key`),
identical on every rank. In eager mode a key seeds a ``torch.Generator`` of the callback (one per device) or
picks offsets in the noise table; under ``torch.compile`` the per-sample callbacks draw from the counter-based
generator of :mod:`lightning_noise._counter_rng`, whose key is a tensor updated in place, so a new batch neither
recompiles nor breaks the graph. The noise of a batch is a pure function of those values: a run resumed from a
checkpoint draws exactly the noise an uninterrupted run would have drawn, whatever device draws it, and the
global RNG is never touched. The base seed is ``seed=`` when given, else the seed passed to
``lightning.seed_everything`` (``PL_GLOBAL_SEED``), else fresh entropy; rank 0's value is broadcast at
``setup`` and it is saved in checkpoints.
"""

from __future__ import annotations

import os

import lightning.pytorch as pl

_MASK64 = (1 << 64) - 1


def mix_seed(*values: int) -> int:
    """Hash integers into one 63-bit seed (SplitMix64 finalizer applied per value); stable across runs.

    Example::

        >>> mix_seed(1, 2) == mix_seed(1, 2) != mix_seed(2, 1)
        True
    """
    state = 0x9E3779B97F4A7C15
    for value in values:
        state = (state ^ (int(value) & _MASK64)) & _MASK64
        state = (state + 0x9E3779B97F4A7C15) & _MASK64
        z = state
        z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & _MASK64
        z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & _MASK64
        state = z ^ (z >> 31)
    return state >> 1


def resolve_seed(seed: int | None, trainer: pl.Trainer) -> int:
    """The base seed of a run: ``seed`` when given, else ``PL_GLOBAL_SEED``, else fresh entropy; rank 0's value on
    every rank.

    Args:
        seed: the callback's ``seed=``.
        trainer: the trainer, whose strategy broadcasts rank 0's seed when there are several processes.
    """
    if seed is None:
        global_seed = os.environ.get("PL_GLOBAL_SEED")
        seed = int(global_seed) if global_seed else int.from_bytes(os.urandom(8), "little") >> 1
    if trainer.world_size > 1:
        seed = int(trainer.strategy.broadcast(seed, src=0))
    return seed
