"""InfluxDB line protocol for monitoring records: request, feedback, metric and alert points, escaped exactly.

Pure string building, no influxdb-client import: the sink (and anything else that speaks the protocol) hands
finished lines to the client, which is the fastest way to send them (building ``Point`` objects costs 5x more).

Data model (line protocol; timestamps in microseconds, ``WritePrecision.US``: a float of unix seconds holds no more)
---------------------------------------------------------------------------------------------------------------------
======================  =========================================  ==========================================
record ``kind``          measurement and tags                        fields
======================  =========================================  ==========================================
``request``             ``mm_request`` deployment, model, status,   ``latency_ms``, ``queue_ms``,
                        version                                     ``processing_ms``, ``network_ms`` (only when
                                                                    the client reported it) — floats, rounded
                                                                    to the ns;
                                                                    ``batch_size``, ``rows`` — integers
``feedback``            ``mm_feedback`` model, version              ``count`` = 1 (so a feedback with no score
                                                                    still lands), ``correct`` 0/1 (integer),
                                                                    ``abs_error`` (float)
``metric``              ``mm_metric`` feature, model, name,         ``value`` (float)
                        version
``alert``               ``mm_alert`` model, rule, severity,         ``message`` (string), ``active`` = 1
                        version                                     (integer: servers that keep only numbers,
                                                                    like VictoriaMetrics, still see the alert)
======================  =========================================  ==========================================

Tags are the low-cardinality identity of a series (what a dashboard groups by); everything measured is a field, and a
field keeps one type forever (InfluxDB rejects a batch whose field changes type), so floats are always written as
floats and counts always as integers. Missing or ``None`` values are left out (a tag is omitted, a field skipped);
non-finite floats are skipped (line protocol has no NaN). A record with no field left is dropped and counted.
Optional static tags (``INFLUXDB_V2_TAG_*`` as the client reads them, or ``"tags"`` in the local settings, e.g.
``host``) are added to every point. Escaping follows the line-protocol rules: in tag keys and values ``,``, ``=``,
space and ``\\`` are backslash-escaped (the official client leaves ``\\`` alone, which breaks a value ending in a
backslash); in string fields ``"`` and ``\\``. Newlines, tabs and carriage returns become ``\\n``, ``\\t``, ``\\r``
everywhere, so one point is always exactly one line — the spool below relies on it.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Mapping
from typing import Any

_ESC_KEY = str.maketrans({"\\": "\\\\", ",": r"\,", "=": r"\=", " ": r"\ ", "\n": r"\n", "\t": r"\t", "\r": r"\r"})
_ESC_STRING = str.maketrans({"\\": "\\\\", '"': r"\"", "\n": r"\n", "\t": r"\t", "\r": r"\r"})

# The tag part of a line (",deployment=…,model=…,status=…,version=…") is the same for almost every point of a
# series, so it is built once per distinct tag set and reused: conversion is the sink's hot path (it runs on the
# caller's thread). Bounded: cleared when it grows past _TAGSET_MAX entries (a high-cardinality tag still works).
_TAGSETS: dict[tuple[Any, ...], str] = {}
_TAGSET_MAX = 10_000

ExtraTags = tuple[tuple[str, str], ...]


def _tag(value: Any) -> str | None:
    if value is None:
        return None
    text = str(value)
    return text.translate(_ESC_KEY) if text else None


def _tagset(names: tuple[str, ...], values: tuple[Any, ...], extra: ExtraTags) -> str:
    key = (names, values, extra)
    try:
        cached = _TAGSETS.get(key)
    except TypeError:  # an unhashable tag value: build it every time
        cached, key = None, None
    if cached is not None:
        return cached
    pairs = [(k, v) for k, raw in zip(names, values, strict=True) if (v := _tag(raw)) is not None]
    if extra:
        present = {k for k, _ in pairs}
        pairs.extend(p for p in extra if p[0] not in present)
        pairs.sort()  # InfluxDB's recommended order (each kind lists its own tags sorted already)
    text = "".join(f",{k}={v}" for k, v in pairs)
    if key is not None:
        if len(_TAGSETS) >= _TAGSET_MAX:
            _TAGSETS.clear()
        _TAGSETS[key] = text
    return text


def _float(value: Any) -> str | None:
    """A float field (shortest round-trip repr), or None when missing or not finite (line protocol has no NaN)."""
    if value is None:
        return None
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return repr(number) if math.isfinite(number) else None


def _ms(seconds: Any) -> str | None:
    """Seconds as milliseconds with nanosecond resolution: ``0.3`` rather than ``0.30000000000000004``.

    Float noise would show on dashboards, and servers that keep ~12 significant digits (VictoriaMetrics) round it
    anyway. ``round(ns) / 1e6`` is correctly rounded, so its repr is the short decimal; ``round(x, 6)`` is 4x slower.
    """
    if seconds is None:
        return None
    try:
        return repr(round(float(seconds) * 1e9) / 1e6)
    except (TypeError, ValueError, OverflowError):  # not a number, NaN, infinity
        return None


def _int(value: Any) -> str | None:
    if value is None:
        return None
    try:
        return f"{int(value)}i"
    except (TypeError, ValueError, OverflowError):
        return None


def _string(value: Any) -> str | None:
    return None if value is None else '"' + str(value).translate(_ESC_STRING) + '"'


def _timestamp(value: Any) -> int:
    """Microseconds since the epoch: a float of unix seconds (~1.7e9) resolves ~0.24 µs, so µs is exact, ns is not."""
    if value is None:
        return time.time_ns() // 1000
    return round(float(value) * 1e6)


def _fields(*pairs: tuple[str, str | None]) -> str:
    return ",".join([f"{k}={v}" for k, v in pairs if v is not None])


_REQUEST_TAGS = ("deployment", "model", "status", "version")
_REQUEST_MS = (
    ("total_s", "latency_ms"),
    ("queue_s", "queue_ms"),
    ("proc_s", "processing_ms"),
    ("network_s", "network_ms"),
)
_FEEDBACK_TAGS = ("model", "version")
_METRIC_TAGS = ("feature", "model", "name", "version")
_ALERT_TAGS = ("model", "rule", "severity", "version")


def _request(rec: Mapping[str, Any], extra: ExtraTags) -> str | None:
    # written out by hand (not through _fields): this runs once per served request
    get = rec.get
    parts = []
    for key, name in _REQUEST_MS:
        if (text := _ms(get(key))) is not None:
            parts.append(f"{name}={text}")
    for key in ("batch_size", "rows"):
        if (text := _int(get(key))) is not None:
            parts.append(f"{key}={text}")
    if not parts:
        return None
    tags = _tagset(_REQUEST_TAGS, (get("deployment"), get("model"), get("status"), get("version")), extra)
    return f"mm_request{tags} {','.join(parts)} {_timestamp(get('time'))}"


def _feedback(rec: Mapping[str, Any], extra: ExtraTags) -> str | None:
    get = rec.get
    fields = _fields(("count", "1i"), ("correct", _int(get("correct"))), ("abs_error", _float(get("abs_error"))))
    tags = _tagset(_FEEDBACK_TAGS, (get("model"), get("version")), extra)
    return f"mm_feedback{tags} {fields} {_timestamp(get('time'))}"


def _metric(rec: Mapping[str, Any], extra: ExtraTags) -> str | None:
    get = rec.get
    value = _float(get("value"))
    if value is None:
        return None
    tags = _tagset(_METRIC_TAGS, (get("feature"), get("model"), get("name"), get("version")), extra)
    return f"mm_metric{tags} value={value} {_timestamp(get('time'))}"


def _alert(rec: Mapping[str, Any], extra: ExtraTags) -> str | None:
    get = rec.get
    fields = _fields(("active", "1i"), ("message", _string(get("message"))))
    tags = _tagset(_ALERT_TAGS, (get("model"), get("rule"), get("severity"), get("version")), extra)
    return f"mm_alert{tags} {fields} {_timestamp(get('time'))}"


KINDS: dict[str, Callable[[Mapping[str, Any], ExtraTags], str | None]] = {
    "request": _request,
    "feedback": _feedback,
    "metric": _metric,
    "alert": _alert,
}


def to_line(record: Mapping[str, Any], extra_tags: Mapping[str, Any] | None = None) -> str | None:
    """One record as one line of line protocol (µs timestamps), or None when it has no field to write.

    Raises ValueError for an unknown ``kind``. ``extra_tags`` are added unless the record sets the same tag.
    """
    convert = KINDS.get(record.get("kind"))  # type: ignore[arg-type]
    if convert is None:
        raise ValueError(f"unknown monitoring record kind {record.get('kind')!r}: use one of {sorted(KINDS)}")
    return convert(record, normalize_tags(extra_tags))


def normalize_tags(tags: Mapping[str, Any] | None) -> ExtraTags:
    if not tags:
        return ()
    return tuple(sorted((str(k).translate(_ESC_KEY), v) for k, raw in tags.items() if (v := _tag(raw)) is not None))
