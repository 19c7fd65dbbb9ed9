"""Unpack and build a vendored release tarball into a git-ignored cache folder, once.

The OpenHIM core and console archives live beside the project in
``../shared/vendor/`` (unmodified ``git archive`` outputs of the release tags). Where
that folder is missing, the same sources come from GitHub's tag archive. The
cache folder is keyed by the archive's sha256: a second install with the same
archive (and the same Node major) does nothing.

Nothing unpacked or built here is committed: ``.cache/`` is in ``.gitignore``.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
import sys
import tarfile
import tempfile
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from devstack.shared import SHARED

ROOT = Path(__file__).resolve().parent.parent
CACHE = ROOT / ".cache"
VENDOR = SHARED / "vendor"
STAMP = ".installed"


@dataclass(frozen=True)
class Release:
    """One vendored release: where its archive is and what it must hash to."""

    name: str  # cache folder, e.g. openhim-core-8.5.0
    archive: str  # file name in ../shared/vendor/
    sha256: str  # of that file (a `git archive` output of the tag)
    url: str  # GitHub's tag archive, used only when ../shared/vendor/ is missing

    @property
    def folder(self) -> Path:
        return CACHE / self.name


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _node_major() -> str:
    try:
        out = subprocess.run(["node", "--version"], capture_output=True, text=True, check=True)
    except (OSError, subprocess.CalledProcessError):
        raise SystemExit("node is missing: the OpenHIM dev stack needs Node 20 with npm") from None
    return out.stdout.strip().split(".")[0]


def _archive(release: Release, work: Path) -> tuple[Path, str]:
    """The archive to unpack and the key of the cache (its sha256)."""
    local = VENDOR / release.archive
    if local.exists():
        digest = sha256_of(local)
        if digest != release.sha256:
            raise SystemExit(
                f"{local}: sha256 {digest} is not the release's {release.sha256}; refusing it"
            )
        return local, digest
    # GitHub builds its tag archive itself, so its bytes need not be the vendored
    # `git archive` output: check the hash only when it is that same archive
    print(f"{VENDOR} is missing: downloading {release.url}", file=sys.stderr)
    target = work / release.archive
    with urllib.request.urlopen(release.url, timeout=300) as answer, open(target, "wb") as out:  # noqa: S310 - a fixed https URL
        shutil.copyfileobj(answer, out)
    digest = sha256_of(target)
    if digest != release.sha256:
        print(f"{release.url}: sha256 {digest} (not the vendored archive's)", file=sys.stderr)
    return target, digest


def ensure(release: Release, build: Callable[[Path], None]) -> Path:
    """The release unpacked and built in ``.cache/<name>/``; built only when the
    archive or the Node major changed since the last build."""
    folder = release.folder
    with tempfile.TemporaryDirectory(prefix=f"{release.name}-", dir=_cache()) as tmp:
        work = Path(tmp)
        archive, digest = _archive(release, work)
        key = json.dumps({"sha256": digest, "node": _node_major()})
        stamp = folder / STAMP
        if stamp.exists() and stamp.read_text() == key:
            return folder
        print(f"building {release.name} in {folder} (once per archive)...", file=sys.stderr)
        unpacked = work / "src"
        with tarfile.open(archive) as tar:
            tar.extractall(unpacked, filter="data")
        (top,) = list(unpacked.iterdir())  # a tag archive has one top folder
        build(top)
        if folder.exists():
            shutil.rmtree(folder)
        top.rename(folder)
        (folder / STAMP).write_text(key)
    return folder


def _cache() -> Path:
    CACHE.mkdir(exist_ok=True)
    return CACHE


def npm(args: list[str], cwd: Path) -> None:
    """Run npm quietly; on failure show its output and stop the install."""
    done = subprocess.run(
        ["npm", *args, "--no-audit", "--no-fund", "--loglevel=error"],
        cwd=cwd,
        capture_output=True,
        text=True,
    )
    if done.returncode != 0:
        sys.stderr.write(done.stdout[-4000:] + done.stderr[-4000:])
        raise SystemExit(f"npm {' '.join(args)} failed in {cwd} (exit {done.returncode})")
