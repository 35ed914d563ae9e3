"""The mirror file of a test's home: most tests sync one connection, whose file is `$XZ_HOME/mirror/<name>.duckdb`."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from xz_pipeline import settings


def only_mirror(environ: Mapping[str, str] | None = None) -> Path:
    """The one connection's mirror file of the home (fails when there is none, or several)."""
    names = settings.mirror_connections(environ=environ)
    assert len(names) == 1, (
        f"expected one connection's mirror in {settings.mirror_dir(environ)}, found {names}"
    )
    return settings.mirror_path(names[0], environ)
