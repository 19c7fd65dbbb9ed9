"""push: progress on stderr as it works, then the summary or the JSON report, and the exit
status."""

from __future__ import annotations

import argparse
import json
import sys
import time
from typing import IO
from urllib.parse import parse_qs, urlsplit

import requests

from mediator.http.client import without_userinfo
from mediator.http.transport import SessionTransport, Transport
from mediator.model.periods import PeriodError
from mediator.model.report import RunReport
from mediator.run import summary
from mediator.run.locks import RunBusyError
from mediator.run.pipeline import execute
from mediator.run.request import RunInputError, RunRequest
from mediator.service.records import record_cli_run
from mediator.settings.config import RuntimeConfig
from mediator.settings.variables import ConfigError

from .exits import EXIT_BAD_INPUT, EXIT_OK, EXIT_REJECTED, fail


class Progress:
    """DHIS2's transport for a run on the command line: it sends as ``SessionTransport``
    does and tells stderr, one line each, when the run reaches the next (data set, period)
    (its first read of what DHIS2 holds, ``GET /api/dataValueSets?dataSet=&period=``),
    what it sends, and when DHIS2 does not answer and the request is retried, so a run
    that waits on DHIS2 is never silent."""

    def __init__(self, inner: Transport | None = None, out: IO[str] | None = None) -> None:
        self.inner = inner or SessionTransport()
        self.out = out or sys.stderr
        self.started = time.monotonic()
        self.pair: tuple[str, str] | None = None
        self.pairs = 0
        self.failures = 0  # failed attempts in a row
        self.posted: requests.PreparedRequest | None = None

    def say(self, line: str) -> None:
        elapsed = time.monotonic() - self.started
        print(f"[{int(elapsed // 60):d}:{int(elapsed % 60):02d}] {line}", file=self.out, flush=True)

    def send(
        self,
        request: requests.PreparedRequest,
        *,
        timeout: float | tuple[float, float],
        verify: bool | str,
    ) -> requests.Response:
        self._announce(request)
        try:
            response = self.inner.send(request, timeout=timeout, verify=verify)
        except requests.RequestException as exc:
            self._failed(request, f"no answer ({type(exc).__name__})")
            raise
        if response.status_code in (429, 500, 502, 503, 504):
            self._failed(request, f"DHIS2 answered HTTP {response.status_code}")
        elif self.failures:
            self.say(f"DHIS2 answers again, after {self.failures} failed attempt(s)")
            self.failures = 0
        return response

    def _failed(self, request: requests.PreparedRequest, what: str) -> None:
        """Every failed attempt, counted: the run retries within DHIS2_MAX_ATTEMPTS and
        DHIS2_MAX_RETRY_SECONDS, then stops and says how to resume."""
        self.failures += 1
        where = without_userinfo(request.url or "").split("?")[0]
        first = " (retried within DHIS2_MAX_ATTEMPTS, DHIS2_MAX_RETRY_SECONDS)"
        self.say(
            f"DHIS2 {request.method} {where}: {what}, failed attempt "
            f"{self.failures}{first if self.failures == 1 else ''}"
        )

    def _announce(self, request: requests.PreparedRequest) -> None:
        parts = urlsplit(request.url or "")
        if not parts.path.endswith("/api/dataValueSets"):
            return
        if request.method == "GET":
            query = parse_qs(parts.query)
            pair = (query.get("dataSet", [""])[0], query.get("period", [""])[0])
            if pair != self.pair and all(pair):
                self.pair = pair
                self.pairs += 1
                self.say(f"{pair[0]} {pair[1]}: comparing with what DHIS2 holds")
        elif request.method == "POST" and self.pair is not None and request is not self.posted:
            self.posted = request  # a retry sends the same request again: said once
            try:
                sent = len(json.loads(request.body or b"{}").get("dataValues", []))
            except (ValueError, AttributeError):
                return
            self.say(f"{self.pair[0]} {self.pair[1]}: sending {sent} values")

    def close(self) -> None:
        self.inner.close()


def _wants_json(args: argparse.Namespace) -> bool:
    if args.json or args.summary:
        return bool(args.json)
    return not sys.stdout.isatty()


def push(args: argparse.Namespace, request: RunRequest) -> int:
    as_json = _wants_json(args)
    try:
        config = RuntimeConfig.from_env()
    except ConfigError as exc:  # on the status page too: the HRIO may not see this terminal
        record_cli_run(None, request, None, f"configuration problem: {exc}")
        return fail(str(exc))
    progress = Progress()
    print(_starting(request, config), file=sys.stderr, flush=True)
    try:
        report = execute(request, config, transport=progress)
    except (RunInputError, PeriodError) as exc:
        record_cli_run(config, request, None, str(exc))
        return fail(str(exc))
    except RunBusyError as exc:
        record_cli_run(config, request, None, str(exc))
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_REJECTED
    finally:
        progress.close()
    unknown = summary.unknown_org_unit(request, report)
    names = record_cli_run(config, request, report, unknown)
    if unknown:
        return fail(unknown)
    _print_report(report, request, as_json, names)
    if report.status == "Successful":
        return EXIT_OK
    if any(f.code == "cht_unreadable" for f in report.findings):
        return EXIT_BAD_INPUT
    return EXIT_REJECTED


def _starting(request: RunRequest, config: RuntimeConfig) -> str:
    what, cht, dhis2 = asked(request, config)
    dry = " (dry run)" if request.dry_run or (request.dry_run is None and config.dry_run) else ""
    return f"Pushing {what} from CHT at {cht} to DHIS2 at {dhis2}{dry}…"


def asked(request: RunRequest, config: RuntimeConfig) -> tuple[str, str, str]:
    """The periods asked for in words, and CHT's and DHIS2's addresses, for the line a
    command starts with."""
    periods = ", ".join(p.iso for p in request.periods)
    if request.span:
        periods = f"{request.span[0].tag}..{request.span[1].tag}"
    what = periods or f"the latest completed periods (in {config.timezone})"
    dhis2 = without_userinfo(config.dhis2.url) if config.dhis2 else "DHIS2"
    return what, without_userinfo(config.cht.url), dhis2


def _print_report(
    report: RunReport, request: RunRequest, as_json: bool, names: dict[str, str]
) -> None:
    """JSON on stdout (with the problems and the closing lines on stderr), or the
    summary on stdout."""
    if not as_json:
        sys.stdout.write(summary.text(report, request, names))
        return
    json.dump(summary.json_report(report, request), sys.stdout, indent=2, ensure_ascii=False)
    sys.stdout.write("\n")
    for diagnosis in report.diagnoses:
        where = f"{diagnosis.data_set} {diagnosis.period}: " if diagnosis.data_set else ""
        print(f"problem: {where}{diagnosis.line()}", file=sys.stderr)
    for line in [f"{report.status}.", *summary.closing_lines(report, request)]:
        print(line, file=sys.stderr)
