"""Dagster's SQLite storage, tuned: events still land and read back, WAL files are no longer checkpointed
away at every close, keepers stay bounded."""

import sqlite3
from pathlib import Path

import dagster as dg
import sqlalchemy as sa

from xz_pipeline import dagster_storage
from xz_pipeline.dagster_storage import KEEPERS, kept_files, tune_sqlite_storage


@dg.asset
def chatty(context: dg.AssetExecutionContext) -> None:
    for i in range(20):
        context.log.info(f"line {i}")


def test_runs_keep_their_wal_and_every_event_reads_back(tmp_path: Path):
    tune_sqlite_storage()
    with dg.instance_for_test(temp_dir=str(tmp_path)) as instance:
        result = dg.materialize([chatty], instance=instance)
        assert result.success
        run_db = tmp_path / "history" / "runs" / f"{result.run_id}.db"
        # without a keeper the last close checkpoints the WAL into the file and deletes it
        assert Path(str(run_db) + "-wal").exists()
        assert str(run_db) in kept_files()
        logs = [r for r in instance.all_logs(result.run_id) if "line " in (r.user_message or "")]
        assert len(logs) == 20
        # another connection (another process would do the same) sees every event
        with sqlite3.connect(run_db) as con:
            assert con.execute("select count(*) from event_logs").fetchone()[0] == len(
                instance.all_logs(result.run_id)
            )


def test_dagster_engines_get_normal_sync_and_keepers_stay_bounded(tmp_path: Path):
    tune_sqlite_storage()
    for i in range(KEEPERS + 3):
        db = tmp_path / f"f{i}.db"
        engine = sa.create_engine(f"sqlite:///{db}", poolclass=sa.pool.NullPool)
        with engine.connect() as con:
            assert con.exec_driver_sql("pragma synchronous").scalar() == 1  # NORMAL
        engine.dispose()
    kept = kept_files()
    assert len(kept) == KEEPERS
    assert str(tmp_path / f"f{KEEPERS + 2}.db") in kept and str(tmp_path / "f0.db") not in kept


def test_in_memory_databases_get_no_keeper():
    tune_sqlite_storage()
    before = kept_files()
    engine = sa.create_engine("sqlite://")
    with engine.connect() as con:
        con.exec_driver_sql("select 1")
    assert kept_files() == before and "" not in dagster_storage.kept_files()


def test_one_engine_per_file_serves_a_whole_run(tmp_path: Path, monkeypatch):
    tune_sqlite_storage()
    made: list[str] = []
    real = sa.create_engine
    monkeypatch.setattr(sa, "create_engine", lambda url, **kw: made.append(str(url)) or real(url, **kw))
    with dg.instance_for_test(temp_dir=str(tmp_path)) as instance:
        first = dg.materialize([chatty], instance=instance)
        second = dg.materialize([chatty], instance=instance)
        assert first.success and second.success
        assert len([r for r in instance.all_logs(second.run_id) if "line " in (r.user_message or "")]) == 20
    # Dagster builds an engine for every statement (some 60 for this run's file); one serves them all
    for run in (first, second):
        assert len([u for u in made if run.run_id in u]) == 1
    assert len([u for u in made if u.endswith("runs.db")]) == 1
    assert len(dagster_storage.cached_engines()) <= dagster_storage.ENGINES
