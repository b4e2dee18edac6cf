"""The engine's one clock: timezone-aware UTC, so every record (versions, transitions, deployments) compares."""

from __future__ import annotations

from datetime import UTC, datetime


def utcnow() -> datetime:
    return datetime.now(UTC)


def now_iso() -> str:
    """Now as ISO 8601 with microseconds (the stamp every record carries)."""
    return utcnow().isoformat(timespec="microseconds")


def timestamp_of(stamp: object) -> float | None:
    """Unix seconds of an ISO 8601 stamp this clock wrote (a naive one is taken as UTC); None if it is not one."""
    if not isinstance(stamp, str) or not stamp:
        return None
    try:
        parsed = datetime.fromisoformat(stamp.replace("Z", "+00:00"))
    except ValueError:
        return None
    return (parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)).timestamp()
