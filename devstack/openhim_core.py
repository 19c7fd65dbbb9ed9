"""The real OpenHIM core 8.5.0 for the dev stack, the demo and the tests.

``python -m devstack.openhim_core install`` (or ``./dev.sh install demo``) unpacks the
release archive (``../shared/vendor/openhim-core-js-8.5.0.tar.gz``) into the per-machine
cache (``devstack/vendor.py``: ``~/.cache/cht-dhis2-mediator/openhim-core-8.5.0-KEY/``)
and runs ``npm ci --ignore-scripts`` and ``npm run build`` (babel into ``lib/``) there,
once per archive, recipe and Node major. ``OpenhimCore`` then runs it: SecantusDB (a
MongoDB-wire server from PyPI; no MongoDB server package is reachable here) on a free
loopback port in a temporary folder, and core on free loopback ports with alerts, reports and
e-mail kept off the network. The mediator gets an OpenHIM user of its own in the
``admin`` group, made the way the console makes users, so it never uses root.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import signal
import ssl
import subprocess
import sys
import tempfile
import time
import uuid
import warnings
from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote

import requests
import urllib3

from .net import free_port, wait_for
from .vendor import CORE, build_core, ensure


def install() -> Path:
    """Core unpacked and built in the per-machine cache (a no-op when it already is)."""
    return ensure(CORE, build_core)[0]


ROOT_EMAIL = "root@openhim.org"
ROOT_DEFAULT_PASSWORD = "openhim-password"  # noqa: S105 - core's first-start root (src/server.js:335-348)
MEDIATOR_EMAIL = "cht-dhis2-mediator@openhim.local"
MEDIATOR_PASSWORD = "mediator-dev-Pa55"  # noqa: S105 - a throwaway local core
SETTLE_SECONDS = 120.0
# core serves its API over https with its bundled self-signed certificate
# (resources/certs/default/cert.pem, CN=localhost, no subjectAltName): the driver
# does not verify it, and says so once here instead of once per request
warnings.filterwarnings("ignore", category=urllib3.exceptions.InsecureRequestWarning)


class ChannelNotScheduled(RuntimeError):
    """Core has no agenda job for the channel: installing a mediator's default
    channels does not schedule a polling channel; saving it (PUT) does."""


class CoreNotInstalled(RuntimeError):
    pass


def secantusd() -> str:
    """The SecantusDB server script of this Python environment (the ``test`` extra)."""
    beside = Path(sys.executable).with_name("secantusd-py")
    found = str(beside) if beside.exists() else shutil.which("secantusd-py")
    if not found:
        raise CoreNotInstalled("secantusd-py is missing: run ./dev.sh install (the test extra)")
    return found


def _stop_group(proc: subprocess.Popen[bytes] | None, timeout: float = 15) -> None:
    """End a process this module started in its own session, children included
    (core forks a cluster worker)."""
    if proc is None or proc.poll() is not None:
        return
    try:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    except ProcessLookupError:
        pass


def client_password_fields(password: str) -> dict[str, str]:
    """A client's Basic-auth password as the console stores it: sha512(password + salt),
    which core's router compares (src/middleware/basicAuthentication.js:14-23)."""
    salt = str(uuid.uuid4())
    digest = hashlib.sha512((password + salt).encode()).hexdigest()
    return {"passwordAlgorithm": "sha512", "passwordSalt": salt, "passwordHash": digest}


class OpenhimCore:
    """OpenHIM core 8.5.0 and its database, on free loopback ports.

    ``start()`` starts SecantusDB (first time) and core; ``stop()`` takes core down
    and keeps its data, so ``start()`` brings the same core back on the same ports;
    ``close()`` ends both and removes the data. ``reset()`` forgets mediators,
    channels, clients, transactions, tasks and polling jobs, so one core serves a
    whole test session.
    """

    def __init__(
        self,
        *,
        mediator_user: tuple[str, str] = (MEDIATOR_EMAIL, MEDIATOR_PASSWORD),
        console_url: str = "https://127.0.0.1:9000",
    ) -> None:
        self.folder = CORE.folder
        self.mediator_user = mediator_user
        self.root_password = ROOT_DEFAULT_PASSWORD  # the console's first login changes it
        self.console_url = console_url
        self.ports: dict[str, int] = {}
        self._work = Path(tempfile.mkdtemp(prefix="openhim-core-"))
        self._db: subprocess.Popen[bytes] | None = None
        self._core: subprocess.Popen[bytes] | None = None
        self._mongo: Any = None
        self._user_made = False
        self.http = requests.Session()
        self.http.verify = False
        # or requests lets REQUESTS_CA_BUNDLE override verify=False (no proxies on loopback)
        self.http.trust_env = False
        self.start_seconds: float | None = None  # how long the last start() took

    # --- lifecycle ---------------------------------------------------------------

    def start(self) -> OpenhimCore:
        if not (self.folder / "lib" / "server.js").exists():
            raise CoreNotInstalled(
                f"{self.folder} has no built core: run ./dev.sh install "
                "(python -m devstack.openhim_core install)"
            )
        started = time.monotonic()
        if self._db is None:
            self._start_db()
        if not self.ports.get("api"):
            self._write_config()
        log = open(self._work / "core.log", "ab")  # noqa: SIM115 - lives as long as core
        self._core = subprocess.Popen(
            ["node", "lib/server.js", f"--conf={self._work / 'core.json'}"],
            cwd=self.folder,
            # core reads environment variables into its config (nconf env("_")): a clean one
            env={
                "PATH": os.environ.get("PATH", ""),
                "HOME": str(self._work),
                "NODE_ENV": "production",
            },
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        log.close()
        try:
            wait_for(self._api_up, 90, f"OpenHIM core API (log: {self._work / 'core.log'})")
            self._drop_email_index()
            if not self._user_made:
                self._make_mediator_user()
        except BaseException:
            self.stop()
            raise
        self.start_seconds = time.monotonic() - started
        return self

    def stop(self) -> None:
        """Core down (connection refused on every port); its data stays."""
        _stop_group(self._core)
        self._core = None

    def close(self) -> None:
        self.stop()
        if self._mongo is not None:
            self._mongo.client.close()
            self._mongo = None
        _stop_group(self._db)
        self._db = None
        shutil.rmtree(self._work, ignore_errors=True)

    def __enter__(self) -> OpenhimCore:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def running(self) -> bool:
        return self._core is not None and self._core.poll() is None

    def _api_up(self) -> bool:
        if self._core is not None and self._core.poll() is not None:
            raise RuntimeError(f"OpenHIM core exited: {self.log_tail()}")
        return self.http.get(f"{self.url}/heartbeat", timeout=2).status_code == 200

    def log_tail(self, chars: int = 3000) -> str:
        path = self._work / "core.log"
        return path.read_text(errors="replace")[-chars:] if path.exists() else ""

    def _start_db(self) -> None:
        port = free_port()
        self.ports["mongo"] = port
        log = open(self._work / "secantusdb.log", "ab")  # noqa: SIM115 - lives as long as the db
        self._db = subprocess.Popen(
            [
                secantusd(),
                *("--host", "127.0.0.1", "--port", str(port)),
                *("--storage-path", str(self._work / "db"), "--standalone"),
            ],
            cwd=self._work,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        log.close()
        wait_for(lambda: self.mongo.command("ping")["ok"] == 1, 60, "SecantusDB")

    @property
    def mongo(self) -> Any:
        """Core's database (pymongo), for what the API does not offer."""
        if self._mongo is None:
            from pymongo import MongoClient

            client: Any = MongoClient(
                f"mongodb://127.0.0.1:{self.ports['mongo']}/",
                directConnection=True,
                serverSelectionTimeoutMS=2000,
                tz_aware=True,
            )
            self._mongo = client["openhim"]
        return self._mongo

    def _write_config(self) -> None:
        for name in ("api", "http", "https", "tcp", "polling", "rerun", "closed"):
            self.ports[name] = free_port()
        mongo = f"mongodb://127.0.0.1:{self.ports['mongo']}/openhim"
        config = {
            "bindAddress": "127.0.0.1",
            "mongo": {"url": mongo, "atnaUrl": mongo},
            "logger": {"level": "info", "logToDB": False},
            "api": {"port": self.ports["api"]},
            "router": {
                "externalHostname": "127.0.0.1",
                "httpPort": self.ports["http"],
                "httpsPort": self.ports["https"],
            },
            "rerun": {
                "host": "127.0.0.1",
                "httpPort": self.ports["rerun"],
                # the task processor looks for queued reruns this often (default 2 s)
                "processor": {"enabled": True, "pollPeriodMillis": 500},
            },
            "tcpAdapter": {"httpReceiver": {"host": "127.0.0.1", "httpPort": self.ports["tcp"]}},
            "polling": {"enabled": True, "host": "127.0.0.1", "pollingPort": self.ports["polling"]},
            # core keeps channels for 1 s between look-ups (src/utils.js:51-75): off, so a
            # channel saved or removed by a test routes at once
            "caching": {"enabled": False},
            "alerts": {"enableAlerts": False, "consoleURL": self.console_url},
            "reports": {"enableReports": False},
            # the new-user e-mail goes to a closed loopback port, never out
            # (an empty "service" keeps nodemailer off its well-known hosts)
            "email": {
                "fromAddress": "openhim@localhost",
                "nodemailer": {
                    "service": "",
                    "host": "127.0.0.1",
                    "port": self.ports["closed"],
                    "auth": None,
                },
            },
            "openhimConsoleBaseUrl": self.console_url,
        }
        (self._work / "core.json").write_text(json.dumps(config, indent=1))

    def _drop_email_index(self) -> None:
        """SecantusDB runs a regex query on an indexed field as an exact match, so
        core's case-insensitive look-ups of users by e-mail (console login,
        profile) find nothing while ``email_1`` exists. Mongoose builds it at each
        start, so it goes after each start."""
        users = self.mongo["users"]
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            if "email_1" in users.index_information():
                users.drop_index("email_1")
                return
            time.sleep(0.1)

    def _make_mediator_user(self) -> None:
        self.add_user(*self.mediator_user, firstname="CHT to DHIS2", surname="mediator")
        self._user_made = True

    def add_user(
        self,
        email: str,
        password: str,
        *,
        groups: Iterable[str] = ("admin",),
        firstname: str = "Dev",
        surname: str = "User",
    ) -> None:
        """A console user, made as the console makes one: ``POST /users`` without a
        password (core 8.5.0 would store a ``password`` field unhashed,
        src/api/users.js addUser), then the password through the set-password
        link's token (``PUT /token/:token``, src/api/users.js updateUserByToken),
        read from the user's document since the e-mail never leaves the machine."""
        names = {"firstname": firstname, "surname": surname}
        self.expect(201, "POST", "/users", json={"email": email, **names, "groups": list(groups)})
        user = self.mongo["users"].find_one({"email": email.lower()})
        if not user or not user.get("token"):
            raise RuntimeError(f"core made no set-password token for {email}")
        answer = self.http.put(
            f"{self.url}/token/{quote(user['token'], safe='')}",
            json={"password": password, **names},
            timeout=30,
        )
        if answer.status_code != 200:
            raise RuntimeError(f"PUT /token/<token> answered {answer.status_code}")
        # Basic auth works (a user may read itself; the look-up needs email_1 gone)
        self.expect(200, "GET", f"/users/{quote(email, safe='@')}", auth=(email, password))

    def use_certificate(self, cert_pem: str, key_pem: str, timeout: float = 60) -> None:
        """Serve this certificate and key, as an operator installs one in the
        console's Certificates page (``POST /keystore/cert``, ``/keystore/key``,
        then ``POST /restart``); returns once the API presents it."""
        self.expect(201, "POST", "/keystore/cert", json={"cert": cert_pem})
        self.expect(201, "POST", "/keystore/key", json={"key": key_pem})
        self.expect(200, "POST", "/restart")
        wanted = ssl.PEM_cert_to_DER_cert(cert_pem)

        def serving() -> bool:
            served = ssl.get_server_certificate(("127.0.0.1", self.ports["api"]), timeout=2)
            return ssl.PEM_cert_to_DER_cert(served) == wanted and self._api_up()

        wait_for(serving, timeout, "OpenHIM core serving the new certificate")

    # --- where it listens ------------------------------------------------------------

    @property
    def url(self) -> str:
        """The API (https, core's self-signed certificate)."""
        return f"https://127.0.0.1:{self.ports['api']}"

    @property
    def certificate(self) -> Path:
        """The self-signed certificate core serves from its first start (bundled,
        ``CN=localhost`` and no subjectAltName, so only ``https://localhost:…``
        matches it, for clients that fall back to the CN, as curl does)."""
        return self.folder / "resources" / "certs" / "default" / "cert.pem"

    @property
    def router_url(self) -> str:
        """The HTTP router (channels' urlPatterns)."""
        return f"http://127.0.0.1:{self.ports['http']}"

    @property
    def root_auth(self) -> tuple[str, str]:
        return (ROOT_EMAIL, self.root_password)

    # --- the API, as root --------------------------------------------------------------

    def api(self, method: str, path: str, **kw: Any) -> requests.Response:
        kw.setdefault("auth", self.root_auth)
        kw.setdefault("timeout", 30)
        return self.http.request(method, self.url + path, **kw)

    def expect(self, status: int, method: str, path: str, **kw: Any) -> requests.Response:
        answer = self.api(method, path, **kw)
        if answer.status_code != status:
            raise RuntimeError(
                f"OpenHIM {method} {path} answered {answer.status_code}, not {status}:"
                f" {answer.text[:500]}"
            )
        return answer

    @property
    def mediators(self) -> list[dict[str, Any]]:
        return list(self.expect(200, "GET", "/mediators").json())

    def mediator(self, urn: str) -> dict[str, Any] | None:
        """As the console reads it: ``GET /mediators/:urn`` (passwords masked)."""
        answer = self.api("GET", f"/mediators/{quote(urn, safe='')}")
        if answer.status_code == 404:
            return None
        if answer.status_code != 200:
            raise RuntimeError(f"GET /mediators/<urn> answered {answer.status_code}")
        return dict(answer.json())

    def mediator_document(self, urn: str) -> dict[str, Any] | None:
        """The stored document, passwords unmasked (what core hands over by heartbeat)."""
        found = self.mongo["mediators"].find_one({"urn": urn})
        return None if found is None else {**found, "_id": str(found["_id"])}

    @property
    def channels(self) -> list[dict[str, Any]]:
        return list(self.expect(200, "GET", "/channels").json())

    def channel(self, channel_id: str) -> dict[str, Any]:
        return dict(self.expect(200, "GET", f"/channels/{channel_id}").json())

    def install_channels(self, urn: str, names: Iterable[str]) -> list[dict[str, Any]]:
        """``POST /mediators/:urn/channels``, as the console's install button does. A
        polling channel installed so is not scheduled until it is saved."""
        self.expect(201, "POST", f"/mediators/{quote(urn, safe='')}/channels", json=list(names))
        return self.channels

    def save_channel(self, channel: dict[str, Any]) -> None:
        """``PUT /channels/:id`` with the channel as read, edited: what the console's
        Save does; for a polling channel core (re)schedules its agenda job."""
        body = {k: v for k, v in channel.items() if not k.startswith("_") and k != "updatedBy"}
        self.expect(200, "PUT", f"/channels/{channel['_id']}", json=body)

    def add_client(self, client_id: str, password: str, roles: list[str]) -> None:
        """A router client with Basic auth, as the console's Clients page adds one."""
        body = {"clientID": client_id, "name": client_id, "roles": roles}
        self.expect(201, "POST", "/clients", json={**body, **client_password_fields(password)})

    # --- transactions ------------------------------------------------------------------

    @property
    def transactions(self) -> list[dict[str, Any]]:
        """Newest first, whole (``filterRepresentation=full``)."""
        return self.transactions_of(None)

    def transactions_of(self, channel_id: str | None) -> list[dict[str, Any]]:
        params = {"filterRepresentation": "full"}
        if channel_id:
            params["filters"] = json.dumps({"channelID": channel_id})
        return list(self.expect(200, "GET", "/transactions", params=params).json())

    def transaction(self, tx_id: str) -> dict[str, Any]:
        answer = self.expect(
            200, "GET", f"/transactions/{tx_id}", params={"filterRepresentation": "full"}
        )
        return dict(answer.json())

    def await_transaction(
        self,
        which: Callable[[dict[str, Any]], bool],
        channel_id: str | None = None,
        *,
        settled: bool = True,
        timeout: float = SETTLE_SECONDS,
    ) -> dict[str, Any]:
        """The first transaction ``which`` picks once core stored the route's answer
        (and, with ``settled``, its final status: not Processing any more)."""
        found: dict[str, Any] = {}

        def ready() -> bool:
            for tx in self.transactions_of(channel_id):
                if which(tx) and answered(tx) and not (settled and tx["status"] == "Processing"):
                    found.update(tx)
                    return True
            return False

        wait_for(ready, timeout, "the OpenHIM transaction")
        return found

    def is_scheduled(self, channel_id: str) -> bool:
        jobs: int = self.mongo["agendaJobs"].count_documents({"name": f"polling-job-{channel_id}"})
        return jobs > 0

    def fire_polling_channel(
        self, channel_id: str, *, settled: bool = True, timeout: float = SETTLE_SECONDS
    ) -> dict[str, Any]:
        """Let core's own scheduler run the polling channel now: its agenda job's
        ``nextRunAt`` becomes now (and any lock left by a run whose route answered
        4xx/5xx goes: core's polling job never calls ``done`` then, src/polling.js:25-33).
        Agenda looks every 5 s; returns the transaction as core stored it."""
        before = {tx["_id"] for tx in self.transactions_of(channel_id)}
        fired = self.mongo["agendaJobs"].update_one(
            {"name": f"polling-job-{channel_id}"},
            {"$set": {"nextRunAt": datetime.now(UTC), "lockedAt": None}},
        )
        if fired.matched_count == 0:
            raise ChannelNotScheduled(f"core has no polling job for channel {channel_id}")
        return self.await_transaction(
            lambda tx: tx["_id"] not in before, channel_id, settled=settled, timeout=timeout
        )

    def rerun(self, tx_id: str, *, timeout: float = SETTLE_SECONDS) -> dict[str, Any]:
        """Re-run a transaction as the console does (``POST /tasks``); returns the
        child transaction core made, once settled."""
        self.expect(201, "POST", "/tasks", json={"tids": [tx_id], "batchSize": 1})
        wait_for(lambda: bool(self.transaction(tx_id).get("childIDs")), timeout, "the rerun")
        child = self.transaction(tx_id)["childIDs"][-1]
        return self.await_transaction(lambda tx: tx["_id"] == child, timeout=timeout)

    @property
    def tasks(self) -> list[dict[str, Any]]:
        return list(self.expect(200, "GET", "/tasks").json())

    # --- between tests -------------------------------------------------------------------

    def reset(self) -> None:
        """Forget what tests made; users (root, the mediator's) stay."""
        db = self.mongo
        for name in ("transactions", "tasks", "autoretries", "events", "metrics"):
            db[name].delete_many({})
        for channel in db["channels"].find({}, {"_id": 1}):
            # through the API, so core cancels a polling channel's agenda job
            self.api("DELETE", f"/channels/{channel['_id']}")
        db["channels"].delete_many({})
        for job in db["agendaJobs"].find({}, {"_id": 1, "name": 1}):
            if str(job.get("name", "")).startswith("polling-job"):
                db["agendaJobs"].delete_one({"_id": job["_id"]})
        for name in ("mediators", "clients"):
            db[name].delete_many({})


def answered(tx: dict[str, Any]) -> bool:
    """Core stored the route's answer (storeResponse, src/middleware/messageStore.js)."""
    return bool((tx.get("response") or {}).get("timestamp"))


if __name__ == "__main__":
    if sys.argv[1:] != ["install"]:
        raise SystemExit("usage: python -m devstack.openhim_core install")
    print(install())
