"""Image references, one grammar for every place that takes one: ``[REGISTRY[:PORT]/]PATH[:TAG][@sha256:DIGEST]``.

The distribution project's grammar (github.com/distribution/reference, regexp.go): path components are lowercase,
a registry is a host name, an IPv4 or a bracketed IPv6 address with an optional port, a tag is up to 128 word
characters, dots and dashes. ``mm image --push`` takes a reference to push to (a tag, no digest);
``mm export kubernetes --image`` one to run (a tag, a digest, or both).
"""

from __future__ import annotations

import re

_DOMAIN_PART = r"(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])"
_PATH_PART = r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*"
REFERENCE = re.compile(
    rf"(?:(?P<domain>{_DOMAIN_PART}(?:\.{_DOMAIN_PART})*(?::[0-9]+)?|\[[0-9a-fA-F:]+\](?::[0-9]+)?)/)?"
    rf"(?P<path>{_PATH_PART}(?:/{_PATH_PART})*)"
    r"(?::(?P<tag>[\w][\w.-]{0,127}))?"
    r"(?:@(?P<digest>sha256:[0-9a-f]{64}))?"
)
MAX_NAME = 255  # the grammar's limit on the name (registry and path)


def match(reference: object) -> re.Match[str] | None:
    """The parts of a valid reference (``domain``, ``path``, ``tag``, ``digest``), or None."""
    if not isinstance(reference, str):
        return None
    found = REFERENCE.fullmatch(reference)
    return found if found is not None and found.end("path") <= MAX_NAME else None
