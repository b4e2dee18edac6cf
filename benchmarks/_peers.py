"""The peers ``benchmarks/serving.py --peers`` puts beside our server: ``mlflow models serve`` and MLServer
(``mlserver-sklearn``), each installed in its own venv under ``~/.cache/mm_magics/bench-venvs`` (built once per
machine, with this interpreter's scikit-learn version) and started the way their docs say, serving the same model.

The model is fitted again inside each venv (``LogisticRegression(max_iter=500)`` on iris, as the benchmark's
fixture does): scikit-learn's fit is deterministic, so the peers hold the same coefficients, the benchmark never
hands a pickle across, and the prediction check before measuring proves the answers agree.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import httpx
from _bench import package_version, stop_process

VENVS = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "mm_magics" / "bench-venvs"
READY_TIMEOUT_S = 120.0

FIT = """
import sys
from sklearn.datasets import load_iris
from sklearn.linear_model import LogisticRegression
X, y = load_iris(return_X_y=True, as_frame=True)
model = LogisticRegression(max_iter=500).fit(X, y)
"""

SAVE_MLFLOW = (
    FIT
    + """
import mlflow.sklearn
mlflow.sklearn.save_model(model, sys.argv[1], input_example=X.iloc[:1])
"""
)

SAVE_MLSERVER = (
    FIT
    + """
import joblib
joblib.dump(model, sys.argv[1])
"""
)


@dataclass
class Peer:
    name: str
    url: str
    description: str
    path: str  # the inference route the load generator posts to
    body: bytes  # the 1-row request in this peer's protocol
    version: str | None  # the peer package's version


def venv_python(name: str, packages: list[str], log: Callable[[str], None]) -> Path:
    """A venv with ``packages`` (and our scikit-learn version), made once and reused."""
    venv = VENVS / name
    python = venv / "bin" / "python"
    marker = venv / "installed.json"
    wanted = [*packages, f"scikit-learn=={package_version('scikit-learn')}"]
    if python.exists() and marker.exists() and json.loads(marker.read_text()) == wanted:
        return python
    log(f"installing {', '.join(wanted)} into {venv} (once per machine)")
    subprocess.run([sys.executable, "-m", "venv", "--clear", str(venv)], check=True)
    subprocess.run([python, "-m", "pip", "install", "-q", *wanted], check=True, timeout=1800)
    marker.write_text(json.dumps(wanted))
    return python


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait(url: str, proc: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + READY_TIMEOUT_S
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"the server for {url} exited with status {proc.returncode} before it was ready")
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(url, timeout=2).status_code == 200:
                return
        time.sleep(0.2)
    raise RuntimeError(f"{url} was not ready after {READY_TIMEOUT_S:.0f}s")


def _start(cmd: list[str], where: Path, ready: str, label: str, stack: contextlib.ExitStack, log) -> None:
    log_file = open(where / f"{label}.log", "wb")  # noqa: SIM115 - closed by the exit stack
    stack.callback(log_file.close)
    env = {**os.environ, "PATH": f"{Path(cmd[0]).parent}:{os.environ.get('PATH', '')}"}
    proc = subprocess.Popen(
        cmd, cwd=where, stdin=subprocess.DEVNULL, stdout=log_file, stderr=subprocess.STDOUT, env=env
    )
    stack.callback(stop_process, proc, label, log)
    _wait(ready, proc)


def start_mlflow(tmp: Path, row: list[float], columns: list[str], stack: contextlib.ExitStack, log) -> Peer:
    """``mlflow models serve`` on a model saved by ``mlflow.sklearn.save_model``, answering ``/invocations``."""
    python = venv_python("mlflow", ["mlflow"], log)
    where = tmp / "peer-mlflow"
    where.mkdir()
    subprocess.run([python, "-c", SAVE_MLFLOW, str(where / "model")], check=True, capture_output=True)
    port = _free_port()
    mlflow = str(python.parent / "mlflow")
    cmd = [mlflow, "models", "serve", "-m", str(where / "model"), "-h", "127.0.0.1", "-p", str(port)]
    _start([*cmd, "--env-manager", "local"], where, f"http://127.0.0.1:{port}/ping", "mlflow", stack, log)
    body = json.dumps({"dataframe_split": {"columns": columns, "data": [row]}}).encode()
    version = subprocess.run(
        [python, "-c", "import mlflow; print(mlflow.__version__)"], capture_output=True, text=True
    ).stdout.strip()
    what = "mlflow models serve --env-manager local (its defaults), dataframe_split to /invocations"
    return Peer("mlflow", f"http://127.0.0.1:{port}", what, "/invocations", body, version)


def start_mlserver(tmp: Path, v2_body: bytes, batching: bool, stack: contextlib.ExitStack, log) -> Peer:
    """MLServer with mlserver-sklearn on a joblib file, V2 on HTTP; adaptive batching on or off."""
    # uvloop 0.22 removed the implicit event loop MLServer's inference worker asks for at start (the worker dies and
    # the model never loads): the last uvloop it works with, everything else as released
    python = venv_python("mlserver", ["mlserver", "mlserver-sklearn", "uvloop<0.22"], log)
    label = f"mlserver_batch_{'on' if batching else 'off'}"
    where = tmp / f"peer-{label}"
    (where / "iris").mkdir(parents=True)
    subprocess.run([python, "-c", SAVE_MLSERVER, str(where / "iris" / "model.joblib")], check=True)
    port = _free_port()
    settings = {
        "host": "127.0.0.1",
        "http_port": port,
        "grpc_port": _free_port(),
        "metrics_port": _free_port(),
    }  # everything else as shipped (e.g. its default inference worker process)
    (where / "settings.json").write_text(json.dumps(settings))
    model = {"name": "iris", "implementation": "mlserver_sklearn.SKLearnModel", "parameters": {"uri": "./model.joblib"}}
    if batching:
        model |= {"max_batch_size": 64, "max_batch_time": 0.002}
    (where / "iris" / "model-settings.json").write_text(json.dumps(model))
    mlserver = str(python.parent / "mlserver")
    _start([mlserver, "start", str(where)], where, f"http://127.0.0.1:{port}/v2/health/ready", label, stack, log)
    version = subprocess.run(
        [python, "-c", "from importlib.metadata import version; print(version('mlserver'))"],
        capture_output=True,
        text=True,
    ).stdout.strip()
    what = f"MLServer + mlserver-sklearn, V2 over HTTP, adaptive batching {'on (64, 2 ms)' if batching else 'off'}"
    return Peer(label, f"http://127.0.0.1:{port}", what, "/v2/models/iris/infer", v2_body, version)
