"""billing_anomalies on the tiny sandbox world, mirrored over HTTP once per module: the planted duplicates are
found (later invoice, earlier invoice), the hard negatives are not, first_seen survives a second run,
voiding a duplicate in the books resolves it, and the WARN check reports only what is new.

The three runs and the void happen in one module fixture, so the tests hold under any test order or worker."""

from __future__ import annotations

from pathlib import Path

import dagster as dg
import pandas as pd
import pytest
from starlette.testclient import TestClient

from xz_pipeline.core.resources import MirrorResource
from xz_pipeline.core.store import Store
from xz_pipeline.insights.anomalies import ANOMALY_ASSETS, CHECK, find
from xz_pipeline.sandbox.server import SandboxServer

SEED = 7
API = "/api.xro/2.0"


def _run(path: str) -> dg.ExecuteInProcessResult:
    with dg.instance_for_test() as inst:
        return dg.materialize(
            ANOMALY_ASSETS, instance=inst, resources={"mirror": MirrorResource(path=str(Path(path).parent))}
        )


def _rows(path: str) -> pd.DataFrame:
    with Store(path).read() as con:
        return con.execute("select * from insights.billing_anomalies").df()


def _check(result) -> dg.AssetCheckEvaluation:
    (evaluation,) = result.get_asset_check_evaluations()
    assert evaluation.check_name == CHECK
    return evaluation


def _void(sb: SandboxServer, invoice_id: str) -> None:
    """Void an invoice through the Xero emulator's API, as a person would in the books."""
    emu, tenant = sb.xero, sb.tenant_ids[0]
    emu.register_client("ANOMALYTEST", "secret")
    refresh = emu.grant_refresh_token("ANOMALYTEST", [tenant])
    token = emu.identity.token({}, {"grant_type": "refresh_token", "client_id": "ANOMALYTEST",
                                    "client_secret": "secret", "refresh_token": refresh})["access_token"]  # fmt: skip
    resp = TestClient(emu.app).post(
        f"{API}/Invoices/{invoice_id}",
        json={"Invoices": [{"Status": "VOIDED"}]},
        headers={"Authorization": f"Bearer {token}", "xero-tenant-id": tenant, "Accept": "application/json"},
    )
    assert resp.status_code == 200, resp.text


@pytest.fixture(scope="module")
def story(tmp_path_factory):
    """Mirror the tiny world; run; run again; void one unpaid duplicate, mirror again and run a third time."""
    from xz_pipeline import runner, settings

    home = tmp_path_factory.mktemp("anomalies-home")
    (home / "dagster").mkdir()
    mp = pytest.MonkeyPatch()
    mp.setenv("XZ_HOME", str(home))
    mp.setenv("DAGSTER_HOME", str(home / "dagster"))
    try:
        with SandboxServer(seed=SEED, size="tiny") as sb:
            for k, v in sb.env(0).items():
                mp.setenv(k, v)
            name = sb.connection_name(0)
            mp.setenv("XZ_CONNECTION", name)

            def mirror() -> None:
                outcomes = runner.sync([name], inst=runner.instance(home), only="mirror")
                assert all(o.success for o in outcomes), [o.error for o in outcomes]

            mirror()
            path = str(settings.mirror_path(name))
            world = sb.worlds[0]
            first = _run(path)
            rows1 = _rows(path)
            second = _run(path)
            rows2 = _rows(path)
            paid = {p.invoice_id for p in world.books.payments if p.status == "AUTHORISED"}
            dup = next(a for a in world.anomalies if a.kind == "duplicate_invoice" and a.books_id not in paid)
            _void(sb, dup.books_id)
            mirror()
            third = _run(path)
            rows3 = _rows(path)
            yield {
                "world": world,
                "runs": (first, second, third),
                "rows": (rows1, rows2, rows3),
                "voided": dup,
            }
    finally:
        mp.undo()


def _pairs(rows: pd.DataFrame) -> set[tuple[str, str]]:
    dups = rows[(rows["kind"] == "duplicate_invoice") & rows["resolved_at"].isna()]
    return set(zip(dups["books_id"], dups["related_id"], strict=True))


def test_every_planted_duplicate_is_found_later_against_earlier(story):
    world, rows = story["world"], story["rows"][0]
    planted = [a for a in world.anomalies if a.kind == "duplicate_invoice"]
    ways = {a.note.split("(")[1].split(")")[0] for a in planted}
    assert ways == {"suffix", "typo", "transposition"}  # the tiny world shows each way a number is re-keyed
    assert {(a.books_id, a.related_id) for a in planted} <= _pairs(rows)
    numbers = {inv.id: inv.number for inv in world.books.invoices}
    for a in planted:
        (reason,) = rows[(rows["books_id"] == a.books_id) & (rows["kind"] == "duplicate_invoice")]["reason"]
        assert reason.startswith(f"{numbers[a.books_id]} repeats {numbers[a.related_id]}: same customer")


@pytest.mark.parametrize("kind", ["recurring", "void_reissue", "other_job", "other_customer"])
def test_hard_negatives_are_not_duplicates(story, kind):
    world, rows = story["world"], story["rows"][0]
    negatives = [a for a in world.anomalies if a.kind == kind]
    assert negatives and all(a.negative for a in negatives)
    found = _pairs(rows)
    for a in negatives:
        assert (a.books_id, a.related_id) not in found and (a.related_id, a.books_id) not in found, a.note


def test_no_duplicate_beyond_the_planted_ones(story):
    world, rows = story["world"], story["rows"][0]
    assert _pairs(rows) == {
        (a.books_id, a.related_id) for a in world.anomalies if a.kind == "duplicate_invoice"
    }


def test_first_seen_survives_a_second_run_and_the_check_reports_only_new_ones(story):
    (first, second, _), (rows1, rows2, _) = story["runs"], story["rows"]
    assert first.success and second.success
    key = ["kind", "books_id", "related_id"]
    both = rows1.merge(rows2, on=key, suffixes=("_1", "_2"), how="outer", indicator=True)
    assert (both["_merge"] == "both").all()
    assert (both["first_seen_1"] == both["first_seen_2"]).all() and both["resolved_at_2"].isna().all()
    one, two = _check(first), _check(second)
    assert not one.passed and one.severity == dg.AssetCheckSeverity.WARN
    assert one.metadata["new"].value == len(rows1) > 0
    assert "repeats" in one.metadata["newest"].value
    assert two.passed and two.metadata["new"].value == 0 and two.metadata["open"].value == len(rows2)


def test_voiding_the_duplicate_resolves_it_and_keeps_first_seen(story):
    (_, _, third), (rows1, _, rows3) = story["runs"], story["rows"]
    dup = story["voided"]
    assert third.success
    row = rows3[(rows3["kind"] == "duplicate_invoice") & (rows3["books_id"] == dup.books_id)]
    assert len(row) == 1 and pd.notna(row["resolved_at"].iloc[0])
    before = rows1[(rows1["kind"] == "duplicate_invoice") & (rows1["books_id"] == dup.books_id)]
    assert row["first_seen"].iloc[0] == before["first_seen"].iloc[0]
    others = rows3[~((rows3["kind"] == "duplicate_invoice") & (rows3["books_id"] == dup.books_id))]
    assert others["resolved_at"].isna().all()
    meta = third.get_asset_materialization_events()[0].step_materialization_data.materialization.metadata
    assert meta["resolved"].value == 1 and _check(third).passed


# ---- the other kinds, on canonical frames built by hand (what the asset reads from the mirror)


def _frames(invoices: list[dict], deals=(), links=(), discrepancies=(), notes=(), allocations=()) -> dict:
    base = {"connection": "c", "type": "sale", "status": "open", "customer_id": "cust", "customer_name": "Acme",
            "reference": "", "currency": "NZD", "amount_credited": 0.0}  # fmt: skip
    inv = pd.DataFrame([{**base, **i} for i in invoices])
    inv["issue_date"] = pd.to_datetime(inv["issue_date"])
    lines = pd.DataFrame([{"connection": "c", "invoice_id": i["invoice_id"], "item_code": "X", "description": "",
                           "quantity": 1.0} for i in invoices])  # fmt: skip

    def frame(rows, cols):
        return pd.DataFrame(list(rows), columns=cols)

    return {
        "books_invoices": inv,
        "books_invoice_lines": lines,
        "books_credit_notes": frame(
            notes,
            ["connection", "credit_note_id", "number", "type", "status", "customer_id", "reference", "total"],
        ),  # fmt: skip
        "books_credit_allocations": frame(
            allocations, ["connection", "credit_note_id", "invoice_id", "amount", "date"]
        ),
        "crm_deals": frame(deals, ["connection", "deal_id", "name", "stage", "amount", "currency"]),
        "invoice_links": frame(links, ["connection", "invoice_id", "deal_id"]),
        "open_discrepancies": frame(discrepancies, ["connection", "kind", "books_id", "crm_id"]),
        "recon_missing": pd.DataFrame({"missing": [False]}),
    }


def test_amount_far_from_the_customers_usual_is_an_outlier():
    usual = [{"invoice_id": f"i{k}", "number": f"INV-{k:04d}", "issue_date": f"2026-0{1 + k % 9}-1{k % 10}",
              "total": 100.0 + 7 * (k % 5)} for k in range(14)]  # fmt: skip
    big = {"invoice_id": "big", "number": "INV-0099", "issue_date": "2026-10-01", "total": 2400.0}
    found, _ = find(_frames([*usual, big]))
    outliers = found[found["kind"] == "amount_outlier"]
    assert list(outliers["books_id"]) == ["big"] and "times Acme's usual" in outliers["reason"].iloc[0]
    found, _ = find(_frames(usual[:8] + [big]))  # too little history: nothing is usual yet
    assert (found["kind"] != "amount_outlier").all()


def test_credit_allocated_beyond_the_total_is_reported_with_the_credit_note():
    inv = [{"invoice_id": "a", "number": "INV-0001", "issue_date": "2026-10-01", "total": 500.0}]
    notes = [
        ("c", "cn1", "CN-0001", "sale", "paid", "cust", "", 300.0),
        ("c", "cn2", "CN-0002", "sale", "paid", "cust", "", 300.0),
    ]
    allocations = [("c", "cn1", "a", 300.0, "2026-10-02"), ("c", "cn2", "a", 300.0, "2026-10-03")]
    found, _ = find(_frames(inv, notes=notes, allocations=allocations))
    (row,) = found[found["kind"] == "credit_exceeds_invoice"].itertuples()
    assert (row.books_id, row.related_id) == (
        "a",
        "cn2",
    ) and "600.00 against its total of 500.00" in row.reason
    found, _ = find(_frames(inv, notes=notes[:1], allocations=allocations[:1]))
    assert (found["kind"] != "credit_exceeds_invoice").all()


def test_won_deal_billed_far_from_its_amount_unless_reconciliation_reports_it():
    inv = [{"invoice_id": "a", "number": "INV-0001", "issue_date": "2026-10-01", "total": 1000.0, "amount_credited": 400.0},
           {"invoice_id": "b", "number": "INV-0002", "issue_date": "2026-10-02", "total": 1000.0, "amount_credited": 50.0}]  # fmt: skip
    deals = [
        ("c", "d1", "Acme - fit-out", "won", 1000.0, "NZD"),
        ("c", "d2", "Acme - repairs", "won", 1000.0, "NZD"),
    ]
    links = [("c", "a", "d1"), ("c", "b", "d2")]
    found, _ = find(_frames(inv, deals=deals, links=links))
    (row,) = found[found["kind"] == "won_deal_invoice_differs"].itertuples()
    assert (row.books_id, row.related_id) == ("a", "d1") and "600.00" in row.reason and "-40%" in row.reason
    told = [("c", "amount_mismatch", "a", "d1")]
    found, _ = find(_frames(inv, deals=deals, links=links, discrepancies=told))
    assert (found["kind"] != "won_deal_invoice_differs").all()
