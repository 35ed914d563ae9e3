"""Data-quality checks on the Salesforce extract assets: pandera models per table, as the other vendors'.

One multi-check step per asset and connection (`SALESFORCE_CHECKS`, gathered by definitions.py). ERROR rules
block what depends on the asset (reconciliation, write-back); WARN rules only report. A connection whose crm
is not Salesforce passes with the reason stated (core.checks).
"""

from __future__ import annotations

import pandas as pd
import pandera.pandas as pa
from pandera.typing import Series

from xz_pipeline.core import schemas as s
from xz_pipeline.core.checks import WARN, Rule, build_mirror_checks
from xz_pipeline.core.mirror import EntityTable
from xz_pipeline.salesforce import tables


def _id() -> pa.Field:
    return pa.Field(nullable=False, str_length={"min_value": 15, "max_value": 18})  # Salesforce ids: 15 or 18


def _opt(**kw) -> pa.Field:
    return pa.Field(nullable=True, **kw)


class SfAccount(s.MirrorRow):
    account_id: Series[str] = _id()
    name: Series[str] = pa.Field(nullable=False, str_length={"min_value": 1})
    currency: Series[str] = _opt()
    outstanding_balance: Series[s.Money] = _opt()
    overdue_balance: Series[s.Money] = _opt()

    _currency = s.iso_currency("currency")

    class Config:
        unique = ["connection", "account_id"]


class SfContact(s.MirrorRow):
    contact_id: Series[str] = _id()
    last_name: Series[str] = pa.Field(nullable=False, str_length={"min_value": 1})

    class Config:
        unique = ["connection", "contact_id"]


class SfContactEmails(s.MirrorRow):
    """WARN: a contact's email should at least look like one."""

    contact_id: Series[str] = _id()
    email: Series[str] = _opt()

    _email = s.plausible_email("email")


class SfOpportunity(s.MirrorRow):
    opportunity_id: Series[str] = _id()
    name: Series[str] = pa.Field(nullable=False, str_length={"min_value": 1})
    stage_name: Series[str] = pa.Field(nullable=False)
    amount: Series[s.Money] = _opt(ge=0)
    probability: Series[s.Price] = _opt(ge=0, le=100)
    currency: Series[str] = _opt()

    _currency = s.iso_currency("currency")

    @s.row_check("is_won", "is_closed", name="won_is_closed", error="a won opportunity that is not closed")
    def _won_closed(cls, df: pd.DataFrame) -> Series[bool]:
        return ~(df["is_won"].fillna(False).astype(bool) & ~df["is_closed"].fillna(False).astype(bool))

    class Config:
        unique = ["connection", "opportunity_id"]


class SfLineItem(s.MirrorRow):
    line_item_id: Series[str] = _id()
    opportunity_id: Series[str] = pa.Field(nullable=False)
    quantity: Series[s.Price] = _opt()
    unit_price: Series[s.Price] = _opt()

    class Config:
        unique = ["connection", "line_item_id"]


class SfProduct(s.MirrorRow):
    product_id: Series[str] = _id()
    name: Series[str] = pa.Field(nullable=False, str_length={"min_value": 1})

    class Config:
        unique = ["connection", "product_id"]


def _t(spec: EntityTable) -> str:
    return f"{spec.schema}.{spec.table}"


RULES: dict[str, tuple[EntityTable, list[Rule]]] = {
    "salesforce_accounts": (tables.ACCOUNTS, [
        Rule("accounts_schema", SfAccount, _t(tables.ACCOUNTS), ("account_id",),
             description="accounts: ids, names, ISO 4217 currency, DECIMAL balances"),
    ]),
    "salesforce_contacts": (tables.CONTACTS, [
        Rule("contacts_schema", SfContact, _t(tables.CONTACTS), ("contact_id",), description="contacts: ids and last names"),
        Rule("emails_plausible", SfContactEmails, _t(tables.CONTACTS), ("contact_id",), severity=WARN,
             description="contact emails look like email addresses"),
    ]),
    "salesforce_opportunities": (tables.OPPORTUNITIES, [
        Rule("opportunities_schema", SfOpportunity, _t(tables.OPPORTUNITIES), ("opportunity_id",),
             description="opportunities: ids, names, stage, probability 0-100, non-negative DECIMAL amounts, "
                         "won ones closed"),
    ]),
    "salesforce_opportunity_line_items": (tables.LINE_ITEMS, [
        Rule("line_items_schema", SfLineItem, _t(tables.LINE_ITEMS), ("line_item_id",),
             description="opportunity products: ids, their opportunity, DECIMAL quantity and price"),
    ]),
    "salesforce_products": (tables.PRODUCTS, [
        Rule("products_schema", SfProduct, _t(tables.PRODUCTS), ("product_id",), description="products: ids and names"),
    ]),
}  # fmt: skip

SALESFORCE_CHECKS = [
    build_mirror_checks(asset, vendor=spec.vendor, entity=spec.entity, rules=rules)
    for asset, (spec, rules) in RULES.items()
]
