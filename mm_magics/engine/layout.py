"""Where things live in the registry's git tree.

Versions are sharded by hundreds (``versions/12xx/v1234.json``) so that no tree a commit rewrites grows with the
number of versions: commit cost stays flat at 10 or 10 000 versions, and ``git show`` stays readable.
"""

from __future__ import annotations

import re

CONFIG = "mm.json"
_VERSION_FILE = re.compile(r"^models/([^/]+)/(versions|stages)/\d+xx/v(\d+)\.json$")
_MODEL_FILE = re.compile(r"^models/([^/]+)/model\.json$")


def model_dir(name: str) -> str:
    return f"models/{name}"


def model_file(name: str) -> str:
    return f"models/{name}/model.json"


def _shard(number: int) -> str:
    return f"{number // 100}xx"


def version_file(name: str, number: int) -> str:
    return f"models/{name}/versions/{_shard(number)}/v{number}.json"


def stage_file(name: str, number: int) -> str:
    return f"models/{name}/stages/{_shard(number)}/v{number}.json"


def tag(name: str, number: int) -> str:
    return f"refs/tags/{name}@v{number}"


def classify(path: str) -> tuple[str, str | None, int | None]:
    """``(kind, model, number)`` for a tree path: kind is config, model, versions, stages or other."""
    if path == CONFIG:
        return "config", None, None
    m = _MODEL_FILE.match(path)
    if m:
        return "model", m.group(1), None
    m = _VERSION_FILE.match(path)
    if m:
        return m.group(2), m.group(1), int(m.group(3))
    return "other", None, None
