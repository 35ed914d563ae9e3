"""Outbound Messages: on a change to a watched object, a SOAP `notifications` message to the configured URL.

Facts (notes B.5): up to 100 notifications per message; each carries the record's latest state (the
fields the message was set up with), not the change; the listener must answer `<Ack>true</Ack>`;
unacknowledged notifications are retried with exponential back-off (up to 2 hours between tries) for 24
hours and then dropped; messages can arrive out of order and more than once, so listeners de-duplicate
on the notification Id. Back-off runs on the sandbox clock; `retry_scale` compresses it for a served
sandbox (0.001 turns 2 hours into 7 seconds).

Fault switches for tests: `duplicate` sends every acknowledged message a second time, `shuffle` sends the
notifications of a message in a seeded random order.
"""

from __future__ import annotations

import random
import threading
import xml.etree.ElementTree as ET
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import requests

from xz_pipeline.sandbox.clock import Clock
from xz_pipeline.sandbox.salesforce.wire import to_json

SOAPENV = "http://schemas.xmlsoap.org/soap/envelope/"
OUTBOUND = "http://soap.sforce.com/2005/09/outbound"
SOBJECT_NS = "urn:sobject.enterprise.soap.sforce.com"
XSI = "http://www.w3.org/2001/XMLSchema-instance"
BATCH = 100
FIRST_RETRY = timedelta(seconds=15)
MAX_BACKOFF = timedelta(hours=2)
GIVE_UP = timedelta(hours=24)
TIMEOUT_S = 10.0
DEFAULT_FIELDS = {
    "Opportunity": ["Id", "Name", "AccountId", "StageName", "Amount", "CloseDate", "IsWon", "IsClosed",
                    "LastModifiedDate"],
    "Account": ["Id", "Name", "LastModifiedDate"],
}  # fmt: skip


@dataclass
class Rule:
    org_id: str
    url: str
    objects: dict[str, list[str]]
    action_id: str
    instance_url: str


@dataclass
class Notification:
    id: str
    org_id: str
    sobject: str
    record_id: str
    queued: datetime
    attempts: int = 0
    next_try: datetime | None = None


@dataclass
class Attempt:
    time: datetime
    url: str
    notifications: int
    status: int | None
    acked: bool
    error: str = ""


@dataclass
class OutboundSender:
    clock: Clock
    rules: dict[str, Rule] = field(default_factory=dict)  # org id -> rule
    pending: list[Notification] = field(default_factory=list)
    attempts: list[Attempt] = field(default_factory=list)
    bodies: list[bytes] = field(default_factory=list)  # every message sent, acknowledged or not
    dropped: list[Notification] = field(default_factory=list)
    retry_scale: float = 1.0
    duplicate: bool = False
    shuffle: bool = False
    seed: int = 7
    _mint: dict[str, Any] = field(default_factory=dict)
    _lock: threading.RLock = field(default_factory=threading.RLock)
    _flush_lock: threading.Lock = field(default_factory=threading.Lock)
    _session: requests.Session = field(default_factory=requests.Session)

    def configure(self, org: Any, url: str, objects: dict[str, list[str]] | None = None) -> None:
        with self._lock:
            self._mint[org.org_id] = org.mint
            chosen = {
                o: list(dict.fromkeys(["Id", *fields])) for o, fields in (objects or DEFAULT_FIELDS).items()
            }
            self.rules[org.org_id] = Rule(org.org_id, url, chosen, org.mint.next("WorkflowOutboundMessage"),
                                          org.instance_url)  # fmt: skip

    def changed(self, org: Any, changes: list[tuple[str, str]], now: datetime) -> None:
        """Called under the emulator lock after a request: each changed watched record, once per request."""
        with self._lock:
            rule = self.rules.get(org.org_id)
            if rule is None:
                return
            seen = set()
            for sobject, rid in changes:
                if sobject not in rule.objects or (sobject, rid) in seen:
                    continue
                seen.add((sobject, rid))
                rec = org.records[sobject].get(rid)
                if rec is None or rec["IsDeleted"]:
                    continue  # workflow rules fire on create and edit, not on delete
                self.pending.append(
                    Notification(org.mint.next("Notification"), org.org_id, sobject, rid, now)
                )

    def envelope(self, rule: Rule, batch: list[tuple[Notification, dict]]) -> bytes:
        ET.register_namespace("soapenv", SOAPENV)
        ET.register_namespace("xsi", XSI)
        ET.register_namespace("sf", SOBJECT_NS)
        env = ET.Element(f"{{{SOAPENV}}}Envelope")
        body = ET.SubElement(env, f"{{{SOAPENV}}}Body")
        notes = ET.SubElement(body, f"{{{OUTBOUND}}}notifications")
        for tag, text in (("OrganizationId", rule.org_id), ("ActionId", rule.action_id)):
            ET.SubElement(notes, f"{{{OUTBOUND}}}{tag}").text = text
        ET.SubElement(notes, f"{{{OUTBOUND}}}SessionId", {f"{{{XSI}}}nil": "true"})
        base = rule.instance_url
        ET.SubElement(
            notes, f"{{{OUTBOUND}}}EnterpriseUrl"
        ).text = f"{base}/services/Soap/c/59.0/{rule.org_id[:15]}"
        ET.SubElement(
            notes, f"{{{OUTBOUND}}}PartnerUrl"
        ).text = f"{base}/services/Soap/u/59.0/{rule.org_id[:15]}"
        for note, rec in batch:
            n = ET.SubElement(notes, f"{{{OUTBOUND}}}Notification")
            ET.SubElement(n, f"{{{OUTBOUND}}}Id").text = note.id
            obj = ET.SubElement(n, f"{{{OUTBOUND}}}sObject", {f"{{{XSI}}}type": f"sf:{note.sobject}"})
            for name in rule.objects[note.sobject]:
                value = to_json(rec.get(name))
                if value is None:
                    continue
                ET.SubElement(obj, f"{{{SOBJECT_NS}}}{name}").text = (str(value).lower() if isinstance(value, bool)
                                                                      else str(value))  # fmt: skip
        return b'<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(
            env, encoding="utf-8", xml_declaration=False
        )

    @staticmethod
    def acknowledged(text: bytes) -> bool:
        try:
            root = ET.fromstring(text)
        except ET.ParseError:
            return False
        ack = next((el for el in root.iter() if el.tag.rsplit("}", 1)[-1] == "Ack"), None)
        return ack is not None and (ack.text or "").strip().lower() == "true"

    def _backoff(self, attempts: int) -> timedelta:
        return min(FIRST_RETRY * 2 ** (attempts - 1), MAX_BACKOFF) * self.retry_scale

    def flush(self, snapshot: Callable[[str, str, str], dict | None]) -> int:
        """Send what is due, per org, up to 100 notifications a message; returns notifications acknowledged."""
        acked_total = 0
        with self._flush_lock:
            now = self.clock.now()
            with self._lock:
                for note in [n for n in self.pending if now - n.queued > GIVE_UP * self.retry_scale]:
                    self.pending.remove(note)
                    self.dropped.append(note)
                due = [n for n in self.pending if n.next_try is None or n.next_try <= now]
                by_org: dict[str, list[Notification]] = {}
                for n in due:
                    by_org.setdefault(n.org_id, []).append(n)
            for org_id, notes in by_org.items():
                rule = self.rules.get(org_id)
                if rule is None:
                    continue
                if self.shuffle:
                    random.Random(f"{self.seed}:{len(self.attempts)}").shuffle(notes)
                for start in range(0, len(notes), BATCH):
                    chunk = notes[start : start + BATCH]
                    batch = [(n, snapshot(org_id, n.sobject, n.record_id) or {}) for n in chunk]
                    body = self.envelope(rule, batch)
                    acked = self._post(rule.url, body, len(chunk))
                    with self._lock:
                        for n in chunk:
                            if acked:
                                if n in self.pending:
                                    self.pending.remove(n)
                            else:
                                n.attempts += 1
                                n.next_try = self.clock.now() + self._backoff(n.attempts)
                    if acked:
                        acked_total += len(chunk)
                        if self.duplicate:
                            self._post(rule.url, body, len(chunk))
        return acked_total

    def _post(self, url: str, body: bytes, count: int) -> bool:
        try:
            resp = self._session.post(url, data=body, timeout=TIMEOUT_S,
                                      headers={"Content-Type": "text/xml; charset=utf-8", "SOAPAction": '""'})  # fmt: skip
            status, error, acked = (
                resp.status_code,
                "",
                resp.status_code == 200 and self.acknowledged(resp.content),
            )
        except requests.RequestException as exc:
            status, error, acked = None, type(exc).__name__, False
        with self._lock:
            self.bodies.append(body)
            self.attempts.append(Attempt(self.clock.now(), url, count, status, acked, error))
        return acked
