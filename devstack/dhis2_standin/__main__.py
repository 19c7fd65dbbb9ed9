"""Run the DHIS2 stand-in by hand: ``python -m devstack.dhis2_standin --port 8080``.

Seeded from ``devstack.deployment.dhis2_metadata()``; log in as admin/district (the
realistic integration user; ``--superuser`` makes it a superuser).
"""

from __future__ import annotations

import argparse
import time

from .app import Dhis2StandIn


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="DHIS2 Web API stand-in")
    parser.add_argument("--port", type=int, default=8080)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument(
        "--version", default="2.41.1", help='DHIS2 release to imitate, e.g. "2.38.6"'
    )
    parser.add_argument("--async-delay", type=float, default=0.5)
    parser.add_argument("--superuser", action="store_true", help="admin gets ALL")
    args = parser.parse_args(argv)
    standin = Dhis2StandIn(
        version=args.version, async_delay=args.async_delay, superuser=args.superuser
    )
    standin.start(port=args.port, host=args.host)
    print(f"DHIS2 {args.version} stand-in on {standin.url} (admin/district); Ctrl-C stops it")
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        standin.stop()


if __name__ == "__main__":
    main()
