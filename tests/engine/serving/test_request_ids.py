import time
import uuid

from mm_magics.engine.serving.request_ids import new_request_id


def test_request_ids_are_uuid7_and_grow_with_time():
    before = time.time_ns() // 1_000_000
    ids = [new_request_id() for _ in range(2000)]
    after = time.time_ns() // 1_000_000
    for rid in ids[:50]:
        parsed = uuid.UUID(rid)
        assert len(rid) == 32 and parsed.version == 7 and parsed.variant == uuid.RFC_4122
        assert before <= int(rid[:12], 16) <= after
    assert len(set(ids)) == len(ids)
    stamps = [int(rid[:12], 16) for rid in ids]
    assert stamps == sorted(stamps)  # ordered by millisecond: inserts append to the store's index


def test_a_given_millisecond_is_used():
    rid = new_request_id(1_700_000_000_123)
    assert int(rid[:12], 16) == 1_700_000_000_123 and uuid.UUID(rid).version == 7
