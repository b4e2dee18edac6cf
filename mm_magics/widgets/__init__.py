"""Widgets: the notebook's interactive face (anywidget: one ES module and one stylesheet shipped in the package, no
per-widget npm build). They import the engine; the engine never imports them. Each widget holds an engine record's
data as synced state, answers the browser's clicks with one engine call, and carries the record's static HTML in the
same output, so a saved notebook, an untrusted copy or nbconvert still shows the picture.
"""

from __future__ import annotations

from typing import Any


class StaticPicture:
    """Mixin for a widget over an engine record: its output also carries the record's HTML and text, which is what
    shows where the widget cannot (a saved notebook opened without its kernel, an untrusted copy, nbconvert)."""

    _record: Any

    def static_record(self) -> Any:
        """The record whose picture goes beside the widget (the one it was made from, unless it says otherwise)."""
        return self._record

    def _repr_mimebundle_(self, **kwargs: Any) -> Any:
        from ..render import to_html

        bundle = super()._repr_mimebundle_(**kwargs)  # type: ignore[misc]
        data = bundle[0] if isinstance(bundle, tuple) else bundle
        record = self.static_record()
        data["text/html"] = to_html(record)
        data["text/plain"] = str(record)
        return bundle


#: Engine record (module, class) -> the widget module and the factory that shows it; imported only when shown.
WIDGETS = {
    ("mm_magics.engine.records", "LifecyclePicture"): ("mm_magics.widgets.lifecycle", "LifecycleGraph"),
    ("mm_magics.engine.timeline", "Timeline"): ("mm_magics.widgets.timeline", "VersionTimeline"),
    ("mm_magics.engine.records", "ModelOverview"): ("mm_magics.widgets.view", "ModelView"),
    ("mm_magics.engine.monitoring.live", "Snapshot"): ("mm_magics.widgets.sparklines", "sparklines_for"),
    ("mm_magics.engine.explain", "Explanation"): ("mm_magics.widgets.explanation", "ExplanationChart"),
}


def widget_for(workspace: Any, record: Any) -> Any:
    """The interactive widget for ``record``, or None when it has none or anywidget is missing."""
    target = WIDGETS.get((type(record).__module__, type(record).__qualname__))
    if target is None:
        return None
    try:
        import importlib

        module = importlib.import_module(target[0])
    except ImportError:  # no anywidget here: the static picture still says everything
        return None
    return getattr(module, target[1])(workspace, record)
