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
    assert result["objects_copied"] == 4  # two models, one probe sample and its explanation

    other = Workspace.open(tmp_path / "elsewhere" / ".mm")
    other.set_local(remote=str(bare), artifact_remote=str(art))
    pulled = other.registry.pull(fetch=True)  # every artifact now (by default a checkout fetches what it needs)
    assert pulled["updated"] and pulled["objects_copied"] == 4
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


# -- user strings that reach git's command line ------------------------------------------------------------------
OPTION_LIKE = [
    "--upload-pack=touch {marker}",
    "--receive-pack=touch {marker}",
    "-otouch {marker}",
    "--exec=touch {marker}",
    "ext::sh -c touch% {marker}",
    "fd::17",
]


@pytest.mark.parametrize("template", OPTION_LIKE)
def test_a_remote_url_never_runs_a_command(ws, tmp_path, models, template, capsys):
    """Every verb that hands a URL to git (push, pull, remote, and a stored remote used later) refuses it or passes
    it after ``--``: nothing the URL says is ever run."""
    from mm_magics.cli import main

    marker = tmp_path / "PWNED"
    url = template.format(marker=marker)
    ws.registry.commit("m", models["logreg"], message="one")
    for argv in (["push", url], ["pull", url], ["push", "--", url], ["pull", "--", url], ["remote", url]):
        assert main(["-C", str(ws.root), *argv]) == 2, argv
        err = capsys.readouterr().err
        assert err.startswith("mm: error:") and err.count("\n") == 1, err
        assert not marker.exists(), argv
    with pytest.raises(RemoteError):
        ws.registry.set_remote(url)
    ws.set_local(remote=url)  # stored before the check existed, or by hand: still refused at every later use
    for verb in (ws.registry.push, ws.registry.pull):
        with pytest.raises(RemoteError):
            verb()
    assert not marker.exists()
    with pytest.raises(RemoteError):  # the git layer itself refuses too, whoever calls it
        ws.git.fetch(url)
    assert not marker.exists()


def test_a_refused_push_publishes_none_of_its_tags(ws, tmp_path, bare, models):
    ws.registry.commit("m", models["logreg"], message="one")
    ws.registry.push(str(bare))
    other = Workspace.open(tmp_path / "other" / ".mm")
    other.registry.pull(str(bare))
    other.registry.commit("m", models["tree"], message="two, over there")
    other.registry.push(str(bare))
    ws.registry.commit("m", models["tree"], message="two, here: diverged")
    with pytest.raises(RemoteError):
        ws.registry.push(str(bare))
    remote_tags = subprocess.run(
        ["git", "--git-dir", str(bare), "for-each-ref", "--format=%(refname) %(objectname)", "refs/tags"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    theirs = other.git.read_ref("refs/tags/m@v2")
    assert f"refs/tags/m@v2 {theirs}" in remote_tags  # the tag the remote's branch carries, not ours
    # a third workspace pulls and can keep committing
    third = Workspace.open(tmp_path / "third" / ".mm")
    third.registry.pull(str(bare))
    assert third.registry.commit("m", models["logreg"], message="three").number == 3
    assert not [p for p in third.registry.fsck().problems if "tag" in p]


def test_a_tag_off_the_branch_is_found_refused_and_repaired(ws, tmp_path, bare, models, capsys):
    """What an old non-atomic push left behind: a remote tag for a version its branch lacks."""
    from mm_magics.cli import main

    ws.registry.commit("m", models["logreg"], message="one")
    ws.registry.push(str(bare))
    stray = ws.git.write_commit(
        ws.git.commit_tree(ws.git.read_ref()),
        [ws.git.read_ref()],
        "a version the branch never got\n",
        ("x", "x@y"),
        ws.git.history()[0].time,
    )
    subprocess.run(["git", "--git-dir", str(bare), "fetch", "-q", str(ws.root / ".git"), stray], check=False)
    ws.git.update_refs([("refs/tags/m@v2", stray, None)])
    subprocess.run(["git", "--git-dir", str(ws.root / ".git"), "push", "-q", str(bare), "refs/tags/m@v2"], check=True)
    ws.git.delete_refs(["refs/tags/m@v2"])

    other = Workspace.open(tmp_path / "other" / ".mm")
    pulled = other.registry.pull(str(bare))
    assert pulled["ignored_tags"] == ["m@v2"] and "fsck --repair" in pulled["note"]
    assert other.registry.commit("m", models["tree"], message="two").number == 2  # not blocked by the stray tag

    # a workspace that already holds such a tag: commit says how to repair, fsck finds it, --repair fixes it
    ws.git.update_refs([("refs/tags/m@v2", stray, None)])
    with pytest.raises(Exception, match="fsck --repair"):
        ws.registry.commit("m", models["tree"], message="two")
    assert main(["-C", str(ws.root), "fsck"]) == 1
    assert "tag m@v2" in capsys.readouterr().out
    assert main(["-C", str(ws.root), "fsck", "--repair"]) == 0
    assert "tag m@v2 deleted" in capsys.readouterr().out
    assert ws.registry.commit("m", models["tree"], message="two").number == 2
