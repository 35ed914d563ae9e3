"""Record ids in each vendor's own format, drawn in bulk so a million of them cost well under a second.

Xero ids are version-4 UUIDs from the world's seeded generator. Zoho ids are 19-digit strings: a
7-digit per-organisation prefix that is distinct for every connection index, then a 12-digit
counter with irregular gaps (as Zoho's own ids grow), so two connections never share an id.
"""

from __future__ import annotations

import numpy as np

_HEX = np.frombuffer(b"0123456789abcdef", dtype=np.uint8)


class XeroIds:
    """Version-4 UUID strings from a seeded numpy Generator, produced in batches."""

    def __init__(self, rng: np.random.Generator, batch: int = 4096) -> None:
        self._rng = rng
        self._batch = batch
        self._pool: list[str] = []

    def many(self, n: int) -> list[str]:
        raw = self._rng.integers(0, 256, size=(n, 16), dtype=np.uint8)
        raw[:, 6] = (raw[:, 6] & 0x0F) | 0x40  # version 4
        raw[:, 8] = (raw[:, 8] & 0x3F) | 0x80  # RFC 4122 variant
        chars = np.empty((n, 36), dtype=np.uint8)
        hexes = np.empty((n, 32), dtype=np.uint8)
        hexes[:, 0::2] = _HEX[raw >> 4]
        hexes[:, 1::2] = _HEX[raw & 0x0F]
        chars[:, 0:8] = hexes[:, 0:8]
        chars[:, 9:13] = hexes[:, 8:12]
        chars[:, 14:18] = hexes[:, 12:16]
        chars[:, 19:23] = hexes[:, 16:20]
        chars[:, 24:36] = hexes[:, 20:32]
        chars[:, [8, 13, 18, 23]] = ord("-")
        text = chars.tobytes().decode("ascii")
        return [text[i : i + 36] for i in range(0, 36 * n, 36)]

    def one(self) -> str:
        if not self._pool:
            self._pool = self.many(self._batch)
            self._pool.reverse()
        return self._pool.pop()


def zoho_prefix(seed: int, index: int) -> int:
    """A 7-digit organisation prefix: a bijection of the connection index (mod 9,000,000), offset by seed."""
    return 1_000_000 + (index * 7_919 + seed * 104_729 + 4_725_767) % 9_000_000


class ZohoIds:
    """19-digit numeric strings: prefix, then a growing 12-digit counter with small irregular gaps."""

    _GAPS = (1, 3, 1, 2, 7, 1, 1, 4, 2, 1, 9, 1, 3, 1, 1, 5)

    def __init__(self, seed: int, index: int, start: int = 400_000) -> None:
        self._base = zoho_prefix(seed, index) * 10**12
        self._n = start
        self._k = 0

    def one(self) -> str:
        self._n += self._GAPS[self._k & 15]
        self._k += 1
        return str(self._base + self._n)

    def many(self, n: int) -> list[str]:
        return [self.one() for _ in range(n)]
