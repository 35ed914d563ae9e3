"""Keeps secrets out of log lines, exception messages and metadata.

Two layers: every secret the process handles (client secrets, access and refresh tokens) is registered
and masked wherever it appears, and credential-shaped fragments (Authorization headers, token fields
in forms and JSON) are masked even when nobody registered them. Our loggers carry the filter, so a
careless f-string still cannot print a token.
"""

from __future__ import annotations

import logging
import re
import threading

MASK = "***"
MIN_SECRET_LENGTH = 6  # shorter values would mask ordinary words

_PATTERNS = (
    re.compile(r"(?i)\b(bearer|basic|zoho-oauthtoken)\s+[A-Za-z0-9._~+/=-]+"),
    re.compile(
        r"(?i)\b(access_token|refresh_token|id_token|client_secret|code_verifier|code|password)=([^&\s\"']+)"
    ),
    re.compile(
        r"(?i)([\"'](?:access_token|refresh_token|id_token|client_secret)[\"']\s*:\s*)[\"'][^\"']*[\"']"
    ),
)


class Redactor:
    """Masks registered secrets and credential-shaped text."""

    def __init__(self) -> None:
        self._secrets: set[str] = set()
        self._lock = threading.Lock()

    def register(self, *secrets: str | None) -> None:
        with self._lock:
            for s in secrets:
                if s and len(s) >= MIN_SECRET_LENGTH:
                    self._secrets.add(s)

    def __call__(self, text: str) -> str:
        with self._lock:
            secrets = sorted(self._secrets, key=len, reverse=True)
        for s in secrets:
            if s in text:
                text = text.replace(s, MASK)
        text = _PATTERNS[0].sub(lambda m: f"{m.group(1)} {MASK}", text)
        text = _PATTERNS[1].sub(lambda m: f"{m.group(1)}={MASK}", text)
        text = _PATTERNS[2].sub(lambda m: f'{m.group(1)}"{MASK}"', text)
        return text


REDACTOR = Redactor()


def register_secret(*secrets: str | None) -> None:
    """Register values that must never be printed by this process."""
    REDACTOR.register(*secrets)


def redact(text: str) -> str:
    return REDACTOR(str(text))


class RedactingFilter(logging.Filter):
    """Rewrites each record's message through the redactor before any handler formats it."""

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # a bad format string: keep the template only
            message = str(record.msg)
        record.msg = redact(message)
        record.args = None
        return True


_FILTER = RedactingFilter()


def get_logger(name: str) -> logging.Logger:
    """A logger whose records are redacted at the source (filters on a logger do not reach its children)."""
    logger = logging.getLogger(name)
    if _FILTER not in logger.filters:
        logger.addFilter(_FILTER)
    return logger
