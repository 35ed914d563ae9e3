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
