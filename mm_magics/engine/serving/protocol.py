"""Request parsing and validation for the two wire protocols we speak.

* Open Inference Protocol V2 (KServe / MLServer / Triton): tensors with name, shape, datatype, data.
* MLflow scoring: ``dataframe_split``, ``dataframe_records``, ``instances`` or ``inputs``, and CSV.

Both become one table of rows checked against the schema captured at training time. Every problem raises
:class:`BadRequest` with an HTTP status and a message naming the fix, so bad input never becomes a 5xx.
"""

from __future__ import annotations

import io
import json
import math
import struct
from dataclasses import dataclass
from functools import cached_property
from typing import Any

import numpy as np
import pandas as pd

from .rows import Rows

#: Header our own probes carry (value: the admin token): the server answers them but does not record them as traffic.
PROBE_HEADER = "x-mm-probe"

#: V2 datatypes and the numpy dtype each maps to.
V2_DTYPES = {
    "BOOL": np.bool_,
    "UINT8": np.uint8,
    "UINT16": np.uint16,
    "UINT32": np.uint32,
    "UINT64": np.uint64,
    "INT8": np.int8,
    "INT16": np.int16,
    "INT32": np.int32,
    "INT64": np.int64,
    "FP16": np.float16,
    "FP32": np.float32,
    "FP64": np.float64,
    "BYTES": np.object_,
}


#: The binary tensor data extension (Triton's clients use it by default; KServe and MLServer speak it): the body is
#: a JSON header of this many bytes, then each binary tensor's raw little-endian bytes, in order.
BINARY_HEADER = "inference-header-content-length"

#: Deepest list nesting a tensor's data may have (a real tensor has a handful of dimensions).
MAX_DEPTH = 32


class BadRequest(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.served: Any = None  # the version that refused it, when not the one the request was routed to


@dataclass(frozen=True)
class Schema:
    """The input contract of one version, from the schema recorded at training time."""

    n_features: int | None
    feature_names: list[str] | None
    dtypes: dict[str, str]

    @classmethod
    def from_version(cls, schema: dict[str, Any]) -> Schema:
        return cls(schema.get("n_features"), schema.get("feature_names"), dict(schema.get("dtypes") or {}))

    @cached_property
    def index(self) -> pd.Index:
        """The column index, built once per schema (building it per request was ~10% of a request's cost)."""
        return pd.Index(self.columns)

    @property
    def columns(self) -> list[str]:
        if self.feature_names:
            return list(self.feature_names)
        return [f"x{i}" for i in range(self.n_features or 0)]

    def numeric(self, column: str) -> bool:
        kind = self.dtypes.get(column, "float64")
        return kind.startswith(("float", "int", "uint", "bool"))

    def v2_inputs(self) -> list[dict[str, Any]]:
        return [{"name": "input-0", "datatype": "FP64", "shape": [-1, self.n_features or -1]}]


def v2_datatype(arr: np.ndarray) -> str:
    kind = arr.dtype.kind
    if kind == "b":
        return "BOOL"
    if kind in "iu":
        return "INT64" if kind == "i" else "UINT64"
    if kind == "f":
        return "FP64"
    return "BYTES"


def _check_rows(n: int, max_rows: int) -> None:
    if n < 1:
        raise BadRequest(422, "the request has no rows: send at least one row of features")
    if n > max_rows:
        raise BadRequest(413, f"the request has {n} rows, over the limit of {max_rows}: split it into smaller batches")


def _frame(rows: Any, schema: Schema, columns: list[str] | None, max_rows: int) -> Rows:
    """Rows (list of lists) + optional column names -> rows with exactly the schema's columns, in order: a float
    array when the schema is all numeric and the columns are its own (or taken by position), no DataFrame built."""
    if not isinstance(rows, list):
        raise BadRequest(422, "data must be a list of rows (e.g. [[5.1, 3.5, 1.4, 0.2]])")
    _check_rows(len(rows), max_rows)
    if rows and not isinstance(rows[0], (list, tuple)):
        rows = [rows] if schema.n_features and len(rows) == schema.n_features and len(rows) > 1 else [[r] for r in rows]
    width = {len(r) if isinstance(r, (list, tuple)) else -1 for r in rows}
    if len(width) != 1 or -1 in width:
        raise BadRequest(422, "every row must be a list with the same number of values")
    n_cols = width.pop()
    if columns is None:
        expected = schema.n_features
        if expected is not None and n_cols != expected:
            raise BadRequest(
                422,
                f"each row has {n_cols} values but the model expects {expected} features"
                f"{' (' + ', '.join(schema.columns) + ')' if schema.feature_names else ''}",
            )
        columns = schema.columns
    elif not isinstance(columns, list):
        raise BadRequest(422, '"columns" must be a list of feature names')
    elif len(columns) != n_cols:
        raise BadRequest(422, f"{len(columns)} column names but rows have {n_cols} values")
    names = [str(c) for c in columns]
    if all(schema.numeric(c) for c in schema.columns):
        # fast path for the common all-numeric schema: one float block, no per-column conversion
        try:
            arr = np.asarray(rows, dtype=np.float64)
        except (TypeError, ValueError):
            arr = None  # the slow path below names the offending value
        except OverflowError:
            raise BadRequest(422, "a value is beyond the float64 range: send numbers within ±1.8e308") from None
        if arr is not None and arr.ndim == 2:
            positional = not schema.feature_names and len(names) == len(schema.columns)
            if names == schema.columns or positional:
                return Rows(schema.index, array=arr)
            return Rows.of(_conform(pd.DataFrame(arr, columns=names, copy=False), schema, numeric=True))
    return Rows.of(_conform(pd.DataFrame(rows, columns=names), schema))


def _conform(frame: pd.DataFrame, schema: Schema, *, numeric: bool = False) -> pd.DataFrame:
    """Exactly the schema's columns, in order, numeric where the schema says so (``numeric``: already float)."""
    expected = schema.columns
    if not schema.feature_names and len(frame.columns) == len(expected) and list(frame.columns) != expected:
        # a model trained without feature names takes columns by position, whatever they are called (as MLflow's
        # own scoring server does); a model trained with names keeps matching them by name
        frame = frame.set_axis(expected, axis=1)
    if schema.feature_names or set(frame.columns) != set(expected):
        missing = [c for c in expected if c not in frame.columns]
        extra = [c for c in frame.columns if c not in expected]
        if missing or extra:
            parts = [
                f"missing feature(s): {', '.join(missing)}" if missing else "",
                f"unknown feature(s): {', '.join(extra)}" if extra else "",
            ]
            raise BadRequest(422, f"{'; '.join(p for p in parts if p)}; the model expects {', '.join(expected)}")
        if list(frame.columns) != expected:
            frame = frame[expected]
    if numeric:
        return frame
    for col in expected:
        if schema.numeric(col):
            try:
                frame[col] = pd.to_numeric(frame[col], errors="raise").astype("float64")
            except OverflowError:
                raise BadRequest(422, f"feature {col!r} has a value beyond the float64 range") from None
            except (TypeError, ValueError):
                bad = next((v for v in frame[col] if not _is_number(v)), None)
                raise BadRequest(422, f"feature {col!r} must be numeric, got {bad!r}") from None
    return frame


def _is_number(value: Any) -> bool:
    return (isinstance(value, (int, float)) and not isinstance(value, bool)) or value is None


@dataclass(frozen=True)
class V2Request:
    """A parsed V2 inference request: the rows, the outputs asked for, and which of them go back as binary."""

    rows: Rows
    outputs: list[str]
    binary: frozenset[str] = frozenset()


def split_binary(body: bytes, header_length: str) -> tuple[Any, bytes]:
    """The JSON header and the binary tail of a request that uses the binary tensor data extension."""
    if not header_length.isdigit() or int(header_length) > len(body):
        raise BadRequest(
            400,
            f"Inference-Header-Content-Length {header_length!r} is not a length within the {len(body)}-byte body: "
            "send the byte length of the JSON header that starts the body",
        )
    size = int(header_length)
    try:
        return json.loads(body[:size]), body[size:]
    except (ValueError, RecursionError) as exc:  # JSONDecodeError and UnicodeDecodeError are ValueErrors
        raise BadRequest(400, f"the binary request's JSON header is not valid JSON ({exc})") from None


def _binary_values(raw: bytes, datatype: str, where: str) -> list[Any]:
    """One tensor's values from its raw bytes: little-endian numbers, or BYTES as 4-byte-length-prefixed strings."""
    if datatype != "BYTES":
        dtype = np.dtype(V2_DTYPES[datatype]).newbyteorder("<")
        if len(raw) % dtype.itemsize:
            raise BadRequest(
                422, f"{where}: {len(raw)} bytes are not a whole number of {datatype} values ({dtype.itemsize} each)"
            )
        return np.frombuffer(raw, dtype=dtype).tolist()
    values: list[Any] = []
    at = 0
    while at < len(raw):
        if at + 4 > len(raw):
            raise BadRequest(422, f"{where}: a BYTES element's 4-byte length is cut off at byte {at}")
        (size,) = struct.unpack_from("<I", raw, at)
        at += 4
        if at + size > len(raw):
            raise BadRequest(422, f"{where}: a BYTES element of {size} bytes runs past the tensor's data")
        try:
            values.append(raw[at : at + size].decode("utf-8"))
        except UnicodeDecodeError:
            raise BadRequest(422, f"{where}: a BYTES element is not UTF-8 text") from None
        at += size
    return values


def binary_output(arr: np.ndarray, datatype: str) -> bytes:
    """An output tensor's raw bytes for a binary response (the inverse of :func:`_binary_values`)."""
    if datatype == "BYTES":
        parts = []
        for value in arr.ravel().tolist():
            data = value if isinstance(value, bytes) else str(value).encode()
            parts.append(struct.pack("<I", len(data)) + data)
        return b"".join(parts)
    return np.ascontiguousarray(arr, dtype=np.dtype(V2_DTYPES[datatype]).newbyteorder("<")).tobytes()


def _tensor_data(t: dict[str, Any], where: str, tail: bytes | None, offset: int) -> tuple[list[Any], int]:
    """A tensor's flat values, from its JSON ``data`` or its slice of the binary tail; and the tail offset after it."""
    params = t.get("parameters")
    size = params.get("binary_data_size") if isinstance(params, dict) else None
    if size is None:
        if "data" not in t:
            raise BadRequest(422, f"{where} lacks data (or parameters.binary_data_size with a binary body)")
        return _flatten(t["data"], f"{where}.data"), offset
    if tail is None:
        raise BadRequest(
            400, f"{where} has binary_data_size but the request has no Inference-Header-Content-Length header"
        )
    if not isinstance(size, int) or isinstance(size, bool) or size < 0 or offset + size > len(tail):
        raise BadRequest(
            422, f"{where}.parameters.binary_data_size {size!r} does not fit the {len(tail) - offset} binary bytes left"
        )
    return _binary_values(tail[offset : offset + size], t["datatype"], where), offset + size


def from_v2(body: Any, schema: Schema, max_rows: int, tail: bytes | None = None) -> V2Request:
    """Parse a V2 inference request (``tail``: the binary bytes after a binary extension's JSON header)."""
    if not isinstance(body, dict):
        raise BadRequest(400, 'a V2 inference request is a JSON object with an "inputs" list')
    inputs = body.get("inputs")
    if not isinstance(inputs, list) or not inputs:
        raise BadRequest(422, '"inputs" must be a non-empty list of tensors {name, shape, datatype, data}')
    tensors = []
    offset = 0
    for i, t in enumerate(inputs):
        if not isinstance(t, dict):
            raise BadRequest(422, f"inputs[{i}] must be an object with name, shape, datatype and data")
        missing = [k for k in ("name", "shape", "datatype") if k not in t]
        if missing:
            raise BadRequest(422, f"inputs[{i}] lacks {', '.join(missing)}")
        if not isinstance(t["datatype"], str) or t["datatype"] not in V2_DTYPES:
            raise BadRequest(
                422, f"inputs[{i}].datatype {t['datatype']!r} is not a V2 datatype ({', '.join(V2_DTYPES)})"
            )
        shape = t["shape"]
        if not (isinstance(shape, list) and shape and all(isinstance(d, int) and d >= 0 for d in shape)):
            raise BadRequest(422, f"inputs[{i}].shape must be a list of non-negative integers, e.g. [2, 4]")
        flat, offset = _tensor_data(t, f"inputs[{i}]", tail, offset)
        if math.prod(shape) != len(flat):
            raise BadRequest(422, f"inputs[{i}] has {len(flat)} values but shape {shape} needs {math.prod(shape)}")
        tensors.append((str(t["name"]), shape, flat))
    if tail is not None and offset != len(tail):
        raise BadRequest(422, f"{len(tail) - offset} binary bytes follow the last tensor's data: send only the tensors")
    if len(tensors) == 1 and len(tensors[0][1]) == 2:
        _, (n, k), flat = tensors[0]
        _check_rows(n, max_rows)
        parsed = _frame([flat[r * k : (r + 1) * k] for r in range(n)], schema, None, max_rows)
    elif len(tensors) == 1 and len(tensors[0][1]) == 1 and (schema.n_features or 0) > 1:
        parsed = _frame([tensors[0][2]], schema, None, max_rows)
    else:  # one tensor per feature (columnar), matched by name
        lengths = {math.prod(s) for _, s, _ in tensors}
        if len(lengths) != 1:
            raise BadRequest(422, "columnar inputs (one tensor per feature) must all have the same length")
        n = lengths.pop()
        _check_rows(n, max_rows)
        parsed = Rows.of(_conform(pd.DataFrame({name: flat for name, _, flat in tensors}), schema))
    outputs, binary = _v2_outputs(body)
    return V2Request(parsed, outputs, binary)


def _v2_outputs(body: dict[str, Any]) -> tuple[list[str], frozenset[str]]:
    """The outputs asked for (``predict`` by default) and those to send back as binary: each output's
    ``parameters.binary_data``, else the request's ``parameters.binary_data_output`` (Triton's client sets it when
    it names no outputs)."""
    params = body.get("parameters")
    all_binary = isinstance(params, dict) and params.get("binary_data_output") is True
    requested = body.get("outputs")
    if requested is not None and not isinstance(requested, list):
        raise BadRequest(422, '"outputs" must be a list like [{"name": "predict"}]')
    outputs: list[str] = []
    binary: set[str] = set()
    for o in requested or []:
        name = o.get("name") if isinstance(o, dict) else None
        if name not in ("predict", "predict_proba"):
            raise BadRequest(422, f'unknown output {name!r}: ask for "predict" or "predict_proba"')
        outputs.append(name)
        flag = (o.get("parameters") or {}).get("binary_data") if isinstance(o.get("parameters"), dict) else None
        if flag is True or (flag is None and all_binary):
            binary.add(name)
    if not outputs:
        outputs = ["predict"]
        if all_binary:
            binary.add("predict")
    return outputs, frozenset(binary)


def _flatten(data: Any, where: str) -> list[Any]:
    if not isinstance(data, list):
        raise BadRequest(422, f"{where} must be a list")
    return _flatten_ordered(data)


def _flatten_ordered(data: list[Any]) -> list[Any]:
    """Row-major values of a nested list, iteratively (no recursion limit to hit on deeply nested input)."""
    out: list[Any] = []
    stack = [iter(data)]
    while stack:
        for value in stack[-1]:
            if isinstance(value, list):
                if len(stack) >= MAX_DEPTH:
                    raise BadRequest(422, f"data is nested more than {MAX_DEPTH} lists deep: send rows of values")
                stack.append(iter(value))
                break
            out.append(value)
        else:
            stack.pop()
    return out


def from_mlflow(body: Any, schema: Schema, max_rows: int) -> Rows:
    """Parse an MLflow scoring request (JSON) into a frame."""
    if not isinstance(body, dict):
        raise BadRequest(
            400,
            "an MLflow request is a JSON object with one of dataframe_split, dataframe_records, instances or inputs",
        )
    keys = [k for k in ("dataframe_split", "dataframe_records", "instances", "inputs") if k in body]
    if len(keys) != 1:
        raise BadRequest(422, "send exactly one of dataframe_split, dataframe_records, instances or inputs")
    key, value = keys[0], body[keys[0]]
    if key == "dataframe_split":
        if not isinstance(value, dict) or "data" not in value:
            raise BadRequest(422, 'dataframe_split must be {"columns": [...], "data": [[...], ...]}')
        return _frame(value["data"], schema, value.get("columns"), max_rows)
    if key == "dataframe_records" or (isinstance(value, list) and value and isinstance(value[0], dict)):
        if not isinstance(value, list) or not all(isinstance(r, dict) for r in value):
            raise BadRequest(422, f"{key} must be a list of {{column: value}} objects")
        _check_rows(len(value), max_rows)
        return Rows.of(_conform(pd.DataFrame.from_records(value), schema))
    if isinstance(value, dict):  # columnar {"col": [values]}
        try:
            frame = pd.DataFrame(value)
        except ValueError as exc:
            raise BadRequest(422, f"{key}: columns must be lists of equal length ({exc})") from None
        _check_rows(len(frame), max_rows)
        return Rows.of(_conform(frame, schema))
    return _frame(value, schema, None, max_rows)


def from_csv(text: str, schema: Schema, max_rows: int) -> Rows:
    try:
        frame = pd.read_csv(io.StringIO(text))
    except Exception as exc:
        raise BadRequest(
            400, f"CSV could not be parsed ({exc}): send a header row and comma-separated values"
        ) from None
    _check_rows(len(frame), max_rows)
    return Rows.of(_conform(frame, schema))


def to_jsonable(arr: Any) -> list[Any]:
    values = np.asarray(arr)
    if values.dtype.kind in "fc":
        return (
            [None if not math.isfinite(v) else v for v in values.astype(float).ravel().tolist()]
            if values.ndim == 1
            else values.astype(float).tolist()
        )
    return values.tolist()
