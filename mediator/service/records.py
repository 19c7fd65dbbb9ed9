"""What a run leaves for the status page: its report in the history, from OpenHIM's runs
and from the command line's (a shared ``MEDIATOR_STATE_DIR``), with the names DHIS2
gives the data sets, asked once."""

from __future__ import annotations

import dataclasses
import logging
import os
from collections.abc import Iterable, Mapping
from datetime import datetime

from mediator.dhis2.client import dhis2_peer
from mediator.http.client import HttpClient, RetryPolicy, json_or_none
from mediator.http.errors import PeerError
from mediator.model.report import RunReport
from mediator.model.values import utcnow
from mediator.run.request import RunRequest
from mediator.settings.config import Dhis2Settings, RuntimeConfig
from mediator.settings.secrets import secret_values
from mediator.settings.variables import ConfigError, check_directory

from .history import RunHistory, summarize

# a run whose DHIS2 was gone or refused the user: asking it for names would fail too
_DHIS2_DOWN = {"unreachable", "timeout", "tls", "credentials", "login_redirect", "token_refused"}

log = logging.getLogger(__name__)

NAME_LOOKUP_TIMEOUT = 10.0  # seconds; a name is a nicety, never worth a wait


def data_set_names(settings: Dhis2Settings, ids: Iterable[str]) -> dict[str, str]:
    """The names DHIS2 gives these data sets (``GET /api/dataSets/{id}?fields=id,name``),
    one try each with a short timeout; the first failure ends the look-up."""
    peer = dataclasses.replace(
        dhis2_peer(settings),
        timeout=min(settings.timeout, NAME_LOOKUP_TIMEOUT),
        retry=RetryPolicy(attempts=1, budget_seconds=0.0),
        record_bodies=False,
    )
    client = HttpClient(peer)
    names: dict[str, str] = {}
    try:
        for data_set in ids:
            response = client.send(
                "GET",
                f"/api/dataSets/{data_set}",
                name="DHIS2 data set name",
                params=[("fields", "id,name")],
            )
            body = json_or_none(response)
            if response.status_code != 200 or not isinstance(body, dict):
                break
            if isinstance(body.get("name"), str) and body["name"].strip():
                names[data_set] = body["name"].strip()
    except PeerError as exc:
        log.info("data set names not read from DHIS2: %s", exc)
    finally:
        client.close()
    return names


def record_run(
    history: RunHistory,
    runtime: RuntimeConfig | None,
    request: RunRequest,
    report: RunReport | None,
    *,
    status: str,
    finished: datetime,
    transaction: str | None,
    message: str | None,
    secrets: list[str],
) -> None:
    """A run into the status page's history (``serve``'s runs and the command line's
    share it through MEDIATOR_STATE_DIR), and the names of its data sets, asked of DHIS2
    once. Never a reason to fail the run."""
    try:
        summary, coverage = summarize(
            report,
            status=status,
            trigger=request.trigger,
            finished=finished,
            transaction_id=transaction,
            message=message,
            secrets=secrets,
            request=request,
        )
        history.record(summary, coverage)
        if report is not None:  # the run's own metadata named them: no need to ask
            history.learn_names(report.data_set_names())
        unknown = [ds for ds in summary.data_sets if ds not in history.names()]
        if unknown and runtime is not None and runtime.dhis2 is not None and _answered(report):
            history.learn_names(data_set_names(runtime.dhis2, unknown))
    except Exception:
        log.exception("could not record the run for the status page")


def _answered(report: RunReport | None) -> bool:
    """DHIS2 answered this run and was not gone by its end: worth asking for names."""
    if report is None or any(r.error_kind in _DHIS2_DOWN for r in report.results):
        return False
    return any(ex.peer == "DHIS2" and ex.status is not None for ex in report.exchanges)


def record_cli_run(
    runtime: RuntimeConfig | None,
    request: RunRequest,
    report: RunReport | None,
    message: str | None,
    env: Mapping[str, str] | None = None,
) -> dict[str, str]:
    """A command-line run, or its refusal (a configuration mistake: ``runtime`` None), into
    the shared history when MEDIATOR_STATE_DIR is set (in memory it would die with the
    process); returns the data set names known."""
    env = os.environ if env is None else env
    folder = runtime.state_dir if runtime is not None else env.get("MEDIATOR_STATE_DIR")
    try:
        folder = check_directory("MEDIATOR_STATE_DIR", folder) if folder else None
    except ConfigError:
        return {}  # the mistake is the state dir itself: the refusal says so
    history = RunHistory.from_env({"MEDIATOR_STATE_DIR": folder or ""})
    if history.path is None:
        return {}
    status = "Failed" if message or report is None else report.status
    finished = report.finished if report and report.finished else utcnow()
    record_run(
        history,
        runtime,
        request,
        report,
        status=status,
        finished=finished,
        transaction=None,
        message=message,
        secrets=secret_values(env, {}, runtime, []),
    )
    return history.names()


def asked(request: RunRequest) -> dict[str, str]:
    """What a Processing answer says was asked."""
    span = f"{request.span[0].tag}..{request.span[1].tag}" if request.span else ""
    return {
        "period": ", ".join(p.iso for p in request.periods) or span or "latest",
        "data sets": ", ".join(request.data_sets) or "configured",
    }
