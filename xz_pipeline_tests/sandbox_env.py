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
