import subprocess

import networkx as nx
import pytest

from mm_magics.engine.errors import GateError, LifecycleConfigError, TransitionError
from mm_magics.engine.lifecycle import STAGES, build_graph, parse_gate


@pytest.fixture
def two(ws, iris, models):
    X, y = iris
    reg = ws.registry
    reg.commit("m", models["logreg"], metrics={"accuracy": 0.95, "rmse": 0.3})
    reg.commit("m", models["tree"], metrics={"accuracy": 0.85, "rmse": 0.5}, parent="m@v1")
    return ws


def test_default_graph_is_the_expected_dag():
    g = build_graph({})
    assert nx.is_directed_acyclic_graph(g)
    assert next(iter(nx.topological_sort(g))) == "design"
    assert nx.shortest_path(g, "design", "retire") == ["design", "retire"]
    assert set(STAGES) == set(g.nodes)
    assert ("maintain", "train") not in g.edges  # retraining makes a new version, never moves one back
    for stage in ("evaluate", "deploy", "maintain"):
        assert g.has_edge(stage, "retire")


def test_custom_stages_must_stay_acyclic(ws, models):
    ws.registry.commit("m", models["logreg"], metrics={"accuracy": 0.9})
    graph = ws.lifecycle.add_stage("shadow", after="evaluate", before="deploy")
    assert nx.shortest_path(graph, "evaluate", "deploy") == ["evaluate", "deploy"]
    assert graph.has_edge("evaluate", "shadow") and graph.has_edge("shadow", "deploy")
    t = ws.lifecycle.transition("m@v1", "shadow", "mirror traffic first")
    assert t.path == ["evaluate", "shadow"]
    with pytest.raises(LifecycleConfigError, match="cycle"):
        ws.lifecycle.add_stage("again", after="maintain", before="train")
    assert "again" not in ws.lifecycle.graph  # refused change left nothing behind


def test_new_versions_start_after_training(two):
    lc = two.lifecycle
    assert lc.stage("m@v1") == "evaluate"
    two.registry.commit("m", two.registry.checkout("m@v1"))  # no metrics: trained, not evaluated
    assert lc.stage("m@v3") == "train"
    assert lc.history("m@v3")[0].path == ["design", "train"]


def test_gates_refuse_with_the_gap(two):
    lc = two.lifecycle
    lc.set_gates("m", ["accuracy >= 0.9"])
    with pytest.raises(TransitionError) as err:
        lc.transition("m@v2", "deploy", "ship it")
    text = str(err.value)
    assert "accuracy 0.85 fails accuracy >= 0.9" in text and "off by 0.05" in text and "--force" in text
    assert lc.stage("m@v2") == "evaluate"
    t = lc.transition("m@v1", "deploy", "passes")
    assert t.path == ["evaluate", "deploy"] and all(g.passed for g in t.gates)


def test_no_regression_against_the_deployed_version(two):
    lc = two.lifecycle
    lc.transition("m@v1", "deploy", "first deploy")
    results = lc.check("m@v2", "deploy")
    assert [(r.gate, r.passed) for r in results][1:] == [("artifact intact", True)]
    assert [r.passed for r in results[:1]] == [False]
    assert "worse than deployed m@v1's 0.95 by 0.1" in results[0].detail
    with pytest.raises(TransitionError, match="worse than deployed m@v1"):
        lc.transition("m@v2", "deploy", "try")
    with pytest.raises(TransitionError, match="needs a reason"):
        lc.transition("m@v2", "deploy", force=True)
    forced = lc.transition("m@v2", "deploy", "hotfix for a data bug, accepted by the team", force=True)
    assert forced.forced and not forced.gates[0].passed
    log = subprocess.run(["git", "-C", str(two.root), "log", "-1", "--format=%B"], capture_output=True, text=True)
    assert "MM-Forced: yes" in log.stdout and "MM-From: evaluate" in log.stdout and "MM-To: deploy" in log.stdout


def test_lower_is_better_metrics(two):
    lc = two.lifecycle
    lc.set_gates("m", ["rmse <= 0.4"])
    lc.transition("m@v1", "deploy", "ok")
    results = lc.check("m@v2", "deploy")
    assert [r.gate for r in results if not r.passed] == ["rmse <= 0.4", "not worse than m@v1 on rmse"]


def test_graph_is_enforced(two):
    lc = two.lifecycle
    lc.transition("m@v1", "retire", "superseded")
    with pytest.raises(TransitionError, match="cannot go from retire to deploy"):
        lc.transition("m@v1", "deploy")
    with pytest.raises(TransitionError, match="already in stage"):
        lc.transition("m@v2", "evaluate")
    with pytest.raises(TransitionError, match="unknown stage 'prod'"):
        lc.transition("m@v2", "prod")
    lc.transition("m@v2", "deploy", "x", force=True)
    lc.transition("m@v2", "maintain", "watching")
    with pytest.raises(TransitionError, match=r"retrain to make a new version \(%%mm_train m --from m@v2") as err:
        lc.transition("m@v2", "train")
    assert err.value.fix.to_dict() == {"verb": "train", "args": ["m", "--from", "m@v2"]}


def test_every_transition_is_an_audited_commit(two):
    lc = two.lifecycle
    before = len(two.registry.history())
    lc.transition("m@v1", "deploy", "ship")
    lc.transition("m@v1", "maintain", "monitoring")
    history = lc.history("m@v1")
    assert [(h.from_stage, h.to_stage) for h in history] == [
        (None, "evaluate"),
        ("evaluate", "deploy"),
        ("deploy", "maintain"),
    ]
    assert history[-1].actor == "tester@ci" and history[-1].reason == "monitoring"
    audit = two.registry.history("m")
    assert len(two.registry.history()) == before + 2
    assert audit[0].action == "transition" and audit[0].summary == "monitoring"
    assert lc.counts("m") == {"design": 0, "train": 0, "evaluate": 1, "deploy": 0, "maintain": 1, "retire": 0}


def test_gate_expressions():
    assert str(parse_gate("accuracy>=0.9")) == "accuracy >= 0.9"
    assert parse_gate(" f1_macro < 1e-1 ").value == 0.1
    for bad in ["accuracy", "accuracy >> 0.9", "0.9 <= accuracy", "accuracy >= high", ""]:
        with pytest.raises(GateError, match="METRIC OP NUMBER"):
            parse_gate(bad)


def test_gates_replace_same_metric(two):
    lc = two.lifecycle
    lc.set_gates("m", ["accuracy >= 0.9", "rmse <= 1"])
    lc.set_gates("m", ["accuracy >= 0.8"])
    assert [g["expr"] for g in lc.gates("m")] == ["rmse <= 1", "accuracy >= 0.8"]
    lc.set_gates("m", [], replace=True)
    assert lc.gates("m") == []


def test_the_picture_lays_out_the_graph_and_judges_each_next_move(two):
    lc = two.lifecycle
    lc.set_gates("m", ["accuracy >= 0.9"])
    lc.add_stage("shadow", after="evaluate", before="deploy")  # a workspace's own stage appears too
    head = two.git.read_ref()
    picture = lc.picture("m@v2")
    assert two.git.read_ref() == head  # a dry run: nothing recorded
    layer = {s["name"]: s["layer"] for s in picture.stages}
    assert layer["design"] == 0 and layer["evaluate"] < layer["shadow"] < layer["deploy"] < layer["maintain"]
    assert {s["name"]: s["count"] for s in picture.stages}["evaluate"] == 2
    gates = {(e["from"], e["to"]): e["gates"] for e in picture.edges}
    assert "accuracy >= 0.9" in gates[("shadow", "deploy")] and "artifact intact" in gates[("shadow", "deploy")]
    assert (picture.version, picture.stage, picture.path) == ("m@v2", "evaluate", ["design", "train", "evaluate"])
    moves = {m["to"]: m for m in picture.moves}
    assert moves["shadow"]["allowed"] and moves["retire"]["allowed"]
    lc.transition("m@v2", "shadow", "mirror first")  # and the deploy gate, judged once the version is in shadow
    refused = {m["to"]: m for m in lc.picture("m@v2").moves}["deploy"]
    assert not refused["allowed"] and refused["refused"][0]["detail"].endswith("(off by 0.05)")
    assert "deploy: refused: accuracy >= 0.9" in str(lc.picture("m@v2"))
    assert lc.picture("m").version is None and lc.picture("m").moves == []  # a model alone: the graph and counts
