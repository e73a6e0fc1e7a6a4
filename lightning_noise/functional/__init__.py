"""Pure noise functions and the registry of noise kinds.

Every function takes a tensor, an amount and an optional ``torch.Generator`` and returns a new tensor of the
same shape, dtype and device (out of place). A zero amount (``std=0``, ``p=0``, ``snr_db=inf``) returns the
input object itself, untouched. Callbacks never call these with ``generator=None``; users may, in which case
PyTorch's global generator is used.

- :mod:`~lightning_noise.functional.additive`: the built-in kinds (``gaussian``, ``uniform``,
  ``multiplicative``, ``salt_and_pepper``, ``dropout``, ``snr``);
- :mod:`~lightning_noise.functional.kinds`: the registry: kinds are selected by name through :func:`add_noise`
  and :func:`get_noise`, and users can add their own with :func:`register_noise`;
- :mod:`~lightning_noise.functional.labels`: label smoothing, flipping and transitions (``LabelNoise``).

Example::

    >>> import torch
    >>> from lightning_noise import functional as F
    >>> g = torch.Generator().manual_seed(0)
    >>> x = torch.zeros(4, 3)
    >>> F.gaussian(x, 0.1, g).shape
    torch.Size([4, 3])
    >>> F.add_noise(x, "salt_and_pepper", 0.5, g).unique().tolist()
    [0.0, 1.0]
"""

from lightning_noise.functional.additive import (
    dropout,
    gaussian,
    multiplicative,
    salt_and_pepper,
    snr,
    uniform,
)
from lightning_noise.functional.kinds import NoiseKind, add_noise, available_noises, get_noise, register_noise
from lightning_noise.functional.labels import (
    flip_binary,
    flip_labels,
    smooth_labels,
    smooth_probabilities,
    transition_labels,
)

__all__ = [
    "NoiseKind",
    "add_noise",
    "available_noises",
    "dropout",
    "flip_binary",
    "flip_labels",
    "gaussian",
    "get_noise",
    "multiplicative",
    "register_noise",
    "salt_and_pepper",
    "smooth_labels",
    "smooth_probabilities",
    "snr",
    "transition_labels",
    "uniform",
]
