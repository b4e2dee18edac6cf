"""What goes into a model's image, prepared on the host with no Docker: pinned requirements, their wheels (downloaded
once and cached), a copy of the installed mm_magics package, and the version's bundle (record, artifact, trust)."""

from __future__ import annotations

import hashlib
import importlib.util
import json
import os
import platform
import re
import shutil
import subprocess
import sys
import tempfile
from importlib import metadata
from pathlib import Path
from typing import TYPE_CHECKING

from ..atomic import atomic_write_text, file_lock
from ..environment import capture_environment
from ..errors import DeploymentError, one_line

if TYPE_CHECKING:
    from ..records import Version
    from ..workspace import Workspace

#: What loading and running a scikit-learn model needs, when the version's recorded environment lacks one.
MODEL_PACKAGES = ("scikit-learn", "numpy", "scipy", "pandas", "skops", "joblib", "threadpoolctl")
#: What the server process imports beyond the model's own packages: the HTTP stack (httpx: workers pass admin
#: calls on to each other). The bundle path of ``mm_magics.engine.serving.server`` imports neither GitPython nor
#: networkx (the engine imports the workspace lazily), so the image has no git and no registry code; the Docker
#: tests fail fast if that ever changes.
SERVER_PACKAGES = ("starlette", "uvicorn", "uvloop", "httptools", "prometheus-client", "httpx")
#: Installed in the image when the host has it (the ``[influx]`` extra), so containers can write to InfluxDB too.
INFLUX_PACKAGE = "influxdb-client"
#: Parts of the package a server never needs (front-end assets, notebooks): left out of the image.
PACKAGE_EXCLUDES = ("labextension", "example_notebooks", "__pycache__")


def cache_root() -> Path:
    """Host-side cache shared by every workspace on the machine (wheels, the base image tarball)."""
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "mm_magics"


def requirements_for(version: Version) -> list[str]:
    """Pinned requirements for serving ``version``: its recorded model packages, plus the server's own.

    The model's packages come from the environment captured at training time (so the container unpickles and
    predicts exactly as the notebook did); when a version recorded none, the host's versions stand in.
    """
    recorded = dict((version.environment or {}).get("packages") or {})
    if not recorded:
        recorded = dict(capture_environment()["packages"])
    pins: dict[str, str | None] = {}
    for name, ver in recorded.items():
        if not (isinstance(name, str) and _PACKAGE.fullmatch(name) and _VERSION.fullmatch(str(ver))):
            # the record comes from git, which anyone can edit: it reaches pip's command line, so only a plain
            # name==version may pass (never an option such as --index-url=...)
            raise DeploymentError(
                f"{version.id} records the package {name!r}=={ver!r}, which is not a package name and version: "
                "run `mm fsck`, or commit the model again"
            )
        if _norm(name) != "mm-magics":
            pins[_norm(name)] = str(ver)
    optional = (INFLUX_PACKAGE,) if importlib.util.find_spec("influxdb_client") else ()
    for name in (*MODEL_PACKAGES, *SERVER_PACKAGES, *optional):
        if _norm(name) in pins or _norm(name) == "mm-magics":
            continue
        try:
            pins[_norm(name)] = metadata.version(name)
        except metadata.PackageNotFoundError:
            pins[_norm(name)] = None
    return sorted(f"{name}=={ver}" if ver else name for name, ver in pins.items())


_PACKAGE = re.compile(r"[A-Za-z0-9]([A-Za-z0-9._-]{0,98}[A-Za-z0-9])?")  # PEP 508 names
_VERSION = re.compile(r"[0-9][A-Za-z0-9.+!_-]{0,63}")  # PEP 440 versions (and local labels)


def _norm(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


class WheelCache:
    """Wheels for the image, downloaded on the host (which reaches PyPI) and reused across builds.

    Each distinct requirement set gets a manifest of the exact files pip resolved, so a warm build runs no pip at
    all, and two builds with the same requirements put byte-identical wheels in the context (a Docker cache hit).
    """

    def __init__(self, root: Path | None = None, *, python_version: str = "3.11", arch: str | None = None) -> None:
        self.root = Path(root) if root else cache_root() / "wheels"
        self.python_version = python_version
        self.arch = arch or platform.machine()
        # manylinux_2_28 and every older manylinux tag (pip expands downwards): fits Debian bookworm's glibc 2.36
        self.platform = f"manylinux_2_28_{self.arch}"

    def _pip_args(self) -> list[str]:
        abi = "cp" + self.python_version.replace(".", "")
        return [
            "--only-binary=:all:",
            "--python-version",
            self.python_version,
            "--implementation",
            "cp",
            "--abi",
            abi,
            "--platform",
            self.platform,
        ]

    def resolve(self, requirements: list[str]) -> list[Path]:
        """The wheel files that satisfy ``requirements`` for the image's Python, downloading what is missing."""
        key = hashlib.sha256(
            json.dumps([sorted(requirements), self.python_version, self.platform]).encode()
        ).hexdigest()[:20]
        manifest = self.root / "sets" / f"{key}.json"
        paths = self._from_manifest(manifest)
        if paths is not None:
            return paths
        with file_lock(self.root / ".lock"):
            paths = self._from_manifest(manifest)
            if paths is not None:
                return paths
            names = self._download(requirements)
            atomic_write_text(manifest, json.dumps({"requirements": sorted(requirements), "wheels": names}) + "\n")
        return [self.root / n for n in names]

    def _from_manifest(self, manifest: Path) -> list[Path] | None:
        try:
            names = json.loads(manifest.read_text())["wheels"]
        except (FileNotFoundError, json.JSONDecodeError, KeyError, TypeError):
            return None
        paths = [self.root / n for n in names]
        return paths if all(p.is_file() for p in paths) else None

    def _download(self, requirements: list[str]) -> list[str]:
        self.root.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(prefix="mm-wheels-", dir=self.root) as tmp:
            base = [sys.executable, "-m", "pip", "download", "--disable-pip-version-check", "-q", "-d", tmp]
            # offline first (the cache may already hold everything), then from the index with the cache as a source
            # requirements after "--": whatever one holds, pip reads it as a requirement, never as an option
            offline = [*base, "--no-index", "--find-links", str(self.root), *self._pip_args(), "--", *requirements]
            online = [*base, "--find-links", str(self.root), *self._pip_args(), "--", *requirements]
            proc = subprocess.run(offline, capture_output=True, text=True, check=False)
            if proc.returncode != 0:
                proc = subprocess.run(online, capture_output=True, text=True, check=False)
            if proc.returncode != 0:
                errors = [ln for ln in proc.stderr.splitlines() if ln.startswith("ERROR")] or proc.stderr.splitlines()
                raise DeploymentError(
                    f"could not download wheels for the image ({one_line(' '.join(errors[-2:]), 300)}): the host "
                    f"needs PyPI access (or a pip index) and cp{self.python_version.replace('.', '')} "
                    f"{self.platform} wheels of {' '.join(requirements)}"
                )
            names = sorted(os.listdir(tmp))
            for n in names:
                target = self.root / n
                if not target.is_file():
                    os.replace(os.path.join(tmp, n), target)
        return names


def copy_package(dest: Path) -> str:
    """Copy the *installed* mm_magics package (editable or not) into ``dest``; returns a hash of what was copied.

    The image puts it on ``PYTHONPATH``: nothing to build (a pip-installed mm_magics has no source tree, and a
    build backend would run front-end hooks), and Docker's COPY cache is keyed by content, so an unchanged
    package reuses its layer. Front-end assets and notebooks stay out (``PACKAGE_EXCLUDES``)."""
    import mm_magics

    pkg = Path(mm_magics.__file__).resolve().parent
    digest = hashlib.sha256()
    for path in sorted(pkg.rglob("*")):
        rel = path.relative_to(pkg)
        if not path.is_file() or path.suffix in (".pyc", ".pyo") or any(p in PACKAGE_EXCLUDES for p in rel.parts):
            continue
        if any(part.startswith(".") for part in rel.parts):
            continue
        target = dest / "mm_magics" / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        data = path.read_bytes()
        target.write_bytes(data)
        digest.update(rel.as_posix().encode() + b"\0" + hashlib.sha256(data).digest())
    return digest.hexdigest()


def write_bundle(ws: Workspace, version: Version, dest: Path) -> Path:
    """The directory the server loads one version from (see ``BundleSource``); the artifact is hash-verified."""
    dest.mkdir(parents=True, exist_ok=True)
    (dest / "version.json").write_text(json.dumps(version.to_dict(), sort_keys=True))
    (dest / "artifact.skops").write_bytes(ws.objects.get(version.sha256, label=f"artifact of {version.id}"))
    (dest / "trusted.json").write_text(json.dumps(list(ws.config.get("trusted_types") or [])))
    return dest


def link_or_copy(src: Path, dst: Path) -> None:
    try:
        os.link(src, dst)
    except OSError:
        shutil.copyfile(src, dst)
