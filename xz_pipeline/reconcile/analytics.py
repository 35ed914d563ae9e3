"""The `analytics` views for people: what is wrong now, each customer whole, deals to cash, ageing.

Plain SQL views over `recon.*` and the `canonical` views, so they are always as fresh as the last
run and travel in the analysts' snapshot. Amounts stay DECIMAL; "today" is the database's
`current_date` (UTC) when the view is queried. Written to be read: names beside ids, zeros (not NULL)
in empty buckets, and a sentence per discrepancy saying what differs, by how much and which side owns
the field (each connection's write-back ownership, read when the views are installed).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

import duckdb

from xz_pipeline.writeback.policies import BOOKS, DEFAULT_OWNERSHIP, PolicyError, load_policies

# Fields a discrepancy names that write-back ownership does not list: the books decide them too.
EXTRA_OWNERSHIP = {"amount": BOOKS}


def _money(expr: str) -> str:
    """A money value (text or DECIMAL) as people write it: 1,200.00."""
    return f"coalesce(format('{{:,.2f}}', try_cast({expr} as double)), '?')"


def _quote(expr: str) -> str:
    return f"'''' || coalesce({expr}, '?') || ''''"


# One sentence per kind. `d` is the discrepancy; `bi`/`cd`/`bc`/`ca` its invoice, deal, books customer and
# CRM account (whichever apply), `o` the owner of its field, `dup` the first record of a duplicate pair.
_M = _money
_DETAIL = f"""case d.kind
    when 'amount_mismatch' then
        'Deal amount ' || {_M("d.crm_value")} || ' ' || coalesce(cd.currency, bi.currency, '')
        || ' vs invoice total ' || {_M("d.books_value")} || ' ' || coalesce(bi.currency, '')
        || ' (differs by ' || {_M("abs(try_cast(d.crm_value as decimal(18, 2)) - try_cast(d.books_value as decimal(18, 2)))")}
        || '); ' || o.says || ' amounts'
    when 'balance_mismatch' then
        'CRM balance ' || {_M("d.crm_value")} || coalesce(' ' || coalesce(ca.currency, bc.currency), '') || ' vs '
        || {_M("d.books_value")} || coalesce(' ' || coalesce(bc.currency, ca.currency), '') || ' owed in the books'
        || ' (differs by ' || {_M("abs(try_cast(d.crm_value as decimal(18, 2)) - try_cast(d.books_value as decimal(18, 2)))")}
        || '); ' || o.says || ' the outstanding balance'
    when 'currency_mismatch' then
        'Deal in ' || coalesce(d.crm_value, '?') || ' but its invoice ' || coalesce(bi.number, d.books_id)
        || ' is in ' || coalesce(d.books_value, '?') || '; ' || o.says || ' the currency'
    when 'payment_status_stale' then
        'Deal says ' || coalesce(nullif(replace(d.crm_value, '_', ' '), ''), 'nothing about payment')
        || ' but the books say ' || replace(coalesce(d.books_value, '?'), '_', ' ')
        || coalesce(' (invoice ' || bi.number || ': ' || {_M("bi.amount_paid")} || ' paid of '
                    || {_M("bi.total")} || ' ' || bi.currency || ')', '')
        || '; ' || o.says || ' the payment status'
    when 'customer_field_mismatch' then
        upper(replace(d.field, '_', ' ')[1]) || replace(d.field, '_', ' ')[2:] || ' differs: books '
        || {_quote("d.books_value")} || ' vs CRM ' || {_quote("d.crm_value")}
        || coalesce(' (' || nullif(d.detail, '') || ' when normalised)', '')
        || '; ' || o.says || ' the ' || replace(d.field, '_', ' ')
    when 'customer_missing_in_crm' then
        'Books customer ' || {_quote("coalesce(bc.name, d.books_value)")} || ' has no linked CRM account'
    when 'customer_missing_in_books' then
        'CRM account ' || {_quote("coalesce(ca.name, d.crm_value)")} || ' is a customer ('
        || coalesce(regexp_extract(d.detail, '^(\\d+ won deal\\(s\\))', 1), '')
        || case when coalesce(regexp_extract(d.detail, '^(\\d+ won deal\\(s\\))', 1), '') = ''
                then 'by its type' else '' end
        || ') but no books contact is linked to it'
    when 'customer_duplicate' then
        case when d.crm_id <> '' and d.detail like 'second CRM%' then
            'CRM account ' || {_quote("coalesce(ca.name, d.crm_value)")} || ' looks like a second record of '
            || {_quote("dup_c.name")} || ' (' || dup_id || ')'
        else
            'Books contact ' || {_quote("coalesce(bc.name, d.books_value)")} || ' looks like a second record of '
            || {_quote("dup_b.name")} || ' (' || dup_id || ')'
        end || '; keep one and merge the other'
    when 'deal_not_invoiced' then
        'Won deal ' || {_quote("coalesce(cd.name, d.detail)")} || ' (' || {_M("coalesce(cd.amount::varchar, d.crm_value)")}
        || coalesce(' ' || cd.currency, '') || coalesce(', closed ' || strftime(cd.close_date, '%Y-%m-%d'), '')
        || coalesce(', account ' || {_quote("cd.account_name")}, '') || ') has no books invoice'
    when 'invoice_without_deal' then
        'Invoice ' || coalesce(bi.number, d.books_value, d.books_id) || ' (' || {_M("coalesce(bi.total::varchar, d.detail)")}
        || coalesce(' ' || bi.currency, '') || coalesce(', issued ' || strftime(bi.issue_date, '%Y-%m-%d'), '')
        || coalesce(' to ' || {_quote("bi.customer_name")}, '') || ') has no CRM deal linked to it'
    when 'invoice_missing_in_crm' then
        'Invoice ' || coalesce(bi.number, d.books_value, d.books_id) || ' (' || {_M("bi.total")}
        || coalesce(' ' || bi.currency, '') || ') is not among the CRM invoices of account '
        || {_quote("inv_acc.name")}
    else coalesce(nullif(d.detail, ''), replace(d.kind, '_', ' '))
end"""

_OPEN_DISCREPANCIES = f"""
    with d as (
        select *, nullif(regexp_extract(detail, 'the first is (.*)$', 1), '') as dup_id
        from recon.discrepancies where resolved_at is null),
    owners(connection, field, side) as ({{owners}})
    select d.connection, d.kind, d.severity, d.books_id, coalesce(bc.name, bi.customer_name{{project_name}}) as books_name,
           d.crm_id, coalesce(ca.name, cd.name) as crm_name, d.field, d.books_value, d.crm_value,
           {_DETAIL} as detail,
           d.first_seen, d.last_seen, date_diff('day', d.first_seen, now()) as days_open
    from d
    left join canonical.books_invoices bi on bi.connection = d.connection and bi.invoice_id = d.books_id
    left join canonical.crm_deals cd on cd.connection = d.connection and cd.deal_id = d.crm_id
    left join canonical.books_customers bc on bc.connection = d.connection and bc.customer_id = d.books_id{{project_join}}
    left join canonical.crm_accounts ca on ca.connection = d.connection and ca.account_id = d.crm_id
    left join canonical.books_customers dup_b on dup_b.connection = d.connection and dup_b.customer_id = d.dup_id
    left join canonical.crm_accounts dup_c on dup_c.connection = d.connection and dup_c.account_id = d.dup_id
    left join canonical.crm_accounts inv_acc on inv_acc.connection = d.connection
        and inv_acc.account_id = regexp_extract(d.detail, '^crm_account=(.*)$', 1)
    left join owners oc on oc.connection = d.connection and oc.field = d.field
    left join owners od on od.connection = '*' and od.field = d.field
    cross join lateral (select case coalesce(oc.side, od.side, 'books') when 'crm' then 'the CRM owns'
        else 'the books own' end as says) o
    order by case d.severity when 'error' then 0 else 1 end, d.kind, d.first_seen"""

ANALYTICS_VIEWS: dict[str, str] = {
    # Every disagreement not yet resolved, worst first, with how long it has been open and a sentence.
    "open_discrepancies": _OPEN_DISCREPANCIES,
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
        select a.connection, a.account_id, a.name as crm_name, a.email, a.phone, a.currency,
               string_agg(distinct l.books_id, ', ' order by l.books_id) as books_ids,
               string_agg(distinct c.name, ', ' order by c.name) as books_names,
               a.outstanding as crm_balance, a.overdue as crm_overdue, coalesce(g.invoices, 0) as invoices,
               coalesce(g.invoiced_total, 0) as invoiced_total,
               coalesce(g.books_balance, 0) as books_balance, coalesce(g.books_overdue, 0) as books_overdue,
               p.last_payment_date, round(g.avg_days_to_pay, 1) as avg_days_to_pay,
               (select count(*) from recon.discrepancies d where d.connection = a.connection
                 and d.resolved_at is null and (d.crm_id = a.account_id or d.books_id in
                 (select books_id from links x where x.connection = a.connection and x.crm_id = a.account_id)))
                   as open_discrepancies
        from canonical.crm_accounts a
        left join links l on l.connection = a.connection and l.crm_id = a.account_id
        left join canonical.books_customers c on c.connection = l.connection and c.customer_id = l.books_id
        left join agg g on g.connection = a.connection and g.crm_id = a.account_id
        left join pay p on p.connection = a.connection and p.crm_id = a.account_id
        group by all""",
    # A deal, the invoice it was linked to and the payments that settled it.
    "deal_to_cash": """
        with pays as (
            select connection, invoice_id, count(*) as payments, sum(amount) as paid, min(date) as first_payment,
                   max(date) as last_payment
            from canonical.books_payments where status = 'active' and invoice_id is not null group by 1, 2)
        select d.connection, d.deal_id, d.name as deal_name, d.account_id, d.account_name, d.stage,
               d.amount as deal_amount, d.currency as deal_currency, d.close_date,
               d.payment_status as crm_payment_status,
               l.invoice_id, l.method as link_method, l.confidence as link_confidence, i.number as invoice_number,
               i.customer_name as books_customer_name,
               i.status as invoice_status, i.issue_date, i.due_date, i.total as invoice_total,
               i.currency as invoice_currency, i.amount_paid, i.amount_credited, i.amount_due, i.paid_date,
               coalesce(p.payments, 0) as payments, p.first_payment, p.last_payment,
               date_diff('day', d.close_date, i.issue_date) as days_close_to_invoice,
               date_diff('day', i.issue_date, i.paid_date) as days_invoice_to_cash
        from canonical.crm_deals d
        left join recon.invoice_links l on l.connection = d.connection and l.deal_id = d.deal_id
        left join canonical.books_invoices i on i.connection = l.connection and i.invoice_id = l.invoice_id
        left join pays p on p.connection = i.connection and p.invoice_id = i.invoice_id""",
    # What each books customer owes, by how long past due (days after the due date, today); 0, not NULL,
    # in an empty bucket, so buckets add up to the total.
    "ar_aging": """
        with open_inv as (
            select connection, customer_id, amount_due, date_diff('day', due_date, current_date) as late
            from canonical.books_invoices where type = 'sale' and status = 'open' and amount_due > 0)
        select o.connection, o.customer_id, c.name, c.currency,
               coalesce(sum(amount_due) filter (where late <= 0 or late is null), 0) as current,
               coalesce(sum(amount_due) filter (where late between 1 and 30), 0) as days_1_30,
               coalesce(sum(amount_due) filter (where late between 31 and 60), 0) as days_31_60,
               coalesce(sum(amount_due) filter (where late between 61 and 90), 0) as days_61_90,
               coalesce(sum(amount_due) filter (where late > 90), 0) as days_over_90,
               sum(amount_due) as total_due
        from open_inv o left join canonical.books_customers c
          on c.connection = o.connection and c.customer_id = o.customer_id
        group by all order by total_due desc""",
}


# Per books project: what it was estimated at, the work delivered at its price (reconcile/projects.py's
# measure), expenses, invoiced and still to invoice; margin = invoiced + to be invoiced - expenses - the cost of
# the hours logged where cost rates are configured (settings.project_cost_rates; {costs} their VALUES rows).
PROJECT_PROFITABILITY = """
    with costs(connection, user_key, hourly_cost) as ({costs}),
    task_value as (
        select connection, project_id, sum(case charge_type
            when 'time' then rate * total_minutes / 60
            when 'fixed' then case when total_minutes > 0 then rate * greatest(1, case when estimate_minutes > 0
                then total_minutes / estimate_minutes else 1 end) else 0 end
            else 0 end) as time_value
        from canonical.books_project_tasks group by all),
    labour as (
        select e.connection, e.project_id, sum(e.minutes * c.hourly_cost / 60) as cost,
               sum(e.minutes) filter (where c.hourly_cost is not null) as costed_minutes
        from canonical.books_time_entries e
        left join costs c on c.connection = e.connection and c.user_key in (lower(e.user_id), lower(e.user_name))
        group by all)
    select p.connection, p.project_id, p.name, p.customer_id, bc.name as customer_name, p.status, p.currency,
           p.estimate, round(coalesce(t.time_value, 0), 2)::decimal(18, 2) as time_value,
           p.expense_amount as expenses, p.total_invoiced as invoiced, p.total_to_be_invoiced as to_be_invoiced,
           round(coalesce(l.cost, 0), 2)::decimal(18, 2) as labour_cost, coalesce(l.costed_minutes, 0) as costed_minutes,
           (p.total_invoiced + p.total_to_be_invoiced - p.expense_amount
            - round(coalesce(l.cost, 0), 2))::decimal(18, 2) as margin,
           p.estimate > 0 and coalesce(t.time_value, 0) + p.expense_amount > p.estimate as over_estimate
    from canonical.books_projects p
    left join task_value t on t.connection = p.connection and t.project_id = p.project_id
    left join labour l on l.connection = p.connection and l.project_id = p.project_id
    left join canonical.books_customers bc on bc.connection = p.connection and bc.customer_id = p.customer_id
    order by margin"""


def _costs_sql(connections: Iterable[str]) -> str:
    """The `costs` rows of each connection's configured hourly costs (an empty one when none is)."""
    from xz_pipeline import settings

    def lit(v: str) -> str:
        return "'" + v.replace("'", "''") + "'"

    rows = []
    for connection in connections:
        try:
            rates = settings.project_cost_rates(connection)
        except settings.SettingsError:
            continue  # unreadable settings: margins without costs (`xz doctor` names the setting)
        rows += [
            f"({lit(connection)}, {lit(user)}, {rate}::decimal(18, 2))"
            for user, rate in sorted(rates.items())
        ]
    return (
        "values " + ", ".join(rows)
        if rows
        else "select null::varchar, null::varchar, null::decimal(18, 2) where false"
    )


def _owners_sql(ownership: Mapping[str, Mapping[str, str]]) -> str:
    """The `owners` rows: '*' for the defaults, then each connection's own ownership."""
    rows = [("*", f, side) for f, side in {**DEFAULT_OWNERSHIP, **EXTRA_OWNERSHIP}.items()]
    for connection, fields in ownership.items():
        rows += [(connection, f, side) for f, side in {**EXTRA_OWNERSHIP, **fields}.items()]

    def lit(v: str) -> str:
        return "'" + v.replace("'", "''") + "'"

    return "values " + ", ".join(f"({lit(c)}, {lit(f)}, {lit(s)})" for c, f, s in rows)


def connection_ownership(connections: Iterable[str]) -> dict[str, Mapping[str, str]]:
    """Each connection's field ownership as write-back applies it (a setting that cannot be read leaves the
    defaults: write-back itself reports it)."""
    out: dict[str, Mapping[str, str]] = {}
    for connection in connections:
        try:
            out[connection] = load_policies(connection).ownership
        except (PolicyError, OSError, ValueError):
            continue
    return out


def install_analytics(
    con: duckdb.DuckDBPyConnection, ownership: Mapping[str, Mapping[str, str]] | None = None
) -> list[str]:
    """Create (or replace) every analytics view; returns their names. `ownership` (connection -> field ->
    books|crm) defaults to each connection's write-back settings, for the connections with discrepancies."""
    if ownership is None:
        names = [r[0] for r in con.execute("select distinct connection from recon.discrepancies").fetchall()]
        ownership = connection_ownership(names)
    con.execute("create schema if not exists analytics")
    projects = con.execute(
        "select count(*) from information_schema.tables where table_schema = 'canonical' "
        "and table_name in ('books_projects', 'books_project_tasks', 'books_time_entries')"
    ).fetchone()[0]
    # A project's discrepancy is named after the project (a mirror from before projects has no project views
    # until canonical_views runs again).
    join = (
        "\n    left join canonical.books_projects bp on bp.connection = d.connection and bp.project_id = d.books_id"
        if projects == 3
        else ""
    )
    for name, select in ANALYTICS_VIEWS.items():
        sql = select.replace("{owners}", _owners_sql(ownership))
        sql = sql.replace("{project_name}", ", bp.name" if join else "").replace("{project_join}", join)
        con.execute(f"create or replace view analytics.{name} as {sql}")
    if projects == 3:
        names = [
            r[0] for r in con.execute("select distinct connection from canonical.books_projects").fetchall()
        ]
        sql = PROJECT_PROFITABILITY.replace("{costs}", _costs_sql(names))
        con.execute(f"create or replace view analytics.project_profitability as {sql}")
        return [*ANALYTICS_VIEWS, "project_profitability"]
    return list(ANALYTICS_VIEWS)
