"""The write-back tests' shared baseline: the demo world mirrored and reconciled once per session."""

from __future__ import annotations

import pytest

from xz_pipeline_tests.writeback.support import build_baseline


@pytest.fixture(scope="session")
def baseline(tmp_path_factory):
    return build_baseline(tmp_path_factory.mktemp("writeback-baseline"))
