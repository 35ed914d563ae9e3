"""Apply the write-back plan: guarded, batched, recorded, exactly once; then refresh what was written.

Order: the books first (new contacts, then their invoices, then updates), since CRM changes refer to
what they create (a deal records its new invoice's id); then the CRM: new accounts, what refers to them
(their contacts), updates and tags. Each write carries at most the writer's batch size (Xero 50, Zoho
100, Zoho tags 500). CRM writes are queued and sent together, up to five in one composite call (Zoho's
`__composite_requests`), in order; a write that refers to a record created in the same queue (a new
account's contact) waits for the next call. The ledger holds one row per HTTP call either way. Before each call its intent
goes into `writeback.ledger` (committed); after it, the outcome, and each change becomes applied or
rejected with the API's reason. A create whose earlier call never answered (the run was killed, the
connection dropped) is first looked up by its reference (ContactNumber, invoice Reference, the books id
a CRM account carries): found, it is recorded as applied and not sent again. Every such call of an
earlier run is settled before anything is sent, even when its changes are no longer planned (a killed
run's account now mirrored): creates looked up by reference, updates read back. Afterwards exactly the
records written are read back into the mirror, so the next reconciliation sees the fix.
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal
from typing import Any

import pandas as pd

from xz_pipeline.core.canonical import (
    Address,
    AddressKind,
    Customer,
    DocumentStatus,
    DocumentType,
    Invoice,
    InvoiceLine,
    Person,
    Phone,
    PhoneKind,
    Role,
)
from xz_pipeline.core.errors import ApiError
from xz_pipeline.core.store import Store
from xz_pipeline.realtime.echo import remember_writes
from xz_pipeline.writeback import guards, ledger
from xz_pipeline.writeback.policies import Policies
from xz_pipeline.writeback.ports import Batch, BooksWriter, CrmWriter, Outcome, not_offered

DECIMALS = {"amount_paid", "outstanding_balance", "overdue_balance"}
DATES = {"last_payment_date", "issue_date", "due_date"}
JSON = {"lines"}
PHASES = [  # the books first: CRM changes refer to what they create (a deal records its new invoice)
    ("books", "customer", "create"),
    ("books", "invoice", "create"),
    ("books", "invoice", "email"),
    ("books", "invoice", "update"),
    ("books", "customer", "update"),
    ("crm", "account", "create"),
    ("crm", "contact", "create"),
    ("crm", "deal", "update"),
    ("crm", "invoice", "update"),
    ("crm", "account", "update"),
    ("crm", "contact", "update"),
    ("crm", "account", "tag"),
    ("crm", "deal", "set"),  # insights' fields (payment risk), kept apart from the reconciled updates
    ("crm", "account", "set"),
    ("crm", "task", "create"),  # reminders to chase, on their accounts
]


class Unresolved(LookupError):
    """A change refers to a record this plan creates, and that record does not exist yet."""


@dataclass
class Group:
    """The changes one record write carries."""

    system: str
    entity: str
    op: str
    record: str
    ref: str
    fields: dict[str, Any] = field(default_factory=dict)
    change_ids: list[str] = field(default_factory=list)

    @property
    def label(self) -> str:
        return f"{self.system}.{self.entity}:{self.record or self.ref}"


@dataclass
class Pending:
    """A CRM write waiting to share a composite call: its groups, the writer method and arguments."""

    system: str
    entity: str
    op: str
    batch: list[Group]
    send: Callable[[], Batch | list[Outcome]]
    body: object
    write: tuple[str, tuple]


@dataclass
class ApplyReport:
    connection: str
    pending: int = 0
    dry_run: bool = False
    blocked: str = ""
    fingerprint: str = ""
    applied: int = 0
    rejected: int = 0
    refused: int = 0
    waiting: int = 0
    held: int = 0  # refused by the API before: not sent again unless a person asks (--retry-rejected)
    found_by_lookup: int = 0
    settled_calls: int = 0  # calls of earlier runs whose unknown outcome was looked up remotely
    write_calls: dict[str, int] = field(default_factory=lambda: {"books": 0, "crm": 0})
    calls: dict[str, int] = field(default_factory=lambda: {"books": 0, "crm": 0})
    refreshed: int = 0
    errors: list[str] = field(default_factory=list)

    def summary(self) -> str:
        if self.blocked:
            return f"{self.connection}: write-back blocked: {self.blocked}"
        head = "dry run: would apply" if self.dry_run else "applied"
        return (
            f"{self.connection}: {head} {self.applied} change(s) of {self.pending}; rejected {self.rejected}, "
            f"refused {self.refused}, waiting {self.waiting}, found by lookup {self.found_by_lookup}; write calls "
            f"books {self.write_calls['books']}, crm {self.write_calls['crm']}; refreshed {self.refreshed} record(s)"
            + (
                f"; held back {self.held} change(s) the API refused before: fix what `xz plan` says, "
                "then `xz apply --retry-rejected`"
                if self.held
                else ""
            )
        )


def decode(name: str, value: str | None) -> Any:
    if value is None:
        return None
    if name in DECIMALS:
        return Decimal(value)
    if name in DATES:
        return date.fromisoformat(value)
    if name in JSON:
        return json.loads(value)
    return value


def groups_of(rows: pd.DataFrame) -> dict[tuple, Group]:
    out: dict[tuple, Group] = {}
    for r in rows.sort_values("change_id").itertuples():
        key = (r.system, r.entity, r.op, r.record, r.ref)
        g = out.setdefault(key, Group(r.system, r.entity, r.op, r.record, r.ref))
        g.fields[r.field] = decode(r.field, r.new)
        g.change_ids.append(r.change_id)
    return out


# ---------------------------------------------------------------------------------------------
# Canonical records from a group's fields


def _address(f: dict) -> tuple[Address, ...]:
    parts = {k: f.get(k) for k in ("street", "city", "region", "postal_code", "country")}
    if not any(parts.values()):
        return ()
    street = parts.pop("street")
    return (Address(AddressKind.BILLING, lines=(street,) if street else (), **parts),)


def customer(g: Group, role: Role) -> Customer:
    f = g.fields
    person = (
        (
            Person(
                first_name=f.get("first_name"),
                last_name=f.get("last_name"),
                email=f.get("email"),
                is_primary=True,
            ),
        )
        if f.get("first_name") or f.get("last_name")
        else ()
    )
    return Customer(
        role=role,
        books_id=g.record or None if role is Role.BOOKS else f.get("books_link"),
        crm_id=g.record or None if role is Role.CRM else f.get("crm_link"),
        name=f.get("name"),
        persons=person,
        emails=(f["email"],) if f.get("email") else (),
        phones=(Phone(PhoneKind.MAIN, f["phone"]),) if f.get("phone") else (),
        addresses=_address(f),
        tax_number=f.get("tax_number"),
        currency=f.get("currency"),
        account_number=f.get("account_number"),
        outstanding=f.get("outstanding_balance"),
        overdue=f.get("overdue_balance"),
    )


def invoice(g: Group, books: BooksWriter) -> Invoice:
    f = g.fields
    defaults = None
    lines = []
    for n, line in enumerate(f.get("lines") or [], start=1):
        account, tax = line.get("account_code"), line.get("tax_code")
        if not account or not tax:  # an item's own sales codes, else the organisation's
            defaults = defaults or books.invoice_defaults()
            item_account, item_tax = defaults.item_sales.get(line.get("item_code") or "", (None, None))
            account = account or item_account or defaults.account_code
            tax = tax or item_tax or defaults.tax_code
        lines.append(InvoiceLine(
            line_no=n, description=line.get("description"), quantity=Decimal(line.get("quantity", "1")),
            unit_price=Decimal(line["unit_price"]) if line.get("unit_price") is not None else None,
            account_code=account, tax_code=tax, item_code=line.get("item_code"),
        ))  # fmt: skip
    status = f.get("status")
    return Invoice(
        role=Role.BOOKS,
        books_id=g.record or None,
        type=DocumentType.SALE,
        customer_id=f.get("contact"),
        reference=f.get("reference"),
        issue_date=f.get("issue_date"),
        due_date=f.get("due_date"),
        currency=f.get("currency"),
        status=None
        if status is None
        else (DocumentStatus.OPEN if status == "AUTHORISED" else DocumentStatus.DRAFT),
        status_raw=status if status in ("DRAFT", "SUBMITTED") else None,
        amounts_tax=f.get("amounts_tax"),
        lines=tuple(lines),
    )


# ---------------------------------------------------------------------------------------------


class Applier:
    def __init__(
        self, store: Store, connection: str, books: BooksWriter, crm: CrmWriter, run_id: str | None
    ) -> None:
        self.store, self.connection, self.books, self.crm, self.run_id = store, connection, books, crm, run_id
        self.resolved: dict[str, str] = {}  # "@books.invoice.id:DEAL-1" -> value
        self.written: dict[tuple[str, str], set[str]] = defaultdict(set)
        self.report = ApplyReport(connection)
        self.queue: list[Pending] = []  # CRM writes for the next composite call(s)
        self.deferred: dict[tuple[str, str, str], list[Group]] = defaultdict(list)

    def remember(self, g: Group, outcome: Outcome) -> None:
        if g.op == "create" and outcome.record_id:
            self.resolved[f"@{g.system}.{g.entity}.id:{g.ref}"] = outcome.record_id
            if outcome.extra.get("number"):
                self.resolved[f"@{g.system}.{g.entity}.number:{g.ref}"] = str(outcome.extra["number"])
        target = outcome.record_id or g.record
        if target and g.op != "email":
            self.written[(g.system, g.entity)].add(target)

    def load_resolved(self) -> None:
        """Records earlier runs created: their ids (and invoice numbers) by reference."""
        with self.store.read() as con:
            rows = con.execute(
                "select distinct system, entity, ref, result_id from writeback.plan where connection = ? "
                "and op = 'create' and status = 'applied' and result_id is not null",
                [self.connection],
            ).fetchall()
        for system, entity, ref, result in rows:
            rid, _, number = result.partition("|")
            self.resolved[f"@{system}.{entity}.id:{ref}"] = rid
            if number:
                self.resolved[f"@{system}.{entity}.number:{ref}"] = number

    def resolve(self, g: Group) -> Group:
        fields = {}
        for k, v in g.fields.items():
            if isinstance(v, str) and v.startswith("@"):
                if v not in self.resolved:
                    raise Unresolved(v)
                v = self.resolved[v]
            fields[k] = v
        return Group(g.system, g.entity, g.op, g.record, g.ref, fields, g.change_ids)

    # -- lookups for creates whose earlier call has no known outcome ---------------------------

    def find(self, system: str, entity: str, groups: list[Group]) -> dict[str, Outcome]:
        """Created records by the reference they carry (ref -> what was found), for creates in doubt."""
        refs = [g.ref for g in groups]
        if (system, entity) == ("books", "customer"):
            return {k: Outcome(True, v) for k, v in self.books.find_customers_by_reference(refs).items()}
        if (system, entity) == ("books", "invoice"):
            return self.books.find_invoices_by_reference(refs)
        if (system, entity) == ("crm", "account"):
            return {k: Outcome(True, v) for k, v in self.crm.find_accounts_by_reference(refs).items()}
        if (system, entity) == ("crm", "task"):
            ids = self.crm.find_tasks([g.fields for g in groups])
            return {g.ref: Outcome(True, i) for g, i in zip(groups, ids, strict=True) if i}
        if (system, entity) == ("crm", "contact"):
            emails = {g.ref: str(g.fields.get("email") or g.ref.partition("|")[2]) for g in groups}
            found = self.crm.find_contacts_by_email(sorted(set(emails.values())))
            by_email = {k.strip().lower(): v for k, v in found.items()}
            return {
                ref: Outcome(True, by_email[e.strip().lower()])
                for ref, e in emails.items()
                if e.strip().lower() in by_email
            }
        return {}

    def look_up(self, system: str, entity: str, groups: list[Group]) -> list[Group]:
        if (system, entity) == ("crm", "contact"):
            return groups  # contacts upsert on their email: resending finds what the first call made
        found = self.find(system, entity, groups)
        left = []
        for g in groups:
            hit = found.get(g.ref)
            if hit is None:
                left.append(g)
                continue
            self.remember(g, hit)
            number = hit.extra.get("number")
            result = f"{hit.record_id}|{number}" if number else hit.record_id
            ledger.set_status(self.store, self.connection, g.change_ids, "applied", None,
                              dict.fromkeys(g.change_ids, result))  # fmt: skip
            self.report.found_by_lookup += len(g.change_ids)
            self.report.applied += len(g.change_ids)
        ledger.settle_unknown(self.store, self.connection, [c for g in groups for c in g.change_ids],
                              f"{len(groups) - len(left)} found, {len(left)} absent")  # fmt: skip
        return left

    # -- calls of earlier runs whose outcome never came back ------------------------------------

    def settle_open_calls(self) -> None:
        """Every call an earlier run made without recording its outcome (killed, connection dropped) is
        looked up remotely before anything is sent: a create by the reference it carries, an update,
        tag or email by reading its record back. Done: its changes become applied (with the remote id),
        whether or not the plan still wants them. Not done: they are left to the plan (sent this run if
        still planned, obsolete otherwise). Either way the call is closed as settled, never left open."""
        calls = ledger.open_calls(self.store, self.connection)
        if not calls:
            return
        rows = ledger.rows_of(self.store, self.connection, {c for _, ids in calls for c in ids})
        groups = groups_of(rows)
        done: set[str] = set()
        try:
            for phase in PHASES:
                members = [g for key, g in sorted(groups.items()) if key[:3] == phase]
                if members:
                    done |= self.verify(*phase, members)
        except (ApiError, OSError) as exc:  # left open: the next run (or this run's lookups) tries again
            self.report.errors.append(f"looking up earlier calls: {exc}")
            return
        for call_id, ids in calls:
            found = sum(c in done for c in ids)
            ledger.settle_calls(self.store, [call_id], f"{found} done, {len(ids) - found} not done")
        self.report.settled_calls += len(calls)

    def verify(self, system: str, entity: str, op: str, groups: list[Group]) -> set[str]:
        """Change ids of `groups` the remote system already holds; applied (and remembered) here."""
        if op == "create":
            found = self.find(system, entity, groups)
            hits = [(g, found[g.ref]) for g in groups if g.ref in found]
        else:
            hits = [(g, Outcome(True, g.record or None)) for g in self.read_back(system, entity, op, groups)]
        done: set[str] = set()
        for g, hit in hits:
            self.remember(g, hit)
            number = hit.extra.get("number")
            result = f"{hit.record_id}|{number}" if number else hit.record_id
            ledger.set_status(self.store, self.connection, g.change_ids, "applied", None,
                              dict.fromkeys(g.change_ids, result) if result else None)  # fmt: skip
            self.report.found_by_lookup += len(g.change_ids)
            self.report.applied += len(g.change_ids)
            done.update(g.change_ids)
        return done

    def read_back(self, system: str, entity: str, op: str, groups: list[Group]) -> list[Group]:
        """The groups whose record, read fresh from the remote system, already holds every field."""
        view, key = FETCHED.get((system, entity), (None, None))
        if op == "email":  # the invoice the email was about: the books say whether it was sent
            view, key, entity = "books_invoices", "invoice_id", "invoice"
            targets = {id(g): self.resolved.get(f"@books.invoice.id:{g.ref}") for g in groups}
        else:
            targets = {id(g): g.record for g in groups}
        ids = sorted({t for t in targets.values() if t})
        if view is None or not ids:
            return []
        writer = self.books if system == "books" else self.crm
        writer.refresh(self.store, entity, ids, self.run_id)
        with self.store.read() as con:
            cur = con.execute(f"select * from canonical.{view} where connection = ? and {key} in (select unnest(?))",
                              [self.connection, ids])  # fmt: skip
            names = [d[0] for d in cur.description]
            held = {r[names.index(key)]: dict(zip(names, r, strict=True)) for r in cur.fetchall()}
        out = []
        for g in groups:
            row = held.get(targets[id(g)])
            fields = {"sent": True} if op == "email" else g.fields
            if row is not None and all(_holds(row, f, v) for f, v in fields.items()):
                out.append(g)
        return out

    # -- one call -------------------------------------------------------------------------------

    def call(self, system: str, entity: str, op: str, batch: list[Group], send: Callable[[], Batch | list[Outcome]],
             body: object) -> None:  # fmt: skip
        change_ids = [c for g in batch for c in g.change_ids]
        key = ledger.digest(*sorted(change_ids))
        call_id = ledger.record_intent(self.store, self.connection, self.run_id, system, entity, op, key,
                                       ledger.request_hash(body), change_ids, len(batch))  # fmt: skip
        self.report.write_calls[system] += 1
        try:
            result = send()
        except ApiError as exc:
            if exc.status is None or exc.status >= 500 or exc.status == 429:
                # the call may or may not have happened: leave the changes pending, look up next time
                ledger.complete_call(self.store, call_id, status="unknown", code=exc.status, failed=len(batch),
                                     error=str(exc), results=[])  # fmt: skip
                self.report.errors.append(f"{system}.{entity} {op}: outcome unknown: {exc}")
                return
            ledger.complete_call(self.store, call_id, status="error", code=exc.status, failed=len(batch), error=str(exc),
                                 results=[(g.change_ids, False, None, str(exc)) for g in batch])  # fmt: skip
            self.report.rejected += len(change_ids)
            self.report.errors.append(f"{system}.{entity} {op}: {exc}")
            return
        except (KeyError, TypeError, ValueError) as exc:  # refused while building the request: nothing sent
            ledger.complete_call(self.store, call_id, status="error", code=None, failed=len(batch), error=str(exc),
                                 results=[(g.change_ids, False, None, f"not sendable: {exc}") for g in batch])  # fmt: skip
            self.report.rejected += len(change_ids)
            self.report.errors.append(f"{system}.{entity} {op}: {exc}")
            return
        except OSError as exc:  # the connection dropped: outcome unknown
            ledger.complete_call(self.store, call_id, status="unknown", code=None, failed=len(batch), error=str(exc),
                                 results=[])  # fmt: skip
            self.report.errors.append(f"{system}.{entity} {op}: outcome unknown: {exc}")
            return
        outcomes = result.outcomes if isinstance(result, Batch) else result
        code = result.status if isinstance(result, Batch) else None
        results, failed, errors = self.settle(batch, outcomes)
        status = "ok" if not failed else ("partial" if failed < len(outcomes) else "rejected")
        ledger.complete_call(
            self.store, call_id, status=status, code=code, failed=failed, error=errors, results=results
        )

    def settle(self, batch: list[Group], outcomes: list[Outcome]) -> tuple[list, int, str]:
        """Each group's outcome: remembered when it succeeded, counted; (ledger results, failed, errors)."""
        results = []
        for g, o in zip(batch, outcomes, strict=True):
            number = o.extra.get("number")
            rid = f"{o.record_id}|{number}" if o.ok and number and o.record_id else o.record_id
            results.append((g.change_ids, o.ok, rid, o.error or o.code))
            if o.ok:
                self.remember(g, o)
                self.report.applied += len(g.change_ids)
            else:
                self.report.rejected += len(g.change_ids)
        failed = sum(not o.ok for o in outcomes)
        errors = "; ".join(f"{g.label}: {o.error}" for g, o in zip(batch, outcomes, strict=True) if not o.ok)
        return results, failed, errors

    # -- several CRM writes in one call ---------------------------------------------------------

    def dispatch(self, system: str, entity: str, op: str, batch: list[Group],
                 send: Callable[[], Batch | list[Outcome]], body: object, write: tuple[str, tuple]) -> None:  # fmt: skip
        """Books writes go now; CRM writes wait for `flush`, which sends them together."""
        if system == "crm" and getattr(self.crm, "composite_size", 1) > 1:
            self.queue.append(Pending(system, entity, op, batch, send, body, write))
        else:
            self.call(system, entity, op, batch, send, body)

    def queued(self, placeholder: str) -> bool:
        """Is `placeholder` (@system.entity.attr:ref) made by a create waiting in the queue?"""
        head, _, ref = placeholder[1:].partition(":")
        system, entity = head.split(".")[:2]
        return any(
            p.op == "create"
            and (p.system, p.entity) == (system, entity)
            and any(g.ref == ref for g in p.batch)
            for p in self.queue
        )

    def flush(self) -> None:
        """Send the queued CRM writes, up to `composite_size` of them a call, in the order queued."""
        queue, self.queue = self.queue, []
        size = max(1, getattr(self.crm, "composite_size", 1))
        for start in range(0, len(queue), size):
            items = queue[start : start + size]
            if len(items) == 1:
                p = items[0]
                self.call(p.system, p.entity, p.op, p.batch, p.send, p.body)
            else:
                self.call_composite(items)

    def call_composite(self, items: list[Pending]) -> None:
        """One composite call: its intent in the ledger first (every change it carries), then each write's
        outcome. An answer lost leaves them all unknown (creates are looked up next time, updates resent)."""
        change_ids = [c for p in items for g in p.batch for c in g.change_ids]
        op = " + ".join(f"{p.entity}.{p.op}" for p in items)
        key = ledger.digest(*sorted(change_ids))
        call_id = ledger.record_intent(self.store, self.connection, self.run_id, "crm", "composite", op, key,
                                       ledger.request_hash([p.body for p in items]), change_ids,
                                       sum(len(p.batch) for p in items))  # fmt: skip
        self.report.write_calls["crm"] += 1
        n = sum(len(p.batch) for p in items)
        try:
            answers = self.crm.composite([p.write for p in items])
        except ApiError as exc:
            if not_offered(exc):
                # no composite scope in the grant, or no composite API in the edition: nothing ran; one by one
                ledger.complete_call(self.store, call_id, status="refused", code=exc.status, failed=n,
                                     error=f"composite calls not allowed ({exc}); sent one by one", results=[])  # fmt: skip
                self.crm.composite_size = 1
                for p in items:
                    self.call(p.system, p.entity, p.op, p.batch, p.send, p.body)
                return
            if exc.status is None or exc.status >= 500 or exc.status == 429:
                ledger.complete_call(self.store, call_id, status="unknown", code=exc.status, failed=n,
                                     error=str(exc), results=[])  # fmt: skip
                self.report.errors.append(f"crm composite ({op}): outcome unknown: {exc}")
                return
            ledger.complete_call(self.store, call_id, status="error", code=exc.status, failed=n, error=str(exc),
                                 results=[(g.change_ids, False, None, str(exc)) for p in items for g in p.batch])  # fmt: skip
            self.report.rejected += len(change_ids)
            self.report.errors.append(f"crm composite ({op}): {exc}")
            return
        except (KeyError, TypeError, ValueError) as exc:  # refused while building the request: nothing sent
            ledger.complete_call(self.store, call_id, status="error", code=None, failed=n, error=str(exc),
                                 results=[(g.change_ids, False, None, f"not sendable: {exc}") for p in items for g in p.batch])  # fmt: skip
            self.report.rejected += len(change_ids)
            self.report.errors.append(f"crm composite ({op}): {exc}")
            return
        except OSError as exc:  # the connection dropped: outcome unknown
            ledger.complete_call(
                self.store, call_id, status="unknown", code=None, failed=n, error=str(exc), results=[]
            )
            self.report.errors.append(f"crm composite ({op}): outcome unknown: {exc}")
            return
        results, failed, errors = [], 0, []
        for p, answer in zip(items, answers, strict=True):
            if isinstance(answer, Exception):  # this write was refused whole
                results += [(g.change_ids, False, None, str(answer)) for g in p.batch]
                failed += len(p.batch)
                self.report.rejected += sum(len(g.change_ids) for g in p.batch)
                errors.append(f"{p.entity}.{p.op}: {answer}")
                continue
            r, f, e = self.settle(p.batch, answer.outcomes)
            results += r
            failed += f
            if e:
                errors.append(e)
        status = "ok" if not failed else ("partial" if failed < n else "rejected")
        ledger.complete_call(self.store, call_id, status=status, code=200, failed=failed, error="; ".join(errors),
                             results=results)  # fmt: skip

    # -- the phases -----------------------------------------------------------------------------

    def run_phase(self, system: str, entity: str, op: str, groups: list[Group], unknown: set[str]) -> None:
        ready = []
        for g in groups:
            try:
                ready.append(self.resolve(g))
            except Unresolved as exc:
                if self.queued(exc.args[0]):  # made by a write waiting in the queue: after it is sent
                    self.deferred[(system, entity, op)].append(g)
                    continue
                self.report.waiting += len(g.change_ids)
                ledger.set_status(self.store, self.connection, g.change_ids, "planned",
                                  f"waiting for {exc.args[0]} (not created yet)")  # fmt: skip
        if op == "create":
            doubtful = [g for g in ready if set(g.change_ids) & unknown]
            if doubtful:
                left = {id(g) for g in self.look_up(system, entity, doubtful)}
                ready = [g for g in ready if g not in doubtful or id(g) in left]
        if (system, entity, op) == ("books", "invoice", "update") and ready:
            status = self.books.invoice_status([g.record for g in ready])
            refused = guards.locked(status, [g.record for g in ready])
            for g in ready:
                if g.record in refused:
                    self.report.refused += len(g.change_ids)
                    ledger.set_status(self.store, self.connection, g.change_ids, "refused",
                                      f"books document is {status.get(g.record, 'unreadable')}: posted documents are never edited")  # fmt: skip
            ready = [g for g in ready if g.record not in refused]
        if not ready:
            return
        writer = self.books if system == "books" else self.crm
        if op == "tag":
            by_tag: dict[str, list[Group]] = defaultdict(list)
            for g in ready:
                by_tag[g.fields["tags"]].append(g)
            for tag, members in sorted(by_tag.items()):
                for batch in _chunks(members, getattr(self.crm, "tag_batch_size", self.crm.batch_size)):
                    ids = [g.record for g in batch]
                    self.dispatch(system, entity, op, batch, lambda ids=ids, tag=tag: self.crm.add_tags(ids, [tag]),
                                  {"ids": ids, "tags": [tag]}, ("add_tags", (ids, [tag])))  # fmt: skip
            return
        if op == "email":
            for g in ready:
                invoice_id = self.resolved.get(f"@books.invoice.id:{g.ref}")
                if invoice_id is None:
                    self.report.waiting += len(g.change_ids)
                    continue
                self.call(
                    system,
                    entity,
                    op,
                    [g],
                    lambda i=invoice_id: [self.books.email_invoice(i)],
                    {"email": invoice_id},
                )
            return
        for batch in _chunks(ready, writer.batch_size):
            send, body, write = self.sender(system, entity, op, batch)
            self.dispatch(system, entity, op, batch, send, body, write)

    def sender(
        self, system: str, entity: str, op: str, batch: list[Group]
    ) -> tuple[Callable[[], Batch], object, tuple[str, tuple]]:
        if system == "crm" and op == "set":  # insights' own fields on accounts and deals
            changes = [(g.record, dict(g.fields)) for g in batch]
            body = [repr(r) for r in changes]
            return (lambda: self.crm.set_fields(entity, changes)), body, ("set_fields", (entity, changes))
        if (system, entity) == ("crm", "account"):
            records = [customer(g, Role.CRM) for g in batch]
            kind = "upsert_accounts" if op == "create" else "update_accounts"
        elif (system, entity) == ("crm", "contact"):
            records = [
                Person(
                    id=g.record or None,
                    first_name=g.fields.get("first_name"),
                    last_name=g.fields.get("last_name"),
                    email=g.fields.get("email"),
                    mobile=g.fields.get("mobile"),
                    phone=g.fields.get("phone"),
                    customer_id=g.fields.get("account"),
                )  # fmt: skip
                for g in batch
            ]
            kind = "upsert_contacts" if op == "create" else "update_contacts"
        elif (system, entity) == ("crm", "deal"):
            records = [(g.record, dict(g.fields)) for g in batch]
            kind = "update_deals"
        elif (system, entity) == ("crm", "invoice"):
            records = [(g.record, dict(g.fields)) for g in batch]
            kind = "update_invoices"
        elif (system, entity) == ("crm", "task"):
            records = [dict(g.fields) for g in batch]
            kind = "create_tasks"
        elif (system, entity) == ("books", "customer"):
            records = [customer(g, Role.BOOKS) for g in batch]
            kind = "create_customers" if op == "create" else "update_customers"
        elif (system, entity) == ("books", "invoice"):
            records = [invoice(g, self.books) for g in batch]
            kind = "create_invoices" if op == "create" else "update_invoices"
        else:
            raise ValueError(f"no writer for {system}.{entity} {op}")
        body = [repr(r) for r in records]
        fn = getattr(self.books if system == "books" else self.crm, kind)
        return (lambda: fn(records)), body, (kind, (records,))

    def refresh(self) -> None:
        for (system, entity), ids in sorted(self.written.items()):
            writer = self.books if system == "books" else self.crm
            try:
                self.report.refreshed += writer.refresh(self.store, entity, sorted(ids), self.run_id)
            except ApiError as exc:  # the writes stand; the next sync reads them
                self.report.errors.append(f"refresh {system}.{entity}: {exc}")


FETCHED = {  # (system, entity) -> (canonical view, its key): where a record read back is compared
    ("books", "customer"): ("books_customers", "customer_id"),
    ("books", "invoice"): ("books_invoices", "invoice_id"),
    ("crm", "account"): ("crm_accounts", "account_id"),
    ("crm", "contact"): ("crm_contacts", "contact_id"),
    ("crm", "deal"): ("crm_deals", "deal_id"),
    ("crm", "invoice"): ("crm_invoices", "invoice_id"),
}
COLUMN = {"outstanding_balance": "outstanding", "overdue_balance": "overdue"}  # plan field -> view column


def _holds(row: dict, name: str, value: Any) -> bool:
    """Does a canonical row read back hold a plan field's value? (Unknown columns: no, so it is resent.)"""
    if name == "tags":
        return value in (row.get("tags") or [])
    column = COLUMN.get(name, name)
    if column not in row:
        return False
    held = row[column]
    if held is None or value is None:
        return held is None and value is None
    if isinstance(value, Decimal) or isinstance(held, Decimal):
        try:
            return Decimal(str(held)) == Decimal(str(value))
        except ArithmeticError:
            return False
    if isinstance(held, date) and isinstance(value, str):
        return held.isoformat() == value
    return held == value if isinstance(value, bool | date) else str(held) == str(value)


def _chunks(items: Sequence, size: int) -> list[list]:
    return [list(items[i : i + size]) for i in range(0, len(items), size)]


def apply(
    store: Store,
    connection: str,
    books: BooksWriter,
    crm: CrmWriter,
    policies: Policies,
    *,
    approve: bool = False,
    run_id: str | None = None,
    check_invariants: bool = True,
    retry_rejected: bool = False,
) -> ApplyReport:
    """Apply the pending plan of `connection` unless a guard holds it. Calls of earlier runs whose outcome
    is unknown are looked up first (`Applier.settle_open_calls`). Changes the API refused before are sent
    again only with `retry_rejected` (a person fixed what the refusal named): the same request refused
    once is not sent again by itself."""
    report = ApplyReport(connection, dry_run=policies.dry_run)
    applier = Applier(store, connection, books, crm, run_id)
    applier.report = report
    if policies.enabled and not policies.dry_run:
        applier.load_resolved()
        applier.settle_open_calls()
    every = ledger.pending(store, connection)  # one read: the held-back count comes from the same rows
    pending = every if retry_rejected else every[every["status"] != "rejected"].reset_index(drop=True)
    report.held = len(every) - len(pending)
    report.pending = len(pending) + report.found_by_lookup
    if pending.empty:
        if applier.written:
            remember_writes(connection, applier.written)
            applier.refresh()
        return report
    failures = guards.invariant_failures(store) if check_invariants else []
    if failures:
        report.blocked = "ERROR invariants fail in the mirror: " + ", ".join(failures)
        return report
    mass = guards.mass_change(store, connection, pending, policies, approve)
    report.fingerprint = mass.fingerprint
    if mass.blocked:
        report.blocked = (
            "mass-change guard: " + "; ".join(mass.reasons)
            + f". Approve this plan with `xz apply --approve` or XZ_WRITEBACK_APPROVE={mass.fingerprint}"
        )  # fmt: skip
        return report
    if policies.dry_run or not policies.enabled:
        report.dry_run = True
        report.applied = len(pending)
        return report
    applier.load_resolved()
    unknown = ledger.unknown_changes(store, connection)
    groups = groups_of(pending)
    for phase in PHASES:
        members = [g for key, g in sorted(groups.items()) if key[:3] == phase]
        if members:
            applier.run_phase(*phase, members, unknown)
    applier.flush()
    while applier.deferred:  # what waited for a queued create (a new account's contacts): now it exists
        deferred, applier.deferred = applier.deferred, defaultdict(list)
        for phase in PHASES:
            if deferred.get(phase):
                applier.run_phase(*phase, deferred[phase], unknown)
        applier.flush()
    remember_writes(connection, applier.written)  # the sensors tell our echoes from the inbox alone
    applier.refresh()
    report.calls = {"books": books.calls, "crm": crm.calls}
    return report
