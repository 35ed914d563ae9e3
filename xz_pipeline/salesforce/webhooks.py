"""Salesforce Outbound Messages: the SOAP `notifications` a workflow rule or flow posts, and the `Ack`.

A message carries up to 100 `Notification`s, each with its own Id and the record's latest state (at least
its Id). Salesforce retries a message it did not see acknowledged for 24 hours, with back-off, so one may
arrive twice, late or out of order: each notification is stored under its Notification Id (the inbox keeps
one row per id) and a targeted run reads the record itself, so only its latest state lands. Outbound
Messages are not sent for deletions: those come from the replication API (`/deleted/`).

The body is parsed with the standard library; a document type declaration (the door to entity
expansion) is refused before parsing, and the receiver caps the body's size.
"""

from __future__ import annotations

import hmac
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from datetime import datetime

from xz_pipeline.salesforce.dates import parse_sf_datetime

SOAP_ENV = "http://schemas.xmlsoap.org/soap/envelope/"
OUTBOUND = "http://soap.sforce.com/2005/09/outbound"
XSI = "http://www.w3.org/2001/XMLSchema-instance"
# sObject types -> the asset that mirrors them (others are acknowledged, not stored).
ASSET_BY_SOBJECT = {
    "Account": "salesforce_accounts",
    "Contact": "salesforce_contacts",
    "Opportunity": "salesforce_opportunities",
    "OpportunityLineItem": "salesforce_opportunity_line_items",
    "Product2": "salesforce_products",
}
MAX_NOTIFICATIONS = 100  # Salesforce sends at most 100 a message
URL_SECRET_PARAM = "token"

ACK = (
    '<?xml version="1.0" encoding="UTF-8"?>'
    f'<soapenv:Envelope xmlns:soapenv="{SOAP_ENV}"><soapenv:Body>'
    f'<notificationsResponse xmlns="{OUTBOUND}"><Ack>true</Ack></notificationsResponse>'
    "</soapenv:Body></soapenv:Envelope>"
).encode()


class OutboundMessageError(ValueError):
    """A body that is not an Outbound Message."""


@dataclass(frozen=True)
class Notification:
    notification_id: str
    sobject: str
    record_id: str
    modified: datetime | None

    @property
    def asset(self) -> str | None:
        return ASSET_BY_SOBJECT.get(self.sobject)


@dataclass(frozen=True)
class OutboundMessage:
    organization_id: str
    action_id: str
    notifications: tuple[Notification, ...]

    def dedupe_key(self, n: Notification) -> str:
        """The same notification, retried, has the same key (its Id is unique within the org)."""
        return f"salesforce:{self.organization_id[:15]}:{n.notification_id}"


def _local(tag: str) -> str:
    return tag.rsplit("}", 1)[-1]


def _child(el: ET.Element, name: str) -> ET.Element | None:
    return next((c for c in el if _local(c.tag) == name), None)


def _text(el: ET.Element | None) -> str:
    return (el.text or "").strip() if el is not None else ""


def parse_message(body: bytes) -> OutboundMessage:
    """The notifications of one SOAP Outbound Message; OutboundMessageError when it is not one."""
    head = body[:2048].lower()
    if b"<!doctype" in head or b"<!entity" in body.lower():
        raise OutboundMessageError("a document type declaration is not accepted")
    try:
        root = ET.fromstring(body)
    except ET.ParseError as exc:
        raise OutboundMessageError(f"not XML: {exc}") from None
    if _local(root.tag) != "Envelope":
        raise OutboundMessageError("not a SOAP envelope")
    soap_body = _child(root, "Body")
    notes = _child(soap_body, "notifications") if soap_body is not None else None
    if notes is None:
        raise OutboundMessageError("no notifications element")
    org = _text(_child(notes, "OrganizationId"))
    if not org:
        raise OutboundMessageError("no OrganizationId")
    found = []
    for n in notes:
        if _local(n.tag) != "Notification":
            continue
        nid, obj = _text(_child(n, "Id")), _child(n, "sObject")
        if not nid or obj is None:
            raise OutboundMessageError("a Notification without its Id or sObject")
        sobject = (obj.get(f"{{{XSI}}}type") or "").rsplit(":", 1)[-1]
        record = _text(_child(obj, "Id"))
        if not sobject or not record:
            raise OutboundMessageError("a Notification whose sObject has no type or Id")
        stamp = _text(_child(obj, "SystemModstamp")) or _text(_child(obj, "LastModifiedDate"))
        try:
            modified = parse_sf_datetime(stamp) if stamp else None
        except ValueError:
            modified = None
        found.append(Notification(nid, sobject, record, modified))
    if len(found) > MAX_NOTIFICATIONS:
        raise OutboundMessageError(f"more than {MAX_NOTIFICATIONS} notifications in one message")
    return OutboundMessage(org, _text(_child(notes, "ActionId")), tuple(found))


def same_org(a: str, b: str) -> bool:
    """Org ids compare on their 15-character case-sensitive form (an 18-character id adds a checksum)."""
    return bool(a) and bool(b) and hmac.compare_digest(a[:15], b[:15])


def same_secret(expected: str, given: str | None) -> bool:
    return hmac.compare_digest(expected.encode(), (given or "").encode())
