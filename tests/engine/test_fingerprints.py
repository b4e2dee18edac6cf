import numpy as np
import pandas as pd

from mm_magics.engine.fingerprints import content_hash, estimator_params, fingerprint, jsonable, schema_of


def test_hash_tracks_content(iris):
    X, y = iris
    assert content_hash(X, y) == content_hash(X.copy(), y.copy())
    changed = X.copy()
    changed.iloc[0, 0] += 1
    assert content_hash(changed, y) != content_hash(X, y)
    assert content_hash(X.to_numpy(), y) != content_hash(X, y)  # names and types are part of the data


def test_profile_is_a_drift_reference(iris):
    X, y = iris
    fp = fingerprint(X, y)
    assert fp["rows"] == 150 and fp["columns"] == 4
    col = fp["profile"]["sepal length (cm)"]
    assert col["kind"] == "numeric" and len(col["quantiles"]) == 11
    assert col["min"] == X["sepal length (cm)"].min()
    assert fp["target"]["kind"] == "numeric"


def test_categorical_and_missing():
    frame = pd.DataFrame({"city": ["a", "b", "a", None], "x": [1.0, np.nan, 3.0, 4.0]})
    fp = fingerprint(frame)
    assert fp["profile"]["city"] == {
        "kind": "categorical",
        "missing": 1,
        "unique": 2,
        "frequencies": {"a": 0.666667, "b": 0.333333},
    }
    assert fp["profile"]["x"]["missing"] == 1


def test_schema_for_frames_and_arrays(iris):
    X, _ = iris
    assert schema_of(X)["feature_names"][0] == "sepal length (cm)"
    arr = schema_of(X.to_numpy())
    assert arr["feature_names"] is None and arr["n_features"] == 4 and arr["input_type"] == "numpy.ndarray"


def test_params_are_json(models):
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    params = estimator_params(make_pipeline(StandardScaler(), models["logreg"]))
    assert params["logisticregression__max_iter"] == 500
    assert params["logisticregression"] == "LogisticRegression"
    assert jsonable(np.float32(0.5)) == 0.5 and jsonable(float("nan")) == "nan"
