"""The check machinery: quarantine that is idempotent and shows the current state, bounded metadata,
and the Dagster wiring — a failing ERROR check stops what depends on the asset, a WARN one does not.

(No `from __future__ import annotations` here: Dagster inspects the `context` annotation.)
"""

import copy
from datetime import UTC, datetime, timedelta

import dagster as dg
import pandas as pd
import pytest

from xz_pipeline.core.checks import PREVIEW_ROWS, Rule, check_rules, run_checks
from xz_pipeline.core.mirror import write_entity
from xz_pipeline.core.resources import MirrorResource, connections_partitions
from xz_pipeline.core.schemas import XeroInvoice
from xz_pipeline.core.store import Store
from xz_pipeline.sandbox.server import SandboxServer
from xz_pipeline.xero import tables as xero_tables
from xz_pipeline.xero.assets import XERO_ASSETS
from xz_pipeline.xero.checks import XERO_CHECKS
from xz_pipeline.xero.resources import XeroResource
from xz_pipeline.zoho.assets import ZOHO_ASSETS
from xz_pipeline.zoho.checks import ZOHO_CHECKS
from xz_pipeline.zoho.resources import ZohoResource
from xz_pipeline_tests.core.checks_support import (
    CONNECTION,
    FETCHED_AT,
    VENDOR_RULES,
    check_asset,
    copy_mirror,
    demo_payloads,
    execute,
    quarantine_rows,
    scalar,
    write_mirror,
)
from xz_pipeline_tests.sandbox_env import export_sandbox

T0 = datetime(2026, 1, 5, 10, 0, tzinfo=UTC)


@pytest.fixture(scope="module")
def payloads():
    return demo_payloads()


@pytest.fixture(scope="module")
def built(tmp_path_factory, payloads):
    path = tmp_path_factory.mktemp("demo-mirror") / "mirror.duckdb"
    write_mirror(path, payloads)
    return path


@pytest.fixture
def store(built, tmp_path):
    return copy_mirror(built, tmp_path)


def _open(store: Store, **where) -> list[dict]:
    return [r for r in quarantine_rows(store, **where) if pd.isna(r["resolved_at"])]


# ---------------------------------------------------------------------------------------------
# Quarantine


def test_quarantine_is_idempotent_and_resolves_what_passes_again(store):
    bad = scalar(store, "select min(invoice_id) from xero.invoices")
    digest = scalar(store, "select payload_hash from xero.invoices where invoice_id = ?", [bad])
    landed = scalar(store, "select count(*) from landing.records")
    execute(store, "update xero.invoices set currency_code = 'XXX' where invoice_id = ?", [bad])

    first = check_asset(store, "xero", "xero_invoices", run_id="run-1", now=T0)["invoices_schema"]
    assert first.quarantine == {"new": 1, "resolved": 0, "open": 1}
    (row,) = quarantine_rows(store, rule="invoices_schema")
    assert (row["connection"], row["vendor"], row["entity"], row["record_id"]) == (
        CONNECTION, "xero", "Invoices", bad)  # fmt: skip
    assert row["reason"] == "currency_code='XXX' is not an ISO 4217 currency code"
    assert row["payload_hash"] == digest and row["run_id"] == "run-1"
    # The payload stays in landing, untouched, findable by the quarantined hash.
    assert scalar(store, "select count(*) from landing.records where payload_hash = ?", [digest]) == 1
    assert scalar(store, "select count(*) from landing.records") == landed

    # Rerunning the same run, or a later run while the record still fails, adds nothing.
    again = check_asset(store, "xero", "xero_invoices", run_id="run-1", now=T0 + timedelta(minutes=1))
    later = check_asset(store, "xero", "xero_invoices", run_id="run-2", now=T0 + timedelta(minutes=2))
    assert again["invoices_schema"].quarantine == later["invoices_schema"].quarantine == {
        "new": 0, "resolved": 0, "open": 1}  # fmt: skip
    (row,) = quarantine_rows(store, rule="invoices_schema")
    assert row["run_id"] == "run-1" and row["quarantined_at"] == T0

    # Fixed at the source: the next run resolves the row and keeps it as history.
    execute(store, "update xero.invoices set currency_code = 'NZD' where invoice_id = ?", [bad])
    fixed = check_asset(store, "xero", "xero_invoices", run_id="run-3", now=T0 + timedelta(minutes=3))
    assert fixed["invoices_schema"].passed
    assert fixed["invoices_schema"].quarantine == {"new": 0, "resolved": 1, "open": 0}
    (row,) = quarantine_rows(store, rule="invoices_schema")
    assert row["resolved_at"] == T0 + timedelta(minutes=3)
    assert scalar(store, "select count(*) from meta.quarantine where resolved_at is null") == 0

    # Failing again later opens a new row beside the resolved one.
    execute(store, "update xero.invoices set total = -1 where invoice_id = ?", [bad])
    check_asset(store, "xero", "xero_invoices", run_id="run-4", now=T0 + timedelta(minutes=4))
    rows = quarantine_rows(store, rule="invoices_schema")
    assert len(rows) == 2
    assert scalar(store, "select reason from meta.quarantine where resolved_at is null") == (
        "total=-1.00 fails greater_than_or_equal_to(0)"
    )
    assert scalar(store, "select change from meta.schema_version where change like '%resolved_at'") == (
        "added meta.quarantine.resolved_at"
    )


def test_quarantine_is_per_rule_and_per_connection(store):
    bad = scalar(store, "select min(contact_id) from xero.contacts")
    execute(store, "update xero.contacts set email = 'nobody', contact_status = 'GONE' where contact_id = ?",
            [bad])  # fmt: skip
    check_asset(store, "xero", "xero_contacts", now=T0)
    rules = {r["rule"]: r["reason"] for r in quarantine_rows(store, record_id=bad)}
    assert rules == {
        "contacts_schema": "contact_status='GONE' is not one of ACTIVE, ARCHIVED, GDPRREQUEST",
        "emails_plausible": "email='nobody' does not look like an email address",
    }
    # Another connection's check sees none of these rows and resolves none of them.
    other = check_asset(store, "xero", "xero_contacts", connection="elsewhere", now=T0)
    assert all(o.passed and o.rows_checked == 0 for o in other.values())
    assert scalar(store, "select count(*) from meta.quarantine where resolved_at is null") == 2


def test_metadata_lists_failing_keys_and_bounded_previews(store):
    execute(store, "update xero.invoices set currency_code = 'ABC' where invoice_id in "
                   "(select invoice_id from xero.invoices order by invoice_id limit 25)")  # fmt: skip
    outcome = check_asset(store, "xero", "xero_invoices", now=T0)["invoices_schema"]
    result = outcome.result(dg.AssetKey("xero_invoices"))
    assert not result.passed and result.severity == dg.AssetCheckSeverity.WARN  # 25 of 3,150: isolated
    meta = {k: getattr(v, "value", v) for k, v in result.metadata.items()}
    expected = [r[0] for r in _fetch(store, "select invoice_id from xero.invoices order by 1 limit 25")]
    assert meta["failing_keys"] == expected
    assert meta["failing_rows"] == meta["failure_cases"] == 25
    assert meta["rows_checked"] == scalar(store, "select count(*) from xero.invoices")
    for preview in ("failure_cases_preview", "failing_rows_preview"):
        lines = meta[preview].splitlines()
        assert len(lines) == 2 + PREVIEW_ROWS, preview  # header, rule, 20 rows
    assert lines[0].split("|")[1:-1] == [" invoice_id                           ", " currency_code   "]
    assert meta["quarantine_new"] == meta["quarantine_open"] == 25


def test_a_rule_that_cannot_run_fails_and_resolves_nothing(store):
    bad = scalar(store, "select min(invoice_id) from xero.invoices")
    execute(store, "update xero.invoices set total = -2 where invoice_id = ?", [bad])
    check_asset(store, "xero", "xero_invoices", now=T0)
    broken = Rule("invoices_schema", XeroInvoice, "xero.invoices_gone", ("invoice_id",))
    (outcome,) = run_checks(store, [broken], connection=CONNECTION, vendor="xero", entity="Invoices",
                            run_id="r", now=T0 + timedelta(minutes=1))  # fmt: skip
    assert not outcome.passed
    assert outcome.error.startswith("cannot read xero.invoices_gone: Catalog Error")
    assert outcome.quarantine == {"new": 0, "resolved": 0, "open": 1}  # the open row stays open
    assert len(_open(store, rule="invoices_schema")) == 1


def test_checks_before_the_mirror_exists_fail_without_creating_it(tmp_path):
    missing = Store(tmp_path / "never-written.duckdb")
    spec, rules = VENDOR_RULES["xero"]["xero_contacts"]
    outcomes = run_checks(
        missing, rules, connection=CONNECTION, vendor="xero", entity=spec.entity, run_id="r"
    )
    assert [o.passed for o in outcomes] == [False, False]
    assert "does not exist yet" in outcomes[0].error
    assert not missing.path.exists()


def _fetch(store: Store, sql: str) -> list[tuple]:
    with store.read() as con:
        return con.execute(sql).fetchall()


# ---------------------------------------------------------------------------------------------
# Dagster: blocking, severities, partitions


def _checks_for(asset: str, checks) -> dg.AssetChecksDefinition:
    (found,) = [c for c in checks if {k.asset_key.to_user_string() for k in c.check_keys} == {asset}]
    return found


def _stand_in_invoices(payloads: list[dict]):
    """An asset with the real key that writes given payloads as xero_invoices does (no HTTP)."""

    @dg.asset(name="xero_invoices", partitions_def=connections_partitions, pool="duckdb")
    def xero_invoices(context: dg.AssetExecutionContext, mirror: MirrorResource) -> None:
        write_entity(mirror.store(context.partition_key), xero_tables.INVOICES, connection=context.partition_key,
                     payloads=payloads, fetched_at=FETCHED_AT, run_id=context.run_id, full=True)  # fmt: skip

    return xero_invoices


@dg.asset(partitions_def=connections_partitions, deps=["xero_invoices"])
def books_ready(context: dg.AssetExecutionContext) -> None:
    """Stands in for reconciliation and write-back downstream of the extract."""
    context.log.info("downstream ran")


def _materialize(tmp_path, payloads: list[dict]):
    mirror = MirrorResource(path=str(tmp_path / "dagster-mirror"))
    with dg.instance_for_test() as instance:
        instance.add_dynamic_partitions(connections_partitions.name, [CONNECTION])
        result = dg.materialize(
            [_stand_in_invoices(payloads), _checks_for("xero_invoices", XERO_CHECKS), books_ready],
            partition_key=CONNECTION, instance=instance, resources={"mirror": mirror}, raise_on_error=False,
        )  # fmt: skip
        evaluations = {e.check_name: e for e in result.get_asset_check_evaluations()}
        downstream = result.asset_materializations_for_node("books_ready")
    return result, evaluations, downstream, mirror.store(CONNECTION)


def test_a_failing_error_check_stops_downstream(tmp_path, payloads):
    """More than 20% of the book failing an ERROR rule makes the connection untrustworthy: it blocks."""
    invoices = copy.deepcopy(payloads.xero["Invoices"][:40])
    for invoice in invoices[3:12]:  # 9 of 40: 22.5%
        invoice["Total"] = -10
    bad = sorted(i["InvoiceID"] for i in invoices[3:12])
    result, evaluations, downstream, store = _materialize(tmp_path, invoices)

    assert not result.success
    assert downstream == []
    failed = evaluations["invoices_schema"]
    assert not failed.passed and failed.severity == dg.AssetCheckSeverity.ERROR
    assert failed.description.startswith("9 of 40 rows (22%) fail invoices_schema, more than 20%")
    assert failed.metadata["failing_keys"].value == bad
    assert failed.partition == CONNECTION
    assert {n for n, e in evaluations.items() if e.passed} == {
        "invoice_lines_schema", "lines_sum_to_sub_total", "due_not_before_issue"}  # fmt: skip
    rows = quarantine_rows(store)
    assert sorted(r["record_id"] for r in rows) == bad
    assert {(r["rule"], r["field"], r["severity"], r["reason"]) for r in rows} == {
        ("invoices_schema", "total", "ERROR", "total=-10.00 fails greater_than_or_equal_to(0)")}  # fmt: skip
    assert rows[0]["run_id"] == result.run_id
    failures = [e for e in result.all_events if e.event_type_value == "STEP_FAILURE"]
    assert "blocking asset check failed" in failures[0].event_specific_data.error.message


def test_a_few_failing_records_are_quarantined_and_the_run_goes_on(tmp_path, payloads):
    invoices = copy.deepcopy(payloads.xero["Invoices"][:40])
    invoices[3]["Total"] = -10
    bad = invoices[3]["InvoiceID"]
    result, evaluations, downstream, store = _materialize(tmp_path, invoices)

    assert result.success and len(downstream) == 1
    failed = evaluations["invoices_schema"]
    assert not failed.passed and failed.severity == dg.AssetCheckSeverity.WARN
    assert failed.metadata["failing_keys"].value == [bad]
    (row,) = quarantine_rows(store)
    assert (row["record_id"], row["rule"], row["field"], row["severity"]) == (
        bad, "invoices_schema", "total", "ERROR")  # fmt: skip


def test_a_failing_warn_check_does_not_block(tmp_path, payloads):
    invoices = copy.deepcopy(payloads.xero["Invoices"][:40])
    invoices[5]["DueDate"] = "/Date(946684800000+0000)/"  # 2000-01-01, before the invoice date
    result, evaluations, downstream, store = _materialize(tmp_path, invoices)

    assert result.success
    assert len(downstream) == 1
    warned = evaluations["due_not_before_issue"]
    assert not warned.passed and warned.severity == dg.AssetCheckSeverity.WARN
    assert warned.metadata["failing_keys"].value == [invoices[5]["InvoiceID"]]
    assert all(e.passed for n, e in evaluations.items() if n != "due_not_before_issue")
    assert [r["rule"] for r in quarantine_rows(store)] == ["due_not_before_issue"]


def test_checks_load_with_every_extract_asset_and_match_their_partitions():
    defs = dg.Definitions(
        assets=[*XERO_ASSETS, *ZOHO_ASSETS],
        asset_checks=[*XERO_CHECKS, *ZOHO_CHECKS],
        resources={"mirror": MirrorResource(), "xero": XeroResource(), "zoho": ZohoResource()},
    )
    graph = defs.resolve_asset_graph()
    checked = {}
    for key in graph.asset_check_keys:
        checked.setdefault(key.asset_key.to_user_string(), set()).add(key.name)
    assert set(checked) == {a.key.to_user_string() for a in [*XERO_ASSETS, *ZOHO_ASSETS]}
    assert checked["xero_invoices"] == {"invoices_schema", "invoice_lines_schema", "lines_sum_to_sub_total",
                                        "due_not_before_issue"}  # fmt: skip
    assert checked["zoho_deals"] == {"deals_schema", "deal_stages_standard"}
    for checks in [*XERO_CHECKS, *ZOHO_CHECKS]:
        for spec in checks.check_specs:
            assert spec.partitions_def == connections_partitions
            warn = spec.metadata["severity"] == "WARN"
            assert spec.blocking is not warn, spec.key
    assert sum(1 for c in [*XERO_CHECKS, *ZOHO_CHECKS] for s in c.check_specs if not s.blocking) == 6


def test_check_rules_reads_only_the_partition(store, payloads):
    write_entity(store, xero_tables.CONTACTS, connection="second", payloads=payloads.xero["Contacts"][:7],
                 fetched_at=FETCHED_AT, run_id="r", full=True)  # fmt: skip
    rules = VENDOR_RULES["xero"]["xero_contacts"][1]
    counts = {o.rule.name: o.rows_checked for o in check_rules(store, rules, "second")}
    assert counts == {"contacts_schema": 7, "emails_plausible": 7}


def test_checks_pass_on_the_real_extract_assets_against_the_sandbox(monkeypatch):
    with SandboxServer(seed=11, size="demo") as sandbox:
        export_sandbox(monkeypatch, sandbox, "sandbox")
        assets = [a for a in XERO_ASSETS if a.key.to_user_string() in ("xero_contacts", "xero_invoices")]
        checks = [_checks_for(a.key.to_user_string(), XERO_CHECKS) for a in assets]
        with dg.instance_for_test() as instance:
            instance.add_dynamic_partitions(connections_partitions.name, ["sandbox"])
            result = dg.materialize([*assets, *checks], partition_key="sandbox", instance=instance,
                                    resources={"xero": XeroResource(), "mirror": MirrorResource()})  # fmt: skip
        tenant = sandbox.env(0)["XERO_TENANT_ID"]
        served = {c: len(sandbox.xero.dump(tenant, c)) for c in ("Invoices", "Contacts")}
    evaluations = result.get_asset_check_evaluations()
    assert result.success
    assert {e.check_name for e in evaluations} == {"contacts_schema", "emails_plausible", "invoices_schema",
                                                  "invoice_lines_schema", "lines_sum_to_sub_total",
                                                  "due_not_before_issue"}  # fmt: skip
    assert all(e.passed and e.partition == "sandbox" for e in evaluations)
    checked = {e.check_name: e.metadata["rows_checked"].value for e in evaluations}
    assert checked["invoices_schema"] == served["Invoices"]
    assert checked["contacts_schema"] == served["Contacts"]


def test_an_incremental_run_checks_the_rows_it_wrote_and_a_first_sync_every_row(monkeypatch):
    """A scheduled incremental read checks only what it wrote (the rest was checked when written), so an
    idle run of a million-invoice organisation reads no table whole; a first sync checks every row."""
    with SandboxServer(seed=11, size="demo") as sandbox:
        export_sandbox(monkeypatch, sandbox, "sandbox")
        assets = [a for a in XERO_ASSETS if a.key.to_user_string() in ("xero_contacts", "xero_invoices")]
        checks = [_checks_for(a.key.to_user_string(), XERO_CHECKS) for a in assets]
        tenant = sandbox.env(0)["XERO_TENANT_ID"]
        invoice = next(
            i["InvoiceID"] for i in sandbox.xero.dump(tenant, "Invoices") if i["Status"] == "DRAFT"
        )
        with dg.instance_for_test() as instance:
            instance.add_dynamic_partitions(connections_partitions.name, ["sandbox"])

            def run() -> dict[str, dict]:
                result = dg.materialize([*assets, *checks], partition_key="sandbox", instance=instance,
                                        resources={"xero": XeroResource(), "mirror": MirrorResource()})  # fmt: skip
                assert result.success
                return {e.check_name: {k: v.value for k, v in e.metadata.items()}
                        for e in result.get_asset_check_evaluations()}  # fmt: skip

            first = run()
            with XeroResource().client("sandbox") as xero:
                xero.update_invoices([{"InvoiceID": invoice, "Reference": "changed"}])
            second = run()
    assert first["invoices_schema"]["scope"] == "every row of the connection"
    assert first["invoices_schema"]["rows_checked"] > 1000
    assert second["invoices_schema"]["scope"] == "the 1 record(s) an incremental read of this run wrote"
    assert second["invoices_schema"]["rows_checked"] == 1
    assert second["invoice_lines_schema"]["rows_checked"] >= 1  # the changed invoice's lines
    assert second["contacts_schema"]["scope"] == "the 0 record(s) an incremental read of this run wrote"
    assert second["contacts_schema"]["rows_checked"] == 0


def test_a_targeted_check_reads_only_its_records_and_resolves_only_theirs(store):
    bad, other = [
        r[0] for r in _fetch(store, "select invoice_id from xero.invoices order by invoice_id limit 2")
    ]
    execute(store, "update xero.invoices set currency_code = 'XXX' where invoice_id in (?, ?)", [bad, other])
    whole = check_asset(store, "xero", "xero_invoices", now=T0)["invoices_schema"]
    total = scalar(store, "select count(*) from xero.invoices where connection = ?", [CONNECTION])
    assert whole.rows_checked == total and whole.quarantine["open"] == 2

    execute(store, "update xero.invoices set currency_code = 'NZD' where invoice_id in (?, ?)", [bad, other])
    spec, rules = VENDOR_RULES["xero"]["xero_invoices"]
    (scoped,) = [o for o in run_checks(store, rules, connection=CONNECTION, vendor="xero", entity=spec.entity,
                                       run_id="targeted", now=T0 + timedelta(minutes=1), ids=[bad])
                 if o.rule.name == "invoices_schema"]  # fmt: skip
    assert scoped.rows_checked == 1 and scoped.metadata()["scope"] == "the 1 record(s) a targeted run read"
    # only the announced record's quarantine row resolves; the other waits for a check that reads it
    assert scoped.quarantine == {"new": 0, "resolved": 1, "open": 1}
    assert [r["record_id"] for r in _open(store, rule="invoices_schema")] == [other]


def test_announced_ids_come_from_the_assets_run_config():
    from xz_pipeline.core.checks import announced_ids

    config = {"ops": {"xero_invoices": {"config": {"ids": ["a"], "deleted_ids": ["b"]}},
                      "xero_payments": {"config": {}}}}  # fmt: skip
    assert announced_ids(config, "xero_invoices") == ["a", "b"]
    assert announced_ids(config, "xero_payments") is None and announced_ids({}, "xero_invoices") is None


def test_checks_read_in_slices_find_what_one_read_finds(store, monkeypatch):
    from xz_pipeline.core import checks

    ids = [r[0] for r in _fetch(store, "select invoice_id from xero.invoices order by invoice_id")]
    assert len(ids) > 2048  # more than one slice of 2,048 rows
    bad = [ids[0], ids[-1]]
    execute(store, "update xero.invoices set currency_code = 'XXX' where invoice_id in (?, ?)", bad)
    spec, rules = VENDOR_RULES["xero"]["xero_invoices"]
    whole = {o.rule.name: o for o in check_rules(store, rules, CONNECTION, None)}
    monkeypatch.setattr(checks, "CHECK_VECTORS", 1)
    sliced = {o.rule.name: o for o in check_rules(store, rules, CONNECTION, None)}
    for name, one in whole.items():
        assert sliced[name].rows_checked == one.rows_checked
        assert sliced[name].reasons == one.reasons and sliced[name].passed == one.passed
    assert whole["invoices_schema"].rows_checked == len(ids)
    assert sorted(rid for rid, _ in sliced["invoices_schema"].reasons) == sorted(bad)


def _root(array):
    while getattr(array, "base", None) is not None:
        array = array.base
    return array


def test_an_outcome_holds_no_reference_to_the_slice_it_validated(store):
    """A check keeps every slice's outcome until it combines them: an outcome that held a view of its
    slice kept the whole table in memory (5 GB for the large organisation)."""
    from xz_pipeline.core.checks import evaluate, read_frame

    spec, rules = VENDOR_RULES["xero"]["xero_invoices"]
    rule = next(r for r in rules if r.name == "invoices_schema")
    with store.read() as con:
        frame = read_frame(con, rule.query, [CONNECTION])
    passing = evaluate(rule, frame)
    assert passing.passed and len(frame) > 100
    bad = frame.copy()
    bad.loc[0, "currency_code"] = "XXX"
    failing = evaluate(rule, bad)
    assert not failing.passed and len(failing.failing_rows) == 1
    for outcome, source in ((passing, frame), (failing, bad)):
        for column in source.columns:
            held = outcome.failing_rows[column].to_numpy()
            assert _root(held) is not _root(source[column].to_numpy()), column
