"""`reminders`: the chase plan of each overdue or soon-due sales invoice, and why each reminder stopped.

For every open sales invoice due within the first step before due (7 days by default) or already overdue,
one row per step of the cadence (`XZ_REMINDER_STEPS`, default 7, 3 and 1 days before due, 1, 7, 14 and 30
after): when it goes out, its tone, and its subject and body rendered from Jinja2 templates (the shipped
ones in `templates/`, each replaceable by a file of the same name in `$XZ_HOME/templates/` or
`XZ_TEMPLATES_DIR`). Nothing is emailed: people act on them (the `reminders_to_crm` policy puts each due
one on the CRM account as a task).

Statuses: `planned` (its day has not come), `due` (the latest step whose day has come), `skipped` (an
earlier step never sent, or a pre-due nudge a reliable payer does not need), `sent-to-crm` (write-back
created its task) and `stopped`, with the reason and time, as soon as the invoice is paid, credited,
voided or deleted. Payments arrive by webhook, so this asset runs in targeted runs too: it recomputes
only that run's connection, a few queries, so a reminder stops within seconds of the payment.

Tone (Upflow/Tesorio practice: tone follows the customer's behaviour and risk): friendly before due and
just after, firm after a week, final after a month; one step firmer for a customer who usually pays late
or whose invoice is high risk, one step gentler for a reliable payer. Reads the canonical views, the
links reconciliation made, `insights.payment_risk` and (for what was sent) `writeback.plan`.
(No `from __future__ import annotations`: Dagster inspects the `context` annotation.)
"""

from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import dagster as dg
import duckdb
import jinja2
import pandas as pd
from jinja2.sandbox import SandboxedEnvironment

from xz_pipeline import settings
from xz_pipeline.core.resources import TRIGGER_TAG, MirrorResource

CANONICAL = dg.AssetKey("canonical_views")
SHIPPED = Path(__file__).parent / "templates"
TONES = ("friendly", "firm", "final")
LATE_AFTER = 5  # days after due before a payment counts as late (as payment risk counts it)
OPEN = ("planned", "due", "skipped")  # statuses a payment stops
PARTITION_TAG = "dagster/partition"
_CAST = {  # pandas holds these as objects (None, Decimal, date): typed on the way in
    "send_on": "cast(send_on as date)", "due_on": "cast(due_on as date)",
    "amount_due": "cast(cast(amount_due as varchar) as decimal(18, 2))",
    "stopped_at": "cast(stopped_at as timestamptz)", "computed_at": "cast(computed_at as timestamptz)",
    **{c: f"cast({c} as varchar)" for c in ("invoice_number", "customer_id", "customer_name", "account_id",
                                           "currency", "risk_band", "stop_reason")},
}  # fmt: skip

DDL = """
create schema if not exists insights;
create table if not exists insights.reminders (
    connection varchar not null,
    invoice_id varchar not null,
    invoice_number varchar,
    customer_id varchar,
    customer_name varchar,
    account_id varchar,
    step integer not null,
    send_on date not null,
    due_on date not null,
    amount_due decimal(18, 2),
    currency varchar,
    risk_band varchar,
    pattern varchar,
    tone varchar not null,
    subject varchar not null,
    body varchar not null,
    status varchar not null,
    stop_reason varchar,
    stopped_at timestamptz,
    computed_at timestamptz not null,
    primary key (connection, invoice_id, step)
);
comment on table insights.reminders is 'One row per reminder step of each overdue or soon-due sales invoice: when, tone, subject and body, status (planned, due, skipped, sent-to-crm, stopped) and why it stopped.';
"""
COLUMNS = [
    "connection", "invoice_id", "invoice_number", "customer_id", "customer_name", "account_id", "step",
    "send_on", "due_on", "amount_due", "currency", "risk_band", "pattern", "tone", "subject", "body",
    "status", "stop_reason", "stopped_at", "computed_at",
]  # fmt: skip


class RemindersConfig(dg.Config):
    """`steps`: days relative to due (empty: `XZ_REMINDER_STEPS` or the default cadence); `templates_dir`:
    where overriding templates live (empty: `XZ_TEMPLATES_DIR`, else `$XZ_HOME/templates`); `as_of`: the
    day to plan as of (ISO; empty: the day after the newest books record, at most today, as payment risk)."""

    steps: list[int] = []
    templates_dir: str = ""
    as_of: str = ""


@dataclass(frozen=True)
class Pattern:
    """How a customer has paid: paid invoices, the share paid late, mean days after due."""

    paid: int = 0
    late_share: float = 0.0
    mean_late: float = 0.0

    @property
    def habitually_late(self) -> bool:
        return self.paid >= 2 and (self.late_share >= 0.5 or self.mean_late > 15)

    @property
    def reliable(self) -> bool:
        return self.paid >= 3 and self.late_share <= 0.1 and self.mean_late <= 1

    def words(self) -> str:
        if not self.paid:
            return "no payment history"
        return f"{self.paid} paid, {self.late_share:.0%} late, {self.mean_late:+.0f} days on average"


def tone_for(step: int, pattern: Pattern, band: str | None) -> str:
    """Friendly up to a day after due, firm from a week, final from a month; firmer for a late payer or a
    high risk, gentler for a reliable one. Never anything but friendly before the due date."""
    if step < 0:
        return "friendly"
    level = 0 if step <= 1 else (1 if step < 30 else 2)
    if pattern.habitually_late or band == "high":
        level += 1
    elif pattern.reliable and band in (None, "low"):
        level -= 1
    return TONES[max(0, min(level, len(TONES) - 1))]


def environment(templates_dir: Path | None) -> SandboxedEnvironment:
    """Templates the user supplies first (sandboxed: they are data, not code), then the shipped ones."""
    loaders: list[jinja2.BaseLoader] = []
    if templates_dir is not None and templates_dir.is_dir():
        loaders.append(jinja2.FileSystemLoader(str(templates_dir)))
    loaders.append(jinja2.FileSystemLoader(str(SHIPPED)))
    env = SandboxedEnvironment(
        loader=jinja2.ChoiceLoader(loaders), undefined=jinja2.StrictUndefined, autoescape=False,
        keep_trailing_newline=False, trim_blocks=True, lstrip_blocks=True,
    )  # fmt: skip
    env.filters["money"] = lambda v: f"{Decimal(str(v)):,.2f}" if v is not None else ""
    return env


def render(env: SandboxedEnvironment, tone: str, values: dict) -> tuple[str, str]:
    """(subject, body) of one reminder; the subject is one line. A template that cannot render stops the
    asset with one line naming it (no retry fixes a template)."""
    out = []
    for part in ("subject", "body"):
        name, template = f"{tone}.{part}.j2", None
        try:
            template = env.get_template(name)
            out.append(template.render(**values))
        except jinja2.TemplateError as exc:
            where = getattr(exc, "filename", None) or getattr(template, "filename", None) or name
            raise dg.Failure(
                description=f"reminder template {where}: {exc} — fix it, or remove it to use the shipped one",
                allow_retries=False,
            ) from None
    return " ".join(out[0].split()), out[1].strip() + "\n"


# ---------------------------------------------------------------------------------------------
# Reading


def _exists(con: duckdb.DuckDBPyConnection, schema: str, table: str) -> bool:
    return bool(
        con.execute(
            "select count(*) from information_schema.tables where table_schema = ? and table_name = ?",
            [schema, table],
        ).fetchone()[0]
    )


def _has_column(con: duckdb.DuckDBPyConnection, view: str, column: str) -> bool:
    return bool(
        con.execute(
            "select count(*) from information_schema.columns where table_schema = 'canonical' "
            "and table_name = ? and column_name = ?",
            [view, column],
        ).fetchone()[0]
    )


def _frame(con: duckdb.DuckDBPyConnection, sql: str, args: list) -> pd.DataFrame:
    return con.execute(sql, args).df()


def default_as_of(con: duckdb.DuckDBPyConnection, connection: str, today: date) -> date:
    """The day after the newest books record, at most today (a mirrored world ends where its data does)."""
    newest = con.execute(
        "select greatest(max(issue_date), max(paid_date)) from canonical.books_invoices where connection = ?",
        [connection],
    ).fetchone()[0]
    paid = con.execute(
        "select max(date) from canonical.books_payments where connection = ?", [connection]
    ).fetchone()[0]
    days = [d for d in (newest, paid) if d is not None]
    return min(today, max(days) + timedelta(days=1)) if days else today


def read_state(con: duckdb.DuckDBPyConnection, connection: str) -> dict:
    """What one connection's reminders are computed from."""
    link = "online_url" if _has_column(con, "books_invoices", "online_url") else "null"
    invoices = _frame(
        con,
        f"select invoice_id, number, type, status, customer_id, customer_name, due_date, paid_date, currency, "
        f"total, amount_paid, amount_due, amount_credited, {link} as online_url "
        "from canonical.books_invoices where connection = ? and type = 'sale'",
        [connection],
    )
    history = _frame(
        con,
        "select customer_id, count(*) as paid, avg(case when date_diff('day', due_date, paid_date) > ? "
        "then 1.0 else 0.0 end) as late_share, avg(date_diff('day', due_date, paid_date)) as mean_late "
        "from canonical.books_invoices where connection = ? and type = 'sale' and status = 'paid' "
        "and paid_date is not null and due_date is not null group by 1",
        [LATE_AFTER, connection],
    )
    last_paid = dict(
        con.execute(
            "select invoice_id, max(date) from canonical.books_payments where connection = ? "
            "and status = 'active' and invoice_id is not null group by 1",
            [connection],
        ).fetchall()
    )
    links: dict[str, str] = {}
    if _exists(con, "recon", "customer_links"):
        for books, crm in con.execute(
            "select books_id, crm_id from recon.customer_links where connection = ? and status = 'linked' "
            "order by confidence desc nulls last",
            [connection],
        ).fetchall():
            links.setdefault(books, crm)
    risk: dict[str, str] = {}
    if _exists(con, "insights", "payment_risk"):
        risk = dict(
            con.execute(
                "select invoice_id, risk_band from insights.payment_risk where connection = ?", [connection]
            ).fetchall()
        )
    sent: set[tuple[str, int]] = set()
    if _exists(con, "writeback", "plan"):
        for (ref,) in con.execute(
            "select distinct ref from writeback.plan where connection = ? and system = 'crm' and entity = 'task' "
            "and op = 'create' and status = 'applied'",
            [connection],
        ).fetchall():
            invoice, _, step = ref.rpartition("|")
            if invoice and step.lstrip("-").isdigit():
                sent.add((invoice, int(step)))
    previous = (
        _frame(con, "select * from insights.reminders where connection = ?", [connection])
        if _exists(con, "insights", "reminders")
        else pd.DataFrame(columns=COLUMNS)
    )
    return {
        "invoices": invoices, "history": history, "last_paid": last_paid, "links": links, "risk": risk,
        "sent": sent, "previous": previous,
    }  # fmt: skip


# ---------------------------------------------------------------------------------------------
# Computing


def _stop_reason(inv: dict | None, last_paid: dict) -> str | None:
    """Why an invoice is no longer chased (None: it still is)."""
    if inv is None:
        return "the invoice is no longer in the books"
    status = inv["status"]
    due = Decimal(str(inv["amount_due"])) if inv["amount_due"] is not None else Decimal(0)
    if status in ("void", "voided"):
        return "the invoice was voided"
    if status == "deleted":
        return "the invoice was deleted"
    if status == "open" and due > 0:
        return None
    credited = Decimal(str(inv["amount_credited"] or 0))
    paid = Decimal(str(inv["amount_paid"] or 0))
    if credited > 0 and paid == 0:
        return "the invoice was credited"
    when = last_paid.get(inv["invoice_id"]) or inv["paid_date"]
    if status == "paid" or due <= 0:
        return f"the invoice was paid on {when}" if when else "the invoice was paid"
    return f"the invoice is {status}"


def plan_connection(
    connection: str, state: dict, as_of: date, steps: tuple[int, ...], env: SandboxedEnvironment,
    now: datetime,
) -> pd.DataFrame:  # fmt: skip
    """Every reminder row of one connection as of `as_of` (previous rows kept where sent or stopped)."""
    frame = state["invoices"]
    invoices = {
        r["invoice_id"]: r for r in frame.astype(object).where(frame.notna(), None).to_dict("records")
    }
    patterns = {
        r["customer_id"]: Pattern(int(r["paid"]), float(r["late_share"] or 0), float(r["mean_late"] or 0))
        for r in state["history"].to_dict("records")
    }
    previous = {(r["invoice_id"], int(r["step"])): r for r in state["previous"].to_dict("records")}
    first_pre = min((-s for s in steps if s < 0), default=0)
    rows: dict[tuple[str, int], dict] = {}
    for inv in invoices.values():
        if _stop_reason(inv, state["last_paid"]) is not None or inv["due_date"] is None:
            continue
        due_on = inv["due_date"].date() if hasattr(inv["due_date"], "date") else inv["due_date"]
        if (due_on - as_of).days > first_pre:
            continue  # not soon due yet
        pattern = patterns.get(inv["customer_id"], Pattern())
        band = state["risk"].get(inv["invoice_id"])
        passed = [s for s in steps if due_on + timedelta(days=s) <= as_of]
        latest = max(passed) if passed else None
        pre = [s for s in steps if s < 0]
        nudge = max(pre) if pre else None  # the one pre-due reminder a reliable payer gets
        for step in steps:
            key = (inv["invoice_id"], step)
            send_on = due_on + timedelta(days=step)
            tone = tone_for(step, pattern, band)
            values = {
                "customer_name": inv["customer_name"] or "", "invoice_number": inv["number"] or inv["invoice_id"],
                "amount_due": Decimal(str(inv["amount_due"])).quantize(Decimal("0.01")),
                "total": inv["total"], "currency": inv["currency"] or "", "due_date": due_on, "send_on": send_on,
                "step": step, "days_before_due": max(0, -step), "days_overdue": max(0, step if send_on > as_of else (as_of - due_on).days),
                "online_url": inv["online_url"] if isinstance(inv["online_url"], str) else None,
                "tone": tone, "risk_band": band,
            }  # fmt: skip
            subject, body = render(env, tone, values)
            if key in state["sent"]:
                status, reason = "sent-to-crm", None
            elif step == latest:
                status, reason = "due", None
            elif send_on > as_of:
                status, reason = "planned", None
                if step < 0 and step != nudge and pattern.reliable and band in (None, "low"):
                    status, reason = "skipped", "a reliable payer: one reminder before due is enough"
            else:
                status, reason = "skipped", f"step {latest:+d} is due instead (never sent: it came too late)"
            old = previous.get(key)
            if status == "sent-to-crm" and old is not None:
                subject, body = old["subject"], old["body"]  # what was sent stays as it was sent
            rows[key] = {
                "connection": connection, "invoice_id": inv["invoice_id"], "invoice_number": inv["number"],
                "customer_id": inv["customer_id"], "customer_name": inv["customer_name"],
                "account_id": state["links"].get(inv["customer_id"] or ""), "step": step, "send_on": send_on,
                "due_on": due_on, "amount_due": values["amount_due"], "currency": inv["currency"],
                "risk_band": band, "pattern": pattern.words(), "tone": tone, "subject": subject, "body": body,
                "status": status, "stop_reason": reason, "stopped_at": None, "computed_at": now,
            }  # fmt: skip
    for key, old in previous.items():
        if key in rows:
            continue
        row = {c: old.get(c) for c in COLUMNS}
        if key in state["sent"]:
            row["status"] = "sent-to-crm"
        if row["status"] in OPEN:
            why = _stop_reason(invoices.get(key[0]), state["last_paid"])
            row["status"], row["stop_reason"], row["stopped_at"] = (
                "stopped", why or "the due date or the cadence changed", now
            )  # fmt: skip
        rows[key] = row
    frame = pd.DataFrame(list(rows.values()), columns=COLUMNS)
    return frame.sort_values(["invoice_id", "step"]).reset_index(drop=True)


def write(con: duckdb.DuckDBPyConnection, connection: str, rows: pd.DataFrame) -> None:
    con.execute(DDL)
    con.execute("delete from insights.reminders where connection = ?", [connection])
    if len(rows):
        con.register("_reminder_rows", rows)
        try:
            con.execute(f"insert into insights.reminders select {', '.join(_CAST.get(c, c) for c in COLUMNS)} "
                        "from _reminder_rows")  # fmt: skip
        finally:
            con.unregister("_reminder_rows")


def _connections(con: duckdb.DuckDBPyConnection, only: str | None) -> list[str]:
    found = [r[0] for r in con.execute("select distinct connection from canonical.books_invoices").fetchall()]
    return sorted(c for c in found if only is None or c == only)


@dg.asset(
    name="reminders",
    deps=[CANONICAL, "discrepancies", "payment_risk"],
    group_name="insights",
    kinds={"duckdb"},
    pool="duckdb",
    tags={"xz/targeted": "1"},  # also in near-real-time runs: a payment stops its reminders at once
    description="insights.reminders: per overdue or soon-due sales invoice, one reminder per cadence step "
    "with its tone, subject and body and its status; stopped, with the reason, once the invoice is paid, "
    "credited or voided (targeted runs included). Nothing is emailed.",
)
def reminders(context: dg.AssetExecutionContext, config: RemindersConfig, mirror: MirrorResource):
    targeted = context.run.tags.get(TRIGGER_TAG) is not None
    only = context.run.tags.get(PARTITION_TAG) if targeted else None
    steps = tuple(sorted(set(config.steps))) if config.steps else settings.reminder_steps()
    env = environment(Path(config.templates_dir) if config.templates_dir else settings.templates_dir())
    now = datetime.now(UTC)
    today = now.date()
    frames: dict[str, pd.DataFrame] = {}
    for name in [n for n in mirror.connections() if only is None or n == only]:  # one mirror at a time
        store = mirror.store(name)
        with mirror.step_session(context, name):
            here: dict[str, pd.DataFrame] = {}
            with store.read() as con:
                for conn in _connections(con, only):
                    as_of = (
                        date.fromisoformat(config.as_of) if config.as_of else default_as_of(con, conn, today)
                    )
                    here[conn] = plan_connection(conn, read_state(con, conn), as_of, steps, env, now)
            with store.write() as con:
                con.execute(DDL)
                for conn, rows in here.items():
                    write(con, conn, rows)
        frames.update(here)
    rows = pd.concat(frames.values(), ignore_index=True) if frames else pd.DataFrame(columns=COLUMNS)
    by_status = {str(k): int(v) for k, v in rows["status"].value_counts().items()} if len(rows) else {}
    context.log.info(
        f"reminders: {len(rows)} row(s) for {len(frames)} connection(s): {by_status}"
        + (" (targeted run)" if targeted else "")
    )
    preview = rows[rows["status"] == "due"][["connection", "invoice_number", "step", "tone", "subject"]].head(
        20
    )
    return dg.MaterializeResult(
        metadata={
            "dagster/row_count": len(rows),
            "by_status": dg.MetadataValue.json(by_status),
            "steps": dg.MetadataValue.json(list(steps)),
            "due_preview": dg.MetadataValue.md(
                preview.to_markdown(index=False) if len(preview) else "(none)"
            ),
        }
    )
