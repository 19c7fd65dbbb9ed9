"""A real CouchDB-protocol server for CHT: ``pouchdb-server`` from npm, in memory.

It writes ``config.json`` and ``log.txt`` where it runs, so each instance gets a
temporary working directory of its own.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterable
from pathlib import Path
from typing import Any
from urllib.parse import quote

import requests

from .cht_docs import CHT_ROLES
from .net import free_port, wait_for

ROOT = Path(__file__).resolve().parent.parent
BINARY = ROOT / "node_modules" / ".bin" / "pouchdb-server"

ADMIN_USER = "medic-admin"
ADMIN_PASSWORD = "couch-dev-Pa55"  # noqa: S105 - a throwaway local dev server


class CouchServer:
    """Starts pouchdb-server on a free loopback port with an admin user."""

    def __init__(
        self,
        username: str = ADMIN_USER,
        password: str = ADMIN_PASSWORD,
        port: int | None = None,
    ) -> None:
        if not BINARY.exists():
            raise RuntimeError(f"{BINARY} is missing: run ./dev.sh install (it runs npm ci) first")
        self.username = username
        self.password = password
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self._workdir = Path(tempfile.mkdtemp(prefix="pouchdb-server-"))
        self._proc: subprocess.Popen[bytes] | None = None

    def start(self) -> CouchServer:
        log = open(self._workdir / "stdout.txt", "wb")  # noqa: SIM115 - lives as long as the process
        self._proc = subprocess.Popen(
            [str(BINARY), "--in-memory", "--port", str(self.port), "--host", "127.0.0.1"],
            cwd=self._workdir,
            stdout=log,
            stderr=subprocess.STDOUT,
            env={**os.environ, "NODE_ENV": "production"},
        )
        wait_for(lambda: requests.get(self.url, timeout=1).ok, 60, "pouchdb-server")
        # end the admin party: from here on, a wrong password gets 401
        requests.put(
            f"{self.url}/_config/admins/{self.username}",
            data=json.dumps(self.password),
            timeout=10,
        ).raise_for_status()
        return self

    def stop(self) -> None:
        if self._proc and self._proc.poll() is None:
            self._proc.terminate()
            try:
                self._proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait()
        shutil.rmtree(self._workdir, ignore_errors=True)

    def session(self) -> requests.Session:
        s = requests.Session()
        s.auth = (self.username, self.password)
        return s

    def create_db(self, name: str, member_roles: Iterable[str] | None = None) -> None:
        """A fresh database whose members are ``member_roles`` (default: the roles of the dev
        stack's CHT, ``cht_docs.CHT_ROLES``), as CHT's API leaves medic: it adds every role
        of ``app_settings.roles`` as a member (5.2.0 api/src/services/config-watcher.js:185-193)
        of a database CouchDB 3 creates admin-only (3.5.0 rel/overlay/etc/default.ini:35-38).
        pouchdb-server does not enforce this for its admin; the CHT API front does for users.
        """
        s = self.session()
        s.delete(f"{self.url}/{name}", timeout=30)
        s.put(f"{self.url}/{name}", timeout=30).raise_for_status()
        roles = list(CHT_ROLES if member_roles is None else member_roles)
        security = {
            "admins": {"names": [], "roles": ["_admin"]},
            "members": {"names": [], "roles": ["_admin", *roles]},
        }
        s.put(f"{self.url}/{name}/_security", json=security, timeout=30).raise_for_status()

    def bulk(self, db: str, docs: list[dict[str, Any]], batch: int = 5000) -> None:
        s = self.session()
        for start in range(0, len(docs), batch):
            chunk = docs[start : start + batch]
            res = s.post(f"{self.url}/{db}/_bulk_docs", json={"docs": chunk}, timeout=600)
            res.raise_for_status()
            failed = [r for r in res.json() if r.get("error")]
            if failed:
                raise RuntimeError(
                    f"bulk load into {db} failed for {len(failed)} docs: {failed[:3]}"
                )

    def write_revisions(self, db: str, docs: list[dict[str, Any]]) -> None:
        """Store revisions as given (``_bulk_docs`` with ``new_edits: false``, what CouchDB's
        replicator writes), e.g. the branches of ``cht_docs.conflict``."""
        res = self.session().post(
            f"{self.url}/{db}/_bulk_docs", json={"docs": docs, "new_edits": False}, timeout=120
        )
        res.raise_for_status()
        failed = [r for r in res.json() if r.get("error")]
        if failed:
            raise RuntimeError(f"revisions not stored in {db}: {failed[:3]}")

    def leaves(self, db: str, ident: str) -> list[dict[str, Any]]:
        """Every leaf revision of a doc (``open_revs=all``), deleted ones included, in
        pouchdb-server's order."""
        res = self.session().get(
            f"{self.url}/{db}/{quote(ident, safe='')}",
            params={"open_revs": "all"},
            headers={"Accept": "application/json"},
            timeout=30,
        )
        res.raise_for_status()
        return [entry["ok"] for entry in res.json() if "ok" in entry]

    def get(self, db: str, ident: str) -> dict[str, Any] | None:
        """The winning revision of a doc, None when missing or deleted."""
        res = self.session().get(f"{self.url}/{db}/{quote(ident, safe='')}", timeout=30)
        if res.status_code == 404:
            return None
        res.raise_for_status()
        doc: dict[str, Any] = res.json()
        return doc

    def __enter__(self) -> CouchServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
