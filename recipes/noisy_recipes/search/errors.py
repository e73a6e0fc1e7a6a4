"""The search's configuration errors are the recipes' :class:`~noisy_recipes.utils.ConfigError` (one line, exit
status 2), made without importing ``noisy_recipes.utils`` (and with it torch) until one is raised: the sweeper
and its worker processes start in a second instead of several when the task does not need torch."""

from __future__ import annotations

import sys


def config_error(message: str) -> ValueError:
    """A :class:`~noisy_recipes.utils.ConfigError` with ``message``."""
    from noisy_recipes.utils import ConfigError

    return ConfigError(message)


def is_config_error(error: BaseException) -> bool:
    """Whether ``error`` is a :class:`~noisy_recipes.utils.ConfigError` (False if none can have been made)."""
    utils = sys.modules.get("noisy_recipes.utils")
    return utils is not None and isinstance(error, utils.ConfigError)
