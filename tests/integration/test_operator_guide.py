"""Every command in docs/operator-guide.md runs, as written, against the local stack."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from devstack import deployment as dep
from devstack.stack import (
    ADMIN_CLIENT,
    ADMIN_CLIENT_PASSWORD,
    OPENHIM_PASSWORD,
    OPENHIM_USER,
    LocalStack,
)
from mediator.periods import Month

GUIDE = Path(__file__).resolve().parents[2] / "docs" / "operator-guide.md"
URN = "urn:mediator:cht-dhis2-aggregate"
BLOCKS = re.findall(r"```sh\n(.*?)```", GUIDE.read_text(), re.S)


@pytest.fixture(scope="module")
def stack(couch, openhim_core):
    last = Month.previous_completed("UTC")
    if not openhim_core.running:
        openhim_core.start()
    openhim_core.reset()
    stack = LocalStack(
        months=[last.shift(-1).tag, last.tag], couch=couch, db="medic-guide", openhim=openhim_core
    )
    stack.start()
    try:
        stack.wait_registered(URN)
        stack.install_channels(URN)
        yield stack
    finally:
        stack.stop()


@pytest.fixture(scope="module")
def env(stack, tmp_path_factory):
    last = Month.previous_completed("UTC")
    assert stack.openhim is not None
    return {
        **os.environ,
        **stack.env,
        "PATH": f"{Path(sys.executable).parent}:{os.environ.get('PATH', '')}",
        # the real core, as the guide's curl commands reach it: its certificate given
        # as --cacert would give it, under the name the certificate carries
        "OPENHIM_URL": stack.openhim.url.replace("127.0.0.1", "localhost"),
        "CURL_CA_BUNDLE": str(stack.openhim.certificate),
        "OPENHIM_USERNAME": OPENHIM_USER,
        "OPENHIM_PASSWORD": OPENHIM_PASSWORD,
        "OPENHIM_ROUTER": stack.openhim.router_url,
        "CLIENT": f"{ADMIN_CLIENT}:{ADMIN_CLIENT_PASSWORD}",
        "MEDIATOR": stack.mediator_url,
        "DATA_SET": dep.DS_MONTHLY,
        "PERIOD": last.tag,
        "FROM": last.shift(-1).tag,
        "PYTHONPATH": str(GUIDE.parents[1]),
        # section 1 makes a CHT user through CHT's users API, as a CHT admin
        "CHT_ADMIN": f"{stack.couch.username}:{stack.couch.password}",
        "NEW_CHT_PASSWORD": "Guide-example-Pa55word",
    }


def test_the_guide_has_commands():
    assert len(BLOCKS) >= 8


@pytest.mark.parametrize("number", range(len(BLOCKS)))
def test_each_command_block_of_the_guide_runs(env, tmp_path_factory, number):
    work = tmp_path_factory.getbasetemp() / "guide"  # blocks share files, in order
    work.mkdir(exist_ok=True)
    done = subprocess.run(
        ["bash", "-euo", "pipefail", "-c", BLOCKS[number]],
        cwd=work,
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert done.returncode == 0, f"block {number}:\n{BLOCKS[number]}\n{done.stdout}\n{done.stderr}"
