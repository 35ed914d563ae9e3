"""The CRM writer for Zoho: write-back's `CrmWriter` role (writeback/ports.py) over `ZohoClient`.

Canonical records in, Zoho records out through `mapping.py`; every write is one call of at most 100
records, or one sub-request of a composite call carrying up to five such writes (`composite`). New accounts are upserted on `Xero_Contact_ID` (unique, the books id they carry) and new contacts
on `Email`, so a replay finds what the first call made instead of creating it twice. Writes send
`trigger: []` unless configured: our own corrections must not set off the org's workflows (and loops).
Refreshing writes the records read back through `core.mirror.write_entity`, as the extract assets do.
Insights reach the CRM here too: the payment risk band and expected pay date set on accounts and deals
(`set_fields`), and reminders as Tasks on their account (`create_tasks`; Tasks are written, never
mirrored: a create in doubt is found again by its subject, due date and account, `find_tasks`).

(No `from __future__ import annotations`: Dagster inspects resource annotations.)
"""

from collections.abc import Mapping, Sequence
from datetime import UTC, date, datetime
from typing import Any

import dagster as dg

from xz_pipeline import settings
from xz_pipeline.core.canonical import Customer, Person
from xz_pipeline.core.errors import ApiError
from xz_pipeline.core.http import CallMeter
from xz_pipeline.core.mirror import write_entity
from xz_pipeline.core.store import Store
from xz_pipeline.writeback.ports import Batch, Capabilities, Outcome
from xz_pipeline.zoho import fieldmap, tables
from xz_pipeline.zoho import schema as schema_mod
from xz_pipeline.zoho.client import (
    COMPOSITE_LIMIT,
    TAG_CHUNK,
    WRITE_CHUNK,
    SubRequest,
    WriteResult,
    ZohoClient,
)
from xz_pipeline.zoho.fieldmap import FieldMap
from xz_pipeline.zoho.mapping import (
    account_to_zoho,
    contact_to_zoho,
    deal_update_to_zoho,
    invoice_update_to_zoho,
)
from xz_pipeline.zoho.resources import ZohoResource

MODULES = {"account": "Accounts", "contact": "Contacts", "deal": "Deals", "invoice": "Invoices"}
# The books' project figures on deals and accounts (policy projects_to_crm): plan field -> our API name.
PROJECT_FIELDS = {"hours_delivered": "Hours_Delivered", "unbilled_amount": "Unbilled_Amount",
                  "project_status": "Project_Status"}  # fmt: skip
# What write-back writes in the CRM, as (canonical entity, plan field) -> (module, our API name).
CRM_FIELDS: dict[tuple[str, str], tuple[str, str]] = {
    ("account", "books_link"): ("Accounts", "Xero_Contact_ID"),
    ("account", "tax_number"): ("Accounts", "Tax_Number"),
    ("account", "outstanding_balance"): ("Accounts", "Outstanding_Balance"),
    ("account", "overdue_balance"): ("Accounts", "Overdue_Balance"),
    ("account", "currency"): ("Accounts", "Currency"),
    **{
        (entity, f): (module, name)
        for entity, module in (("deal", "Deals"), ("invoice", "Invoices"))
        for f, name in (
            ("books_invoice_id", "Xero_Invoice_ID"),
            ("payment_status", "Payment_Status"),
            ("amount_paid", "Amount_Paid"),
            ("last_payment_date", "Last_Payment_Date"),
            ("currency", "Currency"),
        )
    },
    ("deal", "books_invoice_number"): ("Deals", "Xero_Invoice_Number"),
    **{
        (entity, f): (module, name)
        for entity, module in (("account", "Accounts"), ("deal", "Deals"))
        for f, name in (("payment_risk", "Payment_Risk"), ("expected_pay_date", "Expected_Pay_Date"))
    },
    **{  # projects_to_crm (writeback/projects.py)
        (entity, f): (module, name)
        for entity, module in (("account", "Accounts"), ("deal", "Deals"))
        for f, name in PROJECT_FIELDS.items()
    },
}
TASKS = "Tasks"
# A reminder task's plan fields -> the Tasks module's standard fields (zoho-api.md: Tasks need `Subject`).
TASK_FIELDS = {"subject": "Subject", "due_date": "Due_Date", "description": "Description"}
RISK_WORDS = {"low": "Low", "medium": "Medium", "high": "High"}  # bands as `xz setup zoho` creates them
DEAL_PRODUCTS = "Deals/Products"  # the related list, as `meta.vendor_schema` names an endpoint not offered
RELATION_FIELDS = ["Quantity", "List_Price"]  # the deal-product relation's own fields


def _batch(results: list[WriteResult]) -> Batch:
    out = [
        Outcome(
            ok=r.ok,
            record_id=r.id,
            error="" if r.ok else f"{r.code}: {r.message}" + (f" ({r.field})" if r.field else ""),
            code=r.code,
        )  # fmt: skip
        for r in results
    ]
    failed = sum(not o.ok for o in out)
    return Batch(out, 200 if not failed else (207 if failed < len(out) else 400))


def _literal(value: str) -> str:
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


def _iso_day(value: Any) -> str | None:
    """A plan's date (a date, or its ISO text) as Zoho writes dates."""
    if value is None:
        return None
    return value.isoformat() if isinstance(value, date) else str(value)[:10]


def _insight_record(record_id: str, fields: Mapping[str, Any]) -> dict[str, Any]:
    """An Accounts or Deals update from insight fields (our names): the band in the picklist's words."""
    unknown = sorted(set(fields) - {"payment_risk", "expected_pay_date", *PROJECT_FIELDS})
    if unknown:
        raise KeyError(f"fields not settable by insights: {', '.join(unknown)}")
    out: dict[str, Any] = {"id": record_id}
    for f in ("hours_delivered", "unbilled_amount"):
        if f in fields:
            out[PROJECT_FIELDS[f]] = None if fields[f] is None else float(str(fields[f]))
    if "project_status" in fields:
        out["Project_Status"] = fields["project_status"]
    if "payment_risk" in fields:
        band = fields["payment_risk"]
        out["Payment_Risk"] = None if band is None else RISK_WORDS.get(str(band), str(band))
    if "expected_pay_date" in fields:
        out["Expected_Pay_Date"] = _iso_day(fields["expected_pay_date"])
    return out


def _task_record(task: Mapping[str, Any]) -> dict[str, Any]:
    """A Tasks record: a reminder to chase, related to its account (`What_Id` + `$se_module`)."""
    out: dict[str, Any] = {TASK_FIELDS[k]: v for k, v in task.items() if k in TASK_FIELDS and v is not None}
    out["Due_Date"] = _iso_day(task.get("due_date"))
    if task.get("what_id"):
        out["What_Id"] = {"id": str(task["what_id"])}
        out["$se_module"] = str(task.get("se_module") or "Accounts")
    return out


class ZohoCrmWriter:
    """One connection's CRM writer. `write_calls` counts write calls (each at most 100 records)."""

    batch_size = WRITE_CHUNK

    def __init__(
        self,
        client: ZohoClient,
        connection: str,
        trigger: Sequence[str] = (),
        *,
        store: Store | None = None,
        fm: FieldMap | None = None,
    ) -> None:
        self.client, self.connection, self.trigger = client, connection, list(trigger)
        self.write_calls = 0
        self.store = store
        self.fm = fm if fm is not None else fieldmap.load(connection)
        self._schema: schema_mod.OrgSchema | None = None
        self._composite_size: int | None = None

    @property
    def schema(self) -> schema_mod.OrgSchema:
        """The org's schema: from the mirror when fresh, else read (once per writer)."""
        if self._schema is None:
            self._schema = schema_mod.ensure(self.client, self.store, self.connection, self.fm)
        return self._schema

    def _out(self, module: str, record: dict) -> dict:
        """A record in our names as the org takes it: its names and words, only the fields it has."""
        return self.schema.writable(module, self.fm.outgoing(module, record))

    def _link(self) -> str:
        return self.fm.api("Accounts", "Xero_Contact_ID")

    def capabilities(self, store: Store | None = None) -> Capabilities:
        """What this org cannot hold (plan fields, each with why) or serve (endpoints)."""
        if store is not None and self.store is None:
            self.store = store
        schema = self.schema
        missing: dict[tuple[str, str], str] = {}
        for key, (module, ours) in CRM_FIELDS.items():
            theirs = self.fm.api(module, ours)
            if not schema.has_module(module):
                missing[key] = f"the org has no {module} module"
            elif not schema.has(module, theirs):
                if ours == "Currency":
                    home = schema.home_currency or "its home currency"
                    missing[key] = f"{module}.Currency does not exist in this org (single currency: {home})"
                else:
                    missing[key] = (
                        f"{module}.{theirs} does not exist in this org: run `xz setup zoho` or map it"
                    )
        if not schema.has_module(TASKS):
            why = schema.absent.get(TASKS) or (  # a schema read before tasks were written
                f"whether the org offers {TASKS} is not known yet: `xz setup zoho` reads the org again"
            )
            missing.update({("task", f): why for f in (*TASK_FIELDS, "what_id", "se_module")})
        roles = {DEAL_PRODUCTS: "deal_products", "__composite_requests": "composite"}
        unavailable = {roles.get(k, k): v for k, v in schema.endpoints.items()}
        return Capabilities(missing_fields=missing, unavailable=unavailable)

    @property
    def calls(self) -> int:
        return self.client.meter.snapshot()["calls"]

    def close(self) -> None:
        self.client.close()

    def _check(self, n: int, limit: int | None = None) -> None:
        limit = limit or self.batch_size
        if n > limit:
            raise ValueError(f"at most {limit} records a call")
        self.write_calls += 1

    def upsert_accounts(self, accounts: Sequence[Customer]) -> Batch:
        self._check(len(accounts))
        records = [self._out("Accounts", account_to_zoho(a)) for a in accounts]
        return _batch(self.client.upsert("Accounts", records, [self._link()], trigger=self.trigger))

    def update_accounts(self, accounts: Sequence[Customer]) -> Batch:
        self._check(len(accounts))
        records = [self._out("Accounts", account_to_zoho(a)) for a in accounts]
        return _batch(self.client.update("Accounts", records, trigger=self.trigger))

    def upsert_contacts(self, persons: Sequence[Person]) -> Batch:
        self._check(len(persons))
        records = [self._out("Contacts", contact_to_zoho(p)) for p in persons]
        return _batch(self.client.upsert("Contacts", records, ["Email"], trigger=self.trigger))

    def update_contacts(self, persons: Sequence[Person]) -> Batch:
        self._check(len(persons))
        records = [self._out("Contacts", contact_to_zoho(p)) for p in persons]
        return _batch(self.client.update("Contacts", records, trigger=self.trigger))

    def update_deals(self, changes: Sequence[tuple[str, Mapping[str, Any]]]) -> Batch:
        self._check(len(changes))
        records = [self._out("Deals", deal_update_to_zoho(deal_id, fields)) for deal_id, fields in changes]
        return _batch(self.client.update("Deals", records, trigger=self.trigger))

    def update_invoices(self, changes: Sequence[tuple[str, Mapping[str, Any]]]) -> Batch:
        self._check(len(changes))
        records = [self._out("Invoices", invoice_update_to_zoho(i, fields)) for i, fields in changes]
        return _batch(self.client.update("Invoices", records, trigger=self.trigger))

    def set_fields(self, entity: str, changes: Sequence[tuple[str, Mapping[str, Any]]]) -> Batch:
        """(record id, {payment_risk, expected_pay_date}) on accounts or deals: what insights keep there."""
        self._check(len(changes))
        module = MODULES[entity]
        records = [self._out(module, _insight_record(rid, fields)) for rid, fields in changes]
        return _batch(self.client.update(module, records, trigger=self.trigger))

    def create_tasks(self, tasks: Sequence[Mapping[str, Any]]) -> Batch:
        """Tasks ({subject, due_date, description, what_id, se_module}): one per reminder to chase."""
        self._check(len(tasks))
        return _batch(self.client.insert(TASKS, [_task_record(t) for t in tasks], trigger=self.trigger))

    def find_tasks(self, tasks: Sequence[Mapping[str, Any]]) -> list[str | None]:
        """The id of the task already holding each one's subject, due date and related record (or None):
        how a create whose answer was lost is found instead of being sent twice."""
        wanted = sorted({str(t["subject"]) for t in tasks if t.get("subject")})
        held: dict[tuple[str, str, str], str] = {}
        for start in range(0, len(wanted), 50):
            chunk = ", ".join(_literal(v) for v in wanted[start : start + 50])
            for row in self.client.coql(
                f"select id, Subject, Due_Date, What_Id from Tasks where Subject in ({chunk})"
            ):
                what = row.get("What_Id")
                what = str(what.get("id")) if isinstance(what, Mapping) else str(what or "")
                key = (str(row.get("Subject")), str(row.get("Due_Date") or ""), what)
                held.setdefault(key, str(row["id"]))
        return [
            held.get((str(t.get("subject")), _iso_day(t.get("due_date")) or "", str(t.get("what_id") or "")))
            for t in tasks
        ]

    def add_tags(self, account_ids: Sequence[str], tags: Sequence[str]) -> Batch:
        self._check(len(account_ids), self.tag_batch_size)
        return _batch(self.client.add_tags("Accounts", account_ids, list(tags)))

    # -- several writes in one call ---------------------------------------------------------------

    tag_batch_size = TAG_CHUNK

    @property
    def composite_size(self) -> int:
        """Writes one composite call carries: 1 when the org does not offer composite requests."""
        if self._composite_size is None:
            offered = "__composite_requests" not in self.schema.endpoints
            self._composite_size = COMPOSITE_LIMIT if offered else 1
        return self._composite_size

    @composite_size.setter
    def composite_size(self, value: int) -> None:
        if value <= 1 and self._composite_size != 1:
            self.schema.unavailable(
                "__composite_requests", "composite requests were refused; writes go one a call"
            )
        self._composite_size = value

    def _request(self, kind: str, args: tuple) -> SubRequest:
        c, t = self.client, self.trigger
        if kind == "upsert_accounts":
            return c.write_request("upsert", "Accounts", [self._out("Accounts", account_to_zoho(a)) for a in args[0]],
                                   duplicate_check_fields=[self._link()], trigger=t)  # fmt: skip
        if kind == "update_accounts":
            return c.write_request("update", "Accounts", [self._out("Accounts", account_to_zoho(a)) for a in args[0]],
                                   trigger=t)  # fmt: skip
        if kind == "upsert_contacts":
            return c.write_request("upsert", "Contacts", [self._out("Contacts", contact_to_zoho(p)) for p in args[0]],
                                   duplicate_check_fields=["Email"], trigger=t)  # fmt: skip
        if kind == "update_contacts":
            return c.write_request("update", "Contacts", [self._out("Contacts", contact_to_zoho(p)) for p in args[0]],
                                   trigger=t)  # fmt: skip
        if kind == "update_deals":
            return c.write_request(
                "update",
                "Deals",
                [self._out("Deals", deal_update_to_zoho(i, f)) for i, f in args[0]],
                trigger=t,
            )
        if kind == "update_invoices":
            return c.write_request("update", "Invoices", [self._out("Invoices", invoice_update_to_zoho(i, f)) for i, f in args[0]],
                                   trigger=t)  # fmt: skip
        if kind == "set_fields":
            module = MODULES[args[0]]
            records = [self._out(module, _insight_record(i, f)) for i, f in args[1]]
            return c.write_request("update", module, records, trigger=t)
        if kind == "create_tasks":
            records = [_task_record(task) for task in args[0]]
            if not 0 < len(records) <= WRITE_CHUNK:
                raise ValueError(f"a sub-request carries 1 to {WRITE_CHUNK} records")
            body = {"data": records, "trigger": list(t)}
            return SubRequest("POST", TASKS, body, len(records), "insert")
        if kind == "add_tags":
            return c.tags_request("Accounts", list(args[0]), list(args[1]))
        raise ValueError(f"no CRM write {kind!r}")

    def composite(self, writes: Sequence[tuple[str, tuple]]) -> list[Batch | ApiError]:
        """Several writes (each what one of this writer's methods would send: (method name, its arguments))
        in one composite call, run in order; one Batch per write, or the ApiError that refused it whole."""
        requests = [self._request(kind, args) for kind, args in writes]
        self.write_calls += 1
        return [r if isinstance(r, ApiError) else _batch(r) for r in self.client.composite(requests)]

    def find_accounts_by_reference(self, books_ids: Sequence[str]) -> dict[str, str]:
        found: dict[str, str] = {}
        link = self._link()
        if not self.schema.has("Accounts", link):
            return found  # nothing carries a books id in this org
        refs = sorted(set(books_ids))
        for start in range(0, len(refs), 50):
            chunk = ", ".join(_literal(r) for r in refs[start : start + 50])
            for row in self.client.coql(f"select id, {link} from Accounts where {link} in ({chunk})"):
                if row.get(link):
                    found[str(row[link])] = str(row["id"])
        return found

    def find_contacts_by_email(self, emails: Sequence[str]) -> dict[str, str]:
        """Contacts by email (the field they are upserted on) -> contact id; the earliest where several."""
        found: dict[str, str] = {}
        wanted = sorted({e for e in emails if e})
        for start in range(0, len(wanted), 50):
            chunk = ", ".join(_literal(e) for e in wanted[start : start + 50])
            for row in self.client.coql(f"select id, Email from Contacts where Email in ({chunk})"):
                if row.get("Email"):
                    found.setdefault(str(row["Email"]), str(row["id"]))
        return found

    def refresh(self, store: Store, entity: str, ids: Sequence[str], run_id: str | None) -> int:
        if entity not in MODULES:
            return 0  # tasks are written, not mirrored
        module = MODULES[entity]
        if self.store is None:
            self.store = store
        if not self.schema.has_module(module):
            return 0
        payloads = self.client.get_many(module, sorted(set(ids)), tables.fields(module, self.fm))
        if payloads:
            write_entity(store, tables.specs(self.fm)[module], connection=self.connection, payloads=payloads,
                         fetched_at=datetime.now(UTC), run_id=run_id, advance_cursor=False)  # fmt: skip
        return len(payloads)

    def read_deal_products(self, store: Store, deal_ids: Sequence[str], run_id: str | None) -> int:
        """The Products related list of each deal (one call each), written with the deal through
        `write_entity`, so `zoho.deal_products` holds them; a deal read with its products since its stored
        version changed (a landing payload carrying them, fetched no earlier) costs nothing again."""
        wanted = sorted({str(i) for i in deal_ids})
        if not wanted:
            return 0
        with store.read() as con:
            done = {
                r[0]
                for r in con.execute(
                    "select d.deal_id from zoho.deals d join landing.records l on l.connection = d.connection "
                    "and l.vendor = 'zoho' and l.entity = 'Deals' and l.record_id = d.deal_id "
                    "and l.fetched_at >= d.fetched_at where d.connection = ? "
                    "and d.deal_id in (select unnest(?::varchar[])) "
                    "and json_extract(l.payload, ?) is not null",
                    [self.connection, wanted, f'$."{tables.RELATED_PRODUCTS}"'],
                ).fetchall()
            }
        todo = [i for i in wanted if i not in done]
        if self.store is None:
            self.store = store
        if not todo or DEAL_PRODUCTS in self.schema.endpoints:
            return 0
        before = self.client.meter.snapshot()["calls"]
        deals = self.client.get_many("Deals", todo, tables.fields("Deals", self.fm))
        asked = [
            f for f in tables.DEAL_PRODUCT_FIELDS if f in RELATION_FIELDS or self.schema.has("Products", f)
        ]
        payloads = []
        for d in deals:
            try:
                products = self.client.related("Deals", str(d["id"]), "Products", asked)
            except ApiError as exc:
                # an org without the relation answers 404 or, naming it, INVALID_DATA
                if not (
                    schema_mod.not_offered(exc) or (exc.code == "INVALID_DATA" and exc.field == "Products")
                ):
                    raise
                # the edition (or grant) has no Deals -> Products: invoices get one line at the deal amount
                self.schema.unavailable(
                    DEAL_PRODUCTS, f"the org does not serve a deal's products ({exc.code})"
                )
                break
            payloads.append({**d, tables.RELATED_PRODUCTS: products})
        if payloads:
            write_entity(store, tables.specs(self.fm)["Deals"], connection=self.connection, payloads=payloads,
                         fetched_at=datetime.now(UTC), run_id=run_id, advance_cursor=False)  # fmt: skip
        return self.client.meter.snapshot()["calls"] - before


class ZohoWriterResource(dg.ConfigurableResource):
    """The CRM writer for a connection, on the same settings as `ZohoResource`."""

    timeout: float = 30.0

    def writer(
        self, connection: str, meter: CallMeter | None = None, trigger: Sequence[str] = ()
    ) -> ZohoCrmWriter:
        return ZohoCrmWriter(
            ZohoResource(timeout=self.timeout).client(connection, meter=meter),
            connection,
            trigger,
            store=Store(settings.mirror_path(connection)),
        )
