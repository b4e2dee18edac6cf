"""The timeline payload: compact columns that decode back to exactly what the registry says, and patches."""

from __future__ import annotations

import json

from mm_magics.engine.timeline import rows

from ..conftest import commit_kwargs


def _history(ws, iris, models, n: int) -> None:
    X, y = iris
    for i in range(n):
        model = models["logreg"] if i % 2 == 0 else models["tree"]
        parent = f"iris@v{i}" if i else None
        ws.registry.commit("iris", model, message=f"v{i + 1}", parent=parent, **commit_kwargs(X, y, 0.9 + i / 1000))


def test_the_payload_decodes_to_what_the_registry_says(ws, iris, models):
    _history(ws, iris, models, 6)
    ws.registry.set_alias("iris@v4", "production")
    ws.lifecycle.transition("iris@v2", "retire", "superseded")
    ws.registry.rollback("iris", "v3", "back")
    timeline = ws.registry.timeline("iris")
    assert timeline.full and timeline.count == 7 and timeline.metric == "accuracy"
    decoded = rows(timeline.payload)
    log = {v.number: v for v in ws.registry.log("iris", limit=100).versions}
    for row in decoded:
        version = log[row["number"]]
        assert row["parent"] == (int(version.parent.rpartition("@v")[2]) if version.parent else None)
        assert row["stage"] == version.stage
        assert row["value"] == round(version.metrics["accuracy"], 4)
        assert abs(row["created"] - _epoch(version.created)) < 1
    assert (decoded[-1]["parent"], decoded[-1]["rollback_of"]) == (3, 6)  # back to v3, undoing v6
    assert timeline.payload["aliases"] == {"production": 4}
    assert "accuracy" in timeline.payload["metrics"] and timeline.payload["first"] == 1


def test_another_metric_and_a_version_without_it(ws, iris, models):
    _history(ws, iris, models, 2)
    ws.registry.commit("iris", models["logreg"], message="no metrics")
    payload = ws.registry.timeline("iris", metric="f1_macro").payload
    assert payload["metric"] == "f1_macro" and payload["value"][:2] == [0.89, 0.891] and payload["value"][2] is None


def test_a_patch_carries_only_what_changed_since_the_head_a_face_holds(ws, iris, models):
    _history(ws, iris, models, 30)
    held = ws.registry.timeline("iris")
    X, y = iris
    ws.registry.commit("iris", models["tree"], message="new", parent="iris@v30", **commit_kwargs(X, y))
    ws.lifecycle.transition("iris@v5", "retire", "superseded")
    patch = ws.registry.timeline("iris", since=held.head)
    assert not patch.full and patch.payload["numbers"] == [5, 31]
    assert [(r["number"], r["stage"]) for r in rows(patch.payload)] == [(5, "retire"), (31, "evaluate")]
    assert len(json.dumps(patch.payload)) < 2_000  # the bound for an update after one commit
    assert ws.registry.timeline("iris", since=patch.head).payload["numbers"] == []  # nothing new: nothing sent
    for odd in ("0" * 40, "not-a-commit", held.head[:7]):
        assert ws.registry.timeline("iris", since=odd).full  # anything but a known ancestor: the whole timeline


def test_the_payload_is_a_few_bytes_a_version(ws, iris, models):
    _history(ws, iris, models, 60)
    payload = ws.registry.timeline("iris").payload
    per_version = len(json.dumps(payload, separators=(",", ":"))) / 60
    assert per_version < 40, per_version  # issue 12's bound; documents would be kilobytes each


def _epoch(stamp: str) -> float:
    from mm_magics.engine.clock import timestamp_of

    return timestamp_of(stamp)
