"""Monitoring: %mm_monitor (live, refreshing in place), %mm_feedback, %mm_probe.

A mixin of :class:`mm_magics.magics.MMMagics` (one configurable, so ``%config MMMagics.*`` keeps working),
as IPython splits its own magics by topic; each magic parses its line, calls one engine verb, returns a record."""

from __future__ import annotations

import signal
import threading
import time
from typing import Any

from IPython.core.error import UsageError
from IPython.core.magic import line_magic

from ..engine.specs import parse_spec
from .common import as_list, friendly, parse_args, verb_arguments

# Everything heavy (scikit-learn, skops, pandas, git) is imported inside the magics that need it, so that
# `%load_ext mm_magics` stays instant and a notebook that never trains pays nothing.


class _Stop(threading.Event):
    """Stops a refreshing monitor and says why, for the last word on its panel."""

    why = ""

    def stop(self, why: str) -> None:
        self.why = self.why or why
        self.set()


def framed(snap: Any, state: str, live: bool) -> dict[str, str]:
    """The monitor picture under a line that says whether it is still refreshing, and if not, since when and why:
    a panel that stopped must not look like a live one."""
    from html import escape

    from ..render import to_html

    marker = "● live" if live else "■ stopped"
    colour = "var(--jp-success-color0,#1a7f37)" if live else "var(--jp-content-font-color2,#57606a)"
    head = f"<div style='color:{colour};font-weight:600'>{marker} — {escape(state)}</div>"
    return {"text/html": head + to_html(snap), "text/plain": f"{marker} — {state}\n{snap}"}


def _alerts(snap: Any) -> list[dict[str, Any]]:
    """What the sparklines list: each open alert's rule and its advice."""
    return [{"rule": a["rule"], "message": a["message"]} for a in snap.alerts]


class _HtmlPanel:
    """A refreshing monitor drawn as HTML: the whole picture again at each tick (no widget front end)."""

    def __init__(self, handle: Any, snap: Any) -> None:
        self.handle, self.last = handle, snap

    def start(self, ws: Any) -> None:
        self.monitor, self.deployer = ws.monitor, ws.deployments

    def closed(self) -> bool:
        return False

    def tick(self, ws: Any, state: str) -> None:
        self.last = self.monitor.view(self.last.name, self.last.window_s, deployments=self.deployer)
        self.handle.update(framed(self.last, state, live=True), raw=True)

    def stopped(self, state: str) -> None:
        self.handle.update(framed(self.last, state, live=False), raw=True)


class _WidgetPanel:
    """A refreshing monitor drawn by the sparklines widget: each tick sends only the buckets completed since; the
    alerts (a full snapshot, heavier) are re-read every ``ALERTS_EVERY`` seconds."""

    ALERTS_EVERY = 10.0

    def __init__(self, widget: Any, name: str, window: str, every: float) -> None:
        self.widget, self.name, self.window, self.every = widget, name, window, every
        self.alerts_at = time.monotonic()

    def start(self, ws: Any) -> None:
        dep = ws.deployments.get(self.name)
        held = self.widget.series
        self.cursor = ws.monitor.series(self.name, self.window, step=self.every, deployment=dep, since=held["until"])

    def closed(self) -> bool:
        return self.widget.closed.is_set()

    def tick(self, ws: Any, state: str) -> None:
        self.widget.push(self.cursor.advance())
        if time.monotonic() - self.alerts_at >= self.ALERTS_EVERY:
            self.alerts_at = time.monotonic()
            dep = ws.deployments.get(self.name)
            self.widget.alerts = _alerts(ws.monitor.snapshot(self.name, self.window, deployment=dep))

    def stopped(self, state: str) -> None:
        self.widget.state, self.widget.live = f"■ stopped — {state}", False


class MonitoringMagics:
    """Monitoring magics (mixed into MMMagics)."""

    @property
    def monitor(self) -> Any:
        return self.ws.monitor

    @verb_arguments("monitor")
    @line_magic
    @friendly
    def mm_monitor(self, line: str) -> Any:
        """Live serving metrics: request rate, latency split, errors, live quality vs training, drift, alerts.

        Where a widget front end runs, as live sparklines (the table stays in the same output for a saved notebook).
        With --refresh the display updates in place until --for elapses, the magic is re-run for this model, --stop,
        the widget is closed or the kernel is interrupted; the updater is a daemon thread that never blocks the
        kernel or its shutdown, and a widget receives only the new points.
        """
        from ..engine.monitoring.live import parse_duration

        args = parse_args(self.mm_monitor, line)
        name = parse_spec(args.name).name
        self._stop_monitor(name, "stopped with --stop" if args.stop else "replaced by a new %mm_monitor")
        if args.stop:
            print(f"stopped monitoring {name}")
            return None
        every = max(parse_duration(args.refresh), 0.5) if args.refresh else None
        snap = self.monitor.view(name, args.window, deployments=self.deployer, evaluate=True)
        if snap.comparison is not None and self._widgets_shown():
            from IPython.display import display

            display(snap.comparison)  # the sparklines widget draws the served version: the comparison reads above it
        if every is None or not hasattr(self.shell, "kernel"):
            return self._widget_or(snap)  # the snapshot: shown as sparklines where a widget front end runs
        widget = None
        if self._widgets_shown():
            from ..widgets.sparklines import sparklines_for

            widget = sparklines_for(self.ws, snap, step=every)
        deadline = time.monotonic() + parse_duration(args.duration)
        from IPython.display import display

        until = time.strftime("%H:%M:%S", time.localtime(time.time() + parse_duration(args.duration)))
        live_state = f"refreshing every {args.refresh} until {until} (stop: %mm_monitor {name} --stop, or interrupt)"
        if widget is not None:
            widget.state, widget.live = f"● live — {live_state}", True
            display(widget)
            show = _WidgetPanel(widget, name, args.window, every)
        else:
            show = _HtmlPanel(display(framed(snap, live_state, live=True), display_id=True, raw=True), snap)
        stop = _Stop()
        root = self.ws.root

        def loop() -> None:
            from ..engine.workspace import Workspace

            why = f"--for {args.duration} elapsed"
            with Workspace.open(root) as ws:  # its own connections: SQLite handles are not shared across threads
                show.start(ws)
                while not stop.wait(every) and time.monotonic() < deadline and not show.closed():
                    try:
                        show.tick(ws, live_state)  # pure reads
                    except Exception as exc:  # say the problem in place, keep the kernel untouched
                        why = f"error: {exc}"
                        break
            if show.closed():
                why = "the widget was closed"
            if stop.is_set():
                why = stop.why
            show.stopped(f"at {time.strftime('%H:%M:%S')}: {why}; the figures below are from then")

        thread = threading.Thread(target=loop, name=f"mm-monitor-{name}", daemon=True)
        self._monitors[name] = (thread, stop)
        self._stop_monitors_on_interrupt()
        thread.start()
        return None

    def _stop_monitors_on_interrupt(self) -> None:
        """Make the kernel's interrupt button stop refreshing monitors, whether a cell is running or not.

        An interrupt while a cell runs raises KeyboardInterrupt in that cell (seen through IPython's post_run_cell
        event). While the kernel is idle, ipykernel ignores SIGINT: it installs Python's default handler only
        around each request and puts back the handler saved in ``kernel.saved_sigint_handler`` afterwards, so
        that saved handler is the one an idle interrupt reaches. We wrap it, once; ``unload`` unwraps it.
        """
        if not self._interrupt_hooked:
            self.shell.events.register("post_run_cell", self._after_cell)
            self._interrupt_hooked = True
        kernel = getattr(self.shell, "kernel", None)
        saved = getattr(kernel, "saved_sigint_handler", None)
        if kernel is None or saved is None or getattr(saved, "mm_previous", None) is not None:
            return
        stop_all = self._stop_all_monitors

        def on_interrupt(signum: int, frame: Any) -> Any:
            stop_all()
            if callable(saved):
                return saved(signum, frame)
            if saved == signal.SIG_DFL:
                raise KeyboardInterrupt
            return None  # SIG_IGN: what an idle kernel does with an interrupt

        on_interrupt.mm_previous = saved  # type: ignore[attr-defined]
        kernel.saved_sigint_handler = on_interrupt

    def _after_cell(self, result: Any) -> None:
        if isinstance(getattr(result, "error_in_exec", None), KeyboardInterrupt):
            self._stop_all_monitors()

    def _stop_all_monitors(self, why: str = "the kernel was interrupted") -> None:
        """Signal every refreshing monitor to stop (no waiting: this may run inside a signal handler)."""
        for name in list(self._monitors):
            current = self._monitors.pop(name, None)
            if current is not None:
                current[1].stop(why)

    def _stop_monitor(self, name: str, why: str = "the extension was unloaded") -> None:
        current = self._monitors.pop(name, None)
        if current is not None:
            thread, stop = current
            stop.stop(why)
            thread.join(5)

    @verb_arguments("feedback")
    @line_magic
    @friendly
    def mm_feedback(self, line: str) -> Any:
        """Join ground-truth labels to logged predictions (by request id) for live accuracy, precision, recall, F1."""
        args = parse_args(self.mm_feedback, line)
        name = parse_spec(args.name).name
        labels = as_list(self._eval(" ".join(args.y_true)))
        if args.ids:
            ids = [str(i) for i in as_list(self._eval(args.ids))]
            count = self.monitor.record_feedback(name, ids, labels)
        else:
            last = self._last_predictions.get(name)
            if last is None:
                raise UsageError(
                    f"no request ids to attach labels to: run %mm_predict {name} DATA first, or pass --ids"
                )
            rows = len(last.outputs.get("predict", []))
            if rows != len(labels):
                raise UsageError(f"the last %mm_predict of {name} had {rows} rows but {len(labels)} labels were given")
            count = self.monitor.record_feedback(name, [last.request_id], [labels])
        print(f"recorded {len(labels)} label(s) for {name} on {count} request(s)")
        return None

    @verb_arguments("probe")
    @line_magic
    @friendly
    def mm_probe(self, line: str) -> Any:
        """Send timed requests and record network time (client total minus the server's Server-Timing total)."""
        args = parse_args(self.mm_probe, line)
        name = parse_spec(args.name).name
        return self.monitor.probe(name, args.n, deployments=self.deployer)
