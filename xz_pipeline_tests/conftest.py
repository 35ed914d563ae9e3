"""Shared fixtures: a temporary XZ_HOME for every test, and where the official specs live."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def specs_dir() -> Path | None:
    """`$XZ_SPECS_DIR`, else ../shared/specs beside the checkout; None when absent."""
    candidates = [os.environ.get("XZ_SPECS_DIR"), REPO.parent / "shared" / "specs"]
    for c in candidates:
        if c and Path(c).is_dir():
            return Path(c)
    return None


@pytest.fixture
def specs() -> Path:
    found = specs_dir()
    if found is None:
        pytest.skip(
            "official API specs not found: set XZ_SPECS_DIR or place shared/specs beside the checkout"
        )
    return found


@pytest.fixture(autouse=True)
def xz_home(tmp_path, monkeypatch) -> Path:
    home = tmp_path / "xz-home"
    home.mkdir()
    monkeypatch.setenv("XZ_HOME", str(home))
    monkeypatch.setenv("DAGSTER_HOME", str(home / "dagster"))
    (home / "dagster").mkdir()
    return home


def _clean_definitions_load_context() -> None:
    """Install a fresh initialisation context for loading Definitions, with no defs-state storage.

    Dagster looks up the defs-state storage of the last entered DagsterInstance when it builds a
    repository; once a test's temporary instance is gone (its folder deleted), a later Definitions load
    in the same process would open that dead storage ("unable to open database file", "undefined
    DagsterInstance weakref"). Production processes load Definitions once; only the suite needs this.
    """
    from dagster._core.definitions.definitions_load_context import (
        DefinitionsLoadContext,
        DefinitionsLoadType,
    )
    from dagster._core.storage.defs_state.base import set_defs_state_storage

    with set_defs_state_storage(None):
        DefinitionsLoadContext._instance = DefinitionsLoadContext(
            load_type=DefinitionsLoadType.INITIALIZATION
        )


@pytest.fixture(autouse=True, scope="session")
def _definitions_load_context_for_the_session():
    _clean_definitions_load_context()
    yield


@pytest.fixture(autouse=True)
def _definitions_load_context():
    """Before and after every test (so module and session fixtures set up later start clean too)."""
    _clean_definitions_load_context()
    yield
    _clean_definitions_load_context()
