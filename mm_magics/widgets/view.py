"""The model view (``%mm_view NAME``): the timeline, the lifecycle graph and the live sparklines as tabs of one
widget, under the deployment's status. Each tab is its own widget with its own small messages; the view only
arranges them (ipywidgets' Tab), so nothing is drawn twice."""

from __future__ import annotations

from html import escape
from typing import Any

import ipywidgets

from . import StaticPicture
from .lifecycle import LifecycleGraph
from .sparklines import Sparklines
from .timeline import VersionTimeline

#: How often the view's sparklines ask for new buckets while the Live tab is on screen.
LIVE_POLL_S = 5.0


class ModelView(StaticPicture, ipywidgets.VBox):
    """One model at a glance: deployment status, then Timeline / Lifecycle / Live tabs."""

    def __init__(self, workspace: Any, record: Any, **kwargs: Any) -> None:
        self._record = record
        dep = record.deployment
        cursor = workspace.monitor.series(
            record.name,
            record.series.window_s,
            deployment=dep,
            since=record.series.until,
        )
        self.timeline = VersionTimeline(workspace, record.timeline)
        self.lifecycle = LifecycleGraph(workspace, record.lifecycle)
        self.sparklines = Sparklines(record.series, cursor=cursor, poll_s=LIVE_POLL_S)
        tabs = ipywidgets.Tab(children=[self.timeline, self.lifecycle, self.sparklines])
        for i, title in enumerate(("Timeline", "Lifecycle", "Live")):
            tabs.set_title(i, title)
        status = ipywidgets.HTML(_status(record))
        super().__init__(children=[status, tabs], **kwargs)
        self.add_class("mm-view")

    def close(self) -> None:
        for child in (self.timeline, self.lifecycle, self.sparklines):
            child.close()
        super().close()


def _status(record: Any) -> str:
    """The deployment line over the tabs: what serves, where, and whether it is healthy (text, not colour alone)."""
    dep = record.deployment
    if dep is None:
        return f"<b>{escape(record.name)}</b> — not deployed"
    mark = "●" if dep.status == "running" else "✗"
    return (
        f"<b>{escape(record.name)}</b> — {mark} {escape(dep.version)} {escape(dep.status)} at "
        f"<code>{escape(dep.url)}</code> ({escape(dep.runner)})"
    )
