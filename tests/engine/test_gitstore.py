"""The git layer: ref updates after a killed writer, damaged refs and objects named, ancestry walked in-process."""

from __future__ import annotations

import pytest

from mm_magics.engine.errors import CorruptRegistryError
from mm_magics.engine.gitstore import BRANCH


def test_lock_files_left_by_a_killed_writer_do_not_stall_the_next_commit(ws, models):
    """git leaves ``HEAD.lock`` or the branch's lock behind when killed inside update-ref. Our writers hold a kernel
    lock around every ref update, so such a file is known to be stale at once: the next commit goes through (before,
    it was refused for ~10 s, until the file aged past a threshold)."""
    ws.registry.commit("m", models["logreg"], message="one")
    git_dir = ws.git.git_dir
    for lock in ("HEAD.lock", "refs/heads/main.lock", "refs/tags/m@v2.lock"):
        (git_dir / lock).write_text("left by a killed git\n")
    v = ws.registry.commit("m", models["tree"], message="two")
    assert v.number == 2 and v.commit == ws.git.read_ref(BRANCH)
    assert ws.git.read_ref("refs/tags/m@v2") == v.commit  # the tag whose lock was stale is there too
    assert not list(git_dir.rglob("*.lock"))


def test_a_garbage_branch_ref_is_damage_not_an_empty_registry(ws, models):
    ws.registry.commit("m", models["logreg"], message="one")
    (ws.git.git_dir / "refs/heads/main").write_text("garbage\n")
    with pytest.raises(CorruptRegistryError, match=r"refs/heads/main does not hold a commit id.*mm fsck"):
        ws.registry.get("m@v1")
    with pytest.raises(CorruptRegistryError):
        ws.registry.commit("m", models["tree"], message="two")
    report = ws.registry.fsck()
    assert not report.ok and any("refs/heads/main" in p for p in report.problems)


def test_a_lost_object_is_named(ws, models):
    v = ws.registry.commit("m", models["logreg"], message="one")
    tree = ws.git.commit_tree(v.commit)
    binsha, _ = ws.git.lookup(tree, "models/m/model.json")
    obj = ws.git.git_dir / "objects" / binsha.hex()[:2] / binsha.hex()[2:]
    obj.chmod(0o644)
    obj.unlink()
    with pytest.raises(CorruptRegistryError, match=f"git object {binsha.hex()}.*mm fsck"):
        ws.git.read(tree, "models/m/model.json")
    report = ws.registry.fsck()
    assert not report.ok and any(binsha.hex() in p for p in report.problems)


def test_descends_from_walks_the_line_and_knows_strangers(ws, models):
    heads = [ws.git.read_ref()]
    for i in range(3):
        ws.registry.commit("m", models["logreg"], message=f"c{i}")
        heads.append(ws.git.read_ref())
    assert ws.git.descends_from(heads[0], heads[-1])
    assert ws.git.descends_from(heads[-1], heads[-1])
    assert not ws.git.descends_from(heads[-1], heads[0])
    assert ws.git.descends_from(heads[0], heads[-1], walk=1)  # past the walk, git's merge-base answers
    stranger = ws.git.write_commit(
        ws.git.commit_tree(heads[1]), [], "root of another history\n", ("a", "a@b"), ws.git.history()[0].time
    )
    assert not ws.git.descends_from(stranger, heads[-1]) and not ws.git.descends_from(heads[0], stranger)
