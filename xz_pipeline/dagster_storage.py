"""Dagster's SQLite storage without two fsyncs per event.

The OSS instance keeps its runs and event logs in SQLite files in WAL mode and opens a fresh connection
for every event (SQLAlchemy NullPool). With SQLite's default `synchronous=FULL`, every event commit
syncs the WAL, and every close — being the last connection to the file — checkpoints the WAL into the
database and syncs again. A targeted near-real-time run writes ~400 events: measured here, 3.2 s of a
9.8 s run went to those syncs (0.8 s after this module).

So, for SQLite connections Dagster's engines open in this process:
- `synchronous=NORMAL`, SQLite's recommended setting for WAL: still never corrupts; a power loss (not a
  process crash) may lose the last events written before it;
- one idle "keeper" connection per recently used file, so a closing connection is not the last one and
  does not checkpoint: SQLite then checkpoints every 1,000 WAL pages by itself. Keepers are few (LRU)
  because each run has its own event-log file.
- one SQLAlchemy engine per file instead of one per statement: Dagster's SQLite storages build a new
  engine (NullPool) for every read and write, so each statement was compiled afresh and each engine
  initialised its dialect again. A targeted run reads and writes its event log some 800 times: measured
  here, 0.4-0.6 s of a 3 s run. A cached engine still opens a fresh SQLite connection each time (NullPool:
  no connection outlives its use, so nothing is shared between threads or across the warm launcher's
  forks); it keeps only the statement cache. Engines are few (LRU), like the keepers.
"""

from __future__ import annotations

import importlib
import sqlite3
import threading
from collections import OrderedDict

import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.engine import Engine
from sqlalchemy.pool import NullPool

KEEPERS = 8
ENGINES = 16
# The modules whose `create_engine` builds an engine per statement (dagster 1.13.27).
_STORAGE_MODULES = (
    "dagster._core.storage.event_log.sqlite.sqlite_event_log",
    "dagster._core.storage.runs.sqlite.sqlite_run_storage",
    "dagster._core.storage.schedules.sqlite.sqlite_schedule_storage",
)
_engines: OrderedDict[tuple[str, str], Engine] = OrderedDict()

_keepers: OrderedDict[str, sqlite3.Connection] = OrderedDict()
_lock = threading.Lock()
_installed = False


def _on_connect(dbapi_connection, _record) -> None:
    if not isinstance(dbapi_connection, sqlite3.Connection):
        return
    dbapi_connection.execute("PRAGMA synchronous=NORMAL")
    rows = dbapi_connection.execute("PRAGMA database_list").fetchall()
    path = rows[0][2] if rows else ""
    if path:  # "" for in-memory databases
        _keep(path)


def _keep(path: str) -> None:
    with _lock:
        keeper = _keepers.get(path)
        if keeper is None:
            keeper = _keepers[path] = sqlite3.connect(path, check_same_thread=False)
            while len(_keepers) > KEEPERS:
                _, oldest = _keepers.popitem(last=False)
                oldest.close()
        _keepers.move_to_end(path)
        # A read maps the WAL index (and holds it from then on); read again on later connects because
        # Dagster switches a new file to WAL only after its first connection.
        keeper.execute("PRAGMA schema_version").fetchall()


def cached_engine(url, **kwargs) -> Engine:
    """`sqlalchemy.create_engine`, but one engine per SQLite file Dagster opens with NullPool."""
    if kwargs.get("poolclass") is not NullPool or not str(url).startswith("sqlite"):
        return sa.create_engine(url, **kwargs)
    key = (str(url), repr(sorted((kwargs.get("connect_args") or {}).items())))
    with _lock:
        engine = _engines.get(key)
        if engine is None:
            engine = _engines[key] = sa.create_engine(url, **kwargs)
            while len(_engines) > ENGINES:
                _engines.popitem(last=False)  # NullPool: it holds no connection to close
        _engines.move_to_end(key)
        return engine


def tune_sqlite_storage() -> None:
    """Install the connect hook and the engine cache once per process (idempotent)."""
    global _installed
    with _lock:
        if _installed:
            return
        event.listen(Engine, "connect", _on_connect)
        for name in _STORAGE_MODULES:
            module = importlib.import_module(name)
            if getattr(module, "create_engine", None) is not sa.create_engine:
                raise RuntimeError(
                    f"{name}.create_engine is not sqlalchemy's: dagster changed; see dagster_storage.py"
                )
            module.create_engine = cached_engine
        _installed = True


def cached_engines() -> list[str]:
    """The URLs an engine is cached for (for tests)."""
    with _lock:
        return [url for url, _ in _engines]


def kept_files() -> list[str]:
    """The files a keeper connection holds open (for tests and `xz status`)."""
    with _lock:
        return list(_keepers)


def close_keepers() -> None:
    """Close every keeper connection: a process about to fork children (the warm launcher's) must not hand
    them SQLite connections it opened (SQLite connections do not survive a fork)."""
    with _lock:
        while _keepers:
            _, keeper = _keepers.popitem()
            keeper.close()
