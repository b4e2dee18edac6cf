"""The explanation bar chart (``%mm_explain NAME@vN`` where a widget front end runs): features by permutation
importance with their spread, and mean |SHAP| beside them when the version has it. The explanation never changes
once committed, so the widget only draws: no messages, no polling. Its output carries the record's HTML (text bars)
for a saved notebook, an untrusted copy or nbconvert."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import anywidget
import traitlets

from . import StaticPicture

STATIC = Path(__file__).parent / "static"


def chart_data(record: Any) -> dict[str, Any]:
    """The record's ``to_dict()`` as the chart reads it: one array per measure (columnar), largest importance first,
    and the one-line SHAP note (what the values are, why there are none, or how to get them)."""
    doc = record.to_dict()
    features = sorted(doc["features"], key=lambda f: -f["importance"])
    shap = record.has_shap()
    return {
        "version": doc["version"],
        "method": doc["method"],
        "scoring": doc["scoring"],
        "rows": doc["rows"],
        "repeats": doc["repeats"],
        "own": doc["own"],
        "feature": [f["feature"] for f in features],
        "importance": [f["importance"] for f in features],
        "std": [f["std"] for f in features],
        "own_value": [f.get("own") for f in features] if doc["own"] else [],
        "shap": [f.get("shap") for f in features] if shap else [],
        "shap_output": doc["shap_output"] if shap else None,
        "shap_note": record.shap_note(),
    }


class ExplanationChart(StaticPicture, anywidget.AnyWidget):
    """A horizontal SVG bar chart of one version's explanation (at most 20 features drawn, then "… N more")."""

    _esm = STATIC / "explanation.js"
    _css = STATIC / "explanation.css"
    chart = traitlets.Dict().tag(sync=True)

    def __init__(self, workspace: Any, record: Any, **kwargs: Any) -> None:
        del workspace  # nothing to ask the engine: an explanation is fixed when its version is committed
        self._record = record
        super().__init__(chart=chart_data(record), **kwargs)
