"""One QBO company (realm): its entities, their ids and SyncTokens, tombstones, and derived balances.

Ids are small integer strings per realm, drawn from the sequence the entity shares in QBO: names
(Customer, Vendor) share one, transactions (Invoice, Payment, CreditMemo, Bill, ...) another, and
lists (Item, Account, TaxCode, TaxRate, Term) one each. Every stored record carries `Id`,
`SyncToken`, `MetaData.CreateTime/LastUpdatedTime`, `domain: "QBO"` and `sparse: false`.

Balances are QBO's derived amounts: an invoice's `Balance` is its total less what payments (and
credit memos applied through them) link to it; a credit memo's `RemainingCredit` likewise; a
customer's `Balance` is the open balance of its invoices less its unapplied credit. Applying a
payment changes the invoice, so the invoice's SyncToken and LastUpdatedTime move, as in QBO.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

from xz_pipeline.sandbox.clock import Clock

ZERO = Decimal("0")
ENTITIES = (
    "Account", "Bill", "BillPayment", "CompanyInfo", "CreditMemo", "Customer", "Estimate", "Invoice", "Item",
    "Payment", "Preferences", "TaxCode", "TaxRate", "Term", "Vendor", "VendorCredit",
)  # fmt: skip
ID_SPACE = {"Customer": "name", "Vendor": "name", "Invoice": "txn", "Payment": "txn", "CreditMemo": "txn",
            "Bill": "txn", "BillPayment": "txn", "VendorCredit": "txn", "Estimate": "txn"}  # fmt: skip
HAS_ACTIVE = ("Customer", "Vendor", "Item", "Account", "TaxCode", "TaxRate", "Term")
TRANSACTIONS = ("Invoice", "Payment", "CreditMemo", "Bill", "BillPayment", "VendorCredit", "Estimate")
# Entities the CDC endpoint serves (QBO: not TaxCode, TaxRate, JournalCode, TimeActivity).
CDC_ENTITIES = tuple(e for e in ENTITIES if e not in ("TaxCode", "TaxRate", "CompanyInfo", "Preferences"))
BY_LOWER = {e.lower(): e for e in ENTITIES}


@dataclass
class Tombstone:
    id: str
    created: datetime
    deleted: datetime


@dataclass
class Company:
    """The state of one realm; the emulator holds its lock around every call."""

    realm_id: str
    clock: Clock
    zone: ZoneInfo
    on_change: Callable[[str, str, str, datetime], None] = lambda entity, rid, op, when: None
    records: dict[str, dict[str, dict]] = field(default_factory=lambda: {e: {} for e in ENTITIES})
    tombstones: dict[str, dict[str, Tombstone]] = field(default_factory=lambda: {e: {} for e in ENTITIES})
    counters: dict[str, int] = field(default_factory=dict)
    id_map: dict[str, str] = field(default_factory=dict)  # world id -> QBO id
    id_entity: dict[str, str] = field(default_factory=dict)  # world id -> the QBO entity it became
    version: int = 0  # moves on every change: cached query orders of an older version are stale
    _balances: dict[str, Decimal] | None = None

    # ---- ids and storage ---------------------------------------------------------------------

    def next_id(self, entity: str) -> str:
        space = ID_SPACE.get(entity, entity)
        self.counters[space] = self.counters.get(space, 0) + 1
        return str(self.counters[space])

    def assign(self, entity: str, world_id: str) -> str:
        """The QBO id of a world record (deterministic: seeding order decides)."""
        rid = self.id_map.get(world_id)
        if rid is None:
            rid = self.id_map[world_id] = self.next_id(entity)
            self.id_entity[world_id] = entity
        return rid

    def put(self, entity: str, rec: dict, *, created: datetime, updated: datetime, sync: int = 0) -> dict:
        """Store a seeded record as it stands (no events, the world's own times)."""
        rec["SyncToken"] = str(sync)
        rec["MetaData"] = {"CreateTime": created, "LastUpdatedTime": updated}
        rec["domain"], rec["sparse"] = "QBO", False
        self.records[entity][rec["Id"]] = rec
        self._balances = None
        self.version += 1
        return rec

    def save(self, entity: str, rec: dict, operation: str) -> dict:
        """Store a record changed through the API: SyncToken + 1, LastUpdatedTime now, one event."""
        now = self.clock.now().replace(microsecond=0)  # QBO keeps whole seconds
        old = self.records[entity].get(rec["Id"])
        if old is None:
            rec["SyncToken"] = "0"
            rec["MetaData"] = {"CreateTime": now, "LastUpdatedTime": now}
        else:
            rec["SyncToken"] = str(int(old["SyncToken"]) + 1)
            rec["MetaData"] = {**old["MetaData"], "LastUpdatedTime": now}
        rec["domain"], rec["sparse"] = "QBO", False
        self.records[entity][rec["Id"]] = rec
        self._balances = None
        self.version += 1
        self.on_change(entity, rec["Id"], operation, now)
        return rec

    def remove(self, entity: str, rid: str) -> Tombstone:
        now = self.clock.now().replace(microsecond=0)
        rec = self.records[entity].pop(rid)
        stone = self.tombstones[entity][rid] = Tombstone(rid, rec["MetaData"]["CreateTime"], now)
        self._balances = None
        self.version += 1
        self.on_change(entity, rid, "Delete", now)
        return stone

    def get(self, entity: str, rid: str) -> dict | None:
        return self.records[entity].get(str(rid))

    # ---- derived amounts -----------------------------------------------------------------------

    def applied(self) -> tuple[dict[str, Decimal], dict[str, Decimal]]:
        """What payments apply to each invoice and each credit memo (by id)."""
        to_invoice: dict[str, Decimal] = {}
        to_credit: dict[str, Decimal] = {}
        for pay in self.records["Payment"].values():
            for line in pay.get("Line") or []:
                for link in line.get("LinkedTxn") or []:
                    target = to_invoice if link.get("TxnType") == "Invoice" else to_credit
                    if link.get("TxnType") in ("Invoice", "CreditMemo"):
                        target[link["TxnId"]] = target.get(link["TxnId"], ZERO) + Decimal(str(line["Amount"]))
        return to_invoice, to_credit

    def _paid_by(self) -> dict[str, list[dict]]:
        paid_by: dict[str, list[dict]] = {}
        for pay in self.records["Payment"].values():
            for line in pay.get("Line") or []:
                for link in line.get("LinkedTxn") or []:
                    if link.get("TxnType") == "Invoice":
                        links = paid_by.setdefault(link["TxnId"], [])
                        if not any(x["TxnId"] == pay["Id"] for x in links):
                            links.append({"TxnId": pay["Id"], "TxnType": "Payment"})
        return paid_by

    @staticmethod
    def _derive(inv: dict, paid: Decimal, payments: list[dict]) -> bool:
        """Set an invoice's Balance (HomeBalance) and its payment links; True when they changed."""
        want = ZERO if inv.get("_voided") else max(ZERO, inv["TotalAmt"] - paid)
        links = [x for x in inv.get("LinkedTxn") or [] if x.get("TxnType") != "Payment"] + payments
        changed = inv.get("Balance") != want or inv.get("LinkedTxn") != links
        inv["Balance"], inv["LinkedTxn"] = want, links
        if "HomeTotalAmt" in inv:
            inv["HomeBalance"] = (want * inv.get("ExchangeRate", Decimal(1))).quantize(Decimal("0.01"))
        return changed

    def derive_invoice(self, inv: dict) -> None:
        """An invoice about to be saved gets the balance and links its payments give it."""
        self._derive(inv, self.applied()[0].get(inv["Id"], ZERO), self._paid_by().get(inv["Id"], []))

    def rebalance(self, touch: bool) -> None:
        """Recompute invoices' Balance and LinkedTxn and credit memos' RemainingCredit from the payments.

        With `touch`, a record that changed is saved as an update (SyncToken, time, event)."""
        to_invoice, to_credit = self.applied()
        paid_by = self._paid_by()
        for inv in self.records["Invoice"].values():
            if self._derive(inv, to_invoice.get(inv["Id"], ZERO), paid_by.get(inv["Id"], [])) and touch:
                self.save("Invoice", inv, "Update")
        for memo in self.records["CreditMemo"].values():
            want = (
                ZERO if memo.get("_voided") else max(ZERO, memo["TotalAmt"] - to_credit.get(memo["Id"], ZERO))
            )
            if memo.get("RemainingCredit") != want:
                memo["RemainingCredit"] = want
                memo["Balance"] = want
                if touch:
                    self.save("CreditMemo", memo, "Update")
        self._balances = None

    def customer_balance(self, rid: str) -> Decimal:
        if self._balances is None:
            sums: dict[str, Decimal] = {}
            for inv in self.records["Invoice"].values():
                cid = inv["CustomerRef"]["value"]
                sums[cid] = sums.get(cid, ZERO) + inv.get("Balance", ZERO)
            for memo in self.records["CreditMemo"].values():
                cid = memo["CustomerRef"]["value"]
                sums[cid] = sums.get(cid, ZERO) - memo.get("RemainingCredit", ZERO)
            for pay in self.records["Payment"].values():
                cid = pay["CustomerRef"]["value"]
                sums[cid] = sums.get(cid, ZERO) - pay.get("UnappliedAmt", ZERO)
            self._balances = sums
        return self._balances.get(rid, ZERO)

    def view(self, entity: str, rec: dict) -> dict[str, Any]:
        """The record as the API shows it (a customer's Balance is derived at read time)."""
        if entity == "Customer":
            bal = self.customer_balance(rec["Id"])
            return {**rec, "Balance": bal, "BalanceWithJobs": bal}
        return rec
