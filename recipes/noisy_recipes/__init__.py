"""Code shared by the Hydra recipes in ``recipes/`` (data modules, models, helpers).

It lives outside the ``lightning_noise`` package on purpose: the library depends only on torch and lightning,
while the recipes also need hydra, scikit-learn, wandb, rich and, for some datasets, sktime and statsmodels.
"""

from noisy_recipes import resolvers

resolvers.register()
