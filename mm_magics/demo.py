"""``mm demo``: the quick-start story on a dataset scikit-learn ships, with nothing to set up."""

from __future__ import annotations

import os
from pathlib import Path


def run_demo(directory: str | Path = "mm-demo") -> str:
    """Train, commit, retrain, diff, gate, deploy-stage and roll back a model; return a short report."""
    from sklearn.datasets import load_breast_cancer
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import accuracy_score, f1_score
    from sklearn.model_selection import train_test_split
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler
    from sklearn.tree import DecisionTreeClassifier

    from .engine import TransitionError, Workspace, fingerprint, schema_of

    root = Path(directory).resolve()
    root.mkdir(parents=True, exist_ok=True)
    ws = Workspace.open(root / ".mm")
    reg, lc = ws.registry, ws.lifecycle
    X, y = load_breast_cancer(return_X_y=True, as_frame=True)
    X_tr, X_te, y_tr, y_te = train_test_split(X, y, test_size=0.25, random_state=0, stratify=y)

    def train(model: object, code: str) -> tuple[object, dict[str, float]]:
        model.fit(X_tr, y_tr)
        pred = model.predict(X_te)
        return model, {"accuracy": accuracy_score(y_te, pred), "f1": f1_score(y_te, pred)}

    lines = [f"workspace: {ws.root}"]
    code1 = "make_pipeline(StandardScaler(), LogisticRegression(C=1.0))"
    m1, met1 = train(make_pipeline(StandardScaler(), LogisticRegression(C=1.0, max_iter=1000)), code1)
    common = {"data": fingerprint(X_tr, y_tr), "schema": schema_of(X_tr), "probe_data": X_tr}
    v1 = reg.commit("cancer", m1, message="Baseline: scaled logistic regression", metrics=met1, code=code1, **common)
    lines.append(f"committed {v1.id}: accuracy {met1['accuracy']:.3f}")
    code2 = "DecisionTreeClassifier(max_depth=2)"
    m2, met2 = train(DecisionTreeClassifier(max_depth=2, random_state=0), code2)
    v2 = reg.commit("cancer", m2, message="Try a shallow tree", metrics=met2, code=code2, parent=v1.id, **common)
    lines.append(f"committed {v2.id} (from {v1.id}): accuracy {met2['accuracy']:.3f}")
    diff = reg.diff(v1.id, v2.id)
    lines.append(
        f"diff {v1.id} -> {v2.id}: accuracy {met2['accuracy'] - met1['accuracy']:+.3f}, "
        f"predictions agree on {diff.agreement:.0%} of {diff.agreement_rows} probe rows"
    )
    lc.set_gates("cancer", ["accuracy >= 0.95"])
    lc.transition(v1.id, "deploy", "Baseline passes the gate")
    try:
        lc.transition(v2.id, "deploy", "Ship the tree?")
    except TransitionError as exc:
        lines.append(f"gate refused {v2.id}: {exc}".split(". Fix")[0])
    v3 = reg.rollback("cancer", v1.number, "The tree is worse: back to the baseline")
    lines.append(f"rolled back: {v3.id} equals {v1.id} (parent {v3.parent})")
    reg.set_alias(v3.id, "production")
    lines.append(str(reg.log("cancer")))
    lines.append(f"explore it: cd {root} && mm log cancer && git -C .mm log --oneline")
    os.environ.setdefault("MM_DEMO_DONE", "1")
    return "\n".join(lines)
