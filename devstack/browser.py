"""Headless Chromium for the status page's browser test and screenshot.

Debian's Chromium (``/usr/bin/chromium``), driven by Playwright's Python package
(its wheel ships the driver; ``playwright install`` is never run, since no
browser download is possible here). The flags keep Chromium quiet on a closed
network and runnable as root.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from playwright.sync_api import Page

CHROMIUM = os.environ.get("CHROMIUM_PATH", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def missing() -> str | None:
    """Why the browser cannot run here, or None when it can."""
    if not os.path.exists(CHROMIUM):
        return f"{CHROMIUM} is missing: install Debian's chromium (./dev.sh install does, as root)"
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return "the playwright package is missing: pip install -e '.[test]'"
    return None


@contextmanager
def chromium_page(
    *,
    http_credentials: tuple[str, str] | None = None,
    width: int = 1200,
    height: int = 900,
    ignore_https_errors: bool = False,
) -> Iterator[Page]:
    """A page in a fresh headless Chromium with a throw-away profile
    (``ignore_https_errors``: accept self-signed certificates, dev stack only)."""
    from playwright.sync_api import sync_playwright

    with (
        tempfile.TemporaryDirectory(prefix="chromium-profile-") as profile,
        sync_playwright() as pw,
    ):
        context = pw.chromium.launch_persistent_context(
            profile,
            executable_path=CHROMIUM,
            headless=True,
            chromium_sandbox=False,  # adds --no-sandbox: Chromium's sandbox refuses root
            args=CHROMIUM_ARGS,
            viewport={"width": width, "height": height},
            ignore_https_errors=ignore_https_errors,
            http_credentials=(
                {"username": http_credentials[0], "password": http_credentials[1]}
                if http_credentials
                else None
            ),
        )
        try:
            page = context.pages[0] if context.pages else context.new_page()
            yield page
        finally:
            context.close()
