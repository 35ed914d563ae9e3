"""Process trees from /proc, for the tests that check a command leaves no process behind."""

from __future__ import annotations

import subprocess
import time
from pathlib import Path


def _stat_fields(pid: int | str) -> list[str]:
    """The fields of /proc/<pid>/stat after the command name (which may hold spaces and parentheses)."""
    return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()


def descendants(pid: int) -> set[int]:
    """Every live process below `pid`, by parent id."""
    parents: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                parents[int(entry.name)] = int(_stat_fields(entry.name)[1])
            except OSError:
                continue
    found, frontier = set(), {pid}
    while frontier:
        frontier = {p for p, parent in parents.items() if parent in frontier} - found
        found |= frontier
    return found


def alive(pid: int) -> bool:
    """Running (a zombie, dead but not yet reaped, is not)."""
    try:
        return _stat_fields(pid)[0] != "Z"
    except OSError:
        return False


def wait_for(predicate, timeout: float, what: str, proc: subprocess.Popen):
    """`predicate()`'s first truthy value within `timeout` seconds, while `proc` (a server) keeps running."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        assert proc.poll() is None, f"the server exited {proc.returncode} while waiting for {what}"
        time.sleep(0.5)
    raise AssertionError(f"timed out waiting for {what}")
