"""The project's Optuna sweeper for Hydra (``hydra/sweeper=noisy_optuna``; docs/search.md)."""
