"""The probe sample: a few training rows kept as an artifact so two versions' predictions can be compared.

Stored without pickle: ``.npy`` with ``allow_pickle=False`` for numeric arrays, pandas' JSON ``split`` form with
explicit dtypes for data frames. It lives in the artifact store, never in git, and is switchable off (set the
workspace's ``probe_rows`` to 0, or pass ``probe=None``) for sensitive data.
"""

from __future__ import annotations

import contextlib
import io
import json
from typing import Any

import numpy as np
import pandas as pd


def sample(X: Any, rows: int, seed: int = 0) -> Any:
    """Up to ``rows`` rows of ``X`` chosen at random with a fixed seed (same data, same sample)."""
    n = len(X)
    if n <= rows:
        return X
    idx = np.sort(np.random.default_rng(seed).choice(n, size=rows, replace=False))
    if isinstance(X, (pd.DataFrame, pd.Series)):
        return X.iloc[idx]
    return np.asarray(X)[idx]


def encode(X: Any) -> tuple[bytes, str]:
    """Bytes and format name for a sample."""
    if isinstance(X, pd.DataFrame):
        payload = {
            "dtypes": {str(c): str(t) for c, t in X.dtypes.items()},
            "frame": json.loads(X.to_json(orient="split", index=False, date_format="iso")),
        }
        return json.dumps(payload, separators=(",", ":")).encode(), "pandas-json"
    arr = np.asarray(X)
    if arr.dtype.kind == "O":
        frame = pd.DataFrame(arr)
        frame.columns = [str(c) for c in frame.columns]
        data, _ = encode(frame)
        return data, "pandas-json-array"
    buf = io.BytesIO()
    np.save(buf, arr, allow_pickle=False)
    return buf.getvalue(), "npy"


def decode(data: bytes, fmt: str) -> Any:
    if fmt == "npy":
        return np.load(io.BytesIO(data), allow_pickle=False)
    if fmt in ("pandas-json", "pandas-json-array"):
        payload = json.loads(data)
        split = payload["frame"]
        frame = pd.DataFrame(split["data"], columns=split["columns"])
        for col, dtype in payload["dtypes"].items():
            with contextlib.suppress(TypeError, ValueError):
                frame[col] = frame[col].astype(dtype)
        return frame.to_numpy() if fmt == "pandas-json-array" else frame
    raise ValueError(f"unknown probe format {fmt!r}")
