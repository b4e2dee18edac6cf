"""Provenance: the software environment and the user's own project repository at commit time."""

from __future__ import annotations

import functools
import os
import platform
import sys
from importlib import metadata
from pathlib import Path
from typing import Any

#: Packages whose versions decide whether a model loads and predicts the same way elsewhere.
KEY_PACKAGES = (
    "scikit-learn",
    "numpy",
    "scipy",
    "pandas",
    "skops",
    "joblib",
    "threadpoolctl",
    "xgboost",
    "lightgbm",
    "mm_magics",
)


@functools.lru_cache(maxsize=1)
def capture_environment() -> dict[str, Any]:
    """Python, platform and key package versions; cached because it cannot change inside one process."""
    packages = {}
    for name in KEY_PACKAGES:
        try:
            packages[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return {
        "python": platform.python_version(),
        "implementation": platform.python_implementation(),
        "platform": f"{sys.platform}-{platform.machine()}",
        "packages": packages,
    }


def project_state(start: Path | None = None, exclude: Path | None = None) -> dict[str, Any] | None:
    """HEAD and dirtiness of the user's project repository (never the workspace's own repo).

    Recorded so a version can be traced to the code that made it; ``None`` outside a git project.
    """
    import git

    start = Path(start or os.getcwd())
    try:
        repo = git.Repo(start, search_parent_directories=True)
    except (git.InvalidGitRepositoryError, git.NoSuchPathError):
        return None
    try:
        root = Path(repo.working_tree_dir or repo.git_dir).resolve()
        if exclude is not None and root == Path(exclude).resolve():
            return None
        try:
            head = repo.head.commit.hexsha
        except ValueError:
            head = None
        branch = None if repo.head.is_detached else repo.active_branch.name
        return {
            "path": str(root),
            "commit": head,
            "branch": branch,
            "dirty": repo.is_dirty(untracked_files=False),
        }
    except Exception:  # a broken or exotic user repo must never block a commit
        return None
    finally:
        repo.close()
