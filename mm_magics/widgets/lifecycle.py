"""The lifecycle graph widget (``%mm_lifecycle NAME[@vN]`` where a widget front end runs)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import anywidget
import traitlets

from ..engine.errors import MMError
from . import StaticPicture

STATIC = Path(__file__).parent / "static"
#: At most this many version ids listed for a clicked stage (newest first); the timeline shows them all.
LISTED = 200


class LifecycleGraph(StaticPicture, anywidget.AnyWidget):
    """The stage DAG of one model, live: click (or Enter on) a stage for its versions, pick one to place it on the
    graph with the verdict on each next move. Every answer is one engine call: ``Lifecycle.picture``."""

    _esm = STATIC / "lifecycle.js"
    _css = STATIC / "lifecycle.css"
    picture = traitlets.Dict().tag(sync=True)
    focus = traitlets.Unicode("").tag(sync=True)  # the stage clicked in the browser
    version = traitlets.Unicode("").tag(sync=True)  # the version chosen in the browser (NAME@vN)
    stage_versions = traitlets.Dict().tag(sync=True)  # {stage: [NAME@vN, ...]} for the focused stage
    error = traitlets.Unicode("").tag(sync=True)  # the engine's one-line reason when an answer failed

    poll_s = traitlets.Float(3.0).tag(sync=True)  # how often a displayed graph asks whether the registry moved

    def __init__(self, workspace: Any, record: Any, **kwargs: Any) -> None:
        self._ws = workspace
        self._record = record
        self._head = workspace.registry.head()
        super().__init__(picture=record.to_dict(), version=record.version or "", **kwargs)
        self.on_msg(self._on_message)

    def _on_message(self, _widget: Any, content: dict[str, Any], _buffers: Any) -> None:
        """``poll`` (the browser, while the graph is on screen): one ref read; when the registry moved (a commit,
        a stage move or a gate from anywhere), the picture again. Nothing runs in the kernel between polls."""
        if not isinstance(content, dict) or content.get("kind") != "poll":
            return
        head = self._ws.registry.head()
        if head == self._head:
            return
        self._head = head
        try:
            self._record = self._ws.lifecycle.picture(self.picture.get("version") or self.picture.get("model", ""))
        except Exception as exc:  # say it in the widget; a poll never breaks a later cell
            self.error = str(exc)
            return
        self.picture = self._record.to_dict()
        if self.focus:
            self._list_stage({"new": self.focus})

    @traitlets.observe("focus")
    def _list_stage(self, change: dict[str, Any]) -> None:
        name, stage = self.picture.get("model", ""), change["new"]
        if not stage:
            return
        self.stage_versions = {stage: self._ws.lifecycle.in_stage(name, stage, LISTED)}

    @traitlets.observe("version")
    def _place(self, change: dict[str, Any]) -> None:
        if not change["new"] or change["new"] == self.picture.get("version"):
            return
        try:
            self._record = self._ws.lifecycle.picture(change["new"])
        except MMError as exc:
            self.error = str(exc)
            return
        self.error = ""
        self.picture = self._record.to_dict()
