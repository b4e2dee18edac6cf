"""A model's version history as one compact, columnar payload: what a timeline view draws, for any face.

The widgets and the JupyterLab panel draw the version DAG on a time axis with stage colours, aliases and one metric
per version, for up to tens of thousands of versions. Sending version documents (kilobytes each) would make that
megabytes; this sends columns, each as small as it can honestly be:

* ``first``/``count`` instead of the numbers when they are contiguous (they are, unless the history was edited);
* ``parent`` as ``number - parent`` (1 for a straight line, 0 for a root), ``created`` as seconds since the
  previous version (the first one absolute), ``stage`` as one character per version indexing ``stages``;
* ``value``: the chosen metric rounded to 4 significant digits, ``null`` where a version lacks it.

About 15 bytes a version. ``since=HEAD`` (the ``head`` of the payload a face holds) returns a *patch* instead: only
the versions added or moved to another stage since then, found by walking the two registry trees, so a face that
polls after each commit receives a few hundred bytes, not the whole history again.
"""

from __future__ import annotations

import string
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from . import layout, metrics
from .clock import timestamp_of
from .records import Record

if TYPE_CHECKING:
    from .registry import Registry

CODES = string.digits + string.ascii_letters  # a stage code per version: 62 stages is more than any lifecycle has


@dataclass(repr=False)
class Timeline(Record):
    """The columns a timeline draws (see the module's docstring), or a patch of them (``full`` False)."""

    model: str
    head: str | None
    metric: str | None
    full: bool
    count: int
    payload: dict[str, Any] = field(default_factory=dict)

    def __str__(self) -> str:
        what = "timeline" if self.full else "timeline update"
        return f"{self.model}: {what} of {self.count} version(s), metric {self.metric or 'none'}"


def build(registry: Registry, name: str, *, metric: str | None = None, since: str | None = None) -> Timeline:
    """The timeline of ``name`` (every version), or only what changed since the registry head ``since``."""
    latest = registry.get(name)  # checks the name, syncs the index, and knows the metrics worth offering
    head = registry.index.head()
    offered = metrics.ordered(k for k, v in latest.metrics.items() if isinstance(v, (int, float)))
    metric = metric if metric is not None else (offered[0] if offered else None)
    numbers = _changed(registry, name, since, head) if since else None
    rows = registry.index.timeline_rows(name, metric, numbers)
    payload = _columns(rows, full=numbers is None)
    payload.update(
        model=name,
        head=head,
        metric=metric,
        metrics=offered,
        aliases=dict(registry.aliases(name)),
    )
    return Timeline(model=name, head=head, metric=metric, full=numbers is None, count=len(rows), payload=payload)


def _changed(registry: Registry, name: str, since: str, head: str | None) -> list[int] | None:
    """Versions of ``name`` added or re-staged between ``since`` and ``head``; None when ``since`` is not an ancestor
    of ``head`` (a replaced history, or a head this registry never had): then the whole timeline is sent."""
    git = registry.git
    try:
        if head is None or not git.descends_from(since, head):
            return None
        old, new = git.commit_tree(since), git.commit_tree(head)
    except Exception:  # an unknown or malformed commit id from a face: answer with everything, never fail
        return None
    numbers = set()
    for path in git.changed_paths(old, new):
        kind, model, number = layout.classify(path)
        if model == name and number is not None and kind in ("versions", "stages"):
            numbers.add(number)
    return sorted(numbers)


def _columns(rows: list[tuple[Any, ...]], *, full: bool) -> dict[str, Any]:
    stages: list[str] = []
    codes: list[str] = []
    for *_, stage in rows:
        stage = stage or "?"
        if stage not in stages:
            stages.append(stage)
        codes.append(CODES[min(stages.index(stage), len(CODES) - 1)])
    numbers = [r[0] for r in rows]
    created = [int(timestamp_of(r[2]) or 0) for r in rows]
    out: dict[str, Any] = {
        "full": full,
        "stages": stages,
        "stage": "".join(codes),
        "parent": [n - _number(r[1]) if r[1] else 0 for n, r in zip(numbers, rows, strict=True)],
        "value": [_round(r[3]) for r in rows],
        "rollbacks": {str(r[0]): _number(r[4]) for r in rows if r[4]},
    }
    contiguous = full and numbers == list(range(numbers[0], numbers[0] + len(numbers))) if numbers else full
    if contiguous:
        out["first"], out["count"] = (numbers[0] if numbers else 1), len(numbers)
    else:
        out["numbers"] = numbers
    if full:  # deltas from the previous version: small numbers for a long history
        out["created"] = [c - p for c, p in zip(created, [0, *created[:-1]], strict=True)]
    else:  # a patch's rows are scattered: absolute times
        out["created"] = created
    return out


def _number(spec: str) -> int:
    """The N of ``NAME@vN``."""
    return int(str(spec).rpartition("@v")[2])


def _round(value: Any) -> float | None:
    if not isinstance(value, (int, float)) or isinstance(value, bool):
        return None
    return float(f"{value:.4g}")


def rows(payload: dict[str, Any]) -> list[dict[str, Any]]:
    """The payload back as one dict per version (number, parent, created, stage, value, rollback_of): what a face's
    drawing code reconstructs, here for the text face and the tests."""
    count = len(payload["stage"])
    numbers = payload.get("numbers") or list(range(payload.get("first", 1), payload.get("first", 1) + count))
    created, total = [], 0
    for delta in payload["created"]:
        total = total + delta if payload["full"] else delta
        created.append(total)
    return [
        {
            "number": n,
            "parent": n - payload["parent"][i] if payload["parent"][i] else None,
            "created": created[i],
            "stage": payload["stages"][CODES.index(payload["stage"][i])],
            "value": payload["value"][i],
            "rollback_of": payload["rollbacks"].get(str(n)),
        }
        for i, n in enumerate(numbers)
    ]
