"""The magics, driven through a real IPython InteractiveShell against temporary workspaces."""

from __future__ import annotations

import numpy as np
import pytest
from IPython.core.error import UsageError
from IPython.testing.globalipapp import start_ipython

from mm_magics.engine import Workspace

from .waiting import wait_until

TRAIN_LOGREG = "from sklearn.linear_model import LogisticRegression\nmodel = LogisticRegression(max_iter=500)\n"
TRAIN_TREE = "from sklearn.tree import DecisionTreeClassifier\nmodel = DecisionTreeClassifier(max_depth=1)\n"


@pytest.fixture(scope="session")
def _shell():
    shell = start_ipython()
    shell.run_line_magic("load_ext", "mm_magics")
    return shell


@pytest.fixture
def ip(_shell, tmp_path, monkeypatch):
    monkeypatch.setenv("MM_HOME", str(tmp_path / "ws" / ".mm"))
    _shell.reset(new_session=False)
    _shell.run_cell("from sklearn.datasets import load_iris\nX, y = load_iris(return_X_y=True, as_frame=True)")
    magics = _shell.magics_manager.registry["MMMagics"]
    magics.runs.clear()
    yield _shell
    magics.runs.clear()


def html_of(ip, obj) -> str:
    """What a notebook shows for ``obj``: the printer IPython's HTML formatter finds for it (the one %load_ext
    registered; this terminal test shell keeps the HTML formatter disabled, a kernel does not)."""
    return ip.display_formatter.formatters["text/html"].lookup(obj)(obj)


def ws(tmp_path) -> Workspace:
    return Workspace.open(tmp_path / "ws" / ".mm")


def line(ip, text):
    name, _, rest = text.partition(" ")
    return ip.run_line_magic(name, rest)


def test_load_twice_registers_once(ip):
    before = len(ip.configurables)
    ip.run_line_magic("load_ext", "mm_magics")
    ip.extension_manager.reload_extension("mm_magics")
    assert len([c for c in ip.configurables if type(c).__name__ == "MMMagics"]) == 1
    assert len(ip.configurables) == before
    for name in (
        "mm_commit",
        "mm_log",
        "mm_diff",
        "mm_checkout",
        "mm_rollback",
        "mm_stage",
        "mm_alias",
        "mm_models",
        "mm_gate",
    ):
        assert name in ip.magics_manager.magics["line"]
    assert "mm_train" in ip.magics_manager.magics["cell"]


def test_help_comes_from_magic_arguments(ip):
    doc = ip.magics_manager.magics["line"]["mm_commit"].__doc__
    assert "%mm_commit" in doc and "-m MESSAGE" in doc and "--model" in doc
    assert "--cv" in ip.magics_manager.magics["cell"]["mm_train"].__doc__


def test_config_traits(ip):
    ip.run_line_magic("config", "MMMagics.test_size = 0.5")
    try:
        run = ip.run_cell_magic("mm_train", "iris", TRAIN_LOGREG)
        assert run.evaluation["test_size"] == 0.5 and run.evaluation["test_rows"] == 75
    finally:
        ip.run_line_magic("config", "MMMagics.test_size = 0.25")


def test_train_records_a_full_run(ip):
    run = ip.run_cell_magic("mm_train", "iris", TRAIN_LOGREG)
    assert run.model_var == "model" and run.task == "classification"
    for key in ("accuracy", "precision_macro", "recall_macro", "f1_macro", "f1_weighted", "confusion_matrix"):
        assert key in run.metrics
    assert run.metrics["confusion_matrix"]["labels"] == [0, 1, 2]
    assert run.params["max_iter"] == 500
    assert run.data["rows"] == 112 and "profile" in run.data and run.data["hash"]
    assert run.schema["feature_names"][0] == "sepal length (cm)"
    assert run.code == TRAIN_LOGREG
    assert run.environment["packages"]["scikit-learn"]
    assert run.evaluation["stratified"] is True
    # the namespace has the fitted model, as if the cell had run normally
    from sklearn.utils.validation import check_is_fitted

    check_is_fitted(ip.user_ns["model"])
    assert "<table" in html_of(ip, run) and "accuracy" in str(run)


def test_binary_gets_binary_metrics_and_regression_gets_errors(ip):
    ip.run_cell("from sklearn.datasets import load_breast_cancer, load_diabetes")
    ip.run_cell("X, y = load_breast_cancer(return_X_y=True)")
    run = ip.run_cell_magic("mm_train", "bc", TRAIN_LOGREG.replace("500", "5000"))
    for key in ("precision", "recall", "f1"):
        assert 0 < run.metrics[key] <= 1
    ip.run_cell("X, y = load_diabetes(return_X_y=True)")
    run = ip.run_cell_magic("mm_train", "dia", "from sklearn.linear_model import Ridge\nreg = Ridge()\n")
    assert run.task == "regression" and set(run.metrics) == {"mae", "rmse", "r2"}


def test_explicit_test_set_cv_and_model_choice(ip):
    ip.run_cell(
        "from sklearn.model_selection import train_test_split\n"
        "X_tr, X_test, y_tr, y_test = train_test_split(X, y, random_state=1)"
    )
    run = ip.run_cell_magic("mm_train", "iris --data X_tr y_tr", TRAIN_LOGREG)
    assert run.evaluation["test"] == "X_test/y_test" and run.evaluation["test_rows"] == 38
    ip.run_cell("del X_test, y_test")
    run = ip.run_cell_magic("mm_train", "iris --cv 3", TRAIN_TREE)
    assert run.evaluation["method"] == "3-fold cross-validation" and len(run.evaluation["folds"]) == 3
    assert "accuracy_std" in run.metrics and run.data["rows"] == 150
    two = TRAIN_LOGREG + TRAIN_TREE.replace("model =", "other =")
    with pytest.raises(UsageError, match=r"several estimators \(model, other\): pick one with --model VAR"):
        ip.run_cell_magic("mm_train", "iris", two)
    assert ip.run_cell_magic("mm_train", "iris --model other", two).model_var == "other"
    # a transformer on its own is not a model: the predictor is chosen
    cell = TRAIN_LOGREG + "from sklearn.preprocessing import StandardScaler\nscaler = StandardScaler()\n"
    assert ip.run_cell_magic("mm_train", "iris", cell).model_var == "model"
    # an estimator used inside a pipeline is not a competing candidate
    pipe = cell + "from sklearn.pipeline import make_pipeline\npipe = make_pipeline(scaler, model)\n"
    run = ip.run_cell_magic(
        "mm_train", "iris", pipe.replace("model = ", "clf = ").replace("(scaler, model)", "(scaler, clf)")
    )
    assert run.model_var == "pipe"


def test_grid_search_is_understood(ip):
    cell = (
        "from sklearn.model_selection import GridSearchCV\nfrom sklearn.tree import DecisionTreeClassifier\n"
        "search = GridSearchCV(DecisionTreeClassifier(random_state=0), {'max_depth': [1, 2, 3]}, cv=3)\n"
    )
    run = ip.run_cell_magic("mm_train", "iris", cell)
    assert run.search["kind"] == "GridSearchCV" and run.search["candidates"] == 3 and run.search["folds"] == 3
    assert set(run.search["best_params"]) == {"max_depth"}
    assert len(run.search["cv_results"]) == 3 and run.search["cv_results"][0]["rank"] == 1
    assert type(run.model).__name__ == "DecisionTreeClassifier"  # the best estimator is what gets versioned
    version = line(ip, "mm_commit iris -m tuned")
    assert version.extra["search"]["best_score"] == run.search["best_score"]


def test_commit_log_diff_checkout_rollback(ip, tmp_path):
    ip.run_cell_magic("mm_train", "iris", TRAIN_LOGREG)
    v1 = line(ip, 'mm_commit iris -m "first version"')
    assert v1.id == "iris@v1" and v1.message == "first version" and len(v1.commit) == 40
    assert "iris@v1" in str(v1) and v1.commit[:8] in str(v1)
    result = ip.run_cell_magic("mm_train", "iris --from iris@v1 --commit -m 'a tree'", TRAIN_TREE)
    v2 = result.version
    assert v2.id == "iris@v2" and v2.parent == "iris@v1" and v2.message == "a tree"
    page = line(ip, "mm_log iris")
    assert [v.number for v in page.versions] == [2, 1] and "<table" in html_of(ip, page)
    diff = line(ip, "mm_diff iris@v1 iris@v2")
    assert diff.params["max_depth"] == (None, 1) and 0 < diff.agreement < 1
    assert "predictions agree" in html_of(ip, diff)
    out = line(ip, "mm_checkout iris@v1 --as old")
    assert out.var == "old"
    X = ip.user_ns["X"]
    assert np.array_equal(ip.user_ns["old"].predict(X), ws(tmp_path).registry.checkout("iris@v1").predict(X))
    v3 = line(ip, "mm_rollback iris@v1 -m 'tree too simple'")
    assert v3.number == 3 and v3.parent == "iris@v1" and v3.rollback_of == "iris@v2"


def test_commit_any_fitted_estimator(ip):
    ip.run_cell("from sklearn.linear_model import LogisticRegression\nclf = LogisticRegression(max_iter=300).fit(X, y)")
    v = line(ip, "mm_commit other --model clf --data X y -m 'fitted elsewhere'")
    assert v.id == "other@v1" and v.data["rows"] == 150 and v.stage == "train" and v.probe


def test_lifecycle_alias_gate_models(ip):
    ip.run_cell_magic("mm_train", "iris --commit -m good", TRAIN_LOGREG)
    ip.run_cell_magic("mm_train", "iris --commit -m weak", TRAIN_TREE)
    gates = line(ip, 'mm_gate iris "accuracy>=0.9"')
    assert gates.gates == [{"expr": "accuracy >= 0.9", "stage": "deploy"}]
    check = line(ip, "mm_stage iris@v2 deploy --check")
    assert not check.results[0].passed and "✗ accuracy" in html_of(ip, check)
    with pytest.raises(UsageError, match="iris@v2 cannot enter deploy: accuracy >= 0.9"):
        line(ip, "mm_stage iris@v2 deploy -m try")
    t = line(ip, "mm_stage iris@v1 deploy -m ship")
    assert t.path == ["evaluate", "deploy"] and t.actor == "tester@ci"
    alias = line(ip, "mm_alias iris@v1 production")
    assert alias.new == 1
    assert line(ip, "mm_checkout iris@production").version.number == 1
    assert line(ip, "mm_alias iris production --delete").new is None
    models = line(ip, "mm_models")
    assert [m.name for m in models.models] == ["iris"] and models.models[0].stages == {"deploy": 1, "evaluate": 1}


@pytest.mark.parametrize(
    ("magic", "message"),
    [
        ("mm_commit iris -m x", "nothing to commit for iris"),
        ("mm_commit iris", "needs a reason"),
        ("mm_log nope", "unknown model 'nope'"),
        ("mm_diff iris@v1 iris@v", "malformed version 'iris@v'"),
        ("mm_checkout iris@v9", "unknown model 'iris'"),
        ("mm_gate iris 'accuracy >> 1'", "bad gate expression"),
        ("mm_log", "missing name — usage: %mm_log"),
        ("mm_log a b", "unrecognized arguments: b"),
        ("mm_rollback iris -m x", "say which version"),
        ("mm_commit iris -m 'unclosed", "check the quotes"),
    ],
)
def test_misuse_is_a_one_line_usage_error(ip, magic, message):
    with pytest.raises(UsageError) as err:
        line(ip, magic)
    assert message in str(err.value) and "\n" not in str(err.value)


@pytest.mark.parametrize(
    ("cell", "args", "message"),
    [
        ("x = 1\n", "", "defines no scikit-learn estimator"),
        (TRAIN_LOGREG + "y = y[:10]\n", "", "X has 150 rows but y has 10"),
        (TRAIN_LOGREG + "del X\n", "", "no training data found"),
        (
            "from sklearn.linear_model import LogisticRegression\nmodel = LogisticRegression(C=-1)\n",
            "",
            "fitting LogisticRegression failed: InvalidParameterError",
        ),
        ("zz = 1\nraise ValueError('boom')\n", "", "the cell raised ValueError at line 2: boom"),
        (TRAIN_LOGREG, "--model nothere", "no variable 'nothere'"),
        (TRAIN_LOGREG, "--data X nothere", "no variable 'nothere'"),
        (TRAIN_LOGREG, "--from iris@v4", "unknown model 'iris'"),
        (TRAIN_LOGREG, "--commit", "--commit needs a message"),
        (TRAIN_LOGREG, "--cv 1", "at least 2 folds"),
    ],
)
def test_training_errors_leave_namespace_and_registry_unchanged(ip, tmp_path, cell, args, message):
    before = dict(ip.user_ns)
    with pytest.raises(UsageError) as err:
        ip.run_cell_magic("mm_train", f"iris {args}".strip(), cell)
    assert message in str(err.value) and "\n" not in str(err.value)
    assert "zz" not in ip.user_ns and "model" not in ip.user_ns
    assert ip.user_ns["X"] is before["X"] and ip.user_ns["y"] is before["y"]
    assert ws(tmp_path).registry.models() == []
    with pytest.raises(UsageError, match="nothing to commit"):
        line(ip, "mm_commit iris -m x")


def test_keyboard_interrupt_records_nothing(ip, tmp_path):
    ip.user_ns["_stop"] = KeyboardInterrupt
    cell = "from sklearn.linear_model import LogisticRegression\nmodel = LogisticRegression()\nraise _stop()\n"
    with pytest.raises(UsageError, match="interrupted: nothing was recorded"):
        ip.run_cell_magic("mm_train", "iris", cell)
    assert "model" not in ip.user_ns
    assert ws(tmp_path).registry.models() == []


def test_cell_may_use_magics_and_fit_itself(ip):
    cell = (
        "%time 1 + 1\nfrom sklearn.linear_model import LogisticRegression\n"
        "model = LogisticRegression(max_iter=500).fit(X, y)\n"
    )
    run = ip.run_cell_magic("mm_train", "iris", cell)
    assert "clone" in run.evaluation["note"] and run.data["rows"] == 150


def complete(ip, text: str, cursor: int | None = None) -> list[tuple[int, int, str]]:
    """What a front end gets: the whole cell and the cursor (as Jupyter's complete_request sends them), through the
    completer's public ``completions`` API, as (start, end, text) — never a pre-split token."""
    from IPython.core.completer import provisionalcompleter

    cursor = len(text) if cursor is None else cursor
    with provisionalcompleter():
        return [(c.start, c.end, c.text) for c in ip.Completer.completions(text, cursor)]


def test_completion_of_names_versions_and_aliases(ip):
    ip.run_cell_magic("mm_train", "iris --commit -m one", TRAIN_LOGREG)
    ip.run_cell_magic("mm_train", "iris --commit -m two", TRAIN_TREE)
    line(ip, "mm_alias iris@v1 production")
    versions = {"iris@v1", "iris@v2", "iris@production"}

    got = complete(ip, "%mm_diff iris@")  # IPython splits at "@": the defect was Python builtins here
    assert {t for _, _, t in got} == versions and {(s, e) for s, e, _ in got} == {(9, 14)}
    assert [t for _, _, t in complete(ip, "%mm_diff iris@pr")] == ["iris@production"]  # not print, property, %prun
    assert {t for _, _, t in complete(ip, "%mm_diff iris@v1 iris@")} == versions  # the second positional too
    assert [t for _, _, t in complete(ip, "%mm_deploy ")] == ["iris"]  # model names only, no Python keywords
    assert [t for _, _, t in complete(ip, "x = 1\n%mm_log ir")] == ["iris"]  # a magic on a later line of a cell
    assert {t for _, _, t in complete(ip, "%%mm_train iris --from iris@")} == versions  # --from takes a version
    assert {t for _, _, t in complete(ip, "%mm_deploy iris --docker ir")} == {"iris"}  # after a switch
    # the cursor in the middle of a line: what is before it counts
    text = "%mm_diff iris@ iris@v1"
    assert {t for _, _, t in complete(ip, text, cursor=14)} == versions
    # options of the magic itself, from the verbs table
    assert [t for _, _, t in complete(ip, "%mm_deploy iris --po")] == ["--port"]
    # what is not ours stays with IPython: a free-text value, another magic, plain Python
    assert "iris" not in {t for _, _, t in complete(ip, "%mm_deploy iris -m ir")}
    assert "abs" in {t for _, _, t in complete(ip, "ab")}
    assert complete(ip, '%mm_commit iris -m "ab') == []


def test_a_run_from_a_parent_is_compared_with_that_parent(ip):
    ip.run_cell_magic("mm_train", "iris --commit -m one", TRAIN_LOGREG)
    ip.run_cell_magic("mm_train", "iris --commit -m two", TRAIN_TREE)
    run = ip.run_cell_magic("mm_train", "iris --from iris@v1", TRAIN_LOGREG.replace("500", "600"))
    assert run.previous["id"] == "iris@v1"  # the deltas were against the latest, iris@v2
    assert "iris@v1" in html_of(ip, run)
    run = ip.run_cell_magic("mm_train", "iris", TRAIN_LOGREG)
    assert run.previous["id"] == "iris@v2"  # without --from: the latest


def test_help_has_examples_and_errors_say_what_is_missing(ip, capsys):
    ip.run_cell_magic("mm_train", "iris --commit -m one", TRAIN_LOGREG)
    help_text = ip.object_inspect_text("%mm_log")
    assert "::" not in help_text.split("usage:")[0] and "examples:\n  %mm_log iris\n" in help_text
    with pytest.raises(UsageError) as info:
        line(ip, "mm_diff iris@v1")
    message = str(info.value)
    assert "missing B" in message and "usage: %mm_diff [--no-agreement] A B" in message and "required" not in message
    with pytest.raises(UsageError, match="unknown model 'irsi': did you mean 'iris'") as info:
        line(ip, "mm_monitor irsi")
    assert "%mm_commit" not in str(info.value)  # was: "commit one with %mm_commit", from a monitor
    line(ip, "mm")
    listing = capsys.readouterr().out.splitlines()
    columns = {row.index(row.split()[1]) for row in listing}
    assert len(columns) == 1, listing  # %mm_deployments no longer pushes its help out of the column


def test_text_fallbacks_are_readable(ip):
    from IPython.core.formatters import PlainTextFormatter

    ip.run_cell_magic("mm_train", "iris --commit -m one", TRAIN_LOGREG)
    text = PlainTextFormatter()(line(ip, "mm_log iris"))
    assert text.startswith("iris: 1 version(s)") and "Version(" not in text


def test_deploy_predict_rollback_undeploy(ip, tmp_path):
    ip.run_cell_magic("mm_train", "iris --commit -m good", TRAIN_LOGREG)
    ip.run_cell_magic("mm_train", "iris --commit -m weak", TRAIN_TREE)
    line(ip, 'mm_gate iris "accuracy>=0.9"')
    with pytest.raises(UsageError, match="iris@v2 cannot enter deploy"):
        line(ip, "mm_deploy iris@v2")
    dep = line(ip, "mm_deploy iris@v1 --batch -m 'first release'")  # --batch: the default, spelled out
    try:
        assert dep.status == "running" and dep.url.startswith("http://127.0.0.1:") and dep.batch
        pred = line(ip, "mm_predict iris X.head(2)")
        assert pred.version == "iris@v1" and pred.outputs["predict"] == [0, 0]
        assert set(pred.latency_ms) == {"total", "server", "queue", "processing", "network"}
        proba = line(ip, "mm_predict iris X.iloc[[0]] --proba")
        assert len(proba.outputs["predict_proba"][0]) == 3
        assert "P(class 2)" in html_of(ip, proba)  # asked for and shown (it was asked for and never shown)
        assert not dep.forced and [g["passed"] for g in dep.gates] == [True, True]  # the gates a normal deploy passed
        card = html_of(ip, dep)
        assert "✓ accuracy &gt;= 0.9" in card and f"<a href='{dep.url}/v2/models/iris'" in card
        listing = line(ip, "mm_deployments")
        assert [d.name for d in listing.deployments] == ["iris"] and "running" in str(listing)
        forced = line(ip, "mm_deploy iris@v2 --force -m 'try the stump anyway'")
        assert forced.forced and "FORCED past accuracy >= 0.9" in str(forced)  # it looked exactly like a normal one
        assert "deployed past refused gates (accuracy &gt;= 0.9, not worse than iris@v1" in html_of(ip, forced)
        assert line(ip, "mm_predict iris X.head(1)").version == "iris@v2"
        v3 = line(ip, "mm_rollback iris@v1 -m 'stump is bad'")
        assert line(ip, "mm_predict iris X.head(1)").version == v3.id == "iris@v3"
        assert v3.stage == "deploy"  # the card printed says where the version it just put live is (it said evaluate)
        (summary,) = line(ip, "mm_models").models
        assert (summary.serving, summary.serving_status) == ("iris@v3", "running")
        assert ws(tmp_path).lifecycle.stage("iris@v2") == "retire"  # replaced versions leave the serving stages
        with pytest.raises(UsageError, match="could not evaluate"):
            line(ip, "mm_predict iris not_a_variable")
        with pytest.raises(UsageError, match="nope is not deployed"):
            line(ip, "mm_predict nope X.head(1)")
    finally:
        stopped = line(ip, "mm_undeploy iris")
    assert stopped.status == "stopped"
    assert line(ip, "mm_deployments").deployments == []
    (summary,) = line(ip, "mm_models").models  # the deploy stage still counts v3; nothing serves it any more
    assert summary.serving is None and "not deployed" in str(summary) and "versions by stage" in str(summary)
    with pytest.raises(UsageError, match="not deployed"):
        line(ip, "mm_undeploy iris")


def test_monitor_feedback_probe(ip, tmp_path):
    ip.run_cell_magic("mm_train", "iris --commit -m good", TRAIN_LOGREG)
    line(ip, "mm_deploy iris@v1")
    try:
        pred = line(ip, "mm_predict iris X.head(5)")
        with pytest.raises(UsageError, match="had 5 rows but 3 labels"):
            line(ip, "mm_feedback iris y.head(3)")
        line(ip, "mm_feedback iris y.head(5)")
        assert pred.request_id
        line(ip, "mm_probe iris -n 3")
        snap = wait_until(
            lambda: (s := line(ip, "mm_monitor iris --window 10m")).requests >= 1 and s, "the request in the monitor"
        )
        # the three probes give the network part of the latency split but are not traffic (they were counted: 4)
        assert snap.requests == 1 and "network" in snap.latency_ms
        assert snap.quality["accuracy"] == 1.0 and snap.labelled == 5
        assert "iris (iris@v1)" in str(snap)
        with pytest.raises(UsageError, match="bad duration"):
            line(ip, "mm_monitor iris --window soon")
        ip.user_ns["two_ids"] = ["a", "b"]
        with pytest.raises(UsageError, match="2 request ids but 1 labels"):
            line(ip, "mm_feedback iris [0] --ids two_ids")
    finally:
        line(ip, "mm_undeploy iris")


def test_engine_advice_is_spelled_as_a_magic_in_the_notebook(ip):
    ip.run_cell(
        "%%mm_train iris --commit -m one\nfrom sklearn.linear_model import LogisticRegression\n"
        "model = LogisticRegression(max_iter=500)\n"
    )
    with pytest.raises(UsageError, match=r"\(see %mm_deployments\)$"):
        line(ip, "mm_undeploy iris")
    with pytest.raises(UsageError, match=r"deploy it with %mm_deploy iris$"):
        line(ip, "mm_predict iris [[1,2,3,4]]")
    with pytest.raises(UsageError, match=r"retrain to make a new version \(%%mm_train iris --from iris@v1\)"):
        line(ip, "mm_stage iris@v1 train")


def test_every_version_committed_by_the_magics_is_explained(ip, tmp_path):
    """%%mm_train --commit and %mm_commit both leave an explanation; %mm_explain shows it (text bars in HTML too),
    %mm_diff shows the importance shift, and a damaged explanation artifact is refused, not shown."""
    ip.run_cell_magic("mm_train", "iris --commit -m logreg", TRAIN_LOGREG)
    ip.run_cell("from sklearn.tree import DecisionTreeClassifier\ntree = DecisionTreeClassifier(max_depth=2).fit(X, y)")
    v2 = line(ip, "mm_commit iris --model tree --data X y -m 'a tree'")
    for spec in ("iris@v1", "iris@v2"):
        x = line(ip, f"mm_explain {spec}")
        assert x.version == spec and len(x.features) == 4 and x.rows > 0 and x.repeats == 3
        assert {f["feature"] for f in x.features} == set(ip.user_ns["X"].columns)
        assert x.features[0]["importance"] >= x.features[-1]["importance"]  # largest first
        assert x.features[0]["feature"].startswith("petal")  # iris is told apart by its petals
        html = html_of(ip, x)
        assert "█" in html and "permutation importance" in html
    assert line(ip, "mm_explain iris@v2").own == "impurity importances"
    assert v2.explanation["top"][0][0].startswith("petal")

    diff = line(ip, "mm_diff iris@v1 iris@v2")
    assert {r["feature"] for r in diff.importance_shift} == set(ip.user_ns["X"].columns)
    assert "importance shift" in str(diff) and "importance shift" in html_of(ip, diff)

    store = ws(tmp_path).objects
    store.path(v2.explanation["sha256"]).write_bytes(b"{}")
    with pytest.raises(UsageError, match="explanation of iris@v2 is corrupted"):
        line(ip, "mm_explain iris@v2")


def test_a_model_card_tells_a_versions_story_from_the_record(ip, tmp_path):
    """%mm_card assembles purpose, data, gates, explanation, lineage and stages from what was recorded; its HTML
    escapes user text; `mm card --out` writes Markdown or HTML."""
    ip.run_cell_magic("mm_train", "iris --commit -m 'baseline: flags <b>iris</b> species for the demo'", TRAIN_LOGREG)
    ip.run_cell_magic("mm_train", "iris --from iris@v1 --commit -m 'a tree'", TRAIN_TREE)
    line(ip, 'mm_gate iris "accuracy>=0.5"')
    line(ip, "mm_stage iris@v1 deploy -m 'ship it'")
    card = line(ip, "mm_card iris@v1")
    text = card.markdown
    for heading in ("Intended use and owner", "Training data", "Evaluation and gates", "Explanation", "Lineage",
                    "Stage history", "Deployment and live quality", "Known limits"):  # fmt: skip
        assert f"## {heading}" in text
    assert "baseline: flags <b>iris</b> species" in text and "tester@ci" in text
    assert "| evaluate -> deploy | accuracy >= 0.5 | passed" in text
    assert "Versions derived from it**: iris@v2" in text and "Now in **deploy**" in text
    assert "petal" in text.split("## Explanation")[1].split("##")[0]
    assert "Not deployed on this machine" in text and "Trained on 112 rows" in text  # the training split
    html = html_of(ip, card)
    assert "<table>" in html and "<b>iris</b>" not in html and "&lt;b&gt;iris&lt;/b&gt;" in html
    assert "Derived from**: iris@v1" in line(ip, "mm_card iris@v2").markdown

    from mm_magics.cli import main

    root = str(tmp_path / "ws" / ".mm")
    assert main(["-C", root, "card", "iris@v1", "--out", str(tmp_path / "card.md")]) == 0
    assert (tmp_path / "card.md").read_text() == text
    assert main(["-C", root, "card", "iris@v1", "--out", str(tmp_path / "card.html")]) == 0
    assert (tmp_path / "card.html").read_text().startswith("<!doctype html>")


def test_a_models_description_is_the_first_section_of_its_cards(ip, tmp_path, capsys):
    """%mm_describe records who owns a model and what it is (not) for, in one audited commit; every version's card
    reads it; user text is escaped in HTML; `mm describe` shows and clears it; bad input is one line."""
    ip.run_cell_magic("mm_train", "iris --commit -m 'baseline'", TRAIN_LOGREG)
    empty = line(ip, "mm_describe iris")
    assert (empty.owner, empty.commit) == ("", None) and "no description yet" in str(empty)
    assert "No description of the model yet: `mm describe iris --owner TEAM" in line(ip, "mm_card iris@v1").markdown
    said = line(ip, "mm_describe iris --owner 'risk <team>' --use 'sorting flowers at the counter' "
                    "--not-for 'medical decisions' -m 'who answers for it'")  # fmt: skip
    assert said.owner == "risk <team>" and said.commit
    assert "&lt;team&gt;" in html_of(ip, said) and "<team>" not in html_of(ip, said)
    text = line(ip, "mm_card iris@v1").markdown
    assert "- **Intended use**: sorting flowers at the counter" in text and "- **Not for**: medical decisions" in text
    assert "- **Owner**: risk <team>" in text and "- **This version** (from the commit message): baseline" in text
    assert "- Not meant for: medical decisions (the owner's word)." in text.split("## Known limits")[1]
    assert "&lt;team&gt;" in html_of(ip, line(ip, "mm_card iris@v1"))
    assert line(ip, "mm_describe iris --owner 'risk <team>'").commit is None  # said again: nothing to commit
    assert ws(tmp_path).git.history(max_count=1)[0].message.startswith("who answers for it")

    from mm_magics.cli import main

    root = str(tmp_path / "ws" / ".mm")
    assert main(["-C", root, "describe", "iris", "--owner", ""]) == 0
    capsys.readouterr()
    assert main(["-C", root, "describe", "iris"]) == 0
    shown = capsys.readouterr().out
    assert "intended use: sorting flowers" in shown and "owner" not in shown
    assert main(["-C", root, "describe", "nope", "--owner", "x"]) == 2
    assert main(["-C", root, "describe", "iris", "--use", "x" * 2001]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 2 and "at most 2000 characters" in err[-1]


def test_reproduce_rebuilds_a_version_and_refuses_other_data(ip, tmp_path):
    """%mm_reproduce re-runs the recorded cell in a clean namespace: identical predictions on the agreement sample,
    the same metrics; a changed dataset is refused before anything is fitted; --commit keeps the rebuild."""
    ip.run_cell_magic("mm_train", "iris --commit -m logreg", TRAIN_LOGREG)
    ip.user_ns["unrelated"] = 42  # the clean namespace must not see the notebook's other names
    result = line(ip, "mm_reproduce iris@v1")
    assert result.identical and result.agreement == 1.0 and result.agreement_rows > 0
    assert result.metrics and all(a == b for a, b in result.metrics.values())
    assert result.committed is None and ws(tmp_path).registry.get("iris").number == 1
    assert "predicts identically" in str(result)

    ip.run_cell("X2 = X * 1.01")  # every row changed (a change to held-out rows only is not in the fingerprint)
    with pytest.raises(UsageError, match="this is not the data iris@v1 was trained on: its fingerprint is"):
        line(ip, "mm_reproduce iris@v1 --data X2 y")
    with pytest.raises(UsageError, match="no variable 'Z' in the notebook"):
        line(ip, "mm_reproduce iris@v1 --data Z y")

    kept = line(ip, "mm_reproduce iris@v1 --commit -m 'rebuilt'")
    assert kept.committed == "iris@v2" and kept.same_artifact
    v2 = ws(tmp_path).registry.get("iris@v2")
    assert v2.parent == "iris@v1" and v2.message == "rebuilt"


def test_reproduce_refuses_code_that_needs_the_notebook(ip):
    ip.run_cell("depth = 2")
    ip.run_cell_magic(
        "mm_train", "iris --commit -m tree", "from sklearn.tree import DecisionTreeClassifier\n"
        "model = DecisionTreeClassifier(max_depth=depth)"
    )  # fmt: skip
    with pytest.raises(UsageError, match="recorded code uses 'depth', which a clean namespace does not have"):
        line(ip, "mm_reproduce iris@v1")
    ip.run_cell("from sklearn.linear_model import LogisticRegression\nclf = LogisticRegression(max_iter=300).fit(X, y)")
    line(ip, "mm_commit other --model clf --data X y -m 'fitted elsewhere'")
    with pytest.raises(UsageError, match="other@v1 has no recorded code"):
        line(ip, "mm_reproduce other@v1")
