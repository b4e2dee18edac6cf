"""Validated request rows: the schema's columns in order, held as a float array when every feature is numeric.

A 1-row request used to become a pandas DataFrame on the request path (~40 µs to build, and as much again to turn
back into the array a model that takes arrays wants), then the recorder glued a thousand such frames together with
``pd.concat`` every second while holding the GIL. Rows keep the array the parser already built; the DataFrame is
made only for what needs one (a pipeline that selects columns by name, a non-numeric schema), and the recorder
stacks the arrays of a whole flush at once.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd


class Rows:
    """Rows in the schema's column order, from a float array (numeric schema) or a conformed DataFrame."""

    __slots__ = ("_array", "_frame", "columns")

    def __init__(
        self, columns: pd.Index, *, array: np.ndarray | None = None, frame: pd.DataFrame | None = None
    ) -> None:
        if (array is None) == (frame is None):
            raise ValueError("Rows takes an array or a frame")
        self.columns = columns
        self._array = array
        self._frame = frame

    @classmethod
    def of(cls, frame: pd.DataFrame) -> Rows:
        return cls(frame.columns, frame=frame)

    def __len__(self) -> int:
        return len(self._array) if self._array is not None else len(self._frame)  # type: ignore[arg-type]

    @property
    def numeric_array(self) -> np.ndarray | None:
        """The float array these rows were parsed into, or None when they came as a frame."""
        return self._array

    @property
    def array(self) -> np.ndarray:
        """The rows as a float64 array (a model that takes arrays is called with this)."""
        if self._array is not None:
            return self._array
        assert self._frame is not None
        return self._frame.to_numpy(dtype=np.float64, copy=False)

    @property
    def frame(self) -> pd.DataFrame:
        """The rows as a DataFrame with the schema's columns, built on first use."""
        if self._frame is None:
            self._frame = pd.DataFrame(self._array, columns=self.columns, copy=False)
        return self._frame

    @staticmethod
    def concat(parts: list[Rows]) -> Rows:
        """One block from many requests' rows (a micro-batch): arrays stack, anything else concatenates frames."""
        if len(parts) == 1:
            return parts[0]
        arrays = [p._array for p in parts]
        if all(a is not None for a in arrays):
            return Rows(parts[0].columns, array=np.vstack(arrays))  # type: ignore[arg-type]
        return Rows.of(pd.concat([p.frame for p in parts], ignore_index=True))


def model_input(model: Any, rows: Rows) -> Any:
    """What ``model`` is called with: the array for a model checked to take one (``state.ArrayInput``), else the
    frame."""
    return rows.array if getattr(model, "takes_array", False) else rows.frame
