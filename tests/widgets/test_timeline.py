"""The version timeline widget from Python: its state is the engine's payload, a selection answers with the
version's diff and next moves, each action is one engine call whose result (or refusal) comes back, and a change
made by another process reaches a displayed timeline as a small patch."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import threading

import httpx
import pytest

from mm_magics.engine import schema_of, timeline
from mm_magics.widgets.timeline import VersionTimeline


@pytest.fixture
def line(ws, models, iris):
    X, _ = iris
    data = {"schema": schema_of(X), "probe_data": X}  # what a servable version carries
    ws.registry.commit("m", models["logreg"], message="first", metrics={"accuracy": 0.95}, params={"C": 1.0}, **data)
    ws.registry.commit("m", models["tree"], message="a tree", metrics={"accuracy": 0.7}, parent="m@v1", **data)
    ws.lifecycle.set_gates("m", ["accuracy >= 0.9"])
    return VersionTimeline(ws, ws.registry.timeline("m"))


def test_synced_state_is_the_engines_payload(ws, line):
    assert line.payload == ws.registry.timeline("m").payload
    assert [r["number"] for r in timeline.rows(line.payload)] == [1, 2]
    assert line.stages[:3] == ["design", "train", "evaluate"]  # the lifecycle's order: stable colours
    assert line.serving == {}  # never deployed: no serving machinery started


def test_selecting_a_version_answers_with_its_diff_and_next_moves(front, line):
    browser = front(line)
    (answer,) = browser.say({"kind": "select", "number": 2, "request": 7})
    assert answer["kind"] == "details" and answer["request"] == 7
    d = answer["details"]  # the engine's VersionDetails, as the REST API sends it too
    v = d["version"]
    assert (v["name"], v["number"], v["parent"], v["message"]) == ("m", 2, "m@v1", "a tree")
    assert d["diff"]["a"] == "m@v1" and d["diff"]["estimator"][1].endswith("DecisionTreeClassifier")
    accuracy = next(m for m in d["diff"]["metrics"] if m["name"] == "accuracy")
    assert accuracy["delta"] == pytest.approx(-0.25)
    moves = {m["to"]: m for m in d["moves"]}
    assert not moves["deploy"]["allowed"] and "accuracy >= 0.9" in moves["deploy"]["refused"][0]["gate"]
    (first,) = browser.say({"kind": "select", "number": 1})
    assert first["details"]["diff"] is None  # a first version has no parent


def test_a_stage_move_is_one_engine_call_and_the_timeline_follows(ws, front, line):
    browser = front(line)
    head = line.payload["head"]
    done, patch, details = browser.say({"kind": "act", "action": "stage", "number": 1, "stage": "deploy", "head": head})
    assert done["kind"] == "done" and done["message"] == "m@v1 moved evaluate → deploy"
    assert ws.lifecycle.stage("m@v1") == "deploy"
    assert patch["kind"] == "patch" and not patch["payload"]["full"]
    assert [r["stage"] for r in timeline.rows(patch["payload"])] == ["deploy"]  # only what changed
    assert details["details"]["version"]["stage"] == "deploy"


def test_a_refused_action_says_the_engines_reason_and_changes_nothing(ws, front, line):
    browser = front(line)
    before = ws.registry.head()
    (refusal,) = browser.say({"kind": "act", "action": "stage", "number": 2, "stage": "deploy", "head": before})
    assert refusal["kind"] == "error" and "accuracy >= 0.9" in refusal["message"]
    assert ws.registry.head() == before and ws.lifecycle.stage("m@v2") == "evaluate"
    (unknown,) = browser.say({"kind": "act", "action": "delete", "number": 2})
    assert unknown["kind"] == "error" and "unknown action 'delete'" in unknown["message"]
    (missing,) = browser.say({"kind": "select", "number": 99})
    assert missing["kind"] == "error" and "m@v99" in missing["message"]


def test_set_an_alias_and_roll_back_from_the_timeline(ws, front, line):
    browser = front(line)
    done, patch, _ = browser.say({"kind": "act", "action": "alias", "number": 1, "alias": "production"})
    assert done["message"] == "m@production: (none) -> v1" and patch["payload"]["aliases"] == {"production": 1}
    head = patch["payload"]["head"]
    done, patch, details = browser.say({"kind": "act", "action": "rollback", "number": 1, "head": head})
    assert done["message"] == "rolled back: m@v3 is a copy of m@v1"
    (row,) = timeline.rows(patch["payload"])
    assert row["number"] == 3 and row["parent"] == 1 and row["rollback_of"] == 2  # a copy of v1, replacing v2
    assert details["details"]["version"]["number"] == 1


def test_deploy_from_the_timeline_starts_a_server_that_answers(ws, front, line, iris):
    browser = front(line)
    answers = browser.say({"kind": "act", "action": "deploy", "number": 1, "head": line.payload["head"]})
    try:
        done, patch, details = answers if len(answers) == 3 else pytest.fail(f"deploy answered {answers}")
        assert done["kind"] == "done" and done["message"].startswith("m@v1 serves at http://127.0.0.1:")
        assert line.serving["version"] == "m@v1" and line.serving["status"] == "running"
        assert details["details"]["serving"] == "m@v1"
        url = done["message"].split(" serves at ")[1].split(" ")[0]
        X, _ = iris
        resp = httpx.post(url + "/invocations", json={"instances": X.iloc[:2].to_numpy().tolist()})
        assert resp.status_code == 200 and len(resp.json()["predictions"]) == 2
    finally:
        if ws.deployments.get("m") is not None:
            ws.deployments.undeploy("m")


def test_a_commit_from_another_process_reaches_a_polling_timeline_as_a_small_patch(ws, front, line, tmp_path):
    browser = front(line)
    head = line.payload["head"]
    assert browser.say({"kind": "poll", "head": head}) == [{"kind": "same"}]  # nothing moved: a few bytes
    script = textwrap.dedent(
        f"""
        from sklearn.datasets import load_iris
        from sklearn.dummy import DummyClassifier
        from mm_magics.engine import Workspace
        X, y = load_iris(return_X_y=True)
        with Workspace.open({str(ws.root)!r}) as ws:
            ws.registry.commit("m", DummyClassifier().fit(X, y), message="elsewhere", metrics={{"accuracy": 0.33}})
        """
    )
    subprocess.run([sys.executable, "-c", script], check=True, timeout=120)
    (patch,) = browser.say({"kind": "poll", "head": head})
    assert patch["kind"] == "patch" and [r["number"] for r in timeline.rows(patch["payload"])] == [3]
    assert browser.bytes_sent() <= 2048
    assert browser.say({"kind": "poll", "head": patch["payload"]["head"]}) == [{"kind": "same"}]


def test_choosing_another_metric_sends_that_metric(ws, line, front):
    front(line).say({"kind": "metric", "name": "accuracy"})
    assert line.payload["metric"] == "accuracy"


def test_no_thread_runs_for_a_timeline_and_its_output_carries_the_static_picture(ws, models):
    before = threading.active_count()
    ws.registry.commit("m", models["logreg"], metrics={"accuracy": 0.95})
    widget = VersionTimeline(ws, ws.registry.timeline("m"))
    bundle = widget._repr_mimebundle_()
    data = bundle[0] if isinstance(bundle, tuple) else bundle
    assert "application/vnd.jupyter.widget-view+json" in data and "coloured by stage" in data["text/html"]
    assert data["text/plain"] == "m: timeline of 1 version(s), metric accuracy"
    widget.close()
    assert threading.active_count() == before  # polls are the browser's: nothing in the kernel to stop
