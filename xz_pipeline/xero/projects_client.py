"""The Xero Projects API client (`/projects.xro/2.0`): projects, tasks, time entries and project users.

It rides on a `XeroClient`'s session, token and tenant, so Projects calls spend the same per-organisation
day budget as the accounting API (5,000 calls a day per app and organisation) and count on the same meter.
The API is unlike the accounting one: camelCase JSON, its own paging (`page`/`pageSize` up to 500, answers
`{pagination, items}`), no modified-since filter, and its own scopes (`projects`, `projects.read`).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from xz_pipeline.core.errors import ApiError
from xz_pipeline.core.http import Reply
from xz_pipeline.xero.client import VENDOR, XeroClient

PREFIX = "/projects.xro/2.0"
PAGE_SIZE = 500  # the Projects API's largest page
PROJECT_STATES = ("INPROGRESS", "CLOSED")
SCOPES = ("projects", "projects.read")


class ProjectsClient:
    """Reads of one organisation's Projects through an open `XeroClient` (which it does not close)."""

    def __init__(self, xero: XeroClient) -> None:
        self.xero = xero

    def _get(self, path: str, params: dict[str, Any] | None = None) -> Reply:
        x = self.xero
        headers = {"Accept": "application/json"}
        if not (x.custom_connection and x._tenant_id is None):
            headers["Xero-Tenant-Id"] = x.tenant_id
        return x.http.request(
            "GET",
            f"{x.api_url}{PREFIX}/{path}",
            endpoint=f"GET projects/{path.split('/')[-1] if '/' in path else path}",
            params=params,
            headers=headers,
            budget_key=x._budget_key(),
            auth=x.auth,
        )

    def iter_pages(
        self, path: str, params: dict[str, Any] | None = None, page_size: int = PAGE_SIZE
    ) -> Iterator[list[dict]]:
        """`items`, page by page; `pagination.pageCount` says when to stop (no trailing empty page)."""
        size = max(1, min(PAGE_SIZE, page_size))
        page = 1
        while True:
            reply = self._get(path, {**(params or {}), "page": page, "pageSize": size})
            data = reply.data if isinstance(reply.data, dict) else {}
            items = data.get("items")
            if not isinstance(items, list):
                raise ApiError(VENDOR, reply.status, "UnexpectedShape", "a Projects list without `items`",
                               endpoint=f"GET projects/{path}")  # fmt: skip
            if items:
                yield items
            pagination = data.get("pagination") if isinstance(data.get("pagination"), dict) else {}
            page_count = pagination.get("pageCount")
            if len(items) < size or (isinstance(page_count, int) and page >= page_count):
                return
            page += 1

    def projects(
        self, *, states: str | None = None, ids: list[str] | None = None, contact_id: str | None = None
    ) -> Iterator[dict]:
        params: dict[str, Any] = {}
        if states:
            params["states"] = states
        if ids:
            params["projectIds"] = ",".join(ids)
        if contact_id:
            params["contactID"] = contact_id
        for page in self.iter_pages("Projects", params):
            yield from page

    def tasks(self, project_id: str) -> Iterator[dict]:
        for page in self.iter_pages(f"Projects/{project_id}/Tasks"):
            yield from page

    def time_entries(self, project_id: str, *, states: str | None = None) -> Iterator[dict]:
        for page in self.iter_pages(f"Projects/{project_id}/Time", {"states": states} if states else None):
            yield from page

    def users(self) -> Iterator[dict]:
        for page in self.iter_pages("ProjectsUsers"):
            yield from page


def lacks_scope(exc: ApiError) -> bool:
    """Is this Xero's answer to a token without `projects`/`projects.read` (401 AuthorizationUnsuccessful)?
    A wrong tenant (403 AuthenticationUnsuccessful) or a refused token is a real failure, not this."""
    return exc.status == 401 and "AuthorizationUnsuccessful" in f"{exc.code} {exc.message}"
