"""Server process entry point: ``python -m mm_magics.engine.serving.server``.

Binds its socket itself (port 0 picks a free one), loads and health-checks the model, *then* writes a state file
with its pid and port and starts answering: whoever started it knows it is ready as soon as the file appears.
Off loopback it refuses to start without a bearer token. uvicorn handles SIGTERM with a graceful shutdown.
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import json
import os
import socket
import sys
import time
import traceback
from pathlib import Path
from typing import Any

from ..atomic import atomic_write_text
from ..errors import MMError
from ..hosts import is_loopback, socket_family
from . import standby
from .app import BundleSource, Settings, WorkspaceSource, create_app, identity
from .workers import MAX_WORKERS, fork, stop_children

SWITCH_INTERVAL_S = 0.002


def _read_secret(path: str | None) -> str | None:
    if not path:
        return None
    return Path(path).read_text().strip() or None


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="mm-serve", description="Serve one model version over HTTP (V2 + MLflow).")
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--workspace", help="workspace directory to load versions from")
    src.add_argument("--bundle", help="bundle directory with version.json, artifact.skops, trusted.json")
    p.add_argument("--version", help="NAME@vN to serve (with --workspace)")
    p.add_argument("--candidates", help="with --bundle: where a release's candidate bundles are delivered (vN/)")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=0, help="0 picks a free port")
    p.add_argument("--batch", action="store_true", help="adaptive micro-batching")
    p.add_argument("--workers", type=int, default=1, help="server processes sharing the port (one per core)")
    p.add_argument("--max-batch", type=int, default=64)
    p.add_argument("--max-delay-ms", type=float, default=0.0)
    p.add_argument("--token-file", help="bearer token required on every request (mandatory off loopback)")
    p.add_argument(
        "--allow-no-token",
        action="store_true",
        help="a published image run standalone: when --token-file does not exist, answer without a token (said once "
        "on stderr); a token file that exists must hold a token",
    )
    p.add_argument("--admin-token-file", help="token for swapping versions over HTTP (/mm/v1/load)")
    p.add_argument("--state-file", help="written once the server is ready: pid, host, port, version")
    p.add_argument("--feedback-file", help="append ground-truth feedback here as JSON lines")
    p.add_argument("--metrics-db", help="record every request, its inputs summary and feedback in this SQLite store")
    p.add_argument("--deployment", help="deployment name recorded with each request")
    p.add_argument("--influx-token-file", help="InfluxDB token (a container gets it as a file, never in its env)")
    return p


def main(argv: list[str] | None = None) -> int:
    """Serve, or end with one ``mm-serve: error:`` line (the runner quotes it; a traceback above it is for the log).

    ``--standby=POOL`` first waits, warm, as the next deployment's process (:mod:`.standby`)."""
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) == 1 and argv[0].startswith("--standby="):
        return _standby(Path(argv[0].split("=", 1)[1]))
    args = build_parser().parse_args(argv)
    try:
        return _serve(args)
    except MMError as exc:
        print(f"mm-serve: error: {exc}", file=sys.stderr, flush=True)
        return 2
    except Exception as exc:
        traceback.print_exc()
        print(f"mm-serve: error: {type(exc).__name__}: {exc} (traceback above)", file=sys.stderr, flush=True)
        return 1


def _serve(args: argparse.Namespace) -> int:
    import uvicorn

    if args.allow_no_token and args.token_file and not Path(args.token_file).exists():
        token = None
        print(
            f"mm-serve: no token at {args.token_file}: answering every client without one (mount a file holding a "
            "token there to require `Authorization: Bearer`)",
            file=sys.stderr,
            flush=True,
        )
    else:
        token = _read_secret(args.token_file)
        if not is_loopback(args.host) and not token:
            raise MMError(f"refusing to listen on {args.host} without a bearer token: pass --token-file")
    if not 1 <= args.workers <= MAX_WORKERS:
        raise MMError(f"--workers {args.workers} is out of range: use 1 to {MAX_WORKERS} (one per core is usual)")
    if args.workspace and not args.version:
        raise MMError("--workspace needs --version NAME@vN")
    sock = _bind(args.host, args.port)
    # before the workspace opens (GitPython keeps pipes to git) and before any thread starts
    workers, private = fork(args.workers)
    if args.workspace:
        from ..workspace import Workspace

        source: Any = WorkspaceSource(Workspace.open(args.workspace, create=False))
        spec = args.version
    else:
        source = BundleSource(Path(args.bundle), Path(args.candidates) if args.candidates else None)
        name, number = identity(json.loads((Path(args.bundle) / "version.json").read_text()))
        spec = f"{name}@v{number}"
    from ..monitoring.prometheus import PrometheusMetrics

    metrics = PrometheusMetrics()
    recorder = _recorder(args, source, metrics, workers.index)

    def shutdown() -> None:
        stop_children(workers)  # the first worker waits for the others to drain and write what they recorded
        if recorder is not None:
            recorder.close(timeout=2.5)

    settings = Settings(
        metrics=metrics,
        batch=args.batch,
        max_batch=args.max_batch,
        max_delay_ms=args.max_delay_ms,
        token=token,
        admin_token=_read_secret(args.admin_token_file),
        on_feedback=recorder.feedback if recorder else _feedback_writer(args.feedback_file),
        on_request=recorder.record if recorder else None,
        on_flush=recorder.flush if recorder else None,
        # what is queued (about a second of requests, and the InfluxDB sink's queue) is written before exit
        on_shutdown=shutdown,
        peers=workers.peers,
        workers=workers.count,
    )
    app = create_app(source, [spec], settings)
    # Everything loaded so far (the model, sklearn, pandas, starlette) lives as long as the process: move it out of
    # the cyclic collector's sight. Recorded requests keep their frames alive until the recorder's next flush, so
    # some survive into older generations; without this every full collection walked the whole heap (~80 ms
    # pauses: p99 went from ~11 to ~88 ms with recording on, benchmarks/monitoring.py).
    gc.collect()
    gc.freeze()
    # The recorder thread's once-a-second flush holds the GIL in 5 ms slices (CPython's default switch interval),
    # and a request that arrives meanwhile waits out each slice: with recording on, p99 at one client was 2.30 ms
    # against 0.57 ms without. 2 ms slices give 1.30 ms; 0.5 ms gave 1.17 ms but the extra switching cost 6.6 % of
    # throughput at c=8 against the 5 % monitoring budget (4.5 % at 2 ms; benchmarks/monitoring.py).
    sys.setswitchinterval(SWITCH_INTERVAL_S)
    port = sock.getsockname()[1]
    config = uvicorn.Config(app, log_level="warning", access_log=False, lifespan="on", timeout_graceful_shutdown=5)
    server = uvicorn.Server(config)
    if args.state_file and workers.index == 0:
        if workers.count > 1:  # "ready" means every worker answers
            _wait_workers(workers)
        state = {"pid": os.getpid(), "host": args.host, "port": port, "version": spec, "ready": time.time()}
        atomic_write_text(Path(args.state_file), json.dumps(state) + "\n")
    if workers.index == 0:
        print(f"mm-serve: {spec} on http://{args.host}:{port} ({workers.count} worker(s))", flush=True)
    try:
        server.run(sockets=[sock, private] if private is not None else [sock])
    finally:
        if recorder is not None:
            # normally done already by the lifespan shutdown (on_shutdown); this covers a server that failed or
            # returned without a signal (closing twice is harmless)
            recorder.close()
    return 0


def _standby(pool: Path) -> int:
    """Import what a server needs (the ~2.4 s a cold start spends), wait for an order, then serve it."""
    import pandas  # noqa: F401
    import setproctitle  # noqa: F401 - set up while the original environment is intact
    import sklearn  # noqa: F401
    import uvicorn  # noqa: F401

    from .. import serialization, workspace  # noqa: F401
    from ..monitoring import prometheus, recorder, store  # noqa: F401
    from . import handlers  # noqa: F401

    serialization._skops()  # imports every estimator module skops knows
    gc.collect()
    gc.freeze()  # what the imports built lives as long as the process: the server's own collect skips it
    waited = standby.listen(pool, standby.idle_seconds())
    if waited is None:
        return 0
    return main(standby.become(*waited))


def _bind(host: str, port: int) -> socket.socket:
    """The listening socket, bound before the model loads (port 0 picks a free one)."""
    sock = socket.socket(socket_family(host), socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    # accepted connections inherit this: responses go out at once instead of waiting ~40 ms for a delayed ACK
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    try:
        sock.bind((host, port))
    except (OSError, OverflowError) as exc:  # the runner checked the port; another process may have taken it since
        reason = getattr(exc, "strerror", None) or exc
        raise MMError(f"cannot listen on {host}:{port}: {reason}") from None
    sock.listen(2048)
    sock.set_inheritable(True)
    return sock


def _wait_workers(workers: Any) -> None:
    """Report ready only once the other workers answer on their private ports (the health route needs no token).
    The wait is bounded by the runner's own 60 s readiness limit, so a worker that never answers fails the deploy
    (with the log to read) instead of leaving a deployment that is half up."""
    import httpx

    deadline = time.monotonic() + 60
    for peer in workers.peers:
        while time.monotonic() < deadline:
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(peer + "/v2/health/ready", timeout=2).status_code == 200:
                    break
            time.sleep(0.02)


def _recorder(args: argparse.Namespace, source: Any, metrics: Any, worker: int = 0) -> Any:
    """The request recorder (embedded store, plus the InfluxDB sink when configured), or None."""
    if not args.metrics_db:
        return None
    from ..monitoring.recorder import Recorder
    from ..monitoring.store import SQLiteStore

    store = SQLiteStore(Path(args.metrics_db))
    from ..monitoring.influx_settings import INFLUX_STATE, resolve

    run = Path(args.metrics_db).parent
    local = dict(source.ws.local_config) if isinstance(source, WorkspaceSource) else {}
    if token := _read_secret(args.influx_token_file):
        local["influx"] = {**(local.get("influx") or {}), "token": token}
    sink = None
    if resolve(local) is not None:
        try:
            from ..monitoring.influx import InfluxSink
        except ImportError:  # influxdb-client is an optional extra: say so where %mm_monitor looks
            reason = "influxdb-client is not installed where the server runs: pip install 'mm_magics[influx]'"
            print(f"mm-serve: InfluxDB is configured but {reason}", file=sys.stderr, flush=True)
            with contextlib.suppress(OSError):
                state = {"connected": False, "spooled": 0, "written": 0, "last_error": reason}
                atomic_write_text(run / INFLUX_STATE, json.dumps(state), durable=False)
        else:
            spool = run / ("influx-spool" if worker == 0 else f"influx-spool-{worker}")  # one writer per spool
            sink = InfluxSink.from_config(local, spool)
    return Recorder(store, sink=sink, deployment=args.deployment, state_file=run / INFLUX_STATE, metrics=metrics)


def _feedback_writer(path: str | None) -> Any:
    if not path:
        return None
    target = Path(path)

    def write(name: str, ids: list[str], labels: list[Any]) -> None:
        lines = "".join(
            json.dumps({"t": time.time(), "model": name, "id": i, "label": y}) + "\n"
            for i, y in zip(ids, labels, strict=True)
        )
        with open(target, "a") as fh:
            fh.write(lines)

    return write


if __name__ == "__main__":
    sys.exit(main())
