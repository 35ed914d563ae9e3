"""The policies that carry insights to the CRM, through the same plan, guards and ledger as corrections.

- `payment_risk_to_crm`: each deal linked to an open sales invoice gets that invoice's risk band and
  expected pay date (several invoices: the highest band, the earliest date); each linked account the
  highest band and earliest date among its open invoices. A deal or account whose invoices are all
  settled has its values cleared. Only values that differ from what the CRM holds (the mirror reads the
  fields back after each write), so a second cycle writes nothing. Op `set`: these fields are written
  apart from the reconciled updates, so one never carries the other's stale values.
- `reminders_to_crm`: each due reminder (`insights.reminders`) becomes a task on its customer's CRM
  account, once: its reference is `<invoice id>|<step>`, and a reference whose task was created is never
  planned again (whatever its text has become since).

Both are off by default (`policies.OFF_BY_DEFAULT`). Fields or modules the org lacks are skipped with the
reason by the plan (`plan.unsupported`), as for every policy.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable
from datetime import date

from xz_pipeline.writeback.plan import CRM, Change, World, text
from xz_pipeline.writeback.policies import Policies

BANDS = ("low", "medium", "high")  # in rising order of risk
FIELDS = ("payment_risk", "expected_pay_date")


def _summary(rows: list[dict]) -> tuple[str, date | None]:
    """The highest band and the earliest expected pay date of these risk rows."""
    band = max((r["risk_band"] for r in rows), key=lambda b: BANDS.index(b) if b in BANDS else -1)
    days = [r["expected_pay_date"] for r in rows if r["expected_pay_date"] is not None]
    return band, (min(days) if days else None)


def _changes(entity: str, record: str, held: dict, wanted: tuple[str | None, date | None], reason: str,
             source: str) -> list[Change]:  # fmt: skip
    out = []
    for name, value in zip(FIELDS, wanted, strict=True):
        if held.get(name) != value:
            out.append(Change(CRM, entity, "set", record, "", name, held.get(name), value,
                              "payment_risk_to_crm", reason, source))  # fmt: skip
    return out


def _still_open(w: World) -> list[dict]:
    """Risk rows of invoices the books still show open: a payment that arrived by webhook (a targeted run
    leaves payment risk to the scheduled runs) clears its deal and account at once."""
    return [
        r
        for r in w.risk
        if (inv := w.invoices.get(r["invoice_id"])) is not None
        and inv["status"] == "open"
        and (inv["amount_due"] or 0) > 0
    ]


def payment_risk_to_crm(w: World, p: Policies) -> list[Change]:
    open_risk = _still_open(w)
    risk = {r["invoice_id"]: r for r in open_risk}
    out: list[Change] = []
    by_deal: dict[str, list[dict]] = defaultdict(list)
    for link in w.invoice_links:
        if link["deal_id"] in w.deals and link["invoice_id"] in risk:
            by_deal[link["deal_id"]].append(risk[link["invoice_id"]])
    linked_deals = {link["deal_id"] for link in w.invoice_links}
    for deal_id in sorted(linked_deals & set(w.deals)):
        deal, rows = w.deals[deal_id], by_deal.get(deal_id, [])
        if rows:
            band, pay = _summary(rows)
            numbers = ", ".join(sorted(w.invoices[r["invoice_id"]]["number"] or r["invoice_id"] for r in rows
                                       if r["invoice_id"] in w.invoices))  # fmt: skip
            reason = f"payment risk of invoice {numbers}: {band}, expected paid {pay}"
            source = f"insights.payment_risk({', '.join(sorted(r['invoice_id'] for r in rows))})"
            out += _changes("deal", deal_id, deal, (band, pay), reason, source)
        elif deal.get("payment_risk") is not None or deal.get("expected_pay_date") is not None:
            out += _changes("deal", deal_id, deal, (None, None), "its invoice is no longer open",
                            "recon.invoice_links; insights.payment_risk (no open invoice)")  # fmt: skip
    by_account: dict[str, list[dict]] = defaultdict(list)
    for r in open_risk:
        crm = w.crm_of_books.get(r["customer_id"] or "")
        if crm and crm in w.accounts:
            by_account[crm].append(r)
    for crm in sorted(set(w.books_of_crm) & set(w.accounts)):
        account, rows = w.accounts[crm], by_account.get(crm, [])
        if rows:
            band, pay = _summary(rows)
            reason = f"highest payment risk of its {len(rows)} open invoice(s): {band}; earliest expected pay date {pay}"
            source = f"insights.payment_risk (open invoices of {w.books_of_crm[crm]})"
            out += _changes("account", crm, account, (band, pay), reason, source)
        elif account.get("payment_risk") is not None or account.get("expected_pay_date") is not None:
            out += _changes("account", crm, account, (None, None), "no open invoice left",
                            f"insights.payment_risk (none open for {w.books_of_crm[crm]})")  # fmt: skip
    return out


def reminders_to_crm(w: World, p: Policies) -> list[Change]:
    out: list[Change] = []
    for r in sorted(w.reminders, key=lambda r: (r["invoice_id"], r["step"])):
        ref = f"{r['invoice_id']}|{r['step']}"
        if ref in w.tasks_made or not r["account_id"] or r["account_id"] not in w.accounts:
            continue
        values = {
            "subject": r["subject"], "due_date": r["send_on"], "description": r["body"],
            "what_id": r["account_id"], "se_module": "Accounts",
        }  # fmt: skip
        reason = f"reminder {r['step']:+d} days from due of invoice {r['invoice_number'] or r['invoice_id']} ({r['tone']})"
        source = f"insights.reminders({r['invoice_id']}; step={r['step']})"
        out += [
            Change(CRM, "task", "create", "", ref, f, None, v, "reminders_to_crm", reason, source)
            for f, v in values.items()
            if text(v) not in (None, "")
        ]
    return out


INSIGHT_POLICIES: dict[str, Callable[[World, Policies], list[Change]]] = {
    "payment_risk_to_crm": payment_risk_to_crm,
    "reminders_to_crm": reminders_to_crm,
}
