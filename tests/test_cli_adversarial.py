"""The ``mm`` command under hostile or mistaken input: every answer is exit 0, or one line and exit 1/2.

A name never becomes a path outside the workspace, a damaged workspace never gives a traceback, and ``fsck`` never
says ok over damage. These drive the real command (``main``) on real git workspaces.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import pytest

from mm_magics.cli import main
from mm_magics.engine import Workspace

HOSTILE_NAMES = [
    "/../../../../x",
    "../escape",
    "a/b",
    "..",
    ".hidden",
    "x" * 300,
    "-rf",
    "--json",
    "iris\n",
    "iris@v-1",
    "iris@v01",
    " ",
    "iris.lock",
    "名前",
]

# every verb that takes a model name or version, with the rest of a valid command line
VERBS = [
    ["show", "{n}"],
    ["log", "{n}"],
    ["diff", "{n}", "m@v1"],
    ["rollback", "{n}", "-m", "why"],
    ["checkout", "{n}"],
    ["alias", "{n}", "prod"],
    ["alias", "m@v1", "{n}"],
    ["stage", "{n}"],
    ["stage", "{n}", "deploy", "--check"],
    ["stages", "{n}"],
    ["gate", "{n}", "accuracy>=0.5"],
    ["history", "{n}"],
    ["deploy", "{n}"],
    ["deploy", "{n}", "--canary", "10"],
    ["deploy", "{n}", "--shadow"],
    ["deploy", "{n}", "--canary", "10", "--auto"],
    ["describe", "{n}"],
    ["describe", "{n}", "--owner", "x"],
    ["promote", "{n}"],
    ["abort", "{n}"],
    ["image", "{n}"],
    ["export", "kubernetes", "{n}", "--image", "registry.example.com/x:v1"],
    ["undeploy", "{n}"],
    ["predict", "{n}", "[[1, 2, 3, 4]]"],
    ["probe", "{n}"],
    ["monitor", "{n}"],
    ["feedback", "{n}", "--ids", '["a"]', "--labels", "[1]"],
]


def _tree(root: Path, skip: Path) -> set[str]:
    out = set()
    for dirpath, dirnames, filenames in os.walk(root):
        if Path(dirpath) == skip or skip in Path(dirpath).parents:
            continue
        out.update(os.path.join(dirpath, f) for f in [*dirnames, *filenames])
    return out


def run(ws: Workspace, capsys, *args: str) -> tuple[int, str, str]:
    try:
        code = main(["-C", str(ws.root), *args])
    except SystemExit as exc:  # argparse's own usage errors: exit 2 with a usage line, as intended
        code = exc.code
    out = capsys.readouterr()
    return code, out.out, out.err


def _one_line_error(code: int, err: str) -> bool:
    """Exit 2 and one ``mm: error:`` line; argparse's own usage errors add its usage lines above theirs."""
    lines = [ln for ln in err.splitlines() if ln.strip()]
    if code != 2 or not lines or not re.match(r"mm( [a-z]+)*: error: ", lines[-1]):
        return False
    return len(lines) == 1 or lines[0].startswith("usage: ")


@pytest.mark.parametrize("verb", VERBS, ids=lambda v: "-".join(v[:2]))
def test_hostile_names_are_refused_in_one_line_and_create_nothing(populated, capsys, tmp_path, verb):
    before = _tree(tmp_path, populated.root)
    made_in_ws = _tree(populated.root, populated.root / ".git")
    for name in HOSTILE_NAMES:
        argv = [a.replace("{n}", name) for a in verb]
        if argv == ["history", "--json"]:
            continue  # the name is optional there: --json is the option it looks like
        code, out, err = run(populated, capsys, *argv)
        assert "Traceback" not in err, (argv, err)
        assert _one_line_error(code, err), (argv, code, err)
    assert _tree(tmp_path, populated.root) == before  # nothing outside the workspace
    assert not Path("/x").exists()
    new_in_ws = _tree(populated.root, populated.root / ".git") - made_in_ws
    assert not [p for p in new_in_ws if ".." in p or "escape" in p], new_in_ws


ORDINARY_MISTAKES = [
    ["log", "m", "-n", "1e23"],
    ["log", "m", "-n", "0"],
    ["log", "m", "-n", "-5"],
    ["log", "m", "--before", "-1"],
    ["probe", "m", "-n", "0"],
    ["predict", "m", "[[NaN, 1, 2, 3]]"],
    ["predict", "m", "[[1e999, 1, 2, 3]]"],
    ["predict", "m", "not json"],
    ["feedback", "m", "--ids", "{}", "--labels", "[1]"],
    ["feedback", "nosuchmodel", "--ids", '["a"]', "--labels", "[1]"],
    ["gate", "m", "accuracy>=1e999"],
    ["gate", "m", "accuracy>=nan"],
    ["trust", ""],
    ["trust", "not a type"],
    ["stage", "m@v1", "nowhere"],
    ["deploy", "m", "--port", "99999"],
    ["remote", ""],
    ["diff", "m@v1", "m@v9"],
]


@pytest.mark.parametrize("argv", ORDINARY_MISTAKES, ids=lambda a: " ".join(a)[:40])
def test_ordinary_mistakes_get_one_line_and_change_nothing(populated, capsys, argv):
    head = populated.git.read_ref()
    code, _, err = run(populated, capsys, *argv)
    assert "Traceback" not in err
    assert _one_line_error(code, err), (code, err)
    assert populated.git.read_ref() == head  # no junk committed
    assert main(["-C", str(populated.root), "fsck"]) == 0
    capsys.readouterr()


def test_a_read_only_verb_never_creates_a_workspace(tmp_path, capsys):
    typo = tmp_path / "no-such-place" / ".mm"
    for verb in (["models"], ["log", "m"], ["deployments"], ["history"], ["fsck"]):
        code = main(["-C", str(typo), *verb])
        err = capsys.readouterr().err
        assert code == 2 and "no workspace at" in err, (verb, err)
    assert not typo.exists()
    a_file = tmp_path / "notes.txt"
    a_file.write_text("x")
    assert main(["-C", str(a_file), "models"]) == 2
    assert "is a file" in capsys.readouterr().err


# -- the corruption matrix -----------------------------------------------------------------------------------------
DOCS = {
    "config": "mm.json",
    "model": "models/m/model.json",
    "version": "models/m/versions/0xx/v2.json",
    "stage": "models/m/stages/0xx/v2.json",
}
DAMAGE = {
    "bad-json": b"{ this is not json",
    "not-an-object": b"[1, 2, 3]\n",
    "wrong-types": None,  # per kind, below
    "missing": b"",
}
WRONG_TYPES = {
    "config": {"format": "1", "trusted_types": "abc", "probe_rows": -3, "lifecycle": []},
    "model": {"name": "m", "latest": "2", "gates": {"expr": 1}, "aliases": ["x"]},
    "version": {"model": "m", "version": 2, "format": -1, "artifact": "x", "metrics": "accuracy=0.9"},
    "stage": {"stage": 5, "history": {"to": "x"}},
}
READERS = [
    ["models"],
    ["log", "m"],
    ["show", "m@v2"],
    ["show", "m@v1"],
    ["diff", "m@v1", "m@v2"],
    ["checkout", "m@v2"],
    ["stage", "m@v2"],
    ["stage", "m@v2", "deploy", "--check"],
    ["stages", "m"],
    ["gate", "m"],
    ["history", "m"],
    ["deployments"],
    ["monitor", "m"],
]
WRITERS = [
    ["alias", "m@v2", "prod"],
    ["stage", "m@v2", "deploy", "-m", "go"],
    ["gate", "m", "accuracy>=0.5"],
    ["trust", "mypkg.Model"],
    ["rollback", "m@v1", "-m", "back"],
]


def _damage(ws: Workspace, path: str, data: bytes | None) -> None:
    """Commit ``data`` at ``path`` (None deletes it) straight into git, bypassing every check, as a hand edit would."""
    head = ws.git.read_ref()
    tree = ws.git.write_changes(ws.git.commit_tree(head), {path: data})
    commit = ws.git.write_commit(tree, [head], "hand edit\n", ("someone", "s@x"), ws.git.history()[0].time)
    assert ws.git.update_refs([("refs/heads/main", commit, head)])


@pytest.mark.parametrize("damage", list(DAMAGE))
@pytest.mark.parametrize("kind", list(DOCS))
def test_corrupted_documents_give_one_line_errors_and_fsck_finds_them(populated, capsys, kind, damage, models):
    path = DOCS[kind]
    if damage == "missing":
        data = None
    elif damage == "wrong-types":
        data = json.dumps(WRONG_TYPES[kind]).encode()
    else:
        data = DAMAGE[damage]
    _damage(populated, path, data)
    code, out, err = run(populated, capsys, "fsck")
    assert code == 1 and "problem" in out and path in out and "Traceback" not in err, (code, out, err)
    for argv in READERS + WRITERS:
        head = populated.git.read_ref()
        code, _, err = run(populated, capsys, *argv)
        assert "Traceback" not in err, (argv, err)
        assert code == 0 or _one_line_error(code, err), (argv, code, err)
        if code != 0 and argv in WRITERS:
            assert populated.git.read_ref() == head, argv  # a refused write publishes nothing
    try:
        populated.registry.commit("m", models["logreg"], message="three")
    except Exception as exc:
        from mm_magics.engine.errors import MMError

        assert isinstance(exc, MMError), repr(exc)
    code, out, err = run(populated, capsys, "fsck")  # after the writers (some recreate what was missing)
    assert code in (0, 1) and "Traceback" not in err, (code, out, err)


@pytest.mark.parametrize("what", ["garbage-branch", "lost-object", "lost-artifact"])
def test_damaged_refs_and_objects(populated, capsys, what):
    git_dir = populated.git.git_dir
    if what == "garbage-branch":
        (git_dir / "refs/heads/main").write_text("not a commit\n")
    elif what == "lost-object":
        tree = populated.git.commit_tree(populated.git.read_ref())
        binsha, _ = populated.git.lookup(tree, "models/m/versions/0xx/v2.json")
        obj = git_dir / "objects" / binsha.hex()[:2] / binsha.hex()[2:]
        obj.unlink()
        populated.registry.index.rebuild  # noqa: B018 - the index may still hold it; fsck must not trust that
    else:
        v = populated.registry.get("m@v2")
        populated.objects.path(v.sha256).unlink()
    for argv in READERS + WRITERS:
        code, _, err = run(populated, capsys, *argv)
        assert "Traceback" not in err, (argv, err)
        assert code == 0 or _one_line_error(code, err), (argv, code, err)
    code, out, err = run(populated, capsys, "fsck")
    assert code == 1 and "problem" in out and "Traceback" not in err


@pytest.mark.parametrize("host", ["--port=1", "-h", "", "127.0.0.1 --batch", "a;b"])
def test_a_host_never_reaches_the_server_command_line_as_an_option(populated, host):
    """The local runner starts ``python -m ...server --host=HOST``: a host that is not an address is refused first."""
    from mm_magics.engine.errors import DeploymentError
    from mm_magics.engine.serving.deployer import Deployer

    deployer = Deployer(populated)
    with pytest.raises(DeploymentError, match="not an address to listen on"):
        deployer.deploy("m@v1", host=host)
    assert deployer.list() == [] and populated.registry.get("m@v1").stage == "evaluate"


@pytest.mark.parametrize(
    "name, version",
    [
        ("--index-url=http://127.0.0.1:9/simple", "1.0"),
        ("-rrequirements.txt", "1"),
        ("numpy", "1.0 --pre"),
        ("numpy", "--no-deps"),
    ],
)
def test_a_recorded_package_never_reaches_pip_as_an_option(populated, name, version):
    """A Docker build downloads the version's recorded packages with ``pip download``; the record lives in git and
    anyone can edit it, so each entry must be a plain name and version (and they go after ``--`` regardless)."""
    from mm_magics.engine.errors import DeploymentError
    from mm_magics.engine.serving.image_context import requirements_for

    v = populated.registry.get("m@v1")
    v.environment = {**v.environment, "packages": {**v.environment.get("packages", {}), name: version}}
    with pytest.raises(DeploymentError, match="not a package name and version"):
        requirements_for(v)
