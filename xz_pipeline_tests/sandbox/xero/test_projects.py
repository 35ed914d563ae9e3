"""The emulator's Projects API against xero-projects.yaml: every request and response is validated by openapi-core
(errors the spec leaves untyped against its `Error` schema, 401/403 against the fact sheet's problem shape);
paging, the state and contact filters, the time-entry statuses and the projects scopes."""

from __future__ import annotations

import warnings
from datetime import UTC, datetime
from decimal import Decimal
from functools import lru_cache
from pathlib import Path

import pytest
import yaml
from starlette.testclient import TestClient

from xz_pipeline.sandbox.world.projects import Project, ProjectsBook, ProjectTask, ProjectUser, TimeEntry
from xz_pipeline_tests.conftest import specs_dir
from xz_pipeline_tests.sandbox.xero.support import check_problem, make_setup

SPEC_HOST = "https://api.xero.com"
P = "/projects.xro/2.0"
CONTACT_A, CONTACT_B = "11111111-1111-4111-8111-111111111111", "22222222-2222-4222-8222-222222222222"
USERS = ["aaaaaaaa-0000-4000-8000-00000000000" + str(i) for i in range(3)]


def _only_refs(node):
    """OpenAPI 3.0: "properties adjacent to a $ref SHALL be ignored". The file puts `type: number` beside
    `$ref: Amount` on task amounts (its own examples send the Amount object); openapi-core would apply both."""
    if isinstance(node, dict):
        return {"$ref": node["$ref"]} if "$ref" in node else {k: _only_refs(v) for k, v in node.items()}
    if isinstance(node, list):
        return [_only_refs(v) for v in node]
    return node


@lru_cache(maxsize=1)
def _load(path: str):
    from openapi_core import Config, OpenAPI

    with open(path, encoding="utf-8") as fh:
        raw = _only_refs(yaml.load(fh, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader)))
    return OpenAPI.from_dict(raw, config=Config(spec_validator_cls=None)), raw


def projects_spec():
    root = specs_dir()
    if root is None:
        pytest.skip(
            "official API specs not found: set XZ_SPECS_DIR or place shared/specs beside the checkout"
        )
    return _load(str(Path(root) / "xero" / "xero-projects.yaml"))


class ProjectsClient:
    """A TestClient whose every Projects call is validated against xero-projects.yaml."""

    def __init__(self, app, headers: dict[str, str]) -> None:
        self.http = TestClient(app)
        self.headers = headers
        self.validated = 0

    def request(self, method: str, path: str, *, params=None, json=None, headers=None):
        from openapi_core.templating.responses.exceptions import ResponseNotFound
        from openapi_core.testing import MockRequest, MockResponse
        from openapi_schema_validator import OAS30Validator, validate

        hdrs = {k: v for k, v in {**self.headers, **(headers or {})}.items() if v is not None}
        resp = self.http.request(method, P + path, params=params, json=json, headers=hdrs)
        api, raw = projects_spec()
        body = resp.request.content or None
        req = MockRequest(SPEC_HOST, method.lower(), P + path, args={k: str(v) for k, v in (params or {}).items()},
                          headers={k.lower(): v for k, v in hdrs.items()}, data=body,
                          content_type="application/json")  # fmt: skip
        for name in ("x-daylimit-remaining", "x-minlimit-remaining", "x-appminlimit-remaining"):
            assert name in resp.headers, f"{name} missing on {method} {path}"
        if resp.status_code in (401, 403):
            check_problem(resp, resp.status_code)
        else:
            with warnings.catch_warnings():
                warnings.filterwarnings("ignore", message="Unsupported scheme type")
                if resp.status_code < 400:
                    api.validate_request(req)
            try:
                api.validate_response(req, MockResponse(resp.content, resp.status_code,
                                                        content_type="application/json"))  # fmt: skip
            except ResponseNotFound:
                assert resp.status_code in (400, 404, 405), (resp.status_code, resp.text)
                schema = {"$ref": "#/components/schemas/Error", "components": raw["components"]}
                validate(resp.json(), schema, cls=OAS30Validator)
        self.validated += 1
        return resp


def _book() -> ProjectsBook:
    d = lambda day: datetime(2026, 10, day, tzinfo=UTC)  # noqa: E731
    users = [ProjectUser(u, f"User {i}", f"u{i}@staff.example") for i, u in enumerate(USERS)]
    projects = []
    for n in range(7):
        pid = f"00000000-0000-4000-8000-{n:012d}"
        tasks = [
            ProjectTask(f"10000000-0000-4000-8000-{n:012d}", "Build", "TIME", Decimal("120"), 600),
            ProjectTask(f"20000000-0000-4000-8000-{n:012d}", "Fit-out", "FIXED", Decimal("900"), 300),
            ProjectTask(f"30000000-0000-4000-8000-{n:012d}", "Admin", "NON_CHARGEABLE", Decimal("0"), 60),
        ]
        time = [
            TimeEntry(
                f"40000000-0000-4000-8000-{n:06d}{k:06d}",
                USERS[k % 3],
                tasks[k % 3].id,
                d(1 + k),
                d(2 + k),
                60 + 15 * k,
                f"entry {k}",
                "INVOICED" if k == 0 else "ACTIVE",
            )  # fmt: skip
            for k in range(4)
        ]
        projects.append(Project(pid, CONTACT_A if n < 4 else CONTACT_B, f"Project {n}", "NZD",
                                "CLOSED" if n == 6 else "INPROGRESS", Decimal("5000"), d(28), f"deal{n}",
                                Decimal("300"), Decimal("100"), tasks, time))  # fmt: skip
    return ProjectsBook(users, projects)


@pytest.fixture()
def proj(specs):
    projects_spec()
    setup = make_setup()
    setup.emu.projects.seed(setup.tenant, _book())
    grant = setup.emu.grant_refresh_token(
        setup.client_id, [setup.tenant], "offline_access projects"
    )  # read-write
    token = setup.token_for(grant)["access_token"]
    client = ProjectsClient(setup.emu.app, {"Authorization": f"Bearer {token}", "Xero-Tenant-Id": setup.tenant,
                                            "Accept": "application/json"})  # fmt: skip
    return setup, client


def test_projects_page_with_the_projects_pagination_and_filters(proj):
    setup, api = proj
    first = api.request("GET", "/Projects", params={"page": 1, "pageSize": 3}).json()
    assert first["pagination"] == {"page": 1, "pageSize": 3, "pageCount": 3, "itemCount": 7}
    names = [p["name"] for p in first["items"]]
    rest = [p["name"] for page in (2, 3) for p in api.request("GET", "/Projects", params={"page": page,
                                                                                          "pageSize": 3}).json()["items"]]  # fmt: skip
    assert names + rest == [f"Project {n}" for n in range(7)]
    assert api.request("GET", "/Projects").json()["pagination"]["pageSize"] == 50  # the default
    open_ = api.request("GET", "/Projects", params={"states": "INPROGRESS"}).json()
    assert {p["status"] for p in open_["items"]} == {"INPROGRESS"} and open_["pagination"]["itemCount"] == 6
    closed = api.request("GET", "/Projects", params={"states": "CLOSED"}).json()["items"]
    assert [p["name"] for p in closed] == ["Project 6"]
    of_b = api.request("GET", "/Projects", params={"contactID": CONTACT_B}).json()["items"]
    assert {p["contactId"] for p in of_b} == {CONTACT_B} and len(of_b) == 3
    by_id = api.request("GET", "/Projects", params={"projectIds": closed[0]["projectId"]}).json()["items"]
    assert [p["name"] for p in by_id] == ["Project 6"]
    too_big = api.request("GET", "/Projects", params={"pageSize": 501})
    assert too_big.status_code == 400 and "pageSize" in too_big.json()["modelState"]
    assert api.request("GET", "/Projects", params={"states": "OPEN"}).status_code == 400
    users = api.request("GET", "/ProjectsUsers").json()
    assert users["pagination"]["itemCount"] == 3 and {u["userId"] for u in users["items"]} == set(USERS)
    assert api.validated == 11


def test_totals_follow_the_time_entry_statuses(proj):
    setup, api = proj
    pid = "00000000-0000-4000-8000-000000000000"
    project = api.request("GET", f"/Projects/{pid}").json()
    # TIME 120/h: entry 0 (60 min, INVOICED) and entry 3 (105 min, ACTIVE); FIXED 900 (entry 1 ACTIVE); admin 90 min
    assert project["minutesLogged"] == 60 + 75 + 90 + 105
    assert project["taskAmountInvoiced"]["value"] == 120.0
    assert project["taskAmountToBeInvoiced"]["value"] == 210.0 + 900.0
    assert project["totalToBeInvoiced"]["value"] == 210.0 + 900.0 + 200.0  # expenses 300, 100 invoiced
    assert project["totalInvoiced"]["value"] == 120.0 + 100.0 and project["estimate"]["value"] == 5000.0
    entries = api.request("GET", f"/Projects/{pid}/Time").json()["items"]
    assert [e["status"] for e in entries] == ["INVOICED", "ACTIVE", "ACTIVE", "ACTIVE"]
    assert (
        entries[0]["dateEnteredUtc"].endswith("1Z") and len(entries[0]["dateEnteredUtc"].split(".")[1]) == 8
    )
    active = api.request("GET", f"/Projects/{pid}/Time", params={"states": "ACTIVE"}).json()["items"]
    assert len(active) == 3
    chargeable = api.request("GET", f"/Projects/{pid}/Time", params={"isChargeable": "true"}).json()["items"]
    assert {e["taskId"][:1] for e in chargeable} == {"1", "2"}

    fixed_entry, time_entry = entries[1]["timeEntryId"], entries[3]["timeEntryId"]
    setup.emu.projects.set_time_status(setup.tenant, pid, [fixed_entry, time_entry], "LOCKED")
    locked = api.request(
        "PUT",
        f"/Projects/{pid}/Time/{time_entry}",
        json={
            "userId": USERS[0],
            "taskId": entries[3]["taskId"],
            "dateUtc": "2026-10-04T00:00:00Z",
            "duration": 30,
        },
    )
    assert locked.status_code == 400 and "LOCKED" in locked.json()["message"]
    assert api.request("DELETE", f"/Projects/{pid}/Time/{time_entry}").status_code == 400
    tasks = {t["chargeType"]: t for t in api.request("GET", f"/Projects/{pid}/Tasks").json()["items"]}
    assert tasks["FIXED"]["status"] == "LOCKED"

    setup.emu.projects.set_time_status(setup.tenant, pid, [fixed_entry, time_entry], "INVOICED")
    project = api.request("GET", f"/Projects/{pid}").json()
    assert project["taskAmountInvoiced"]["value"] == 120.0 + 210.0 + 900.0
    assert project["taskAmountToBeInvoiced"]["value"] == 0.0 and project["minutesToBeInvoiced"] == 0
    tasks = {t["chargeType"]: t for t in api.request("GET", f"/Projects/{pid}/Tasks").json()["items"]}
    assert tasks["FIXED"]["status"] == "INVOICED" and tasks["FIXED"]["amountInvoiced"]["value"] == 900.0
    assert (
        tasks["NON_CHARGEABLE"]["nonChargeableMinutes"] == 90
        and tasks["NON_CHARGEABLE"]["minutesInvoiced"] == 0
    )

    made = api.request(
        "POST",
        f"/Projects/{pid}/Time",
        json={
            "userId": USERS[1],
            "taskId": tasks["TIME"]["taskId"],
            "dateUtc": "2026-10-20T00:00:00Z",
            "duration": 45,
        },
    )
    assert made.status_code == 200 and made.json()["status"] == "ACTIVE"
    assert api.request("GET", f"/Projects/{pid}").json()["minutesLogged"] == 330 + 45
    bad = api.request(
        "POST", f"/Projects/{pid}/Time", json={"userId": USERS[1], "taskId": tasks["TIME"]["taskId"]}
    )
    assert bad.status_code == 400 and set(bad.json()["modelState"]) == {"dateUtc", "duration"}


def test_projects_scopes_and_tenancy(proj):
    setup, api = proj
    emu = setup.emu
    narrow = emu.grant_refresh_token(
        setup.client_id, [setup.tenant], "openid offline_access accounting.contacts"
    )
    token = setup.token_for(narrow)["access_token"]
    assert api.request("GET", "/Projects", headers={"Authorization": f"Bearer {token}"}).status_code == 401
    read_only = emu.grant_refresh_token(setup.client_id, [setup.tenant], "offline_access projects.read")
    token = setup.token_for(read_only)["access_token"]
    assert api.request("GET", "/Projects", headers={"Authorization": f"Bearer {token}"}).status_code == 200
    pid = "00000000-0000-4000-8000-000000000001"
    write = api.request(
        "PATCH", f"/Projects/{pid}", json={"status": "CLOSED"}, headers={"Authorization": f"Bearer {token}"}
    )
    assert write.status_code == 401  # projects.read reads, only `projects` writes
    assert api.request("PATCH", f"/Projects/{pid}", json={"status": "CLOSED"}).status_code == 204
    assert api.request("GET", f"/Projects/{pid}").json()["status"] == "CLOSED"
    other = emu.add_tenant("Someone Else Ltd")
    assert api.request("GET", "/Projects", headers={"Xero-Tenant-Id": other}).status_code == 403
    assert api.request("GET", "/Projects/00000000-0000-4000-8000-999999999999").status_code == 404
    calls = [r for r in emu.received if r.path.startswith(P)]
    assert len(calls) == api.validated and {r.status for r in calls} >= {200, 204, 401, 403, 404}
