"""The ``sampler`` argument of noise callbacks: exact draws, or the noise table drawn from the base seed."""

from __future__ import annotations

from typing import Literal, get_args

from lightning_noise._checks import check_choice, check_int
from lightning_noise._noise_table import NoiseTable

Sampler = Literal["exact", "table"]
DEFAULT_TABLE_SIZE = 1 << 22


class TableSampling:
    """Mixin for noise callbacks: the ``sampler`` choice and the noise table drawn from the base seed.

    The table is rebuilt when the base seed changes (a new ``setup``, or loading a checkpoint).
    """

    sampler: Sampler
    table_size: int
    _table: NoiseTable | None
    _base_seed: int | None  # filled by NoiseCallback

    def _init_sampler(self, sampler: Sampler, table_size: int, kind: str | None = None) -> None:
        owner = type(self).__name__
        check_choice(sampler, "sampler", get_args(Sampler), owner=owner)
        check_int(table_size, "table_size", minimum=2, owner=owner)
        if sampler == "table" and kind is not None and kind not in ("gaussian", "multiplicative"):
            raise ValueError(
                f"{owner}: `sampler='table'` holds normal numbers; use it with kind 'gaussian' or 'multiplicative', "
                f"got kind={kind!r}."
            )
        self.sampler = sampler
        self.table_size = table_size
        self._table = None

    def _noise_table(self) -> NoiseTable | None:
        """The table drawn from the current base seed, or ``None`` for the exact sampler."""
        if self.sampler != "table":
            return None
        seed = self._base_seed or 0
        if self._table is None or self._table.seed != seed:
            self._table = NoiseTable(self.table_size, seed)
        return self._table
