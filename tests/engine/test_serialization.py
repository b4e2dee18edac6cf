import io
import json
import zipfile

import numpy as np
import pytest
from sklearn.ensemble import HistGradientBoostingClassifier, RandomForestClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.neighbors import KNeighborsClassifier
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from mm_magics.engine import serialization
from mm_magics.engine.errors import ArtifactCorruptError, UntrustedTypesError

from ..conftest import run_python
from ..helpers import ClipTransformer


def test_same_model_same_bytes_across_processes(iris):
    code = (
        "import sys, hashlib\n"
        "from sklearn.datasets import load_iris\n"
        "from sklearn.pipeline import make_pipeline\n"
        "from sklearn.preprocessing import StandardScaler\n"
        "from sklearn.linear_model import LogisticRegression\n"
        "from mm_magics.engine import serialization\n"
        "X, y = load_iris(return_X_y=True)\n"
        "m = make_pipeline(StandardScaler(), LogisticRegression(max_iter=500)).fit(X, y)\n"
        "print(hashlib.sha256(serialization.dumps(m)).hexdigest())\n"
    )
    first, second = run_python(code), run_python(code)
    assert first.returncode == 0, first.stderr
    assert first.stdout.strip() == second.stdout.strip()
    assert len(first.stdout.strip()) == 64


def test_archive_has_no_clock_or_addresses(iris):
    X, y = iris
    data = serialization.dumps(make_pipeline(StandardScaler(), LogisticRegression(max_iter=300)).fit(X, y))
    archive = zipfile.ZipFile(io.BytesIO(data))
    assert {info.date_time for info in archive.infolist()} == {(1980, 1, 1, 0, 0, 0)}
    ids = []

    def walk(node):
        if isinstance(node, dict):
            if "__id__" in node:
                ids.append(node["__id__"])
            for v in node.values():
                walk(v)
        elif isinstance(node, list):
            for v in node:
                walk(v)

    walk(json.loads(archive.read("schema.json")))
    assert ids and max(ids) < 10_000  # small counters, not memory addresses


@pytest.mark.parametrize(
    "model",
    [
        RandomForestClassifier(n_estimators=3, random_state=0),
        HistGradientBoostingClassifier(max_iter=5),
        KNeighborsClassifier(),
        make_pipeline(StandardScaler(), LogisticRegression(max_iter=300)),
    ],
    ids=lambda m: type(m).__name__,
)
def test_common_estimators_round_trip(iris, model):
    X, y = iris
    model.fit(X, y)
    loaded = serialization.loads(serialization.dumps(model))
    assert np.array_equal(loaded.predict(X), model.predict(X))


def test_untrusted_types_are_listed_with_the_fix(iris):
    X, y = iris
    model = make_pipeline(ClipTransformer(), LogisticRegression(max_iter=300)).fit(X, y)
    data = serialization.dumps(model)
    with pytest.raises(UntrustedTypesError) as err:
        serialization.loads(data, label="artifact of x@v1")
    assert "tests.helpers.ClipTransformer" in str(err.value)
    assert "mm trust" in str(err.value)
    loaded = serialization.loads(data, trusted=serialization.untrusted_types(data))
    assert np.array_equal(loaded.predict(X), model.predict(X))


def test_garbage_is_a_clear_error():
    with pytest.raises(ArtifactCorruptError):
        serialization.loads(b"definitely not a zip")


def test_no_pickle_load_anywhere_in_the_package():
    from pathlib import Path

    import mm_magics

    root = Path(mm_magics.__file__).parent
    offenders = [str(p) for p in root.rglob("*.py") if "pickle.load" in p.read_text() or "joblib.load" in p.read_text()]
    assert offenders == []
