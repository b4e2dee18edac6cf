"""The shared SQLite index: a cache of git that only ever moves forward."""

from __future__ import annotations

from mm_magics.engine.index import Index


def test_a_stale_head_never_moves_the_shared_index_backwards(ws, models):
    """The interleaving an adversarial run hit 2 times in 900 commits, made deterministic.

    Process A reads the branch head (v1), process B commits v2 and syncs the shared index to it, then A syncs to the
    head it read. Before the fix A applied the backwards tree diff: v2, already published, vanished from the index
    for everyone, and B's own ``commit`` raised UnknownVersionError for a version that exists."""
    reg = ws.registry
    reg.commit("m", models["logreg"], message="one")
    stale_head = ws.git.read_ref()  # what process A read
    other = Index(ws.cache_dir / "index.sqlite", ws.git)  # process A's own connection to the shared file
    v2 = reg.commit("m", models["tree"], message="two")  # process B commits and syncs
    other._sync_to(stale_head)  # A applies what it read, late
    assert other.head() == v2.commit
    assert other.version_doc("m", 2) is not None
    assert reg.get("m@v2").message == "two"
    assert [v.number for v in reg.log("m").versions] == [2, 1]
    other.close()


def test_a_replaced_history_rebuilds_the_index(ws, models, tmp_path):
    """A head that neither descends from nor precedes the index's (history replaced, e.g. a fresh pull) rebuilds."""
    reg = ws.registry
    reg.commit("m", models["logreg"], message="one")
    reg.commit("m", models["tree"], message="two")
    first = ws.git.history()[-1].sha  # the workspace's root commit: no models at all
    orphan = ws.git.write_commit(
        ws.git.commit_tree(first), [], "another history\n", ("a", "a@b"), ws.git.history()[0].time
    )
    idx = Index(ws.cache_dir / "index.sqlite", ws.git)
    idx._sync_to(orphan)
    assert idx.head() == orphan and idx.model_names() == []
    idx.close()


def test_a_damaged_document_is_remembered_not_fatal(ws, models):
    reg = ws.registry
    reg.commit("m", models["logreg"], message="one")
    reg.commit("n", models["tree"], message="other model")
    files = {"models/m/model.json": b"{not json"}
    head = ws.git.read_ref()
    tree = ws.git.write_changes(ws.git.commit_tree(head), files)
    commit = ws.git.write_commit(tree, [head], "break m\n", ("a", "a@b"), ws.git.history()[0].time)
    assert ws.git.update_refs([("refs/heads/main", commit, head)])
    assert reg.get("n@v1").message == "other model"  # the rest of the registry still reads
    assert reg.index.broken()[0][0] == "models/m/model.json"
