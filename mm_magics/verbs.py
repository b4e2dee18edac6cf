"""Each verb's arguments, declared once as data and applied to both faces: the magics and the ``mm`` command.

A verb's help and its options were written twice (magic_arguments decorators and argparse calls) and had drifted.
Here an argument is declared once, marked for both faces or for one (a notebook passes a Python expression where a
shell passes JSON, and only a notebook has a display to refresh in place); :func:`apply` adds them to either
face's argparse parser. Completion of versions in the notebook comes from the same table (:func:`completing`).
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass, field
from typing import Any, Literal

Face = Literal["magic", "cli"]


@dataclass(frozen=True)
class Arg:
    flags: tuple[str, ...]
    kwargs: dict[str, Any] = field(default_factory=dict)
    faces: tuple[Face, ...] = ("magic", "cli")
    completes: bool = False  # a NAME / NAME@vN positional: the notebook completes model names and versions

    def add_to(self, parser: argparse.ArgumentParser) -> None:
        parser.add_argument(*self.flags, **self.kwargs)


def arg(*flags: str, faces: tuple[Face, ...] = ("magic", "cli"), completes: bool = False, **kwargs: Any) -> Arg:
    return Arg(flags, kwargs, faces, completes)


MAGIC: tuple[Face, ...] = ("magic",)
CLI: tuple[Face, ...] = ("cli",)
MESSAGE = arg("-m", "--message", default="", help="why (kept in the audit log)")


@dataclass(frozen=True)
class Verb:
    help: str
    args: tuple[Arg, ...] = ()


#: Examples per verb, ``{cmd}`` standing for the face's spelling (``%mm_log`` or ``mm log``); an entry of
#: ``(text, faces)`` is shown on those faces only (a notebook passes Python expressions where a shell passes JSON).
EXAMPLES: dict[str, tuple[str | tuple[str, tuple[Face, ...]], ...]] = {
    "train": ("{cmd} iris", "{cmd} iris --cv 5", "{cmd} iris --from iris@v2 --commit -m 'more trees'"),
    "commit": ("{cmd} iris -m 'baseline logistic regression'", "{cmd} iris --model clf --data X y -m 'from a script'"),
    "show": ("{cmd} iris@v3", "{cmd} iris@production"),
    "explain": ("{cmd} iris@v3", "{cmd} iris@production"),
    "reproduce": ("{cmd} iris@v3", "{cmd} iris@v3 --data X_all y_all --commit -m 'rebuilt on the new server'"),
    "describe": (
        "{cmd} iris --owner 'risk team' --use 'routing support tickets' --not-for 'decisions about individuals'",
        "{cmd} iris",
    ),
    "card": ("{cmd} iris@production", ("{cmd} iris@v3 --out iris-v3.md", ("cli",))),
    "log": ("{cmd} iris", "{cmd} iris -n 50 --before 120"),
    "diff": ("{cmd} iris@v1 iris@v2", "{cmd} iris@production iris@v7 --no-agreement"),
    "checkout": ("{cmd} iris@production", ("{cmd} iris@v2 --as old", ("magic",))),
    "rollback": ("{cmd} iris@v2 -m 'v3 misclassifies new customers'",),
    "stage": ("{cmd} iris@v3", "{cmd} iris@v3 deploy --check", "{cmd} iris@v3 retire -m 'superseded'"),
    "alias": ("{cmd} iris@v3 production -m 'release'", "{cmd} iris production --delete"),
    "gate": ("{cmd} iris", "{cmd} iris 'accuracy>=0.9' 'f1_macro>=0.85'", "{cmd} iris 'rmse<=3' --stage evaluate"),
    "lifecycle": ("{cmd} iris", "{cmd} iris@v3"),
    "models": ("{cmd}",),
    "view": ("{cmd} iris", "{cmd} iris --window 1h --metric f1_macro"),
    "deploy": (
        "{cmd} iris@production",
        "{cmd} iris@v3 --docker",
        "{cmd} iris@v4 --force -m 'hotfix, gate waived'",
        "{cmd} iris@v5 --canary 10",
        "{cmd} iris@v5 --shadow",
        "{cmd} iris@v5 --canary 10 --auto",
    ),
    "image": ("{cmd} iris@v3", "{cmd} iris@production --push registry.example.com/team/iris"),
    "undeploy": ("{cmd} iris",),
    "promote": ("{cmd} iris -m 'v5 better on live F1'",),
    "abort": ("{cmd} iris -m 'v5 errors on new customers'",),
    "deployments": ("{cmd}",),
    "token": (("token = {cmd}", ("magic",)), ('curl -H "Authorization: Bearer $({cmd})" URL', ("cli",))),
    "predict": (("{cmd} iris X_test.head()", ("magic",)), ("{cmd} iris '[[5.1, 3.5, 1.4, 0.2]]' --proba", ("cli",))),
    "monitor": ("{cmd} iris", ("{cmd} iris --refresh 2s --for 10m", ("magic",)), ("{cmd} iris --watch 2s", ("cli",))),
    "feedback": (
        ("{cmd} iris y_test.head()", ("magic",)),
        ("{cmd} iris --ids '[\"r1\", \"r2\"]' --labels '[0, 2]'", ("cli",)),
    ),
    "probe": ("{cmd} iris -n 50",),
}


def examples(verb: str, face: Face, cmd: str) -> str:
    """The verb's examples for ``face``, spelled with ``cmd``, as an argparse epilog."""
    lines = []
    for entry in EXAMPLES.get(verb, ()):
        text, faces = (entry, ("magic", "cli")) if isinstance(entry, str) else entry
        if face in faces:
            lines.append("  " + text.format(cmd=cmd))
    return "examples:\n" + "\n".join(lines) if lines else ""


VERBS: dict[str, Verb] = {
    "train": Verb(
        "run the cell, fit and evaluate the estimator it defines, and record the run",
        (
            arg("name", help="model name (e.g. iris)", completes=True),
            arg("--model", dest="model_var", help="variable holding the estimator (default: the one the cell assigns)"),
            arg("--data", nargs=2, metavar=("X", "Y"), help="variables holding features and target (default: X y)"),
            arg("--cv", type=int, help="evaluate with K-fold cross-validation, then fit on all rows"),
            arg("--test-size", type=float, help="hold-out fraction (default: MMMagics.test_size)"),
            arg("--from", dest="parent", help="NAME@vN this run retrains or tunes (its parent in the version DAG)"),
            arg("--commit", action="store_true", help="commit the run straight away (needs -m)"),
            arg("-m", "--message", default="", help="commit message: the reason for this version"),
        ),
    ),
    "commit": Verb(
        "make a version of the last run (or of any fitted estimator in the namespace)",
        (
            arg("name", help="model name", completes=True),
            arg("-m", "--message", default="", help="the reason for this version (required)"),
            arg("--model", dest="model_var", help="commit this fitted estimator from the namespace instead of the run"),
            arg("--data", nargs=2, metavar=("X", "Y"), help="with --model: fingerprint this training data"),
            arg("--from", dest="parent", help="NAME@vN this version derives from"),
        ),
    ),
    "show": Verb("show one version's metadata", (arg("version", help="NAME, NAME@vN or NAME@ALIAS", completes=True),)),
    "reproduce": Verb(
        "re-run a version's recorded cell code in a clean namespace on the same data (its fingerprint must match) and "
        "say whether the rebuilt model predicts identically, how its metrics differ and which packages differ",
        (
            arg("version", help="NAME@vN or NAME@ALIAS", completes=True),
            arg("--data", nargs=2, metavar=("X", "Y"), help="the data variables (default: the names it trained on)"),
            arg("--commit", action="store_true", help="commit the rebuilt model as a new version (child of this one)"),
            MESSAGE,
        ),
    ),
    "describe": Verb(
        "who owns a model and what it is for (and not for): the first section of its model cards; with no option, "
        "show it. Each change is one audited commit",
        (
            arg("name", help="model name", completes=True),
            arg("--owner", help="the team or person answerable for it"),
            arg("--use", dest="intended_use", metavar="TEXT", help="what it is meant for"),
            arg("--not-for", dest="out_of_scope", metavar="TEXT", help="uses it is not meant for"),
            MESSAGE,
        ),
    ),
    "card": Verb(
        "a version's model card: purpose and owner, training data and schema, metrics and the gates they passed, "
        "explanation, lineage, stage history, deployment and live quality, known limits",
        (
            arg("version", help="NAME, NAME@vN or NAME@ALIAS", completes=True),
            arg(
                "--out", faces=CLI, help="write it to this file (.md for Markdown, .html for HTML) instead of printing"
            ),
        ),
    ),
    "explain": Verb(
        "what a version's predictions depend on: permutation importance (with its spread) computed at commit time on "
        "the probe sample, and the model's own coefficients or importances",
        (arg("version", help="NAME, NAME@vN or NAME@ALIAS", completes=True),),
    ),
    "log": Verb(
        "a model's versions, newest first, with parents, stages, aliases and messages",
        (
            arg("name", help="model name", completes=True),
            arg(
                "-n",
                "--limit",
                type=int,
                help="versions per page (default 20); in a notebook with widgets, asking for a page shows the table "
                "instead of the timeline",
            ),
            arg("--before", type=int, help="page cursor: versions older than vN"),
        ),
    ),
    "diff": Verb(
        "what changed between two versions, and how often their predictions agree",
        (
            arg("a", metavar="A", help="NAME@vN", completes=True),
            arg("b", metavar="B", help="NAME@vN", completes=True),
            arg("--no-agreement", action="store_true", help="skip the prediction-agreement check"),
        ),
    ),
    "checkout": Verb(
        "load a version (hash verified)",
        (
            arg("version", help="NAME, NAME@vN or NAME@ALIAS", completes=True),
            arg("--as", dest="var", faces=MAGIC, help="variable to load the model into (default: model)"),
        ),
    ),
    "rollback": Verb(
        "make a new version equal to an older one (and serve it, if the model is deployed)",
        (arg("version", help="NAME@vN to roll back to", completes=True), MESSAGE),
    ),
    "stage": Verb(
        "move a version through the lifecycle (or show its stage history)",
        (
            arg("version", help="NAME@vN", completes=True),
            arg("stage", nargs="?", help="target stage (e.g. deploy, retire); none: show the history"),
            MESSAGE,
            arg("--force", action="store_true", help="override failed gates (needs -m)"),
            arg("--check", action="store_true", help="only show the gates, change nothing"),
        ),
    ),
    "alias": Verb(
        "point an alias (e.g. production) at a version, or delete it",
        (
            arg("version", help="NAME@vN (or NAME with --delete)", completes=True),
            arg("alias", help="alias name (e.g. production)"),
            arg("--delete", action="store_true", help="remove the alias"),
            MESSAGE,
        ),
    ),
    "gate": Verb(
        "set or show the metric thresholds a version must meet to enter a stage",
        (
            arg("name", help="model name", completes=True),
            arg("exprs", nargs="*", help='thresholds such as "accuracy>=0.9" (none: show the gates)'),
            arg("--stage", default="deploy", help="the stage these gates guard (default: deploy)"),
            arg("--replace", action="store_true", help="replace all gates of that stage"),
        ),
    ),
    "lifecycle": Verb(
        "a model's stage graph with versions per stage and the gates on each edge; for NAME@vN, where that version "
        "is and which next moves its gates allow",
        (
            arg(
                "spec",
                metavar="NAME[@vN]",
                help="a model, or one of its versions to place on the graph",
                completes=True,
            ),
        ),
    ),
    "models": Verb("every model with its latest version, aliases and stage counts"),
    "view": Verb(
        "a model at a glance: its deployment, version timeline, lifecycle graph and live metrics",
        (
            arg("name", help="model name", completes=True),
            arg("--window", default="5m", help="live metrics over this window (e.g. 30s, 5m, 1h)"),
            arg("--metric", help="the metric the timeline draws (default: the first headline metric)"),
        ),
    ),
    "deploy": Verb(
        "serve a version over HTTP (Open Inference Protocol V2 and MLflow /invocations), through the deploy gates",
        (
            arg("version", help="NAME, NAME@vN or NAME@ALIAS", completes=True),
            arg("--docker", action="store_true", help="run in a Docker container instead of a local process"),
            arg("--port", type=int, help="port on 127.0.0.1 (default: a free one)"),
            arg(
                "--batch",
                dest="batch",
                action="store_true",
                default=True,
                help="adaptive micro-batching (the default: a lone request is served inline, ~2x throughput under "
                "load)",
            ),
            arg("--no-batch", dest="batch", action="store_false", help="turn micro-batching off"),
            arg(
                "--workers",
                type=int,
                default=1,
                help="server processes sharing the port, up to one per core (default 1; another count restarts it)",
            ),
            arg(
                "--canary",
                type=float,
                metavar="PERCENT",
                help="serve this version beside the deployed one for PERCENT %% of requests (sticky per "
                "X-MM-Route-Key header); then promote or abort",
            ),
            arg(
                "--shadow",
                action="store_true",
                help="run this version on every request beside the deployed one, answering with the deployed one",
            ),
            arg(
                "--auto",
                action="store_true",
                help="with --canary or --shadow: promote or abort it when the promotion rule decides (checked every "
                "promote_check_s seconds by a process that outlives the notebook)",
            ),
            arg("--force", action="store_true", help="deploy even if a gate fails (needs -m)"),
            MESSAGE,
        ),
    ),
    "promote": Verb(
        "make a model's canary or shadow the served version (no request fails); the version it replaces retires. "
        "With a promotion rule (monitoring rules promote_min_labelled, promote_margin) the live evidence must agree",
        (
            arg("name", help="deployed model name", completes=True),
            arg(
                "--force", action="store_true", help="promote even if the live evidence does not satisfy the rule (-m)"
            ),
            MESSAGE,
        ),
    ),
    "abort": Verb(
        "drop a model's canary or shadow: the served version answers everything again, the candidate retires",
        (arg("name", help="deployed model name", completes=True), MESSAGE),
    ),
    "image": Verb(
        "build a version's image (the one a Docker deploy runs; it also runs standalone: docker run -p 8000:8000 "
        "IMAGE) and push it to an OCI registry with the Docker engine's credentials",
        (
            arg("version", help="NAME, NAME@vN or NAME@ALIAS", completes=True),
            arg("--push", metavar="REGISTRY/REPO[:TAG]", help="push it there (tag default: vN)"),
        ),
    ),
    "undeploy": Verb("stop a model's server", (arg("name", help="model name", completes=True),)),
    "deployments": Verb("what serves where, with its live status (stale when its process died)"),
    "token": Verb(
        "the workspace's bearer token, which Docker deployments and servers off loopback require of every client "
        '(a secret: `token = %mm_token` keeps it out of the saved notebook; `curl -H "Authorization: Bearer '
        '$(mm token)"` in a shell)'
    ),
    "predict": Verb(
        "send rows through a deployed model's real endpoint and show the latency split",
        (
            arg("name", help="deployed model name", completes=True),
            arg(
                "data",
                nargs="+",
                faces=MAGIC,
                help="a variable or expression giving one row or a table of rows (e.g. X.head())",
            ),
            arg("data", faces=CLI, help="JSON rows, e.g. '[[5.1, 3.5, 1.4, 0.2]]'"),
            arg("--proba", action="store_true", help="also ask for predict_proba"),
        ),
    ),
    "monitor": Verb(
        "live serving metrics: request rate, latency split, errors, live quality vs training, drift, alerts",
        (
            arg("name", help="deployed model name", completes=True),
            arg("--window", default="5m", help="sliding window (e.g. 30s, 5m, 1h)"),
            arg("--refresh", faces=MAGIC, help="update the display every so often (e.g. 2s) from a background thread"),
            arg("--for", dest="duration", default="10m", faces=MAGIC, help="with --refresh: stop after this long"),
            arg("--stop", action="store_true", faces=MAGIC, help="stop a refreshing monitor of this model"),
            arg("--watch", faces=CLI, help="refresh every so often (e.g. 2s) until Ctrl-C"),
            arg("--frame", action="store_true", faces=CLI, help="print the raw request log of the window"),
        ),
    ),
    "feedback": Verb(
        "ground truth for logged predictions: live accuracy, precision, recall, F1 (or MAE, RMSE, R²)",
        (
            arg("name", help="deployed model name", completes=True),
            arg(
                "y_true",
                nargs="+",
                faces=MAGIC,
                help="expression giving the true labels (one per row, or one per request id)",
            ),
            arg(
                "--ids", faces=MAGIC, help="expression giving the request ids (default: the last %%mm_predict of NAME)"
            ),
            arg("--ids", required=True, faces=CLI, help="JSON list of request ids"),
            arg("--labels", required=True, faces=CLI, help="JSON list of true labels, one per id"),
        ),
    ),
    "probe": Verb(
        "timed requests that record network time for the latency split",
        (
            arg("name", help="deployed model name", completes=True),
            arg("-n", type=int, default=20, help="how many timed requests"),
        ),
    ),
}


def deploy_options(args: argparse.Namespace) -> dict[str, Any]:
    """``Deployer.deploy``'s keyword arguments from a parsed ``deploy`` (either face), beside the arguments
    declared above, so a new option is mapped in one place."""
    return {
        "docker": args.docker,
        "port": args.port,
        "batch": args.batch,
        "force": args.force,
        "reason": args.message,
        "workers": args.workers,
        "canary": args.canary,
        "shadow": args.shadow,
        "auto": args.auto,
    }


def apply(parser: argparse.ArgumentParser, verb: str, face: Face) -> argparse.ArgumentParser:
    """Add ``verb``'s arguments for ``face`` to ``parser``."""
    for a in VERBS[verb].args:
        if face in a.faces:
            a.add_to(parser)
    return parser


def completing() -> dict[str, dict[str, bool]]:
    """The magics whose first argument is a model name or version (what the notebook completes), each with its
    options (flag -> whether it takes a value), so Tab after ``-`` offers the magic's own options."""
    out: dict[str, dict[str, bool]] = {}
    for verb, spec in VERBS.items():
        if spec.args and spec.args[0].completes and verb != "show":
            options = {
                flag: a.kwargs.get("action") not in ("store_true", "store_false")
                for a in spec.args
                if "magic" in a.faces
                for flag in a.flags
                if flag.startswith("-")
            }
            out[f"%%mm_{verb}" if verb == "train" else f"%mm_{verb}"] = options
    return out
