"""Unpack and build a vendored release tarball into a per-machine cache, once.

The OpenHIM core and console archives live beside the project in
``../shared/vendor/`` (unmodified ``git archive`` outputs of the release tags). Where
that folder is missing, the same sources come from GitHub's tag archive.

A build goes to ``$DEVSTACK_CACHE_DIR`` (default ``~/.cache/cht-dhis2-mediator``),
shared by every clone on the machine, in a folder named after its key: the release
archive's sha256, the build recipe's version (``Release.recipe``, raised whenever
the recipe changes what lands in the folder) and the Node major. Another archive,
recipe or Node gets another folder, so two checkouts that disagree never share a
build. A build happens in a temporary folder beside its final place and is renamed
into place only once it is complete, under an exclusive lock (``fcntl.flock``) on
``<folder>.lock``: two clones installing at once build it once, the second waits and
finds it done. Nothing built reads the checkout, so one build serves all of them.

Standard library only: ``devstack.install`` imports it before the venv exists.
"""

from __future__ import annotations

import fcntl
import functools
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from devstack.shared import SHARED

ROOT = Path(__file__).resolve().parent.parent
VENDOR = SHARED / "vendor"
STAMP = ".installed"


def cache_dir() -> Path:
    """The per-machine build cache (read at each call, so a test can point it elsewhere)."""
    named = os.environ.get("DEVSTACK_CACHE_DIR")
    if named:
        return Path(named).expanduser()
    return Path.home() / ".cache" / "cht-dhis2-mediator"


@functools.cache
def node_major() -> str | None:
    """``v20``, or None when there is no node."""
    try:
        out = subprocess.run(["node", "--version"], capture_output=True, text=True, check=True)
    except (OSError, subprocess.CalledProcessError):
        return None
    return out.stdout.strip().split(".")[0] or None


@dataclass(frozen=True)
class Release:
    """One vendored release: where its archive is, what it must hash to, and the
    version of the recipe that builds it."""

    name: str  # e.g. openhim-core-8.5.0
    archive: str  # file name in ../shared/vendor/
    sha256: str  # of that file (a `git archive` output of the tag)
    url: str  # GitHub's tag archive, used only when ../shared/vendor/ is missing
    recipe: int  # raise it when the build changes what the folder holds

    def key(self, node: str | None = None) -> str:
        node = node or node_major() or "no-node"
        return f"{self.sha256[:12]}-r{self.recipe}-node{node.removeprefix('v')}"

    @property
    def folder(self) -> Path:
        """Where this release's build is (or would be) for the node on PATH."""
        return cache_dir() / f"{self.name}-{self.key()}"

    def built(self) -> bool:
        stamp = self.folder / STAMP
        return stamp.exists() and stamp.read_text() == self.key()


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _archive(release: Release, work: Path, log: IO[str] | None) -> Path:
    """The archive to unpack: the vendored one (refused when its hash is not the
    release's), else GitHub's tag archive of the same tag."""
    local = VENDOR / release.archive
    if local.exists():
        digest = sha256_of(local)
        if digest != release.sha256:
            raise SystemExit(
                f"{local}: sha256 {digest} is not the release's {release.sha256}; refusing it"
            )
        return local
    # GitHub builds its tag archive itself, so its bytes need not be the vendored
    # `git archive` output; the folder stays keyed by the release (the same tag)
    print(f"{VENDOR} is missing: downloading {release.url}", file=log or sys.stderr, flush=True)
    target = work / release.archive
    with urllib.request.urlopen(release.url, timeout=300) as answer, open(target, "wb") as out:  # noqa: S310 - a fixed https URL
        shutil.copyfileobj(answer, out)
    digest = sha256_of(target)
    if digest != release.sha256:
        print(
            f"{release.url}: sha256 {digest} (not the vendored archive's)", file=log or sys.stderr
        )
    return target


def ensure(
    release: Release, build: Callable[[Path, IO[str] | None], None], log: IO[str] | None = None
) -> tuple[Path, bool]:
    """The release unpacked and built in the cache, and whether this call built it
    (False: it was already there)."""
    if node_major() is None:
        raise SystemExit("node is missing: the OpenHIM dev stack needs Node 20 with npm")
    folder = release.folder
    folder.parent.mkdir(parents=True, exist_ok=True)
    with open(folder.with_name(folder.name + ".lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # another clone building it: wait, then find it
        if release.built():
            return folder, False
        with tempfile.TemporaryDirectory(prefix=f".{folder.name}-", dir=folder.parent) as tmp:
            work = Path(tmp)
            archive = _archive(release, work, log)
            unpacked = work / "src"
            with tarfile.open(archive) as tar:
                tar.extractall(unpacked, filter="data")
            (top,) = list(unpacked.iterdir())  # a tag archive has one top folder
            build(top, log)
            (top / STAMP).write_text(release.key())
            if folder.exists():  # a half-made folder of an older layout: replace it
                shutil.rmtree(folder)
            top.rename(folder)
    return folder, True


def npm(args: list[str], cwd: Path, log: IO[str] | None = None) -> None:
    """Run npm; its output goes to ``log`` (or is shown only when it fails)."""
    command = ["npm", *args, "--no-audit", "--no-fund", "--loglevel=error"]
    if log is not None:
        print(f"$ {' '.join(command)}  (in {cwd})", file=log, flush=True)
        code = subprocess.run(command, cwd=cwd, stdout=log, stderr=subprocess.STDOUT).returncode
    else:
        done = subprocess.run(command, cwd=cwd, capture_output=True, text=True)
        code = done.returncode
        if code != 0:
            sys.stderr.write(done.stdout[-4000:] + done.stderr[-4000:])
    if code != 0:
        raise SystemExit(f"npm {' '.join(args)} failed in {cwd} (exit {code})")


# --- the two OpenHIM releases and their recipes ------------------------------------

CORE = Release(
    name="openhim-core-8.5.0",
    archive="openhim-core-js-8.5.0.tar.gz",
    sha256="4be3a23eb3869d4a04325ba2c11406144cd2770b7e552263d2a4ab95a16b72fd",
    url="https://github.com/jembi/openhim-core-js/archive/refs/tags/v8.5.0.tar.gz",
    recipe=2,  # 1: npm ci (prepare built lib/); 2: npm ci --ignore-scripts, npm run build
)

CONSOLE = Release(
    name="openhim-console-1.18.2",
    archive="openhim-console-1.18.2.tar.gz",
    sha256="8dfcfced57434fcf3d52a584721a13e5f814df284d3051bb3b7681a2215fabaa",
    url="https://github.com/jembi/openhim-console/archive/refs/tags/v1.18.2.tar.gz",
    recipe=1,
)
MORRIS = "0.5.0"  # npm's morris.js: the console's release pins a GitHub commit, unreachable here


def build_core(src: Path, log: IO[str] | None = None) -> None:
    # no dependency of core needs its install scripts; the one script core itself
    # runs (prepare) is its babel build, run by name
    npm(["ci", "--ignore-scripts"], src, log)
    npm(["run", "build"], src, log)  # babel src -> lib
    # ssl-root-cas downloads Mozilla's CA list at every start unless this file exists
    cas = src / "node_modules" / "ssl-root-cas"
    shutil.copyfile(cas / "ssl-root-cas.js", cas / "ssl-root-cas-latest.js")
    if not (src / "lib" / "server.js").exists():
        raise SystemExit(f"npm run build in {src} built no lib/server.js")


def _use_npm_morris(src: Path) -> None:
    """package.json asks for morris.js from GitHub; ask npm's registry instead. The
    lock file's entry (lockfileVersion 1, ``dependencies``) goes, so that npm
    resolves the registry's version; the lock file stays otherwise as released."""
    package = src / "package.json"
    data = json.loads(package.read_text())
    for section in ("dependencies", "devDependencies"):
        if "morris.js" in data.get(section, {}):
            data[section]["morris.js"] = MORRIS
    package.write_text(json.dumps(data, indent=2) + "\n")
    lock = src / "package-lock.json"
    locked = json.loads(lock.read_text())
    locked.get("dependencies", {}).pop("morris.js", None)
    locked.get("packages", {}).pop("node_modules/morris.js", None)
    lock.write_text(json.dumps(locked, indent=2) + "\n")


def build_console(src: Path, log: IO[str] | None = None) -> None:
    _use_npm_morris(src)
    npm(["install"], src, log)  # prepare: webpack production build into dist/
    if not (src / "dist" / "index.html").exists():
        raise SystemExit(f"npm install in {src} built no dist/index.html")
