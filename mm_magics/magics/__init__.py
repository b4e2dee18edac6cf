"""IPython magics: argument parsing over the engine, nothing more.

One configurable ``MMMagics`` (``%config MMMagics.*``) made of one mixin per topic, as IPython splits its own:
:mod:`.versions`, :mod:`.lifecycle`, :mod:`.serving`, :mod:`.monitoring`. Each magic parses its line with the
arguments :mod:`mm_magics.verbs` declares (so ``%mm_log?`` shows real help), calls one engine verb and returns the
engine's record, which the HTML formatter registered at load renders. Engine errors become a one-line
``UsageError`` naming the problem and the fix in this face's words; the namespace and registry are untouched.
"""

from __future__ import annotations

import contextlib
import os
import threading
import weakref
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from IPython.core.error import UsageError
from IPython.core.magic import Magics, line_magic, magics_class
from traitlets import Bool, Float, Int, Unicode

from .. import render, verbs
from ..engine.errors import MMError
from .common import CELL_FILENAME
from .completion import version_matcher
from .lifecycle import LifecycleMagics
from .monitoring import MonitoringMagics
from .serving import ServingMagics
from .versions import VersionMagics

if TYPE_CHECKING:
    from ..engine.training import Run
    from ..engine.workspace import Workspace


@magics_class
class MMMagics(VersionMagics, LifecycleMagics, ServingMagics, MonitoringMagics, Magics):
    """Model management magics. Settings: ``%config MMMagics.test_size = 0.2`` and friends."""

    workspace = Unicode(
        None, allow_none=True, help="Workspace directory; default $MM_HOME or the nearest .mm/ (created if none)."
    ).tag(config=True)
    test_size = Float(0.25, help="Hold-out fraction used by %%mm_train when the cell defines no X_test/y_test.").tag(
        config=True
    )
    random_state = Int(0, help="Seed for the hold-out split and cross-validation folds.").tag(config=True)
    progress = Bool(True, help="Show elapsed time and fold/search progress during long fits.").tag(config=True)
    widgets = Bool(
        True, help="Interactive widgets (e.g. %mm_lifecycle's graph) where a widget front end runs; off: static HTML."
    ).tag(config=True)

    def __init__(self, shell: Any = None, **kwargs: Any) -> None:
        super().__init__(shell=shell, **kwargs)
        self._ws: Workspace | None = None
        self._ws_key: tuple[str | None, str | None] | None = None
        self.runs: dict[str, Run] = {}
        self._monitors: dict[str, tuple[threading.Thread, threading.Event]] = {}
        self._interrupt_hooked = False
        self._matcher: Any = None
        self._last_predictions: dict[str, Any] = {}
        self._widgetable: dict[int, tuple[weakref.ref[Any], Workspace]] = {}  # see _widget_or

    @property
    def ws(self) -> Workspace:
        """The workspace, reopened when the setting, MM_HOME or the working directory changes."""
        key = (self.workspace, os.environ.get("MM_HOME") or os.getcwd())
        if self._ws is None or key != self._ws_key:
            from ..engine.workspace import Workspace

            if self._ws is not None:
                self._ws.close()
            self._ws = Workspace.open(self.workspace)
            self._ws_key = key
        return self._ws

    @property
    def ns(self) -> dict[str, Any]:
        return self.shell.user_ns

    def _execute(self, code: str, ns: dict[str, Any]) -> None:
        """Run cell code with IPython's transforms (magics and ``!`` work inside), raising what it raises."""
        source = self.shell.transform_cell(code)
        exec(compile(source, CELL_FILENAME, "exec"), ns)

    def _progress(self) -> tuple[Callable[[str], None], Callable[[], None]]:
        if not self.progress or not hasattr(self.shell, "kernel"):
            return (lambda _msg: None), (lambda: None)
        from IPython.display import display

        # created here on the main thread so it belongs to this cell; empty text/plain shows nothing
        handle = display({"text/plain": ""}, raw=True, display_id=True)

        def show(msg: str) -> None:
            handle.update(
                {"text/plain": f"... {msg}", "text/html": f"<span style='color:#666'>⏳ {msg}</span>"}, raw=True
            )

        return show, (lambda: handle.update({"text/plain": ""}, raw=True))

    def _widgets_shown(self) -> bool:
        """Whether widgets can show here: a kernel (a widget front end may be attached), ``MMMagics.widgets`` on,
        and anywidget installed."""
        if not self.widgets or not hasattr(self.shell, "kernel"):
            return False
        import importlib.util

        return importlib.util.find_spec("anywidget") is not None

    def _widget_or(self, record: Any) -> Any:
        """Return the engine's record itself (``snap = %mm_monitor NAME`` is data), marked so that displaying it
        where a widget front end runs shows its interactive widget over this workspace (see ``_display``)."""
        if self._widgets_shown():
            for key in [k for k, (ref, _) in self._widgetable.items() if ref() is None]:
                del self._widgetable[key]
            self._widgetable[id(record)] = (weakref.ref(record), self.ws)
        return record

    def _display(self, record: Any) -> None:
        """IPython's display hook for the records that have a widget: the widget (with the static picture in the
        same output) for a record a magic returned here; the static picture for any other, e.g. one made from
        Python over another workspace, whose clicks this kernel's magics must not answer."""
        from IPython.display import display

        entry = self._widgetable.get(id(record))
        if entry is not None and entry[0]() is record and self._widgets_shown():
            from ..widgets import widget_for

            widget = widget_for(entry[1], record)
            if widget is not None:
                display(widget)
                return
        display({"text/html": render.to_html(record), "text/plain": str(record)}, raw=True)

    def _previous(self, spec: str) -> dict[str, Any] | None:
        """The version a run is compared with: the parent it names (``--from``), else the model's latest."""
        try:
            latest = self.ws.registry.get(spec)
        except MMError:
            return None
        return {"id": latest.id, "metrics": latest.metrics}

    def _eval(self, expr: str) -> Any:
        try:
            return self.shell.ev(expr)
        except Exception as exc:
            raise UsageError(f"could not evaluate {expr!r}: {type(exc).__name__}: {exc}") from None

    @line_magic
    def mm(self, line: str = "") -> None:
        """List the mm_magics magics; `%mm_NAME?` shows each one's full help."""
        rows = []
        for kind in ("cell", "line"):
            for name in sorted(self.magics[kind]):
                fn = getattr(self, name)
                parser = getattr(fn, "parser", None)
                doc = ((parser.description if parser else None) or fn.__doc__ or "").strip().splitlines()
                rows.append(((("%%" if kind == "cell" else "%") + name), doc[0] if doc else ""))
        width = max(len(magic) for magic, _ in rows) + 2  # the longest name sets the column, not a guess
        print("\n".join(f"{magic:<{width}}{doc}" for magic, doc in rows))

    def candidates(self, word: str) -> list[str]:
        """Model names, then NAME@alias and NAME@vN (newest first) that start with ``word``."""
        try:
            registry = self.ws.registry
            name, at, _ = word.partition("@")
            if not at:
                return [m.name for m in registry.models() if m.name.startswith(word)]
            page = registry.log(name, limit=30)
            out = [f"{name}@{a}" for a in registry.aliases(name)]
            out += [v.id for v in page.versions]
            return [c for c in out if c.startswith(word)]
        except Exception:  # completion must never raise into the user's typing
            return []


NOTEBOOK_ONLY = {
    "mm_train": "runs the cell's code and fits the estimator it defines, in the kernel",
    "mm_commit": "versions an estimator object that lives in the kernel",
    "mm": "lists these magics",
    "mm_reproduce": "re-runs the recorded cell against data that lives in the kernel",
}

VERSION_MAGICS = verbs.completing()  # derived from the verbs declared, never a hand-kept list


def load(ipython: Any) -> None:
    """Register the magics, their settings and completers; loading twice is harmless."""
    existing = ipython.magics_manager.registry.get("MMMagics")
    if existing is not None:
        return
    magics = MMMagics(shell=ipython, parent=ipython)  # Magics.__init__ adds it to shell.configurables (%config)
    ipython.register_magics(magics)
    render.register(ipython)
    from ..widgets import WIDGETS  # a table of names: importing it imports no widget library

    shown = ipython.display_formatter.ipython_display_formatter
    for module, name in WIDGETS:
        shown.for_type_by_name(module, name, magics._display)
    magics._matcher = version_matcher(magics.candidates, VERSION_MAGICS)
    ipython.Completer.custom_matchers.append(magics._matcher)


def unload(ipython: Any) -> None:
    magics = ipython.magics_manager.registry.pop("MMMagics", None)
    if magics is None:
        return
    for kind in ("line", "cell"):
        for name in magics.magics[kind]:
            ipython.magics_manager.magics[kind].pop(name, None)
    for name in list(magics._monitors):
        magics._stop_monitor(name)
    if magics._interrupt_hooked:
        ipython.events.unregister("post_run_cell", magics._after_cell)
    kernel = getattr(ipython, "kernel", None)
    previous = getattr(getattr(kernel, "saved_sigint_handler", None), "mm_previous", None)
    if previous is not None:
        kernel.saved_sigint_handler = previous
    ipython.configurables[:] = [c for c in ipython.configurables if c is not magics]
    render.unregister(ipython)
    from ..widgets import WIDGETS

    shown = ipython.display_formatter.ipython_display_formatter
    for module, name in WIDGETS:
        with contextlib.suppress(KeyError):
            shown.pop(f"{module}.{name}")  # printers registered by name live in deferred_printers
    with contextlib.suppress(ValueError):
        ipython.Completer.custom_matchers.remove(magics._matcher)
    if magics._ws is not None:
        magics._ws.close()
