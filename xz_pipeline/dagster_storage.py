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
"""

from __future__ import annotations

import sqlite3
import threading
from collections import OrderedDict

from sqlalchemy import event
from sqlalchemy.engine import Engine

KEEPERS = 8

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


def tune_sqlite_storage() -> None:
    """Install the connect hook once per process (idempotent)."""
    global _installed
    with _lock:
        if _installed:
            return
        event.listen(Engine, "connect", _on_connect)
        _installed = True


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
