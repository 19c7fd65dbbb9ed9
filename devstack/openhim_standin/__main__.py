"""Run the stand-in by hand: `python -m devstack.openhim_standin --port 8080`."""

from __future__ import annotations

import argparse
import time

from .app import OpenhimStandIn
from .auth import Client


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="OpenHIM core stand-in (plain HTTP)")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8080, help="API port (core: 8080)")
    parser.add_argument("--router-port", type=int, default=5001, help="router port (core: 5001)")
    parser.add_argument(
        "--client",
        action="append",
        default=[],
        metavar="ID:PASSWORD:ROLE[,ROLE]",
        help="router client for HTTP channels (repeatable)",
    )
    args = parser.parse_args(argv)
    clients = []
    for spec in args.client:
        client_id, password, roles = [*spec.split(":", 2), "", ""][:3]
        clients.append(Client(client_id, password, [r for r in roles.split(",") if r]))
    standin = OpenhimStandIn(
        clients=clients, host=args.host, port=args.port, router_port=args.router_port
    ).start()
    print(f"OpenHIM stand-in API {standin.url} router {standin.router_url}", flush=True)
    print("API user root@openhim.org / openhim-password", flush=True)
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        pass
    finally:
        standin.stop()


if __name__ == "__main__":
    main()
