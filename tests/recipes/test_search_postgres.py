"""Workers sharing one study on a real PostgreSQL server (Debian's ``postgresql`` package; CI installs it).

The fixture starts a server in a temporary directory on a free port (``initdb`` + ``pg_ctl``; as the
``postgres`` user when the tests run as root, since PostgreSQL refuses to run as root) and stops it at the end.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path

import optuna
import pytest

from tests.recipes.conftest import run_recipe

APP = Path(__file__).resolve().parent / "search_app" / "app.py"
PG_BIN = Path("/usr/lib/postgresql/15/bin")


def _bin_dir() -> Path | None:
    if (PG_BIN / "initdb").is_file():
        return PG_BIN
    found = shutil.which("initdb")
    return Path(found).parent if found else None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def postgres():
    """A PostgreSQL URL (``postgresql://search@127.0.0.1:PORT/optuna``, trust authentication) of a server that
    lives as long as the module's tests."""
    bin_dir = _bin_dir()
    if bin_dir is None:
        pytest.skip("PostgreSQL server binaries (initdb, pg_ctl) not found: apt-get install -y postgresql")
    if importlib.util.find_spec("psycopg") is None and importlib.util.find_spec("psycopg2") is None:
        pytest.skip("no PostgreSQL driver: pip install 'psycopg[binary]' (the recipes extra)")
    base = Path(tempfile.mkdtemp(prefix="optuna-pg-"))
    prefix: list[str] = []
    if os.geteuid() == 0:  # initdb and postgres refuse root: run them as the postgres (or nobody) user
        user = "postgres" if shutil.which("runuser") and _user_exists("postgres") else "nobody"
        prefix = ["runuser", "-u", user, "--"]
        shutil.chown(base, user=user)
    base.chmod(0o755)
    port, data = _free_port(), base / "data"

    def run(*args: str) -> None:
        subprocess.run([*prefix, *args], check=True, capture_output=True, timeout=120)

    run(str(bin_dir / "initdb"), "-D", str(data), "-U", "search", "--auth=trust", "-E", "UTF8")
    options = f"-p {port} -k {base} -c listen_addresses=127.0.0.1"
    run(str(bin_dir / "pg_ctl"), "-D", str(data), "-o", options, "-l", str(base / "server.log"), "-w", "start")
    try:
        run(str(bin_dir / "createdb"), "-h", "127.0.0.1", "-p", str(port), "-U", "search", "optuna")
        yield f"postgresql://search@127.0.0.1:{port}/optuna"
    finally:
        run(str(bin_dir / "pg_ctl"), "-D", str(data), "-m", "immediate", "stop")
        shutil.rmtree(base, ignore_errors=True)


def _user_exists(name: str) -> bool:
    import pwd

    try:
        pwd.getpwnam(name)
    except KeyError:
        return False
    return True


def _check(study: optuna.Study, n_trials: int) -> list[optuna.trial.FrozenTrial]:
    trials = study.trials
    assert sorted(t.number for t in trials) == list(range(n_trials))  # distinct numbers, exactly n_trials
    assert all(t.state.name == "COMPLETE" for t in trials)
    return trials


def test_two_workers_share_one_postgresql_study(postgres, tmp_path):
    args = [f"hydra.sweeper.storage={postgres}", "hydra.sweeper.study_name=pg_workers", "hydra.sweeper.n_trials=6"]
    result = run_recipe(
        [*args, "hydra.sweeper.n_jobs=2", "sleep=0.5", f"hydra.sweep.dir={tmp_path}"], cwd=tmp_path, script=APP
    )
    assert result.returncode == 0, result.stderr[-3000:]
    trials = _check(optuna.load_study(study_name="pg_workers", storage=postgres), 6)
    assert len({t.user_attrs["worker"] for t in trials}) == 2  # both workers ran trials


def test_two_commands_share_one_postgresql_study(postgres, tmp_path):
    """Two machines' worth: the same command started twice at once, each with one worker; the study gets exactly
    n_trials, taken by both."""
    args = [f"hydra.sweeper.storage={postgres}", "hydra.sweeper.study_name=pg_commands", "hydra.sweeper.n_trials=6"]
    env = {**os.environ, "WANDB_MODE": "disabled", "OMP_NUM_THREADS": "1"}
    import sys

    commands = [
        subprocess.Popen(
            [sys.executable, str(APP), *args, "sleep=1", f"hydra.sweep.dir={tmp_path / name}"],
            cwd=tmp_path,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        for name in ("a", "b")
    ]
    deadline = time.monotonic() + 300
    for command in commands:
        _, stderr = command.communicate(timeout=max(deadline - time.monotonic(), 1))
        assert command.returncode == 0, stderr[-3000:]
    trials = _check(optuna.load_study(study_name="pg_commands", storage=postgres), 6)
    assert len({t.system_attrs["noisy_recipes:pid"] for t in trials}) == 2  # both commands' workers ran trials
