"""The version timeline widget (``%mm_log NAME`` where a widget front end runs, and a tab of ``%mm_view``).

The kernel sends the engine's columnar :class:`~mm_magics.engine.timeline.Timeline` payload once (~11 bytes a
version); the browser draws only what is in view on a canvas. Everything after that is a small message:

* ``poll`` (the browser, every few seconds while the widget is on screen): one ref read; when the registry moved
  (a commit from this kernel, another kernel or ``mm``), the *patch* since the head the browser holds. Nothing runs
  in the kernel between polls, so a closed, hidden or re-run widget costs nothing and nothing outlives its cell.
* ``select``: the version's details (:meth:`Workspace.details`: the version, its diff against its parent, the
  verdict on each next stage, whether it serves now).
* ``metric``: the payload again with another metric.
* ``act``: deploy, roll back to, move to a stage, set an alias: one engine call each, confirmed in the browser
  first; the answer is the engine's one-line result or refusal, then a patch and fresh details.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import anywidget
import traitlets

from ..engine.errors import MMError
from ..engine.timeline import Timeline
from . import StaticPicture

STATIC = Path(__file__).parent / "static"
#: The longest code diff sent with a selection (the full diff stays one %mm_diff away).
CODE_DIFF_LIMIT = 4000


class VersionTimeline(StaticPicture, anywidget.AnyWidget):
    """A model's versions on a time axis (see the module docstring)."""

    _esm = STATIC / "timeline.js"
    _css = STATIC / "timeline.css"
    payload = traitlets.Dict().tag(sync=True)  # the engine's Timeline payload, as first sent (patches are messages)
    stages = traitlets.List().tag(sync=True)  # the lifecycle's stages in order: stable colours and shapes
    serving = traitlets.Dict().tag(sync=True)  # {"version": NAME@vN, "status": ...} of the model's deployment
    poll_s = traitlets.Float(3.0).tag(sync=True)  # how often a displayed timeline asks whether the registry moved

    def __init__(self, workspace: Any, record: Timeline, **kwargs: Any) -> None:
        self._ws = workspace
        self._record = record
        stages = [s["name"] for s in workspace.lifecycle.picture(record.model).stages]
        super().__init__(payload=record.payload, stages=stages, serving=self._serving(), **kwargs)
        self.on_msg(self._on_message)

    @property
    def model_name(self) -> str:
        return self._record.model

    # -- messages from the browser --------------------------------------------------------------------------------
    def _on_message(self, _widget: Any, content: dict[str, Any], _buffers: Any) -> None:
        """Answer one browser message; an answer that fails says why in the widget, never in a later cell."""
        kind = content.get("kind") if isinstance(content, dict) else None
        handler = {"poll": self._poll, "select": self._select, "metric": self._metric, "act": self._act}.get(kind)
        if handler is None:
            return
        try:
            handler(content)
        except MMError as exc:
            self.send({"kind": "error", "message": str(exc), "request": content.get("request")})
        except Exception as exc:  # a bug must not surface as a traceback in whichever cell runs next
            self.send({"kind": "error", "message": f"{type(exc).__name__}: {exc}", "request": content.get("request")})

    def _poll(self, content: dict[str, Any]) -> None:
        since = content.get("head")
        if since and since == self._ws.registry.head():
            self.send({"kind": "same"})  # the common case: one ref file read, a few bytes back
            return
        self.send_patch(since if isinstance(since, str) else None)

    def send_patch(self, since: str | None) -> None:
        """Send what changed since ``since`` (the whole timeline when the face holds nothing usable)."""
        update = self._ws.registry.timeline(self.model_name, metric=self.payload.get("metric"), since=since)
        self.serving = self._serving()
        self.send({"kind": "patch", "payload": update.payload})

    def _select(self, content: dict[str, Any]) -> None:
        number = int(content["number"])
        record = self._ws.details(f"{self.model_name}@v{number}").to_dict()  # the shape the REST API sends too
        if record["diff"] is not None:
            record["diff"]["code_diff"] = record["diff"]["code_diff"][:CODE_DIFF_LIMIT]
        self.send({"kind": "details", "request": content.get("request"), "details": record})

    def _metric(self, content: dict[str, Any]) -> None:
        name = str(content.get("name") or "")
        self._record = self._ws.registry.timeline(self.model_name, metric=name or None)
        self.payload = self._record.payload

    def _act(self, content: dict[str, Any]) -> None:
        """One engine call per action; the browser asked the user to confirm what it says will happen."""
        action, number = content.get("action"), int(content["number"])
        spec = f"{self.model_name}@v{number}"
        reason = f"from the timeline widget: {action} {spec}"
        if action == "deploy":
            dep = self._ws.deployments.deploy(spec, reason=reason)
            message = f"{dep.version} serves at {dep.url} ({dep.status})"
        elif action == "rollback":
            new, dep = self._ws.deployments.rollback(self.model_name, f"v{number}", reason)
            where = f"; the deployment switched to it at {dep.url}" if dep is not None else ""
            message = f"rolled back: {new.id} is a copy of {spec}{where}"
        elif action == "stage":
            move = self._ws.lifecycle.transition(spec, str(content.get("stage")), reason)
            message = f"{spec} moved {move.from_stage} → {move.to_stage}"
        elif action == "alias":
            change = self._ws.registry.set_alias(spec, str(content.get("alias") or ""), reason)
            message = str(change)
        else:
            raise MMError(f"unknown action {action!r}: deploy, rollback, stage or alias")
        self.send({"kind": "done", "request": content.get("request"), "message": message})
        self.send_patch(self.payload.get("head") if content.get("head") is None else content["head"])
        self._select({"number": number})

    def _serving(self) -> dict[str, Any]:
        if not (self._ws.run_dir / "deployments").is_dir():  # never deployed: start no serving machinery
            return {}
        dep = self._ws.deployments.get(self.model_name)
        return {"version": dep.version, "status": dep.status} if dep is not None else {}
