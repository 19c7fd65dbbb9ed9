"""An HRIO's month on the local stack, run from the operator guide alone: the block of
settings ``demo --keep`` prints (``devstack.demo.export_block``) and the commands the guide
shows, in a shell with nothing else set. After each step the status page is read in
headless Chromium, as the HRIO reads it.

1. the month's push; a CHW syncs late; the push again picks the late numbers up;
2. a backfill during which DHIS2 goes down: the run stops within its retry budget, says
   what was pushed and the command that resumes it; DHIS2 back, that command completes
   the backfill, and DHIS2 then holds exactly what a clean run computes;
3. mistakes in the configuration: a typo in a variable is one line naming it; a password
   only the server can refuse, and CHT behind a failing proxy, are runs that say why.
"""

from __future__ import annotations

import os
import shlex
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from devstack import cht_docs as d
from devstack import deployment as dep
from devstack.browser import chromium_page, missing
from devstack.demo import export_block
from devstack.dhis2_standin import Dhis2StandIn, Fault
from devstack.faultproxy import FaultProxy, Rule
from devstack.stack import LocalStack
from mediator.model.periods import Month
from mediator.run.pipeline import execute
from mediator.run.request import RunRequest
from mediator.settings.config import RuntimeConfig

LAST = Month.previous_completed("UTC")
MONTHS = [LAST.shift(-2), LAST.shift(-1), LAST]
RETRY_SECONDS = 2.0  # DHIS2_MAX_RETRY_SECONDS for the backfill: the budget it must keep to

READ_PAGE = """() => {
  const text = el => (el ? el.innerText.trim() : null);
  const count = (tr, name) => Number(text(tr.querySelector(`[data-count="${name}"]`)));
  return {
    status: text(document.querySelector("#latest-status")),
    reason: text(document.querySelector("#latest-reason")),
    configProblem: text(document.querySelector("#config-problem")),
    facts: text(document.querySelector("dl.facts")),
    problems: text(document.querySelector("#latest-problems")),
    resume: text(document.querySelector("#latest-resume")),
    results: [...document.querySelectorAll("#latest-results tbody tr")].map(tr => ({
      dataSet: tr.dataset.dataSet, period: tr.dataset.period, label: text(tr.cells[0]),
      updated: count(tr, "updated"), imported: count(tr, "imported"),
      unchanged: count(tr, "unchanged")})),
    runs: [...document.querySelectorAll("#runs tbody tr")].map(tr => text(tr)),
  };
}"""


@pytest.fixture
def stack(local_stacks: Any, tmp_path_factory: pytest.TempPathFactory) -> LocalStack:
    """The local stack on the session's CouchDB and OpenHIM core, with a state and lock
    directory of its own, which the demo's block hands to the command line too."""
    own = tmp_path_factory.mktemp("hrio")
    stack: LocalStack = local_stacks(
        [m.tag for m in MONTHS],
        extra_env={
            "MEDIATOR_STATE_DIR": str(own / "state"),
            "MEDIATOR_LOCK_DIR": str(own / "locks"),
        },
    )
    return stack


class Hrio:
    """Commands as the HRIO types them, in a shell with only the demo's block pasted in."""

    def __init__(self, stack: LocalStack, work: Path) -> None:
        self.stack = stack
        self.block = export_block(stack, LAST)
        self.work = work

    def script(self, command: str) -> list[str]:
        return ["bash", "-euo", "pipefail", "-c", self.block + command]

    def env(self) -> dict[str, str]:
        return {"PATH": "/usr/local/bin:/usr/bin:/bin", "HOME": str(self.work), "LANG": "C.UTF-8"}

    def run(self, command: str) -> subprocess.CompletedProcess[str]:
        done = subprocess.run(
            self.script(command),
            cwd=self.work,
            env=self.env(),
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert "Traceback" not in done.stderr + done.stdout, done.stderr
        return done

    def start(self, command: str) -> subprocess.Popen[str]:
        return subprocess.Popen(
            self.script(command),
            cwd=self.work,
            env=self.env(),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )


class StatusPage:
    """The mediator's status page in one headless Chromium, read after each step."""

    def __init__(self, page: Any, url: str) -> None:
        self.page = page
        self.url = url

    def read(self) -> dict[str, Any]:
        response = self.page.goto(self.url, wait_until="load")
        assert response is not None and response.status == 200
        return dict(self.page.evaluate(READ_PAGE))


@pytest.fixture
def status_page(stack: LocalStack) -> Iterator[StatusPage]:
    problem = missing()
    if problem is not None:  # as tests/browser/conftest.py: CI must prove the page works
        if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
            pytest.fail(f"CI must run the browser test, but {problem}")
        pytest.skip(problem)
    with chromium_page() as page:
        yield StatusPage(page, f"{stack.mediator_url}/")


def counts_of(seen: dict[str, Any], data_set: str, period: str) -> dict[str, Any]:
    return next(r for r in seen["results"] if (r["dataSet"], r["period"]) == (data_set, period))


def late_sync(stack: LocalStack, month: Month) -> str:
    """The CHW who never synced opens the app: the month's target doc reaches CHT."""
    assert stack.deployment is not None and stack.couch is not None
    username = stack.deployment.never_synced[0]
    contact = stack.deployment.chw_contacts[username]
    doc = d.target_doc(
        month.tag,
        contact,
        username,
        [d.target("births-this-month", 7), d.target("households-visited", 30)],
        updated_date=int(time.time() * 1000),
    )
    stack.couch.bulk(stack.db, [doc])
    return username


def computed(stack: LocalStack, first: Month, last: Month, tmp: Path) -> dict[Any, str]:
    """What DHIS2 holds after one clean run of the range into an empty DHIS2."""
    with Dhis2StandIn(version=stack.dhis2_version) as clean:
        env = {**stack.env, "DHIS2_URL": clean.url, "MEDIATOR_STATE_DIR": str(tmp / "oracle")}
        config = RuntimeConfig.from_env(env)
        request = RunRequest.from_fields({"from": first.tag, "to": last.tag})
        assert execute(request, config).status == "Successful"
        return held(clean, {m.dhis2 for m in MONTHS})


def pairs_of(commands: str) -> set[tuple[str, str]]:
    """The (data set, period) pairs a resume line redoes."""
    pairs = set()
    for command in commands.split("&&"):
        args = shlex.split(command)
        sets = [args[i + 1] for i, a in enumerate(args) if a == "--data-set"]
        periods = [args[i + 1] for i, a in enumerate(args) if a == "--period"]
        pairs |= {(ds, p) for ds in sets for p in periods}
    return pairs


def held(d2: Dhis2StandIn, periods: set[str]) -> dict[Any, str]:
    return {k: v for k, v in d2.store.values().items() if v not in (None, "") and k[1] in periods}


def test_the_hrios_month(stack: LocalStack, status_page: StatusPage, tmp_path: Path) -> None:
    hrio = Hrio(stack, tmp_path)
    assert stack.dhis2 is not None and stack.deployment is not None

    # 1. the month's push, as the guide shows it; one CHW has not synced
    month = hrio.run('python -m mediator push --period "$PERIOD" --summary')
    assert month.returncode == 0, month.stdout + month.stderr
    silent = stack.deployment.never_synced[0]
    assert "CHWs missing from the numbers" in month.stdout and silent in month.stdout
    assert month.stdout.splitlines()[-1].startswith("Pushed 2 of 2:")
    seen = status_page.read()
    assert "Successful" in seen["status"] and seen["reason"] is None
    assert "command line" in seen["facts"]
    assert "CHWs missing from the numbers" in seen["problems"]
    first = counts_of(seen, dep.DS_MONTHLY, LAST.dhis2)
    assert first["imported"] > 0 and first["label"].startswith("MoH Monthly Integration")

    # ... the CHW syncs late; the same command picks the numbers up
    late_sync(stack, LAST)
    again = hrio.run('python -m mediator push --period "$PERIOD" --summary')
    assert again.returncode == 0, again.stdout + again.stderr
    assert silent not in again.stdout
    seen = status_page.read()
    late = counts_of(seen, dep.DS_MONTHLY, LAST.dhis2)
    assert late["updated"] > 0 and late["unchanged"] > 0
    assert seen["problems"] is None  # no one is missing any more

    # 2. a backfill of the quarter; DHIS2 goes down while the second data set is posted
    port = int(stack.dhis2.url.rsplit(":", 1)[1])
    stack.dhis2.faults.add(
        Fault("delay", path="/api/dataValueSets", method="POST", seconds=3.0, skip=1)
    )
    backfill = hrio.start(
        f"DHIS2_MAX_ATTEMPTS=5 DHIS2_MAX_RETRY_SECONDS={RETRY_SECONDS:g} "
        f'python -m mediator push --from {MONTHS[0].tag} --to "$PERIOD" --summary'
    )
    assert backfill.stderr is not None
    said: list[tuple[float, str]] = []
    second = f"{dep.DS_CHW} {MONTHS[0].dhis2}: sending"
    for line in backfill.stderr:
        said.append((time.monotonic(), line.rstrip()))
        if second in line:
            threading.Thread(target=stack.dhis2.stop).start()  # DHIS2 goes down
            break
    else:
        raise AssertionError("the backfill never reached its second data set")
    rest, errors = backfill.communicate(timeout=120)
    ended = time.monotonic()
    said += [(ended, line) for line in errors.splitlines()]
    assert backfill.returncode == 1, rest
    # never silent: each failed attempt was said as it happened
    failures = [at for at, line in said if "failed attempt" in line]
    assert failures, "\n".join(line for _, line in said)
    # and it stopped within the retry budget, instead of retrying every remaining period
    assert ended - failures[0] < RETRY_SECONDS + 5.0, "\n".join(line for _, line in said)
    assert "Pushed" in rest and "Not completed" in rest and "DHIS2 could not be reached" in rest
    resume = rest.splitlines()[-1].strip()
    assert resume.startswith("python -m mediator push ")
    again_pairs = pairs_of(resume)
    assert (dep.DS_MONTHLY, MONTHS[0].dhis2) not in again_pairs  # it was pushed
    assert {(ds, LAST.dhis2) for ds in (dep.DS_MONTHLY, dep.DS_CHW)} <= again_pairs
    seen = status_page.read()
    assert "Failed" in seen["status"] or "Completed with error(s)" in seen["status"]
    assert seen["reason"] is not None and "DHIS2" in seen["reason"], seen
    assert "unreachable" in seen["reason"] or "not attempted" in seen["reason"], seen
    assert seen["resume"] is not None
    assert pairs_of(" && ".join(seen["resume"].splitlines())) == again_pairs

    # DHIS2 is back: the last line, as printed, completes the backfill
    stack.dhis2.start(port=port)
    resumed = hrio.run(resume)  # exactly as printed (its output is JSON: not a terminal)
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    assert "Successful." in resumed.stderr.splitlines()
    seen = status_page.read()
    assert "Successful" in seen["status"] and seen["reason"] is None
    assert held(stack.dhis2, {m.dhis2 for m in MONTHS}) == computed(
        stack, MONTHS[0], LAST, tmp_path
    )

    # 3. a typo in a variable: one line naming it; the page says it too
    for typo, says in [
        ("MEDIATOR_TIMEZONE=Nairobi", "did you mean Africa/Nairobi?"),
        ("DHIS2_URL=dhis2.example.org", "must start with http:// or https://"),
        ("DHIS2_CHUNK_SIZE=5O0", "is not a whole number"),
    ]:
        name = typo.split("=")[0]
        done = hrio.run(f'{typo} python -m mediator push --period "$PERIOD"')
        assert done.returncode == 2
        lines = [line for line in done.stderr.splitlines() if "weak secret" not in line]
        assert len(lines) == 1 and lines[0].startswith(f"error: {name}="), done.stderr
        assert says in lines[0] and f"for example {name}=" in lines[0]
        seen = status_page.read()
        assert "Failed" in seen["status"] and name in seen["reason"] and says in seen["reason"]

    # ... a password only DHIS2 can refuse: a run that says why, and is not retried
    wrong = hrio.run(
        'DHIS2_PASSWORD=Wrong-Pa55word python -m mediator push --period "$PERIOD" --summary'
    )
    assert wrong.returncode == 1 and "DHIS2 refused the credentials" in wrong.stdout
    assert "Wrong-Pa55word" not in wrong.stdout + wrong.stderr
    seen = status_page.read()
    assert "Failed" in seen["status"] and "DHIS2" in seen["reason"], seen
    assert "401" in seen["reason"] or "credentials" in seen["reason"], seen

    # ... CHT behind a proxy that fails with its HTML page: a title, not the page
    assert stack.cht is not None
    page = b"<html><head><title>502 Bad Gateway</title></head><body>" + b"<p>x</p>" * 500
    with FaultProxy(stack.cht.url) as proxy:
        proxy.add(Rule("status", status=502, body=page, count=None))
        down = hrio.run(
            f'CHT_URL={shlex.quote(proxy.url)} python -m mediator push --period "$PERIOD" --summary'
        )
    assert down.returncode == 2
    said_all = down.stdout + down.stderr
    assert "<html" not in said_all and "<p>" not in said_all
    assert "502 Bad Gateway" in down.stdout and "Check that CHT is up" in down.stdout
    assert "Nothing was pushed." in down.stdout.splitlines()
    assert down.stdout.splitlines()[-1].strip() == f"python -m mediator push --period {LAST.dhis2}"
    assert len(said_all.splitlines()) < 20
    seen = status_page.read()
    assert "Failed" in seen["status"] and "502" in seen["reason"], seen
    assert "none reached" in seen["facts"]
