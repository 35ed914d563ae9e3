"""The progress bar of `xz sync`/`xz demo`: fed by a run's own Dagster events (steps, rows fetched, API calls),
drawn on a terminal only."""

from __future__ import annotations

import io

import dagster as dg

from xz_pipeline import runner
from xz_pipeline.progress import RunProgress


class Tty(io.StringIO):
    def isatty(self) -> bool:
        return True


@dg.asset
def read_a() -> dg.MaterializeResult:
    return dg.MaterializeResult(metadata={"fetched": 120, "api_calls": 3})


@dg.asset(deps=[read_a])
def write_b() -> dg.MaterializeResult:
    return dg.MaterializeResult(metadata={"api_calls": dg.MetadataValue.json({"books": 2, "crm": 1})})


def test_a_run_feeds_the_bar_with_its_steps_rows_and_calls(xz_home):
    screen = Tty()
    with RunProgress(screen) as progress:
        assert progress.enabled
        job = dg.Definitions(
            assets=[read_a, write_b],
            jobs=[dg.define_asset_job("j")],
            loggers={"xz_file": runner._logger_def(runner.log_path(), progress.handler())},
        ).resolve_job_def("j")
        progress.start_run("c1", len(job.graph.nodes))
        with dg.instance_for_test() as inst:
            assert job.execute_in_process(instance=inst, run_config={"loggers": {"xz_file": {}}}).success
    (task,) = progress.progress.tasks
    assert (task.completed, task.total) == (2, 2)
    assert (progress.rows, progress.calls) == (120, 6)
    drawn = screen.getvalue()
    assert "c1" in drawn and "2/2" in drawn and "120 rows" in drawn and "6 calls" in drawn
    assert "DEBUG" in runner.log_path().read_text()  # the log file still gets every event


def test_no_terminal_no_bar():
    quiet = io.StringIO()
    with RunProgress(quiet) as progress:
        assert not progress.enabled and progress.handler() is None
        progress.start_run("c1", 3)
        progress.on_event("STEP_SUCCESS", "x", {})
    assert quiet.getvalue() == ""
