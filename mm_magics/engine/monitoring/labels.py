"""What a ground-truth label may be: one value per row of the request it labels, each a string, a whole number, a
finite number or a boolean (a request of several rows takes a list of them). Anything else is refused where
feedback comes in (the feedback route with a 422, ``Monitor.record_feedback`` with a one-line error): a ``null``,
``Infinity`` or nested list silently joined the live scores before, and one garbage label moved a live F1."""

from __future__ import annotations

import math
from typing import Any


def label_problem(labels: list[Any]) -> str | None:
    """The first problem with ``labels`` (one per request id), in one line naming the fix, or None."""
    for i, label in enumerate(labels):
        values = label if isinstance(label, list) else [label]
        if not values:
            return f"label {i} is an empty list: give the true value of each row of that request"
        for value in values:
            problem = _value_problem(value)
            if problem:
                return f"label {i} {problem}: send a string, a number or a boolean per row"
    return None


def _value_problem(value: Any) -> str | None:
    if value is None:
        return "is null (no ground truth yet? send it once it is known)"
    if isinstance(value, (list, dict)):
        return f"holds a {type(value).__name__} inside a row's value"
    if isinstance(value, float) and not math.isfinite(value):
        return f"is {value}, not a finite number"
    if not isinstance(value, (str, int, float, bool)):
        return f"is a {type(value).__name__}"
    return None
