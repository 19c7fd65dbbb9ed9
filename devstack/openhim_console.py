"""The real OpenHIM console 1.18.2, built once and served over HTTPS.

``python -m devstack.openhim_console install`` unpacks the release archive
(``../shared/vendor/openhim-console-1.18.2.tar.gz``) into
``.cache/openhim-console-1.18.2/``, points its ``morris.js`` dev dependency (the
dashboard charts; a GitHub git URL in the release) at the npm registry's
``morris.js@0.5.0``, and runs ``npm install``, whose ``prepare`` runs the
webpack production build into ``dist/``. Once per archive.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from .vendor import Release, ensure, npm

CONSOLE = Release(
    name="openhim-console-1.18.2",
    archive="openhim-console-1.18.2.tar.gz",
    sha256="8dfcfced57434fcf3d52a584721a13e5f814df284d3051bb3b7681a2215fabaa",
    url="https://github.com/jembi/openhim-console/archive/refs/tags/v1.18.2.tar.gz",
)
MORRIS = "0.5.0"  # npm's morris.js: the release pins a GitHub commit, unreachable here


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


def _build(src: Path) -> None:
    _use_npm_morris(src)
    npm(["install"], src)  # prepare: webpack production build into dist/
    if not (src / "dist" / "index.html").exists():
        raise SystemExit(f"npm install in {src} built no dist/index.html")


def install() -> Path:
    """The console built in the cache (a no-op when it already is)."""
    return ensure(CONSOLE, _build)


if __name__ == "__main__":
    if sys.argv[1:] != ["install"]:
        raise SystemExit("usage: python -m devstack.openhim_console install")
    print(install())
