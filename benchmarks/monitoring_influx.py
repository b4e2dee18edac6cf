"""Benchmark the InfluxDB sink against the raw influxdb-client write it is built on, into a real server.

Usage::

    python benchmarks/monitoring_influx.py [--points N] [--rounds R] [--out FILE]

One JSON document goes to stdout (progress to stderr). The server is Debian's ``victoria-metrics`` (InfluxDB's
``/api/v2/write`` line protocol, unchanged from influxdb-client; ``scripts/setup-influx.sh`` installs it), started
by this script on a free 127.0.0.1 port with a temporary data directory, and stopped at the end.

What is measured, per round, with the same N request records (the keys the recorder hands the sink):

* **baseline** — raw influxdb-client: the records' line-protocol strings are built *before* timing, then sent with
  the synchronous write API in batches of ``--batch`` joined strings: the client + server floor;
* **sink** — ``InfluxSink``: from the first ``write()`` (records in chunks of ``--chunk``, as the recorder flushes
  them) until ``drain()`` says everything is on the server. This includes the conversion of records to line
  protocol, which the baseline does not pay, so ``sink/baseline`` is the sink's whole cost against the floor;
* **caller cost** — the time spent inside ``write()`` per point (what the recording thread pays);
* **outage** — the server stopped: N points through ``write()`` until ``flush()`` reports them on disk (spool
  throughput, fsync'd), then the server restarted and ``drain()`` timed until the spool is replayed.

Rounds alternate baseline and sink (the machine is shared and noisy); medians are reported, and the ratio is taken
within each round. Every round writes new timestamps, and the last sink round is read back (``/api/v1/export``) to
check that all N points arrived.
"""

from __future__ import annotations

import argparse
import json
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

from influxdb_client import InfluxDBClient
from influxdb_client.client.write_api import SYNCHRONOUS

from mm_magics.engine.monitoring.influx import PRECISION, InfluxSink, to_line


def log(msg: str) -> None:
    print(f"[monitoring_influx] {msg}", file=sys.stderr, flush=True)


class Server:
    def __init__(self, root: Path) -> None:
        binary = shutil.which("victoria-metrics")
        if binary is None:
            raise SystemExit("victoria-metrics is not installed: run `bash scripts/setup-servers.sh` as root")
        self.binary, self.data, self.logfile = binary, root / "data", root / "vm.log"
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        self.proc: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        with open(self.logfile, "ab") as out:
            self.proc = subprocess.Popen(
                [
                    self.binary,
                    f"-storageDataPath={self.data}",
                    f"-httpListenAddr=127.0.0.1:{self.port}",
                    "-retentionPeriod=100y",
                    "-search.latencyOffset=0s",
                ],
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                with urllib.request.urlopen(f"{self.url}/health", timeout=1):
                    return
            except OSError:
                time.sleep(0.05)
        raise SystemExit(f"victoria-metrics did not start: see {self.logfile}")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)

    def count(self, match: str, expected: int, timeout: float = 60) -> int:
        deadline = time.monotonic() + timeout
        while True:
            with urllib.request.urlopen(f"{self.url}/internal/force_flush", timeout=10):
                pass
            body = urllib.parse.urlencode({"match[]": match}).encode()
            with urllib.request.urlopen(f"{self.url}/api/v1/export", data=body, timeout=60) as r:
                n = sum(len(json.loads(line)["values"]) for line in r.read().decode().splitlines() if line)
            if n >= expected or time.monotonic() > deadline:
                return n
            time.sleep(0.5)


def records(n: int, t0: float, tag: str) -> list[dict[str, Any]]:
    """Request records as the recorder builds them (a few models and versions, distinct ms timestamps)."""
    return [
        {
            "kind": "request",
            "time": t0 + i / 1000,
            "model": f"{tag}-{i % 4}",
            "version": 1 + i % 3,
            "deployment": f"{tag}-{i % 4}",
            "request_id": f"{i:032x}",
            "status": 200 if i % 50 else 422,
            "total_s": 0.0021 + (i % 97) * 1e-5,
            "queue_s": 0.0001,
            "proc_s": 0.0017,
            "batch_size": 1,
            "rows": 1,
            "error": None,
        }
        for i in range(n)
    ]


def baseline(url: str, lines: list[str], batch: int) -> float:
    with InfluxDBClient(url=url, token="t", org="o") as client:
        api = client.write_api(write_options=SYNCHRONOUS)
        start = time.perf_counter()
        for i in range(0, len(lines), batch):
            api.write("b", "o", record="\n".join(lines[i : i + batch]), write_precision=PRECISION)
        return time.perf_counter() - start


def through_sink(url: str, recs: list[dict], spool: Path, batch: int, chunk: int) -> tuple[float, float]:
    sink = InfluxSink(url, "t", "o", "b", spool_dir=spool, batch_size=batch, flush_interval=0.05)
    try:
        in_write = 0.0
        start = time.perf_counter()
        for i in range(0, len(recs), chunk):
            t = time.perf_counter()
            sink.write(recs[i : i + chunk])
            in_write += time.perf_counter() - t
        if not sink.drain(300):
            raise SystemExit(f"sink did not drain: {sink.state()}")
        total = time.perf_counter() - start
        state = sink.state()
        if state["written"] != len(recs) or state["dropped"]:
            raise SystemExit(f"sink wrote {state['written']} of {len(recs)}: {state}")
        return total, in_write
    finally:
        sink.close()


def outage(server: Server, recs: list[dict], spool: Path, batch: int, chunk: int) -> tuple[float, float]:
    sink = InfluxSink(server.url, "t", "o", "b", spool_dir=spool, batch_size=batch, flush_interval=0.05)
    try:
        server.stop()
        start = time.perf_counter()
        for i in range(0, len(recs), chunk):
            sink.write(recs[i : i + chunk])
        if not sink.flush(300) or sink.state()["spooled"] != len(recs):
            raise SystemExit(f"outage: points not all spooled: {sink.state()}")
        spooled = time.perf_counter() - start
        server.start()
        start = time.perf_counter()
        if not sink.drain(300):
            raise SystemExit(f"outage: spool not replayed: {sink.state()}")
        return spooled, time.perf_counter() - start
    finally:
        sink.close()


def run(args: argparse.Namespace) -> dict[str, Any]:
    root = Path(tempfile.mkdtemp(prefix="mm-bench-influx-"))
    server = Server(root)
    server.start()
    try:
        n = args.points
        base_t = int(time.time()) - 86_400 * 30
        probe = records(2000, base_t, "warm")
        baseline(server.url, [to_line(r) for r in probe], args.batch)  # warm-up: connections, first series
        t = time.perf_counter()
        for r in probe:
            to_line(r)
        convert_us = (time.perf_counter() - t) / len(probe) * 1e6

        rounds = []
        for k in range(args.rounds):
            b_recs = records(n, base_t + (2 * k + 1) * 3600, f"base{k}")
            s_recs = records(n, base_t + (2 * k + 2) * 3600, f"sink{k}")
            lines = [to_line(r) for r in b_recs]
            order = ["baseline", "sink"] if k % 2 == 0 else ["sink", "baseline"]
            row: dict[str, float] = {}
            for which in order:
                if which == "baseline":
                    row["baseline_s"] = baseline(server.url, lines, args.batch)
                else:
                    row["sink_s"], row["sink_in_write_s"] = through_sink(
                        server.url, s_recs, root / f"spool{k}", args.batch, args.chunk
                    )
            row["ratio"] = row["baseline_s"] / row["sink_s"]
            rounds.append(row)
            log(
                f"round {k + 1}/{args.rounds}: baseline {n / row['baseline_s']:,.0f} pts/s, "
                f"sink {n / row['sink_s']:,.0f} pts/s (sink/baseline {row['ratio']:.2f})"
            )
        last = f"sink{args.rounds - 1}"
        arrived = server.count(f'{{__name__="mm_request_latency_ms",model=~"{last}-.*"}}', n)

        o_recs = records(n, base_t + 86_400 * 10, "outage")
        spool_s, replay_s = outage(server, o_recs, root / "spool-outage", args.batch, args.chunk)
        replayed = server.count('{__name__="mm_request_latency_ms",model=~"outage-.*"}', n)
        log(f"outage: spooled {n / spool_s:,.0f} pts/s, replayed {n / replay_s:,.0f} pts/s")

        med = statistics.median
        return {
            "benchmark": "monitoring_influx",
            "server": "victoria-metrics (InfluxDB /api/v2/write line protocol)",
            "points_per_round": n,
            "rounds": args.rounds,
            "batch_size": args.batch,
            "write_chunk": args.chunk,
            "baseline_raw_client_points_per_s": round(med(n / r["baseline_s"] for r in rounds)),
            "sink_points_per_s": round(med(n / r["sink_s"] for r in rounds)),
            "sink_vs_baseline_ratio": round(med(r["ratio"] for r in rounds), 3),
            "sink_caller_us_per_point": round(med(r["sink_in_write_s"] / n * 1e6 for r in rounds), 3),
            "to_line_us_per_record": round(convert_us, 3),
            "outage_spool_points_per_s": round(n / spool_s),
            "outage_replay_points_per_s": round(n / replay_s),
            "verified": {"last_sink_round_arrived": arrived, "outage_replay_arrived": replayed, "expected": n},
            "rounds_detail": [{k: round(v, 4) for k, v in r.items()} for r in rounds],
        }
    finally:
        server.stop()
        shutil.rmtree(root, ignore_errors=True)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--points", type=int, default=200_000, help="points per measurement (default 200000)")
    parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds; medians reported (default 3)")
    parser.add_argument("--batch", type=int, default=5000, help="points per HTTP write (default 5000)")
    parser.add_argument("--chunk", type=int, default=1000, help="records per sink.write() call (default 1000)")
    parser.add_argument("--out", type=Path, help="also write the JSON document here")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    report = run(args)
    text = json.dumps(report, indent=2)
    print(text)
    if args.out:
        args.out.write_text(text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
