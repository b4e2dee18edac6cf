"""The engine's one clock: timezone-aware UTC, so every record (versions, transitions, deployments) compares."""

from __future__ import annotations

from datetime import UTC, datetime


def utcnow() -> datetime:
    return datetime.now(UTC)


def now_iso() -> str:
    """Now as ISO 8601 with microseconds (the stamp every record carries)."""
    return utcnow().isoformat(timespec="microseconds")
