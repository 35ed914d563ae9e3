"""Salesforce record ids: 15 case-sensitive characters (a 3-character key prefix naming the object, then the
pod and a sequence), and the 18-character form with a case-folding checksum that every API answer carries.

The checksum: each 5-character chunk of the 15 gives a 5-bit number whose bit i is set when character i
of the chunk is an upper-case letter; that number indexes "A..Z0..5". Ids are minted per org from a
counter per key prefix, so the same world always gets the same ids.
"""

from __future__ import annotations

import hashlib
import string

KEY_PREFIXES = {
    "Organization": "00D",
    "User": "005",
    "Account": "001",
    "Contact": "003",
    "Opportunity": "006",
    "OpportunityLineItem": "00k",
    "Product2": "01t",
    "Pricebook2": "01s",
    "PricebookEntry": "01u",
    "OpportunityStage": "01J",
    "CustomField": "00N",
    "QueryLocator": "01g",
    "Notification": "04l",
    "WorkflowOutboundMessage": "04k",
}
BY_PREFIX = {v: k for k, v in KEY_PREFIXES.items()}
BASE62 = string.digits + string.ascii_uppercase + string.ascii_lowercase
_SUFFIX = string.ascii_uppercase + "012345"


def checksum(id15: str) -> str:
    out = ""
    for chunk in range(3):
        bits = 0
        for i, ch in enumerate(id15[chunk * 5 : chunk * 5 + 5]):
            if "A" <= ch <= "Z":
                bits |= 1 << i
        out += _SUFFIX[bits]
    return out


def to18(rid: str) -> str:
    """The 18-character form of a 15- or 18-character id ("" when it is neither)."""
    if len(rid) == 18 and all(c in BASE62 for c in rid):
        base = rid[:15]
        return base + checksum(base) if rid[15:].upper() == checksum(base).upper() else ""
    if len(rid) == 15 and all(c in BASE62 for c in rid):
        return rid + checksum(rid)
    return ""


def sobject_of(rid: str) -> str:
    """The object an id's key prefix names ("" when unknown)."""
    return BY_PREFIX.get(rid[:3], "")


def _base62(n: int, width: int) -> str:
    digits = ""
    while n:
        n, r = divmod(n, 62)
        digits = BASE62[r] + digits
    return digits.rjust(width, "0")


class IdMint:
    """Ids for one org: prefix + 2-character pod + "0" + a 9-digit base-62 sequence, per key prefix."""

    def __init__(self, seed_text: str) -> None:
        digest = int(hashlib.sha256(seed_text.encode()).hexdigest(), 16)
        self.pod = _base62(digest % (62 * 62), 2)
        self._start = digest % 1_000_000
        self._next: dict[str, int] = {}

    def next(self, sobject: str) -> str:
        prefix = KEY_PREFIXES[sobject]
        n = self._next.get(prefix, self._start)
        self._next[prefix] = n + 1
        id15 = prefix + self.pod + "0" + _base62(n + 7 * 62**5, 9)
        return id15 + checksum(id15)
