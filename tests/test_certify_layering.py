"""Layering: the certification package does not know the comparison report (issue 20, item 8).

``lightning_noise.report`` renders a certification section (``lightning_noise.report.certification``) from the
numbers that :class:`~lightning_noise.smoothing.CertificationResult` writes; the dependency goes one way only.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

_IMPORTS = """
import json, pkgutil, sys, importlib
import lightning_noise.smoothing as smoothing
for info in pkgutil.iter_modules(smoothing.__path__, "lightning_noise.smoothing."):
    importlib.import_module(info.name)   # every module of the package, not only what __init__ imports
print(json.dumps(sorted(m for m in sys.modules if m.startswith("lightning_noise"))))
"""


def test_smoothing_does_not_import_the_report():
    out = subprocess.run(
        [sys.executable, "-c", _IMPORTS], capture_output=True, text=True, timeout=300, cwd=ROOT, check=True
    )
    modules = json.loads(out.stdout.strip().splitlines()[-1])
    assert "lightning_noise.smoothing.callback" in modules  # the check saw the package
    assert [m for m in modules if m.startswith("lightning_noise.report")] == []


def test_smoothing_sources_do_not_name_the_report():
    # A lazy import inside a function would escape the check above.
    for path in (ROOT / "lightning_noise" / "smoothing").glob("*.py"):
        assert "lightning_noise.report" not in path.read_text(), path.name


def test_the_certification_section_is_importable_from_the_report():
    from lightning_noise.report import certification

    assert callable(certification.markdown_lines) and callable(certification.plot_certified)
