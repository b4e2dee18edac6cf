import os
import time

import pytest

from mm_magics.engine.artifacts import ArtifactStore, sha256_bytes
from mm_magics.engine.errors import ArtifactCorruptError, ArtifactMissingError


@pytest.fixture
def store(tmp_path):
    return ArtifactStore(tmp_path / "objects")


def test_put_get_dedup(store):
    sha = store.put(b"hello")
    assert sha == sha256_bytes(b"hello")
    assert store.put(b"hello") == sha
    assert store.get(sha) == b"hello"
    assert list(store) == [sha]
    assert store.path(sha).parent.name == sha[:2]


def test_corruption_names_the_object(store):
    sha = store.put(b"payload")
    store.path(sha).write_bytes(b"payloaX")
    with pytest.raises(ArtifactCorruptError) as err:
        store.get(sha)
    assert sha in str(err.value)
    assert "\n" not in str(err.value)


def test_missing(store):
    with pytest.raises(ArtifactMissingError) as err:
        store.get("a" * 64)
    assert "a" * 64 in str(err.value)
    with pytest.raises(ArtifactMissingError):
        store.get("not-a-sha")


def test_no_temp_files_left_behind(store):
    for i in range(20):
        store.put(f"object {i}".encode())
    leftovers = [p for p in store.root.rglob("*") if p.is_file() and p.name.endswith(".tmp")]
    assert leftovers == []


def test_gc_keeps_referenced_and_young(store):
    keep = store.put(b"keep")
    old = store.put(b"old orphan")
    young = store.put(b"young orphan")
    past = time.time() - 7200
    os.utime(store.path(old), (past, past))
    report = store.gc({keep})
    assert report.removed == [old]
    assert keep in store and young in store and old not in store
    assert store.gc({keep}, grace_seconds=0).removed == [young]
