"""The ``mm`` command: the engine's verbs for shells, scripts and CI.

Each subcommand parses its arguments, calls one engine function and prints the result; errors from the engine
become one line on stderr and exit status 2, never a traceback.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from collections.abc import Callable, Sequence
from dataclasses import asdict, is_dataclass
from pathlib import Path
from typing import Any

from . import verbs
from .engine.errors import MMError

#: Verbs that may start a workspace where there is none; every other verb needs one to exist (a mistyped -C path
#: must be an error, not a new empty workspace).
_CREATING = {"init", "remote", "pull"}


def _ws(args: argparse.Namespace) -> Any:
    """The one workspace of this command (opened on first use, closed by :func:`main`)."""
    from .engine.workspace import Workspace

    if getattr(args, "opened", None) is None:
        args.opened = Workspace.open(args.workspace, create=args.command in _CREATING)
    return args.opened


def _emit(args: argparse.Namespace, result: Any) -> None:
    if getattr(args, "json", False):
        print(json.dumps(_plain(result), indent=2, default=str))
    elif isinstance(result, list):
        for item in result:
            print(item)
    elif result is not None:
        print(result)


def _plain(obj: Any) -> Any:
    if is_dataclass(obj) and not isinstance(obj, type):
        return asdict(obj)
    if isinstance(obj, list):
        return [_plain(o) for o in obj]
    return obj


# -- subcommands ---------------------------------------------------------------------------------------------------
def cmd_init(args: argparse.Namespace) -> Any:
    ws = _ws(args)
    return f"workspace ready at {ws.root}"


def cmd_models(args: argparse.Namespace) -> Any:
    listing = _ws(args).models()
    return listing.models if args.json else listing


def cmd_show(args: argparse.Namespace) -> Any:
    return _ws(args).registry.get(args.version)


def cmd_describe(args: argparse.Namespace) -> Any:
    return _ws(args).describe(
        args.name, args.message, owner=args.owner, intended_use=args.intended_use, out_of_scope=args.out_of_scope
    )


def cmd_card(args: argparse.Namespace) -> Any:
    card = _ws(args).card(args.version)
    if not args.out:
        return card
    out = Path(args.out)
    if out.suffix.lower() in (".html", ".htm"):
        from .render import to_html

        text = f"<!doctype html><meta charset='utf-8'><title>{card.version}</title>\n{to_html(card)}\n"
    else:
        text = card.markdown
    try:
        out.write_text(text, encoding="utf-8")
    except OSError as exc:
        raise MMError(f"cannot write the card to {out}: {exc.strerror}: pick a writable path with --out") from None
    return f"wrote the model card of {card.version} to {out}"


def cmd_explain(args: argparse.Namespace) -> Any:
    return _ws(args).registry.explanation(args.version)


def cmd_log(args: argparse.Namespace) -> Any:
    return _ws(args).registry.log(args.name, limit=20 if args.limit is None else args.limit, before=args.before)


def cmd_diff(args: argparse.Namespace) -> Any:
    return _ws(args).registry.diff(args.a, args.b, agreement=not args.no_agreement)


def cmd_rollback(args: argparse.Namespace) -> Any:
    from .engine.specs import parse_spec

    spec = parse_spec(args.version)
    if spec.number is None and spec.alias is None:
        raise MMError(f"say which version to roll back to: mm rollback {spec.name}@vN -m WHY")
    version, deployment = _deployer(args).rollback(spec.name, str(spec)[len(spec.name) + 1 :], args.message)
    return [version, deployment] if deployment else version


def cmd_checkout(args: argparse.Namespace) -> Any:
    model = _ws(args).registry.checkout(args.version)
    return f"{args.version} loads: {model!r} (sha256 verified)"


def cmd_alias(args: argparse.Namespace) -> Any:
    reg = _ws(args).registry
    if args.delete:
        return reg.delete_alias(args.version, args.alias, args.message)
    return reg.set_alias(args.version, args.alias, args.message)


def cmd_stage(args: argparse.Namespace) -> Any:
    lc = _ws(args).lifecycle
    if args.stage is None:
        return lc.history(args.version)
    if args.check:
        return [f"{'pass' if r.passed else 'FAIL'}  {r.gate}: {r.detail}" for r in lc.check(args.version, args.stage)]
    return lc.transition(args.version, args.stage, args.message, force=args.force)


def cmd_lifecycle(args: argparse.Namespace) -> Any:
    return _ws(args).lifecycle.picture(args.spec)


def cmd_view(args: argparse.Namespace) -> Any:
    return _ws(args).overview(args.name, window=args.window, metric=args.metric)


def cmd_stages(args: argparse.Namespace) -> Any:
    counts = _ws(args).lifecycle.counts(args.name)
    return [f"{stage:<10} {n}" for stage, n in counts.items()]


def cmd_gate(args: argparse.Namespace) -> Any:
    lc = _ws(args).lifecycle
    gates = (
        lc.set_gates(args.name, args.exprs, stage=args.stage, replace=args.replace)
        if args.exprs
        else lc.gates(args.name)
    )
    return [f"{g['stage']}: {g['expr']}" for g in gates] or f"{args.name} has no gates"


def cmd_history(args: argparse.Namespace) -> Any:
    return _ws(args).registry.history(args.name, limit=args.limit)


def cmd_fsck(args: argparse.Namespace) -> Any:
    # main() exits 1 when the report is not ok
    return _ws(args).registry.fsck(repair=args.repair, remote=args.remote)


def cmd_gc(args: argparse.Namespace) -> Any:
    report = _ws(args).registry.gc(grace_seconds=args.grace)
    return f"gc: removed {len(report.removed)} object(s), {report.freed_bytes} bytes; kept {report.kept}"


def cmd_trust(args: argparse.Namespace) -> Any:
    return "trusted types: " + ", ".join(_ws(args).registry.trust(args.types, args.message))


def cmd_remote(args: argparse.Namespace) -> Any:
    _ws(args).registry.set_remote(args.url, args.artifacts)
    return f"remote {args.url}" + (f", artifacts in {args.artifacts}" if args.artifacts else "")


def cmd_push(args: argparse.Namespace) -> Any:
    return _ws(args).registry.push(args.url, args.artifacts)


def cmd_pull(args: argparse.Namespace) -> Any:
    return _ws(args).registry.pull(args.url, args.artifacts, fetch=args.all_artifacts)


def _deployer(args: argparse.Namespace) -> Any:
    return _ws(args).deployments


def cmd_deploy(args: argparse.Namespace) -> Any:
    return _deployer(args).deploy(args.version, **verbs.deploy_options(args))


def cmd_promote(args: argparse.Namespace) -> Any:
    return _deployer(args).promote(args.name, reason=args.message, force=args.force)


def cmd_abort(args: argparse.Namespace) -> Any:
    return _deployer(args).abort(args.name, reason=args.message)


def cmd_image(args: argparse.Namespace) -> Any:
    return _deployer(args).image(args.version, push=args.push)


def cmd_export_kubernetes(args: argparse.Namespace) -> Any:
    out = Path(args.out) if args.out else Path("k8s")
    options = {
        "name": args.name,
        "namespace": args.namespace,
        "replicas": args.replicas,
        "cpu": args.cpu,
        "memory": args.memory,
        "token_secret": args.token_secret,
        "influx_secret": args.influx_secret,
        "kserve": not args.no_kserve,
        "plain": not args.no_plain,
    }
    return _deployer(args).export_kubernetes(args.version, args.image, out, **options)


def cmd_export_grafana(args: argparse.Namespace) -> Any:
    from .engine.monitoring.dashboards import write_grafana_dashboard

    out = write_grafana_dashboard(Path(args.out))
    return (
        f"wrote the Grafana dashboard to {out}: in Grafana, Dashboards > New > Import, upload it, then pick an "
        "InfluxDB 2 data source (Flux), the bucket the servers write to and a model"
    )


def cmd_undeploy(args: argparse.Namespace) -> Any:
    return _deployer(args).undeploy(args.name)


def cmd_deployments(args: argparse.Namespace) -> Any:
    deps = _deployer(args).list()
    return deps if deps or args.json else "nothing deployed"


def cmd_docker_setup(args: argparse.Namespace) -> Any:
    """Run the setup script shipped in the package (it needs no source checkout)."""
    from importlib.resources import as_file, files

    with as_file(files("mm_magics") / "data" / "setup-docker.sh") as script:
        code = subprocess.run(["bash", str(script)], check=False).returncode
    if code != 0:
        raise MMError(f"the Docker setup failed (exit {code}): see its [setup-docker] lines above")
    return None


def cmd_token(args: argparse.Namespace) -> Any:
    return _deployer(args).secret("token")


def cmd_predict(args: argparse.Namespace) -> Any:
    try:
        rows = json.loads(args.data)
    except (ValueError, RecursionError) as exc:
        detail = exc.msg if isinstance(exc, json.JSONDecodeError) else type(exc).__name__
        raise MMError(f"DATA must be JSON rows, e.g. '[[5.1, 3.5, 1.4, 0.2]]' ({detail})") from None
    return _deployer(args).predict(
        args.name, rows, outputs=("predict", "predict_proba") if args.proba else ("predict",)
    )


def cmd_monitor(args: argparse.Namespace) -> Any:
    import time

    from .engine.monitoring.live import parse_duration

    monitor, deployer = _ws(args).monitor, _deployer(args)
    if args.frame:
        return monitor.frame(args.name, args.window).to_string(max_rows=50)
    snap = monitor.view(args.name, args.window, deployments=deployer, evaluate=True)  # the user's action
    while args.watch:
        print("\033[2J\033[H" + str(snap), flush=True)
        time.sleep(parse_duration(args.watch))
        snap = monitor.view(args.name, args.window, deployments=deployer)  # a refresh: reads only
    return snap


def cmd_probe(args: argparse.Namespace) -> Any:
    return _ws(args).monitor.probe(args.name, args.n, deployments=_deployer(args))


def cmd_feedback(args: argparse.Namespace) -> Any:
    try:
        ids, labels = json.loads(args.ids), json.loads(args.labels)
    except (ValueError, RecursionError):
        raise MMError("--ids and --labels take JSON lists, e.g. --ids '[\"id1\"]' --labels '[1]'") from None
    if not isinstance(ids, list) or not isinstance(labels, list):
        raise MMError("--ids and --labels take JSON lists, e.g. --ids '[\"id1\"]' --labels '[1]'")
    count = _ws(args).monitor.record_feedback(args.name, [str(i) for i in ids], labels)
    return f"recorded feedback for {count} request(s) of {args.name}"


def cmd_demo(args: argparse.Namespace) -> Any:
    from .demo import run_demo

    return run_demo(args.dir)


# -- parser --------------------------------------------------------------------------------------------------------
def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="mm", description="Model management: versions, lifecycle, deployment.")
    p.add_argument("--workspace", "-C", help="workspace directory (default: $MM_HOME or the nearest .mm/)")
    p.add_argument("--json", action="store_true", help="print machine-readable JSON")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def add(name: str, fn: Callable[[argparse.Namespace], Any], help: str) -> argparse.ArgumentParser:
        sp = sub.add_parser(
            name,
            help=help.replace("%", "%%"),  # argparse %-formats the list of verbs (`mm --help`), not a description
            description=help,
            epilog=verbs.examples(name, "cli", f"mm {name}"),
            formatter_class=argparse.RawDescriptionHelpFormatter,
        )
        sp.set_defaults(fn=fn)
        # the global options also work after the verb (`mm log m --json`); SUPPRESS keeps a value given before it
        sp.add_argument("--workspace", "-C", default=argparse.SUPPRESS, help="workspace directory")
        sp.add_argument("--json", action="store_true", default=argparse.SUPPRESS, help="print machine-readable JSON")
        return sp

    add("init", cmd_init, "create (or find) the workspace")
    shared = {
        "models": cmd_models,
        "show": cmd_show,
        "explain": cmd_explain,
        "card": cmd_card,
        "describe": cmd_describe,
        "log": cmd_log,
        "diff": cmd_diff,
        "rollback": cmd_rollback,
        "checkout": cmd_checkout,
        "alias": cmd_alias,
        "stage": cmd_stage,
        "lifecycle": cmd_lifecycle,
        "view": cmd_view,
        "gate": cmd_gate,
        "deploy": cmd_deploy,
        "promote": cmd_promote,
        "abort": cmd_abort,
        "image": cmd_image,
        "undeploy": cmd_undeploy,
        "deployments": cmd_deployments,
        "token": cmd_token,
        "predict": cmd_predict,
        "monitor": cmd_monitor,
        "probe": cmd_probe,
        "feedback": cmd_feedback,
    }
    for name, fn in shared.items():  # arguments and help declared once, for the magics too (mm_magics.verbs)
        verbs.apply(add(name, fn, verbs.VERBS[name].help), name, "cli")
    sp = add("stages", cmd_stages, "how many versions of a model sit in each stage")
    sp.add_argument("name")
    sp = add("history", cmd_history, "the audit log (every commit), newest first")
    sp.add_argument("name", nargs="?")
    sp.add_argument("--limit", "-n", type=int, default=50)
    sp = add("fsck", cmd_fsck, "verify every ref, tag, document, git object and artifact; rebuild the index")
    sp.add_argument("--repair", action="store_true", help="re-point or delete tags off the branch, re-create lost ones")
    sp.add_argument("--remote", action="store_true", help="also check the artifact remote holds every object")
    sp = add("gc", cmd_gc, "delete artifacts no version references")
    sp.add_argument("--grace", type=float, default=3600.0, help="keep objects younger than this many seconds")
    sp = add("trust", cmd_trust, "trust extra types when loading artifacts (audited)")
    sp.add_argument("types", nargs="+")
    sp.add_argument("-m", "--message", default="")
    sp = add(
        "remote",
        cmd_remote,
        "set the git remote and the artifact location used by push/pull: a directory or any fsspec URL "
        "(s3://bucket/prefix needs mm_magics[s3]; credentials come from the backend's own chain, e.g. AWS_*)",
    )
    sp.add_argument("url")
    sp.add_argument("artifacts", nargs="?")
    sp = add("push", cmd_push, "push the registry (git) and upload the artifacts the artifact remote lacks")
    sp.add_argument("url", nargs="?")
    sp.add_argument("artifacts", nargs="?")
    sp = add("pull", cmd_pull, "pull the registry; artifacts are fetched when a version needs one")
    sp.add_argument("url", nargs="?")
    sp.add_argument("artifacts", nargs="?")
    sp.add_argument("--all-artifacts", action="store_true", help="also download every artifact now")
    add(
        "docker-setup",
        cmd_docker_setup,
        "as root: install docker.io, start dockerd and build the local/python:3.11 base image, offline from the "
        "Debian mirror this machine uses (idempotent; a second run takes a second)",
    )
    sp = add("export", cmd_export_kubernetes, "write what another platform runs a version with")
    kinds = sp.add_subparsers(dest="target", required=True, metavar="TARGET")
    k8s = kinds.add_parser(
        "kubernetes",
        help="KServe InferenceService and a plain Deployment + Service for a version's image, validated offline",
        description="Manifests a platform team can `kubectl apply`: a KServe InferenceService running the image as a "
        "V2 custom predictor, and a Deployment + Service with probes on the V2 health routes. The bearer token "
        "(Secret NAME-token, key token) and the InfluxDB settings (Secret NAME-influx, INFLUXDB_V2_* keys, optional) "
        "are referenced, never written. Nothing talks to a cluster.",
        epilog="examples:\n  mm export kubernetes iris@v3 --image registry.example.com/team/iris:v3\n"
        "  mm export kubernetes iris@production --image REF --namespace ml --replicas 3 --out deploy/",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    k8s.add_argument("--workspace", "-C", default=argparse.SUPPRESS, help="workspace directory")
    k8s.add_argument("--json", action="store_true", default=argparse.SUPPRESS, help="print machine-readable JSON")
    k8s.add_argument("version", help="NAME@vN or NAME@ALIAS")
    k8s.add_argument("--image", required=True, help="the pushed image (mm image NAME@vN --push REF prints it)")
    k8s.add_argument("--out", help="directory to write into (default: ./k8s)")
    k8s.add_argument("--name", help="Kubernetes object name (default: from the model name)")
    k8s.add_argument("--namespace", help="metadata.namespace (default: none, kubectl's current one)")
    k8s.add_argument("--replicas", type=int, default=1, help="pods (KServe: minReplicas)")
    k8s.add_argument("--cpu", default="250m", help="CPU request (no limit)")
    k8s.add_argument("--memory", default="512Mi", help="memory request and limit")
    k8s.add_argument("--token-secret", help="Secret holding the bearer token (default NAME-token)")
    k8s.add_argument("--influx-secret", help="Secret with INFLUXDB_V2_* settings (default NAME-influx)")
    k8s.add_argument("--no-kserve", action="store_true", help="leave out the InferenceService")
    k8s.add_argument("--no-plain", action="store_true", help="leave out the Deployment and Service")
    k8s.set_defaults(fn=cmd_export_kubernetes)
    graf = kinds.add_parser(
        "grafana",
        help="the Grafana dashboard (JSON to import) over the InfluxDB measurements every deployment writes",
        description="Write the Grafana dashboard shipped with mm_magics: request rate per version, status codes, "
        "latency split at p50 and p95, micro-batch sizes, from the mm_request points in InfluxDB (Flux).",
    )
    graf.add_argument("--out", default="mm-grafana-dashboard.json", help="file to write (default: %(default)s)")
    graf.set_defaults(fn=cmd_export_grafana)
    sp = add("demo", cmd_demo, "run the quick-start story end to end on a bundled dataset")
    sp.add_argument("--dir", default="mm-demo", help="where to run it (default: ./mm-demo)")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        result = args.fn(args)
        _emit(args, result)
        if getattr(result, "ok", True) is False:  # fsck found problems: scripts and CI must see a failure
            return 1
    except MMError as exc:
        print(f"mm: error: {exc}", file=sys.stderr)  # str() spells the advice for a shell
        return 2
    except KeyboardInterrupt:
        print("mm: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # `mm log m | head`: the reader left; say nothing more (the recipe in Python's docs)
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141
    finally:
        if getattr(args, "opened", None) is not None:
            args.opened.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
