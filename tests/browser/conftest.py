"""The browser tests' gate: in CI (``CI=true``) a missing Chromium or Playwright
fails them, since CI must prove the pages work; elsewhere they skip and say what
to install."""

from __future__ import annotations

import os

import pytest

from devstack.browser import missing


@pytest.fixture
def browser_ready() -> None:
    problem = missing()
    if problem is None:
        return
    if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
        pytest.fail(f"CI must run the browser test, but {problem}")
    pytest.skip(problem)
