"""HTML for engine records in notebooks (``_repr_html_``). Pure string building: imports nothing notebook-related."""

from __future__ import annotations

import html
from typing import Any


def to_html(obj: Any) -> str:
    return f"<pre class='mm-record'>{html.escape(str(obj))}</pre>"
