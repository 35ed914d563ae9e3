"""One Salesforce org's state: its schema, records per object (deleted ones stay in the recycle bin with
IsDeleted true), the ids it mints, and a journal so a request with allOrNone can be rolled back.

Values are held as Python values (str, bool, Decimal, date, aware datetime in UTC, None); `wire.py` turns
them into JSON. Fields Salesforce derives are derived here on every write: Contact.Name, an
opportunity's IsWon/IsClosed/ForecastCategory from its stage's OpportunityStage metadata (a renamed won
stage is still won), HasOpportunityLineItem, line and price-book-entry names and totals, and the audit
fields (LastModifiedDate and SystemModstamp move together, in whole seconds).

One deliberate difference: an opportunity's Amount is kept as set. Salesforce rolls Amount up from line
items when an opportunity has them; the generated world's deal amounts are tax inclusive while its
product lines are net, and reconciliation's ground truth is the amount.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from xz_pipeline.sandbox.salesforce.ids import IdMint
from xz_pipeline.sandbox.salesforce.schema import Schema

RECYCLE_DAYS = 15  # how long /deleted can see a deletion (Salesforce's recycle bin keeps 15 days)


def whole_seconds(when: datetime) -> datetime:
    return when.replace(microsecond=0)


@dataclass
class Org:
    org_id: str
    name: str
    schema: Schema
    mint: IdMint
    timezone: str = "America/Los_Angeles"
    currency: str = "USD"
    multicurrency: bool = True
    edition: str = "Enterprise Edition"
    rotate_refresh_tokens: bool = False
    api_user_id: str = ""
    instance_url: str = ""
    records: dict[str, dict[str, dict[str, Any]]] = field(default_factory=dict)
    deleted_at: dict[str, datetime] = field(default_factory=dict)  # id -> when it went to the recycle bin
    journal: list[tuple[str, str, dict | None]] = field(default_factory=list)  # (sobject, id, before)
    lines: dict[str, set[str]] = field(default_factory=dict)  # opportunity id -> its line item ids (an index)
    custom_fields: dict[str, tuple[str, str, datetime]] = field(
        default_factory=dict
    )  # 00N id -> object, name
    version: int = 0  # bumps on every change (query locators remember the version they were taken at)

    def __post_init__(self) -> None:
        for sobject in self.schema.objects:
            self.records.setdefault(sobject, {})

    # ---- reads --------------------------------------------------------------------------------

    def get(self, sobject: str, rid: str, *, deleted: bool = False) -> dict | None:
        rec = self.records.get(sobject, {}).get(rid)
        if rec is None or (rec["IsDeleted"] and not deleted):
            return None
        return rec

    def find_by(self, sobject: str, field_name: str, value: Any) -> list[dict]:
        return [
            r for r in self.records[sobject].values() if not r["IsDeleted"] and r.get(field_name) == value
        ]

    def locate(self, rid: str) -> tuple[str, dict] | None:
        for sobject, recs in self.records.items():
            rec = recs.get(rid)
            if rec is not None:
                return sobject, rec
        return None

    # ---- writes (journaled) -------------------------------------------------------------------

    def _remember(self, sobject: str, rid: str) -> None:
        before = self.records[sobject].get(rid)
        self.journal.append((sobject, rid, dict(before) if before is not None else None))
        self.version += 1

    def insert(self, sobject: str, values: dict, now: datetime, *, user_id: str = "", rid: str = "") -> dict:
        """A new record (values already checked and coerced); system fields and derived fields are set here."""
        rid = rid or self.mint.next(sobject)
        when = whole_seconds(now)
        user = user_id or self.api_user_id
        rec: dict[str, Any] = {name: None for name in self.schema.fields(sobject)}
        for name, f in self.schema.fields(sobject).items():
            if f.type == "boolean":
                rec[name] = False
        rec.update({"IsActive": True} if "IsActive" in rec and sobject != "Pricebook2" else {})
        rec.update(values)
        rec.update({"Id": rid, "IsDeleted": False, "CreatedDate": rec.get("CreatedDate") or when,
                    "LastModifiedDate": rec.get("LastModifiedDate") or when,
                    "SystemModstamp": rec.get("SystemModstamp") or rec.get("LastModifiedDate") or when})  # fmt: skip
        for audit in ("CreatedById", "LastModifiedById"):
            if audit in rec and not rec[audit]:
                rec[audit] = user
        if "OwnerId" in rec and not rec["OwnerId"]:
            rec["OwnerId"] = user
        if "CurrencyIsoCode" in rec and not rec["CurrencyIsoCode"]:
            rec["CurrencyIsoCode"] = self.currency
        self._remember(sobject, rid)
        self.records[sobject][rid] = rec
        if sobject == "OpportunityLineItem" and rec.get("OpportunityId"):
            self.lines.setdefault(rec["OpportunityId"], set()).add(rid)
        self.derive(sobject, rec)
        return rec

    def update(self, sobject: str, rid: str, values: dict, now: datetime, *, user_id: str = "") -> dict:
        rec = self.records[sobject][rid]
        self._remember(sobject, rid)
        rec.update(values)
        when = whole_seconds(now)
        rec["LastModifiedDate"] = rec["SystemModstamp"] = when
        if "LastModifiedById" in rec:
            rec["LastModifiedById"] = user_id or self.api_user_id
        self.derive(sobject, rec)
        return rec

    def delete(self, sobject: str, rid: str, now: datetime) -> None:
        """Into the recycle bin: IsDeleted true, seen by queryAll and /deleted; an opportunity takes its lines."""
        rec = self.records[sobject][rid]
        self._remember(sobject, rid)
        rec["IsDeleted"] = True
        rec["SystemModstamp"] = whole_seconds(now)
        self.deleted_at[rid] = whole_seconds(now)
        if sobject == "Opportunity":
            for line in self._live_lines(rid):
                self.delete("OpportunityLineItem", line, now)
        if sobject == "OpportunityLineItem":
            self._touch_parent(rec.get("OpportunityId"))

    def rollback(self, mark: int) -> None:
        """Undo every change after journal position `mark` (allOrNone)."""
        while len(self.journal) > mark:
            sobject, rid, before = self.journal.pop()
            if before is None:
                gone = self.records[sobject].pop(rid, None)
                if sobject == "OpportunityLineItem" and gone is not None:
                    self.lines.get(gone.get("OpportunityId") or "", set()).discard(rid)
                    self._touch_parent(gone.get("OpportunityId"))
            else:
                self.records[sobject][rid] = before
            if before is None or not before.get("IsDeleted"):
                self.deleted_at.pop(rid, None)
        self.version += 1

    # ---- derived fields -----------------------------------------------------------------------

    def derive(self, sobject: str, rec: dict) -> None:
        if sobject == "Contact":
            rec["Name"] = " ".join(p for p in (rec.get("FirstName"), rec.get("LastName")) if p)
        elif sobject == "Opportunity":
            stage = self.schema.stage(rec.get("StageName") or "")
            if stage is not None:
                rec["IsClosed"], rec["IsWon"] = stage.closed, stage.won
                rec["ForecastCategoryName"] = stage.forecast
                rec["ForecastCategory"] = {"Best Case": "BestCase", "Commit": "Forecast"}.get(stage.forecast,
                                                                                              stage.forecast)  # fmt: skip
                if rec.get("Probability") is None:
                    rec["Probability"] = Decimal(stage.probability)
            rec["HasOpportunityLineItem"] = bool(self._live_lines(rec["Id"]))
        elif sobject == "PricebookEntry":
            product = self.records["Product2"].get(rec.get("Product2Id") or "")
            if product is not None:
                rec["Name"], rec["ProductCode"] = product["Name"], product.get("ProductCode")
        elif sobject == "OpportunityLineItem":
            entry = self.records["PricebookEntry"].get(rec.get("PricebookEntryId") or "")
            if entry is not None:
                rec["Product2Id"], rec["ListPrice"] = entry["Product2Id"], entry["UnitPrice"]
                rec["ProductCode"] = entry.get("ProductCode")
                if rec.get("UnitPrice") is None:
                    rec["UnitPrice"] = entry["UnitPrice"]
            opp = self.records["Opportunity"].get(rec.get("OpportunityId") or "")
            product = self.records["Product2"].get(rec.get("Product2Id") or "")
            rec["Name"] = f"{opp['Name'] if opp else ''} {product['Name'] if product else ''}".strip()
            if rec.get("Quantity") is not None and rec.get("UnitPrice") is not None:
                off = 1 - Decimal(str(rec.get("Discount") or 0)) / 100  # Discount is a percentage
                rec["TotalPrice"] = (rec["Quantity"] * rec["UnitPrice"] * off).quantize(Decimal("0.01"))
            self._touch_parent(rec.get("OpportunityId"))

    def _touch_parent(self, opp_id: str | None) -> None:
        opp = self.records["Opportunity"].get(opp_id or "")
        if opp is not None:
            opp["HasOpportunityLineItem"] = bool(self._live_lines(opp["Id"]))

    def _live_lines(self, opp_id: str) -> list[str]:
        items = self.records["OpportunityLineItem"]
        return sorted(i for i in self.lines.get(opp_id, ()) if i in items and not items[i]["IsDeleted"])

    # ---- change windows -----------------------------------------------------------------------

    def updated_between(self, sobject: str, start: datetime, end: datetime) -> list[str]:
        """Live ids whose SystemModstamp falls in [start, end)."""
        return [rid for rid, r in self.records[sobject].items()
                if not r["IsDeleted"] and start <= r["SystemModstamp"] < end]  # fmt: skip

    def deleted_between(self, sobject: str, start: datetime, end: datetime) -> list[tuple[str, datetime]]:
        return sorted(((rid, self.deleted_at[rid]) for rid, r in self.records[sobject].items()
                       if r["IsDeleted"] and rid in self.deleted_at and start <= self.deleted_at[rid] < end),
                      key=lambda p: (p[1], p[0]))  # fmt: skip

    def earliest_deleted(self, now: datetime) -> datetime:
        return whole_seconds(now - timedelta(days=RECYCLE_DAYS))
