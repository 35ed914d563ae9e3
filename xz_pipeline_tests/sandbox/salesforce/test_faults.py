"""The fault switch on the Salesforce wing: its own bodies for 5xx, its own limit answer, real expiry."""

from __future__ import annotations

from starlette.testclient import TestClient

from xz_pipeline.sandbox.faults import FaultMiddleware, parse_faults
from xz_pipeline_tests.sandbox.salesforce.support import V, connect


def test_faults_answer_as_salesforce_does():
    sf = connect("full")
    spec = "5xx:503@nth=1,path=/services/data;429@nth=2,path=/services/data;expired@nth=3,path=/services/data"
    mw = FaultMiddleware(sf.emu.app, parse_faults(spec), sf.emu, seed=1)
    assert mw.vendor == "salesforce"
    http = TestClient(mw)
    calls = [http.get(f"{V}/limits", headers=sf.headers()) for _ in range(4)]
    assert [c.status_code for c in calls] == [503, 403, 401, 401]
    assert calls[0].json() == [
        {"message": "Server is temporarily unavailable", "errorCode": "SERVER_UNAVAILABLE"}
    ]
    assert calls[1].json()[0]["errorCode"] == "REQUEST_LIMIT_EXCEEDED"
    assert calls[2].json()[0]["errorCode"] == "INVALID_SESSION_ID"  # the session really ended
    token = http.post("/services/oauth2/token", data={"grant_type": "refresh_token", "client_id": "3MVG9sftestclient",
                      "client_secret": "sf-test-secret", "refresh_token": sf.refresh_token})  # fmt: skip
    assert token.status_code == 200  # OAuth is never faulted unless a fault's path names it
    mw.close()
