import json

import numpy as np
import pandas as pd
import pytest

from mm_magics.engine.serving import protocol
from mm_magics.engine.serving.protocol import BadRequest, Schema

NAMED = Schema(2, ["a", "b"], {"a": "float64", "b": "int64"})
PLAIN = Schema(3, None, {"x0": "float64", "x1": "float64", "x2": "float64"})


def test_v2_matrix_columnar_and_single_row():
    parsed = protocol.from_v2(
        {"inputs": [{"name": "x", "shape": [2, 2], "datatype": "FP64", "data": [[1, 2], [3, 4]]}]}, NAMED, 100
    )
    frame = parsed.rows.frame
    assert list(frame.columns) == ["a", "b"] and frame.to_numpy().tolist() == [[1, 2], [3, 4]]
    assert parsed.outputs == ["predict"] and not parsed.binary
    frame = protocol.from_v2(
        {
            "inputs": [
                {"name": "b", "shape": [2], "datatype": "INT64", "data": [2, 4]},
                {"name": "a", "shape": [2], "datatype": "FP64", "data": [1, 3]},
            ],
            "outputs": [{"name": "predict_proba"}],
        },
        NAMED,
        100,
    ).rows.frame
    assert frame.to_numpy().tolist() == [[1, 2], [3, 4]]
    frame = protocol.from_v2(
        {"inputs": [{"name": "x", "shape": [3], "datatype": "FP32", "data": [1, 2, 3]}]}, PLAIN, 100
    ).rows.frame
    assert frame.shape == (1, 3)


def test_mlflow_formats():
    split = protocol.from_mlflow({"dataframe_split": {"columns": ["b", "a"], "data": [[2, 1]]}}, NAMED, 100)
    records = protocol.from_mlflow({"dataframe_records": [{"a": 1, "b": 2}]}, NAMED, 100)
    instances = protocol.from_mlflow({"instances": [[1, 2]]}, NAMED, 100)
    inputs = protocol.from_mlflow({"inputs": {"a": [1], "b": [2]}}, NAMED, 100)
    for rows in (split, records, instances, inputs):
        pd.testing.assert_frame_equal(rows.frame, pd.DataFrame({"a": [1.0], "b": [2.0]}))
    csv = protocol.from_csv("a,b\n1,2\n", NAMED, 100)
    pd.testing.assert_frame_equal(csv.frame, pd.DataFrame({"a": [1.0], "b": [2.0]}))
    # an all-float schema in its own order is parsed straight into an array: no DataFrame on the request path
    floats = Schema(2, ["a", "b"], {"a": "float64", "b": "float64"})
    rows = protocol.from_mlflow({"dataframe_split": {"columns": ["a", "b"], "data": [[1, 2], [3, 4]]}}, floats, 10)
    assert rows.numeric_array.tolist() == [[1.0, 2.0], [3.0, 4.0]] and rows._frame is None
    assert list(rows.frame.columns) == ["a", "b"] and len(rows) == 2
    by_position = protocol.from_mlflow(
        {"dataframe_split": {"columns": ["p", "q", "r"], "data": [[1, 2, 3]]}}, PLAIN, 10
    )
    assert list(by_position.frame.columns) == ["x0", "x1", "x2"]


@pytest.mark.parametrize(
    ("call", "status", "text"),
    [
        (lambda: protocol.from_v2([], NAMED, 10), 400, "JSON object"),
        (lambda: protocol.from_v2({"inputs": []}, NAMED, 10), 422, "non-empty list"),
        (lambda: protocol.from_v2({"inputs": [{"name": "x"}]}, NAMED, 10), 422, "lacks shape, datatype"),
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


def _binary(header: dict, *buffers: bytes) -> tuple[dict, bytes]:
    raw = json.dumps(header).encode()
    return protocol.split_binary(raw + b"".join(buffers), str(len(raw)))


def test_binary_tensors_decode_numbers_and_strings_and_ask_for_binary_outputs():
    values = np.array([[1.5, 2.0], [3.0, 4.0]], dtype="<f4")
    body, tail = _binary(
        {
            "inputs": [
                {"name": "x", "shape": [2, 2], "datatype": "FP32", "parameters": {"binary_data_size": values.nbytes}}
            ],
            "parameters": {"binary_data_output": True},
        },
        values.tobytes(),
    )
    parsed = protocol.from_v2(body, NAMED, 10, tail)
    assert parsed.rows.frame.to_numpy().tolist() == [[1.5, 2.0], [3.0, 4.0]]
    assert parsed.outputs == ["predict"] and parsed.binary == {"predict"}
    words = protocol.binary_output(np.array(["setosa", "é"], dtype=object), "BYTES")
    assert protocol._binary_values(words, "BYTES", "x") == ["setosa", "é"]
    assert np.frombuffer(protocol.binary_output(np.array([1, 2]), "INT64"), "<i8").tolist() == [1, 2]


def test_an_output_may_opt_out_of_binary():
    body, tail = _binary(
        {
            "inputs": [{"name": "x", "shape": [1, 2], "datatype": "FP64", "data": [1, 2]}],
            "outputs": [{"name": "predict", "parameters": {"binary_data": False}}, {"name": "predict_proba"}],
            "parameters": {"binary_data_output": True},
        }
    )
    assert protocol.from_v2(body, NAMED, 10, tail).binary == {"predict_proba"}


@pytest.mark.parametrize(
    ("header", "buffers", "length", "status", "text"),
    [
        ({"inputs": []}, [], "999", 400, "not a length within"),
        ({"inputs": []}, [], "x", 400, "not a length within"),
        (
            {"inputs": [{"name": "x", "shape": [1, 2], "datatype": "FP64", "parameters": {"binary_data_size": 16}}]},
            [b"\0" * 8],
            None,
            422,
            "does not fit the 8 binary bytes",
        ),
        (
            {"inputs": [{"name": "x", "shape": [1, 2], "datatype": "FP64", "parameters": {"binary_data_size": 12}}]},
            [b"\0" * 12],
            None,
            422,
            "not a whole number of FP64",
        ),
        (
            {"inputs": [{"name": "x", "shape": [1, 2], "datatype": "FP64", "parameters": {"binary_data_size": 16}}]},
            [b"\0" * 20],
            None,
            422,
            "4 binary bytes follow",
        ),
        (
            {"inputs": [{"name": "x", "shape": [1], "datatype": "BYTES", "parameters": {"binary_data_size": 6}}]},
            [b"\x09\0\0\0ab"],
            None,
            422,
            "runs past",
        ),
    ],
)
def test_bad_binary_requests_name_the_problem(header, buffers, length, status, text):
    raw = json.dumps(header).encode()
    with pytest.raises(BadRequest) as err:
        body, tail = protocol.split_binary(raw + b"".join(buffers), length or str(len(raw)))
        protocol.from_v2(body, NAMED, 10, tail)
    assert err.value.status == status and text in err.value.message


def test_binary_size_without_a_binary_body_is_a_400():
    body = {"inputs": [{"name": "x", "shape": [1, 2], "datatype": "FP64", "parameters": {"binary_data_size": 16}}]}
    with pytest.raises(BadRequest, match="no Inference-Header-Content-Length"):
        protocol.from_v2(body, NAMED, 10)
