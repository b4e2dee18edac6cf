"""Names and version specs: ``NAME``, ``NAME@vN``, ``NAME@ALIAS``.

Names end up in git ref names and file paths, so the rules are those both accept, kept strict and simple.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from .errors import SpecError

_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_.-]{0,63}$")
_VERSION = re.compile(r"^v(\d{1,9})$")
_ALIAS = re.compile(r"^[A-Za-z][A-Za-z0-9_-]{0,63}$")
LATEST = "latest"


def check_name(name: str) -> str:
    """Return ``name`` if it can be a model name, else raise a :class:`SpecError` that says what is allowed."""
    if not isinstance(name, str) or not _NAME.match(name) or ".." in name or name.endswith((".", ".lock")):
        raise SpecError(
            f"invalid model name {name!r}: use a letter followed by up to 63 letters, digits, '_', '-' or '.' "
            "(e.g. iris_clf)"
        )
    return name


def check_alias(alias: str) -> str:
    if not isinstance(alias, str) or not _ALIAS.match(alias) or re.fullmatch(r"v\d*", alias) or alias == LATEST:
        raise SpecError(
            f"invalid alias {alias!r}: use a letter followed by letters, digits, '_' or '-', "
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
    text = text.strip()
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
    m = _VERSION.match(ref)
    if m:
        number = int(m.group(1))
        if number < 1:
            raise SpecError(f"malformed version {text!r}: version numbers start at v1")
        return VersionSpec(name, number=number)
    if _ALIAS.match(ref) and not re.fullmatch(r"v\d*", ref):
        return VersionSpec(name, alias=ref)
    raise SpecError(
        f"malformed version {text!r}: after '@' put vN (a number, e.g. {name}@v3) or an alias (e.g. {name}@production)"
    )
