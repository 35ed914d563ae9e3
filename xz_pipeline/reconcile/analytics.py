"""The `analytics` views for people: what is wrong now, each customer whole, deals to cash, ageing.

Plain SQL views over `recon.*` and the `canonical` views, so they are always as fresh as the last
run and travel in the analysts' snapshot. Amounts stay DECIMAL; "today" is the database's
`current_date` (UTC) when the view is queried.
"""

from __future__ import annotations

import duckdb

ANALYTICS_VIEWS: dict[str, str] = {
    # Every disagreement not yet resolved, worst first, with how long it has been open.
    "open_discrepancies": """
        select connection, kind, severity, books_id, crm_id, field, books_value, crm_value, detail,
               first_seen, last_seen, date_diff('day', first_seen, now()) as days_open
        from recon.discrepancies where resolved_at is null
        order by case severity when 'error' then 0 else 1 end, kind, first_seen""",
    # A CRM account with what the books know of it: balance, overdue, last payment, days to pay.
    "customer_360": """
        with links as (
            select connection, books_id, crm_id from recon.customer_links where status = 'linked'),
        inv as (
            select i.connection, l.crm_id, i.invoice_id, i.status, i.amount_due, i.due_date, i.issue_date,
                   i.paid_date, i.total
            from canonical.books_invoices i join links l on l.connection = i.connection
             and l.books_id = i.customer_id
            where i.type = 'sale' and i.status in ('draft', 'open', 'paid')),
        pay as (
            select i.connection, i.crm_id, max(p.date) as last_payment_date
            from canonical.books_payments p join inv i on i.connection = p.connection
             and i.invoice_id = p.invoice_id
            where p.status = 'active' group by 1, 2),
        agg as (
            select connection, crm_id, count(*) as invoices,
                   coalesce(sum(amount_due) filter (where status = 'open'), 0) as books_balance,
                   coalesce(sum(amount_due) filter (where status = 'open' and due_date < current_date), 0)
                       as books_overdue,
                   sum(total) as invoiced_total,
                   avg(date_diff('day', issue_date, paid_date)) filter (where status = 'paid')
                       as avg_days_to_pay
            from inv group by 1, 2)
        select a.connection, a.account_id, a.name, a.email, a.phone, a.currency,
               string_agg(distinct l.books_id, ', ') as books_ids,
               a.outstanding as crm_balance, a.overdue as crm_overdue, g.invoices, g.invoiced_total,
               g.books_balance, g.books_overdue, p.last_payment_date, round(g.avg_days_to_pay, 1) as avg_days_to_pay,
               (select count(*) from recon.discrepancies d where d.connection = a.connection
                 and d.resolved_at is null and (d.crm_id = a.account_id or d.books_id in
                 (select books_id from links x where x.connection = a.connection and x.crm_id = a.account_id)))
                   as open_discrepancies
        from canonical.crm_accounts a
        left join links l on l.connection = a.connection and l.crm_id = a.account_id
        left join agg g on g.connection = a.connection and g.crm_id = a.account_id
        left join pay p on p.connection = a.connection and p.crm_id = a.account_id
        group by all""",
    # A deal, the invoice it was linked to and the payments that settled it.
    "deal_to_cash": """
        with pays as (
            select connection, invoice_id, count(*) as payments, sum(amount) as paid, min(date) as first_payment,
                   max(date) as last_payment
            from canonical.books_payments where status = 'active' and invoice_id is not null group by 1, 2)
        select d.connection, d.deal_id, d.name as deal_name, d.account_id, d.stage, d.amount as deal_amount,
               d.currency as deal_currency, d.close_date, d.payment_status as crm_payment_status,
               l.invoice_id, l.method as link_method, l.confidence as link_confidence, i.number as invoice_number,
               i.status as invoice_status, i.issue_date, i.due_date, i.total as invoice_total,
               i.currency as invoice_currency, i.amount_paid, i.amount_credited, i.amount_due, i.paid_date,
               p.payments, p.first_payment, p.last_payment,
               date_diff('day', d.close_date, i.issue_date) as days_close_to_invoice,
               date_diff('day', i.issue_date, i.paid_date) as days_invoice_to_cash
        from canonical.crm_deals d
        left join recon.invoice_links l on l.connection = d.connection and l.deal_id = d.deal_id
        left join canonical.books_invoices i on i.connection = l.connection and i.invoice_id = l.invoice_id
        left join pays p on p.connection = i.connection and p.invoice_id = i.invoice_id""",
    # What each books customer owes, by how long past due (days after the due date, today).
    "ar_aging": """
        with open_inv as (
            select connection, customer_id, amount_due, date_diff('day', due_date, current_date) as late
            from canonical.books_invoices where type = 'sale' and status = 'open' and amount_due > 0)
        select o.connection, o.customer_id, c.name, c.currency,
               sum(amount_due) filter (where late <= 0 or late is null) as current,
               sum(amount_due) filter (where late between 1 and 30) as days_1_30,
               sum(amount_due) filter (where late between 31 and 60) as days_31_60,
               sum(amount_due) filter (where late between 61 and 90) as days_61_90,
               sum(amount_due) filter (where late > 90) as days_over_90,
               sum(amount_due) as total_due
        from open_inv o left join canonical.books_customers c
          on c.connection = o.connection and c.customer_id = o.customer_id
        group by all order by total_due desc""",
}


def install_analytics(con: duckdb.DuckDBPyConnection) -> list[str]:
    """Create (or replace) every analytics view; returns their names."""
    con.execute("create schema if not exists analytics")
    for name, select in ANALYTICS_VIEWS.items():
        con.execute(f"create or replace view analytics.{name} as {select}")
    return list(ANALYTICS_VIEWS)
