"""Fitting the CRM side to its organisation profile: no value where the org has no field, the org's own words.

The builders draw every world the same way; this last step keeps only what the profile's org can hold:
no CRM invoices without an Invoices module, no values in custom fields the org lacks, the won stage and
picklist words as the org names them. The injections the profile cannot show were never drawn (see
`inject.choose` and `CustomerPlanner`), so nothing the manifest lists is lost here.
"""

from __future__ import annotations

from xz_pipeline.sandbox.profiles import WON_STAGE, Profile
from xz_pipeline.sandbox.world.model import CrmOrg


def fit_profile(crm: CrmOrg, profile: Profile) -> None:
    if profile.edition:
        crm.edition = profile.edition
    if "Invoices" in profile.absent_modules:
        crm.invoices = []
    if not profile.custom_fields:
        for a in crm.accounts:
            a.xero_contact_id, a.tax_number = "", ""
            a.outstanding_balance = a.overdue_balance = None
        for d in crm.deals:
            d.xero_invoice_id = d.xero_invoice_number = d.payment_status = ""
            d.amount_paid, d.last_payment_date = None, None
        for inv in crm.invoices:
            inv.xero_invoice_id, inv.payment_status = "", ""
            inv.amount_paid, inv.last_payment_date = None, None
    if profile.won_stage != WON_STAGE:
        for d in crm.deals:
            if d.stage == WON_STAGE:
                d.stage = profile.won_stage
    for module, records in (("Deals", crm.deals), ("Invoices", crm.invoices)):
        if (module, "Payment_Status") in profile.renames:
            for r in records:
                if r.payment_status:
                    r.payment_status = profile.value(module, "Payment_Status", r.payment_status)
