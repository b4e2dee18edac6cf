"""Artifact remotes on fsspec URLs: a directory, and a real S3 server (SeaweedFS on 127.0.0.1) reached through the
standard AWS variables. Two workspaces share a model: one pushes, the other pulls the registry alone and fetches the
artifact its checkout needs; a push cut short resumes; a tampered remote object is refused."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

from mm_magics.engine import Workspace
from mm_magics.engine.artifacts import ArtifactStore
from mm_magics.engine.errors import ArtifactCorruptError, ArtifactMissingError, RemoteError
from mm_magics.engine.object_remote import ObjectRemote


def test_a_directory_remote_round_trip_and_corruption(tmp_path):
    store = ArtifactStore(tmp_path / "local")
    sha = store.put(b"model bytes")
    remote = ObjectRemote(str(tmp_path / "remote"))
    assert remote.push(store, [sha]).copied == 1
    again = remote.push(store, [sha])
    assert (again.copied, again.present) == (0, 1)
    other = ArtifactStore(tmp_path / "other")
    assert remote.fetch(other, [sha]).copied == 1 and other.get(sha) == b"model bytes"
    ArtifactStore(tmp_path / "remote").path(sha).write_bytes(b"tampered")
    third = ArtifactStore(tmp_path / "third")
    with pytest.raises(ArtifactCorruptError, match="damaged or replaced there"):
        remote.fetch(third, [sha])
    assert sha not in third
    (tmp_path / "remote" / "ab").mkdir()
    (tmp_path / "remote" / "ab" / "not-an-object.part-1234").write_bytes(b"x")  # a killed writer's leftover
    assert remote.listing() == {sha}


@pytest.mark.parametrize(
    ("url", "text"),
    [
        ("nosuchscheme://bucket/prefix", "no installed backend handles nosuchscheme://"),
        ("gs://bucket/prefix", "pip install 'mm_magics[gcs]'"),
        ("-oProxyCommand=x", "is not a directory or URL"),
        ("  ", "is not a directory or URL"),
    ],
)
def test_an_unusable_artifact_url_is_refused_naming_the_fix(url, text):
    with pytest.raises(RemoteError, match=text.replace("[", r"\[").replace("]", r"\]")):
        ObjectRemote(url)


@pytest.fixture
def bare(tmp_path):
    path = tmp_path / "registry.git"
    subprocess.run(["git", "init", "-q", "--bare", str(path)], check=True)
    return path


@pytest.fixture
def bucket(s3_env, request):
    """A prefix of its own in the session's bucket (each new bucket takes SeaweedFS volumes of its own)."""
    return f"s3://{s3_env.bucket}/{request.node.name[:60]}/artifacts"


def test_two_workspaces_share_models_through_s3(ws, tmp_path, bare, bucket, iris, models):
    X, _ = iris
    ws.registry.set_remote(str(bare), bucket)
    ws.registry.commit("m", models["logreg"], message="one", probe_data=X)
    ws.registry.commit("m", models["tree"], message="two", parent="m@v1")
    pushed = ws.registry.push()
    assert pushed["objects_copied"] == 4 and pushed["artifact_remote"] == bucket  # 2 models, probe, explanation
    assert ws.registry.push()["objects_copied"] == 0  # nothing new: one listing, no upload
    local = json.loads((ws.root / "local.json").read_text())
    assert local["artifact_remote"] == bucket  # credentials stay in the environment:
    assert "AKIAMMTESTKEY" not in json.dumps(local) and "mm-secret-value" not in json.dumps(local)

    other = Workspace.open(tmp_path / "elsewhere" / ".mm")
    try:
        other.registry.set_remote(str(bare), bucket)
        pulled = other.registry.pull()
        assert pulled["updated"] and pulled["objects_copied"] == 0  # the registry only
        assert not list(other.objects)
        model = other.registry.checkout("m@v2")  # fetched, verified, cached
        assert np.array_equal(model.predict(X), models["tree"].predict(X))
        assert other.registry.get("m@v2").sha256 in other.objects
        assert other.registry.fsck(remote=True).ok
    finally:
        other.close()


def test_a_push_cut_short_resumes_and_fsck_remote_names_what_is_missing(ws, bare, bucket, models):
    import s3fs

    ws.registry.set_remote(str(bare), bucket)
    for i, key in enumerate(("logreg", "tree", "deep_tree")):
        ws.registry.commit("m", models[key], message=str(i))
    shas = sorted(ws.registry.referenced_objects())
    ObjectRemote(bucket).push(ws.objects, shas[:1])  # what a push killed after its first upload leaves
    report = ws.registry.fsck(remote=True)
    assert not report.ok and sum("missing from the artifact remote" in p for p in report.problems) == len(shas) - 1
    resumed = ws.registry.push()
    assert resumed["objects_copied"] == len(shas) - 1 and resumed["objects_already_there"] == 1
    assert ws.registry.fsck(remote=True).ok
    s3fs.S3FileSystem().rm(ObjectRemote(bucket).key(shas[0]))
    missing = ws.registry.fsck(remote=True)
    assert [p for p in missing.problems if shas[0] in p]


def test_a_tampered_remote_object_is_refused_at_checkout(ws, tmp_path, bare, bucket, models):
    import s3fs

    ws.registry.set_remote(str(bare), bucket)
    v = ws.registry.commit("m", models["logreg"])
    ws.registry.push()
    s3fs.S3FileSystem().pipe_file(ObjectRemote(bucket).key(v.sha256), b"not the model")
    other = Workspace.open(tmp_path / "b" / ".mm")
    try:
        other.registry.set_remote(str(bare), bucket)
        other.registry.pull()
        with pytest.raises(ArtifactCorruptError, match="damaged or replaced there"):
            other.registry.checkout("m@v1")
        assert v.sha256 not in other.objects
    finally:
        other.close()


def test_mm_remote_takes_an_s3_url_and_refuses_an_unknown_scheme(ws, bare, bucket):
    cli = [sys.executable, "-m", "mm_magics.cli", "-C", str(ws.root)]
    ok = subprocess.run([*cli, "remote", str(bare), bucket], capture_output=True, text=True)
    assert ok.returncode == 0, ok.stderr
    bad = subprocess.run([*cli, "remote", str(bare), "nosuch://b/p"], capture_output=True, text=True)
    assert bad.returncode == 2 and len(bad.stderr.strip().splitlines()) == 1
    assert "no installed backend handles nosuch://" in bad.stderr
    assert not (ws.root.parent / "s3:").exists() and not (ws.root.parent / "nosuch:").exists()


def test_a_missing_artifact_without_a_remote_copy_stays_an_error(ws, tmp_path, models):
    v = ws.registry.commit("m", models["logreg"])
    ws.set_local(artifact_remote=str(tmp_path / "empty-remote"))
    ws.objects.path(v.sha256).unlink()
    ws.registry._loaded.clear()
    with pytest.raises(ArtifactMissingError, match="m@v1"):
        ws.registry.checkout("m@v1")


def test_large_objects_arrive_by_byte_ranges_verified_and_a_damaged_one_never_lands(bucket, tmp_path, monkeypatch):
    """Past ``RANGED`` bytes an object is read as parallel ranges written at their offsets: shrunk here so a 5 MB
    object takes that path (5 ranges) beside small ones that go through the backend's bulk copy."""
    from mm_magics.engine import object_remote

    monkeypatch.setattr(object_remote, "RANGED", 1 << 20)
    monkeypatch.setattr(object_remote, "RANGE_PART", 1 << 20)
    source = ArtifactStore(tmp_path / "source")
    rng = np.random.default_rng(0)
    big = source.put(rng.bytes(5 * 2**20 + 123))
    small = [source.put(rng.bytes(1000 + i)) for i in range(5)]
    remote = ObjectRemote(bucket)
    assert remote.push(source, [big, *small]).copied == 6

    fresh = ArtifactStore(tmp_path / "fresh")
    got = remote.fetch(fresh, [big, *small])
    assert got.copied == 6 and got.bytes == 5 * 2**20 + 123 + sum(1000 + i for i in range(5))
    assert all(fresh.get(sha) == source.get(sha) for sha in [big, *small])
    assert [p.name for p in fresh.root.iterdir() if p.name.startswith(".")] == []  # no staging left behind

    import s3fs

    s3fs.S3FileSystem().pipe_file(remote.key(big), rng.bytes(5 * 2**20 + 123))  # same size, other bytes
    damaged = ArtifactStore(tmp_path / "damaged")
    with pytest.raises(ArtifactCorruptError, match="damaged or replaced there"):
        remote.fetch(damaged, [big])
    assert big not in damaged and not any(p.is_file() for p in damaged.root.rglob("*"))
