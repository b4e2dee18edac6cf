"""The lifecycle graph widget from Python: synced state equals the engine's answer, clicks become engine calls."""

from __future__ import annotations

import pytest

from mm_magics.widgets.lifecycle import LifecycleGraph


@pytest.fixture
def graph(ws, models):
    ws.registry.commit("m", models["logreg"], metrics={"accuracy": 0.95})
    ws.registry.commit("m", models["tree"], metrics={"accuracy": 0.7}, parent="m@v1")
    ws.lifecycle.set_gates("m", ["accuracy >= 0.9"])
    return LifecycleGraph(ws, ws.lifecycle.picture("m@v2"))


def test_synced_state_is_the_engines_picture(ws, graph):
    assert graph.picture == ws.lifecycle.picture("m@v2").to_dict()
    moves = {m["to"]: m["allowed"] for m in graph.picture["moves"]}
    assert moves == {"deploy": False, "retire": True}


def test_clicking_a_stage_lists_its_versions_and_choosing_one_places_it(ws, graph):
    graph.focus = "evaluate"  # what the browser sets on a click or Enter
    assert graph.stage_versions == {"evaluate": ["m@v2", "m@v1"]}
    graph.version = "m@v1"
    assert graph.picture["version"] == "m@v1" and {m["to"]: m["allowed"] for m in graph.picture["moves"]}["deploy"]
    graph.version = "m@v9"  # a version that does not exist: the engine's one line, nothing else changes
    assert "m@v9" in graph.error and graph.picture["version"] == "m@v1"


def test_the_output_carries_the_static_picture_too(graph):
    bundle = graph._repr_mimebundle_()
    data = bundle[0] if isinstance(bundle, tuple) else bundle
    assert "application/vnd.jupyter.widget-view+json" in data
    assert "<img src='data:image/svg+xml;base64," in data["text/html"]  # a saved or untrusted notebook shows it
    assert data["text/plain"].startswith("m lifecycle:")


def test_a_move_made_by_the_mm_command_reaches_a_polling_graph(ws, graph, front):
    import subprocess
    import sys

    browser = front(graph)
    assert browser.say({"kind": "poll"}) == [] and not browser.sent  # nothing moved: one ref read, nothing sent
    subprocess.run(
        [sys.executable, "-m", "mm_magics.cli", "-C", str(ws.root), "stage", "m@v2", "retire", "-m", "superseded"],
        check=True,
        timeout=120,
    )
    browser.say({"kind": "poll"})
    counts = {s["name"]: s["count"] for s in graph.picture["stages"]}
    assert counts["retire"] == 1 and graph.picture["stage"] == "retire" and graph.picture["moves"] == []
