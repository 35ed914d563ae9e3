"""Point the code under test at a running sandbox: its credentials and URLs as environment variables."""

from __future__ import annotations

from xz_pipeline.sandbox.server import SandboxServer


def export_sandbox(monkeypatch, sb: SandboxServer, connection: str | None = None) -> dict[str, str]:
    """Set the sandbox's first connection in the environment (and `XZ_CONNECTION` when named)."""
    values = sb.env(0)
    for key, value in values.items():
        monkeypatch.setenv(key, value)
    if connection is not None:
        monkeypatch.setenv("XZ_CONNECTION", connection)
    return values


def mirrored_world(tmp_path_factory, label: str, seed: int = 7, size: str = "demo"):
    """A world mirrored once (`--only mirror`) in a fresh XZ_HOME, for a module-scoped fixture to yield from:
    (mirror path, world, connection name)."""
    import pytest

    from xz_pipeline import runner, settings

    home = tmp_path_factory.mktemp(label)
    mp = pytest.MonkeyPatch()
    mp.setenv("XZ_HOME", str(home))
    mp.setenv("DAGSTER_HOME", str(home / "dagster"))
    (home / "dagster").mkdir()
    try:
        with SandboxServer(seed=seed, size=size) as sb:
            for k, v in sb.env(0).items():
                mp.setenv(k, v)
            name = sb.connection_name(0)
            mp.setenv("XZ_CONNECTION", name)
            outcomes = runner.sync([name], inst=runner.instance(home), only="mirror")
            assert all(o.success for o in outcomes), [o.error for o in outcomes]
            yield settings.mirror_path(name), sb.worlds[0], name
    finally:
        mp.undo()
