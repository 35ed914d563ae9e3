"""Write-back policies per connection: which rules run, dry-run, field ownership and the guard's limits.

Read from, lowest precedence first:
1. defaults (every policy on except those of insights, `OFF_BY_DEFAULT`; invoices created as DRAFT, Xero owns billing address, tax number and the
   financial fields, the CRM owns names, phones and contact emails);
2. `$XZ_HOME/connections.toml`, table `[connections."<name>".writeback]` (same keys as the JSON below);
3. the environment: `XZ_WRITEBACK=off` turns write-back off, `XZ_WRITEBACK_DRY_RUN=1` plans without
   writing, `XZ_WRITEBACK_POLICIES` a JSON object of the same keys (for every connection),
   `XZ_WRITEBACK_APPROVE` approves a plan the mass-change guard holds (its fingerprint, or `all`),
   `XZ_WRITEBACK_APPLY=1` lets scheduled runs and `xz sync` write without `--apply`.

Keys: enabled, auto_apply (write from scheduled runs / `xz sync` without `--apply`; default off), dry_run, policies ({name: true|false}), invoice_status (DRAFT|AUTHORISED), email_invoices,
ownership ({field: books|crm}), max_change_share, max_change_count, min_guarded_records, approve,
supplier_tag, zoho_trigger (list of Zoho triggers; [] = no workflow runs), due_days.
Ownership is per field, never last-writer-wins: a field owned by one side is only ever written to the other.
"""

from __future__ import annotations

import json
import os
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from xz_pipeline import settings

POLICIES = (
    "xero_customer_to_crm",
    "crm_account_to_xero",
    "won_deal_to_invoice",
    "payment_to_crm",
    "bill_tags_to_crm",
    "field_corrections",
    "payment_risk_to_crm",  # insights.payment_risk's band and expected pay date on deals and accounts
    "reminders_to_crm",  # each due reminder (insights.reminders) as a CRM task on its account
    "projects_to_crm",  # hours delivered, unbilled amount and status of books projects on deals and accounts
)
# Insights are opinions, not corrections: they reach the CRM only when a person turns them on.
OFF_BY_DEFAULT = frozenset({"payment_risk_to_crm", "reminders_to_crm", "projects_to_crm"})
BOOKS, CRM = "books", "crm"
DEFAULT_OWNERSHIP: dict[str, str] = {
    "billing_address": BOOKS,
    "tax_number": BOOKS,
    "outstanding_balance": BOOKS,
    "overdue_balance": BOOKS,
    "payment_status": BOOKS,
    "amount_paid": BOOKS,
    "currency": BOOKS,
    "name": CRM,
    "phone": CRM,
    "mobile": CRM,
    "email": CRM,
}


class PolicyError(ValueError):
    """A write-back setting that cannot be understood (named, with where it came from)."""


@dataclass(frozen=True)
class Policies:
    enabled: bool = True
    auto_apply: bool = False
    dry_run: bool = False
    on: Mapping[str, bool] = field(default_factory=lambda: {p: p not in OFF_BY_DEFAULT for p in POLICIES})
    invoice_status: str = "DRAFT"
    email_invoices: bool = False
    ownership: Mapping[str, str] = field(default_factory=lambda: dict(DEFAULT_OWNERSHIP))
    max_change_share: float = 0.25  # of a table's records changed by one plan ...
    max_change_count: int = 1000  # ... or this many records: the guard holds the plan for approval
    min_guarded_records: int = 25  # fewer changed records than this never trip the share rule
    approve: str | None = None
    supplier_tag: str = "Xero Supplier"
    zoho_trigger: tuple[str, ...] = ()
    due_days: int = 30

    def active(self, policy: str) -> bool:
        return self.enabled and bool(self.on.get(policy, False))

    def owner(self, field_name: str) -> str | None:
        return self.ownership.get(field_name)


def _bool(value: Any, where: str) -> bool:
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in ("1", "true", "yes", "on"):
        return True
    if text in ("0", "false", "no", "off", ""):
        return False
    raise PolicyError(f"{where}: {value!r} is not on/off")


def _merge(base: Policies, doc: Mapping[str, Any], where: str) -> Policies:
    changes: dict[str, Any] = {}
    for key, value in doc.items():
        if key in ("enabled", "auto_apply", "dry_run", "email_invoices"):
            changes[key] = _bool(value, f"{where} {key}")
        elif key == "policies":
            unknown = sorted(set(value) - set(POLICIES))
            if unknown:
                raise PolicyError(
                    f"{where}: unknown policies {', '.join(unknown)} (known: {', '.join(POLICIES)})"
                )
            changes["on"] = {**base.on, **{k: _bool(v, f"{where} policies.{k}") for k, v in value.items()}}
        elif key == "invoice_status":
            status = str(value).upper()
            if status not in ("DRAFT", "AUTHORISED"):
                raise PolicyError(f"{where}: invoice_status is DRAFT or AUTHORISED, not {value!r}")
            changes[key] = status
        elif key == "ownership":
            bad = {k: v for k, v in value.items() if v not in (BOOKS, CRM)}
            if bad:
                raise PolicyError(f"{where}: ownership values are 'books' or 'crm': {bad}")
            changes[key] = {**base.ownership, **value}
        elif key in ("max_change_share",):
            changes[key] = float(value)
        elif key in ("max_change_count", "min_guarded_records", "due_days"):
            changes[key] = int(value)
        elif key in ("approve", "supplier_tag"):
            changes[key] = str(value) if value not in (None, "") else None
        elif key == "zoho_trigger":
            changes[key] = tuple(str(v) for v in value)
        else:
            raise PolicyError(f"{where}: unknown write-back setting {key!r}")
    return replace(base, **changes)


def load_policies(connection: str, environ: Mapping[str, str] | None = None) -> Policies:
    """The policies of one connection: defaults, then the connections file, then the environment."""
    env = os.environ if environ is None else environ
    policies = Policies()
    path = settings.connections_file(env)
    if path.exists():
        doc = tomllib.loads(path.read_text())
        table = doc.get("connections", {}).get(connection, {}).get("writeback")
        if isinstance(table, dict):
            policies = _merge(policies, table, f"{path} [connections.{connection}.writeback]")
    raw = env.get("XZ_WRITEBACK_POLICIES", "").strip()
    if raw:
        try:
            doc = json.loads(raw)
        except json.JSONDecodeError as exc:
            raise PolicyError(f"XZ_WRITEBACK_POLICIES is not JSON: {exc}") from None
        if not isinstance(doc, dict):
            raise PolicyError("XZ_WRITEBACK_POLICIES must be a JSON object")
        policies = _merge(policies, doc, "XZ_WRITEBACK_POLICIES")
    if env.get("XZ_WRITEBACK"):
        policies = replace(policies, enabled=_bool(env["XZ_WRITEBACK"], "XZ_WRITEBACK"))
    if env.get("XZ_WRITEBACK_APPLY"):
        policies = replace(policies, auto_apply=_bool(env["XZ_WRITEBACK_APPLY"], "XZ_WRITEBACK_APPLY"))
    if env.get("XZ_WRITEBACK_DRY_RUN"):
        policies = replace(policies, dry_run=_bool(env["XZ_WRITEBACK_DRY_RUN"], "XZ_WRITEBACK_DRY_RUN"))
    if env.get("XZ_WRITEBACK_APPROVE"):
        policies = replace(policies, approve=env["XZ_WRITEBACK_APPROVE"].strip())
    return policies
