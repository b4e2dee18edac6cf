"""IPython magics: argument parsing over the engine, nothing more.

Each magic parses its line with ``magic_arguments`` (so ``%mm_log?`` shows real help), calls one engine function
and returns the engine's record, which renders itself as HTML in a notebook and as text in a terminal. Engine
errors become a one-line ``UsageError`` naming the problem and the fix; the namespace and registry are untouched.
"""

from __future__ import annotations

import argparse
import functools
import inspect
import os
import shlex
import signal
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from IPython.core.error import UsageError
from IPython.core.magic import Magics, cell_magic, line_magic, magics_class
from IPython.core.magic_arguments import MagicArgumentParser
from traitlets import Bool, Float, Int, Unicode

from . import render, verbs
from .engine.errors import MMError, magic_spelling
from .engine.records import CheckedOut, CommittedRun, GateList, ModelList
from .engine.specs import parse_spec

if TYPE_CHECKING:
    from .engine.training import Run
    from .engine.workspace import Workspace

# Everything heavy (scikit-learn, skops, pandas, git) is imported inside the magics that need it, so that
# `%load_ext mm_magics` stays instant and a notebook that never trains pays nothing.


def friendly(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Turn engine errors into one-line UsageErrors: the user sees what to fix, never our traceback."""

    @functools.wraps(fn)
    def wrapper(self: MMMagics, *args: Any, **kwargs: Any) -> Any:
        try:
            return fn(self, *args, **kwargs)
        except MMError as exc:
            raise UsageError(exc.render(magic_spelling)) from None  # advice in this face's words

    return wrapper


def verb_arguments(verb: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Give a magic the arguments :data:`verbs.VERBS` declares for it (the ones ``mm`` gets too), and a help text
    that opens with its usage line and then the docstring (``%mm_log?``)."""

    def deco(func: Callable[..., Any]) -> Callable[..., Any]:
        prefix = "%%" if verb == "train" else "%"
        parser = MagicArgumentParser(
            prog=f"{prefix}mm_{verb}",
            description=inspect.cleandoc(func.__doc__ or verbs.VERBS[verb].help),
            formatter_class=argparse.RawDescriptionHelpFormatter,
            add_help=False,
        )
        verbs.apply(parser, verb, "magic")
        func.parser = parser  # type: ignore[attr-defined]
        func.__doc__ = parser.format_help()
        return func

    return deco


def _args(fn: Callable[..., Any], line: str) -> Any:
    """Parse like a shell (quotes group words and are removed), as users expect from -m "a message"."""
    try:
        argv = shlex.split(line)
    except ValueError as exc:
        raise UsageError(f"cannot parse arguments ({exc}): check the quotes") from None
    try:
        return fn.parser.parse_args(argv)
    except UsageError as exc:
        raise UsageError(f"{exc}; see %{fn.__name__}? for usage".replace("\n", " ")) from None


def _as_list(value: Any) -> list[Any]:
    if hasattr(value, "tolist"):
        value = value.tolist()
    if isinstance(value, (list, tuple)):
        return [v.item() if hasattr(v, "item") else v for v in value]
    return [value]


def _cell_line(exc: BaseException) -> str:
    """ " at line N" of the user's cell where the exception started, if it started there."""
    tb, line = exc.__traceback__, None
    while tb is not None:
        if tb.tb_frame.f_code.co_filename == CELL_FILENAME:
            line = tb.tb_lineno
        tb = tb.tb_next
    return f" at line {line}" if line else ""


CELL_FILENAME = "<mm_train cell>"


@magics_class
class MMMagics(Magics):
    """Model management magics. Settings: ``%config MMMagics.test_size = 0.2`` and friends."""

    workspace = Unicode(
        None, allow_none=True, help="Workspace directory; default $MM_HOME or the nearest .mm/ (created if none)."
    ).tag(config=True)
    test_size = Float(0.25, help="Hold-out fraction used by %%mm_train when the cell defines no X_test/y_test.").tag(
        config=True
    )
    random_state = Int(0, help="Seed for the hold-out split and cross-validation folds.").tag(config=True)
    progress = Bool(True, help="Show elapsed time and fold/search progress during long fits.").tag(config=True)

    def __init__(self, shell: Any = None, **kwargs: Any) -> None:
        super().__init__(shell=shell, **kwargs)
        self._ws: Workspace | None = None
        self._ws_key: tuple[str | None, str | None] | None = None
        self.runs: dict[str, Run] = {}
        self._monitors: dict[str, tuple[threading.Thread, threading.Event]] = {}
        self._interrupt_hooked = False
        self._last_predictions: dict[str, Any] = {}

    # -- helpers ---------------------------------------------------------------------------------------------------
    @property
    def ws(self) -> Workspace:
        """The workspace, reopened when the setting, MM_HOME or the working directory changes."""
        key = (self.workspace, os.environ.get("MM_HOME") or os.getcwd())
        if self._ws is None or key != self._ws_key:
            from .engine.workspace import Workspace

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

    def _previous(self, name: str) -> dict[str, Any] | None:
        try:
            latest = self.ws.registry.get(name)
        except MMError:
            return None
        return {"id": latest.id, "metrics": latest.metrics}

    # -- training and versions ------------------------------------------------------------------------------------
    @verb_arguments("train")
    @cell_magic
    @friendly
    def mm_train(self, line: str, cell: str) -> Any:
        """Run the cell, fit and evaluate the estimator it defines, and record the run.

        The cell's estimator (or --model VAR) is fitted on X, y (or --data X y) unless the cell fitted it; it is
        evaluated on X_test/y_test if the cell defines them, else on a stratified hold-out split, or with --cv K.
        Params, metrics, a data fingerprint, the input schema, the code and the environment are recorded;
        GridSearchCV/RandomizedSearchCV record best params, best score and the CV table.
        Commit the run with %mm_commit NAME -m MSG, or pass --commit -m MSG.
        """
        from .engine import training

        args = _args(self.mm_train, line)
        name = parse_spec(args.name).name if "@" not in args.name else None
        if name is None or name != args.name:
            raise UsageError(f"%%mm_train takes a model NAME, not a version ({args.name}); use --from {args.name}")
        if args.commit and not args.message.strip():
            raise UsageError('--commit needs a message: add -m "why this version"')
        parent = self.ws.registry.get(args.parent).id if args.parent else None
        options = training.TrainOptions(
            model_var=args.model_var,
            data_vars=tuple(args.data) if args.data else None,
            cv=args.cv,
            test_size=args.test_size if args.test_size is not None else self.test_size,
            random_state=self.random_state,
            parent=parent,
        )
        show, clear = self._progress()
        try:
            run = training.train(
                name, cell, self.ns, options, execute=self._execute, progress=show, previous=self._previous(name)
            )
        except KeyboardInterrupt:
            raise UsageError("training interrupted: nothing was recorded and the namespace is unchanged") from None
        except training.TrainingError:
            raise
        except MMError:
            raise
        except Exception as exc:  # an error in the user's own cell code: say where, briefly
            where = _cell_line(exc)
            raise UsageError(
                f"the cell raised {type(exc).__name__}{where}: {exc}; fix the cell (nothing was recorded)"
            ) from None
        finally:
            clear()
        self.runs[name] = run
        if args.commit:
            version = self._commit_run(run, args.message)
            return CommittedRun(run=run, version=version)
        return run

    def _commit_run(self, run: Run, message: str) -> Any:
        version = self.ws.registry.commit(run.name, run.model, message=message, **run.commit_fields())
        self.runs.pop(run.name, None)
        return version

    @verb_arguments("commit")
    @line_magic
    @friendly
    def mm_commit(self, line: str) -> Any:
        """Commit the last %%mm_train run of NAME (or --model VAR) as a new version; prints NAME@vN and its sha."""
        from .engine import training

        args = _args(self.mm_commit, line)
        if not args.message.strip():
            raise UsageError(f'a version needs a reason: %mm_commit {args.name} -m "what changed and why"')
        reg = self.ws.registry
        if args.model_var:
            if args.model_var not in self.ns:
                raise UsageError(f"--model {args.model_var}: no such variable in the namespace")
            fields: dict[str, Any] = {"parent": reg.get(args.parent).id if args.parent else None}
            if args.data:
                X, y, *_ = training.find_data(self.ns, tuple(args.data))
                from .engine.fingerprints import fingerprint, schema_of

                fields.update(data=fingerprint(X, y), schema=schema_of(X), probe_data=X)
            return reg.commit(args.name, self.ns[args.model_var], message=args.message, **fields)
        run = self.runs.get(args.name)
        if run is None:
            pending = ", ".join(sorted(self.runs)) or "none"
            raise UsageError(
                f"nothing to commit for {args.name} (runs waiting: {pending}): train it with %%mm_train "
                f"{args.name}, or commit a fitted estimator with --model VAR"
            )
        if args.parent:
            run.parent = reg.get(args.parent).id
        return self._commit_run(run, args.message)

    @verb_arguments("log")
    @line_magic
    @friendly
    def mm_log(self, line: str) -> Any:
        """A model's versions, newest first, with parents, stages, aliases and messages."""
        args = _args(self.mm_log, line)
        return self.ws.registry.log(args.name, limit=args.limit, before=args.before)

    @verb_arguments("diff")
    @line_magic
    @friendly
    def mm_diff(self, line: str) -> Any:
        """What changed between two versions: params, metrics, data, code, schema, environment, predictions."""
        args = _args(self.mm_diff, line)
        return self.ws.registry.diff(args.a, args.b, agreement=not args.no_agreement)

    @verb_arguments("checkout")
    @line_magic
    @friendly
    def mm_checkout(self, line: str) -> Any:
        """Load a version's model into the namespace after verifying its sha256."""
        args = _args(self.mm_checkout, line)
        var = args.var or "model"
        if not var.isidentifier():
            raise UsageError(f"--as {var}: not a valid Python variable name")
        version = self.ws.registry.get(args.version)
        self.ns[var] = self.ws.registry.checkout(version.id)
        return CheckedOut(version=version, var=var)

    @verb_arguments("rollback")
    @line_magic
    @friendly
    def mm_rollback(self, line: str) -> Any:
        """Make a new version equal to an older one (history kept, parent recorded)."""
        args = _args(self.mm_rollback, line)
        spec = parse_spec(args.version)
        if spec.number is None and spec.alias is None:
            raise UsageError(f"say which version to roll back to: %mm_rollback {spec.name}@vN -m WHY")
        target = self.ws.registry.get(args.version)
        version, deployment = self.deployer.rollback(spec.name, f"v{target.number}", args.message)
        if deployment is not None:
            print(f"{spec.name}'s deployment now serves {version.id} at {deployment.url} (switched without downtime)")
        return version

    @verb_arguments("stage")
    @line_magic
    @friendly
    def mm_stage(self, line: str) -> Any:
        """Move a version through its lifecycle, passing the gates of every stage it enters (no stage: its history)."""
        args = _args(self.mm_stage, line)
        lc = self.ws.lifecycle
        if args.stage is None:
            return lc.history(args.version)
        if args.check:
            results = lc.check(args.version, args.stage)
            return GateList(name=self.ws.registry.get(args.version).id, stage=args.stage, gates=[], results=results)
        return lc.transition(args.version, args.stage, args.message, force=args.force)

    @verb_arguments("alias")
    @line_magic
    @friendly
    def mm_alias(self, line: str) -> Any:
        """Point an alias such as production at a version (audited), or delete it."""
        args = _args(self.mm_alias, line)
        reg = self.ws.registry
        if args.delete:
            return reg.delete_alias(parse_spec(args.version).name, args.alias, args.message)
        return reg.set_alias(args.version, args.alias, args.message)

    @line_magic
    @friendly
    def mm_models(self, line: str = "") -> Any:
        """Every model in the workspace with its latest version, aliases and stage counts."""
        if line.strip():
            raise UsageError("%mm_models takes no arguments")
        return ModelList(models=self.ws.registry.models())

    @verb_arguments("gate")
    @line_magic
    @friendly
    def mm_gate(self, line: str) -> Any:
        """Set (or show) the metric thresholds a version must meet to enter a stage."""
        args = _args(self.mm_gate, line)
        lc = self.ws.lifecycle
        if args.exprs or args.replace:
            gates = lc.set_gates(args.name, args.exprs, stage=args.stage, replace=args.replace)
        else:
            gates = lc.gates(args.name)
        return GateList(name=args.name, stage=args.stage, gates=gates, results=[])

    # -- deployment ----------------------------------------------------------------------------------------------
    @property
    def deployer(self) -> Any:
        return self.ws.deployments

    @verb_arguments("deploy")
    @line_magic
    @friendly
    def mm_deploy(self, line: str) -> Any:
        """Serve a version over HTTP (Open Inference Protocol V2 and MLflow /invocations).

        The version first enters the deploy stage through its gates; a refused gate refuses the deployment.
        Deploying another version of an already deployed model switches it without dropping a request.
        """
        args = _args(self.mm_deploy, line)
        return self.deployer.deploy(
            args.version, docker=args.docker, port=args.port, batch=args.batch, force=args.force, reason=args.message
        )

    @verb_arguments("undeploy")
    @line_magic
    @friendly
    def mm_undeploy(self, line: str) -> Any:
        """Stop a model's server (process or container) and forget its deployment record."""
        args = _args(self.mm_undeploy, line)
        return self.deployer.undeploy(parse_spec(args.name).name)

    @line_magic
    @friendly
    def mm_deployments(self, line: str = "") -> Any:
        """Every deployment with its version, URL and live status (stale when its process is gone)."""
        from .engine.serving.deployments import DeploymentList

        return DeploymentList(self.deployer.list())

    @verb_arguments("predict")
    @line_magic
    @friendly
    def mm_predict(self, line: str) -> Any:
        """Send rows through the deployed endpoint and show predictions with the latency split."""
        args = _args(self.mm_predict, line)
        data = self._eval(" ".join(args.data))
        outputs = ("predict", "predict_proba") if args.proba else ("predict",)
        name = parse_spec(args.name).name
        prediction = self.deployer.predict(name, data, outputs=outputs)
        self._last_predictions[name] = prediction
        return prediction

    # -- monitoring ----------------------------------------------------------------------------------------------
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
        from .engine.monitoring.live import parse_duration

        args = _args(self.mm_monitor, line)
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
            from .engine.workspace import Workspace

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
        args = _args(self.mm_feedback, line)
        name = parse_spec(args.name).name
        labels = _as_list(self._eval(" ".join(args.y_true)))
        if args.ids:
            ids = [str(i) for i in _as_list(self._eval(args.ids))]
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
        args = _args(self.mm_probe, line)
        name = parse_spec(args.name).name
        probes = self.deployer.probe(name, args.n)
        self.monitor.store.write_probes(name, probes)
        net = sorted(p["network_ms"] for p in probes)
        tot = sorted(p["total_ms"] for p in probes)
        print(
            f"{name}: {len(probes)} probes, median client {tot[len(tot) // 2]:.2f} ms of which network "
            f"{net[len(net) // 2]:.2f} ms (recorded for %mm_monitor)"
        )
        return None

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
                prefix = "%%" if kind == "cell" else "%"
                rows.append(f"{prefix + name:<14} {doc[0] if doc else ''}")
        print("\n".join(rows))

    # -- completion ----------------------------------------------------------------------------------------------
    def complete(self, _shell: Any, event: Any) -> list[str]:
        """Model names, NAME@vN (newest first) and NAME@alias for the word under the cursor."""
        try:
            registry = self.ws.registry
            word = event.symbol or ""
            name, at, _ = word.partition("@")
            if not at:
                return [m.name for m in registry.models() if m.name.startswith(word)]
            page = registry.log(name, limit=30)
            out = [f"{name}@{a}" for a in registry.aliases(name)]
            out += [v.id for v in page.versions]
            return [c for c in out if c.startswith(word)]
        except Exception:  # completion must never raise into the user's typing
            return []


#: Magics with no ``mm`` verb, and why: they work on the kernel's own objects or cell code (a shell has neither).
NOTEBOOK_ONLY = {
    "mm_train": "runs the cell's code and fits the estimator it defines, in the kernel",
    "mm_commit": "versions an estimator object that lives in the kernel",
    "mm": "lists these magics",
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
    for key in VERSION_MAGICS:
        ipython.set_hook("complete_command", magics.complete, str_key=key)


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
    if magics._ws is not None:
        magics._ws.close()
