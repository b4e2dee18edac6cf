import subprocess

import numpy as np
import pytest

from mm_magics.engine import Workspace
from mm_magics.engine.errors import RemoteError


@pytest.fixture
def bare(tmp_path):
    path = tmp_path / "remote.git"
    subprocess.run(["git", "init", "-q", "--bare", str(path)], check=True)
    return path


def test_second_workspace_checks_out_what_the_first_made(ws, tmp_path, bare, iris, models):
    X, _ = iris
    art = tmp_path / "artifact-remote"
    ws.registry.commit("m", models["logreg"], message="one", probe_data=X)
    ws.registry.commit("m", models["tree"], message="two", parent="m@v1")
    ws.registry.set_alias("m@v1", "production")
    result = ws.registry.push(str(bare), art)
    assert result["objects_copied"] == 3  # two models and one probe sample

    other = Workspace.open(tmp_path / "elsewhere" / ".mm")
    other.set_local(remote=str(bare), artifact_remote=str(art))
    pulled = other.registry.pull()
    assert pulled["updated"] and pulled["objects_copied"] == 3
    assert [v.message for v in other.registry.log("m").versions] == ["two", "one"]
    assert other.registry.get("m@production").number == 1
    model = other.registry.checkout("m@v2")
    assert np.array_equal(model.predict(X), models["tree"].predict(X))

    # the second workspace works on, pushes; the first pulls (fast-forward)
    other.registry.commit("m", models["deep_tree"], message="three", parent="m@v2")
    other.registry.push()
    ws.set_local(remote=str(bare), artifact_remote=str(art))
    assert ws.registry.pull()["updated"]
    assert ws.registry.get("m").message == "three"
    other.close()


def test_missing_artifact_is_fetched_on_checkout(ws, tmp_path, bare, models):
    art = tmp_path / "art"
    v = ws.registry.commit("m", models["logreg"])
    ws.registry.push(str(bare), art)
    ws.objects.path(v.sha256).unlink()
    ws.set_local(artifact_remote=str(art))
    assert ws.registry.checkout("m@v1") is not None
    assert v.sha256 in ws.objects


def test_diverged_histories_are_refused(ws, tmp_path, bare, models):
    ws.registry.commit("m", models["logreg"])
    ws.registry.push(str(bare))
    other = Workspace.open(tmp_path / "b" / ".mm")
    other.registry.pull(str(bare))
    other.registry.commit("m", models["tree"], message="theirs")
    other.registry.push(str(bare))
    ws.registry.commit("m", models["deep_tree"], message="ours")
    with pytest.raises(RemoteError, match="diverged"):
        ws.registry.pull(str(bare))
    assert ws.registry.get("m").message == "ours"
    other.close()


def test_no_remote_configured(ws):
    with pytest.raises(RemoteError, match="no git remote configured"):
        ws.registry.push()
    with pytest.raises(RemoteError, match="git push to"):
        ws.registry.push("/nonexistent/remote.git")
