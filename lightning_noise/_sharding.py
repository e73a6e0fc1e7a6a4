"""Parameters as distributed strategies hold them: whole, sharded as DTensors, or out of the callbacks' reach.

Sharded (DTensor) parameters keep, in the noise buffers, the layout of the whole parameters, and each rank
reads its part of the draw (:func:`local_part`), so the noise does not depend on the sharding.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, TypeGuard

import lightning.pytorch as pl
from lightning.pytorch.strategies import DeepSpeedStrategy, FSDPStrategy
from torch import Tensor

if TYPE_CHECKING:
    from torch.distributed.tensor import DTensor


def is_dtensor(tensor: Any) -> TypeGuard[DTensor]:
    """Whether ``tensor`` is a ``torch.distributed.tensor.DTensor`` (parameters sharded by ``fully_shard``)."""
    return type(tensor).__name__ == "DTensor" and hasattr(tensor, "placements")


def local_tensor(param: Tensor) -> Tensor:
    """The tensor this rank holds for ``param``: its local shard for a DTensor, else the data itself."""
    return param.to_local() if is_dtensor(param) else param.detach()


def local_part(view: Tensor, param: Tensor) -> Tensor:
    """The part of ``view`` (shaped like the whole ``param``) that this rank holds, for a DTensor ``param``.

    Noise buffers have the layout of the unsharded parameters, so that one global draw under a key holds the
    same numbers whatever the sharding; each rank adds the slice that lies on its shard.
    """
    if not is_dtensor(param):
        return view
    from torch.distributed.tensor._utils import compute_local_shape_and_global_offset

    shape, offset = compute_local_shape_and_global_offset(param.shape, param.device_mesh, param.placements)
    return view[tuple(slice(start, start + size) for start, size in zip(offset, shape, strict=True))]


def check_parameter_strategy(trainer: pl.Trainer, owner: str) -> None:
    """Refuse, before training, a strategy whose parameters a parameter-noise callback cannot reach.

    DDP and single devices hold whole parameters; ``ModelParallelStrategy`` (``fully_shard``, tensor
    parallelism) holds DTensors, which are perturbed shard by shard. ``FSDPStrategy`` flattens the parameters of
    each wrapped module into shards of one flat buffer, whose mapping to the original parameters is private to
    FSDP; DeepSpeed keeps parameters and gradients inside its engine.

    Raises:
        ValueError: ``FSDPStrategy``, ``DeepSpeedStrategy`` or a subclass of either.
    """
    strategy = type(trainer.strategy).__name__
    if isinstance(trainer.strategy, DeepSpeedStrategy):
        raise ValueError(
            f"{owner} does not support the DeepSpeed strategy, which keeps parameters and gradients inside its "
            f"engine; got strategy {strategy}. Use ddp, or ModelParallelStrategy with `fully_shard`."
        )
    if isinstance(trainer.strategy, FSDPStrategy):
        raise ValueError(
            f"{owner} does not support {strategy} (FSDP1 flat parameters); got strategy {strategy}. For sharded "
            "training use `ModelParallelStrategy` and call `torch.distributed.fsdp.fully_shard` in "
            "`configure_model`: its DTensor parameters get, on each rank, the rank's part of one global draw."
        )
