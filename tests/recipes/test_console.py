"""What a user sees: the console keeps to what matters, and the quickstart prints what its docstring says."""

from __future__ import annotations

import ast
import logging
import subprocess
import sys
import warnings

import lightning.pytorch as pl
import pytest

from noisy_recipes import utils
from tests.recipes.conftest import ROOT


def test_quiet_console_drops_tips_and_repeated_banners_but_not_warnings(caplog):
    utils.quiet_console()
    utils.quiet_console()  # idempotent: one filter
    logger = logging.getLogger("lightning.pytorch.utilities.rank_zero")
    assert sum(isinstance(f, utils.ConsoleFilter) for f in logger.filters) == 1
    for f in logger.filters:
        if isinstance(f, utils.ConsoleFilter):
            f.seen.clear()
    with caplog.at_level(logging.INFO, logger="lightning.pytorch.utilities.rank_zero"):
        for _ in range(3):
            pl.Trainer(logger=True, enable_progress_bar=False, enable_model_summary=False)
        logger.warning("a real warning")
    messages = [r.getMessage() for r in caplog.records]
    assert sum(m.startswith("GPU available") for m in messages) == 1
    assert sum(m.startswith("TPU available") for m in messages) == 1
    assert not any("litlogger" in m for m in messages) and "a real warning" in messages
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        utils.quiet_console()
        warnings.warn("`isinstance(treespec, LeafSpec)` is deprecated, use ...", FutureWarning, stacklevel=1)
        warnings.warn("something the user should fix", UserWarning, stacklevel=1)
    assert [str(w.message) for w in caught] == ["something the user should fix"]


def test_wandb_logger_is_built_without_the_anonymous_setting(compose_cfg):
    pytest.importorskip("wandb")
    cfg = compose_cfg(["logger=wandb"])
    (logger,) = utils.instantiate_loggers(cfg.logger, run={"name": "n", "group": None, "tags": []})
    assert "anonymous" not in logger._wandb_init and logger._wandb_init["name"] == "n"


@pytest.mark.slow
def test_quickstart_prints_what_its_docstring_says():
    script = ROOT / "examples" / "quickstart.py"
    docstring = ast.get_docstring(ast.parse(script.read_text()))
    expected = [line.strip() for line in docstring.splitlines() if "test accuracy" in line]
    result = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    printed = [line.strip() for line in result.stdout.splitlines() if "test accuracy" in line]
    assert printed == expected and len(expected) == 3
    assert "GPU available" not in result.stdout + result.stderr and "LeafSpec" not in result.stderr
