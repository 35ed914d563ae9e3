"""How an extract asset runs, the same for every vendor: plan the read (incremental or full sweep),
fetch through the vendor's client, write to the mirror, report what it cost.
"""

import functools
import math
import queue
import threading
import time
import warnings
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import nullcontext
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import dagster as dg
import pandas as pd

from xz_pipeline import settings
from xz_pipeline.core.errors import RateLimitExhausted, fail_fast
from xz_pipeline.core.http import CallMeter, DayBudget
from xz_pipeline.core.mirror import (
    EntityTable,
    MirrorResult,
    delete_records,
    finish_full_sweep,
    read_state,
    record_caught_up,
    record_sweep_progress,
    write_entity,
)
from xz_pipeline.core.resources import MirrorResource, connections_partitions

# Modified-since filters are accurate to the second: re-read one second so a write that shared the
# cursor's second is never missed (re-read rows are recognised by their unchanged payload hash).
CURSOR_OVERLAP = timedelta(seconds=1)
# Once a read that reached the end ran this long after the cursor's second (clock skew included), nothing
# can still join that second: the next read starts after it instead of re-reading it. Without this an org
# whose last change was a bulk update of 20,000 records re-read them on every run (112 calls an idle run
# at the large size instead of one an entity).
SETTLED = timedelta(seconds=60)

# Set when the process is asked to stop (SIGTERM, Ctrl-C: see runner.StopRequest): a long read ends after
# the chunk it is writing, as if it had met the day's reserve, and the next run resumes from its cursor.
STOP_READS = threading.Event()

RETRY = dg.RetryPolicy(max_retries=2, delay=2, backoff=dg.Backoff.EXPONENTIAL, jitter=dg.Jitter.PLUS_MINUS)


def extract_asset(name: str, group: str, description: str):
    """The decorator of an extract asset: one per entity, partitioned per connection, retried on
    transient failures only (`core.errors.explain` decides: a refused grant or a validation error fails
    the step at once, with one line saying what to do). Not in the `duckdb` pool: each connection has its
    own mirror file, one writer at a time by the store's lock, and its shard's batches run one at a time
    (the `xz/shard` tag limit), so batches of different shards extract side by side.

    A run over a range of connections (a shard of the fleet: `fleet/shards.py`) is one step per entity
    that mirrors each connection in turn through the same code (`for_each_connection`), so Dagster's
    per-run cost is paid once a batch."""
    with warnings.catch_warnings():  # `backfill_policy` is beta in Dagster 1.13; the range runs rely on it
        warnings.simplefilter("ignore", dg.BetaWarning)
        asset = dg.asset(
            name=name,
            group_name=group,
            kinds={"duckdb", "python"},
            partitions_def=connections_partitions,
            backfill_policy=dg.BackfillPolicy.single_run(),
            retry_policy=RETRY,
            description=description,
        )

    def decorate(fn):
        @functools.wraps(fn)  # Dagster reads the parameters and annotations of `fn` through __wrapped__
        def compute(*args, **kwargs):
            mirror = kwargs.get("mirror")

            def one(context) -> dg.MaterializeResult:
                with fail_fast():
                    skipped = _not_paired(context, group)  # before the mirror is opened: nothing to read
                    if skipped is not None:
                        return skipped
                    # In a batch, one connection of the mirror open for the connection's whole read (opening
                    # it costs 30-50 ms, and an idle read makes a dozen reads and writes): its shard's batch
                    # is its only scheduled writer, and a targeted run waits its turn in the queue.
                    batched = isinstance(context, _OneConnection) and isinstance(mirror, MirrorResource)
                    held = (
                        mirror.store(context.partition_key).session(attach=True) if batched else nullcontext()
                    )
                    with held:
                        if "context" in kwargs:
                            return fn(*args, **{**kwargs, "context": context})
                        return fn(context, *args[1:], **kwargs)

            yield from for_each_connection(kwargs.get("context") or args[0], one)

        return asset(compute)

    return decorate


class _OneConnection:
    """A batched step's context as one of its connections sees it: `partition_key` is that connection;
    the log, the run, the instance and the rest are the step's."""

    def __init__(self, context, connection: str, quiet: dict[str, list[str]] | None = None) -> None:
        self._context, self._connection = context, connection
        self._quiet = quiet if quiet is not None else {}

    def log_quietly(self, kind: str, detail: str) -> None:
        """A line with nothing to act on (nothing new, not paired): one line a step says it for all of
        its connections (a log line is an event Dagster stores: ~10 ms each, 13 a connection a run)."""
        self._quiet.setdefault(kind, []).append(
            f"{self._connection} ({detail})" if detail else self._connection
        )

    @property
    def partition_key(self) -> str:
        return self._connection

    @property
    def partition_keys(self) -> list[str]:
        return [self._connection]

    @property
    def has_partition_key(self) -> bool:
        return True

    @property
    def has_partition_key_range(self) -> bool:
        return False

    @property
    def partition_key_range(self) -> dg.PartitionKeyRange:
        return dg.PartitionKeyRange(self._connection, self._connection)

    def __getattr__(self, name: str):
        return getattr(self._context, name)


def for_each_connection(
    context: dg.AssetExecutionContext, one: Callable[..., dg.MaterializeResult]
) -> Iterator[dg.MaterializeResult | dg.AssetMaterialization]:
    """`one(context)` for each connection of the step's partitions, one after another (a connection's
    own API limits hold: it is never read twice at once), each connection's metadata on its own
    partition's materialization. A connection that fails leaves the others mirrored: their
    materializations are recorded, then the step fails naming the ones that did not (retried only when
    every failure is transient)."""
    keys = list(context.partition_keys) if context.has_partition_key_range else []
    if len(keys) <= 1:
        yield one(context)
        return
    done: dict[str, dg.MaterializeResult] = {}
    failed: list[tuple[str, BaseException]] = []
    quiet: dict[str, list[str]] = {}
    for key in keys:
        if STOP_READS.is_set():
            failed.append((key, dg.Failure("stopped on request before it started", allow_retries=False)))
            continue
        try:
            done[key] = one(_OneConnection(context, key, quiet))
        except Exception as exc:  # one connection's failure must not cost the batch's others their sync
            context.log.error(f"{context.asset_key.to_user_string()} for {key}: {_one_line(exc)}")
            failed.append((key, exc))
    for kind, items in quiet.items():
        context.log.info(f"{context.asset_key.to_user_string()}: {kind} for {len(items)} connection(s): "
                         + ", ".join(items))  # fmt: skip
    if failed:
        for key, result in done.items():
            yield dg.AssetMaterialization(
                asset_key=context.asset_key, partition=key, metadata=result.metadata
            )
        names = ", ".join(k for k, _ in failed[:5]) + (", ..." if len(failed) > 5 else "")
        retry = any(not isinstance(e, dg.Failure) or e.allow_retries for _, e in failed)
        raise dg.Failure(
            description=f"{len(failed)} of {len(keys)} connection(s) failed ({names}): {_one_line(failed[0][1])}",
            allow_retries=retry,
        )
    _add_partition_metadata(
        context, {key: result.metadata for key, result in done.items() if result.metadata}
    )
    yield dg.MaterializeResult()


def _add_partition_metadata(context: dg.AssetExecutionContext, by_key: dict[str, Mapping]) -> None:
    """Each connection's metadata on its own partition's materialization.

    `context.add_asset_metadata(..., partition_key=)` checks the key against the step's range by reading
    the dynamic partitions from the instance, three reads a call: ~19 ms at 1,000 connections, and a
    batched run makes 650 calls. These keys are the step's own (`context.partition_keys`), so they go to
    the step's metadata directly; if a Dagster upgrade moves it, the public call is used (and
    `test_fleet_batch` fails, to say so)."""
    step = getattr(getattr(context, "op_execution_context", None), "_step_execution_context", None)
    accumulator = getattr(step, "_metadata_accumulator", None)
    if not hasattr(accumulator, "with_additional_asset_metadata"):
        for key, metadata in by_key.items():
            context.add_asset_metadata(dict(metadata), partition_key=key)
        return
    for key, metadata in by_key.items():
        accumulator = accumulator.with_additional_asset_metadata(
            asset_key=context.asset_key, metadata=dict(metadata), partition_key=key
        )
    step._metadata_accumulator = accumulator


def _one_line(exc: BaseException) -> str:
    text = exc.description if isinstance(exc, dg.Failure) and exc.description else str(exc)
    return (text.strip().splitlines() or [type(exc).__name__])[0]


def _not_paired(context, vendor: str) -> dg.MaterializeResult | None:
    """A connection whose books and crm are other vendors: this vendor's asset does nothing for it, and says
    so (lineage stays one graph whatever the pairing)."""
    why = settings.not_paired(context.partition_key, vendor)
    if why is None:
        return None
    if isinstance(context, _OneConnection):
        context.log_quietly(f"nothing to do with {vendor} (paired with other vendors)", "")
    else:
        context.log.info(why)
    return dg.MaterializeResult(metadata={"skipped": why, "api_calls": 0})


class MirrorConfig(dg.Config):
    """Run-time knobs of the extract assets: the daily schedule sets `full_sweep`; the near-real-time
    sensors set `ids` (read exactly these records) and `deleted_ids` (the source announced their deletion)."""

    full_sweep: bool = False
    ids: list[str] = []
    deleted_ids: list[str] = []

    @property
    def targeted(self) -> bool:
        return bool(self.ids or self.deleted_ids)


# Rows written per transaction: big first syncs resume where they stopped, and memory stays bounded (the
# reader fills one chunk while the writer works on another: 10,000 rather than 20,000 took the medium
# organisation's first sync of Xero from 1,257 to 1,025 MB, at ~10% more write time).
CHUNK_ROWS = 10_000


@dataclass(frozen=True)
class ReadPlan:
    full: bool  # read everything (no modified-since filter); records not seen are deleted at the source
    since: datetime | None
    cursor: datetime | None  # the cursor before this run
    reason: str
    completes_sweep: bool = False  # record a full sweep when this read ends (first sync, resumed or not)
    ids: tuple[str, ...] = ()  # a targeted read: exactly these records, cursor left alone
    sweep_started: datetime | None = None  # a full read (maybe resumed): when it began

    @property
    def detects_deletions(self) -> bool:
        """Records that did not land since the full read began are gone at the source."""
        return self.sweep_started is not None


def plan_read(
    cursor: datetime | None,
    last_full: datetime | None,
    *,
    now: datetime,
    sweep_every: timedelta,
    forced: bool,
    sweep: tuple[datetime, datetime | None] | None = None,
    caught_up: datetime | None = None,
) -> ReadPlan:
    """`sweep` is a periodic sweep cut short (when it started, the last modified time it read);
    `caught_up` when a read last reached the end with the cursor as it is."""
    if forced:
        return ReadPlan(True, None, cursor, "full sweep requested", True, sweep_started=now)
    if cursor is None:
        return ReadPlan(True, None, cursor, "first sync", True, sweep_started=now)
    if last_full is None:
        # A first sync stopped midway: its chunks are written and the cursor says how far it got
        # (reads go in modified order), so carry on from there instead of starting over.
        return ReadPlan(False, cursor - CURSOR_OVERLAP, cursor, "resuming the first sync", True)
    if sweep is not None:
        # The same for a sweep: what changed during the pause moved past its position, so reading on from
        # there in modified order still meets every record.
        started, position = sweep
        since = position - CURSOR_OVERLAP if position else None
        reason = f"resuming the full sweep started {started:%Y-%m-%d %H:%M} UTC"
        return ReadPlan(since is None, since, cursor, reason, True, sweep_started=started)
    if sweep_every > timedelta(0) and now - last_full >= sweep_every:
        reason = f"periodic full sweep (every {sweep_every})"
        return ReadPlan(True, None, cursor, reason, True, sweep_started=now)
    if caught_up is not None and caught_up - cursor >= SETTLED:
        return ReadPlan(False, cursor.replace(microsecond=0) + timedelta(seconds=1), cursor, "incremental")
    return ReadPlan(False, cursor - CURSOR_OVERLAP, cursor, "incremental")


@dataclass
class Fetched:
    pages: Iterable[list[dict]]  # read lazily, in modified order, and written chunk by chunk
    deleted: Callable[[], list[tuple[str, dict]]] = lambda: []  # (record id, the source's deletion notice)
    note: str = ""


@dataclass
class _Totals:
    inserted: int = 0
    updated: int = 0
    unchanged: int = 0
    deleted: int = 0
    quarantined: int = 0
    fetched: int = 0
    total_rows: int = 0
    cursor: datetime | None = None
    children: dict = field(default_factory=dict)
    preview: list = field(default_factory=list)

    def add(self, result: MirrorResult, fetched: int) -> None:
        self.inserted += result.counts.inserted
        self.updated += result.counts.updated
        self.unchanged += result.counts.unchanged
        self.deleted += result.counts.deleted
        self.quarantined += result.quarantined
        self.fetched += fetched
        self.total_rows, self.cursor = result.total_rows, result.cursor
        self.preview = self.preview or result.preview
        for name, c in result.child_counts.items():
            acc = self.children.setdefault(name, [0, 0, 0])
            acc[0], acc[1], acc[2] = acc[0] + c.inserted, acc[1] + c.updated, acc[2] + c.deleted


# Limits that come back only the next day: a long read that meets one pauses instead of failing.
DAY_LIMITS = frozenset({"day", "credits"})


class DayBudgetGate:
    """Plans a long read against the day's budget and stops it, between pages, before it eats into the
    reserve that write-back and near-real-time reads need (`settings.day_reserve`).

    The budget is what the vendor's remaining-count headers say, as the client's rate budget estimates it
    (reached through the `CallMeter`); a page is assumed to cost what the pages so far cost. A day limit
    met anyway (another process spent it, or it was spent before our first answer told us) ends the read
    the same way. Reads go in modified order, so the pages read are written and the cursor says where
    the next run resumes.
    """

    def __init__(self, meter: CallMeter) -> None:
        self.meter = meter
        self.start_calls = meter.budget_calls
        self.pages_read = 0
        self.paused = ""  # why the read stopped early; empty when it ran to its end
        self.plan = ""  # "needs ≈N calls, M available", when the API tells the read's size up front
        self.calls_planned: int | None = None
        self.calls_available: int | None = None
        self.left: int | None = None
        self.reserve: int | None = None

    @staticmethod
    def reserve_for(day: DayBudget) -> int:
        nominal = settings.xero_day_limit() if day.vendor == "xero" else 0
        return settings.day_reserve(max(nominal, day.peak))

    def spent(self) -> int:
        return self.meter.budget_calls - self.start_calls

    def per_page(self) -> int:
        return max(1, math.ceil(self.spent() / self.pages_read)) if self.pages_read else 1

    def pages(self, pages: Iterable[list[dict]]) -> Iterator[list[dict]]:
        it = iter(pages)
        while True:
            if self._must_stop():
                return
            try:
                page = next(it)
            except StopIteration:
                return
            except RateLimitExhausted as exc:
                if exc.limit not in DAY_LIMITS:
                    raise
                day = self.meter.day_budget()
                self.left = 0
                self.reserve = self.reserve_for(day) if day else settings.day_reserve(0)
                after = f" (back in about {exc.retry_after:.0f}s)" if exc.retry_after else ""
                self.paused = f"day budget: 0 left{after}, reserve {self.reserve}; resumes next run"
                return
            self.pages_read += 1
            if self.pages_read == 1:
                self._make_plan()
            yield page

    def _last_page_read(self) -> bool:
        """The API said the page just read was the last: what follows costs no list call."""
        p = self.meter.paging
        if p is None or not self.pages_read:
            return False
        if p.page is not None and p.page_count is not None:
            return p.page >= p.page_count
        return p.more is False

    def _must_stop(self) -> bool:
        if self._last_page_read():
            return False
        day = self.meter.day_budget()
        if day is None:
            return False  # not told yet: the first answer will say
        self.left, self.reserve = day.remaining, self.reserve_for(day)
        if day.remaining - self.reserve >= self.per_page():
            return False
        self.paused = f"day budget: {day.remaining} left, reserve {self.reserve}; resumes next run"
        return True

    def _make_plan(self) -> None:
        day, p = self.meter.day_budget(), self.meter.paging
        if day is None:
            return
        reserve = self.reserve_for(day)
        self.calls_available = max(0, day.remaining + self.spent() - reserve)
        if p is None or p.page_count is None:
            return
        self.calls_planned = p.page_count * self.per_page()
        self.plan = f"needs ≈{self.calls_planned} calls, {self.calls_available} available"
        if self.calls_planned > self.calls_available:
            self.plan += " (pauses at the reserve and resumes next run)"


@dataclass
class ReadTiming:
    waited: float = 0.0  # seconds the writer waited for pages (the API, or our own reading of it)
    written: float = 0.0  # seconds spent writing chunks
    held: float = 0.0  # seconds the reader, ahead by `depth` chunks, waited for the writer


_END = object()


def _read_ahead(
    pages: Iterable[list[dict]], size: int, timing: ReadTiming, depth: int
) -> Iterator[list[dict]]:
    """Chunks of at least `size` rows (the last possibly empty), read by a thread while the caller writes
    the previous one, at most `depth` chunks ahead. Pages read before an error are still delivered, then
    the error is raised here: a failed read leaves its pages written and its cursor resumable."""
    chunks: queue.Queue = queue.Queue(maxsize=max(1, depth))
    stop = threading.Event()

    def put(item) -> bool:
        started = time.monotonic()
        try:
            while not stop.is_set():
                try:
                    chunks.put(item, timeout=0.2)
                    return True
                except queue.Full:
                    continue
            return False
        finally:
            timing.held += time.monotonic() - started

    def produce() -> None:
        buffer: list[dict] = []
        try:
            for page in pages:
                if stop.is_set():
                    return
                buffer.extend(page)
                if len(buffer) >= size:
                    if not put((buffer, None)):
                        return
                    buffer = []
        except BaseException as exc:  # handed to the caller, after the pages read so far
            if buffer:
                put((buffer, None))
            put((_END, exc))
            return
        if put((buffer, None)):
            put((_END, None))

    reader = threading.Thread(target=produce, name="xz-read-ahead", daemon=True)
    reader.start()
    try:
        while True:
            started = time.monotonic()
            item, error = chunks.get()
            timing.waited += time.monotonic() - started
            if item is _END:
                if error is not None:
                    raise error
                return
            yield item
    finally:
        stop.set()
        reader.join(timeout=60)


# Chunks read ahead while one is written: the API and DuckDB work at the same time; memory stays bounded.
READ_AHEAD = 1


def run_extract(
    context: dg.AssetExecutionContext,
    spec: EntityTable,
    mirror: MirrorResource,
    config: MirrorConfig,
    meter: CallMeter,
    fetch: Callable[[ReadPlan], Fetched],
    *,
    always_full: bool = False,
) -> dg.MaterializeResult:
    """Plan, fetch, write chunk by chunk; the MaterializeResult says rows inserted/updated/deleted and
    API calls spent."""
    with mirror.step_session(context, context.partition_key):
        return _run_extract(
            context, spec, mirror.store(context.partition_key), config, meter, fetch, always_full
        )


def _run_extract(context, spec, store, config, meter, fetch, always_full) -> dg.MaterializeResult:
    connection = context.partition_key
    state = read_state(store, connection, spec.vendor, spec.entity)
    if config.targeted:
        plan = ReadPlan(
            False, None, state.cursor, f"targeted: {len(config.ids)} id(s)", ids=tuple(config.ids)
        )
    else:
        plan = plan_read(
            state.cursor,
            state.last_full,
            now=datetime.now(UTC),
            sweep_every=timedelta(hours=settings.full_sweep_hours()),
            forced=config.full_sweep or always_full,
            sweep=state.sweep,
            caught_up=state.caught_up,
        )
    fetched = fetch(plan) if plan.ids or not config.targeted else Fetched([])
    if config.deleted_ids:
        announced = [(i, {"id": i, "announced": "deleted"}) for i in config.deleted_ids]
        fetched.deleted = lambda: announced
    # Targeted reads (a webhook's records) may spend the reserve: that is what it is kept for.
    gate = None if config.targeted else DayBudgetGate(meter)
    pages = gate.pages(fetched.pages) if gate else fetched.pages
    totals, timing, planned, stopped = _Totals(cursor=state.cursor), ReadTiming(), False, False
    position = plan.since + CURSOR_OVERLAP if plan.sweep_started and plan.since else None
    for chunk in _read_ahead(pages, CHUNK_ROWS, timing, READ_AHEAD):
        if not chunk and not plan.completes_sweep and state.cursor is not None:
            continue  # an idle read: nothing to land, the cursor stays (its tables exist: it has a cursor)
        started = time.monotonic()
        result = write_entity(
            store,
            spec,
            connection=connection,
            payloads=chunk,
            fetched_at=datetime.now(UTC),
            run_id=context.run_id,
            advance_cursor=not config.targeted,
        )
        timing.written += time.monotonic() - started
        totals.add(result, len(chunk))
        position = max(filter(None, (position, result.latest)), default=None)
        if gate and gate.plan and not planned:
            planned = True
            context.log.info(f"{spec.vendor} {spec.entity} for {connection}: {plan.reason} {gate.plan}")
        if STOP_READS.is_set() and not config.targeted:
            stopped = True
            break
    paused = (gate.paused if gate else "") or ("stopped on request; resumes next run" if stopped else "")
    now = datetime.now(UTC)
    if plan.completes_sweep and not paused:
        totals.deleted += finish_full_sweep(
            store, spec, connection=connection, started=plan.sweep_started or now, fetched_at=now,
            detect_deletions=plan.detects_deletions,
        )  # fmt: skip
    if not config.targeted and not paused:
        record_caught_up(store, spec, connection=connection, at=now)
    if plan.sweep_started and paused:
        # A read cut short saw only part of the entity: records it did not reach are not gone, and the
        # sweep is not done. The next run carries on from where this one stopped (a first sync does the
        # same from its cursor).
        record_sweep_progress(
            store, spec, connection=connection, started=plan.sweep_started, position=position
        )
    try:
        deleted = fetched.deleted()
    except RateLimitExhausted as exc:
        if exc.limit not in DAY_LIMITS or not paused:
            raise
        deleted = []  # a later run's deletion probe or the next full sweep reflects them
    totals.deleted += delete_records(
        store, spec, connection=connection, deleted=deleted, fetched_at=now, run_id=context.run_id
    )
    calls = meter.snapshot()
    budget = _budget_metadata(gate, meter)
    changed = totals.inserted or totals.updated or totals.deleted or totals.quarantined
    if isinstance(context, _OneConnection) and not (changed or fetched.note or paused):
        context.log_quietly(f"{plan.reason}, nothing new", f"{calls['calls']} api calls")
    else:
        context.log.info(
            f"{spec.vendor} {spec.entity} for {connection}: {plan.reason}, fetched {totals.fetched}, "
            f"inserted {totals.inserted}, updated {totals.updated}, deleted {totals.deleted}, "
            f"api calls {calls['calls']}{fetched.note}" + (f"; paused: {paused}" if paused else "")
        )
    meta = _metadata(store, spec, connection, totals, plan, fetched.note, calls)
    meta.update(budget)
    if paused:
        meta.setdefault("paused", paused)  # a stop request's, when no budget paused it
    meta["read_wait_seconds"] = round(timing.waited, 3)
    meta["write_seconds"] = round(timing.written, 3)
    meta["reader_held_seconds"] = round(timing.held, 3)
    return dg.MaterializeResult(metadata=meta)


def _budget_metadata(gate: DayBudgetGate | None, meter: CallMeter) -> dict:
    """The day budget as the run leaves it, and when a read paused, why and what it had planned."""
    out: dict = {}
    day = meter.day_budget()
    if day is not None:
        out["day_budget_left"] = day.remaining
    if gate is None:
        return out
    if gate.plan:
        out["budget_plan"] = gate.plan
    if gate.calls_planned is not None:
        out["calls_planned"] = gate.calls_planned
    if gate.calls_available is not None:
        out["calls_available"] = gate.calls_available
    if gate.paused:
        out["paused"] = gate.paused
        out["calls_left"] = gate.left if gate.left is not None else (day.remaining if day else 0)
        out["day_reserve"] = gate.reserve
    return out


def _metadata(
    store, spec: EntityTable, connection: str, t: _Totals, plan: ReadPlan, note: str, calls: dict
) -> dict:
    with store.read() as con:
        rows = con.execute(
            f"select count(*) from {spec.schema}.{spec.table} where connection = ?", [connection]
        ).fetchall()[0][0]
    meta = {
        "dagster/row_count": rows,
        "mode": plan.reason,
        "fetched": t.fetched,
        "inserted": t.inserted,
        "updated": t.updated,
        "deleted": t.deleted,
        "unchanged": t.unchanged,
        "quarantined": t.quarantined,
        "api_calls": calls["calls"],
        "api_seconds": calls["seconds"],
        "api_retries": calls["retries"],
        "api_throttled": calls["throttled"],
        "cursor": t.cursor.isoformat() if t.cursor else "",
    }
    if note:
        meta["note"] = note.strip(" ;")
    if t.preview:
        meta["preview"] = dg.MetadataValue.md(pd.DataFrame(t.preview).to_markdown(index=False))
    for child, (ins, upd, dele) in t.children.items():
        meta[f"{child} inserted/updated/deleted"] = f"{ins}/{upd}/{dele}"
    return meta
