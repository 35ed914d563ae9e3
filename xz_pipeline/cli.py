"""The `xz` command: demo, sandbox, sync, dev and the rest (docs/architecture.md, "The xz command")."""

from __future__ import annotations

import argparse
import contextlib
import logging
import logging.handlers
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
import traceback
from collections import Counter
from pathlib import Path

from xz_pipeline import settings
from xz_pipeline.sandbox.profiles import PROFILE_NAMES

VENDOR_NAMES = {"xero": "Xero", "quickbooks": "QuickBooks", "zoho": "Zoho", "salesforce": "Salesforce"}
DEMO_CONNECTION = "sandbox"
CONNECTION_HELP = (
    "only this connection: its name in $XZ_HOME/connections.toml, or the XZ_CONNECTION name of the one the "
    "environment configures (default: every configured connection)"
)
ONE_CONNECTION_HELP = "default: XZ_CONNECTION, else 'default'"


# A report reads each connection's file after its runs: a writer still on one (a sensor's run) is waited
# for this long, then the report says the mirror is busy instead of showing its tables.
REPORT_READ_WAIT = 5.0


def _report_stores() -> list:
    from xz_pipeline.core.store import Store

    return [
        Store(settings.mirror_path(n), lock_timeout=REPORT_READ_WAIT) for n in settings.mirror_connections()
    ]


def _use_sandbox_env(sb, connection: str = DEMO_CONNECTION) -> None:
    """Point this process (and its children) at the sandbox's connection 0."""
    os.environ.update(sb.env(0))
    os.environ["XZ_CONNECTION"] = connection


def cmd_demo(args: argparse.Namespace) -> int:
    """Sandbox on free loopback ports, every asset materialised once, a report; exit 0 when all ran."""
    from xz_pipeline import report, runner
    from xz_pipeline.sandbox.server import SandboxServer

    home = settings.xz_home() / "demo"
    shutil.rmtree(home, ignore_errors=True)  # a demo starts from nothing: new sandbox, new tokens, new mirror
    home.mkdir(parents=True)
    os.environ["XZ_HOME"] = str(home)
    started = time.monotonic()
    print(
        f"xz demo: generating the '{args.size}' world (seed {args.seed}) and starting the sandbox...",
        flush=True,
    )
    pair = {"books": args.books, **({"crm": args.crm} if args.crm != "zoho" else {})}
    with SandboxServer(seed=args.seed, size=args.size, profile=args.profile, **pair) as sb:
        books_label = f"{VENDOR_NAMES[args.books]} emulator"
        crm_label = f"{VENDOR_NAMES[args.crm]} emulator"
        books_url = sb.quickbooks_url if args.books == "quickbooks" else sb.xero_url
        crm_url = sb.salesforce_url if args.crm == "salesforce" else sb.zoho_url
        print(f"  {books_label} {books_url}   {crm_label} {crm_url}", flush=True)
        _use_sandbox_env(sb)
        inst = runner.instance(home)
        stop = runner.StopRequest()
        from xz_pipeline.progress import RunProgress

        with _stop_on_signals(stop, "xz demo"), RunProgress() as progress:  # a bar per run on a terminal only
            # Cycle 1: mirror, reconcile, write the corrections (default policies); cycle 2 sees the fixes.
            # The sandbox is the demo's own: it approves its plans past the mass-change guard, and says so.
            cycle = {
                "inst": inst,
                "apply": True,
                "approve": True,
                "kind": "demo",
                "stop": stop,
                "progress": progress,
            }
            first = runner.sync([DEMO_CONNECTION], **cycle)
            if not _stopped_code(stop):
                print(
                    "  cycle 1 done (mirror, reconcile, write-back, reconcile again); cycle 2 mirrors the "
                    "corrected systems and writes what is left",
                    flush=True,
                )
                second = runner.sync([DEMO_CONNECTION], **cycle)
        if _stopped_code(stop):
            _say(f"xz demo: stopped by {stop.reason} after the step in progress; what it did is in {home}")
            return _stopped_code(stop)
        outcomes = [*first, *second]
        for line in sorted({r for o in outcomes for r in o.approved_past}):
            # The demo's own sandbox: its first plan may be larger than a person should take unseen.
            print(f"  approved past the mass-change guard (a real organisation's plan waits for "
                  f"`xz sync --apply --approve`): {line}", flush=True)  # fmt: skip
        received = Counter(
            {books_label: len(sb.books_emulator.received), crm_label: len(sb.crm_emulator.received)}
        )
        from xz_pipeline.sandbox.world.generate import pair_exclusions

        cannot = {kind for kind, pairs in pair_exclusions().items() if f"{args.books}+{args.crm}" in pairs}
        injected = Counter((DEMO_CONNECTION, i.kind) for i in sb.worlds[0].manifest if i.kind not in cannot)
        manifest_path = home / "manifest.json"
        from xz_pipeline.sandbox.world import write_manifest

        write_manifest(sb.worlds[0], manifest_path, sb.id_maps(0))
    print()
    print(
        report.render(
            outcomes,
            _report_stores(),
            extra={"Requests the sandbox received": received},
            discrepancies={
                "injected": injected,
                "found": report.found_by_connection(_report_stores()),
            },
        )
    )
    print(f"\nGround truth of the injected disagreements: {manifest_path}")
    print(f"Done in {time.monotonic() - started:.1f}s. State: {home}")
    return 0 if outcomes and all(o.success for o in report.all_runs(outcomes)) else 1


def cmd_sync(args: argparse.Namespace) -> int:
    """Materialise the assets in process for every configured connection (cron, checks).

    Exit 0 when every run succeeded; 1 with one line per failed asset; 2 for a configuration error;
    75 when another sync held the XZ_HOME past `--wait`; 143/130 when stopped by SIGTERM/SIGINT."""
    from xz_pipeline import report, runner
    from xz_pipeline.progress import RunProgress

    names = settings.require_connections([args.connection]) if args.connection else None
    stop = runner.StopRequest()
    with _stop_on_signals(stop, "xz sync"), RunProgress() as progress:  # a bar on a terminal only
        try:
            outcomes = runner.sync(
                names,
                only=args.only,
                apply=args.apply,
                approve=args.approve,
                stop=stop,
                wait=args.wait,
                on_wait=lambda message: _say(f"xz sync: {message}"),
                progress=progress,
            )
        except runner.SyncBusy as exc:
            _say(f"xz sync: {exc}")
            return _stopped_code(stop) or EXIT_BUSY
    print(report.render(outcomes, _report_stores()))
    outcomes = report.all_runs(outcomes)  # the reconciliation after write-back fails or succeeds like a run
    for o in outcomes:
        label = f"{o.connection}: " if len(outcomes) > 1 else ""
        for step, line in o.failures:
            _say(f"xz sync: {label}{step}: {line}")
        if getattr(args, "verbose", False):
            for detail in o.details:
                _say(detail)
        if o.skipped and o.failures:
            _say(f"xz sync: {label}{len(o.skipped)} step(s) not run because a step they need failed")
    code = _stopped_code(stop)
    if code:
        _say(
            f"xz sync: stopped by {stop.reason} after the step in progress; the next sync resumes from there"
        )
        return code
    failed = [o for o in outcomes if not o.success]
    if failed and not any(o.failures for o in failed):
        for o in failed:
            _say(f"xz sync: connection {o.connection} failed: {o.error} (details in {runner.log_path()})")
    return 1 if failed else 0


EXIT_BUSY = 75  # EX_TEMPFAIL: another sync held this XZ_HOME past --wait; try again later


def _say(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


def _stopped_code(stop) -> int:
    """128 + the signal's number once a stop was requested by one (143 SIGTERM, 130 SIGINT), else 0."""
    return 128 + int(getattr(signal, stop.reason)) if stop.is_set() and stop.reason.startswith("SIG") else 0


@contextlib.contextmanager
def _stop_on_signals(stop, prog: str):
    """SIGTERM and SIGINT ask the run to stop at the next step boundary (a second one stops at once)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum, _frame):
        name = signal.Signals(signum).name
        if stop.is_set():
            raise KeyboardInterrupt(name)
        stop.set(name)
        _say(f"{prog}: {name} received: stopping after the step in progress (again to stop at once)")

    previous = {sig: signal.signal(sig, handler) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        yield
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)


def _connection_name(args: argparse.Namespace) -> str:
    """The connection a single-connection command works on; a name that is not configured is refused."""
    name = args.connection or os.environ.get("XZ_CONNECTION") or settings.DEFAULT_CONNECTION
    settings.require_connections([name])
    return name


def cmd_auth(args: argparse.Namespace) -> int:
    """The consent flow for a real organisation: open the URL, approve, tokens land in the token store."""
    import webbrowser

    from xz_pipeline import consent

    def open_url(url: str) -> None:
        print(
            f"Open this URL to connect {args.vendor} (waiting for {consent.redirect_uri()}):\n{url}",
            flush=True,
        )
        if not args.no_browser:
            webbrowser.open(url)

    connection = _connection_name(args)
    try:
        if args.vendor == "xero":
            tenants = consent.authorize_xero(connection, open_url, timeout=args.timeout)
            names = ", ".join(f"{t.get('tenantName')} ({t.get('tenantId')})" for t in tenants)
            print(f"xz auth: Xero connected for {connection}: {names}")
        elif args.vendor == "quickbooks":
            realm = _authorize_quickbooks(connection, open_url, args.timeout)
            print(f"xz auth: QuickBooks Online company {realm} connected for {connection}")
        elif args.vendor == "salesforce":
            consent.authorize_salesforce(connection, open_url, timeout=args.timeout)
            print(f"xz auth: Salesforce org connected for {connection}")
        else:
            consent.authorize_zoho(connection, open_url, timeout=args.timeout)
            print(f"xz auth: Zoho CRM connected for {connection}")
    except (settings.SettingsError, TimeoutError) as exc:
        print(f"xz auth: {exc}", file=sys.stderr)
        return 2
    return 0


def _authorize_quickbooks(connection: str, open_url, timeout: float) -> str:
    """Consent for a QuickBooks Online company: the callback's code and realmId; tokens to the token store."""
    from xz_pipeline import consent
    from xz_pipeline.core.oauth import TokenStore
    from xz_pipeline.quickbooks.client import complete_consent, consent_request
    from xz_pipeline.quickbooks.resources import qbo_settings

    qs, uri = qbo_settings(connection), consent.redirect_uri()
    request = consent_request(qs.auth_url, client_id=qs.client_id, redirect_uri=uri)
    with consent.CallbackReceiver(uri) as receiver:
        open_url(request.url)
        params = receiver.wait(timeout)
    _, realm = complete_consent(
        token_url=qs.token_url, client_id=qs.client_id, client_secret=qs.client_secret, request=request,
        params=params, redirect_uri=uri, token_store=TokenStore(settings.xz_home() / "tokens"), connection=connection,
    )  # fmt: skip
    return realm


def cmd_setup(args: argparse.Namespace) -> int:
    """Create the custom fields the integration needs in the Zoho org (idempotent)."""
    from datetime import timedelta

    if args.vendor == "salesforce":
        return _setup_salesforce(args)

    from xz_pipeline.core.store import Store
    from xz_pipeline.zoho import fieldmap
    from xz_pipeline.zoho import schema as zoho_schema
    from xz_pipeline.zoho.resources import ZohoResource
    from xz_pipeline.zoho.setup import setup_connection

    connection = _connection_name(args)
    store = Store(settings.mirror_path(connection))
    with ZohoResource().client(connection) as client:
        result = setup_connection(client, connection)
        if store.path.exists():  # read the org again now, so the next run uses the fields just created
            zoho_schema.ensure(client, store, connection, fieldmap.load(connection), max_age=timedelta(0))
    print(f"xz setup zoho: {len(result)} field(s) created" + (f": {', '.join(result)}" if result else ""))
    for policy, why in sorted(result.skipped.items()):
        print(f"xz setup zoho: policy {policy} skipped: {why}")
    return 0


def _setup_salesforce(args: argparse.Namespace) -> int:
    """Create the integration's custom fields in the Salesforce org through the Tooling API (idempotent)."""
    from datetime import timedelta

    from xz_pipeline.core.store import Store
    from xz_pipeline.salesforce import fieldmap as sf_fieldmap
    from xz_pipeline.salesforce import schema as sf_schema
    from xz_pipeline.salesforce.resources import SalesforceResource
    from xz_pipeline.salesforce.setup import setup_connection as sf_setup

    connection = _connection_name(args)
    store = Store(settings.mirror_path(connection))
    with SalesforceResource().client(connection) as client:
        result = sf_setup(client, sf_fieldmap.load(connection))
        if store.path.exists():  # describe the org again now, so the next run reads the fields just created
            sf_schema.ensure(client, store, connection, sf_fieldmap.load(connection), max_age=timedelta(0))
    print(f"xz setup salesforce: {len(result.created)} field(s) created"
          + (f": {', '.join(result.created)}" if result.created else "")
          + (f"; {len(result.present)} already there" if result.present else ""))  # fmt: skip
    for ours, theirs in sorted(result.mapped.items()):
        print(f"xz setup salesforce: {ours} is mapped to the org's {theirs}: not created")
    if result.invisible:
        print(f"xz setup salesforce: not visible to the API user yet: {', '.join(result.invisible)} — grant "
              "field-level security (a permission set) to the integration user, then run xz setup salesforce again")  # fmt: skip
    return 0


def cmd_status(args: argparse.Namespace) -> int:
    """Connections, token freshness (never the tokens), cursors and last full sweeps, quarantine."""
    from tabulate import tabulate

    from xz_pipeline.core.oauth import TokenStore
    from xz_pipeline.core.store import Store

    try:
        connections = settings.load_connections()
    except settings.SettingsError as exc:
        print(f"xz status: {exc}", file=sys.stderr)
        return 2
    tokens = TokenStore(settings.xz_home() / "tokens")
    rows = []
    for c in connections:
        for vendor, configured in ((v, getattr(c, v)) for v in VENDOR_NAMES):
            if configured is None:
                continue
            stored = tokens.load(c.name, vendor)
            state = (
                "no token yet (bootstrap from the environment)"
                if stored is None
                else (f"access token until {stored.expires_at:%Y-%m-%d %H:%M} UTC")
            )
            rows.append((c.name, vendor, state))
    print(tabulate(rows, headers=["connection", "system", "tokens"]) if rows else "no connection configured")
    stores = {name: Store(settings.mirror_path(name)) for name in settings.mirror_connections()}
    if not stores:
        print(f"\nno mirror yet in {settings.mirror_dir()}")
        return 0
    cursors, quarantined = [], []
    for store in stores.values():
        with store.read() as con:
            cursors += con.execute(
                "select connection, vendor, entity, cursor_value, last_full_sweep from meta.cursors order by 1, 2, 3"
            ).fetchall()
            quarantined += con.execute(
                "select connection, entity, rule, count(*) from meta.quarantine "
                + (
                    "where resolved_at is null "
                    if _has_column(con, "meta", "quarantine", "resolved_at")
                    else ""
                )
                + "group by all order by 1, 2, 3"
            ).fetchall()
    print()
    print(tabulate(cursors, headers=["connection", "system", "entity", "cursor", "last full sweep"]))
    from xz_pipeline.salesforce.schema import status_lines as salesforce_lines
    from xz_pipeline.zoho.schema import status_lines

    schema_lines = [
        line
        for c in connections
        if c.name in stores
        for line in [
            *(status_lines(stores[c.name], [c.name]) if c.zoho is not None else []),
            *(salesforce_lines(stores[c.name], [c.name]) if c.salesforce is not None else []),
        ]
    ]
    if schema_lines:
        print("\nWhat each CRM org offers")
        print("\n".join(schema_lines))
    if quarantined:
        print("\nQuarantined (open)")
        print(tabulate(quarantined, headers=["connection", "entity", "rule", "records"]))
    return 0


def _has_column(con, schema: str, table: str, column: str) -> bool:
    return bool(
        con.execute(
            "select count(*) from duckdb_columns() where schema_name = ? and table_name = ? and column_name = ?",
            [schema, table, column],
        ).fetchall()[0][0]
    )


def cmd_migrate(args: argparse.Namespace) -> int:
    """Split the single-file mirror of an earlier version into one file per connection (idempotent)."""
    from xz_pipeline import migrate

    for line in migrate.migrate().lines():
        print(line)
    return 0


def cmd_doctor(args: argparse.Namespace) -> int:
    """One line per check and connection (ok or PROBLEM, and what to do); exit 1 when one would stop a sync,
    2 when the configuration is missing."""
    from xz_pipeline import doctor

    checks = doctor.run([args.connection] if args.connection else None)
    for check in checks:
        print(check.line(), flush=True)
    code = doctor.exit_code(checks)
    if code:
        _say(f"xz doctor: {sum(1 for c in checks if c.blocking and not c.ok)} problem(s) would stop a sync")
    return code


def cmd_review(args: argparse.Namespace) -> int:
    """The review queue: list links waiting for a person, or record an accept/reject that later runs honour."""
    import getpass

    import pandas as pd
    from tabulate import tabulate

    from xz_pipeline.core.store import Store
    from xz_pipeline.reconcile import review

    if args.connection:
        settings.require_connections([args.connection])
    if args.action == "list":
        names = [args.connection] if args.connection else settings.mirror_connections()
        found = [review.pending(Store(settings.mirror_path(name)), args.connection) for name in names]
        found = [frame for frame in found if not frame.empty]
        if not found:
            print("xz review: nothing waiting for a decision")
            return 0
        waiting = pd.concat(found, ignore_index=True).sort_values(
            "confidence", ascending=False, kind="stable"
        )
        columns = ["connection", "books_id", "books_name", "crm_id", "crm_name", "confidence", "evidence"]
        print(tabulate(waiting[columns].itertuples(index=False), headers=columns))
        print("\nDecide with: xz review accept|reject CONNECTION BOOKS_ID CRM_ID")
        return 0
    if len(args.target) != 3:
        print("xz review: accept and reject take CONNECTION BOOKS_ID CRM_ID", file=sys.stderr)
        return 2
    settings.require_connections([args.target[0]])
    store = Store(settings.mirror_path(args.target[0]))
    if not _has_canonical(store):
        print(
            f"xz review: no mirror to check the ids against at {store.path}: run `xz sync` first",
            file=sys.stderr,
        )
        return 2
    try:
        review.decide(store, *args.target, args.action, by=args.by or getpass.getuser())
    except (ValueError, KeyError) as exc:
        print(f"xz review: {exc}", file=sys.stderr)
        return 2
    print(
        f"xz review: {args.action}ed {args.target[1]} <-> {args.target[2]}; the next reconciliation honours it"
    )
    return 0


def _has_canonical(store) -> bool:
    """Whether the mirror exists and has the canonical views the review checks ids against."""
    if not store.path.exists():
        return False
    with store.read() as con:
        return bool(
            con.execute(
                "select count(*) from duckdb_views() where schema_name = 'canonical' "
                "and view_name in ('books_customers', 'crm_accounts')"
            ).fetchall()[0][0]
            == 2
        )


def _connections(args: argparse.Namespace) -> list[str]:
    """`--connection` (refused when not configured), else every configured connection."""
    if args.connection:
        return settings.require_connections([args.connection])
    return [c.name for c in settings.load_connections()]


def cmd_plan(args: argparse.Namespace) -> int:
    """The write-back plan of each connection, computed from the mirror; nothing is sent. Sorted and grouped
    per record; `--all` for every row of the table, `--format csv|json` for every row and column."""
    from xz_pipeline import plan_report
    from xz_pipeline.core.store import Store
    from xz_pipeline.definitions import defs
    from xz_pipeline.writeback.assets import plan_connection

    names = _connections(args)
    rows = []
    for connection in names:
        store = Store(settings.mirror_path(connection))
        plan_connection(store, connection, resources=defs.resources)  # (re)computes writeback.plan
        rows += plan_report.plan_rows(store, [connection])
    if args.format == "json":
        print(plan_report.as_json(rows))
    elif args.format == "csv":
        print(plan_report.as_csv(rows), end="")
    else:
        limit = None if args.all else plan_report.DEFAULT_LIMIT
        print("\n\n".join(
            plan_report.as_table([r for r in rows if r["connection"] == c], c, limit) for c in names
        ))  # fmt: skip
    return 0


def cmd_apply(args: argparse.Namespace) -> int:
    """Plan again, then apply through the connectors, guards first; every call goes to the ledger."""
    from xz_pipeline.core.store import Store
    from xz_pipeline.definitions import defs
    from xz_pipeline.writeback.assets import apply_connection

    failed = False
    for connection in _connections(args):
        store = Store(settings.mirror_path(connection))
        report = apply_connection(
            store, connection, defs.resources, approve=args.approve, retry_rejected=args.retry_rejected
        )
        print(report.summary())
        for error in report.errors[:20]:
            print(f"  {error}")
        failed = failed or bool(report.blocked)
    return 1 if failed else 0


def cmd_webhooks(args: argparse.Namespace) -> int:
    from xz_pipeline.realtime import receiver

    if args.connection:
        settings.require_connections([args.connection])

    return receiver.run(args)


def cmd_sandbox(args: argparse.Namespace) -> int:
    from xz_pipeline.sandbox import server

    return server.run(args)


def _default_signals() -> None:
    """Children start with default SIGINT/SIGTERM handling, or `dagster dev` ignores both (notes/dagster.md §3d)."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)


def cmd_dev(args: argparse.Namespace) -> int:
    """Sandbox + `dagster dev`; Ctrl-C or SIGTERM stops both cleanly."""
    import dagster as dg

    from xz_pipeline import runner
    from xz_pipeline.core.resources import connections_partitions
    from xz_pipeline.sandbox.server import SandboxServer

    home = settings.xz_home()
    dagster_home = home / "dagster"
    dagster_home.mkdir(parents=True, exist_ok=True)
    repo = Path(__file__).resolve().parents[1]
    shutil.copy(runner.INSTANCE_YAML, dagster_home / "dagster.yaml")
    os.environ["DAGSTER_HOME"] = str(dagster_home)
    stop = {"now": False}

    def _stop(signum, frame):  # noqa: ARG001
        stop["now"] = True

    from xz_pipeline.realtime.receiver import serve_in_thread

    # The sandbox delivers webhooks and notifications every second to the receiver this process serves.
    with SandboxServer(seed=args.seed, size=args.size, profile=args.profile, deliver_every=1.0) as sb:
        (home / "tokens").mkdir(parents=True, exist_ok=True)
        for stale in (home / "tokens").glob(f"{DEMO_CONNECTION}-*"):
            stale.unlink()  # a new sandbox issues new tokens
        _use_sandbox_env(sb)
        receiver_url, stop_receiver = serve_in_thread("127.0.0.1", args.webhook_port)
        os.environ["XZ_PUBLIC_URL"] = receiver_url  # where the Zoho channel manager points notifications
        sb.xero.set_webhook(f"{receiver_url}/webhooks/xero", os.environ["XERO_WEBHOOK_KEY"])
        with dg.DagsterInstance.get() as inst:
            inst.add_dynamic_partitions(connections_partitions.name, [DEMO_CONNECTION])
        print(f"xz dev: webhook receiver {receiver_url}", flush=True)
        print(f"xz dev: Xero emulator {sb.xero_url}, Zoho emulator {sb.zoho_url}", flush=True)
        cmd = [
            sys.executable,
            "-m",
            "dagster",
            "dev",
            "-w",
            str(repo / "workspace.yaml"),
            "-p",
            str(args.port),
        ]
        # From DAGSTER_HOME: `dagster dev` warns that a dagster.yaml in its working folder (the repository's)
        # "will not be used"; the instance is configured by the copy in DAGSTER_HOME.
        # `dagster dev` says it is superseded by `dg dev` (not a dependency of ours): not worth a warning here.
        env = {**os.environ, "PYTHONWARNINGS": "ignore:Function `dev_command` is superseded"}
        # In a process group of its own (same session), so what it leaves behind is stopped with it.
        child = subprocess.Popen(cmd, cwd=dagster_home, env=env, preexec_fn=_default_signals, process_group=0)
        signal.signal(signal.SIGINT, _stop)
        signal.signal(signal.SIGTERM, _stop)
        try:
            while child.poll() is None and not stop["now"]:
                time.sleep(0.2)
        finally:
            if child.poll() is None:
                child.terminate()
                try:
                    child.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    child.kill()
            _stop_group(child.pid)
            stop_receiver()
    return 0


def _stop_group(pgid: int, grace: float = 10.0) -> None:
    """After `dagster dev` ended: its code server otherwise waits out its 45 s heartbeat, and a run worker
    may still be going. SIGTERM to what is left of its process group, SIGKILL after `grace` seconds."""
    deadline = time.monotonic() + grace
    sig = signal.SIGTERM
    while True:
        try:
            os.killpg(pgid, sig)
        except (ProcessLookupError, PermissionError):
            return  # nothing left
        if time.monotonic() > deadline + 5:
            return  # unkillable (uninterruptible sleep): not ours to wait for any longer
        if time.monotonic() > deadline:
            sig = signal.SIGKILL
        time.sleep(0.2)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="xz", description="xz-pipeline: Xero and Zoho CRM kept in agreement."
    )
    parser.add_argument(
        "-v", "--verbose", action="store_true", help="tracebacks and log lines on the terminal"
    )
    # Accepted after the command too (`xz sync --verbose`); SUPPRESS keeps a missing one from resetting it.
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "-v", "--verbose", action="store_true", default=argparse.SUPPRESS, help=argparse.SUPPRESS
    )
    sub = parser.add_subparsers(dest="command", required=True)
    add_parser = sub.add_parser
    sub.add_parser = lambda *a, **kw: add_parser(*a, parents=[common, *kw.pop("parents", [])], **kw)

    demo = sub.add_parser("demo", help="run the whole pipeline once against the sandbox and print a report")
    demo.add_argument("--seed", type=int, default=7)
    demo.add_argument("--size", default="demo", choices=["tiny", "demo", "medium", "large"])
    demo.add_argument(
        "--profile", default="full", choices=PROFILE_NAMES, help="organisation profile (docs/sandbox.md)"
    )
    demo.add_argument(
        "--books", default="xero", choices=["xero", "quickbooks"], help="the books system the sandbox plays"
    )
    demo.add_argument(
        "--crm", default="zoho", choices=["zoho", "salesforce"], help="the CRM the sandbox plays"
    )
    demo.set_defaults(func=cmd_demo)

    sync = sub.add_parser("sync", help="materialise the assets in process for the configured connections")
    sync.add_argument("--connection", help=CONNECTION_HELP)
    sync.add_argument("--only", choices=["mirror", "reconcile", "writeback"], help="only this stage")
    sync.add_argument("--apply", action="store_true", help="let write-back write to Xero and Zoho")
    sync.add_argument("--approve", action="store_true", help="let a plan past the mass-change guard")
    sync.add_argument(
        "--wait",
        type=float,
        default=180.0,
        metavar="SECONDS",
        help="how long to wait for another sync on this XZ_HOME (default 180), then exit 75",
    )
    sync.set_defaults(func=cmd_sync)

    from xz_pipeline.sandbox import server

    sandbox = sub.add_parser("sandbox", help="serve the Xero and Zoho emulators on loopback until stopped")
    server.add_arguments(sandbox)
    sandbox.set_defaults(func=cmd_sandbox)

    auth = sub.add_parser("auth", help="connect a real organisation (OAuth consent with a loopback redirect)")
    auth.add_argument("vendor", choices=["xero", "quickbooks", "zoho", "salesforce"])
    auth.add_argument("--connection", help="the connection to store the tokens for; " + ONE_CONNECTION_HELP)
    auth.add_argument("--no-browser", action="store_true", help="print the URL only")
    auth.add_argument("--timeout", type=float, default=300.0)
    auth.set_defaults(func=cmd_auth)

    setup = sub.add_parser("setup", help="create the CRM custom fields the integration uses (idempotent)")
    setup.add_argument("vendor", choices=["zoho", "salesforce"])
    setup.add_argument("--connection", help="the connection whose CRM org to set up; " + ONE_CONNECTION_HELP)
    setup.set_defaults(func=cmd_setup)

    rev = sub.add_parser("review", help="customer links waiting for a decision; accept or reject them")
    rev.add_argument("action", nargs="?", default="list", choices=["list", "accept", "reject"])
    rev.add_argument("target", nargs="*", metavar="CONNECTION BOOKS_ID CRM_ID")
    rev.add_argument("--connection", help="list only this connection (its name in $XZ_HOME/connections.toml)")
    rev.add_argument("--by", help="who decides (default: the login name)")
    rev.set_defaults(func=cmd_review)

    plan = sub.add_parser(
        "plan", help="the write-back plan (what would change where, and why); sends nothing"
    )
    plan.add_argument("--connection", help=CONNECTION_HELP)
    plan.add_argument(
        "--all", action="store_true", help="every row in the table (default: the first 50 of each connection)"
    )
    plan.add_argument(
        "--format",
        choices=["table", "csv", "json"],
        default="table",
        help="table (for people), csv or json (every row and column of writeback.plan)",
    )
    plan.set_defaults(func=cmd_plan)

    apply_ = sub.add_parser(
        "apply", help="apply the write-back plan (guards first, every call in the ledger)"
    )
    apply_.add_argument("--connection", help=CONNECTION_HELP)
    apply_.add_argument("--approve", action="store_true", help="let a plan past the mass-change guard")
    apply_.add_argument(
        "--retry-rejected",
        action="store_true",
        help="send once more the changes the API refused before (after fixing what `xz plan` says)",
    )
    apply_.set_defaults(func=cmd_apply)

    from xz_pipeline.realtime import receiver

    hooks = sub.add_parser("webhooks", help="serve the Xero webhook and Zoho notification receiver")
    receiver.add_arguments(hooks)
    hooks.add_argument(
        "--connection", help="receive for this connection only (default: every configured one)"
    )
    hooks.set_defaults(func=cmd_webhooks)

    status = sub.add_parser("status", help="connections, tokens' freshness, sync cursors, quarantine")
    status.set_defaults(func=cmd_status)

    mig = sub.add_parser(
        "migrate", help="split the single mirror.duckdb of an earlier version into one file per connection"
    )
    mig.set_defaults(func=cmd_migrate)

    doc = sub.add_parser(
        "doctor",
        help="check each connection: configuration, tokens, scopes, fields, webhooks, clock, budget, the mirror",
    )
    doc.add_argument("--connection", help=CONNECTION_HELP)
    doc.set_defaults(func=cmd_doctor)

    dev = sub.add_parser("dev", help="sandbox + dagster dev (UI, sensors, schedules)")
    dev.add_argument("--seed", type=int, default=7)
    dev.add_argument("--size", default="demo", choices=["tiny", "demo", "medium", "large"])
    dev.add_argument(
        "--profile", default="full", choices=PROFILE_NAMES, help="organisation profile (docs/sandbox.md)"
    )
    dev.add_argument("--port", type=int, default=3000)
    dev.add_argument("--webhook-port", type=int, default=0, help="the receiver's port (default: a free one)")
    dev.set_defaults(func=cmd_dev)

    from xz_pipeline import serve

    srv = sub.add_parser("serve", help="production on one machine: receiver, dagster-daemon, webserver")
    serve.add_arguments(srv)
    srv.set_defaults(func=serve.run)
    return parser


_log_handlers: list[logging.Handler] = []


def _setup_logging(verbose: bool) -> None:
    """Python logging goes to $XZ_HOME/logs/xz.log (Dagster's run events go there too, see runner);
    the terminal sees log lines only with --verbose."""
    root = logging.getLogger()
    for handler in _log_handlers:  # main() may run more than once in a process (tests)
        root.removeHandler(handler)
        handler.close()
    _log_handlers.clear()
    path = settings.xz_home() / "logs" / "xz.log"
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        to_file = logging.handlers.RotatingFileHandler(path, maxBytes=10_000_000, backupCount=5, delay=True)
        to_file.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s %(message)s"))
        _log_handlers.append(to_file)
    except OSError:
        pass  # an unwritable XZ_HOME fails later with its own message
    if verbose:
        to_terminal = logging.StreamHandler(sys.stderr)
        to_terminal.setFormatter(logging.Formatter("%(levelname)s %(name)s %(message)s"))
        # Ours from INFO, libraries' (alembic, urllib3...) from WARNING.
        to_terminal.addFilter(lambda r: r.levelno >= logging.WARNING or r.name.startswith("xz_pipeline"))
        _log_handlers.append(to_terminal)
    else:
        _log_handlers.append(logging.NullHandler())  # no "last resort" printing of warnings
    for handler in _log_handlers:
        root.addHandler(handler)
    root.setLevel(logging.INFO)
    logging.captureWarnings(True)


# Commands that read or write the mirror (the others read it only on the way, and say so themselves).
MIRROR_COMMANDS = frozenset({"sync", "status", "review", "plan", "apply", "setup", "dev", "serve"})


def main(argv: list[str] | None = None) -> int:
    """Run one command. A configuration error exits 2 with one line; anything unexpected exits 1 with one
    line (the traceback with --verbose)."""
    args = build_parser().parse_args(argv)
    verbose = bool(getattr(args, "verbose", False))
    _setup_logging(verbose)
    prog = f"xz {args.command}"
    try:
        if args.command in MIRROR_COMMANDS:
            settings.mirror_dir()  # a single-file mirror of an earlier version: one line, run `xz migrate`
        return args.func(args)
    except settings.SettingsError as exc:
        _say(f"{prog}: {exc}")
        return 2
    except KeyboardInterrupt:
        _say(f"{prog}: interrupted")
        return 130
    except BrokenPipeError:  # `xz plan | head`: the reader has what it wanted; nothing more to say
        # point stdout at /dev/null so the interpreter's last flush does not fail again
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141
    except Exception as exc:
        from xz_pipeline.core.errors import explain

        if verbose:
            traceback.print_exc()
        _say(f"{prog}: {explain(exc).message}" + ("" if verbose else " (run with --verbose for details)"))
        return 1


if __name__ == "__main__":
    sys.exit(main())
