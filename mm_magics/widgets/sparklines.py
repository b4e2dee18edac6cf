"""The live sparklines widget (``%mm_monitor NAME`` where a widget front end runs, and a tab of ``%mm_view``).

One small chart per live metric, the current value beside each, reference lines where there is one (the training
value for live quality, the alert threshold for drift), and the open alerts with their advice. During a canary or
shadow release the challenger's line is drawn on the same axes as the champion's (rate, latency p99, error share,
live quality; drift stays the champion's), dashed and in a second colour, with a legend naming both versions. The
first picture is the window from :meth:`Monitor.series`; after that only new buckets are sent, as messages:

* pushed by ``%mm_monitor --refresh``'s updater (:meth:`Sparklines.push`), which stops when the widget is closed,
  the cell re-run, ``--stop`` or the kernel interrupted; or
* asked for by the browser every ``poll_s`` seconds while the widget is on screen (the model view), answered from
  a cursor this widget holds: nothing runs in the kernel between asks.
"""

from __future__ import annotations

import copy
import dataclasses
import threading
from pathlib import Path
from typing import Any

import anywidget
import traitlets

from ..engine.monitoring.series import LiveSeries, Series
from . import StaticPicture

STATIC = Path(__file__).parent / "static"


class Sparklines(StaticPicture, anywidget.AnyWidget):
    """Live metrics of one deployed model as sparklines (see the module docstring)."""

    _esm = STATIC / "sparklines.js"
    _css = STATIC / "sparklines.css"
    series = traitlets.Dict().tag(sync=True)  # the window as first sent: t, columns, reference, ...
    alerts = traitlets.List().tag(sync=True)  # open alerts: rule, message (the advice)
    state = traitlets.Unicode("").tag(sync=True)  # "● live — ..." or "■ stopped — at HH:MM:SS: why"
    live = traitlets.Bool(False).tag(sync=True)
    poll_s = traitlets.Float(0.0).tag(sync=True)  # > 0: the browser asks for new buckets this often

    def __init__(
        self,
        first: Series,
        *,
        cursor: LiveSeries | None = None,
        poll_s: float = 0.0,
        snapshot: Any = None,
        **kwargs: Any,
    ) -> None:
        self._cursor = cursor
        self._snapshot = snapshot  # %mm_monitor's table, kept as this output's static picture
        self._held = first.to_dict()  # the window as the browser holds it, for a view opened later
        self.closed = threading.Event()  # set when the widget is closed: a refresh pushing into it stops
        kwargs.setdefault("alerts", [{"rule": a["rule"], "message": a["message"]} for a in first.alerts])
        super().__init__(series=copy.deepcopy(self._held), poll_s=poll_s, **kwargs)
        self.on_msg(self._on_message)

    def push(self, update: Series) -> None:
        """Send the buckets completed since the last push (nothing when none completed); thread-safe to call
        from one updater thread, as ipykernel's comm messages are."""
        if update.t:
            message = {"kind": "points", "t": update.t, "columns": update.columns, "version": update.version}
            if update.challenger is not None:  # a release: the candidate's columns over the same new buckets
                message["challenger"] = update.challenger
            self.send(message)
            self._hold(update)
        if self._cursor is not None:  # polled (the model view): the alerts the store holds open
            alerts = [{"rule": a["rule"], "message": a["message"]} for a in update.alerts]
            if alerts != self.alerts:
                self.alerts = alerts

    def _hold(self, update: Series) -> None:
        held, cut = self._held, (update.t[-1] - update.window_s) if update.t else None
        had = len(held["t"])
        keep = [i for i, t in enumerate(held["t"]) if cut is None or t > cut]
        held["t"] = [held["t"][i] for i in keep] + list(update.t)
        _slide(held["columns"], update.columns, had, keep, len(update.t))
        mine, theirs = held.get("challenger"), update.challenger
        if theirs is not None:  # a release's columns slide with the champion's (begun as gaps if it began later)
            mine = held["challenger"] = {**theirs, "columns": mine["columns"] if mine else {}}
            _slide(mine["columns"], theirs["columns"], had, keep, len(update.t))
        elif mine is not None:  # the release ended under a cursor made without it: its columns slide as gaps
            _slide(mine["columns"], {}, had, keep, len(update.t))
        held["version"] = update.version

    def _on_message(self, _widget: Any, content: dict[str, Any], _buffers: Any) -> None:
        kind = content.get("kind") if isinstance(content, dict) else None
        if kind == "hello":  # a view opened after points were pushed: send it the window as held now
            self.send({"kind": "window", "series": self._held})
        elif kind == "poll" and self._cursor is not None:
            try:
                self.push(self._cursor.advance())
            except Exception as exc:  # say it in the widget; never let a poll break a later cell
                self.state = f"■ stopped — {type(exc).__name__}: {exc}"
                self.poll_s = 0.0

    def static_record(self) -> Any:
        """%mm_monitor's snapshot (its table) when there is one, else the series as text sparklines."""
        return self._snapshot if self._snapshot is not None else Series(**self._held)

    def close(self) -> None:
        """Closing the widget stops whatever refreshes it."""
        self.closed.set()
        super().close()


def _slide(held: dict[str, list[Any]], new: dict[str, list[Any]], had: int, keep: list[int], n: int) -> None:
    """Slide held columns (``had`` buckets long) to the buckets kept, then append the ``n`` new ones; a column on
    one side only is a gap (None) on the other, so every column stays as long as ``t``."""
    for key in [*held, *(k for k in new if k not in held)]:
        old = held.get(key) or [None] * had
        held[key] = [old[i] for i in keep] + list(new.get(key) or [None] * n)


def sparklines_for(workspace: Any, snapshot: Any, step: float | None = None) -> Sparklines:
    """The sparklines of the model a monitor snapshot shows, over the same window (buckets of ``step`` seconds,
    e.g. a refresh interval), with the snapshot's alerts and its table as the output's static picture."""
    deployment = workspace.deployments.get(snapshot.name)
    cursor = workspace.monitor.series(snapshot.name, snapshot.window_s, step=step, deployment=deployment)
    alerts = [{"rule": a["rule"], "message": a["message"]} for a in snapshot.alerts]
    # a release's comparison is an output of its own beside the widget (%mm_monitor displays it): the static picture
    # leaves it out, so a notebook opened without the widget shows it once
    picture = dataclasses.replace(snapshot, comparison=None) if getattr(snapshot, "comparison", None) else snapshot
    return Sparklines(cursor.advance(), snapshot=picture, alerts=alerts)
