"""What real clients do, against a real server process: the V2 id echo, Triton's client (JSON and binary tensors),
MLflow's positional columns for a model trained without feature names, and Prometheus's scrape of /metrics (parsed
with prometheus_client's parser)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families
from sklearn.datasets import load_iris
from sklearn.linear_model import LogisticRegression

from mm_magics.engine import Workspace, schema_of


@pytest.fixture(scope="module")
def deployed(tmp_path_factory):
    ws = Workspace.open(tmp_path_factory.mktemp("compat") / ".mm")
    X, y = load_iris(return_X_y=True, as_frame=True)
    named = LogisticRegression(max_iter=500).fit(X, y)
    plain = LogisticRegression(max_iter=500).fit(X.to_numpy(), y.to_numpy())  # no feature names
    ws.registry.commit("named", named, message="x", metrics={"accuracy": 0.97}, schema=schema_of(X), probe_data=X)
    ws.registry.commit(
        "plain", plain, message="x", metrics={"accuracy": 0.97}, schema=schema_of(X.to_numpy()), probe_data=X.to_numpy()
    )
    urls = {name: ws.deployments.deploy(name).url for name in ("named", "plain")}
    yield {"ws": ws, "urls": urls, "X": X, "named": named, "plain": plain}
    for name in urls:
        ws.deployments.undeploy(name)
    ws.close()


def v2(rows, **extra):
    return {"inputs": [{"name": "input-0", "shape": [len(rows), 4], "datatype": "FP64", "data": rows}], **extra}


def test_v2_echoes_the_clients_id_and_keeps_ours_in_the_header(deployed):
    rows = deployed["X"].iloc[:2].to_numpy().tolist()
    resp = httpx.post(deployed["urls"]["named"] + "/v2/models/named/infer", json=v2(rows, id="client-7"))
    assert resp.status_code == 200 and resp.json()["id"] == "client-7"
    ours = resp.headers["x-request-id"]
    assert ours != "client-7" and len(ours) == 32
    anonymous = httpx.post(deployed["urls"]["named"] + "/v2/models/named/infer", json=v2(rows))
    assert anonymous.json()["id"] == anonymous.headers["x-request-id"]


def test_a_model_without_feature_names_takes_mlflow_columns_by_position(deployed):
    X = deployed["X"].iloc[:5]
    expected = deployed["plain"].predict(X.to_numpy()).tolist()
    url = deployed["urls"]["plain"] + "/invocations"
    split = {"dataframe_split": {"columns": ["a", "b", "c", "d"], "data": X.to_numpy().tolist()}}
    assert httpx.post(url, json=split).json()["predictions"] == expected
    records = {"dataframe_records": [dict(zip("abcd", row, strict=True)) for row in X.to_numpy().tolist()]}
    assert httpx.post(url, json=records).json()["predictions"] == expected
    narrow = {"dataframe_split": {"columns": ["a", "b"], "data": X.iloc[:, :2].to_numpy().tolist()}}
    assert httpx.post(url, json=narrow).status_code == 422  # by position needs every feature


def test_a_model_with_feature_names_still_matches_them_by_name(deployed):
    X = deployed["X"].iloc[:5]
    url = deployed["urls"]["named"] + "/invocations"
    shuffled = X[list(reversed(X.columns))]
    split = {"dataframe_split": {"columns": list(shuffled.columns), "data": shuffled.to_numpy().tolist()}}
    assert httpx.post(url, json=split).json()["predictions"] == deployed["named"].predict(X).tolist()
    wrong = {"dataframe_split": {"columns": ["a", "b", "c", "d"], "data": X.to_numpy().tolist()}}
    resp = httpx.post(url, json=wrong)
    assert resp.status_code == 422 and "missing feature(s): sepal length (cm)" in resp.json()["error"]


@pytest.mark.parametrize("binary", [False, True], ids=["json", "binary"])
def test_tritons_own_client_infers_in_json_and_binary(deployed, binary):
    """tritonclient.http sends binary tensors (Inference-Header-Content-Length) and asks for binary outputs by
    default; the JSON form is its binary_data=False. Both must answer what the model itself predicts."""
    import numpy as np
    import tritonclient.http as triton

    X, model = deployed["X"].iloc[:6], deployed["named"]
    client = triton.InferenceServerClient(deployed["urls"]["named"].removeprefix("http://"))
    assert client.is_server_live() and client.is_server_ready() and client.is_model_ready("named")
    assert client.get_model_metadata("named")["name"] == "named"
    tensor = triton.InferInput("input-0", [6, 4], "FP32")
    tensor.set_data_from_numpy(X.to_numpy(dtype=np.float32), binary_data=binary)
    outputs = [triton.InferRequestedOutput(n, binary_data=binary) for n in ("predict", "predict_proba")]
    result = client.infer("named", [tensor], outputs=outputs, request_id="triton-1")
    as_sent = X.astype(np.float32).astype(np.float64)  # what the server sees from FP32 tensors
    expected = model.predict(as_sent)
    assert result.as_numpy("predict").tolist() == expected.tolist()
    proba = model.predict_proba(as_sent)
    assert np.allclose(result.as_numpy("predict_proba"), proba)
    assert result.get_response()["id"] == "triton-1"
    compressed = client.infer("named", [tensor], request_compression_algorithm="gzip")  # binary_data_output
    assert compressed.as_numpy("predict").tolist() == expected.tolist()


MLFLOW_CLIENT = """
import json, sys
import numpy as np, pandas as pd
from mlflow.pyfunc.scoring_server.client import ScoringServerClient
host, port, rows, columns = sys.argv[1], int(sys.argv[2]), json.loads(sys.argv[3]), json.loads(sys.argv[4])
client = ScoringServerClient(host, port)
client.wait_server_ready(timeout=30)
inputs = {
    "named": pd.DataFrame(rows, columns=columns),
    "renamed": pd.DataFrame(rows, columns=[f"c{i}" for i in range(len(columns))]),
    "array": np.asarray(rows),
}
out = {}
for key, data in inputs.items():
    try:
        out[key] = client.invoke(data).get_predictions().iloc[:, 0].tolist()
    except Exception as exc:
        out[key] = {"error": str(exc)}
print(json.dumps(out))
"""


@pytest.fixture(scope="session")
def mlflow_python():
    """A Python with MLflow's own client (mlflow-skinny) in its own venv, so its dependencies never touch ours. It
    sees our site-packages for numpy and pandas; built once per machine (~15 s) under ~/.cache."""
    venv = Path.home() / ".cache" / "mm_magics" / "test-venvs" / "mlflow-skinny"
    python = venv / "bin" / "python"
    if not python.exists() or subprocess.run([python, "-c", "import mlflow"], capture_output=True).returncode:
        subprocess.run([sys.executable, "-m", "venv", "--system-site-packages", "--clear", str(venv)], check=True)
        subprocess.run([python, "-m", "pip", "install", "-q", "mlflow-skinny"], check=True, timeout=600)
    return python


def test_mlflows_own_scoring_client_gets_the_models_answers(deployed, mlflow_python):
    """mlflow.pyfunc.scoring_server.client.ScoringServerClient, as `mlflow models predict` and MLflow's tests use it:
    a named frame, a frame with other column names and a numpy array, against a model trained with feature names
    and one trained without."""
    X = deployed["X"].iloc[:8]
    for name, model in (("named", deployed["named"]), ("plain", deployed["plain"])):
        host, port = deployed["urls"][name].removeprefix("http://").split(":")
        args = [str(mlflow_python), "-c", MLFLOW_CLIENT, host, port, json.dumps(X.to_numpy().tolist())]
        done = subprocess.run([*args, json.dumps(list(X.columns))], capture_output=True, text=True, timeout=120)
        assert done.returncode == 0, done.stderr[-2000:]
        got = json.loads(done.stdout.strip().splitlines()[-1])
        expected = model.predict(X if name == "named" else X.to_numpy()).tolist()
        assert got["named"] == expected and got["array"] == expected
        if name == "plain":  # by position, whatever the columns are called
            assert got["renamed"] == expected
        else:  # by name: other names are refused with the names it expects
            assert "422" in got["renamed"]["error"] and "missing feature(s): sepal length" in got["renamed"]["error"]


def test_a_malformed_binary_request_is_a_4xx_with_the_fix(deployed):
    url = deployed["urls"]["named"] + "/v2/models/named/infer"
    header = b'{"inputs":[{"name":"x","shape":[1,4],"datatype":"FP64","parameters":{"binary_data_size":32}}]}'
    cut = httpx.post(url, content=header + b"\0" * 8, headers={"Inference-Header-Content-Length": str(len(header))})
    assert cut.status_code == 422 and "does not fit" in cut.json()["error"]
    beyond = httpx.post(url, content=header, headers={"Inference-Header-Content-Length": "4096"})
    assert beyond.status_code == 400 and "Inference-Header-Content-Length" in beyond.json()["error"]
    bomb = httpx.post(url, content=b"not gzip", headers={"Content-Encoding": "gzip"})
    assert bomb.status_code == 400 and "not valid gzip" in bomb.json()["error"]


def test_prometheus_scrapes_counts_latencies_and_load_time(deployed):
    url, ws = deployed["urls"]["named"], deployed["ws"]
    rows = deployed["X"].iloc[:1].to_numpy().tolist()
    assert ws.deployments.flush_metrics("named")  # what earlier tests sent is counted before the baseline
    before = _samples(httpx.get(url + "/metrics").text)
    for _ in range(5):
        assert httpx.post(url + "/v2/models/named/infer", json=v2(rows)).status_code == 200
    for _ in range(2):
        assert httpx.post(url + "/invocations", json={"instances": [[1, 2]]}).status_code == 422
    assert ws.deployments.flush_metrics("named")  # the recorder counts them off the request path; ask, not sleep
    resp = httpx.get(url + "/metrics")  # no token needed: counts and latencies, never data
    assert resp.status_code == 200 and resp.headers["content-type"].startswith("text/plain")
    after = _samples(resp.text)

    def grew(name, **labels):
        key = (name, tuple(sorted({"model": "named", "version": "1", **labels}.items())))
        return after.get(key, 0) - before.get(key, 0)

    assert grew("mm_requests_total", status="200") == 5 and grew("mm_requests_total", status="422") == 2
    for part in ("server", "queue", "processing", "overhead"):
        assert grew("mm_request_duration_seconds_count", part=part) == 5
    assert grew("mm_rows_total") == 5
    assert after[("mm_model_load_seconds", (("model", "named"), ("version", "1")))] > 0


def _samples(text):
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def test_the_array_fast_path_only_for_a_model_that_predicts_the_same_from_an_array():
    """A plain numeric model is called with the frame's array (sklearn's per-call DataFrame handling skipped); a
    pipeline that selects columns by name keeps the frame, and both answer as the model itself does."""
    import pandas as pd
    from sklearn.compose import ColumnTransformer
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    from mm_magics.engine.serving.protocol import Schema
    from mm_magics.engine.serving.state import ArrayInput, accepts_array

    X, y = load_iris(return_X_y=True, as_frame=True)
    schema = Schema.from_version(schema_of(X))
    plain = LogisticRegression(max_iter=500).fit(X, y)
    by_name = make_pipeline(
        ColumnTransformer([("scale", StandardScaler(), ["petal length (cm)", "petal width (cm)"])]),
        LogisticRegression(max_iter=500),
    ).fit(X, y)
    assert accepts_array(plain, schema) and not accepts_array(by_name, schema)
    assert not accepts_array(plain, Schema(4, list(X.columns), {**schema.dtypes, "sepal width (cm)": "object"}))
    wrapped = ArrayInput(plain)
    frame = pd.DataFrame(X.iloc[:7].to_numpy(), columns=X.columns)
    assert (wrapped.predict(frame) == plain.predict(frame)).all()
    assert (wrapped.predict_proba(frame) == plain.predict_proba(frame)).all()
    assert not hasattr(ArrayInput(make_pipeline(StandardScaler()).fit(X)), "predict")  # still says what it lacks
