"""Won deals invoiced from their products, payments written to the CRM invoice too, CRM writes sent
together in composite calls; then a second full cycle writes nothing."""

from __future__ import annotations

from datetime import date
from decimal import Decimal

from xz_pipeline import runner
from xz_pipeline.core.errors import AuthError
from xz_pipeline.writeback.apply import apply
from xz_pipeline.writeback.plan import build_plan
from xz_pipeline.writeback.policies import load_policies
from xz_pipeline.xero.resources import XeroResource
from xz_pipeline_tests.writeback.support import (
    CONNECTION,
    DEFAULT,
    ledger_rows,
    open_discrepancies,
    plan_status,
    start,
    writers,
    writes_received,
)


def _rows(store, sql: str, args=()) -> list[dict]:
    with store.read() as con:
        cur = con.execute(sql, list(args))
        names = [d[0] for d in cur.description]
        return [dict(zip(names, r, strict=True)) for r in cur.fetchall()]


def _cycle(store):
    (outcome,) = runner.sync(inst=runner.instance())
    assert outcome.success, outcome.error
    books, crm = writers()
    try:
        return apply(store, CONNECTION, books, crm, load_policies(CONNECTION), approve=True)
    finally:
        books.close()
        crm.close()


def test_products_become_invoice_lines_payments_reach_the_crm_invoice_and_a_second_cycle_is_quiet(baseline):
    sb, store = start(baseline)
    with sb:
        tenant, org = sb.tenant_ids[0], sb.org_ids[0]
        not_invoiced = [d["crm_id"] for d in open_discrepancies(store, "deal_not_invoiced")]
        lines = {}
        for r in _rows(store, "select * from canonical.crm_deal_lines order by deal_id, line_no"):
            lines.setdefault(r["deal_id"], []).append(r)
        with_products = [d for d in not_invoiced if d in lines]
        without = [d for d in not_invoiced if d not in lines]
        assert with_products and without

        # a payment in the books on an invoice the CRM keeps a copy of
        (pair,) = _rows(store, """
            select b.invoice_id, b.amount_due, c.invoice_id as crm_invoice from canonical.books_invoices b
            join canonical.crm_invoices c on c.books_invoice_id = b.invoice_id
            where b.status = 'open' and b.amount_due > 10 and c.payment_status = 'unpaid' order by 1 limit 1""")  # fmt: skip
        bank = next(a["AccountID"] for a in sb.xero.dump(tenant, "Accounts") if a.get("Type") == "BANK")
        with XeroResource().client(CONNECTION) as xero:
            (paid,) = xero.create_payments([{"Invoice": {"InvoiceID": pair["invoice_id"]}, "Account": {"AccountID": bank},
                                              "Date": date.today(), "Amount": Decimal("10.00")}])  # fmt: skip
        assert paid.ok

        first = _cycle(store)
        assert not first.blocked and first.rejected == 0 and first.applied > 0

        items = {i["Code"]: i["SalesDetails"] for i in sb.xero.dump(tenant, "Items")}
        invoices = {i.get("Reference"): i for i in sb.xero.dump(tenant, "Invoices")}
        deals = {d["id"]: d for d in sb.zoho.dump(org, "Deals")}
        sold = 0
        for deal_id in with_products:
            inv = invoices[f"DEAL-{deal_id}"]
            assert inv["Status"] == "DRAFT"
            assert (deals[deal_id]["Xero_Invoice_ID"], deals[deal_id]["Xero_Invoice_Number"]) == (
                inv["InvoiceID"],
                inv["InvoiceNumber"],
            )
            total_off = abs(Decimal(str(inv["Total"])) - Decimal(str(deals[deal_id]["Amount"])))
            assert total_off <= Decimal("0.50")  # reconciliation's tolerance: no amount_mismatch
            if inv["LineAmountTypes"] != "Exclusive":
                continue  # the products did not add up to the deal's amount: one line at the amount
            sold += 1
            got = [(ln["ItemCode"], Decimal(str(ln["Quantity"])), Decimal(str(ln["UnitAmount"])), ln["AccountCode"],
                    ln["TaxType"]) for ln in inv["LineItems"]]  # fmt: skip
            want = [(r["product_code"], r["quantity"], r["unit_price"], items[r["product_code"]]["AccountCode"],
                     items[r["product_code"]]["TaxType"]) for r in lines[deal_id]]  # fmt: skip
            assert got == want
        assert sold >= len(with_products) // 2
        for deal_id in without:  # no products: one line at the deal's amount, tax included
            inv = invoices[f"DEAL-{deal_id}"]
            assert len(inv["LineItems"]) == 1 and inv["LineAmountTypes"] == "Inclusive"
            assert Decimal(str(inv["Total"])) == Decimal(str(deals[deal_id]["Amount"]))

        # the CRM invoice says what the books say
        books_inv = next(i for i in sb.xero.dump(tenant, "Invoices") if i["InvoiceID"] == pair["invoice_id"])
        crm_inv = next(i for i in sb.zoho.dump(org, "Invoices") if i["id"] == pair["crm_invoice"])
        assert crm_inv["Payment_Status"] == "Partially Paid"
        assert Decimal(str(crm_inv["Amount_Paid"])) == Decimal(str(books_inv["AmountPaid"])) > 0
        assert crm_inv["Last_Payment_Date"] == date.today().isoformat()

        # CRM writes went together: fewer calls than kinds of write, each within Zoho's limits
        crm_calls = [r for r in ledger_rows(store) if r["system"] == "crm"]
        kinds = {
            k
            for r in crm_calls
            for k in (r["op"].split(" + ") if r["entity"] == "composite" else [f"{r['entity']}.{r['op']}"])
        }
        assert any(r["entity"] == "composite" for r in crm_calls) and len(crm_calls) < len(kinds)
        assert len(writes_received(sb)[1]) == len(crm_calls)  # one HTTP call per ledger row

        # a second full cycle: nothing left to write, and the new invoices agree with their deals
        before = writes_received(sb)
        second = _cycle(store)
        assert second.write_calls == {"books": 0, "crm": 0} and writes_received(sb) == before
        mismatched = {d["books_id"] for d in open_discrepancies(store, "amount_mismatch")}
        assert not mismatched & {invoices[f"DEAL-{d}"]["InvoiceID"] for d in not_invoiced}


class NoCompositeScope:
    """A CRM writer whose token was granted without ZohoCRM.composite_requests.CUSTOM (as the emulator and
    Zoho answer such a call: 401 OAUTH_SCOPE_MISMATCH, nothing run)."""

    def __init__(self, inner) -> None:
        self.inner, self.refused = inner, 0

    def __getattr__(self, name):
        return getattr(self.inner, name)

    def composite(self, writes):
        self.refused += 1
        raise AuthError(
            "zoho", 401, "OAUTH_SCOPE_MISMATCH", "Unauthorized", endpoint="POST __composite_requests"
        )


def test_without_the_composite_scope_the_writes_go_one_by_one_once(baseline):
    sb, store = start(baseline)
    with sb:
        build_plan(store, CONNECTION, DEFAULT)
        books, crm = writers()
        wrapped = NoCompositeScope(crm)
        report = apply(store, CONNECTION, books, wrapped, DEFAULT)
        assert wrapped.refused == 1 and report.rejected == 0 and report.applied > 0
        crm_calls = [r for r in ledger_rows(store) if r["system"] == "crm"]
        assert crm_calls[0]["entity"] == "composite" and crm_calls[0]["status"] == "refused"
        assert all(r["entity"] != "composite" and r["status"] == "ok" for r in crm_calls[1:])
        assert plan_status(store) == {"applied": sum(plan_status(store).values())}
        assert len(writes_received(sb)[1]) == len(crm_calls) - 1  # the refused call never reached Zoho here
