"""Exactly once: a run killed after N write calls and rerun leaves one record per intended write; a
partial failure is recorded with the API's reason and retried by the next run until it succeeds or a
person skips it."""

from __future__ import annotations

import pytest

from xz_pipeline.core.http import RetryPolicy
from xz_pipeline.writeback import ledger
from xz_pipeline.writeback.apply import apply
from xz_pipeline.writeback.plan import build_plan
from xz_pipeline.xero.resources import XeroResource
from xz_pipeline.zoho.resources import ZohoResource
from xz_pipeline_tests.writeback.support import (
    CONNECTION,
    DEFAULT,
    ledger_rows,
    plan_status,
    start,
    writers,
    writes_received,
)

WRITES = {"create_customers", "update_customers", "create_invoices", "update_invoices", "email_invoice",
          "upsert_accounts", "update_accounts", "upsert_contacts", "update_contacts", "update_deals",
          "add_tags", "composite"}  # fmt: skip


class Killed(BaseException):
    """The process dies: nothing after this point runs (not an Exception: no handler catches it)."""


class DiesAfter:
    """A writer that lets the Nth write call reach the API, then dies before its answer is recorded."""

    def __init__(self, inner, budget: list[int]) -> None:
        self.inner, self.budget = inner, budget

    def __getattr__(self, name):
        attr = getattr(self.inner, name)
        if name not in WRITES:
            return attr

        def call(*args, **kw):
            result = attr(*args, **kw)
            self.budget[0] -= 1
            if self.budget[0] == 0:
                raise Killed(name)
            return result

        return call


def _created(sb) -> dict[str, list]:
    tenant, org = sb.tenant_ids[0], sb.org_ids[0]
    out: dict[str, list] = {}
    for c in sb.xero.dump(tenant, "Contacts"):
        if c.get("ContactNumber"):
            out.setdefault(f"books.customer:{c['ContactNumber']}", []).append(c)
    for i in sb.xero.dump(tenant, "Invoices"):
        if i.get("Reference"):
            out.setdefault(f"books.invoice:{i['Reference']}", []).append(i)
    for c in sb.zoho.dump(org, "Contacts"):
        if c.get("Email"):
            out.setdefault(f"crm.contact:{c['Email'].strip().lower()}", []).append(c)
    for a in sb.zoho.dump(org, "Accounts"):
        if a.get("Xero_Contact_ID"):
            out.setdefault(f"crm.account:{a['Xero_Contact_ID']}", []).append(a)
    return out


@pytest.mark.parametrize("calls", [2, 4])
def test_killed_after_n_calls_and_rerun_creates_nothing_twice(baseline, calls):
    sb, store = start(baseline)
    with sb:
        build_plan(store, CONNECTION, DEFAULT)
        with store.read() as con:
            creates = con.execute(
                "select distinct system, entity, case when entity = 'contact' then split_part(ref, '|', 2) else ref end "
                "from writeback.plan where op = 'create'"
            ).fetchall()
        assert len(creates) > 40
        budget = [calls]
        books, crm = writers()
        with pytest.raises(Killed):
            apply(store, CONNECTION, DiesAfter(books, budget), DiesAfter(crm, budget), DEFAULT)
        assert sum(r["status"] == "intent" for r in ledger_rows(store)) == 1  # its outcome never recorded

        books, crm = writers()
        report = apply(store, CONNECTION, books, crm, DEFAULT)
        assert report.found_by_lookup > 0 and report.rejected == 0 and report.waiting == 0
        assert plan_status(store) == {"applied": sum(plan_status(store).values())}
        created = _created(sb)
        for system, entity, ref in creates:
            assert len(created.get(f"{system}.{entity}:{ref}", [])) == 1, (system, entity, ref)
        # the lost call was settled by a lookup, not sent again
        assert [r["status"] for r in ledger_rows(store)].count("intent") == 0
        xero, _ = writes_received(sb)
        assert sum(r.method == "PUT" and r.path.endswith("/Contacts") for r in xero) == 1

        # and the next run has nothing left to send
        before = writes_received(sb)
        books, crm = writers()
        assert apply(store, CONNECTION, books, crm, DEFAULT, retry_rejected=True).write_calls == {
            "books": 0,
            "crm": 0,
        }
        assert writes_received(sb) == before


def test_partial_failure_recorded_held_back_then_retried_on_request_until_success_or_skipped(baseline):
    sb, store = start(baseline)
    with sb:
        build_plan(store, CONNECTION, DEFAULT)
        with store.read() as con:
            deal = con.execute(
                "select record from writeback.plan where entity = 'deal' and policy = 'payment_to_crm' limit 1"
            ).fetchone()[0]
            name = con.execute(
                "select new from writeback.plan where system = 'books' and entity = 'customer' and field = 'name' "
                "order by ref limit 1"
            ).fetchone()[0]
        # between plan and apply, someone deletes a deal and another names a books contact the same
        with ZohoResource().client(CONNECTION) as zoho:
            assert zoho.delete("Deals", [deal])[0].ok
        with XeroResource().client(CONNECTION) as xero:
            clash = xero.create_contacts([{"Name": name}])[0].record_id

        books, crm = writers()
        report = apply(store, CONNECTION, books, crm, DEFAULT)
        assert report.rejected > 0 and report.applied > 0
        calls = ledger_rows(store)
        # the deal updates went in a composite call with other CRM writes: only the deleted deal failed
        deals_call = next(r for r in calls if "deal.update" in r["op"].split(" + "))
        contacts_call = next(r for r in calls if r["entity"] == "customer" and r["op"] == "create")
        assert (
            deals_call["entity"] == "composite"
            and deals_call["status"] == "partial"
            and deals_call["failed"] == 1
        )
        assert deal in deals_call["error"] and "INVALID_DATA" in deals_call["error"]
        assert contacts_call["status"] == "partial" and "already assigned" in contacts_call["error"]
        _, zoho_writes = writes_received(sb)
        assert any(
            r.method == "POST" and r.path.endswith("/__composite_requests") and r.status == 200
            for r in zoho_writes
        )
        with store.read() as con:
            rejected = dict(
                con.execute(
                    "select change_id, error from writeback.plan where status = 'rejected' and attempts = 1"
                ).fetchall()
            )
            deal_ids = [
                c
                for (c,) in con.execute(
                    "select change_id from writeback.plan where record = ?", [deal]
                ).fetchall()
            ]
        assert set(deal_ids) <= set(rejected) and all("INVALID_DATA" in rejected[c] for c in deal_ids)

        # the next run does not send what the APIs refused: the same request would be refused again
        books, crm = writers()
        held = apply(store, CONNECTION, books, crm, DEFAULT)
        assert held.held == len(rejected) and held.write_calls == {"books": 0, "crm": 0}
        assert len(ledger_rows(store)) == len(calls)
        assert (
            f"held back {len(rejected)} change(s)" in held.summary() and "--retry-rejected" in held.summary()
        )
        # the person archives the clashing contact and asks once more: every rejected row is sent again
        with XeroResource().client(CONNECTION) as xero:
            assert xero.update_contacts([{"ContactID": clash, "ContactStatus": "ARCHIVED"}])[0].ok
        books, crm = writers()
        again = apply(store, CONNECTION, books, crm, DEFAULT, retry_rejected=True)
        retried = {c for r in ledger_rows(store)[len(calls) :] for c in r["change_ids"]}
        assert set(rejected) <= retried and again.held == 0
        assert again.applied > 0  # the contact (and what waited for it) went through this time
        with store.read() as con:
            left = con.execute(
                "select change_id, attempts from writeback.plan where status = 'rejected'"
            ).fetchall()
        assert {c for c, _ in left} == set(deal_ids) and all(a == 2 for _, a in left)

        # a person skips what can never succeed: no further calls
        assert ledger.skip(store, CONNECTION, deal_ids) == len(deal_ids)
        books, crm = writers()
        assert apply(store, CONNECTION, books, crm, DEFAULT, retry_rejected=True).write_calls == {
            "books": 0,
            "crm": 0,
        }


def test_dropped_answer_is_looked_up_not_resent(baseline):
    # Xero creates the invoices, then every answer to PUT /Invoices is lost (retries too): outcome unknown
    sb, store = start(baseline, faults="drop:after@path=/api.xro/2.0/Invoices,method=PUT")
    with sb:
        build_plan(store, CONNECTION, DEFAULT)
        books, crm = writers()
        books.client.http.retry = RetryPolicy(attempts=2, backoff_factor=0.01)
        first = apply(store, CONNECTION, books, crm, DEFAULT)
        assert first.waiting > 0  # the deals wait for invoice ids nobody has seen yet
        assert [r["status"] for r in ledger_rows(store) if r["entity"] == "invoice"] == ["unknown"]
        tenant = sb.tenant_ids[0]
        made = [
            i["Reference"]
            for i in sb.xero.dump(tenant, "Invoices")
            if (i.get("Reference") or "").startswith("DEAL-")
        ]

        books, crm = writers()
        second = apply(store, CONNECTION, books, crm, DEFAULT)
        assert (
            second.found_by_lookup > 0 and second.write_calls["books"] == 0
        )  # found by Reference, not resent
        assert plan_status(store) == {"applied": first.pending}
        after = [
            i["Reference"]
            for i in sb.xero.dump(tenant, "Invoices")
            if (i.get("Reference") or "").startswith("DEAL-")
        ]
        assert sorted(after) == sorted(made) and len(after) == len(set(after))  # one invoice per deal
        with store.read() as con:
            wanted = {
                r
                for (r,) in con.execute(
                    "select distinct ref from writeback.plan where entity = 'invoice'"
                ).fetchall()
            }
            deals = con.execute(
                "select count(*) from writeback.plan where field = 'books_invoice_id' and status = 'applied'"
            ).fetchone()[0]
        assert wanted <= set(after) and deals == len(wanted)


def test_echo_of_our_own_write_is_not_a_new_change(baseline):
    """The mirror has not re-read what we wrote (no refresh): the same changes come back from
    reconciliation, and the ledger says they are ours: nothing is sent twice."""
    sb, store = start(baseline)
    with sb:
        build_plan(store, CONNECTION, DEFAULT)
        books, crm = writers()
        books.refresh = crm.refresh = lambda *a, **k: 0  # a stale mirror
        assert apply(store, CONNECTION, books, crm, DEFAULT).applied > 0
        from xz_pipeline_tests.writeback.support import reconcile_again

        reconcile_again(store)
        counts = build_plan(store, CONNECTION, DEFAULT)
        assert counts["echoes"] > 0 and counts["replanned"] == 0
        before = writes_received(sb)
        books, crm = writers()
        assert apply(store, CONNECTION, books, crm, DEFAULT, retry_rejected=True).write_calls == {
            "books": 0,
            "crm": 0,
        }
        assert writes_received(sb) == before
