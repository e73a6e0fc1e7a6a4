"""The reference CERTIFY of Cohen et al.: ``Smooth.certify`` of locuslab/smoothing ``code/core.py`` (commit 78a4d94).

Transcribed line for line for a side-by-side benchmark (benchmarks/certify.py), with two changes that let it run
here: the noise is drawn on the input's device (``torch.randn_like(batch)``; the original passes
``device='cuda'``), and ``scipy.stats.binom_test`` (removed from scipy, used only by ``predict``) is not imported.
The bound is statsmodels' ``proportion_confint(method="beta")`` as in the original. One point per call, its
noisy copies in batches of ``batch_size``, counts summed by a Python loop over the predictions.
"""

from __future__ import annotations

from math import ceil

import numpy as np
import torch
from scipy.stats import norm
from statsmodels.stats.proportion import proportion_confint


class Smooth:
    """A smoothed classifier g (the reference implementation)."""

    ABSTAIN = -1

    def __init__(self, base_classifier: torch.nn.Module, num_classes: int, sigma: float) -> None:
        self.base_classifier = base_classifier
        self.num_classes = num_classes
        self.sigma = sigma

    def certify(self, x: torch.Tensor, n0: int, n: int, alpha: float, batch_size: int) -> tuple[int, float]:
        self.base_classifier.eval()
        counts_selection = self._sample_noise(x, n0, batch_size)
        c_a_hat = counts_selection.argmax().item()
        counts_estimation = self._sample_noise(x, n, batch_size)
        n_a = counts_estimation[c_a_hat].item()
        p_a_bar = self._lower_confidence_bound(n_a, n, alpha)
        if p_a_bar < 0.5:
            return Smooth.ABSTAIN, 0.0
        radius = self.sigma * norm.ppf(p_a_bar)
        return c_a_hat, radius

    def _sample_noise(self, x: torch.Tensor, num: int, batch_size: int) -> np.ndarray:
        with torch.no_grad():
            counts = np.zeros(self.num_classes, dtype=int)
            for _ in range(ceil(num / batch_size)):
                this_batch_size = min(batch_size, num)
                num -= this_batch_size
                batch = x.repeat((this_batch_size, 1, 1, 1))
                noise = torch.randn_like(batch) * self.sigma
                predictions = self.base_classifier(batch + noise).argmax(1)
                counts += self._count_arr(predictions.cpu().numpy(), self.num_classes)
            return counts

    def _count_arr(self, arr: np.ndarray, length: int) -> np.ndarray:
        counts = np.zeros(length, dtype=int)
        for idx in arr:
            counts[idx] += 1
        return counts

    def _lower_confidence_bound(self, n_a: int, n: int, alpha: float) -> float:
        return proportion_confint(n_a, n, alpha=2 * alpha, method="beta")[0]
