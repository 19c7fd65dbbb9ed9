"""Runs that push the same (data set, period) to the same DHIS2 never interleave,
across threads and processes (a CLI ``push`` beside ``serve``): one ``flock``ed
file per (DHIS2 server, data set, period).

The DHIS2 server is part of the key: two mediators on one host that push to
different DHIS2 instances share the lock directory (the system temp directory by
default) but never wait for each other. The file says who holds it (pid, run id,
since when, trigger), so a run that has to wait says for whom, once.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import logging
import os
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any
from urllib.parse import urlsplit

from mediator.settings.config import RuntimeConfig

log = logging.getLogger(__name__)

LOCK_DIR_ENV = "MEDIATOR_LOCK_DIR"


class RunBusyError(RuntimeError):
    """Another run is pushing one of these (data set, period) pairs right now."""


def normalise_target(url: str | None) -> str:
    """``HTTPS://Dhis2.Example.org:443/api/`` → ``https://dhis2.example.org``: one name
    per DHIS2 server, without credentials."""
    if not url:
        return ""
    parts = urlsplit(url.strip())
    scheme = parts.scheme.lower()
    host = (parts.hostname or "").lower()
    default = {"http": 80, "https": 443}.get(scheme)
    port = f":{parts.port}" if parts.port and parts.port != default else ""
    path = parts.path.rstrip("/")
    path = path[: -len("/api")] if path.endswith("/api") else path
    return f"{scheme}://{host}{port}{path}"


def default_lock_dir() -> Path:
    """``MEDIATOR_LOCK_DIR`` of this process, else the system temp directory."""
    configured = os.environ.get(LOCK_DIR_ENV, "").strip()
    return Path(configured or Path(tempfile.gettempdir()) / "cht-dhis2-mediator-locks")


class RunLocks:
    """``hold(keys)`` for one run; ``keys`` are ``<data set>/<period>``."""

    def __init__(
        self,
        directory: str | None = None,
        mode: str = "wait",
        timeout: float = 3600.0,
        poll: float = 0.1,
        *,
        target: str | None = None,
        run_id: str | None = None,
        trigger: str | None = None,
        on_wait: Callable[[str], None] | None = None,
    ) -> None:
        self.directory = Path(directory) if directory else default_lock_dir()
        self.mode = mode
        self.timeout = timeout
        self.poll = poll
        self.target = normalise_target(target)
        self.holder = {"pid": os.getpid(), "run_id": run_id, "trigger": trigger}
        self.on_wait = on_wait or (lambda message: log.warning("%s", message))

    @classmethod
    def for_run(
        cls,
        config: RuntimeConfig,
        *,
        run_id: str | None = None,
        trigger: str | None = None,
        on_wait: Callable[[str], None] | None = None,
    ) -> RunLocks:
        """The locks of one run: its DHIS2 server, lock directory and waiting mode."""
        return cls(
            config.lock_dir,
            config.concurrent_runs,
            target=config.dhis2.url if config.dhis2 is not None else None,
            run_id=run_id,
            trigger=trigger,
            on_wait=on_wait,
        )

    @contextmanager
    def hold(self, keys: list[str]) -> Iterator[None]:
        """Hold every key (in sorted order, so two runs cannot deadlock)."""
        self.directory.mkdir(parents=True, exist_ok=True)
        held: list[IO[bytes]] = []
        try:
            for key in sorted(set(keys)):
                held.append(self._acquire(key))
            yield
        finally:
            for handle in reversed(held):
                with suppress(OSError):
                    fcntl.flock(handle, fcntl.LOCK_UN)
                handle.close()

    def path(self, key: str) -> Path:
        name = hashlib.sha256(f"{self.target} {key}".encode()).hexdigest()[:32]
        return self.directory / f"{name}.lock"

    def _acquire(self, key: str) -> IO[bytes]:
        path = self.path(key)
        handle = open(path, "ab")  # noqa: SIM115 - closed by hold()
        deadline = time.monotonic() + self.timeout
        told = False
        while True:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                if self.mode == "refuse" or time.monotonic() > deadline:
                    handle.close()
                    waited = "" if self.mode == "refuse" else f" after waiting {self.timeout:.0f} s"
                    raise RunBusyError(
                        f"another run is pushing {key} right now (the run of {_who(path)})"
                        f"{waited}; try again when it has finished"
                    ) from None
                if not told:
                    told = True
                    self.on_wait(
                        f"waiting for the run of {_who(path)} on {key.replace('/', ' ')} to finish"
                    )
                time.sleep(self.poll)  # flock has no timeout of its own
                continue
            record = {**self.holder, "since": _now(), "key": key, "target": self.target}
            handle.truncate(0)
            handle.write((json.dumps(record) + "\n").encode())
            handle.flush()
            return handle


def holder_of(path: Path) -> dict[str, Any] | None:
    """What a lock file says of the run that holds it (None: unreadable or empty)."""
    try:
        record = json.loads(path.read_text(encoding="utf-8").strip() or "null")
    except (OSError, ValueError):
        return None
    return record if isinstance(record, dict) else None


def _who(path: Path) -> str:
    record = holder_of(path)
    if record is None:
        return "another process"
    run = f"; run {record['run_id']}" if record.get("run_id") else ""
    trigger = f", {record['trigger']}" if record.get("trigger") else ""
    return f"{record.get('pid')} (started {record.get('since')}{run}{trigger})"


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")
