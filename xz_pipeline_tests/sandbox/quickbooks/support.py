"""Fixtures for the QuickBooks emulator tests: a seeded company, a connected app and a client for its API."""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

from starlette.testclient import TestClient

from xz_pipeline.sandbox.clock import ManualClock
from xz_pipeline.sandbox.quickbooks import QboLimits, QuickBooksEmulator
from xz_pipeline.sandbox.world import generate

CLIENT_ID, SECRET = "ABqbotestclient", "qbo-test-secret"
REDIRECT = "http://localhost:8765/callback"


@lru_cache(maxsize=4)
def world(profile: str = "full"):
    return generate(7, "tiny", profile=profile)


@dataclass
class Qbo:
    """A seeded emulator with one connected company and a fresh access token."""

    emu: QuickBooksEmulator
    clock: ManualClock
    realm: str
    http: TestClient
    refresh_token: str
    access_token: str = ""

    @property
    def base(self) -> str:
        return f"/v3/company/{self.realm}"

    def headers(self, **extra: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.access_token}", "Accept": "application/json", **extra}

    def refresh(self) -> dict:
        resp = self.http.post("/oauth2/v1/tokens/bearer", auth=(CLIENT_ID, SECRET),
                              data={"grant_type": "refresh_token", "refresh_token": self.refresh_token})  # fmt: skip
        assert resp.status_code == 200, resp.text
        body = resp.json()
        self.access_token, self.refresh_token = body["access_token"], body["refresh_token"]
        return body

    def query(self, text: str, *, post: bool = False):
        if post:
            return self.http.post(f"{self.base}/query", params={"minorversion": "75"}, content=text,
                                  headers=self.headers(**{"Content-Type": "application/text"}))  # fmt: skip
        return self.http.get(
            f"{self.base}/query", params={"query": text, "minorversion": "75"}, headers=self.headers()
        )

    def rows(self, text: str) -> list[dict]:
        resp = self.query(text)
        assert resp.status_code == 200, resp.text
        body = resp.json()["QueryResponse"]
        return next((v for k, v in body.items() if isinstance(v, list)), [])

    def get(self, entity: str, rid: str):
        return self.http.get(
            f"{self.base}/{entity.lower()}/{rid}", params={"minorversion": "75"}, headers=self.headers()
        )

    def post(self, entity: str, body, **params: str):
        return self.http.post(f"{self.base}/{entity.lower()}", params={"minorversion": "75", **params}, json=body,
                              headers=self.headers())  # fmt: skip


def connect(
    profile: str = "full", limits: QboLimits | None = None, *, webhook: tuple[str, str, str] | None = None
) -> Qbo:
    clock = ManualClock()
    emu = QuickBooksEmulator(clock=clock, limits=limits)
    realm = emu.seed_world(world(profile))
    emu.register_client(CLIENT_ID, SECRET, [REDIRECT])
    if webhook:
        emu.set_webhook(*webhook)
    qbo = Qbo(emu, clock, realm, TestClient(emu.app), emu.grant_refresh_token(CLIENT_ID, realm))
    qbo.refresh()
    return qbo
