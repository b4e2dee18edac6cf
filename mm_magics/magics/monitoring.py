"""Monitoring: %mm_monitor (live, refreshing in place), %mm_feedback, %mm_probe.

A mixin of :class:`mm_magics.magics.MMMagics` (one configurable, so ``%config MMMagics.*`` keeps working),
as IPython splits its own magics by topic; each magic parses its line, calls one engine verb, returns a record."""

from __future__ import annotations

import signal
import threading
import time
from typing import TYPE_CHECKING, Any

from IPython.core.error import UsageError
from IPython.core.magic import line_magic

from ..engine.specs import parse_spec

if TYPE_CHECKING:
    pass

# Everything heavy (scikit-learn, skops, pandas, git) is imported inside the magics that need it, so that
# `%load_ext mm_magics` stays instant and a notebook that never trains pays nothing.


from .common import as_list, friendly, parse_args, verb_arguments


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

        With --refresh the display updates in place until --for elapses, the magic is re-run for this model, --stop,
        or the kernel is interrupted; the updater is a daemon thread that never blocks the kernel or its shutdown.
        """
        from ..engine.monitoring.live import parse_duration

        args = parse_args(self.mm_monitor, line)
        name = parse_spec(args.name).name
        self._stop_monitor(name)
        if args.stop:
            print(f"stopped monitoring {name}")
            return None
        snap = self.monitor.view(name, args.window, deployments=self.deployer, evaluate=True)
        if not args.refresh or not hasattr(self.shell, "kernel"):
            return snap
        every = max(parse_duration(args.refresh), 0.5)
        deadline = time.monotonic() + parse_duration(args.duration)
        from IPython.display import display

        handle = display(snap, display_id=True)
        stop = threading.Event()
        root = self.ws.root

        def loop() -> None:
            from ..engine.workspace import Workspace

            with Workspace.open(root) as ws:  # its own connections: SQLite handles are not shared across threads
                monitor, deployer = ws.monitor, ws.deployments
                while not stop.wait(every) and time.monotonic() < deadline:
                    try:
                        handle.update(monitor.view(name, args.window, deployments=deployer))  # a pure read
                    except Exception as exc:  # show the problem in place, keep the kernel untouched
                        handle.update({"text/plain": f"monitor stopped: {exc}"}, raw=True)
                        return

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

    def _stop_all_monitors(self) -> None:
        """Signal every refreshing monitor to stop (no waiting: this may run inside a signal handler)."""
        for name in list(self._monitors):
            current = self._monitors.pop(name, None)
            if current is not None:
                current[1].set()

    def _stop_monitor(self, name: str) -> None:
        current = self._monitors.pop(name, None)
        if current is not None:
            thread, stop = current
            stop.set()
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
