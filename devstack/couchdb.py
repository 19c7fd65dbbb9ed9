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
from pathlib import Path
from typing import Any

import requests

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

    def create_db(self, name: str) -> None:
        s = self.session()
        s.delete(f"{self.url}/{name}", timeout=30)
        s.put(f"{self.url}/{name}", timeout=30).raise_for_status()

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

    def __enter__(self) -> CouchServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
