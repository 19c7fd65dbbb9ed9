"""Every command in docs/operator-guide.md runs, as written, against the local stack that
``python -m mediator demo --keep`` starts, with nothing but what the demo prints: the
``source``/``export`` block of its settings. Then SIGTERM stops the demo and every server
it started (pouchdb-server included)."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
GUIDE = ROOT / "docs" / "operator-guide.md"
BLOCKS = re.findall(r"```sh\n(.*?)```", GUIDE.read_text(), re.S)
READY = "Ctrl-C (or SIGTERM) stops the stack."


class Demo:
    """``python -m mediator demo --keep`` in a process of its own, and what it printed."""

    def __init__(self, log: Path) -> None:
        self.log = log
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "mediator", "demo", "--keep"],
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=log.open("w"),
            text=True,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
        self.printed: list[str] = []

    def wait_ready(self, timeout: float = 240) -> None:
        assert self.proc.stdout is not None
        deadline = time.monotonic() + timeout
        for line in self.proc.stdout:  # the demo prints its block last, then waits
            self.printed.append(line.rstrip("\n"))
            if line.strip() == READY:
                return
            assert time.monotonic() < deadline, "the demo did not get ready in time"
        raise AssertionError(f"the demo ended early:\n{self.output()}")

    def block(self) -> str:
        """The lines to paste: ``source …`` and ``export …``."""
        lines = [line for line in self.printed if line.startswith(("source ", "export "))]
        assert lines, self.output()
        return "\n".join(lines) + "\n"

    def output(self) -> str:
        return "\n".join(self.printed) + "\n" + self.log.read_text()

    def children(self) -> list[int]:
        """Processes the demo started (pouchdb-server)."""
        found = []
        for stat in Path("/proc").glob("[0-9]*/stat"):
            try:
                fields = stat.read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[1]) == self.proc.pid:
                found.append(int(stat.parent.name))
        return found


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Demo]:
    running = Demo(tmp_path_factory.mktemp("demo") / "stderr.log")
    try:
        running.wait_ready()
        yield running
    finally:
        if running.proc.poll() is None:
            running.proc.terminate()
            running.proc.wait(timeout=60)


def test_the_guide_has_commands():
    assert len(BLOCKS) >= 10


def test_the_demo_prints_what_the_guide_needs(demo):
    block = demo.block()
    assert block.startswith("source ") and "/bin/activate" in block.splitlines()[0]
    exported = set(re.findall(r"^export (\w+)=", block, re.M))
    used = set(re.findall(r"\$\{?([A-Z][A-Z0-9_]+)", "\n".join(BLOCKS)))
    assert used <= exported, (
        f"the guide uses {sorted(used - exported)}, which the demo leaves unset"
    )
    # the address of CHT, not of its database
    cht_url = re.search(r"^export CHT_URL=(\S+)$", block, re.M)
    assert cht_url is not None and not cht_url.group(1).rstrip("/").endswith("/medic")
    # the count of one period, not of the three the channel pushed
    said = next(line for line in demo.printed if line.startswith("DHIS2 now holds"))
    held = re.match(r"DHIS2 now holds (\d+) data values for (\d{6}) \((\d+) for all", said)
    assert held is not None and int(held.group(1)) < int(held.group(3))


@pytest.mark.parametrize("number", range(len(BLOCKS)))
def test_each_command_block_of_the_guide_runs_from_the_demos_block(demo, tmp_path_factory, number):
    work = tmp_path_factory.getbasetemp() / "guide"  # blocks share files, in order
    work.mkdir(exist_ok=True)
    script = demo.block() + BLOCKS[number]
    # nothing from this test's environment: only what the demo printed
    env = {"PATH": "/usr/local/bin:/usr/bin:/bin", "HOME": str(work), "LANG": "C.UTF-8"}
    done = subprocess.run(
        ["bash", "-euo", "pipefail", "-c", script],
        cwd=work,
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert done.returncode == 0, f"block {number}:\n{BLOCKS[number]}\n{done.stdout}\n{done.stderr}"
    assert "Traceback" not in done.stderr


def test_sigterm_stops_the_demo_and_every_server_it_started(demo):
    children = demo.children()
    assert children, "the demo runs pouchdb-server as a child process"
    demo.proc.send_signal(signal.SIGTERM)
    assert demo.proc.wait(timeout=60) == 0
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline and any(Path(f"/proc/{pid}").exists() for pid in children):
        time.sleep(0.1)
    assert not [pid for pid in children if Path(f"/proc/{pid}").exists()], demo.output()
