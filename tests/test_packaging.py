"""The built wheel ships ``py.typed`` (PEP 561), so users' mypy and pyright read the library's annotations."""

from __future__ import annotations

import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_wheel_ships_py_typed(tmp_path):
    # Build from a copy of what the wheel is made of, so the build leaves no build/ or *.egg-info in the checkout.
    source = tmp_path / "source"
    ignore = shutil.ignore_patterns("__pycache__", "*.egg-info", "build")
    for folder in ("lightning_noise", "recipes/noisy_recipes"):
        shutil.copytree(ROOT / folder, source / folder, ignore=ignore)
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, source / name)
    command = [sys.executable, "-m", "pip", "wheel", ".", "--no-deps", "--no-build-isolation", "-w", "dist"]
    result = subprocess.run(command, cwd=source, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
    (wheel,) = (source / "dist").glob("lightning_noise-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    assert "lightning_noise/py.typed" in names, sorted(n for n in names if n.startswith("lightning_noise/"))[:20]
    assert "lightning_noise/__init__.py" in names and any(n.startswith("noisy_recipes/") for n in names)
