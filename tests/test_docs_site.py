"""The documentation site builds with `mkdocs build --strict` (a broken link, a missing anchor, a page that is not
found or a docstring that does not render fails it) and renders in a browser (slow: headless Chromium)."""

from __future__ import annotations

import functools
import os
import shutil
import subprocess
import sys
import threading
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

pytest.importorskip("mkdocs", reason="the documentation site needs the `docs` extra")
pytest.importorskip("mkdocstrings", reason="the documentation site needs the `docs` extra")

ROOT = Path(__file__).resolve().parents[1]
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.fixture(scope="module")
def site(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("site")
    env = {**os.environ, "NO_MKDOCS_2_WARNING": "1"}
    result = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(out)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, f"mkdocs build --strict failed:\n{result.stdout[-2000:]}\n{result.stderr[-4000:]}"
    return out


def test_the_site_builds_strict_with_every_page(site: Path):
    pages = {p.relative_to(site).as_posix() for p in site.rglob("index.html")}
    expected = {
        "index.html",
        "getting-started/index.html",
        "callbacks/input-noise/index.html",
        "callbacks/weight-noise/index.html",
        "lightning-cli/index.html",
        "evidence/index.html",
        "api/callbacks/index.html",
        "api/schedules/index.html",
    }
    assert expected <= pages


def test_the_api_reference_is_generated_from_the_docstrings(site: Path):
    html = (site / "api" / "callbacks" / "index.html").read_text()
    for name in ("InputNoise", "ActivationNoise", "WeightNoise", "GradientNoise", "LabelNoise", "TargetNoise"):
        assert f'id="lightning_noise.{name}"' in html
    # A sentence of InputNoise's docstring and a row of its Args table.
    assert "A forward pre-hook replaces the floating-point tensors" in html
    assert "snr_db" in html and "signal-to-noise ratio in dB" in html
    schedules = (site / "api" / "schedules" / "index.html").read_text()
    assert 'id="lightning_noise.schedules.Annealed"' in schedules
    # Sphinx roles and literal-block leads of the docstrings render as code and a heading, not as raw markup.
    assert ":class:" not in schedules and "Example::" not in schedules and "<strong>Example:</strong>" in schedules


@pytest.fixture
def served(site: Path):
    handler = functools.partial(SimpleHTTPRequestHandler, directory=str(site))
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def _chromium(url: str, profile: Path, *action: str) -> subprocess.CompletedProcess:
    flags = [
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        f"--user-data-dir={profile}",
        "--window-size=1280,1600",
    ]
    return subprocess.run([CHROMIUM, *flags, *action, url], capture_output=True, text=True, timeout=120)


@pytest.mark.slow
@pytest.mark.skipif(CHROMIUM is None, reason="needs Chromium (Debian package `chromium`)")
def test_the_site_renders_in_a_browser(served: str, tmp_path: Path):
    home = _chromium(f"{served}/", tmp_path / "profile", "--dump-dom")
    assert home.returncode == 0, home.stderr[-2000:]
    assert "lightning-noise" in home.stdout and "InputNoise" in home.stdout
    assert 'class="md-nav' in home.stdout  # the theme's navigation was rendered
    assert "Getting started" in home.stdout

    api = _chromium(f"{served}/api/callbacks/", tmp_path / "profile", "--dump-dom")
    assert api.returncode == 0, api.stderr[-2000:]
    assert 'id="lightning_noise.InputNoise"' in api.stdout
    assert "Parameters:" in api.stdout and "standard deviation, a float or a schedule" in api.stdout

    screenshot = tmp_path / "api.png"
    shot = _chromium(f"{served}/api/callbacks/", tmp_path / "profile", f"--screenshot={screenshot}")
    assert shot.returncode == 0, shot.stderr[-2000:]
    assert screenshot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and screenshot.stat().st_size > 20_000
