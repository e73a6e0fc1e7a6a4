"""Every example in the documentation runs: Markdown code blocks (README.md, docs/**/*.md) and docstring doctests.

Sybil finds the examples (fenced code blocks in Markdown, ``>>>`` examples in the docstrings of lightning_noise);
the evaluators below decide how each one runs:

- a ```python block runs standalone, in a fresh namespace and an empty working directory: it must hold its
  imports and its model (the page's blocks do not share names);
- a ```bash block must be preceded by ``<!-- run -->`` (a cheap command, run from the repository root by the
  slow test below) or by ``<!-- not run: REASON -->``; a block with neither fails the default suite, so a page
  added later is held to the convention too. Other shell fences (``sh``, ``shell``, ``console``) are refused;
- docstring examples run as doctests in their module's namespace.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from lightning_noise.functional import kinds

pytest.importorskip("sybil", reason="the examples are found by Sybil (the `test` extra)")

from sybil import Example, Sybil  # noqa: E402
from sybil.parsers.markdown import CodeBlockParser  # noqa: E402
from sybil.parsers.rest import DocTestParser  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
PAGES = sorted([ROOT / "README.md", *(ROOT / "docs").rglob("*.md")])
MODULES = sorted((ROOT / "lightning_noise").rglob("*.py"))
RUN = "<!-- run -->"
NOT_RUN = re.compile(r"<!-- not run: (?P<reason>\S.*?) -->")
SHELL_FENCES = ("bash", "sh", "shell", "console", "zsh")
SHELL_TIMEOUT_S = 300  # a marked command is cheap by convention (< 60 s); this only stops a hung one


def _no_evaluation(example: Example) -> None:
    """Sybil needs an evaluator; the tests below run the examples themselves."""


def _collect(paths: list[Path], sybil: Sybil) -> list[Example]:
    return [example for path in paths for example in sybil.parse(path).examples()]


def _example_id(example: Example) -> str:
    return f"{Path(example.path).relative_to(ROOT)}:{example.line}"


MARKDOWN = Sybil(
    parsers=[CodeBlockParser(language=fence, evaluator=_no_evaluation) for fence in ("python", *SHELL_FENCES)]
)
BLOCKS = _collect(PAGES, MARKDOWN)
PYTHON_BLOCKS = [b for b in BLOCKS if b.region.lexemes["arguments"] == "python"]
SHELL_BLOCKS = [b for b in BLOCKS if b.region.lexemes["arguments"] in SHELL_FENCES]
DOCSTRINGS = Sybil(parsers=[DocTestParser()])
DOCTESTS = _collect(MODULES, DOCSTRINGS)


@pytest.fixture
def isolated(tmp_path, monkeypatch):
    """What an example may change for the rest of the session is put back: the environment (``seed_everything``
    sets ``PL_GLOBAL_SEED``, which later callbacks would take as their seed), the registry of noise kinds, the
    global RNG; files it writes land in a fresh working directory."""
    environ, registry = dict(os.environ), dict(kinds._REGISTRY)
    monkeypatch.chdir(tmp_path)
    with torch.random.fork_rng():
        yield
    os.environ.clear()
    os.environ.update(environ)
    kinds._REGISTRY.clear()
    kinds._REGISTRY.update(registry)


def _marker(block: Example) -> str:
    """The line just above a code block (its run / not-run marker)."""
    text = block.document.text[: block.region.start].rstrip("\n")
    return text.rsplit("\n", 1)[-1].strip()


def test_the_pages_have_examples():
    # A lexer that silently found nothing would make every test below pass vacuously.
    assert len(PYTHON_BLOCKS) >= 10 and len(SHELL_BLOCKS) >= 10 and len(DOCTESTS) >= 30


@pytest.mark.parametrize("block", PYTHON_BLOCKS, ids=_example_id)
def test_python_block_runs_standalone(block: Example, isolated):
    code = compile(str(block.parsed), _example_id(block), "exec")
    exec(code, {"__name__": "__main__"})


@pytest.mark.parametrize("block", SHELL_BLOCKS, ids=_example_id)
def test_shell_block_is_marked(block: Example):
    fence = block.region.lexemes["arguments"]
    assert fence == "bash", f"{_example_id(block)}: a shell block is fenced ```bash, not ```{fence}."
    marker = _marker(block)
    assert marker == RUN or NOT_RUN.fullmatch(marker), (
        f"{_example_id(block)}: a ```bash block must be preceded by the line `{RUN}` (a cheap command a test runs "
        f"from the repository root) or `<!-- not run: REASON -->`; found {marker!r}."
    )


@pytest.mark.slow
@pytest.mark.parametrize("block", [b for b in SHELL_BLOCKS if _marker(b) == RUN], ids=_example_id)
def test_shell_block_runs(block: Example):
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), str(ROOT / "recipes")]), "WANDB_MODE": "offline"}
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env['PATH']}"  # `python` is this interpreter
    result = subprocess.run(
        ["bash", "-euo", "pipefail", "-c", str(block.parsed)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=SHELL_TIMEOUT_S,
    )
    assert result.returncode == 0, f"{_example_id(block)} exited {result.returncode}:\n{result.stderr[-3000:]}"


@pytest.mark.parametrize(
    "module", [m for m in MODULES if any(e.path == str(m) for e in DOCTESTS)], ids=lambda m: str(m.relative_to(ROOT))
)
def test_docstring_examples(module: Path, isolated):
    # In order, in the module's namespace: an example may use names an earlier one in its docstring defined.
    for example in DOCSTRINGS.parse(module).examples():
        example.evaluate()
