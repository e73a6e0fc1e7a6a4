"""A tiny Hydra app on the project's Optuna sweeper, without training: synthetic objectives whose best trials
and Pareto front are known, and a ``sleep`` that keeps a trial running while a test kills its worker.

    python tests/recipes/search_app/app.py hydra.sweep.dir=/tmp/s hydra.sweeper.n_trials=4 sleep=1
"""

import os
import sys
import time
from pathlib import Path

# Like recipes/train.py: the sweeper (recipes/hydra_plugins) and noisy_recipes importable here and in the workers.
ROOT = Path(__file__).resolve().parents[3]
_PATHS = [str(ROOT), str(ROOT / "recipes")]
sys.path[1:1] = [p for p in _PATHS if p not in sys.path]
os.environ["PYTHONPATH"] = os.pathsep.join([*_PATHS, *filter(None, os.environ.get("PYTHONPATH", "").split(os.pathsep))])

import hydra  # noqa: E402
from omegaconf import DictConfig  # noqa: E402


@hydra.main(config_path="conf", config_name="config", version_base="1.3")
def main(cfg: DictConfig) -> float | list[float]:
    """``(x - 2)^2 + y`` (best: x=2, y=0); with ``pareto=true`` the two objectives ``x`` and ``(3 - x)^2 + y``
    (both minimized; the front: every x with y=0). ``fail=true`` raises in the trial."""
    time.sleep(float(cfg.sleep))
    if cfg.fail:
        raise RuntimeError("this trial fails on purpose")
    if cfg.pareto:
        return [float(cfg.x), float((3 - cfg.x) ** 2 + cfg.y)]
    return float((cfg.x - 2) ** 2 + cfg.y)


if __name__ == "__main__":
    main()
