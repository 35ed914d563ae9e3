"""`xz migrate`: the single `$XZ_HOME/mirror.duckdb` of earlier versions becomes one file per connection.

Until it has run, every command that needs the mirror stops with one line saying to run it
(`settings.mirror_dir`). It splits every table by its `connection` column (`store.split_mirror`), installs the
canonical and analytics views in each new file as the pipeline would, and keeps the old file renamed
`mirror.duckdb.pre-migrate`. Run again, it finds nothing to do and says so.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

import duckdb

from xz_pipeline import settings
from xz_pipeline.core.store import VENDOR_SCHEMAS, split_mirror

KEPT_SUFFIX = ".pre-migrate"


@dataclass
class Migration:
    """What `migrate` did: the rows each connection's file got, and where the old file went."""

    legacy: Path
    kept: Path
    directory: Path
    rows: dict[str, dict[str, int]] = field(default_factory=dict)
    seconds: float = 0.0
    done: bool = False  # False: nothing to migrate

    def lines(self) -> list[str]:
        if not self.done:
            if self.kept.exists():
                return [f"xz migrate: nothing to do: the mirror is already one file per connection in "
                        f"{self.directory} (the single file was kept as {self.kept})"]  # fmt: skip
            return [f"xz migrate: nothing to do: no single-file mirror at {self.legacy}"]
        out = [f"xz migrate: split {self.legacy} into {len(self.rows)} connection file(s) in {self.directory} "
               f"in {self.seconds:.1f}s"]  # fmt: skip
        for connection, tables in self.rows.items():
            typed = sum(n for t, n in tables.items() if t.split(".")[0] in VENDOR_SCHEMAS)
            out.append(
                f"  {connection}: {sum(tables.values())} rows in {len(tables)} tables "
                f"({typed} in the vendor tables) -> {self.directory / (connection + '.duckdb')}"
            )
        out.append(
            f"xz migrate: the single file is kept as {self.kept} (remove it once the new layout works)"
        )
        return out


def _install_views(con: duckdb.DuckDBPyConnection) -> None:
    """The canonical views (and the analytics views once reconciliation has run) over one new file."""
    from xz_pipeline.definitions import VENDOR_VIEWS
    from xz_pipeline.plots import exists
    from xz_pipeline.reconcile.analytics import install_analytics
    from xz_pipeline.views import install_canonical

    install_canonical(con, VENDOR_VIEWS)
    if exists(con, "recon", "discrepancies"):
        install_analytics(con)


def migrate(environ=None) -> Migration:
    """Split the single-file mirror, if there is one (idempotent: nothing to do the second time)."""
    legacy = settings.legacy_mirror_path(environ)
    result = Migration(
        legacy=legacy,
        kept=legacy.with_name(legacy.name + KEPT_SUFFIX),
        directory=settings.xz_home(environ) / "mirror",
    )
    if not legacy.exists():
        return result
    started = time.monotonic()
    result.rows = split_mirror(
        legacy, result.directory, check_name=settings.check_connection_name, finish=_install_views
    )
    legacy.replace(result.kept)
    wal = legacy.with_name(legacy.name + ".wal")  # DuckDB's log of the old file, if it was not checkpointed
    if wal.exists():
        wal.replace(result.kept.with_name(result.kept.name + ".wal"))
    for leftover in (legacy.with_name(legacy.name + ".lock"), legacy.with_name(legacy.name + ".lock.holder")):
        leftover.unlink(missing_ok=True)
    result.seconds = time.monotonic() - started
    result.done = True
    return result
