"""Test-time corruptions, as ``lightning_noise.corruptions``: the code and its documentation live in
:mod:`lightning_noise.robustness.corruptions` (robustness evaluation is their one user); this module gives its
public names (``from lightning_noise.corruptions import Corruption, gaussian_noise``).
"""

from lightning_noise.robustness.corruptions import *  # noqa: F403
from lightning_noise.robustness.corruptions import __all__  # noqa: F401
