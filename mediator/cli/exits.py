"""The command line's exit statuses, the one line a refusal is, and the scope options
as a request's fields. Light: ``commands`` imports it, and each command its own module
only when it runs (a preview never loads the push's or the audit's code)."""

from __future__ import annotations

import argparse
import sys
from typing import Any

EXIT_OK, EXIT_REJECTED, EXIT_BAD_INPUT = 0, 1, 2


def fail(message: str) -> int:
    print(f"error: {message}", file=sys.stderr)
    return EXIT_BAD_INPUT


def scope_fields(args: argparse.Namespace, **more: Any) -> dict[str, Any]:
    """What the scope options (``--period``, ``--from``/``--to``, ``--data-set``,
    ``--org-unit``) and ``more`` were given, by the request's field names."""
    given = {
        "period": args.period,
        "from": args.start,
        "to": args.end,
        "dataSet": args.data_set,
        "orgUnit": args.org_unit,
        **more,
    }
    return {name: value for name, value in given.items() if value is not None}
