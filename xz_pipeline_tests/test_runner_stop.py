"""A stop request ends a long read after the chunk it is writing (resumable, like a paused read) and the
run at that step's end; the next sync carries on from the cursor. In process, against the tiny sandbox."""

from __future__ import annotations

import duckdb
import pytest

from xz_pipeline import runner
from xz_pipeline.core import sync as core_sync
from xz_pipeline.sandbox.server import SandboxServer
from xz_pipeline_tests.mirrors import only_mirror
from xz_pipeline_tests.sandbox_env import export_sandbox

# Real processes end to end (signals, kills, daemons, whole pairs): `make test-integration` runs these.
pytestmark = pytest.mark.end_to_end


@pytest.fixture(scope="module")
def sandbox():
    with SandboxServer(seed=53, size="tiny") as sb:
        yield sb


def test_a_stop_ends_a_long_read_after_its_chunk_and_the_next_sync_resumes(sandbox, monkeypatch):
    export_sandbox(monkeypatch, sandbox, connection="sandbox")
    monkeypatch.setenv("XZ_ZOHO_SUBFORMS", "off")
    monkeypatch.setattr(core_sync, "CHUNK_ROWS", 1)  # every page is a chunk of its own
    stop = runner.StopRequest()
    real_write = core_sync.write_entity
    written = []

    def write_then_stop(store, spec, **kwargs):
        result = real_write(store, spec, **kwargs)
        if spec.vendor == "zoho" and spec.entity == "Deals":
            written.append(len(kwargs["payloads"]))
            stop.set("SIGTERM")  # as the signal handler does, while the first page is being written
        return result

    monkeypatch.setattr(core_sync, "write_entity", write_then_stop)
    (outcome,) = runner.sync(["sandbox"], only="mirror", stop=stop)

    assert outcome.stopped and not outcome.success
    assert written == [200]  # one page (Zoho's 200 records), then the read ended
    assert outcome.metadata["zoho_deals"]["paused"] == "stopped on request; resumes next run"
    assert "canonical_views" in outcome.skipped
    total = len(sandbox.zoho.dump(sandbox.org_ids[0], "Deals"))
    con = duckdb.connect(str(only_mirror()), read_only=True)
    try:
        assert con.execute("select count(*) from zoho.deals").fetchone()[0] == 200 < total
    finally:
        con.close()
    inst = runner.instance()
    assert inst.get_run_by_id(outcome.run_id).status.value == "CANCELED"

    monkeypatch.setattr(core_sync, "write_entity", real_write)
    (again,) = runner.sync(["sandbox"], only="mirror", stop=runner.StopRequest())

    assert again.success, again.error
    assert again.metadata["zoho_deals"]["mode"] == "resuming the first sync"
    con = duckdb.connect(str(only_mirror()), read_only=True)
    try:
        assert con.execute("select count(*) from zoho.deals").fetchone()[0] == total
    finally:
        con.close()


def test_a_sigterm_during_the_demo_ends_it_with_143_and_one_line(xz_home, monkeypatch, capsys):
    """The demo stops like a sync: the signal asks for a stop, the run ends at a step boundary, exit 143."""
    import os
    import signal

    from xz_pipeline import cli

    real_sync = runner.sync
    calls = []

    def sync_after_a_signal(*args, **kwargs):
        calls.append(kwargs.get("stop"))
        os.kill(os.getpid(), signal.SIGTERM)  # arrives through the demo's handler, as from `kill`
        return real_sync(*args, **kwargs)

    monkeypatch.setattr(runner, "sync", sync_after_a_signal)
    before = dict(os.environ)
    try:
        assert cli.main(["demo", "--size", "tiny"]) == 143
    finally:  # the demo points this process at its sandbox: leave no XERO_*/ZOHO_*/XZ_CONNECTION behind
        os.environ.clear()
        os.environ.update(before)
    err = capsys.readouterr().err
    assert len(calls) == 1 and calls[0] is not None and calls[0].reason == "SIGTERM"
    assert "xz demo: stopped by SIGTERM" in err and "Traceback" not in err and "Error" not in err


def test_an_interrupted_step_is_said_in_words():
    from dagster._utils.error import SerializableErrorInfo

    error = SerializableErrorInfo(
        "dagster._core.errors.DagsterExecutionInterruptedError\n", [], "DagsterExecutionInterruptedError"
    )
    assert runner._error_line(error).startswith("interrupted: ")
    bare = SerializableErrorInfo("dagster._core.errors.DagsterSomethingError\n", [], "DagsterSomethingError")
    assert runner._error_line(bare) == "DagsterSomethingError: "
