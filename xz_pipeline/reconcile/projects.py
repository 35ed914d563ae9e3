"""Projects on the books side: linked to the CRM deals they were sold as, and their two discrepancies.

Linking (`project_links`): a deal that names the project (`books_project_id`, where the CRM keeps that field)
is explicit; otherwise a deal of the CRM account linked to the project's customer whose name, less the account's
name in front ("Acme Ltd - Kitchen refit" -> "Kitchen refit"), is the project's name as rapidfuzz compares
them (case, punctuation and word order aside): at least `NAME_SCORE`, and clearly ahead of the account's next
deal (`NAME_MARGIN`), so two similar deals link neither rather than the wrong one. A deal serves one project.

The rules (roles only; amounts in integer cents as `persist.read_canonical` gives them):
- `time_not_invoiced`: chargeable time (a TIME or FIXED task) still `active` — not invoiced, nor locked while
  being invoiced — dated more than `XZ_UNBILLED_TIME_DAYS` (30) before the organisation's latest logged time.
  Measured from the books' own latest time rather than the clock, so a mirror read today and one replayed
  later give the same answer, and an organisation that stops logging time does not age all of it at once.
- `project_over_budget`: work delivered plus expenses above the budget. Work: TIME tasks at their hourly rate;
  a FIXED task at its fixed amount, scaled up by the minutes logged beyond its estimated minutes (its fixed
  amount is its budget); NON_CHARGEABLE at nothing. Budget: the project's estimate; without one, the tasks'
  own (FIXED amounts and TIME estimates at their rate).
Both are `warn`: the books and the CRM do not disagree, but sales should know before the customer calls.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from rapidfuzz import fuzz, process
from rapidfuzz.utils import default_process

from xz_pipeline import settings

NAME_SCORE = 88
NAME_MARGIN = 4
PREFIX_SCORE = 80  # a deal name's head this close to its account's name is that name, not the deal's own
LINK_COLUMNS = ["connection", "project_id", "deal_id", "account_id", "method", "confidence"]


def _empty_links() -> pd.DataFrame:
    return pd.DataFrame({c: pd.Series(dtype=float if c == "confidence" else object) for c in LINK_COLUMNS})


def deal_stem(name: str, account_name: str | None) -> str:
    """A deal's own words: its name less the account's name in front of " - " (when it is that name)."""
    name = name or ""
    for sep in (" - ", " – ", ": "):
        head, found, tail = name.partition(sep)
        if (
            found
            and account_name
            and fuzz.ratio(default_process(head), default_process(account_name)) >= PREFIX_SCORE
        ):
            return tail
    return name


def project_links(
    projects: pd.DataFrame, deals: pd.DataFrame, accounts: pd.DataFrame, customer_links: pd.DataFrame
) -> pd.DataFrame:
    """(connection, project_id, deal_id, account_id, method, confidence): one deal per project at most."""
    if projects is None or projects.empty or deals.empty:
        return _empty_links()
    out: list[dict] = []
    used: set[tuple[str, str]] = set()
    if "books_project_id" in deals:
        named = deals[deals["books_project_id"].fillna("") != ""]
        known = set(zip(projects["connection"], projects["project_id"], strict=True))
        for r in named.itertuples(index=False):
            if (r.connection, r.books_project_id) in known:
                out.append({"connection": r.connection, "project_id": r.books_project_id, "deal_id": r.deal_id,
                            "account_id": r.account_id, "method": "explicit", "confidence": 1.0})  # fmt: skip
                used.add((r.connection, r.deal_id))
    explicit = {(o["connection"], o["project_id"]) for o in out}
    linked = customer_links[customer_links["status"] == "linked"][["connection", "books_id", "crm_id"]]
    account_of = {(c, b): a for c, b, a in linked.itertuples(index=False)}
    names = dict(
        zip(zip(accounts["connection"], accounts["account_id"], strict=True), accounts["name"], strict=True)
    )
    by_account: dict[tuple[str, str], list[tuple[str, str]]] = {}
    for conn, deal_id, account_id, name in deals[["connection", "deal_id", "account_id", "name"]].itertuples(
        index=False
    ):
        if account_id:
            stem = default_process(deal_stem(name, names.get((conn, account_id))))
            by_account.setdefault((conn, account_id), []).append((deal_id, stem))
    proposals = []
    for conn, pid, cid, pname in projects[["connection", "project_id", "customer_id", "name"]].itertuples(
        index=False
    ):
        account = account_of.get((conn, cid))
        if (conn, pid) in explicit or account is None or not pname:
            continue
        candidates = [(d, s) for d, s in by_account.get((conn, account), []) if (conn, d) not in used]
        if not candidates:
            continue
        scores = process.extract(default_process(pname), [s for _d, s in candidates], scorer=fuzz.token_sort_ratio,
                                 limit=2, processor=None)  # fmt: skip
        best, score, at = scores[0]
        second = scores[1][1] if len(scores) > 1 else 0.0
        if score >= NAME_SCORE and score - second >= NAME_MARGIN:
            proposals.append((score, conn, pid, candidates[at][0], account))
    for score, conn, pid, deal_id, account in sorted(proposals, key=lambda p: -p[0]):
        if (conn, deal_id) in used:
            continue
        used.add((conn, deal_id))
        out.append({"connection": conn, "project_id": pid, "deal_id": deal_id, "account_id": account,
                    "method": "name", "confidence": round(score / 100, 3)})  # fmt: skip
    return pd.DataFrame(out, columns=LINK_COLUMNS) if out else _empty_links()


def _deal_of(x, frame: pd.DataFrame) -> pd.Series:
    links = links_of(x)
    deal = dict(
        zip(zip(links["connection"], links["project_id"], strict=True), links["deal_id"], strict=True)
    )
    return pd.Series([deal.get(k, "") for k in zip(frame["connection"], frame["project_id"], strict=True)],
                     index=frame.index, dtype=object)  # fmt: skip


def links_of(x) -> pd.DataFrame:
    """The project links of a rules `Inputs` (computed once)."""
    if "project_links" not in x._cache:
        x._cache["project_links"] = project_links(
            x.books_projects, x.crm_deals, x.crm_accounts, x.customer_links
        )
    return x._cache["project_links"]


def _hours(minutes: int) -> str:
    h, m = divmod(int(minutes), 60)
    return f"{h} h {m:02d} min" if h else f"{m} min"


def time_not_invoiced(x) -> pd.DataFrame:
    from xz_pipeline.reconcile.rules import money, rows

    te, projects = x.books_time_entries, x.books_projects
    if te is None or te.empty or projects is None:
        return rows(pd.DataFrame({"connection": []}), "time_not_invoiced")
    days = settings.unbilled_time_days()
    worked = pd.to_datetime(te["worked_on"], utc=True)
    latest = worked.groupby(te["connection"]).transform("max")
    old = te[(te["status"] == "active") & te["chargeable"].astype("boolean").fillna(False).astype(bool)
             & (worked < latest - pd.Timedelta(days=days))].copy()  # fmt: skip
    if old.empty:
        return rows(old.assign(connection=""), "time_not_invoiced")
    old["worked_on"] = worked[old.index]
    rate = {}
    tasks = x.books_project_tasks
    if tasks is not None and not tasks.empty:
        timed = tasks[tasks["charge_type"] == "time"]
        rate = dict(zip(zip(timed["connection"], timed["task_id"], strict=True), timed["rate"], strict=True))
    old["value"] = [int(round(rate.get((c, t), 0) * m / 60)) if rate.get((c, t)) is not None else 0
                    for c, t, m in zip(old["connection"], old["task_id"], old["minutes"], strict=True)]  # fmt: skip
    g = old.groupby(["connection", "project_id"], as_index=False).agg(
        minutes=("minutes", "sum"), entries=("time_entry_id", "count"), oldest=("worked_on", "min"),
        value=("value", "sum"),
    )  # fmt: skip
    g = g[_has_project(g, projects)]
    cutoff = (latest.groupby(te["connection"]).max() - pd.Timedelta(days=days)).dt.date
    detail = [
        f"{_hours(m)} of chargeable time ({n} entr{'y' if n == 1 else 'ies'}, the oldest from {o.date()}) still not "
        f"invoiced {days} days after the latest logged time (before {cutoff[c]}); worth {v // 100}.{v % 100:02d} at "
        "the tasks' hourly rates"
        for c, m, n, o, v in zip(
            g["connection"], g["minutes"], g["entries"], g["oldest"], g["value"], strict=True
        )
    ]
    return rows(g, "time_not_invoiced", books_id="project_id", crm_id=_deal_of(x, g),
                books_value=money(g["value"]), detail=pd.Series(detail, index=g.index, dtype=object))  # fmt: skip


def _has_project(frame: pd.DataFrame, projects: pd.DataFrame) -> pd.Series:
    keys = set(zip(projects["connection"], projects["project_id"], strict=True))
    return pd.Series([k in keys for k in zip(frame["connection"], frame["project_id"], strict=True)],
                     index=frame.index, dtype=bool)  # fmt: skip


def work_and_budget(projects: pd.DataFrame, tasks: pd.DataFrame | None) -> pd.DataFrame:
    """Per project (cents): `work` delivered at its price and `budget` (see the module docstring)."""
    p = projects[["connection", "project_id", "estimate", "expense_amount"]].copy()
    p["estimate"] = p["estimate"].fillna(0).astype("int64")
    p["expense_amount"] = p["expense_amount"].fillna(0).astype("int64")
    if tasks is None or tasks.empty:
        p["work"], p["task_budget"] = 0, 0
    else:
        t = tasks[
            ["connection", "project_id", "charge_type", "rate", "estimate_minutes", "total_minutes"]
        ].copy()
        rate = t["rate"].fillna(0).astype("int64").to_numpy().astype(float)
        mins = t["total_minutes"].fillna(0).astype("int64").to_numpy().astype(float)
        est = t["estimate_minutes"].fillna(0).astype("int64").to_numpy().astype(float)
        kind = t["charge_type"].to_numpy()
        share = np.where(
            est > 0, np.maximum(1.0, np.divide(mins, est, out=np.ones_like(mins), where=est > 0)), 1.0
        )
        t["work"] = np.where(
            kind == "time", rate * mins / 60, np.where((kind == "fixed") & (mins > 0), rate * share, 0.0)
        )
        t["task_budget"] = np.where(kind == "time", rate * est / 60, np.where(kind == "fixed", rate, 0.0))
        per = t.groupby(["connection", "project_id"], as_index=False)[["work", "task_budget"]].sum()
        p = p.merge(per, how="left", on=["connection", "project_id"])
        p[["work", "task_budget"]] = p[["work", "task_budget"]].fillna(0.0)
    p["work"] = np.round(p["work"].astype(float)).astype("int64")
    p["budget"] = np.where(p["estimate"] > 0, p["estimate"], np.round(p["task_budget"].astype(float))).astype(
        "int64"
    )
    p["spent"] = p["work"] + p["expense_amount"]
    return p


def project_over_budget(x) -> pd.DataFrame:
    from xz_pipeline.reconcile.rules import money, rows

    projects = x.books_projects
    if projects is None or projects.empty:
        return rows(pd.DataFrame({"connection": []}), "project_over_budget")
    p = work_and_budget(projects, x.books_project_tasks)
    over = p[(p["budget"] > 0) & (p["spent"] > p["budget"])]
    pct = ((over["spent"] - over["budget"]) * 1000 // over["budget"]).astype("int64")
    detail = [
        f"work {w // 100}.{w % 100:02d} + expenses {e // 100}.{e % 100:02d} = {s // 100}.{s % 100:02d}, "
        f"{q // 10}.{q % 10}% over the {'estimate' if est > 0 else 'tasks’ budget'} of {b // 100}.{b % 100:02d}"
        for w, e, s, b, q, est in zip(
            over["work"],
            over["expense_amount"],
            over["spent"],
            over["budget"],
            pct,
            over["estimate"],
            strict=True,
        )  # fmt: skip
    ]
    return rows(over, "project_over_budget", books_id="project_id", crm_id=_deal_of(x, over),
                books_value=money(over["spent"]), detail=pd.Series(detail, index=over.index, dtype=object))  # fmt: skip


PROJECT_LINKS_DDL = """
create schema if not exists recon;
create table if not exists recon.project_links (
    connection varchar not null, project_id varchar not null, deal_id varchar not null, account_id varchar,
    method varchar, confidence double, linked_at timestamptz
);
"""


def write_project_links(con, links: pd.DataFrame | None, connections, now) -> None:
    """Replace the reconciled connections' project links (`recon.project_links`), in the caller's transaction."""
    con.execute(PROJECT_LINKS_DDL)
    con.execute("delete from recon.project_links where connection in (select unnest(?))", [list(connections)])
    if links is None or links.empty:
        return
    con.register("project_links_in", links[LINK_COLUMNS].assign(linked_at=now))
    try:
        con.execute("insert into recon.project_links by name select * from project_links_in")
    finally:
        con.unregister("project_links_in")
