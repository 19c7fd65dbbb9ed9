"""The whole local stack on loopback: CouchDB (CHT) behind CHT's API (``cht_api``), the
DHIS2 stand-in, the real OpenHIM core 8.5.0 (``openhim_core.py``), and the mediator itself,
registered with OpenHIM as it would be in production, as its own OpenHIM user (never root).
The mediator reads CHT through the API front as the online non-admin integration user;
the CHWs are offline users made through CHT's users API.

Used by the demo and the end-to-end tests.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from . import deployment as dep
from .cht_api import INTEGRATION_PASSWORD, INTEGRATION_USER, ChtApiFront
from .couchdb import CouchServer
from .dhis2_standin import Dhis2StandIn
from .net import ServerThread, free_port, wait_for
from .openhim_core import MEDIATOR_EMAIL, MEDIATOR_PASSWORD, OpenhimCore

DHIS2_USER, DHIS2_PASSWORD = "admin", "district"
# the mediator's own OpenHIM user (admin group), which OpenhimCore makes at first start
OPENHIM_USER, OPENHIM_PASSWORD = MEDIATOR_EMAIL, MEDIATOR_PASSWORD
ADMIN_CLIENT, ADMIN_CLIENT_PASSWORD = "hrio-console", "hrio-Pa55"


@dataclass
class LocalStack:
    months: list[str]
    dhis2_version: str = "2.41.1"
    db: str = "medic"
    extra_env: dict[str, str] = field(default_factory=dict)
    couch: CouchServer | None = None
    cht_conflicts: bool = False  # seed deployment.seed_conflicts' conflicted docs
    cht: ChtApiFront | None = None
    conflicts: dep.Conflicts | None = None
    dhis2: Dhis2StandIn | None = None
    openhim: OpenhimCore | None = None
    deployment: dep.Deployment | None = None
    env: dict[str, str] = field(default_factory=dict)
    openhim_down_at_start: bool = False  # to show registration surviving it
    _own_couch: bool = True
    _own_openhim: bool = True
    _mediator: ServerThread | None = None
    _scheduler: Any = None
    _agent: Any = None

    def start(self) -> LocalStack:
        if self.couch is None:
            self.couch = CouchServer().start()
        else:
            self._own_couch = False  # a shared server (tests): leave it running
        self.deployment = dep.build(self.months)
        self.couch.create_db(self.db)
        self.couch.bulk(self.db, self.deployment.docs_without_users())
        self.cht = ChtApiFront(self.couch, db=self.db).start()
        for spec in self.deployment.user_specs():  # CHWs as CHT's users API makes them
            self.cht.create_user(**spec, replace=True)
        self.cht.create_integration_user()
        if self.cht_conflicts:
            self.conflicts = dep.seed_conflicts(self.couch, self.db, self.deployment)
        self.dhis2 = Dhis2StandIn(version=self.dhis2_version).start()
        if self.openhim is None:
            self.openhim = OpenhimCore().start()
        else:
            self._own_openhim = False  # a shared core (tests): reset by its fixture
        self.openhim.add_client(ADMIN_CLIENT, ADMIN_CLIENT_PASSWORD, ["cht-dhis2-admin"])
        if self.openhim_down_at_start:
            self.openhim.stop()
        port = free_port()
        self.env = {
            "CHT_URL": self.cht.url,
            "CHT_DB": self.db,
            "CHT_USERNAME": INTEGRATION_USER,
            "CHT_PASSWORD": INTEGRATION_PASSWORD,
            "DHIS2_URL": self.dhis2.url,
            "DHIS2_USERNAME": DHIS2_USER,
            "DHIS2_PASSWORD": DHIS2_PASSWORD,
            "OPENHIM_URL": self.openhim.url,
            "OPENHIM_USERNAME": OPENHIM_USER,
            "OPENHIM_PASSWORD": OPENHIM_PASSWORD,
            # core's bundled self-signed certificate (CN=localhost, no subjectAltName)
            "OPENHIM_TRUST_SELF_SIGNED": "true",
            "MEDIATOR_HOST": "127.0.0.1",
            "MEDIATOR_PORT": str(port),
            **self.extra_env,
        }
        self.start_mediator()
        return self

    def start_mediator(self) -> None:
        from mediator.service.serve import build

        app, self._scheduler, self._agent = build(self.env)
        self._mediator = ServerThread(app, port=int(self.env["MEDIATOR_PORT"])).start()
        self._scheduler.start()
        if self._agent is not None:
            self._agent.start()

    def stop_mediator(self) -> None:
        if self._agent is not None:
            self._agent.stop()
        if self._scheduler is not None:
            self._scheduler.shutdown(wait=False)
        if self._mediator is not None:
            self._mediator.stop()
        self._mediator = self._scheduler = self._agent = None

    @property
    def mediator_url(self) -> str:
        assert self._mediator is not None
        return self._mediator.url

    def wait_registered(self, urn: str, timeout: float = 30) -> dict[str, Any]:
        openhim = self.openhim
        assert openhim is not None
        wait_for(lambda: openhim.mediator(urn) is not None, timeout, "mediator registration")
        mediator = openhim.mediator(urn)
        assert mediator is not None
        return mediator

    def install_channels(self, urn: str) -> list[dict[str, Any]]:
        """Install the mediator's default channels, then edit and save each once, as an
        operator does in the console: point the routes at where the mediator runs (with
        the push endpoint's credentials when it has some), and saving makes core
        schedule the polling channel (installing alone does not)."""
        assert self.openhim is not None
        names = [c["name"] for c in self.openhim.mediator(urn)["defaultChannelConfig"]]  # type: ignore[index]
        have = {c["name"] for c in self.openhim.channels}
        if [n for n in names if n not in have]:  # core refuses to install one twice
            self.openhim.install_channels(urn, [n for n in names if n not in have])
        for channel in self.openhim.channels:
            for route in channel.get("routes", []):
                route["host"] = self.env["MEDIATOR_HOST"]
                route["port"] = int(self.env["MEDIATOR_PORT"])
                if self.env.get("MEDIATOR_PUSH_USERNAME"):  # core sends them as Basic auth
                    route["username"] = self.env["MEDIATOR_PUSH_USERNAME"]
                    route["password"] = self.env["MEDIATOR_PUSH_PASSWORD"]
            self.openhim.save_channel(channel)
        return self.openhim.channels

    def stop(self) -> None:
        self.stop_mediator()
        parts: list[Any] = [self.dhis2, self.cht]
        if self._own_couch:
            parts.append(self.couch)
        if self._own_openhim and self.openhim is not None:
            self.openhim.close()
        for part in parts:
            if part is not None:
                try:
                    part.stop()
                except Exception:  # noqa: BLE001 - best effort on the way out
                    time.sleep(0)

    def __enter__(self) -> LocalStack:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
