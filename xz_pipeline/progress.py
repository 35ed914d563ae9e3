"""A progress bar for long in-process runs (`xz sync`, `xz demo`) on a terminal: steps done of the run's steps,
rows fetched and API calls spent so far, the step in progress. Nothing at all when stderr is not a terminal
(cron, pipes, CI logs keep their one-line-per-problem output).

It listens to the run's Dagster events through a logging handler the runner adds to the run's logger: a
step's start names it, a materialization adds its `fetched` rows and `api_calls`, a step's end advances the bar.
"""

from __future__ import annotations

import logging
import sys
from typing import IO

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

STEP_END = {"STEP_SUCCESS", "STEP_FAILURE", "STEP_SKIPPED"}


class RunProgress:
    """One bar per run; `enabled` only on a terminal. Use as a context manager around the runs."""

    def __init__(self, stream: IO[str] | None = None, *, force: bool = False) -> None:
        stream = stream if stream is not None else sys.stderr
        self.enabled = force or bool(getattr(stream, "isatty", lambda: False)())
        self.progress = (
            Progress(
                TextColumn("{task.description}"),
                BarColumn(),
                MofNCompleteColumn(),
                TextColumn(
                    "steps · {task.fields[rows]:,} rows · {task.fields[calls]:,} calls · {task.fields[step]}"
                ),
                TimeElapsedColumn(),
                console=Console(file=stream, force_terminal=force or None),
                transient=False,
            )
            if self.enabled
            else None
        )
        self.task = None
        self.rows = self.calls = 0

    def __enter__(self) -> RunProgress:
        if self.progress is not None:
            self.progress.start()
        return self

    def __exit__(self, *exc) -> None:
        if self.progress is not None:
            self.progress.stop()

    def start_run(self, label: str, steps: int) -> None:
        """A new bar for the run about to start (the previous one stays on screen, finished)."""
        if self.progress is None:
            return
        self.rows = self.calls = 0
        self.task = self.progress.add_task(label, total=steps, rows=0, calls=0, step="starting")

    def on_event(self, event_type: str, step: str | None, metadata: dict) -> None:
        if self.progress is None or self.task is None:
            return
        if event_type == "ASSET_MATERIALIZATION":
            self.rows += _int(metadata.get("fetched"))
            self.calls += _calls(metadata.get("api_calls"))
            self.progress.update(self.task, rows=self.rows, calls=self.calls)
        elif event_type == "STEP_START" and step:
            self.progress.update(self.task, step=step)
        elif event_type in STEP_END:
            self.progress.advance(self.task)

    def handler(self) -> logging.Handler | None:
        """The logging handler that feeds this bar from a run's logger (None when there is no bar)."""
        return _EventHandler(self) if self.progress is not None else None


class _EventHandler(logging.Handler):
    def __init__(self, progress: RunProgress) -> None:
        super().__init__(level=logging.DEBUG)
        self.target = progress

    def emit(self, record: logging.LogRecord) -> None:
        meta = getattr(record, "dagster_meta", None)
        event = meta.get("dagster_event") if isinstance(meta, dict) else None
        if event is None:
            return
        metadata: dict = {}
        if event.event_type_value == "ASSET_MATERIALIZATION":
            metadata = {
                k: v.value for k, v in event.step_materialization_data.materialization.metadata.items()
            }
        self.target.on_event(event.event_type_value, event.step_key, metadata)


def _int(value) -> int:
    return int(value) if isinstance(value, int | float) and not isinstance(value, bool) else 0


def _calls(value) -> int:
    """`api_calls`: a number (extracts) or calls per side (write-back: {"books": n, "crm": m})."""
    if isinstance(value, dict):
        return sum(_int(v) for v in value.values())
    return _int(value)
