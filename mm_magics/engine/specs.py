"""Names and version specs: ``NAME``, ``NAME@vN``, ``NAME@ALIAS``.

Names end up in git ref names and file paths, so the rules are those both accept, kept strict and simple.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from .errors import SpecError

# fullmatch, never match with ``$``: ``$`` also matches before a trailing newline, so ``"iris\n"`` would pass
_NAME = re.compile(r"[A-Za-z][A-Za-z0-9_.-]{0,63}")
_VERSION = re.compile(r"v([1-9][0-9]{0,8})")  # no leading zeros: iris@v01 and iris@v1 must not both name v1
_ALIAS = re.compile(r"[A-Za-z][A-Za-z0-9_-]{0,63}")
LATEST = "latest"


def check_name(name: str) -> str:
    """Return ``name`` if it can be a model name, else raise a :class:`SpecError` that says what is allowed."""
    if not isinstance(name, str) or not _NAME.fullmatch(name) or ".." in name or name.endswith((".", ".lock")):
        shown = repr(name) if len(repr(name)) <= 80 else repr(name)[:60] + "..."
        raise SpecError(
            f"invalid model name {shown}: use a letter followed by up to 63 letters, digits, '_', '-' or '.' "
            "(e.g. iris_clf)"
        )
    return name


def looks_like_version(ref: str) -> bool:
    """``v``, ``v3``, ``v-1``, ``v01``, ``v2b``: text that reads as a version number, so it can never be an alias."""
    return ref == "v" or (ref[:1] == "v" and ref[1:2] != "" and ref[1:2] in "-+0123456789")


def check_alias(alias: str) -> str:
    if not isinstance(alias, str) or not _ALIAS.fullmatch(alias) or looks_like_version(alias) or alias == LATEST:
        shown = repr(alias) if len(repr(alias)) <= 80 else repr(alias)[:60] + "..."
        raise SpecError(
            f"invalid alias {shown}: use a letter followed by letters, digits, '_' or '-', "
            "not 'latest' and not of the form vN (e.g. production)"
        )
    return alias


@dataclass(frozen=True)
class VersionSpec:
    """A parsed reference to a version: exactly one of ``number`` and ``alias`` is set, or neither (latest)."""

    name: str
    number: int | None = None
    alias: str | None = None

    def __str__(self) -> str:
        if self.number is not None:
            return f"{self.name}@v{self.number}"
        if self.alias is not None:
            return f"{self.name}@{self.alias}"
        return self.name


def version_id(name: str, number: int) -> str:
    return f"{name}@v{number}"


def parse_spec(text: str) -> VersionSpec:
    """Parse ``NAME``, ``NAME@vN``, ``NAME@latest`` or ``NAME@ALIAS``."""
    if not isinstance(text, str) or not text.strip():
        raise SpecError("empty version: expected NAME, NAME@vN or NAME@ALIAS (e.g. iris@v3, iris@production)")
    text = text.strip(" ")  # spaces around a spec typed by hand are harmless; a newline or tab is not a name
    if len(text) > 200:
        text = text[:60] + "..."
    name, sep, ref = text.partition("@")
    try:
        check_name(name)
    except SpecError:
        raise SpecError(
            f"malformed version {text!r}: expected NAME, NAME@vN or NAME@ALIAS (e.g. iris@v3, iris@production)"
        ) from None
    if not sep:
        return VersionSpec(name)
    if ref == LATEST:
        return VersionSpec(name)
    m = _VERSION.fullmatch(ref)
    if m:
        return VersionSpec(name, number=int(m.group(1)))
    if looks_like_version(ref):
        raise SpecError(
            f"malformed version {text!r}: version numbers are v1, v2, ... with no sign or leading zero (e.g. {name}@v3)"
        )
    try:
        return VersionSpec(name, alias=check_alias(ref))
    except SpecError:
        raise SpecError(
            f"malformed version {text!r}: after '@' put vN (a number, e.g. {name}@v3) or an alias "
            f"(e.g. {name}@production)"
        ) from None
