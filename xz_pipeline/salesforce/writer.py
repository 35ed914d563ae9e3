"""The CRM writer for Salesforce: write-back's `CrmWriter` role (writeback/ports.py) over `SalesforceClient`.

Canonical records in, Salesforce records out through `mapping.py`; each write is one sObject Collections
call of at most 200 records (`allOrNone=false`: a refused record costs only itself, and each record's
result comes back in order as one Outcome). New accounts are upserted on their books id
(`Books_Customer_Id__c`, an external-id field), so a replay finds what the first call made; contacts are
looked up by email first and updated, or created. `composite` sends several writes in one Composite call
(at most 5 Collections subrequests a call, Salesforce's cap), and `upsert_account_with_contacts` writes an
account and then its contacts in one call, the contacts naming the account by reference (`@{acct.id}`).

What the org cannot take is declared in `capabilities`, so the plan skips it with the reason:
- **No CRM invoices.** Salesforce has no invoice object: `canonical.crm_invoices` holds no Salesforce rows,
  every (invoice, field) write is skipped, and the discrepancy kinds that compare CRM invoices with the
  books' do not apply to Salesforce connections (deals carry the books invoice instead).
- **No tags** on accounts (bill_tags_to_crm is skipped).
- Our custom fields the org lacks (nobody ran `xz setup salesforce`, nothing mapped), and CurrencyIsoCode in
  a single-currency org.

(No `from __future__ import annotations`: Dagster inspects resource annotations.)
"""

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any

import dagster as dg

from xz_pipeline import settings
from xz_pipeline.core.canonical import Customer, Person
from xz_pipeline.core.errors import ApiError
from xz_pipeline.core.http import CallMeter
from xz_pipeline.core.mirror import write_entity
from xz_pipeline.core.store import Store
from xz_pipeline.salesforce import fieldmap, tables
from xz_pipeline.salesforce import schema as schema_mod
from xz_pipeline.salesforce.client import (
    COLLECTION_MAX,
    SalesforceClient,
    SaveResult,
    SubRequest,
    literal,
    save_results,
)
from xz_pipeline.salesforce.fieldmap import FieldMap
from xz_pipeline.salesforce.mapping import (
    ACCOUNT_FIELDS,
    DEAL_FIELDS,
    account_to_salesforce,
    contact_to_salesforce,
    update_record,
)
from xz_pipeline.salesforce.resources import SalesforceResource
from xz_pipeline.writeback.ports import Batch, Capabilities, Outcome

SOBJECTS = {"account": "Account", "contact": "Contact", "deal": "Opportunity"}
LINK = "Books_Customer_Id__c"
COMPOSITE_COLLECTIONS = 5  # Collections subrequests in one Composite call (Salesforce's cap)
NO_INVOICES = "Salesforce has no CRM invoices: kinds comparing CRM invoices do not apply to this connection"
NO_TAGS = "Salesforce accounts carry no tags"
# What write-back writes in the CRM, as (canonical entity, plan field) -> (sObject, our API name).
CRM_FIELDS: dict[tuple[str, str], tuple[str, str]] = {
    ("account", "books_link"): ("Account", LINK),
    ("account", "tax_number"): ("Account", "Tax_Number__c"),
    ("account", "outstanding_balance"): ("Account", "Outstanding_Balance__c"),
    ("account", "overdue_balance"): ("Account", "Overdue_Balance__c"),
    ("account", "currency"): ("Account", "CurrencyIsoCode"),
    ("account", "payment_risk"): ("Account", "Payment_Risk__c"),
    ("account", "expected_pay_date"): ("Account", "Expected_Pay_Date__c"),
    ("deal", "books_invoice_id"): ("Opportunity", "Books_Invoice_Id__c"),
    ("deal", "books_invoice_number"): ("Opportunity", "Books_Invoice_Number__c"),
    ("deal", "payment_status"): ("Opportunity", "Payment_Status__c"),
    ("deal", "amount_paid"): ("Opportunity", "Amount_Paid__c"),
    ("deal", "last_payment_date"): ("Opportunity", "Last_Payment_Date__c"),
    ("deal", "currency"): ("Opportunity", "CurrencyIsoCode"),
    ("deal", "payment_risk"): ("Opportunity", "Payment_Risk__c"),
    ("deal", "expected_pay_date"): ("Opportunity", "Expected_Pay_Date__c"),
}
INVOICE_FIELDS = ("books_invoice_id", "payment_status", "amount_paid", "last_payment_date", "currency")
TASK_FIELDS = {"subject": "Subject", "due_date": "ActivityDate", "description": "Description"}


@dataclass
class Part:
    """One Collections call of a write: which records (by position in the write) go where."""

    method: str
    path: str
    sobject: str
    records: list[dict]
    positions: list[int]


def _outcome(r: SaveResult) -> Outcome:
    error = "" if r.ok else f"{r.code}: {r.message}" + (f" ({r.field})" if r.field else "")
    extra = {"created": r.created} if r.created is not None else {}
    return Outcome(ok=r.ok, record_id=r.id, error=error, code=r.code, extra=extra)


def _batch(outcomes: list[Outcome]) -> Batch:
    failed = sum(not o.ok for o in outcomes)
    return Batch(outcomes, 200 if not failed else (207 if failed < len(outcomes) else 400))


def _iso_day(value: Any) -> str | None:
    if value is None:
        return None
    return value.isoformat() if isinstance(value, date) else str(value)[:10]


def _task(task: Mapping[str, Any]) -> dict[str, Any]:
    """A Task: a reminder to chase, related to its account or opportunity (`WhatId`)."""
    out: dict[str, Any] = {TASK_FIELDS[k]: v for k, v in task.items() if k in TASK_FIELDS and v is not None}
    out["ActivityDate"] = _iso_day(task.get("due_date"))
    if task.get("what_id"):
        out["WhatId"] = str(task["what_id"])
    return out


class SalesforceCrmWriter:
    """One connection's CRM writer. `write_calls` counts write calls (each at most 200 records)."""

    batch_size = COLLECTION_MAX
    tag_batch_size = COLLECTION_MAX

    def __init__(self, client: SalesforceClient, connection: str, *, store: Store | None = None,
                 fm: FieldMap | None = None) -> None:  # fmt: skip
        self.client, self.connection = client, connection
        self.write_calls = 0
        self.store = store
        self.fm = fm if fm is not None else fieldmap.load(connection)
        self._schema: schema_mod.OrgSchema | None = None
        self._composite_size: int | None = None

    @property
    def schema(self) -> schema_mod.OrgSchema:
        if self._schema is None:
            self._schema = schema_mod.ensure(self.client, self.store, self.connection, self.fm)
        return self._schema

    @property
    def calls(self) -> int:
        return self.client.meter.snapshot()["calls"]

    def close(self) -> None:
        self.client.close()

    def _out(self, sobject: str, record: Mapping) -> dict:
        """A record in our names as the org takes it: its names and words, only the fields it has."""
        return self.schema.writable(sobject, self.fm.outgoing(sobject, record))

    def _link(self) -> str | None:
        name = self.fm.api("Account", LINK)
        return name if self.schema.has("Account", name) else None

    # -- what the org cannot take -----------------------------------------------------------------

    def capabilities(self, store: Store | None = None) -> Capabilities:
        if store is not None and self.store is None:
            self.store = store
        schema = self.schema
        missing: dict[tuple[str, str], str] = {}
        for key, (sobject, ours) in CRM_FIELDS.items():
            theirs = self.fm.api(sobject, ours)
            if not schema.has_object(sobject):
                missing[key] = f"the org has no {sobject} object"
            elif not schema.has(sobject, theirs):
                if ours == "CurrencyIsoCode":
                    home = schema.home_currency or "its default currency"
                    missing[key] = (
                        f"{sobject}.CurrencyIsoCode does not exist in this org (single currency: {home})"
                    )
                else:
                    missing[key] = (
                        f"{sobject}.{theirs} does not exist in this org: run `xz setup salesforce` or map it"
                    )
        missing.update({("invoice", f): NO_INVOICES for f in INVOICE_FIELDS})
        missing[("account", "tags")] = NO_TAGS
        unavailable = {"crm_invoices": NO_INVOICES}
        if not schema.has_object("OpportunityLineItem"):
            unavailable["deal_products"] = schema.absent.get(
                "OpportunityLineItem", "the org has no opportunity products"
            )
        return Capabilities(missing_fields=missing, unavailable=unavailable)

    # -- writes as Collections calls ---------------------------------------------------------------

    def _parts(self, kind: str, args: tuple) -> tuple[list[Part], int, dict[int, Outcome]]:
        """The Collections calls one write takes, how many records it has, and outcomes known without a
        call (a record that cannot be sent)."""
        settled: dict[int, Outcome] = {}
        if kind in ("upsert_accounts", "update_accounts"):
            records = [self._out("Account", account_to_salesforce(a)) for a in args[0]]
            link = self._link()
            upsert, update, create = [], [], []
            for n, r in enumerate(records):
                if r.get("id") and (kind == "update_accounts" or not (link and r.get(link))):
                    update.append(n)
                elif kind == "update_accounts":
                    settled[n] = Outcome(False, None, "an account update needs its CRM id", "MISSING_ID")
                elif link and r.get(link):
                    upsert.append(n)
                else:
                    create.append(n)
            parts = []
            if upsert:
                parts.append(Part("PATCH", f"composite/sobjects/Account/{link}", "Account",
                                  [{k: v for k, v in records[n].items() if k != "id"} for n in upsert], upsert))  # fmt: skip
            if update:
                parts.append(
                    Part("PATCH", "composite/sobjects", "Account", [records[n] for n in update], update)
                )
            if create:
                parts.append(
                    Part("POST", "composite/sobjects", "Account", [records[n] for n in create], create)
                )
            return parts, len(records), settled
        if kind in ("upsert_contacts", "update_contacts"):
            persons: Sequence[Person] = args[0]
            records = [self._out("Contact", contact_to_salesforce(p)) for p in persons]
            if kind == "upsert_contacts":
                found = self._contacts_by_email(
                    [str(r["Email"]) for r in records if r.get("Email") and not r.get("id")]
                )
                for r in records:
                    if not r.get("id") and r.get("Email") and found.get(str(r["Email"]).lower()):
                        r["id"] = found[str(r["Email"]).lower()]
            update = [n for n, r in enumerate(records) if r.get("id")]
            create = [n for n, r in enumerate(records) if not r.get("id")]
            if kind == "update_contacts":
                settled.update(
                    {
                        n: Outcome(False, None, "a contact update needs its CRM id", "MISSING_ID")
                        for n in create
                    }
                )
                create = []
            parts = []
            if update:
                parts.append(
                    Part("PATCH", "composite/sobjects", "Contact", [records[n] for n in update], update)
                )
            if create:
                parts.append(
                    Part("POST", "composite/sobjects", "Contact", [records[n] for n in create], create)
                )
            return parts, len(records), settled
        if kind in ("update_deals", "set_fields"):
            entity, changes = ("deal", args[0]) if kind == "update_deals" else (args[0], args[1])
            sobject = SOBJECTS[entity]
            fields = DEAL_FIELDS if entity == "deal" else ACCOUNT_FIELDS
            if kind == "set_fields" and set().union(*[set(c) for _, c in changes]) - {
                "payment_risk",
                "expected_pay_date",
            }:
                raise KeyError("only payment_risk and expected_pay_date are set by insights")
            records = [self._out(sobject, update_record(rid, c, fields, entity)) for rid, c in changes]
            return (
                [Part("PATCH", "composite/sobjects", sobject, records, list(range(len(records))))],
                len(records),
                settled,
            )
        if kind == "create_tasks":
            records = [_task(t) for t in args[0]]
            return (
                [Part("POST", "composite/sobjects", "Task", records, list(range(len(records))))],
                len(records),
                settled,
            )
        if kind == "update_invoices":
            n = len(args[0])
            return [], n, {i: Outcome(False, None, NO_INVOICES, "NOT_SUPPORTED") for i in range(n)}
        if kind == "add_tags":
            n = len(args[0])
            return [], n, {i: Outcome(False, None, NO_TAGS, "NOT_SUPPORTED") for i in range(n)}
        raise ValueError(f"no CRM write {kind!r}")

    def _send(self, part: Part) -> list[SaveResult]:
        self.write_calls += 1
        if part.method == "POST":
            return self.client.create(part.sobject, part.records)
        if part.path == "composite/sobjects":
            return self.client.update(part.sobject, part.records)
        return self.client.upsert(part.sobject, part.path.rsplit("/", 1)[1], part.records)

    def _write(self, kind: str, args: tuple) -> Batch:
        parts, n, settled = self._parts(kind, args)
        if n > self.batch_size:
            raise ValueError(f"at most {self.batch_size} records a call")
        outcomes: dict[int, Outcome] = dict(settled)
        for part in parts:
            for pos, r in zip(part.positions, self._send(part), strict=True):
                outcomes[pos] = _outcome(r)
        return _batch([outcomes[i] for i in range(n)])

    def upsert_accounts(self, accounts: Sequence[Customer]) -> Batch:
        return self._write("upsert_accounts", (accounts,))

    def update_accounts(self, accounts: Sequence[Customer]) -> Batch:
        return self._write("update_accounts", (accounts,))

    def upsert_contacts(self, persons: Sequence[Person]) -> Batch:
        return self._write("upsert_contacts", (persons,))

    def update_contacts(self, persons: Sequence[Person]) -> Batch:
        return self._write("update_contacts", (persons,))

    def update_deals(self, changes: Sequence[tuple[str, Mapping[str, Any]]]) -> Batch:
        return self._write("update_deals", (changes,))

    def update_invoices(self, changes: Sequence[tuple[str, Mapping[str, Any]]]) -> Batch:
        return self._write("update_invoices", (changes,))

    def set_fields(self, entity: str, changes: Sequence[tuple[str, Mapping[str, Any]]]) -> Batch:
        return self._write("set_fields", (entity, changes))

    def create_tasks(self, tasks: Sequence[Mapping[str, Any]]) -> Batch:
        return self._write("create_tasks", (tasks,))

    def add_tags(self, account_ids: Sequence[str], tags: Sequence[str]) -> Batch:
        return self._write("add_tags", (account_ids, tags))

    # -- several writes in one call --------------------------------------------------------------

    @property
    def composite_size(self) -> int:
        """Writes one composite call carries (1: the org refused composite calls this run)."""
        return COMPOSITE_COLLECTIONS if self._composite_size is None else self._composite_size

    @composite_size.setter
    def composite_size(self, value: int) -> None:
        self._composite_size = value

    def composite(self, writes: Sequence[tuple[str, tuple]]) -> list[Batch | ApiError]:
        """Several writes (each (method name, its arguments)) in Composite calls of at most 5 Collections
        subrequests, run in order; one Batch per write, or the ApiError that refused its subrequest whole."""
        planned = [self._parts(kind, args) for kind, args in writes]
        flat = [(w, part) for w, (parts, _, _) in enumerate(planned) for part in parts]
        answers: dict[int, list[tuple[Part, Any]]] = {}
        for start in range(0, len(flat), COMPOSITE_COLLECTIONS):
            chunk = flat[start : start + COMPOSITE_COLLECTIONS]
            subs = [SubRequest(p.method, p.path, {"allOrNone": False, "records": [{"attributes": {"type": p.sobject}, **r}
                    for r in p.records]}, f"w{w}p{n}") for n, (w, p) in enumerate(chunk)]  # fmt: skip
            repeatable = all(p.method == "PATCH" for _, p in chunk)
            self.write_calls += 1
            for (w, part), sub in zip(chunk, self.client.composite(subs, repeatable=repeatable), strict=True):
                answers.setdefault(w, []).append((part, sub))
        out: list[Batch | ApiError] = []
        for w, (_, n, settled) in enumerate(planned):
            outcomes: dict[int, Outcome] = dict(settled)
            refused: ApiError | None = None
            for part, sub in answers.get(w, []):
                err = sub.error() if not isinstance(sub.body, list) else None
                if err is not None:
                    refused = err
                    continue
                for pos, r in zip(part.positions, save_results(sub.body, len(part.records)), strict=True):
                    outcomes[pos] = _outcome(r)
            out.append(
                refused
                if refused is not None and len(outcomes) < n
                else _batch([outcomes[i] for i in range(n)])
            )
        return out

    def upsert_account_with_contacts(self, account: Customer, persons: Sequence[Person]) -> Batch:
        """An account upserted on its books id, then its contacts created under it, in one Composite call
        (the contacts name the account as `@{acct.id}`): one Outcome for the account, then one per contact."""
        link = self._link()
        record = self._out("Account", account_to_salesforce(account))
        if not link or not record.get(link):
            raise ValueError(
                "the account needs its books id and the org the external-id field: run `xz setup salesforce`"
            )
        body = {k: v for k, v in record.items() if k not in ("id", link)}
        subs = [SubRequest("PATCH", f"sobjects/Account/{link}/{record[link]}", body, "acct")]
        for n, p in enumerate(persons):
            contact = {k: v for k, v in self._out("Contact", contact_to_salesforce(p)).items() if k != "id"}
            subs.append(
                SubRequest("POST", "sobjects/Contact", {**contact, "AccountId": "@{acct.id}"}, f"c{n}")
            )
        self.write_calls += 1
        outcomes = []
        for sub in self.client.composite(subs, all_or_none=False):
            body = sub.body if isinstance(sub.body, dict) else {}
            err = sub.error()
            outcomes.append(Outcome(True, str(body.get("id") or "") or None, code="SUCCESS",
                                    extra={"created": sub.status == 201 or bool(body.get("created"))})
                            if err is None else Outcome(False, None, f"{err.code}: {err.message}", err.code))  # fmt: skip
        return _batch(outcomes)

    # -- reads write-back needs ------------------------------------------------------------------

    def find_accounts_by_reference(self, books_ids: Sequence[str]) -> dict[str, str]:
        link = self._link()
        found: dict[str, str] = {}
        if link is None:
            return found
        refs = sorted({str(b) for b in books_ids if b})
        for start in range(0, len(refs), 200):
            chunk = ", ".join(literal(r) for r in refs[start : start + 200])
            for row in self.client.query(f"select Id, {link} from Account where {link} in ({chunk})"):
                if row.get(link):
                    found[str(row[link])] = str(row["Id"])
        return found

    def find_contacts_by_email(self, emails: Sequence[str]) -> dict[str, str]:
        """Emails -> the id of the contact holding each (matched as Salesforce does, ignoring case)."""
        found = self._contacts_by_email(emails)
        return {e: found[e.lower()] for e in emails if e and e.lower() in found}

    def _contacts_by_email(self, emails: Sequence[str]) -> dict[str, str]:
        """Lower-cased email -> contact id; the earliest created where several."""
        found: dict[str, str] = {}
        wanted = sorted({e for e in emails if e})
        for start in range(0, len(wanted), 200):
            chunk = ", ".join(literal(e) for e in wanted[start : start + 200])
            for row in self.client.query(
                f"select Id, Email from Contact where Email in ({chunk}) order by CreatedDate, Id"
            ):
                if row.get("Email"):
                    found.setdefault(str(row["Email"]).lower(), str(row["Id"]))
        return found

    def find_tasks(self, tasks: Sequence[Mapping[str, Any]]) -> list[str | None]:
        """The id of the task already holding each one's subject, due date and related record (or None)."""
        wanted = sorted({str(t["subject"]) for t in tasks if t.get("subject")})
        held: dict[tuple[str, str, str], str] = {}
        for start in range(0, len(wanted), 100):
            chunk = ", ".join(literal(v) for v in wanted[start : start + 100])
            for row in self.client.query(
                f"select Id, Subject, ActivityDate, WhatId from Task where Subject in ({chunk})"
            ):
                key = (
                    str(row.get("Subject")),
                    str(row.get("ActivityDate") or ""),
                    str(row.get("WhatId") or ""),
                )
                held.setdefault(key, str(row["Id"]))
        return [held.get((str(t.get("subject")), _iso_day(t.get("due_date")) or "", str(t.get("what_id") or "")))
                for t in tasks]  # fmt: skip

    def refresh(self, store: Store, entity: str, ids: Sequence[str], run_id: str | None) -> int:
        """Read exactly these records back into the mirror, as the extract assets write them."""
        sobject = SOBJECTS.get(entity)
        if sobject is None:
            return 0  # tasks are written, not mirrored; Salesforce has no CRM invoices
        if self.store is None:
            self.store = store
        if not self.schema.has_object(sobject):
            return 0
        payloads = [r for page in self.client.select(sobject, tables.fields(sobject, self.fm), ids=sorted(set(ids)))
                    for r in page]  # fmt: skip
        if payloads:
            write_entity(store, tables.specs(self.fm)[sobject], connection=self.connection, payloads=payloads,
                         fetched_at=datetime.now(UTC), run_id=run_id, advance_cursor=False)  # fmt: skip
        return len(payloads)

    def read_deal_products(self, store: Store, deal_ids: Sequence[str], run_id: str | None) -> int:
        """The OpportunityLineItems of these opportunities (one query per 200), written to
        `salesforce.opportunity_line_items`; returns the calls spent."""
        wanted = sorted({str(i) for i in deal_ids})
        if self.store is None:
            self.store = store
        if not wanted or not self.schema.has_object("OpportunityLineItem"):
            return 0
        before = self.calls
        fields = tables.fields("OpportunityLineItem", self.fm)
        payloads = []
        for start in range(0, len(wanted), 200):
            chunk = ", ".join(literal(i) for i in wanted[start : start + 200])
            payloads += [r for page in self.client.select("OpportunityLineItem", fields,
                         where=f"OpportunityId in ({chunk})") for r in page]  # fmt: skip
        if payloads:
            write_entity(store, tables.LINE_ITEMS, connection=self.connection, payloads=payloads,
                         fetched_at=datetime.now(UTC), run_id=run_id, advance_cursor=False)  # fmt: skip
        return self.calls - before


class SalesforceWriterResource(dg.ConfigurableResource):
    """The CRM writer for a connection, on the same settings as `SalesforceResource`."""

    timeout: float = 30.0

    def writer(
        self, connection: str, meter: CallMeter | None = None, trigger: Sequence[str] = ()
    ) -> SalesforceCrmWriter:
        return SalesforceCrmWriter(SalesforceResource(timeout=self.timeout).client(connection, meter=meter), connection,
                                   store=Store(settings.mirror_path(connection)))  # fmt: skip
