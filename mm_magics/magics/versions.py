"""Training and versions: %%mm_train, %mm_commit, %mm_log, %mm_diff, %mm_checkout, %mm_rollback, %mm_models.

A mixin of :class:`mm_magics.magics.MMMagics` (one configurable, so ``%config MMMagics.*`` keeps working),
as IPython splits its own magics by topic; each magic parses its line, calls one engine verb, returns a record."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from IPython.core.error import UsageError
from IPython.core.magic import cell_magic, line_magic

from ..engine.errors import MMError
from ..engine.records import CheckedOut, CommittedRun
from ..engine.specs import parse_spec

if TYPE_CHECKING:
    from ..engine.training import Run

# Everything heavy (scikit-learn, skops, pandas, git) is imported inside the magics that need it, so that
# `%load_ext mm_magics` stays instant and a notebook that never trains pays nothing.


from .common import cell_line, friendly, parse_args, verb_arguments


class VersionMagics:
    """Training and versions magics (mixed into MMMagics)."""

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
        from ..engine import training

        args = parse_args(self.mm_train, line)
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
                name,
                cell,
                self.ns,
                options,
                execute=self._execute,
                progress=show,
                previous=self._previous(parent or name),
            )
        except KeyboardInterrupt:
            raise UsageError("training interrupted: nothing was recorded and the namespace is unchanged") from None
        except training.TrainingError:
            raise
        except MMError:
            raise
        except Exception as exc:  # an error in the user's own cell code: say where, briefly
            where = cell_line(exc)
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
        from ..engine import training

        args = parse_args(self.mm_commit, line)
        if not args.message.strip():
            raise UsageError(f'a version needs a reason: %mm_commit {args.name} -m "what changed and why"')
        reg = self.ws.registry
        if args.model_var:
            if args.model_var not in self.ns:
                raise UsageError(f"--model {args.model_var}: no such variable in the namespace")
            fields: dict[str, Any] = {"parent": reg.get(args.parent).id if args.parent else None}
            if args.data:
                X, y, *_ = training.find_data(self.ns, tuple(args.data))
                from ..engine.fingerprints import fingerprint, schema_of

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
        """A model's versions, newest first, with parents, stages, aliases and messages.

        Where a widget front end runs, the version timeline (every version; select one for its diff and actions);
        with -n or --before, the table."""
        args = parse_args(self.mm_log, line)
        if args.limit is None and args.before is None and self._widgets_shown():
            return self._widget_or(self.ws.registry.timeline(args.name))
        return self.ws.registry.log(args.name, limit=20 if args.limit is None else args.limit, before=args.before)

    @verb_arguments("view")
    @line_magic
    @friendly
    def mm_view(self, line: str) -> Any:
        """A model at a glance: deployment status over Timeline, Lifecycle and Live tabs (one widget; the static
        picture of all three where no widget front end runs)."""
        args = parse_args(self.mm_view, line)
        return self._widget_or(self.ws.overview(args.name, window=args.window, metric=args.metric))

    @verb_arguments("reproduce")
    @line_magic
    @friendly
    def mm_reproduce(self, line: str) -> Any:
        """Rebuild a version from its recorded code on the same data (checked by fingerprint) in a clean namespace;
        report whether it predicts identically, metric and package differences; --commit keeps the rebuild."""
        from ..engine.reproduce import data_names, needs_test_set, reproduce

        args = parse_args(self.mm_reproduce, line)
        version = self.ws.registry.get(args.version)
        names = tuple(args.data) if args.data else data_names(version)
        data = tuple(self._lookup(n, "--data X Y") for n in names)
        test = None
        if needs_test_set(version):
            test = (self._lookup("X_test", "X_test"), self._lookup("y_test", "y_test"))
        return reproduce(self.ws, version.id, data, test=test, commit=args.commit, message=args.message)

    def _lookup(self, name: str, what: str) -> Any:
        ns = self.shell.user_ns
        if name not in ns:
            raise UsageError(f"no variable {name!r} in the notebook: define it, or name the data with {what}")
        return ns[name]

    @verb_arguments("describe")
    @line_magic
    @friendly
    def mm_describe(self, line: str) -> Any:
        """Who owns a model and what it is for (and not for), as its model cards say; no option shows it."""
        args = parse_args(self.mm_describe, line)
        return self.ws.describe(
            args.name, args.message, owner=args.owner, intended_use=args.intended_use, out_of_scope=args.out_of_scope
        )

    @verb_arguments("card")
    @line_magic
    @friendly
    def mm_card(self, line: str) -> Any:
        """A version's model card, assembled from what the workspace recorded (Markdown; `mm card --out` writes
        a file)."""
        args = parse_args(self.mm_card, line)
        return self.ws.card(args.version)

    @verb_arguments("explain")
    @line_magic
    @friendly
    def mm_explain(self, line: str) -> Any:
        """What a version's predictions depend on: permutation importance computed at commit time, the model's own
        coefficients or importances, and mean |SHAP| where shap was installed. A bar chart where a widget front end
        runs (the text bars as its static picture), the text bars elsewhere; the record either way."""
        args = parse_args(self.mm_explain, line)
        return self._widget_or(self.ws.registry.explanation(args.version))

    @verb_arguments("diff")
    @line_magic
    @friendly
    def mm_diff(self, line: str) -> Any:
        """What changed between two versions: params, metrics, data, code, schema, environment, predictions."""
        args = parse_args(self.mm_diff, line)
        return self.ws.registry.diff(args.a, args.b, agreement=not args.no_agreement)

    @verb_arguments("checkout")
    @line_magic
    @friendly
    def mm_checkout(self, line: str) -> Any:
        """Load a version's model into the namespace after verifying its sha256."""
        args = parse_args(self.mm_checkout, line)
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
        args = parse_args(self.mm_rollback, line)
        spec = parse_spec(args.version)
        if spec.number is None and spec.alias is None:
            raise UsageError(f"say which version to roll back to: %mm_rollback {spec.name}@vN -m WHY")
        target = self.ws.registry.get(args.version)
        version, deployment = self.deployer.rollback(spec.name, f"v{target.number}", args.message)
        if deployment is not None:
            print(f"{spec.name}'s deployment now serves {version.id} at {deployment.url} (switched without downtime)")
        return version

    @line_magic
    @friendly
    def mm_models(self, line: str = "") -> Any:
        """Every model in the workspace: latest version, aliases, versions per stage, and what serves now."""
        if line.strip():
            raise UsageError("%mm_models takes no arguments")
        return self.ws.models()
