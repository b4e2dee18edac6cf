"""Request ids: UUIDv7 (RFC 9562), time-ordered, as 32 hex digits.

Every served request is logged under its id and looked up by it when ground truth arrives, so the metric store
indexes it. Random ids (UUIDv4) land on a random page of that index for every insert: under load each flush
dirtied hundreds of index pages and SQLite ingest ran at ~110k rows/s; ids that grow with time append at the
index's right edge (~280k rows/s, ``benchmarks/monitoring.py``). The 74 random bits keep ids from different
processes, or from the same millisecond, apart. Python 3.14 has ``uuid.uuid7``; we support 3.11.
"""

from __future__ import annotations

import os
import time

_VERSION = 0x7 << 76
_VARIANT = 0b10 << 62
_RAND_A = 0xFFF  # 12 bits after the version nibble
_RAND_B = (1 << 62) - 1


def new_request_id(millis: int | None = None) -> str:
    """A fresh UUIDv7 in hex: 48 bits of Unix milliseconds (now, unless given), version, 74 random bits, variant."""
    if millis is None:
        millis = time.time_ns() // 1_000_000
    rand = int.from_bytes(os.urandom(10))
    value = (millis << 80) | _VERSION | ((rand >> 62) & _RAND_A) << 64 | _VARIANT | (rand & _RAND_B)
    return f"{value:032x}"
