"""Policy settings: defaults, the connections file, the environment (which wins), and clear errors."""

from __future__ import annotations

from decimal import Decimal

import pytest

from xz_pipeline import settings
from xz_pipeline.writeback.plan import build_plan
from xz_pipeline.writeback.policies import PolicyError, load_policies
from xz_pipeline_tests.writeback.support import CONNECTION, start


def test_defaults_file_and_environment(monkeypatch):
    p = load_policies("c1")
    assert p.active("won_deal_to_invoice") and p.invoice_status == "DRAFT" and not p.auto_apply
    assert p.owner("billing_address") == "books" and p.owner("phone") == "crm" and p.zoho_trigger == ()

    path = settings.connections_file()
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(
        '[connections.c1]\nXERO_CLIENT_ID = "x"\n'
        '[connections.c1.writeback]\ninvoice_status = "authorised"\nemail_invoices = true\n'
        'policies = { bill_tags_to_crm = false }\nownership = { phone = "books" }\n'
    )
    p = load_policies("c1")
    assert p.invoice_status == "AUTHORISED" and p.email_invoices and not p.active("bill_tags_to_crm")
    assert p.owner("phone") == "books" and load_policies("other").owner("phone") == "crm"

    monkeypatch.setenv(
        "XZ_WRITEBACK_POLICIES", '{"policies": {"bill_tags_to_crm": true}, "max_change_count": 7}'
    )
    monkeypatch.setenv("XZ_WRITEBACK_DRY_RUN", "yes")
    p = load_policies("c1")
    assert p.active("bill_tags_to_crm") and p.max_change_count == 7 and p.dry_run
    monkeypatch.setenv("XZ_WRITEBACK", "off")
    assert not load_policies("c1").active("won_deal_to_invoice")


@pytest.mark.parametrize(
    "doc, message",
    [
        ('{"policies": {"deal_to_moon": true}}', "unknown policies deal_to_moon"),
        ('{"invoice_status": "PAID"}', "DRAFT or AUTHORISED"),
        ('{"ownership": {"phone": "both"}}', "'books' or 'crm'"),
        ('{"colour": "red"}', "unknown write-back setting 'colour'"),
        ("not json", "not JSON"),
    ],
)
def test_bad_settings_are_named(monkeypatch, doc, message):
    monkeypatch.setenv("XZ_WRITEBACK_POLICIES", doc)
    with pytest.raises(PolicyError, match=message):
        load_policies("c1")


def test_switched_off_policy_plans_nothing_and_ownership_turns_a_fix_around(baseline, monkeypatch):
    sb, store = start(baseline)
    with sb:
        monkeypatch.setenv("XZ_WRITEBACK_POLICIES", '{"policies": {"won_deal_to_invoice": false}, '
                           '"ownership": {"phone": "books"}}')  # fmt: skip
        counts = build_plan(store, CONNECTION, load_policies(CONNECTION))
        assert "won_deal_to_invoice" not in counts["by_policy"]
        with store.read() as con:
            phone = con.execute(
                "select system, entity from writeback.plan where policy = 'field_corrections' and field = 'phone' "
                "and status = 'planned'"
            ).fetchall()
        assert phone and set(phone) == {("crm", "account")}  # the books' phone now goes to the CRM


def test_an_account_created_from_the_books_carries_the_balance_the_next_plan_keeps(baseline):
    """A new CRM account's balances are its books customer's open invoices, as `payment_to_crm` keeps them,
    not the customer's own balance field (QuickBooks nets an unapplied credit memo into it): created from
    that field, the account was corrected by the very next plan (found on the medium QuickBooks world)."""
    sb, store = start(baseline)
    with sb:
        with store.write() as con:  # the books customers' own balance field says something else
            con.execute("update xero.contacts set ar_outstanding = coalesce(ar_outstanding, 0) + 198.72")
        build_plan(store, CONNECTION, load_policies(CONNECTION))
        with store.read() as con:
            created = con.execute(
                "select p.ref, p.new from writeback.plan p where p.policy = 'xero_customer_to_crm' "
                "and p.entity = 'account' and p.field = 'outstanding_balance'"
            ).fetchall()
            owed = dict(
                con.execute(
                    "select customer_id, sum(amount_due) from canonical.books_invoices where type = 'sale' "
                    "and status = 'open' group by customer_id"
                ).fetchall()
            )
    assert created, "the demo world has books customers missing in the CRM"
    assert any(ref in owed for ref, _ in created)  # some of them owe money
    for ref, new in created:
        assert Decimal(new) == owed.get(ref, Decimal(0)), ref
