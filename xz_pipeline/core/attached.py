"""A mirror opened for writing by attaching it to this thread's in-memory DuckDB instead of opening it:
what a batched step does for each connection and entity (`Store.session(attach=True)`).

`duckdb.connect(path)` starts a whole database instance (its catalogue of built-in functions, its
thread pool) before it reads the file: ~15 ms of a ~25 ms opening, and a batched run of 50 connections
opens each connection's mirror once per entity, some 650 times. ATTACH into an instance kept per thread
reads only the file's catalogue (~6 ms), and DETACH releases the file like a close (it checkpoints and
drops DuckDB's lock on the file), so other processes see the same file lock as before. Elsewhere (a
targeted run holds one session for its whole run; commands open the mirror a few times) the file is
opened alone, as before: nothing to gain there.

One mirror at a time per instance: a second one opened inside the first (another file) gets a plain
connection, so catalogue queries (`duckdb_tables()`, `information_schema`) see exactly one mirror, as
they do through `duckdb.connect`. An instance inherited through `fork` is never used (DuckDB's threads
do not survive it): the child makes its own.
"""

from __future__ import annotations

import itertools
import os
import tempfile
import threading
from collections.abc import Callable
from contextlib import suppress
from pathlib import Path

import duckdb

# Instances inherited across a fork: kept referenced so they are never closed (closing one would wait for
# threads that do not exist in the child).
_FORKED: list[duckdb.DuckDBPyConnection] = []
_local = threading.local()
_aliases = itertools.count(1)


class _Instance:
    def __init__(self, config: dict[str, str]) -> None:
        self.pid = os.getpid()
        # Spills of a big write go where a mirror file's own would not (`<file>.tmp`): the system's temp dir.
        spill = Path(tempfile.gettempdir()) / f"xz-duckdb-{self.pid}"
        self.db = duckdb.connect(":memory:", config={**config, "temp_directory": str(spill)})
        self.attached: str | None = None


def _instance(config: dict[str, str]) -> _Instance:
    found = getattr(_local, "instance", None)
    if found is not None and found.pid != os.getpid():
        _FORKED.append(found.db)
        found = None
    if found is None:
        found = _local.instance = _Instance(config)
    return found


def _discard(instance: _Instance) -> None:
    """An instance whose mirror could not be detached: closed (which releases the file) and forgotten."""
    if getattr(_local, "instance", None) is instance:
        del _local.instance
    with suppress(duckdb.Error):
        instance.db.close()


def connect_writing(
    path: Path, config: dict[str, str], attach: bool = True
) -> tuple[duckdb.DuckDBPyConnection, Callable[[], None]]:
    """A read-write connection to the mirror at `path` and the function that releases it; `attach=False`
    opens it alone (`duckdb.connect`). Raises duckdb.IOException as `duckdb.connect` does when another
    process holds the file."""
    instance = _instance(config) if attach else None
    if instance is None or instance.attached is not None:  # alone, or another mirror is attached here
        con = duckdb.connect(str(path), config=config)
        return con, con.close
    alias = f"xz_mirror_{next(_aliases)}"
    cursor = instance.db.cursor()
    try:
        literal = str(path).replace("'", "''")
        cursor.execute(f"attach '{literal}' as {alias}")
    except BaseException:
        cursor.close()
        raise
    instance.attached = alias
    try:
        cursor.execute(f"use {alias}")
    except BaseException:
        _discard(instance)
        raise

    def release() -> None:
        try:
            cursor.execute("use memory")
            cursor.execute(f"detach {alias}")
            cursor.close()
            instance.attached = None
        except duckdb.Error:
            _discard(instance)

    return cursor, release
