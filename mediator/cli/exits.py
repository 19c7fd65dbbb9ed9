"""The command line's exit statuses, and the one line a refusal is."""

from __future__ import annotations

import sys

EXIT_OK, EXIT_REJECTED, EXIT_BAD_INPUT = 0, 1, 2


def fail(message: str) -> int:
    print(f"error: {message}", file=sys.stderr)
    return EXIT_BAD_INPUT
