"""Runs that touch the same (data set, period) never interleave, across threads and
processes (a CLI ``push`` beside ``serve``): one ``flock``ed file per key."""

from __future__ import annotations

import fcntl
import hashlib
import os
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import IO


class RunBusyError(RuntimeError):
    """Another run is pushing one of these (data set, period) pairs right now."""


class RunLocks:
    def __init__(
        self,
        directory: str | None = None,
        mode: str = "wait",
        timeout: float = 3600.0,
        poll: float = 0.1,
    ) -> None:
        self.directory = Path(directory or Path(tempfile.gettempdir()) / "cht-dhis2-mediator-locks")
        self.mode = mode
        self.timeout = timeout
        self.poll = poll

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

    def _acquire(self, key: str) -> IO[bytes]:
        name = hashlib.sha256(key.encode()).hexdigest()[:32] + ".lock"
        handle = open(self.directory / name, "ab")  # noqa: SIM115 - closed by hold()
        deadline = time.monotonic() + self.timeout
        while True:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
                handle.truncate(0)
                handle.write(f"{os.getpid()} {key}\n".encode())
                handle.flush()
                return handle
            except BlockingIOError:
                if self.mode == "refuse" or time.monotonic() > deadline:
                    handle.close()
                    waited = "" if self.mode == "refuse" else f" after waiting {self.timeout:.0f} s"
                    raise RunBusyError(
                        f"another run is pushing {key} right now{waited}; try again when it "
                        "has finished"
                    ) from None
                time.sleep(self.poll)
