"""The write-back plan: one row per field change, computed from open discrepancies, links and the
canonical views. Nothing remote happens here.

Each policy turns the disagreements it owns into changes (`Change`): which system, which record (its id,
or for a record still to be created its reference: the books id a new CRM account carries, the CRM id a
new books contact carries, the `DEAL-<id>` a new invoice carries), which field, old and new value, why,
and the source rows it came from. A value `@<system>.<entity>:<ref>` names a record this same plan
creates; apply resolves it once that record exists. Ids are content hashes, so replanning the same fix
finds the same row (and its ledger history) again.
"""

from __future__ import annotations

import json
from collections import Counter, defaultdict
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

import duckdb
import pandas as pd

from xz_pipeline.core.canonical import DocumentStatus, Invoice, Role, payment_status_of
from xz_pipeline.core.store import Store
from xz_pipeline.writeback import ledger
from xz_pipeline.writeback.policies import BOOKS, CRM, Policies
from xz_pipeline.writeback.ports import Capabilities

PAYMENT_CLASS = {"unpaid": "unpaid", "overdue": "unpaid", "partially_paid": "partially_paid", "paid": "paid"}
LIVE = ("draft", "open", "paid")
ADDRESS = ("street", "city", "region", "postal_code", "country")


@dataclass(frozen=True)
class Change:
    system: str  # books | crm
    entity: str  # customer, invoice (books); account, contact, deal (crm)
    op: str  # create | update | tag | email
    record: str  # the target's id ("" for a create)
    ref: str  # the reference a created record carries (lookups find it by this)
    field: str
    old: object
    new: object
    policy: str
    reason: str
    source: str

    @property
    def group(self) -> tuple[str, str, str, str, str]:
        return (self.system, self.entity, self.op, self.record, self.ref)


def placeholder(system: str, entity: str, ref: str, attr: str = "id") -> str:
    return f"@{system}.{entity}.{attr}:{ref}"


def text(value: object) -> str | None:
    """Plan values as text: Decimal exact, dates ISO, lists as JSON."""
    if value is None:
        return None
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, list | tuple | dict):
        return json.dumps(value, default=str, sort_keys=True)
    return str(value)


def _rows(con: duckdb.DuckDBPyConnection, sql: str, args: list) -> list[dict]:
    cur = con.execute(sql, args)
    names = [d[0] for d in cur.description]
    return [dict(zip(names, r, strict=True)) for r in cur.fetchall()]


def _exists(con: duckdb.DuckDBPyConnection, schema: str, table: str) -> bool:
    return bool(
        con.execute(
            "select count(*) from information_schema.tables where table_schema = ? and table_name = ?",
            [schema, table],
        ).fetchone()[0]
    )


class World:
    """What the policies read for one connection, loaded once (values keep their Decimal/date types)."""

    def __init__(
        self, con: duckdb.DuckDBPyConnection, connection: str, today: date, unavailable: dict | None = None
    ) -> None:
        self.connection, self.today = connection, today
        self.unavailable: dict[str, str] = dict(unavailable or {})  # CRM endpoints not offered -> why
        q = lambda sql: _rows(con, sql, [connection])  # noqa: E731
        self.books = {
            r["customer_id"]: r for r in q("select * from canonical.books_customers where connection = ?")
        }
        self.accounts = {
            r["account_id"]: r for r in q("select * from canonical.crm_accounts where connection = ?")
        }
        self.contacts = {
            r["contact_id"]: r for r in q("select * from canonical.crm_contacts where connection = ?")
        }
        self.deals = {r["deal_id"]: r for r in q("select * from canonical.crm_deals where connection = ?")}
        self.invoices = {
            r["invoice_id"]: r for r in q("select * from canonical.books_invoices where connection = ?")
        }
        self.lines = q(
            "select l.account_code, l.tax_code from canonical.books_invoice_lines l join canonical.books_invoices i "
            "using (connection, invoice_id) where l.connection = ? and i.type = 'sale'"
        )
        self.last_payment: dict[str, date] = {
            r["invoice_id"]: r["d"]
            for r in q(
                "select invoice_id, max(date) as d from canonical.books_payments where connection = ? "
                "and status = 'active' and invoice_id is not null group by 1"
            )
        }
        self.deal_lines: dict[str, list[dict]] = defaultdict(list)
        for r in q("select * from canonical.crm_deal_lines where connection = ? order by deal_id, line_no"):
            self.deal_lines[r["deal_id"]].append(r)
        self.item_codes = {
            r["code"]
            for r in q("select code from canonical.books_items where connection = ? and code is not null")
        }
        # The tax the books charge on sales lines, read off their own lines: each tax code's rate (tax / net)
        # and the tax code each item is mostly sold with. What a deal's products come to with tax.
        net = "case when i.amounts_tax = 'inclusive' then l.line_amount - l.tax_amount else l.line_amount end"
        sales = (
            "from canonical.books_invoice_lines l join canonical.books_invoices i using (connection, invoice_id) "
            "where l.connection = ? and i.type = 'sale' and i.amounts_tax in ('exclusive', 'inclusive') "
            "and l.tax_amount is not null and l.line_amount is not null and l.tax_code is not null"
        )
        self.tax_rate: dict[str, Decimal] = {
            r["tax_code"]: r["tax"] / r["net"]
            for r in q(f"select l.tax_code, sum(l.tax_amount) as tax, sum({net}) as net {sales} group by 1")
            if r["net"]
        }
        self.item_tax: dict[str, str] = {
            r["item_code"]: r["tax_code"]
            for r in q(
                f"select l.item_code, mode(l.tax_code) as tax_code {sales} and l.item_code is not null group by 1"
            )
        }
        self.crm_invoices = q("select * from canonical.crm_invoices where connection = ?")
        has_recon = _exists(con, "recon", "discrepancies")
        self.open = (
            q("select * from recon.discrepancies where connection = ? and resolved_at is null order by kind, books_id, crm_id, field")
            if has_recon
            else []
        )  # fmt: skip
        self.ours: set[str] = set()  # books invoices write-back raised itself
        # What write-back set out to create (whether or not its call was answered): the books ids its CRM
        # accounts carry, the references (DEAL-<id>) of its books invoices.
        self.our_accounts: set[str] = set()
        self.our_invoices: set[str] = set()
        if _exists(con, "writeback", "plan"):
            for r in q(
                "select distinct system, entity, ref from writeback.plan where connection = ? and op = 'create' "
                "and ((system = 'crm' and entity = 'account') or (system = 'books' and entity = 'invoice'))"
            ):
                (self.our_accounts if r["system"] == CRM else self.our_invoices).add(r["ref"])
            self.ours = {
                r["id"]
                for r in q(
                    "select distinct split_part(result_id, '|', 1) as id from writeback.plan where connection = ? "
                    "and system = 'books' and entity = 'invoice' and op = 'create' and status = 'applied'"
                )
            }
        # What insights computed (read only by the policies that carry them to the CRM: insight_plan.py).
        self.risk = (
            q("select * from insights.payment_risk where connection = ?")
            if _exists(con, "insights", "payment_risk")
            else []
        )
        self.reminders = (
            q("select * from insights.reminders where connection = ? and status = 'due'")
            if _exists(con, "insights", "reminders")
            else []
        )
        self.tasks_made: set[str] = set()  # reminder refs (<invoice id>|<step>) whose task was created
        if _exists(con, "writeback", "plan"):
            self.tasks_made = {
                r["ref"]
                for r in q(
                    "select distinct ref from writeback.plan where connection = ? and system = 'crm' "
                    "and entity = 'task' and op = 'create' and status = 'applied'"
                )
            }
        links = q("select * from recon.customer_links where connection = ?") if has_recon else []
        self.linked = [r for r in links if r["status"] == "linked"]
        self.invoice_links = q("select * from recon.invoice_links where connection = ?") if has_recon else []
        self.crm_of_books: dict[str, str] = {}
        self.books_of_crm: dict[str, str] = {}
        for r in sorted(self.linked, key=lambda r: -float(r["confidence"] or 0)):
            self.crm_of_books.setdefault(r["books_id"], r["crm_id"])
            self.books_of_crm.setdefault(r["crm_id"], r["books_id"])

    def kind(self, kind: str) -> list[dict]:
        return [d for d in self.open if d["kind"] == kind]

    def defaults(self) -> tuple[str | None, str | None]:
        """The organisation's own most used (account code, tax code) on sales lines."""
        pairs = Counter((r["account_code"], r["tax_code"]) for r in self.lines if r["account_code"])
        return pairs.most_common(1)[0][0] if pairs else (None, None)


def _src(d: dict) -> str:
    return f"recon.discrepancies({d['kind']}; books={d['books_id'] or '-'}; crm={d['crm_id'] or '-'}; field={d['field'] or '-'})"


def _creates(system, entity, ref, values: dict, policy, reason, source) -> list[Change]:
    return [
        Change(system, entity, "create", "", ref, f, None, v, policy, reason, source)
        for f, v in values.items()
        if v is not None and v != ""
    ]


# ---------------------------------------------------------------------------------------------
# Policies: each World -> changes


def xero_customer_to_crm(w: World, p: Policies) -> list[Change]:
    # contacts upsert on their email: one that already exists (at another account) is never moved
    known = {(c["email"] or "").strip().lower() for c in w.contacts.values()} - {""}
    out: list[Change] = []
    owed, overdue = books_balances(w)
    for d in w.kind("customer_missing_in_crm"):
        b = w.books.get(d["books_id"])
        if b is None or b["status"] not in (None, "active"):
            continue  # archived or being erased (GDPR): never copied
        reason = f"books customer {b['name']!r} has no CRM account"
        values = {
            "name": b["name"], "phone": b["phone"], **{k: b[k] for k in ADDRESS}, "tax_number": b["tax_number"],
            "currency": b["currency"], "account_number": b["account_number"], "books_link": b["customer_id"],
            "outstanding_balance": owed[b["customer_id"]], "overdue_balance": overdue[b["customer_id"]],
        }  # fmt: skip
        out += _creates(CRM, "account", b["customer_id"], values, "xero_customer_to_crm", reason, _src(d))
        if b["email"] and b["email"].strip().lower() not in known:
            person = {
                "first_name": b["first_name"], "last_name": b["last_name"] or b["name"], "email": b["email"],
                "mobile": b["mobile"], "account": placeholder(CRM, "account", b["customer_id"]),
            }  # fmt: skip
            ref = f"{b['customer_id']}|{b['email'].strip().lower()}"
            out += _creates(
                CRM, "contact", ref, person, "xero_customer_to_crm", reason + ": its primary contact", _src(d)
            )
            known.add(b["email"].strip().lower())
    return out + _missing_primary_contacts(w, known)


def _missing_primary_contacts(w: World, known: set[str]) -> list[Change]:
    """An account we created (it carries the books link) whose books customer's person is not in the CRM:
    its contact, planned from the state that exists, so a run that died between the account and its
    contact is finished by the next one (the account's own create is no longer planned then)."""
    out: list[Change] = []
    for a in sorted(w.accounts.values(), key=lambda r: r["account_id"]):
        b = w.books.get(a["books_link"] or "")
        if b is None or a["books_link"] not in w.our_accounts or b["status"] not in (None, "active"):
            continue
        email = (b["email"] or "").strip().lower()
        if not email or email in known:
            continue
        known.add(email)
        person = {
            "first_name": b["first_name"], "last_name": b["last_name"] or b["name"], "email": b["email"],
            "mobile": b["mobile"], "account": a["account_id"],
        }  # fmt: skip
        out += _creates(CRM, "contact", f"{b['customer_id']}|{email}", person, "xero_customer_to_crm",
                        f"CRM account {a['name']!r} (created from books customer {b['name']!r}) lacks its primary contact",
                        f"canonical.crm_accounts({a['account_id']}; books_link={b['customer_id']})")  # fmt: skip
    return out


def _free_name(name: str, taken: set[str], suffix: str) -> str:
    """Xero wants active contact names unique: a taken name gets the CRM reference appended."""
    return name if name.casefold() not in taken else f"{name} ({suffix})"


def crm_account_to_xero(w: World, p: Policies) -> list[Change]:
    taken = {(b["name"] or "").casefold() for b in w.books.values() if b["status"] in (None, "active")}
    out: list[Change] = []
    for d in w.kind("customer_missing_in_books"):
        a = w.accounts.get(d["crm_id"])
        if a is None or not a["name"]:
            continue
        person = w.contacts.get(a["primary_contact_id"] or "") or {}
        name = _free_name(a["name"], taken, a["account_number"] or a["account_id"])
        taken.add(name.casefold())
        reason = (
            f"CRM account {a['name']!r} is a customer ({d.get('detail') or 'won deals'}) and has no books contact"
            + ("" if name == a["name"] else f"; named {name!r} (an active books contact holds the name)")
        )
        values = {
            "name": name, "first_name": person.get("first_name"), "last_name": person.get("last_name"),
            "email": a["email"], "phone": a["phone"], **{k: a[k] for k in ADDRESS}, "tax_number": a["tax_number"],
            "currency": a["currency"], "crm_link": a["account_id"],
        }  # fmt: skip
        out += _creates(BOOKS, "customer", a["account_id"], values, "crm_account_to_xero", reason, _src(d))
    return out


CENT = Decimal("0.01")
AMOUNT_TOLERANCE = Decimal("0.50")  # reconciliation's: a deal rounded to whole units is not a mismatch


def _plain(value: Decimal) -> str:
    """A quantity or price without trailing zeros or an exponent (2, 12.5, 10)."""
    return format(value.normalize(), "f")


def _clean(line: dict) -> dict:
    return {k: v for k, v in line.items() if v is not None}


def deal_lines(
    w: World, deal: dict, account_code: str | None, tax_code: str | None
) -> tuple[list[dict], str, str]:
    """The invoice lines for a deal: (lines, amounts_tax, what they were built from).

    From the deal's products where it has them: each a line with the product's code as the books item
    (the books fill in the item's own sales account and tax type), its quantity and its unit price before
    tax. Only when those come, with the tax the books charge on them, to the deal's amount (within
    reconciliation's tolerance): otherwise (a discount or a changed scope the products do not show) one
    line at the deal's amount, tax included, so the invoice never disagrees with its deal.
    """
    single = _clean({"description": deal["name"] or f"DEAL-{deal['deal_id']}", "quantity": "1",
                     "unit_price": text(deal["amount"]), "account_code": account_code, "tax_code": tax_code})  # fmt: skip
    products = w.deal_lines.get(deal["deal_id"]) or []
    if not products and w.unavailable.get("deal_products"):
        why = w.unavailable["deal_products"]
        return (
            [single],
            "inclusive",
            f"one line at the deal's amount (the CRM serves no deal products: {why})",
        )
    if not products or any(r["quantity"] is None or r["unit_price"] is None for r in products):
        return [single], "inclusive", "one line at the deal's amount (no products on the deal)"
    default_rate = w.tax_rate.get(tax_code or "")
    lines, total = [], Decimal(0)
    for r in products:
        known = r["product_code"] in w.item_codes
        net = (r["quantity"] * r["unit_price"]).quantize(CENT)
        rate = w.tax_rate.get(w.item_tax.get(r["product_code"], ""), default_rate) if known else default_rate
        if rate is None:
            return (
                [single],
                "inclusive",
                "one line at the deal's amount (the books' tax on its products is unknown)",
            )
        total += net + (net * rate).quantize(CENT)
        lines.append(_clean({
            "description": r["product_name"], "item_code": r["product_code"] if known else None,
            "quantity": _plain(r["quantity"]), "unit_price": _plain(r["unit_price"]),
            "account_code": None if known else account_code, "tax_code": None if known else tax_code,
        }))  # fmt: skip
    if abs(total - deal["amount"]) > AMOUNT_TOLERANCE:
        return (
            [single],
            "inclusive",
            (f"one line at the deal's amount (its products come to {total} with tax, not {deal['amount']})"),
        )
    return lines, "exclusive", f"{len(lines)} line(s) from the deal's products"


def _to_invoice(w: World, p: Policies) -> list[tuple[dict | None, str, str]]:
    """The won deals this plan invoices: (deal, source, books contact placeholder or "")."""
    todo: list[tuple[dict | None, str, str]] = [
        (w.deals.get(d["crm_id"]), _src(d), "") for d in w.kind("deal_not_invoiced")
    ]
    if p.active("crm_account_to_xero"):  # won deals of accounts this plan creates in the books
        linked_deals = {r["deal_id"] for r in w.invoice_links}
        for d in w.kind("customer_missing_in_books"):
            for deal in w.deals.values():
                if (
                    deal["account_id"] == d["crm_id"]
                    and deal["stage"] == "won"
                    and deal["deal_id"] not in linked_deals
                ):
                    todo.append((deal, _src(d), placeholder(BOOKS, "customer", d["crm_id"])))
    return todo


def deals_to_invoice(
    con: duckdb.DuckDBPyConnection, connection: str, policies: Policies, world: World | None = None
) -> list[str]:
    """Ids of the won deals the plan would invoice now (their products make the invoice lines): the
    uninvoiced ones of known customers and those of customers the same plan creates in the books."""
    if not policies.active("won_deal_to_invoice"):
        return []
    w = world if world is not None else World(con, connection, datetime.now(UTC).date())
    return sorted({deal["deal_id"] for deal, _, _ in _to_invoice(w, policies) if deal is not None})


def won_deal_to_invoice(w: World, p: Policies) -> list[Change]:
    account_code, tax_code = w.defaults()
    out: list[Change] = []
    for deal, source, contact in _to_invoice(w, p):
        if deal is None or deal["amount"] is None:
            continue
        contact = contact or w.books_of_crm.get(deal["account_id"] or "", "")
        if not contact:
            continue
        ref = f"DEAL-{deal['deal_id']}"
        issued = deal["close_date"] or w.today
        lines, amounts_tax, built = deal_lines(w, deal, account_code, tax_code)
        values = {
            "contact": contact, "reference": ref, "issue_date": issued,
            "due_date": issued + timedelta(days=p.due_days), "currency": deal["currency"],
            "status": p.invoice_status, "amounts_tax": amounts_tax, "lines": lines,
        }  # fmt: skip
        reason = (
            f"won deal {deal['name']!r} ({deal['amount']} {deal['currency'] or ''}) has no invoice: {built}"
        )
        out += _creates(BOOKS, "invoice", ref, values, "won_deal_to_invoice", reason, source)
        for f, attr in (("books_invoice_id", "id"), ("books_invoice_number", "number")):
            out.append(Change(CRM, "deal", "update", deal["deal_id"], "", f, deal[f],
                              placeholder(BOOKS, "invoice", ref, attr), "won_deal_to_invoice",
                              "the deal records the invoice raised for it", source))  # fmt: skip
        if p.invoice_status == "AUTHORISED" and p.email_invoices:
            out.append(Change(BOOKS, "invoice", "email", "", ref, "sent", None, "true", "won_deal_to_invoice",
                              "authorised invoices are emailed when configured", source))  # fmt: skip
    out += _deal_invoice_links(w)
    # A draft write-back raised from a deal follows the deal until a person approves it. Any other invoice
    # is the books' (they own the financial fields); posted documents (open, paid) are never edited.
    for d in w.kind("amount_mismatch"):
        inv, deal = w.invoices.get(d["books_id"]), w.deals.get(d["crm_id"])
        if inv is None or deal is None or deal["amount"] is None or inv["status"] != "draft":
            continue
        if inv["invoice_id"] not in w.ours:
            continue
        if (inv["reference"] or "") != f"DEAL-{deal['deal_id']}" or inv["currency"] != deal["currency"]:
            continue
        lines, amounts_tax, built = deal_lines(w, deal, account_code, tax_code)
        why = f"draft {inv['number']} raised from deal {deal['name']!r} follows its amount {deal['amount']}: {built}"
        out.append(Change(BOOKS, "invoice", "update", inv["invoice_id"], "", "lines", text(inv["total"]),
                          lines, "won_deal_to_invoice", why, _src(d)))  # fmt: skip
        if (inv["amounts_tax"] or "") != amounts_tax:
            out.append(Change(BOOKS, "invoice", "update", inv["invoice_id"], "", "amounts_tax", inv["amounts_tax"],
                              amounts_tax, "won_deal_to_invoice", why, _src(d)))  # fmt: skip
    return out


def _deal_invoice_links(w: World) -> list[Change]:
    """A books invoice write-back raised whose Reference names a won deal (`DEAL-<id>`) the deal does not
    link yet: the deal's invoice id and number, planned from the state that exists, so a run that died
    between the invoice and its deal's update is finished by the next one. (Invoices the books raised
    themselves are linked to their deals by reconciliation; writing links on those is no policy's.)"""
    out: list[Change] = []
    seen: set[str] = set()
    for inv in sorted(w.invoices.values(), key=lambda r: (r["issue_date"] or date.min, r["invoice_id"])):
        ref = (inv["reference"] or "").strip()
        if inv["type"] != "sale" or inv["status"] not in LIVE or ref not in w.our_invoices:
            continue
        deal = w.deals.get(ref.removeprefix("DEAL-"))
        if deal is None or deal["stage"] != "won" or deal["deal_id"] in seen:
            continue
        seen.add(deal["deal_id"])
        if deal["books_invoice_id"] not in (None, "", inv["invoice_id"]):
            continue  # the deal links another invoice: a person's (or an earlier) choice stands
        source = f"canonical.books_invoices({inv['invoice_id']}; reference={ref})"
        for f, value in (("books_invoice_id", inv["invoice_id"]), ("books_invoice_number", inv["number"])):
            if value and deal[f] != value:
                out.append(Change(CRM, "deal", "update", deal["deal_id"], "", f, deal[f], value,
                                  "won_deal_to_invoice", f"invoice {inv['number'] or inv['invoice_id']} was raised for this deal",
                                  source))  # fmt: skip
    return out


def _invoice(r: dict) -> Invoice:
    return Invoice(role=Role.BOOKS, books_id=r["invoice_id"], status=DocumentStatus(r["status"]),
                   due_date=r["due_date"], amount_due=r["amount_due"], amount_paid=r["amount_paid"],
                   amount_credited=r["amount_credited"])  # fmt: skip


def _payment_fields(w: World, inv: dict, entity: str, record: str, held: dict, source: str) -> list[Change]:
    """Payment status, amount paid and last payment date of books invoice `inv`, where the CRM record
    `held` (a deal or a CRM invoice) says otherwise."""
    out: list[Change] = []
    expected = payment_status_of(_invoice(inv), w.today)
    said = PAYMENT_CLASS.get(held["payment_status"] or "", "unpaid")
    if expected is not None and PAYMENT_CLASS[expected.value] != said:
        out.append(Change(CRM, entity, "update", record, "", "payment_status", held["payment_status_raw"],
                          expected.value, "payment_to_crm", f"the books say invoice {inv['number']} is {expected.value}",
                          source))  # fmt: skip
    paid = inv["amount_paid"] or Decimal(0)
    if (held["amount_paid"] is not None or paid) and held["amount_paid"] != paid:
        out.append(Change(CRM, entity, "update", record, "", "amount_paid", held["amount_paid"], paid,
                          "payment_to_crm", f"paid on invoice {inv['number']}", source))  # fmt: skip
    last = w.last_payment.get(inv["invoice_id"])
    if last is not None and held["last_payment_date"] != last:
        out.append(Change(CRM, entity, "update", record, "", "last_payment_date", held["last_payment_date"], last,
                          "payment_to_crm", f"last payment on invoice {inv['number']}", source))  # fmt: skip
    return out


def _crm_invoice_pairs(w: World) -> list[tuple[dict, dict, str]]:
    """(books invoice, CRM invoice, how they are linked): by the books id the CRM invoice stores, else by
    its number within the same linked customer (as reconciliation pairs them)."""
    by_number = {
        (inv["number"], inv["customer_id"]): inv
        for inv in w.invoices.values()
        if inv["type"] == "sale" and inv["number"]
    }
    out = []
    for ci in sorted(w.crm_invoices, key=lambda r: r["invoice_id"]):
        if ci["status"] == "void":
            continue
        inv = w.invoices.get(ci["books_invoice_id"] or "")
        how = "its stored books id"
        if inv is None and ci["number"] and ci["account_id"]:
            books = w.books_of_crm.get(ci["account_id"])
            inv = by_number.get((ci["number"], books)) if books else None
            how = "its number"
        if inv is not None and inv["type"] == "sale":
            out.append((inv, ci, how))
    return out


def payment_to_crm(w: World, p: Policies) -> list[Change]:
    out: list[Change] = []
    for link in w.invoice_links:
        inv, deal = w.invoices.get(link["invoice_id"]), w.deals.get(link["deal_id"])
        if inv is None or deal is None or inv["type"] != "sale" or inv["status"] not in ("open", "paid"):
            continue
        source = (
            f"books invoice {inv['invoice_id']} ({inv['number']}) via recon.invoice_links({link['method']})"
        )
        out += _payment_fields(w, inv, "deal", deal["deal_id"], deal, source)
    for inv, ci, how in _crm_invoice_pairs(w):
        if inv["status"] not in ("open", "paid"):
            continue
        source = (
            f"books invoice {inv['invoice_id']} ({inv['number']}) = CRM invoice {ci['invoice_id']} by {how}"
        )
        out += _payment_fields(w, inv, "invoice", ci["invoice_id"], ci, source)
    owed, overdue = books_balances(w)
    for crm in sorted(w.books_of_crm):
        a = w.accounts.get(crm)
        if a is None or a["outstanding"] is None:
            continue  # a balance field nobody keeps is left alone (the rule skips it too)
        books = w.books_of_crm[crm]
        primary = w.crm_of_books.get(books) == crm  # a books customer's money shows on one account
        for f, col, value in (
            ("outstanding_balance", "outstanding", owed[books] if primary else Decimal(0)),
            ("overdue_balance", "overdue", overdue[books] if primary else Decimal(0)),
        ):
            if a[col] != value:
                out.append(Change(CRM, "account", "update", crm, "", f, a[col], value, "payment_to_crm",
                                  "what the books say the customer owes", f"canonical.books_invoices (open) of {w.books_of_crm[crm]}"))  # fmt: skip
    return out


def books_balances(w: World) -> tuple[dict[str, Decimal], dict[str, Decimal]]:
    """(owed, overdue) per books customer: its open sales invoices' amounts due, and those past due. The one
    definition of what a CRM account's balances say, when it is created and when it is kept: a books
    customer's own balance field can differ (QuickBooks nets an unapplied credit memo into Balance), and
    an account created from one was corrected by the next plan."""
    owed: dict[str, Decimal] = defaultdict(Decimal)
    overdue: dict[str, Decimal] = defaultdict(Decimal)
    for inv in w.invoices.values():
        customer = inv["customer_id"] or ""
        if customer and inv["type"] == "sale" and inv["status"] == "open":
            owed[customer] += inv["amount_due"] or 0
            if inv["due_date"] is not None and inv["due_date"] < w.today:
                overdue[customer] += inv["amount_due"] or 0
    return owed, overdue


def bill_tags_to_crm(w: World, p: Policies) -> list[Change]:
    out: list[Change] = []
    seen: set[str] = set()
    for inv in sorted(w.invoices.values(), key=lambda r: r["invoice_id"]):
        if inv["type"] != "bill" or inv["status"] not in LIVE:
            continue
        crm = w.crm_of_books.get(inv["customer_id"] or "")
        if not crm or crm in seen or crm not in w.accounts:
            continue
        seen.add(crm)
        if p.supplier_tag in (w.accounts[crm]["tags"] or []):
            continue
        out.append(Change(CRM, "account", "tag", crm, "", "tags", None, p.supplier_tag, "bill_tags_to_crm",
                          f"supplier of bill {inv['number'] or inv['invoice_id']}",
                          f"canonical.books_invoices({inv['invoice_id']})"))  # fmt: skip
    return out


def field_corrections(w: World, p: Policies) -> list[Change]:
    out: list[Change] = []
    for d in w.kind("customer_field_mismatch"):
        b, a = w.books.get(d["books_id"]), w.accounts.get(d["crm_id"])
        owner = p.owner(d["field"])
        if b is None or a is None or owner is None or b["status"] == "gdpr_request":
            continue
        reason = f"{d['field']} is owned by the {owner}"
        if d["field"] == "billing_address":  # written whole: a partial address would mix two
            src, fields = (b, a) if owner == BOOKS else (a, b)
            pairs = {k: (fields[k], src[k]) for k in ADDRESS if src[k] is not None}
        elif d["field"] in ("email", "phone", "tax_number"):
            src, fields = (b, a) if owner == BOOKS else (a, b)
            pairs = {d["field"]: (fields[d["field"]], src[d["field"]])}
        else:
            continue
        if owner == BOOKS and d["field"] == "email":  # a CRM account's email is its primary contact's
            if not a["primary_contact_id"]:
                continue
            system, entity, record = CRM, "contact", a["primary_contact_id"]
        elif owner == BOOKS:
            system, entity, record = CRM, "account", a["account_id"]
        else:
            system, entity, record = BOOKS, "customer", b["customer_id"]
        whole = d["field"] == "billing_address"
        for f, (old, new) in pairs.items():
            if new is not None and (old != new or whole):
                out.append(
                    Change(
                        system,
                        entity,
                        "update",
                        record,
                        "",
                        f,
                        old,
                        new,
                        "field_corrections",
                        reason,
                        _src(d),
                    )
                )
    return out


POLICY_FUNCTIONS: dict[str, Callable[[World, Policies], list[Change]]] = {
    "xero_customer_to_crm": xero_customer_to_crm,
    "crm_account_to_xero": crm_account_to_xero,
    "won_deal_to_invoice": won_deal_to_invoice,
    "payment_to_crm": payment_to_crm,
    "bill_tags_to_crm": bill_tags_to_crm,
    "field_corrections": field_corrections,
}

# What each discrepancy kind is fixed by (None: no policy fixes it, and why).
FIXED_BY: dict[str, tuple[str | None, str]] = {
    "customer_missing_in_crm": ("xero_customer_to_crm", ""),
    "customer_missing_in_books": ("crm_account_to_xero", ""),
    "deal_not_invoiced": ("won_deal_to_invoice", ""),
    "payment_status_stale": ("payment_to_crm", ""),
    "balance_mismatch": ("payment_to_crm", ""),
    "customer_field_mismatch": ("field_corrections", ""),
    "customer_duplicate": (None, "merging two records is a person's decision"),
    "invoice_without_deal": (None, "a deal is a sales forecast: nobody should invent one after the fact"),
    "amount_mismatch": (
        None,
        "the books own the amounts; which is right (discount, scope change, error) needs "
        "a person (only a draft write-back raised itself follows its deal)",
    ),
    "currency_mismatch": (None, "a deal in another currency needs a person to re-quote or re-link it"),
    "invoice_missing_in_crm": (None, "CRM invoices are the CRM's own documents; not written by write-back"),
    # projects_to_crm shows the figures on the deal and account; the fix itself is in the books
    "time_not_invoiced": (None, "chargeable time is invoiced in the books by a person (Xero Projects)"),
    "project_over_budget": (
        None,
        "a project over its estimate needs a person: re-quote, change order or absorb",
    ),
}


def changes_frame(connection: str, changes: list[Change]) -> pd.DataFrame:
    """Rows of `writeback.plan` (without status); one per change, deduplicated by change id."""
    keys: dict[tuple, str] = {}
    by_group: dict[tuple, list[Change]] = defaultdict(list)
    for c in changes:
        by_group[c.group].append(c)
    for group, members in by_group.items():
        keys[group] = ledger.digest(connection, *group, *sorted(f"{c.field}={text(c.new)}" for c in members))
    rows, seen = [], set()
    for c in changes:
        cid = ledger.digest(connection, *c.group, c.field, text(c.new))
        if cid in seen:
            continue
        seen.add(cid)
        rows.append({
            "connection": connection, "change_id": cid, "system": c.system, "entity": c.entity, "op": c.op,
            "record": c.record, "ref": c.ref, "field": c.field, "old": text(c.old), "new": text(c.new),
            "policy": c.policy, "reason": c.reason, "source": c.source, "idempotency_key": keys[c.group],
        })  # fmt: skip
    return pd.DataFrame(rows, columns=ledger.PLAN_COLUMNS)


def compute(
    con: duckdb.DuckDBPyConnection,
    connection: str,
    policies: Policies,
    today: date | None = None,
    capabilities: Capabilities | None = None,
    world: World | None = None,
) -> pd.DataFrame:
    """Every change the active policies want for `connection`, as plan rows. Reads only the mirror (or
    `world`, the same connection's mirror already loaded in this step and unchanged since)."""
    unavailable = dict(capabilities.unavailable) if capabilities else {}
    from xz_pipeline.writeback.insight_plan import INSIGHT_POLICIES  # it builds on Change and World
    from xz_pipeline.writeback.projects import ProjectFacts, projects_to_crm

    if world is None:
        w = World(con, connection, today or datetime.now(UTC).date(), unavailable)
    else:
        w, w.unavailable = world, unavailable
    if policies.active("projects_to_crm"):
        w.project_facts = ProjectFacts(con, connection)
    functions = {**POLICY_FUNCTIONS, **INSIGHT_POLICIES, "projects_to_crm": projects_to_crm}
    changes = [c for name, fn in functions.items() if policies.active(name) for c in fn(w, policies)]
    return changes_frame(connection, changes)


_FETCHED = {
    ("books", "customer"): ("books_customers", "customer_id"),
    ("books", "invoice"): ("books_invoices", "invoice_id"),
    ("crm", "account"): ("crm_accounts", "account_id"),
    ("crm", "contact"): ("crm_contacts", "contact_id"),
    ("crm", "deal"): ("crm_deals", "deal_id"),
    ("crm", "invoice"): ("crm_invoices", "invoice_id"),
}


def echoes(con: duckdb.DuckDBPyConnection, connection: str, frame: pd.DataFrame) -> set[str]:
    """Changes already applied whose target the mirror has not re-read since: proposing them again is
    our own write not yet seen (an echo), not a new change. A create already applied is always one."""
    if frame.empty or not _exists(con, "writeback", "plan"):
        return set()
    applied = {
        cid: at
        for cid, at in con.execute(
            "select change_id, applied_at from writeback.plan where connection = ? and status = 'applied'",
            [connection],
        ).fetchall()
    }
    out: set[str] = set()
    for row in frame.itertuples():
        at = applied.get(row.change_id)
        if at is None:
            continue
        if row.op in ("create", "email"):
            out.add(row.change_id)
            continue
        view, key = _FETCHED.get((row.system, row.entity), (None, None))
        fetched = (
            con.execute(
                f"select fetched_at from canonical.{view} where connection = ? and {key} = ?",
                [connection, row.record],
            ).fetchone()  # fmt: skip
            if view
            else None
        )
        if fetched is None or fetched[0] is None or fetched[0] <= at:
            out.add(row.change_id)
    return out


# A policy whose key field the CRM lacks is skipped whole: without it its writes cannot be idempotent.
REQUIRES: dict[str, tuple[str, str]] = {"xero_customer_to_crm": ("account", "books_link")}
NOT_IN_ORG = "not in this org: "


def unsupported(frame: pd.DataFrame, capabilities: Capabilities | None) -> dict[str, str]:
    """change_id -> why the CRM org cannot take that change (its field is missing or unmapped)."""
    if capabilities is None or frame.empty:
        return {}
    missing = capabilities.missing_fields
    out: dict[str, str] = {}
    for row in frame.itertuples():
        need = REQUIRES.get(row.policy)
        if need in missing:
            out[row.change_id] = f"{row.policy} is skipped: {missing[need]}"
        elif row.system == CRM and (row.entity, row.field) in missing:
            out[row.change_id] = missing[(row.entity, row.field)]
    return out


def build_plan(
    store: Store,
    connection: str,
    policies: Policies,
    today: date | None = None,
    capabilities: Capabilities | None = None,
    world: World | None = None,
) -> dict:
    """Compute the plan of `connection` and merge it into `writeback.plan`; counts for the report.
    With the CRM's `capabilities`, a change to a field the org lacks is stored as `skipped` with the
    reason (and planned again once the field exists). `world`: see `compute`."""
    with store.read() as con:
        frame = compute(con, connection, policies, today, capabilities, world)
        suppressed = echoes(con, connection, frame)
    with store.write() as con:
        counts = ledger.merge_plan(con, connection, frame, suppressed)
    skipped = unsupported(frame, capabilities)
    revived = _revive(store, connection, frame, skipped)
    by_reason: dict[str, list[str]] = defaultdict(list)
    for cid, why in skipped.items():
        by_reason[why].append(cid)
    n = sum(ledger.skip(store, connection, ids, NOT_IN_ORG + why) for why, ids in by_reason.items())
    counts.update(changes=len(frame), echoes=len(suppressed), by_policy=dict(Counter(frame["policy"])),
                  skipped=n, revived=revived)  # fmt: skip
    return counts


def _revive(store: Store, connection: str, frame: pd.DataFrame, skipped: dict[str, str]) -> int:
    """Changes skipped because the org lacked a field that it now has are planned again."""
    if frame.empty:
        return 0
    with store.read() as con:
        held = [
            cid
            for (cid,) in con.execute(
                "select change_id from writeback.plan where connection = ? and status = 'skipped' "
                "and starts_with(error, ?) and change_id in (select unnest(?))",
                [connection, NOT_IN_ORG, list(frame["change_id"])],
            ).fetchall()
            if cid not in skipped
        ]
    ledger.set_status(store, connection, held, "planned", None)
    return len(held)


def plan_table(store: Store, connection: str | None = None, *, limit: int = 200) -> str:
    """The pending plan (planned and rejected rows) as a text table, for `xz plan`."""
    with store.read() as con:
        ledger_rows = ledger.plan_rows(con, connection)
    rows = ledger_rows[ledger_rows["status"].isin(ledger.PENDING)] if len(ledger_rows) else ledger_rows
    if rows.empty:
        return "write-back plan: nothing to change"
    cols = [
        "connection",
        "status",
        "policy",
        "system",
        "entity",
        "op",
        "record",
        "ref",
        "field",
        "old",
        "new",
        "error",
    ]
    shown = rows[cols].head(limit).fillna("").astype(str).map(lambda v: v if len(v) <= 40 else v[:37] + "...")
    head = f"write-back plan: {len(rows)} pending change(s)"
    by = rows.groupby(["system", "policy"]).size()
    summary = "; ".join(f"{s}/{p}: {n}" for (s, p), n in by.items())
    more = f"\n... {len(rows) - limit} more" if len(rows) > limit else ""
    refused = int((rows["status"] == "rejected").sum())
    hint = (
        f"\n{refused} change(s) the API refused are held back (the error column says why): fix the record "
        "there, then `xz apply --retry-rejected` sends them once more"
        if refused
        else ""
    )
    return f"{head} ({summary})\n{shown.to_string(index=False)}{more}{hint}"
