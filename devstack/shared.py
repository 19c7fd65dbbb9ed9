"""Where the project's shared folder is: ``vendor/`` (the OpenHIM release archives) and
``tools/cht-export-oracle`` (CHT's own export code).

It sits beside the checkout (``../shared``). A clone made elsewhere (``git clone . "$(mktemp
-d)"``, as CI does) finds it beside the checkout it was cloned from, through git's
``remote.origin.url`` when that is a folder on this machine; ``SHARED_DIR`` names it
outright. Missing everywhere, ``../shared`` is returned and its users say what is missing.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _origin() -> Path | None:
    """The checkout this one was cloned from, when it is a folder here."""
    try:
        url = subprocess.run(
            ["git", "-C", str(ROOT), "config", "--get", "remote.origin.url"],
            capture_output=True,
            text=True,
            timeout=10,
            check=False,
        ).stdout.strip()
    except (OSError, subprocess.TimeoutExpired):
        return None
    path = Path(url.removeprefix("file://")) if url else None
    return path if path is not None and path.is_absolute() and path.is_dir() else None


def shared_dir() -> Path:
    named = os.environ.get("SHARED_DIR")
    if named:
        return Path(named)
    beside = ROOT.parent / "shared"
    if beside.is_dir():
        return beside
    origin = _origin()
    if origin is not None and (origin.parent / "shared").is_dir():
        return origin.parent / "shared"
    return beside


SHARED = shared_dir()
