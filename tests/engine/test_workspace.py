import json
import multiprocessing
import subprocess

import pytest

from mm_magics.engine import Workspace
from mm_magics.engine.errors import WorkspaceError, WorkspaceFormatError
from mm_magics.engine.workspace import find_root


def test_created_on_first_use_in_cwd(tmp_path):
    ws = Workspace.open()
    assert ws.root == (tmp_path / ".mm").resolve()
    assert (ws.root / ".git").is_dir()
    for sub in ("objects", "cache", "run"):
        assert (ws.root / sub).is_dir()
    assert ws.config["format"] == 1
    assert (
        subprocess.run(
            ["git", "-C", str(ws.root), "rev-parse", "--is-bare-repository"], capture_output=True, text=True
        ).stdout.strip()
        == "true"
    )
    ws.close()


def test_found_upward_and_via_mm_home(tmp_path, monkeypatch):
    Workspace.open(tmp_path / ".mm").close()
    deep = tmp_path / "a" / "b"
    deep.mkdir(parents=True)
    monkeypatch.chdir(deep)
    assert find_root() == (tmp_path / ".mm").resolve()
    assert Workspace.open().root == (tmp_path / ".mm").resolve()
    monkeypatch.setenv("MM_HOME", str(tmp_path / "elsewhere"))
    assert Workspace.open().root == (tmp_path / "elsewhere").resolve()


def test_open_without_create(tmp_path):
    with pytest.raises(WorkspaceError, match="mm init"):
        Workspace.open(tmp_path / "missing", create=False)


def test_newer_format_is_refused(ws):
    ws.registry.update_config(lambda doc: doc.update(format=99), "from the future")
    with pytest.raises(WorkspaceFormatError, match="format 99.*pip install -U mm_magics"):
        Workspace.open(ws.root)


def test_runtime_state_is_not_in_git(ws, models):
    ws.registry.commit("m", models["logreg"])
    ws.set_local(secret_token="s3cret")
    tracked = subprocess.run(["git", "-C", str(ws.root), "log", "-p", "--all"], capture_output=True, text=True)
    assert "s3cret" not in tracked.stdout
    assert json.loads((ws.root / "local.json").read_text())["secret_token"] == "s3cret"
    ws.set_local(secret_token=None)
    assert "secret_token" not in ws.local_config


def _create(path, queue):
    try:
        ws = Workspace.open(path)
        queue.put(ws.git.read_ref())
    except Exception as exc:  # pragma: no cover - reported to the parent
        queue.put(repr(exc))


def test_racing_creation_yields_one_workspace(tmp_path):
    ctx = multiprocessing.get_context("spawn")
    queue = ctx.Queue()
    procs = [ctx.Process(target=_create, args=(tmp_path / "race" / ".mm", queue)) for _ in range(4)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(60)
    heads = {queue.get(timeout=5) for _ in procs}
    assert len(heads) == 1 and len(next(iter(heads))) == 40


@pytest.mark.parametrize("branch", ["master", "main"])
def test_a_users_own_repository_is_never_made_a_workspace(tmp_path, branch):
    """`mm -C project init` on the user's git repository refused nothing and added a `main` branch, a commit and
    folders to it; `mm -C project deployments` answered as if it were a workspace. Both are refused now, naming the
    workspace folder, and the repository is left exactly as it was."""
    import subprocess

    from mm_magics.cli import main

    project = tmp_path / "project"
    subprocess.run(["git", "init", "-q", "-b", branch, str(project)], check=True)
    subprocess.run(["git", "-C", str(project), "commit", "-q", "--allow-empty", "-m", "mine"], check=True)
    before = sorted(p.name for p in project.iterdir())
    refs = subprocess.run(["git", "-C", str(project), "show-ref"], capture_output=True, text=True).stdout
    for verb in (["init"], ["deployments"], ["log", "iris"]):
        assert main(["-C", str(project), *verb]) == 2
    assert sorted(p.name for p in project.iterdir()) == before
    assert subprocess.run(["git", "-C", str(project), "show-ref"], capture_output=True, text=True).stdout == refs
    with pytest.raises(WorkspaceError, match=r"is a git repository but not an mm_magics workspace.*project/\.mm"):
        Workspace.open(project)

    ws = Workspace.open(project / ".mm")  # where the error pointed
    ws.close()
    found = Workspace.open(project, create=False)  # -C at the project folder now finds its workspace
    assert found.root == (project / ".mm").resolve()
    found.close()
