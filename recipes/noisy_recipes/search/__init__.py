"""The Optuna search of the recipes (``hparams_search=optuna``; docs/search.md).

One module per concept: ``settings`` (the ``hydra.sweeper`` keys and the search space, checked), ``storage``
(the storage URL opened), ``study`` (create or resume, trials handed out exactly once), ``worker`` (the processes
that run trials), ``trial`` (what a training run does as a trial: pruning, the robustness objective),
``summary`` (the report at the end), ``sweep`` (the sweeper's work, in order), ``ties`` (the tied-best
warning), ``context`` (the trial a worker is running) and ``errors`` (configuration errors made lazily). The
Hydra plugin ``hydra_plugins.noisy_optuna_sweeper`` only hands Hydra's arguments to ``sweep``.
"""

from noisy_recipes.search.ties import SearchTieWarning, tie_message, tied_best

__all__ = ["SearchTieWarning", "tie_message", "tied_best"]
