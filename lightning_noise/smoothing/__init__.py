"""Randomized smoothing (Cohen, Rosenfeld and Kolter, ICML 2019): certified L2 robustness of a classifier
trained with Gaussian noise.

* :func:`certify` and :func:`smoothed_predict`: CERTIFY and PREDICT on any model and batch of inputs;
* :func:`max_certified_radius`: the largest radius ``n`` samples can certify (the ceiling of every curve);
* :class:`RandomizedSmoothing`: a callback that certifies the test set after ``trainer.test`` and reports it;
* :class:`CertificationResult`: certified accuracy by radius, average certified radius, abstain rate;
* :mod:`~lightning_noise.smoothing.bounds`: the exact binomial bounds (Clopper-Pearson, binomial test), from scipy.

See docs/certified-robustness.md.
"""

from lightning_noise.smoothing.bounds import binomial_test_half, clopper_pearson_lower
from lightning_noise.smoothing.callback import RandomizedSmoothing
from lightning_noise.smoothing.result import DEFAULT_RADII, CertificationResult
from lightning_noise.smoothing.smoothed import ABSTAIN, certify, max_certified_radius, smoothed_predict

__all__ = [
    "ABSTAIN",
    "CertificationResult",
    "DEFAULT_RADII",
    "RandomizedSmoothing",
    "binomial_test_half",
    "certify",
    "clopper_pearson_lower",
    "max_certified_radius",
    "smoothed_predict",
]
