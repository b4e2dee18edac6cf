"""The registry's documents, checked on every read: ``mm.json``, ``model.json``, a version's and a stage's record.

Git holds JSON that anyone can edit, and a broken or wrong-typed document must never turn into a traceback deep in
a reader (or, worse, a commit built on it). Each document kind has one checker here; whoever parses a document from
git (the index, a transaction's snapshot, the workspace config, ``fsck``) goes through :func:`parse`, and a problem
becomes a :class:`CorruptRegistryError` that names the file and ``mm fsck``.
"""

from __future__ import annotations

import json
import math
import numbers
import re
from collections.abc import Callable
from typing import Any

from . import layout
from .errors import CorruptRegistryError

SHA256 = re.compile(r"[0-9a-f]{64}")
#: Version document formats this mm_magics reads.
VERSION_FORMATS = (1,)


class _Problem(Exception):
    """A reason a document is malformed (turned into one CorruptRegistryError by :func:`parse`)."""


def _need(cond: bool, what: str) -> None:
    if not cond:
        raise _Problem(what)


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _opt(doc: dict[str, Any], key: str, kinds: type | tuple[type, ...]) -> None:
    if doc.get(key) is not None:
        _need(isinstance(doc[key], kinds), f"{key!r} must be {_kind_name(kinds)}")


def _kind_name(kinds: type | tuple[type, ...]) -> str:
    names = {dict: "an object", list: "a list", str: "a string", int: "a whole number"}
    kinds = kinds if isinstance(kinds, tuple) else (kinds,)
    return " or ".join(names.get(k, k.__name__) for k in kinds)


def check_config(doc: dict[str, Any], _name: str | None = None, _number: int | None = None) -> None:
    fmt = doc.get("format", 1)
    _need(_is_int(fmt) and fmt >= 1, f"'format' must be a positive whole number, not {fmt!r}")
    rows = doc.get("probe_rows", 0)
    _need(_is_int(rows) and rows >= 0, "'probe_rows' must be a whole number >= 0")
    trusted = doc.get("trusted_types", [])
    _need(isinstance(trusted, list) and all(isinstance(t, str) for t in trusted), "'trusted_types' must list strings")
    lc = doc.get("lifecycle") or {}
    _need(isinstance(lc, dict), "'lifecycle' must be an object with stages and edges")
    _need(isinstance(lc.get("stages", []), list), "'lifecycle.stages' must be a list")
    _need(isinstance(lc.get("edges", []), list), "'lifecycle.edges' must be a list")


def check_model(doc: dict[str, Any], name: str | None = None, _number: int | None = None) -> None:
    _need(isinstance(doc.get("name"), str), "'name' must be a string")
    _need(name is None or doc["name"] == name, f"'name' is {doc.get('name')!r} but the file is for {name!r}")
    _need(_is_int(doc.get("latest")) and doc["latest"] >= 0, "'latest' must be a whole number >= 0")
    gates = doc.get("gates", [])
    _need(isinstance(gates, list), "'gates' must be a list")
    for g in gates:
        _need(
            isinstance(g, dict) and isinstance(g.get("expr"), str) and isinstance(g.get("stage", ""), str),
            'each gate must be {"expr": "...", "stage": "..."}',
        )
    card = doc.get("card", {})
    _need(
        isinstance(card, dict) and all(isinstance(v, str) for v in card.values()),
        "'card' must be an object of texts (owner, intended_use, out_of_scope)",
    )
    aliases = doc.get("aliases", {})
    _need(isinstance(aliases, dict), "'aliases' must be an object")
    for alias, number in aliases.items():
        _need(_is_int(number) and number >= 1, f"alias {alias!r} must point at a version number, not {number!r}")


def check_version(doc: dict[str, Any], name: str | None = None, number: int | None = None) -> None:
    _need(isinstance(doc.get("model"), str), "'model' must be a string")
    _need(name is None or doc["model"] == name, f"'model' is {doc.get('model')!r} but the file is for {name!r}")
    _need(_is_int(doc.get("version")), "'version' must be a whole number")
    _need(number is None or doc["version"] == number, f"'version' is {doc.get('version')!r}, the file is v{number}")
    fmt = doc.get("format", 1)
    _need(
        fmt in VERSION_FORMATS and _is_int(fmt), f"'format' {fmt!r} is not one this mm_magics reads {VERSION_FORMATS}"
    )
    art = doc.get("artifact")
    _need(isinstance(art, dict), "'artifact' must be an object")
    _need(
        isinstance(art.get("sha256"), str) and bool(SHA256.fullmatch(art["sha256"])), "'artifact.sha256' is no sha256"
    )
    for key in ("params", "metrics", "data", "schema", "environment", "extra"):
        _opt(doc, key, dict)
    for key in ("project", "probe", "explanation"):
        _opt(doc, key, dict)
    for key in ("created", "message", "actor", "code", "estimator", "task", "parent", "rollback_of"):
        _opt(doc, key, str)
    for key in ("probe", "explanation"):
        meta = doc.get(key)
        if meta is not None:
            _need(isinstance(meta.get("sha256"), str) and bool(SHA256.fullmatch(meta["sha256"])), f"'{key}.sha256'")


def check_stage(doc: dict[str, Any], _name: str | None = None, _number: int | None = None) -> None:
    _need(isinstance(doc.get("stage"), str) and bool(doc["stage"]), "'stage' must be a stage name")
    history = doc.get("history", [])
    _need(isinstance(history, list), "'history' must be a list")
    for h in history:
        _need(isinstance(h, dict) and isinstance(h.get("to"), str), "each history entry needs a 'to' stage")
        _need(isinstance(h.get("gates", []), list), "a history entry's 'gates' must be a list")


CHECKERS: dict[str, Callable[[dict[str, Any], str | None, int | None], None]] = {
    "config": check_config,
    "model": check_model,
    "versions": check_version,
    "stages": check_stage,
}


def parse(path: str, raw: bytes, where: str = "the workspace's git") -> dict[str, Any]:
    """The document at ``path`` as a dict, checked for its kind; damage raises :class:`CorruptRegistryError`."""
    try:
        doc = json.loads(raw)
    except (ValueError, RecursionError) as exc:  # UnicodeDecodeError is a ValueError
        raise corrupt(path, f"is not valid JSON ({type(exc).__name__})", where) from None
    if not isinstance(doc, dict):
        raise corrupt(path, f"holds a JSON {type(doc).__name__}, not an object", where)
    kind, name, number = layout.classify(path)
    checker = CHECKERS.get(kind)
    if checker is not None:
        try:
            checker(doc, name, number)
        except _Problem as exc:
            raise corrupt(path, f"is malformed: {exc}", where) from None
    return doc


def corrupt(path: str, problem: str, where: str = "the workspace's git") -> CorruptRegistryError:
    return CorruptRegistryError(
        f"{path} in {where} {problem}: run `mm fsck` to see every problem, and restore the file from the registry's "
        "history (git -C .mm log -- PATH)"
    )


def finite_number(value: Any) -> bool:
    """A real, finite number (numpy scalars included), never a bool."""
    return isinstance(value, numbers.Real) and not isinstance(value, bool) and math.isfinite(float(value))
