"""Deployment profiles: which dagster.yaml xz puts in $XZ_HOME/dagster.

`XZ_DAGSTER_PROFILE` unset (or `sqlite`) keeps the repository's dagster.yaml: SQLite storage under
$XZ_HOME/dagster, one machine. `postgres` takes deploy/postgres/dagster.yaml: the same settings with Dagster's
Postgres storage at `XZ_DAGSTER_PG_URL`, which several machines can share (docs/deploy.md).
"""

from __future__ import annotations

import os
from pathlib import Path

from xz_pipeline.settings import SettingsError

REPO = Path(__file__).resolve().parents[2]
PROFILES = {
    "sqlite": REPO / "dagster.yaml",
    "postgres": REPO / "deploy" / "postgres" / "dagster.yaml",
}


class UnknownProfile(SettingsError):
    """XZ_DAGSTER_PROFILE names no profile."""


def profile() -> str:
    return os.environ.get("XZ_DAGSTER_PROFILE", "").strip().lower() or "sqlite"


def instance_yaml() -> Path:
    """The dagster.yaml of the selected profile."""
    name = profile()
    if name not in PROFILES:
        raise UnknownProfile(
            f"XZ_DAGSTER_PROFILE={name!r} is not a deployment profile: use one of {', '.join(PROFILES)}"
        )
    return PROFILES[name]
