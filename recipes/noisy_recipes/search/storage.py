"""Where a search's study lives: ``hydra.sweeper.storage`` opened as an Optuna storage, refused in one line when
it is malformed or unreachable.

* ``null``: a SQLite file, ``optuna.db`` in the multirun directory (nothing to set up);
* ``sqlite:///path.db``, ``postgresql://user:password@host:port/db`` (psycopg 3 or psycopg2), any SQLAlchemy URL
  Optuna's ``RDBStorage`` takes: one study shared by processes and machines;
* ``journal:PATH``: Optuna's ``JournalStorage`` on a ``JournalFileBackend`` (an append-only file, for clusters
  with a shared filesystem and no database).
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

from noisy_recipes.search.errors import config_error

EXPECTED = "a reachable database URL (sqlite:///PATH.db, postgresql://USER@HOST:PORT/DB) or journal:PATH"


def default_url(sweep_dir: str | Path) -> str:
    """The default storage: ``optuna.db`` in the multirun directory."""
    return f"sqlite:///{Path(sweep_dir).resolve() / 'optuna.db'}"


def journal_path(url: str) -> Path | None:
    """The file of a ``journal:PATH`` (or ``journal://PATH``) storage, None for a database URL."""
    if not url.startswith("journal:"):
        return None
    rest = url.removeprefix("journal:")
    return Path(rest[2:] if rest.startswith("//") else rest)


def _refuse(url: str, reason: Any) -> ValueError:
    text = " ".join(str(reason).split())[:300]
    return config_error(f"hydra.sweeper.storage must be {EXPECTED}; got {url!r} ({text}).")


def open_storage(url: str, *, heartbeat_interval: int | None = None) -> Any:
    """Open (and for a new SQLite file or journal, create) the storage at ``url``.

    Args:
        url: the storage URL (see the module docstring).
        heartbeat_interval: seconds between a running trial's heartbeats in a database storage (a trial silent
            for twice as long is failed by the next command on the study); None: no heartbeat.

    Raises:
        ConfigError: a URL SQLAlchemy cannot parse, a database driver that is not installed, a server that does not
            answer, a SQLite or journal file whose directory does not exist.
    """
    import optuna

    path = journal_path(url)
    if path is not None:
        if not path.name or not path.parent.is_dir():
            raise _refuse(url, f"the directory {str(path.parent)!r} of the journal file does not exist")
        from optuna.storages.journal import JournalFileBackend, JournalStorage

        try:
            return JournalStorage(JournalFileBackend(str(path)))
        except Exception as error:  # noqa: BLE001 - any failure to open the file is the user's URL
            raise _refuse(url, error) from None
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    try:
        parsed = make_url(url)
    except (ArgumentError, ValueError) as error:
        raise _refuse(url, error) from None
    engine: dict[str, Any] = {}
    target = url
    if parsed.get_backend_name() == "sqlite":
        database = parsed.database or ""
        if not database or database == ":memory:":
            raise _refuse(url, "an in-memory database cannot be shared with the worker processes")
        if not Path(database).resolve().parent.is_dir():
            raise _refuse(url, f"the directory {str(Path(database).parent)!r} does not exist")
        engine = {"connect_args": {"timeout": 60}}  # several workers write one file: wait for the lock
    elif parsed.get_backend_name() == "postgresql":
        engine = {"connect_args": {"connect_timeout": 10}, "pool_pre_ping": True}
        if parsed.drivername == "postgresql":  # no driver named: the one installed (psycopg 3, else psycopg2)
            target = parsed.set(drivername=f"postgresql+{_postgresql_driver()}").render_as_string(hide_password=False)
    heartbeat = {}
    if heartbeat_interval:
        heartbeat = {"heartbeat_interval": heartbeat_interval, "grace_period": 2 * heartbeat_interval}
    try:
        with warnings.catch_warnings():  # the heartbeat is "experimental" since Optuna 2.9: nothing to act on
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            return optuna.storages.RDBStorage(target, engine_kwargs=engine, **heartbeat)
    except Exception as error:  # noqa: BLE001 - a driver, network or permission failure: the URL to change
        raise _refuse(url, error) from None


def _postgresql_driver() -> str:
    from importlib.util import find_spec

    return "psycopg" if find_spec("psycopg") is not None or find_spec("psycopg2") is None else "psycopg2"


def heartbeat_interval(storage: Any) -> int | None:
    """The heartbeat interval of a database storage opened with one, else None (journal storages have none)."""
    getter = getattr(storage, "get_heartbeat_interval", None)
    return getter() if callable(getter) else None
