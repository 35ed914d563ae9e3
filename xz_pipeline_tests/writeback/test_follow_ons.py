"""A run that dies between a parent write and the write that follows it (a new account, then its contact;
a new invoice, then its deal's link) is finished by the next sync: the follow-on is planned from the
state that exists, and the parent's call, whose answer never came back, is looked up and settled rather
than left open. And an invoice for a won deal of a customer created in the same plan takes the deal's
products."""

from __future__ import annotations

import pytest

from xz_pipeline import runner
from xz_pipeline.writeback.apply import apply
from xz_pipeline.writeback.assets import read_products_to_invoice
from xz_pipeline.writeback.plan import build_plan
from xz_pipeline.xero.writer import XeroWriterResource
from xz_pipeline.zoho.writer import ZohoWriterResource
from xz_pipeline_tests.writeback.support import (
    CONNECTION,
    DEFAULT,
    ledger_rows,
    open_discrepancies,
    start,
    writers,
)

# Whole crash-and-resume cycles against the sandbox, end to end: `make test-integration` runs these.
pytestmark = pytest.mark.end_to_end


class Killed(BaseException):
    """The process dies (not an Exception: no handler catches it)."""


class DiesAfterWriting:
    """A writer that dies right after the call that carries `kind` reached the API (its answer lost)."""

    def __init__(self, inner, kind: str) -> None:
        self.inner, self.kind = inner, kind

    def __getattr__(self, name):
        attr = getattr(self.inner, name)
        if name != self.kind and name != "composite":
            return attr

        def call(*args, **kw):
            result = attr(*args, **kw)
            if name == self.kind or any(k == self.kind for k, _ in args[0]):
                raise Killed(name)
            return result

        return call


def _kill_after(baseline, *, books_kind: str = "", crm_kind: str = ""):
    """Plan, then apply until the first call carrying the given write is made, and die."""
    sb, store = start(baseline)
    build_plan(store, CONNECTION, DEFAULT)
    books, crm = writers()
    books = DiesAfterWriting(books, books_kind) if books_kind else books
    crm = DiesAfterWriting(crm, crm_kind) if crm_kind else crm
    try:
        apply(store, CONNECTION, books, crm, DEFAULT)
    except Killed:
        pass
    else:
        raise AssertionError(f"no call carried {books_kind or crm_kind}")
    assert [r["status"] for r in ledger_rows(store)].count("intent") == 1
    return sb, store


def _rerun(store) -> dict:
    """The next `xz sync --apply`: mirror, reconcile, plan, apply (in process)."""
    (outcome,) = runner.sync(inst=runner.instance(), apply=True, approve=True)
    assert outcome.success, outcome.error
    with store.read() as con:
        return dict(
            con.execute(
                "select status, count(*) from writeback.ledger where connection = ? group by 1", [CONNECTION]
            ).fetchall()
        )


def test_contacts_of_accounts_created_before_a_crash_are_created_by_the_next_sync(baseline):
    sb, store = _kill_after(baseline, crm_kind="upsert_accounts")
    with sb:
        org = sb.org_ids[0]
        with store.read() as con:
            wanted = {
                (ref.split("|")[0], ref.split("|")[1])
                for (ref,) in con.execute(
                    "select distinct ref from writeback.plan where entity = 'contact' and op = 'create'"
                ).fetchall()
            }
            lost_call = con.execute(
                "select call_id, change_ids from writeback.ledger where status = 'intent'"
            ).fetchone()
        made = {
            a["Xero_Contact_ID"]: a["id"] for a in sb.zoho.dump(org, "Accounts") if a.get("Xero_Contact_ID")
        }
        emails = {(c.get("Email") or "").lower() for c in sb.zoho.dump(org, "Contacts")}
        stranded = {(b, e) for b, e in wanted if b in made and e not in emails}
        assert stranded  # the accounts exist, their contacts do not

        statuses = _rerun(store)

        assert "intent" not in statuses and "unknown" not in statuses
        contacts = {}
        for c in sb.zoho.dump(org, "Contacts"):
            contacts.setdefault((c.get("Email") or "").lower(), []).append(c)
        for books_id, email in stranded:  # each once, at the account created for its books customer
            assert len(contacts.get(email, [])) == 1, email
            account = contacts[email][0].get("Account_Name")
            assert (account.get("id") if isinstance(account, dict) else account) == made[books_id]
        accounts = [a["Xero_Contact_ID"] for a in sb.zoho.dump(org, "Accounts") if a.get("Xero_Contact_ID")]
        assert len(accounts) == len(set(accounts))
        with store.read() as con:
            settled = con.execute(
                "select status, error from writeback.ledger where call_id = ?", [lost_call[0]]
            ).fetchone()
            rows = con.execute(
                "select entity, status, result_id from writeback.plan where change_id in (select unnest(?)) "
                "and entity = 'account' and op = 'create'",
                [lost_call[1]],
            ).fetchall()
        # the lost call was looked up: its account creates are applied with the ids the CRM gave them
        assert settled[0] == "settled" and "done" in settled[1]
        assert rows and all(s == "applied" and r in made.values() for _, s, r in rows)


def test_deals_of_invoices_created_before_a_crash_are_linked_by_the_next_sync(baseline):
    sb, store = _kill_after(baseline, books_kind="create_invoices")
    with sb:
        tenant, org = sb.tenant_ids[0], sb.org_ids[0]
        invoices = {
            i["Reference"]: i
            for i in sb.xero.dump(tenant, "Invoices")
            if (i.get("Reference") or "").startswith("DEAL-")
        }
        with store.read() as con:
            refs = {
                r
                for (r,) in con.execute(
                    "select distinct ref from writeback.plan where entity = 'invoice'"
                ).fetchall()
            }
        created = refs & set(invoices)
        assert created and not any(
            d.get("Xero_Invoice_ID") for d in sb.zoho.dump(org, "Deals") if f"DEAL-{d['id']}" in created
        )

        statuses = _rerun(store)

        assert "intent" not in statuses and "unknown" not in statuses
        deals = {f"DEAL-{d['id']}": d for d in sb.zoho.dump(org, "Deals")}
        for ref in created:  # every invoice made before the crash is now on its deal, and made once
            assert deals[ref].get("Xero_Invoice_ID") == invoices[ref]["InvoiceID"], ref
            assert deals[ref].get("Xero_Invoice_Number") == invoices[ref]["InvoiceNumber"], ref
        after = [i["Reference"] for i in sb.xero.dump(tenant, "Invoices") if i.get("Reference") in refs]
        assert sorted(after) == sorted(set(after)) and set(after) == refs


def test_a_lost_call_whose_change_went_obsolete_is_settled_not_left_open(baseline):
    """The books customers created before the crash are mirrored by the next read, so their creates are no
    longer planned (obsolete); the call that made them is still looked up: applied, with Xero's ids."""
    sb, store = _kill_after(baseline, books_kind="create_customers")
    with sb:
        (call_id, change_ids) = next(
            (r["call_id"], r["change_ids"]) for r in ledger_rows(store) if r["status"] == "intent"
        )
        (outcome,) = runner.sync(inst=runner.instance(), only="mirror")
        assert outcome.success, outcome.error
        from xz_pipeline_tests.writeback.support import reconcile_again

        reconcile_again(store)
        build_plan(store, CONNECTION, DEFAULT)
        with store.read() as con:
            obsolete = con.execute(
                "select count(*) from writeback.plan where status = 'obsolete' and change_id in (select unnest(?))",
                [change_ids],
            ).fetchone()[0]
        assert obsolete == len(change_ids)  # nothing would ever look at this call again before the fix

        books, crm = writers()
        report = apply(store, CONNECTION, books, crm, DEFAULT, approve=True)
        assert report.settled_calls == 1 and report.found_by_lookup == len(change_ids)
        tenant = sb.tenant_ids[0]
        ids = {c["ContactID"] for c in sb.xero.dump(tenant, "Contacts")}
        with store.read() as con:
            status = con.execute(
                "select status from writeback.ledger where call_id = ?", [call_id]
            ).fetchone()[0]
            rows = con.execute(
                "select status, result_id from writeback.plan where change_id in (select unnest(?))",
                [change_ids],
            ).fetchall()
        assert status == "settled"
        assert rows and all(s == "applied" and r in ids for s, r in rows)


def test_products_make_the_lines_of_a_deal_whose_customer_the_same_plan_creates(baseline):
    sb, store = start(baseline)
    with sb:
        missing = {d["crm_id"] for d in open_discrepancies(store, "customer_missing_in_books")}
        # the baseline's sync planned (dry) and so read the products of every deal it would invoice,
        # those of customers created in the same plan included: nothing is left to read
        resources = {"books_writer": XeroWriterResource(), "crm_writer": ZohoWriterResource()}
        assert read_products_to_invoice(store, CONNECTION, DEFAULT, resources, None) == 0
        build_plan(store, CONNECTION, DEFAULT)
        with store.read() as con:
            rows = con.execute(
                "select p.ref, p.new, p.reason from writeback.plan p join canonical.crm_deals d "
                "on p.ref = 'DEAL-' || d.deal_id where p.entity = 'invoice' and p.op = 'create' and p.field = 'lines' "
                "and d.account_id in (select unnest(?))",
                [sorted(missing)],
            ).fetchall()
            with_products = {
                r
                for (r,) in con.execute(
                    "select distinct 'DEAL-' || deal_id from canonical.crm_deal_lines"
                ).fetchall()
            }
        ours = [r for r in rows if r[0] in with_products]
        assert ours, "no deal of a customer created in this plan has products"
        from_products = [r for r in ours if "from the deal's products" in r[2]]
        assert from_products and not any("no products on the deal" in r[2] for r in ours)
        assert all('"item_code"' in r[1] or '"description"' in r[1] for r in from_products)
