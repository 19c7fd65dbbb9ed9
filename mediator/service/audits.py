"""``GET /audit`` outside Flask: the configuration the next run would use, the audit
(``run.audit``), and refusals as statuses. It takes no turn in the run queue and no
run lock: it writes nothing, so it neither waits for a push nor holds one up."""

from __future__ import annotations

from mediator.run.audit import Audit, audit, dumps, json_audit
from mediator.run.request import RunInputError, RunRequest
from mediator.run.summary import unknown_org_unit
from mediator.settings.secrets import Scrubber
from mediator.settings.variables import ConfigError

from .runs import Refused, RunService


def run_audit(service: RunService, request: RunRequest) -> Audit:
    """Compare what DHIS2 holds with what CHT computes now. Raises Refused: 400 for a
    request that cannot run, 500 for a configuration that cannot work, 502 when CHT
    cannot be read."""
    if request.dry_run is not None:
        raise Refused(400, "dryRun has no meaning for /audit: it pushes nothing")
    try:
        runtime = service.effective().runtime
    except ConfigError as exc:
        raise Refused(500, scrubbed(service, f"configuration problem: {exc}")) from None
    if runtime.dhis2 is None:
        raise Refused(500, "configuration problem: DHIS2 is not configured (DHIS2_URL)")
    try:
        found = audit(request.model_copy(update={"as_of": service.clock()}), runtime)
    except RunInputError as exc:
        raise Refused(400, str(exc)) from None
    if found.cht_failed and not found.report.results:
        failed = next(f.message for f in found.report.findings if f.level == "error")
        raise Refused(502, scrubbed(service, failed))
    unknown = unknown_org_unit(request, found.report)
    if unknown is not None:
        raise Refused(400, unknown)
    return found


def audit_json(service: RunService, found: Audit) -> bytes:
    """``json_audit`` with its free text (errors, problems) scrubbed of secrets, as JSON."""
    data = json_audit(found)
    for pair in data["results"]:
        if pair["error"]:
            pair["error"] = scrubbed(service, pair["error"])
    for finding in data["findings"]:
        finding["message"] = scrubbed(service, finding["message"])
    for diagnosis in data["diagnoses"]:
        diagnosis["cause"] = scrubbed(service, diagnosis["cause"])
    return dumps(data)


def scrubbed(service: RunService, text: str) -> str:
    return Scrubber(service.secrets()).text(text)
