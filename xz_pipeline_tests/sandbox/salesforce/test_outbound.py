"""Outbound Messages: a SOAP notification per change to a watched object, retried until acknowledged."""

from __future__ import annotations

import xml.etree.ElementTree as ET

import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from xz_pipeline.sandbox.server import LoopbackServer
from xz_pipeline_tests.sandbox.salesforce.support import connect, world

OUT = "{http://soap.sforce.com/2005/09/outbound}"
SF = "{urn:sobject.enterprise.soap.sforce.com}"
ACK = (b'<?xml version="1.0" encoding="UTF-8"?><soapenv:Envelope xmlns:soapenv="http://schemas.xmlsoap.org/soap/'
       b'envelope/"><soapenv:Body><notificationsResponse xmlns="http://soap.sforce.com/2005/09/outbound"><Ack>%s'
       b"</Ack></notificationsResponse></soapenv:Body></soapenv:Envelope>")  # fmt: skip


class Listener:
    """A receiver that answers Ack true or false, and keeps what it got."""

    def __init__(self) -> None:
        self.ack = True
        self.got: list[bytes] = []

    async def handle(self, request: Request) -> Response:
        self.got.append(await request.body())
        return Response(ACK % (b"true" if self.ack else b"false"), media_type="text/xml")

    def notifications(self, index: int = -1) -> list[tuple[str, dict]]:
        root = ET.fromstring(self.got[index])
        return [(n.find(f"{OUT}Id").text, {el.tag.removeprefix(SF): el.text for el in n.find(f"{OUT}sObject")})
                for n in root.iter(f"{OUT}Notification")]  # fmt: skip


@pytest.fixture(scope="module")
def listener():
    hear = Listener()
    with LoopbackServer(
        Starlette(routes=[Route("/webhooks/salesforce", hear.handle, methods=["POST"])]), name="sf-om"
    ) as srv:
        yield hear, f"{srv.url}/webhooks/salesforce"


def test_a_change_is_sent_and_acknowledged(listener):
    hear, url = listener
    hear.ack, hear.got[:] = True, []
    sf = connect("full")
    sf.emu.set_outbound(sf.org_id, url, {"Opportunity": ["Name", "StageName", "IsWon", "Amount"]})
    opp = sf.emu.id_map(sf.org_id)[world("full").crm.deals[0].id]
    assert (
        sf.send(
            "PATCH", f"/sobjects/Opportunity/{opp}", {"StageName": "Closed Won", "Amount": 99}
        ).status_code
        == 204
    )
    sf.send(
        "PATCH", f"/sobjects/Account/{sf.rows('SELECT Id FROM Account LIMIT 1')[0]['Id']}", {"Phone": "1"}
    )
    assert sf.emu.flush_outbound() == 1 and sf.emu.outbound.pending == []
    root = ET.fromstring(hear.got[0])
    assert root.find(f".//{OUT}OrganizationId").text == sf.org_id
    [(note_id, fields)] = hear.notifications()
    assert note_id.startswith("04l") and fields == {"Id": opp, "Name": world("full").crm.deals[0].name,
                                                    "StageName": "Closed Won", "IsWon": "true", "Amount": "99.0"}  # fmt: skip
    assert sf.emu.flush_outbound() == 0 and len(hear.got) == 1  # nothing left to send


def test_an_unacknowledged_message_is_retried_with_back_off(listener):
    hear, url = listener
    hear.ack, hear.got[:] = False, []
    sf = connect("full")
    sf.emu.set_outbound(sf.org_id, url)
    opp = sf.emu.id_map(sf.org_id)[world("full").crm.deals[1].id]
    sf.send("PATCH", f"/sobjects/Opportunity/{opp}", {"Amount": 10})
    assert sf.emu.flush_outbound() == 0 and len(hear.got) == 1
    first_id = hear.notifications()[0][0]
    assert sf.emu.flush_outbound() == 0 and len(hear.got) == 1  # not due yet
    sf.clock.advance(15)
    sf.send("PATCH", f"/sobjects/Opportunity/{opp}", {"Amount": 11})  # a newer change: its own notification
    hear.ack = True
    assert sf.emu.flush_outbound() == 2
    sent = hear.notifications()
    assert [n for n, _ in sent][0] == first_id and {f["Amount"] for _, f in sent} == {
        "11.0"
    }  # the latest state
    assert [a.acked for a in sf.emu.outbound.attempts] == [False, True]


def test_duplicates_and_disorder_on_the_fault_switch(listener):
    hear, url = listener
    hear.ack, hear.got[:] = True, []
    sf = connect("full")
    sf.emu.set_outbound(sf.org_id, url, {"Opportunity": ["Name"]})
    sf.emu.outbound.duplicate = sf.emu.outbound.shuffle = True
    ids = [sf.emu.id_map(sf.org_id)[d.id] for d in world("full").crm.deals[:6]]
    for rid in ids:
        sf.send("PATCH", f"/sobjects/Opportunity/{rid}", {"Description": "x"})
    assert sf.emu.flush_outbound() == 6
    assert len(hear.got) == 2 and hear.got[0] == hear.got[1]  # delivered twice
    order = [f["Id"] for _, f in hear.notifications(0)]
    assert sorted(order) == sorted(ids) and order != ids


def test_undelivered_notifications_are_dropped_after_a_day():
    sf = connect("full")
    sf.emu.set_outbound(sf.org_id, "http://127.0.0.1:9/webhooks/salesforce")  # nobody listens
    sf.send(
        "PATCH",
        f"/sobjects/Opportunity/{sf.rows('SELECT Id FROM Opportunity LIMIT 1')[0]['Id']}",
        {"Amount": 1},
    )
    assert sf.emu.flush_outbound() == 0 and sf.emu.outbound.attempts[-1].status is None
    sf.clock.advance(24 * 3600 + 1)
    sf.emu.flush_outbound()
    assert sf.emu.outbound.pending == [] and len(sf.emu.outbound.dropped) == 1
