import json
import subprocess

import networkx as nx
import numpy as np
import pytest
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline

from mm_magics.engine import Workspace
from mm_magics.engine.errors import (
    ArtifactCorruptError,
    ArtifactMissingError,
    ModelError,
    SpecError,
    UnknownModelError,
    UnknownVersionError,
    UntrustedTypesError,
)

from ..conftest import commit_kwargs
from ..helpers import ClipTransformer


def git(ws, *args):
    return subprocess.run(["git", "-C", str(ws.root), *args], capture_output=True, text=True, check=True).stdout


def test_commit_is_one_readable_git_commit_with_a_tag(ws, iris, models):
    X, y = iris
    v = ws.registry.commit("iris", models["logreg"], message="baseline", **commit_kwargs(X, y))
    assert v.id == "iris@v1" and v.number == 1 and v.parent is None
    assert v.stage == "evaluate"
    assert git(ws, "rev-parse", "iris@v1").strip() == v.commit
    assert git(ws, "log", "-1", "--format=%s", "iris@v1").strip() == "baseline"
    doc = json.loads(git(ws, "show", "iris@v1:models/iris/versions/0xx/v1.json"))
    assert doc["artifact"]["sha256"] == v.sha256
    assert doc["metrics"]["accuracy"] == 0.95
    assert doc["environment"]["packages"]["scikit-learn"]
    assert doc["data"]["rows"] == 150
    assert doc["schema"]["feature_names"][0] == "sepal length (cm)"
    assert doc["params"]["max_iter"] == 500
    # artifacts never go into git
    assert "objects" not in git(ws, "ls-tree", "-r", "--name-only", "HEAD")
    subprocess.run(["git", "-C", str(ws.root), "fsck", "--strict"], check=True, capture_output=True)


def test_same_model_twice_is_stored_once(ws, iris, models):
    X, y = iris
    a = ws.registry.commit("iris", models["logreg"])
    b = ws.registry.commit("iris", models["logreg"])
    assert a.sha256 == b.sha256 and b.number == 2
    assert list(ws.objects) == [a.sha256]


def test_get_by_number_alias_and_latest(ws, iris, models):
    reg = ws.registry
    reg.commit("iris", models["logreg"], message="one")
    reg.commit("iris", models["tree"], message="two")
    assert reg.get("iris").number == 2
    assert reg.get("iris@latest").number == 2
    assert reg.get("iris@v1").message == "one"
    reg.set_alias("iris@v1", "production")
    assert reg.get("iris@production").number == 1
    assert reg.get("iris@v1").aliases == ["production"]


def test_unknown_and_malformed(ws, models):
    reg = ws.registry
    with pytest.raises(UnknownModelError, match="registry is empty"):
        reg.get("nope")
    reg.commit("iris", models["logreg"])
    with pytest.raises(UnknownModelError, match="models: iris") as info:
        reg.get("nope")
    assert info.value.fix is not None  # a new name: how to commit one
    with pytest.raises(UnknownModelError, match="did you mean 'iris'") as info:
        reg.get("irsi@v1")
    assert info.value.fix is None  # a typo of a known model: not advice to create another
    with pytest.raises(UnknownVersionError, match="v1..v1"):
        reg.get("iris@v7")
    with pytest.raises(UnknownVersionError, match="no alias 'prod'"):
        reg.get("iris@prod")
    with pytest.raises(SpecError):
        reg.get("iris@v")


def test_refuses_non_estimators_and_unfitted(ws):
    with pytest.raises(ModelError, match="not fitted"):
        ws.registry.commit("iris", LogisticRegression())
    with pytest.raises(ModelError, match="not a scikit-learn estimator"):
        ws.registry.commit("iris", {"weights": [1, 2]})
    with pytest.raises(SpecError):
        ws.registry.commit("bad name", LogisticRegression())
    assert ws.registry.models() == []
    assert list(ws.objects) == []


def test_log_pages_newest_first_with_parents(ws, models):
    reg = ws.registry
    for i in range(7):
        reg.commit("m", models["logreg"], message=f"c{i}", parent=f"m@v{i}" if i else None)
    page = reg.log("m", limit=3)
    assert [v.number for v in page.versions] == [7, 6, 5]
    assert page.total == 7 and page.next_before == 5
    assert page.versions[0].parent == "m@v6"
    page2 = reg.log("m", limit=3, before=page.next_before)
    assert [v.number for v in page2.versions] == [4, 3, 2]
    last = reg.log("m", limit=3, before=page2.next_before)
    assert [v.number for v in last.versions] == [1] and last.next_before is None
    assert "m@v7" in str(page)


def test_version_dag_branches_from_old_versions(ws, models):
    reg = ws.registry
    reg.commit("m", models["logreg"])
    reg.commit("m", models["tree"], parent="m@v1")
    reg.commit("m", models["deep_tree"], parent="m@v2")
    reg.commit("m", models["tree"], parent="m@v1")  # a branch from an old version
    graph = reg.version_graph("m")
    assert isinstance(graph, nx.DiGraph)
    assert set(graph.edges) == {("m@v1", "m@v2"), ("m@v2", "m@v3"), ("m@v1", "m@v4")}
    assert nx.is_directed_acyclic_graph(graph)
    assert graph.nodes["m@v4"]["stage"] == "train"
    with pytest.raises(UnknownVersionError):
        reg.commit("m", models["tree"], parent="m@v99")


def test_diff(ws, iris, models):
    X, y = iris
    reg = ws.registry
    reg.commit("m", models["logreg"], **commit_kwargs(X, y, 0.95, "model = LogisticRegression()\nfit()\n"))
    reg.commit(
        "m",
        models["tree"],
        parent="m@v1",
        **commit_kwargs(X.iloc[:100], y.iloc[:100], 0.90, "model = DecisionTreeClassifier()\nfit()\n"),
    )
    d = reg.diff("m@v1", "m@v2")
    acc = next(m for m in d.metrics if m.name == "accuracy")
    assert acc.a == 0.95 and acc.b == 0.90 and acc.delta == pytest.approx(-0.05)
    assert d.params["max_depth"] == (None, 2)
    assert d.data_changed and d.data["rows"] == (150, 100)
    assert "-model = LogisticRegression()" in d.code_diff and "+model = DecisionTreeClassifier()" in d.code_diff
    assert d.artifact_changed
    probe = reg.probe_data("m@v2")
    expected = np.mean(models["logreg"].predict(probe) == models["tree"].predict(probe))
    assert d.agreement == pytest.approx(expected) and 0 < d.agreement < 1
    assert d.agreement_rows == len(probe)
    same = reg.diff("m@v1", "m@v1")
    assert same.agreement == 1.0 and not same.artifact_changed and not same.params
    off = reg.diff("m@v1", "m@v2", agreement=False)
    assert off.agreement is None and "agreement=False" in off.agreement_note
    assert "prediction agreement" in str(d)


def test_probe_can_be_switched_off(ws, iris, models):
    X, y = iris
    ws.registry.update_config(lambda doc: doc.update(probe_rows=0), "No probe samples: sensitive data")
    v = ws.registry.commit("m", models["logreg"], **commit_kwargs(X, y))
    assert v.probe is None
    assert list(ws.objects) == [v.sha256]  # no sample of the data stored anywhere
    ws.registry.commit("m", models["tree"], **commit_kwargs(X, y))
    assert "no probe sample" in ws.registry.diff("m@v1", "m@v2").agreement_note


def test_checkout_verifies_hash(ws, iris, models):
    X, y = iris
    v = ws.registry.commit("m", models["logreg"])
    model = ws.registry.checkout("m@v1")
    assert model is not models["logreg"]
    assert np.array_equal(model.predict(X), models["logreg"].predict(X))
    path = ws.objects.path(v.sha256)
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))
    with pytest.raises(ArtifactCorruptError, match=v.sha256):
        ws.registry.checkout("m@v1")
    path.unlink()
    with pytest.raises(ArtifactMissingError, match="m@v1"):
        ws.registry.checkout("m@v1")


def test_checkout_hands_out_copies_of_a_model_cached_by_its_sha256(ws, iris, models):
    """A second checkout is a copy of the loaded model: refitting one copy changes no other, and two versions
    (two sha256s) never share a cached model."""
    X, y = iris
    ws.registry.commit("m", models["logreg"])
    ws.registry.commit("m", models["tree"])
    first = ws.registry.checkout("m@v1")
    first.fit(X.iloc[:, :2], y)  # the caller's copy, now a different model
    again = ws.registry.checkout("m@v1")
    assert again is not first and again.n_features_in_ == 4
    assert np.array_equal(again.predict(X), models["logreg"].predict(X))
    assert np.array_equal(ws.registry.checkout("m@v2").predict(X), models["tree"].predict(X))
    shared = ws.registry.cached_model(ws.registry.get("m@v1"))
    assert shared is ws.registry.cached_model(ws.registry.get("m@v1"))
    assert shared is not ws.registry.cached_model(ws.registry.get("m@v2"))


def test_untrusted_artifact_needs_explicit_trust(ws, iris):
    X, y = iris
    model = make_pipeline(ClipTransformer(), LogisticRegression(max_iter=300)).fit(X, y)
    ws.registry.commit("m", model)
    with pytest.raises(UntrustedTypesError, match="tests.helpers.ClipTransformer"):
        ws.registry.checkout("m")
    ws.registry.trust(["tests.helpers.ClipTransformer"], "our own log transform")
    assert np.array_equal(ws.registry.checkout("m").predict(X), model.predict(X))
    assert ws.registry.history()[0].action == "config"


def test_rollback_makes_a_new_version(ws, iris, models):
    X, y = iris
    reg = ws.registry
    reg.commit("m", models["logreg"], message="good", **commit_kwargs(X, y, 0.95))
    reg.commit("m", models["tree"], message="bad", parent="m@v1", **commit_kwargs(X, y, 0.80))
    v3 = reg.rollback("m", "v1", "v2 is worse in production")
    assert v3.number == 3 and v3.parent == "m@v1" and v3.rollback_of == "m@v2"
    assert v3.sha256 == reg.get("m@v1").sha256 and v3.metrics["accuracy"] == 0.95
    assert v3.message == "v2 is worse in production"
    assert [v.number for v in reg.log("m").versions] == [3, 2, 1]  # history kept
    assert np.array_equal(reg.checkout("m").predict(X), models["logreg"].predict(X))
    entry = reg.history("m")[0]
    assert entry.action == "rollback" and entry.actor == "tester@ci"
    assert reg.rollback("m", 2).parent == "m@v2"


def test_rollback_checks_the_target_loads_first(ws, models):
    reg = ws.registry
    v1 = reg.commit("m", models["logreg"])
    reg.commit("m", models["tree"])
    ws.objects.path(v1.sha256).unlink()
    with pytest.raises(ArtifactMissingError):
        reg.rollback("m", 1, "try")
    assert reg.get("m").number == 2


def test_aliases_are_audited(ws, models):
    reg = ws.registry
    reg.commit("m", models["logreg"])
    reg.commit("m", models["tree"])
    first = reg.set_alias("m@v1", "production")
    assert (first.old, first.new) == (None, 1)
    moved = reg.set_alias("m@v2", "production", "promote v2")
    assert (moved.old, moved.new) == (1, 2)
    assert reg.aliases("m") == {"production": 2}
    gone = reg.delete_alias("m", "production")
    assert gone.new is None and reg.aliases("m") == {}
    actions = [e.action for e in reg.history("m")]
    assert actions[:3] == ["alias", "alias", "alias"]
    with pytest.raises(UnknownVersionError):
        reg.delete_alias("m", "production")
    with pytest.raises(SpecError):
        reg.set_alias("m@v1", "v2")


def test_models_summary(ws, models):
    ws.registry.commit("a", models["logreg"])
    ws.registry.commit("b", models["logreg"], metrics={"accuracy": 1.0})
    ws.registry.commit("b", models["tree"])
    summary = {m.name: m for m in ws.registry.models()}
    assert summary["a"].latest == 1 and summary["b"].latest == 2
    assert summary["b"].stages == {"evaluate": 1, "train": 1}


def test_index_is_a_rebuildable_cache(ws, models):
    ws.registry.commit("m", models["logreg"], message="one")
    ws.registry.commit("m", models["tree"], message="two")
    ws.close()
    index = ws.cache_dir / "index.sqlite"
    for suffix in ("", "-wal", "-shm"):
        (ws.cache_dir / f"index.sqlite{suffix}").unlink(missing_ok=True)
    fresh = Workspace.open(ws.root)
    assert fresh.registry.get("m@v1").message == "one"
    fresh.close()
    index.write_bytes(b"this is not a database" * 100)
    (ws.cache_dir / "index.sqlite-wal").unlink(missing_ok=True)
    again = Workspace.open(ws.root)
    assert [v.message for v in again.registry.log("m").versions] == ["two", "one"]
    again.close()


def test_two_workspace_objects_see_each_others_commits(ws, models):
    other = Workspace.open(ws.root)
    ws.registry.commit("m", models["logreg"])
    assert other.registry.get("m").number == 1
    other.registry.commit("m", models["tree"])
    assert ws.registry.get("m").number == 2
    other.close()


def test_fsck_and_gc(ws, models):
    reg = ws.registry
    v1 = reg.commit("m", models["logreg"])
    orphan = ws.objects.put(b"left over from a crashed commit")
    report = reg.fsck()
    assert report.ok and report.versions == 1 and report.orphans == [orphan]
    assert reg.gc(grace_seconds=0).removed == [orphan]
    assert v1.sha256 in ws.objects
    ws.objects.path(v1.sha256).write_bytes(b"x")
    bad = reg.fsck()
    assert not bad.ok and "m@v1 artifact" in bad.problems[0]


def test_project_repository_head_is_recorded(tmp_path, models, monkeypatch):
    project = tmp_path / "project"
    project.mkdir()
    subprocess.run(["git", "init", "-q", str(project)], check=True)
    (project / "train.py").write_text("print(1)\n")
    subprocess.run(["git", "-C", str(project), "add", "."], check=True)
    subprocess.run(
        ["git", "-C", str(project), "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "init"], check=True
    )
    head = subprocess.run(["git", "-C", str(project), "rev-parse", "HEAD"], capture_output=True, text=True).stdout
    monkeypatch.chdir(project)
    ws = Workspace.open()
    assert ws.root == (project / ".mm").resolve()
    v = ws.registry.commit("m", models["logreg"])
    assert v.project["commit"] == head.strip() and v.project["dirty"] is False
    (project / "train.py").write_text("print(2)\n")
    assert ws.registry.commit("m", models["logreg"]).project["dirty"] is True
    # the workspace never touches the project's repository
    status = subprocess.run(["git", "-C", str(project), "status", "--porcelain"], capture_output=True, text=True)
    assert sorted(status.stdout.splitlines()) == [" M train.py", "?? .mm/"]
    log = subprocess.run(["git", "-C", str(project), "rev-list", "--all"], capture_output=True, text=True).stdout
    assert log.split() == [head.strip()]
    ws.close()


def test_packed_tags_still_resolve(ws, models):
    reg = ws.registry
    for _ in range(3):
        reg.commit("m", models["logreg"])
    loose = {v.number: v.commit for v in reg.log("m").versions}
    subprocess.run(["git", "-C", str(ws.root), "pack-refs", "--all"], check=True)
    assert not (ws.git.git_dir / "refs" / "tags" / "m@v1").exists()
    assert {v.number: v.commit for v in reg.log("m").versions} == loose
    assert reg.commit("m", models["tree"]).number == 4  # the branch is packed too: CAS still works


def test_artifacts_are_readable_by_others(ws, models):
    import stat

    v = ws.registry.commit("m", models["logreg"])
    mode = stat.S_IMODE(ws.objects.path(v.sha256).stat().st_mode)
    assert mode & 0o044 == 0o044


@pytest.mark.parametrize(
    "field, value",
    [
        ("metrics", "accuracy=0.9"),
        ("metrics", {"accuracy": float("nan")}),
        ("metrics", {"accuracy": float("inf")}),
        ("metrics", {1: 0.9}),
        ("params", ["C", 1.0]),
        ("data", 42),
        ("schema", "n_features=4"),
        ("extra", [1]),
        ("message", 3),
        ("code", b"model = X()"),
    ],
)
def test_poison_is_refused_at_the_entry_and_nothing_is_stored(ws, models, field, value):
    from mm_magics.engine.errors import MMError

    head = ws.git.read_ref()
    with pytest.raises(MMError, match=field if field != "metrics" or isinstance(value, str) else "metric"):
        ws.registry.commit("m", models["logreg"], **{field: value})
    assert ws.git.read_ref() == head


def test_trust_takes_one_type_name_not_its_letters(ws):
    from mm_magics.engine.errors import MMError

    assert "mypkg.models.Clip" in ws.registry.trust("mypkg.models.Clip")
    assert "c" not in ws.config["trusted_types"]
    head = ws.git.read_ref()
    for junk in ("", "abc", "not a type", "os.system; rm"):
        with pytest.raises(MMError, match="not a type name"):
            ws.registry.trust([junk])
    assert ws.git.read_ref() == head


@pytest.mark.parametrize("spec", ["m@v-1", "m@v01", "m\n", "m@v0", "m@v", "m\t", "m@prod\n"])
def test_version_specs_that_only_look_right_are_refused(ws, models, spec):
    from mm_magics.engine.errors import SpecError

    ws.registry.commit("m", models["logreg"], message="one")
    with pytest.raises(SpecError):
        ws.registry.get(spec)


def test_a_version_whose_artifact_is_broken_cannot_enter_deploy(ws, models):
    from mm_magics.engine.errors import TransitionError

    v = ws.registry.commit("m", models["logreg"], message="one", metrics={"accuracy": 0.9})
    path = ws.objects.path(v.sha256)
    path.chmod(0o644)
    path.write_bytes(b"tampered")
    with pytest.raises(TransitionError, match="artifact intact: artifact of m@v1 is corrupted"):
        ws.lifecycle.transition("m@v1", "deploy", "ship it")
    path.unlink()
    with pytest.raises(TransitionError, match="artifact intact: artifact of m@v1 is missing"):
        ws.lifecycle.transition("m@v1", "deploy", "ship it")
    assert ws.registry.get("m@v1").stage == "evaluate"


def test_gates_refuse_non_finite_thresholds(ws, models):
    from mm_magics.engine.errors import GateError

    ws.registry.commit("m", models["logreg"], message="one")
    head = ws.git.read_ref()
    for expr in ("accuracy>=1e999", "accuracy>=-1e999"):
        with pytest.raises(GateError, match="finite"):
            ws.lifecycle.set_gates("m", [expr])
    assert ws.git.read_ref() == head


def test_an_unknown_workspace_format_is_refused(tmp_path):
    from mm_magics.engine import Workspace
    from mm_magics.engine.errors import CorruptRegistryError

    ws = Workspace.open(tmp_path / "w" / ".mm")
    for fmt in (-1, 0, "1"):
        head = ws.git.read_ref()
        tree = ws.git.write_changes(ws.git.commit_tree(head), {"mm.json": json.dumps({"format": fmt}).encode()})
        commit = ws.git.write_commit(tree, [head], "edit\n", ("a", "a@b"), ws.git.history()[0].time)
        assert ws.git.update_refs([("refs/heads/main", commit, head)])
        with pytest.raises(CorruptRegistryError, match="'format' must be a positive whole number"):
            ws.config  # noqa: B018
