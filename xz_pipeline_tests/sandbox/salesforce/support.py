"""Fixtures for the Salesforce emulator tests: a seeded org, a connected app and a client for its API."""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

from starlette.testclient import TestClient

from xz_pipeline.sandbox.clock import ManualClock
from xz_pipeline.sandbox.salesforce import SalesforceEmulator, SalesforceLimits
from xz_pipeline.sandbox.world import generate

CLIENT_ID, SECRET = "3MVG9sftestclient", "sf-test-secret"
REDIRECT = "http://localhost:8765/callback"
V = "/services/data/v62.0"


@lru_cache(maxsize=4)
def world(profile: str = "full"):
    return generate(7, "tiny", profile=profile)


@dataclass
class Sf:
    """A seeded emulator with one connected org and a fresh session."""

    emu: SalesforceEmulator
    clock: ManualClock
    org_id: str
    http: TestClient
    refresh_token: str
    access_token: str = ""

    @property
    def org(self):
        return self.emu.orgs[self.org_id]

    def headers(self, **extra: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.access_token}", **extra}

    def refresh(self) -> dict:
        resp = self.http.post("/services/oauth2/token", data={"grant_type": "refresh_token", "client_id": CLIENT_ID,
                              "client_secret": SECRET, "refresh_token": self.refresh_token})  # fmt: skip
        assert resp.status_code == 200, resp.text
        body = resp.json()
        self.access_token = body["access_token"]
        self.refresh_token = body.get("refresh_token", self.refresh_token)
        return body

    def get(self, path: str, **params: str):
        return self.http.get(V + path, params=params or None, headers=self.headers())

    def query(self, soql: str, *, all_rows: bool = False, batch: int | None = None):
        extra = {"Sforce-Query-Options": f"batchSize={batch}"} if batch else {}
        return self.http.get(f"{V}/{'queryAll' if all_rows else 'query'}", params={"q": soql},
                             headers=self.headers(**extra))  # fmt: skip

    def rows(self, soql: str) -> list[dict]:
        resp = self.query(soql)
        assert resp.status_code == 200, resp.text
        return resp.json()["records"]

    def send(self, method: str, path: str, body=None, **params: str):
        return self.http.request(method, V + path, json=body, params=params or None, headers=self.headers())


def connect(
    profile: str = "full", limits: SalesforceLimits | None = None, *, rotate: bool | None = None
) -> Sf:
    clock = ManualClock()
    emu = SalesforceEmulator(clock=clock, limits=limits)
    org_id = emu.seed_world(world(profile), rotate_refresh_tokens=rotate)
    emu.register_client(CLIENT_ID, SECRET, [REDIRECT])
    sf = Sf(emu, clock, org_id, TestClient(emu.app), emu.grant_refresh_token(CLIENT_ID, org_id))
    sf.refresh()
    return sf
