import pandas as pd
import pytest

from mm_magics.engine.serving import protocol
from mm_magics.engine.serving.protocol import BadRequest, Schema

NAMED = Schema(2, ["a", "b"], {"a": "float64", "b": "int64"})
PLAIN = Schema(3, None, {"x0": "float64", "x1": "float64", "x2": "float64"})


def test_v2_matrix_columnar_and_single_row():
    frame, outputs = protocol.from_v2(
        {"inputs": [{"name": "x", "shape": [2, 2], "datatype": "FP64", "data": [[1, 2], [3, 4]]}]}, NAMED, 100
    )
    assert list(frame.columns) == ["a", "b"] and frame.to_numpy().tolist() == [[1, 2], [3, 4]]
    assert outputs == ["predict"]
    frame, _ = protocol.from_v2(
        {
            "inputs": [
                {"name": "b", "shape": [2], "datatype": "INT64", "data": [2, 4]},
                {"name": "a", "shape": [2], "datatype": "FP64", "data": [1, 3]},
            ],
            "outputs": [{"name": "predict_proba"}],
        },
        NAMED,
        100,
    )
    assert frame.to_numpy().tolist() == [[1, 2], [3, 4]]
    frame, _ = protocol.from_v2(
        {"inputs": [{"name": "x", "shape": [3], "datatype": "FP32", "data": [1, 2, 3]}]}, PLAIN, 100
    )
    assert frame.shape == (1, 3)


def test_mlflow_formats():
    split = protocol.from_mlflow({"dataframe_split": {"columns": ["b", "a"], "data": [[2, 1]]}}, NAMED, 100)
    records = protocol.from_mlflow({"dataframe_records": [{"a": 1, "b": 2}]}, NAMED, 100)
    instances = protocol.from_mlflow({"instances": [[1, 2]]}, NAMED, 100)
    inputs = protocol.from_mlflow({"inputs": {"a": [1], "b": [2]}}, NAMED, 100)
    for frame in (split, records, instances, inputs):
        pd.testing.assert_frame_equal(frame, pd.DataFrame({"a": [1.0], "b": [2.0]}))
    csv = protocol.from_csv("a,b\n1,2\n", NAMED, 100)
    pd.testing.assert_frame_equal(csv, pd.DataFrame({"a": [1.0], "b": [2.0]}))


@pytest.mark.parametrize(
    ("call", "status", "text"),
    [
        (lambda: protocol.from_v2([], NAMED, 10), 400, "JSON object"),
        (lambda: protocol.from_v2({"inputs": []}, NAMED, 10), 422, "non-empty list"),
        (lambda: protocol.from_v2({"inputs": [{"name": "x"}]}, NAMED, 10), 422, "lacks shape, datatype, data"),
        (
            lambda: protocol.from_v2(
                {"inputs": [{"name": "x", "shape": [1, 2], "datatype": "FLOAT", "data": [1, 2]}]}, NAMED, 10
            ),
            422,
            "not a V2 datatype",
        ),
        (
            lambda: protocol.from_v2(
                {"inputs": [{"name": "x", "shape": [2, 2], "datatype": "FP64", "data": [1, 2]}]}, NAMED, 10
            ),
            422,
            "needs 4",
        ),
        (
            lambda: protocol.from_v2(
                {"inputs": [{"name": "x", "shape": [20, 2], "datatype": "FP64", "data": [0] * 40}]}, NAMED, 10
            ),
            413,
            "over the limit of 10",
        ),
        (
            lambda: protocol.from_mlflow({"dataframe_split": {"columns": ["a"], "data": [[1]]}}, NAMED, 10),
            422,
            "missing feature(s): b",
        ),
        (
            lambda: protocol.from_mlflow({"dataframe_records": [{"a": 1, "b": 2, "c": 3}]}, NAMED, 10),
            422,
            "unknown feature(s): c",
        ),
        (lambda: protocol.from_mlflow({"instances": [[1, "x"]]}, NAMED, 10), 422, "feature 'b' must be numeric"),
        (lambda: protocol.from_mlflow({"instances": [[1, 2, 3]]}, NAMED, 10), 422, "model expects 2 features"),
        (lambda: protocol.from_mlflow({"instances": [[1, 2]], "inputs": [[1, 2]]}, NAMED, 10), 422, "exactly one"),
        (lambda: protocol.from_mlflow({"instances": []}, NAMED, 10), 422, "no rows"),
        (lambda: protocol.from_csv('a,b\n"x', NAMED, 10), 400, "CSV could not be parsed"),
    ],
)
def test_bad_input_names_the_problem(call, status, text):
    with pytest.raises(BadRequest) as err:
        call()
    assert err.value.status == status and text in err.value.message
