"""Compiled code traced before a callback's hooks existed: dropped when the hooks are attached.

Dynamo caches compiled code per code object (``Net.training_step``, ``Net.forward``, a compiled submodule's
frame), shared by every instance of a class, and by default it does not guard on module hooks
(``torch._dynamo.config.skip_nnmodule_hook_guards``). A model compiled and fitted without noise, then a new
model of the same class compiled and fitted with a hook-based callback (InputNoise, ActivationNoise, LabelNoise,
TargetNoise), would run the code traced without the hooks: no noise at all. Code traced *with* hooks is safe the
other way round: it guards on the hooks it called, so a later model without them recompiles.

:func:`forget_compiled_code` drops dynamo's in-memory compiled code (``torch._dynamo.reset_code_caches``, which
keeps dynamo's configuration, counters and backends) when a callback attaches hooks: every compiled function
recompiles at its next call, now seeing the hooks. It runs only when dynamo has compiled something in this
process; the global configuration is never changed.
"""

from __future__ import annotations

import sys

import lightning.pytorch as pl


def dynamo_has_run() -> bool:
    """Whether dynamo has compiled (or tried to compile) any frame in this process."""
    dynamo = sys.modules.get("torch._dynamo")
    if dynamo is None:
        return False
    convert_frame = sys.modules.get("torch._dynamo.convert_frame")
    input_codes = getattr(convert_frame, "input_codes", None)
    if input_codes is None:  # a torch without the registry: assume it may have
        return True
    return any(ref() is not None for ref in input_codes.seen)


def forget_compiled_code() -> bool:
    """Drop dynamo's compiled code, so that frames traced before new hooks existed recompile with them. Returns
    whether anything was dropped (``False`` when dynamo has not run)."""
    if not dynamo_has_run():
        return False
    import torch._dynamo

    torch._dynamo.reset_code_caches()
    return True


def compile_cache_hint(pl_module: pl.LightningModule | None) -> str:
    """A sentence for "no hook ran" errors when ``torch.compile`` may be why, else an empty string."""
    compiled = pl_module is not None and getattr(pl_module, "_compiler_ctx", None) is not None
    if not (compiled or dynamo_has_run()):
        return ""
    return (
        " Under torch.compile this can also mean that dynamo ran code it had compiled before the hooks existed "
        "(it does not guard on module hooks added later: torch._dynamo.config.skip_nnmodule_hook_guards). The "
        "callback drops dynamo's compiled code when it attaches its hooks; if some compiled code escaped that "
        "(torch.export, an AOT-compiled artifact), call torch.compiler.reset() before trainer.fit so that the "
        "model is compiled again with the hooks in place."
    )
