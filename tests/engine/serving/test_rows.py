import numpy as np
import pandas as pd
import pytest

from mm_magics.engine.monitoring.recorder import _one_frame
from mm_magics.engine.serving.rows import Rows, model_input
from mm_magics.engine.serving.state import ArrayInput

COLUMNS = pd.Index(["a", "b"])


def test_rows_from_an_array_build_their_frame_only_when_asked():
    rows = Rows(COLUMNS, array=np.array([[1.0, 2.0]]))
    assert len(rows) == 1 and rows._frame is None
    assert rows.frame.to_dict("list") == {"a": [1.0], "b": [2.0]}
    assert rows.array is rows.numeric_array


def test_concat_stacks_arrays_and_falls_back_to_frames():
    a, b = Rows(COLUMNS, array=np.ones((2, 2))), Rows(COLUMNS, array=np.zeros((1, 2)))
    both = Rows.concat([a, b])
    assert both.numeric_array.shape == (3, 2)
    mixed = Rows.concat([a, Rows.of(pd.DataFrame({"a": [5.0], "b": [6.0]}))])
    assert mixed.numeric_array is None and mixed.frame.to_numpy().tolist() == [[1, 1], [1, 1], [5, 6]]
    with pytest.raises(ValueError):
        Rows(COLUMNS)


def test_a_model_gets_the_array_only_when_it_was_checked_to_take_one():
    from sklearn.linear_model import LinearRegression

    model = LinearRegression().fit(pd.DataFrame({"a": [0.0, 1.0, 2.0], "b": [1.0, 0.0, 1.0]}), [0.0, 1.0, 2.0])
    rows = Rows(COLUMNS, array=np.array([[1.0, 1.0]]))
    assert isinstance(model_input(model, rows), pd.DataFrame)
    assert isinstance(model_input(ArrayInput(model), rows), np.ndarray)


def test_the_recorder_stacks_the_rows_of_a_flush_into_one_frame():
    parts = [Rows(COLUMNS, array=np.array([[float(i), -float(i)]])) for i in range(3)]
    assert _one_frame(parts).to_numpy().tolist() == [[0, 0], [1, -1], [2, -2]]
    frames = [pd.DataFrame({"a": [1.0], "b": [2.0]}), Rows.of(pd.DataFrame({"a": [3.0], "b": [4.0]}))]
    assert _one_frame(frames).to_numpy().tolist() == [[1, 2], [3, 4]]
