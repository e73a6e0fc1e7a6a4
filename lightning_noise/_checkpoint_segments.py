"""Which activation-checkpointing segment a module call runs in, so that a recomputation replays the noise of its
own original calls (see :mod:`lightning_noise._hooks`).

``torch.utils.checkpoint`` runs a segment's forward once, keeps no activations, and runs it again during the
backward pass to rebuild them. A noise hook inside the segment must draw, at the recomputation, exactly what it drew
in the forward, whatever the same module did outside the segment or in other segments in between. A hook call
therefore asks :func:`checkpoint_segment` for the segment it runs in: the same object in the forward and in its
recomputations, with a tag telling the recomputation apart. The call indices of each site are recorded per segment
(:class:`SegmentCalls`, in a weak dictionary: a segment's record goes when the segment goes) and replayed in order.

This reads private state of ``torch.utils.checkpoint`` (pinned torch; ``tests/test_checkpointing.py`` checks the
layouts that depend on it): the closure of the saved-tensors hooks that a non-reentrant checkpoint pushes, and the
autograd node (backward) or the stack frame (forward) of the reentrant ``CheckpointFunction``. Nested segments are
exact when both are non-reentrant; a recomputation that cannot be placed falls back to replaying the site's calls in
order.
"""

from __future__ import annotations

import inspect
import sys
import types
import weakref
from typing import Any

import torch
from torch.utils.checkpoint import CheckpointFunction


def _free_variable(function: Any, name: str) -> Any:
    """The value of the closure variable ``name`` of ``function`` (unwrapped), or None."""
    function = inspect.unwrap(function)
    code = getattr(function, "__code__", None)
    if code is None or name not in code.co_freevars:
        return None
    return function.__closure__[code.co_freevars.index(name)].cell_contents


def _reentrant_forward_context() -> Any:
    """The ``ctx`` of the reentrant ``CheckpointFunction.forward`` running on this thread's stack, or None."""
    frame: types.FrameType | None = sys._getframe(2)
    target = CheckpointFunction.forward.__code__
    for _ in range(256):
        if frame is None:
            return None
        if frame.f_code is target:
            return frame.f_locals.get("ctx")
        frame = frame.f_back
    return None


def checkpoint_segment() -> tuple[Any, Any] | None:
    """The activation-checkpointing segment this module call runs in: ``(segment, None)`` in the original forward,
    ``(segment, recomputation)`` when the segment is being recomputed, None outside any segment.

    ``segment`` is the same object in the forward and in its recomputations (the ``_CheckpointFrame`` of a
    non-reentrant checkpoint, the autograd node of a reentrant one); ``recomputation`` tells one recomputation
    from the next (a second backward with ``retain_graph``). Only called in eager mode, at hook calls: a
    non-reentrant segment is read from the top saved-tensors hooks (a C call), a reentrant one from the autograd
    node being run (backward) or the stack (forward, only while grad is disabled, as the reentrant forward runs).
    """
    hooks = torch._C._autograd._top_saved_tensors_default_hooks(False)
    if hooks is not None:
        frame = _free_variable(hooks[0], "frame")  # torch.utils.checkpoint._checkpoint_hook: the forward
        if frame is not None:
            return frame, None
        frame_ref = _free_variable(hooks[0], "target_frame_ref")  # _recomputation_hook: a recomputation
        if frame_ref is not None and frame_ref() is not None:
            return frame_ref(), ("non-reentrant", _free_variable(hooks[0], "gid"))
    if torch._C._current_graph_task_id() != -1:  # autograd runs a backward pass on this thread
        node = torch._C._current_autograd_node()
        if type(node) is CheckpointFunction._backward_cls:
            return node, ("reentrant", torch._C._current_graph_task_id())
    elif not torch.is_grad_enabled():
        ctx = _reentrant_forward_context()
        if ctx is not None:
            return ctx, None
    return None


class SegmentCalls:
    """The call indices of each site recorded in one checkpointed segment, and how far each recomputation of the
    segment has replayed them."""

    __slots__ = ("calls", "replays")

    def __init__(self) -> None:
        self.calls: dict[int, list[int]] = {}
        self.replays: dict[tuple[int, Any], int] = {}

    def replay(self, site: int, recomputation: Any) -> int | None:
        recorded = self.calls.get(site)
        if not recorded:
            return None
        done = self.replays.get((site, recomputation), 0)
        self.replays[(site, recomputation)] = done + 1
        return recorded[done % len(recorded)]


class SegmentRecords(weakref.WeakKeyDictionary):
    """:class:`SegmentCalls` per segment, held only while the segment lives; pickles and copies as an empty record
    (a callback pickled or deep-copied mid-batch starts its next batch afresh anyway)."""

    def __reduce__(self) -> tuple:
        return (SegmentRecords, ())
