"""``GET /explain`` outside Flask: the configuration the next run would use, the
explanation of one cell (``run.explain``), refusals as statuses, and the page. Like
``/audit`` it writes nothing, so it takes no turn in the run queue and no run lock."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from mediator.http.errors import PeerError
from mediator.model.periods import PeriodError
from mediator.run.cell import CellAsk
from mediator.run.explain import explain
from mediator.run.explained import REASONS, command, json_explain
from mediator.run.request import RunInputError
from mediator.settings.variables import ConfigError

from .audits import scrubbed
from .render import templates
from .runs import Refused, RunService


def run_explain(service: RunService, fields: dict[str, Any]) -> dict[str, Any]:
    """``json_explain`` of the cell the query names (without ``dataElement``: every
    element of the data set at that org unit, the page the coverage table links to),
    its free text scrubbed of secrets. Raises Refused: 400 for a cell that cannot be
    explained, 500 for a configuration that cannot work, 502 when CHT cannot be read."""
    try:
        runtime = service.effective().runtime
    except ConfigError as exc:
        raise Refused(500, scrubbed(service, f"configuration problem: {exc}")) from None
    try:
        ask = CellAsk.from_fields(
            fields, trigger="http", dhis2_ids=runtime.dhis2 is not None, every_element=True
        )
        asked = ask.request.model_copy(update={"as_of": service.clock()})
        found = explain(replace(ask, request=asked), runtime)
    except (RunInputError, PeriodError) as exc:
        raise Refused(400, str(exc)) from None
    except PeerError as exc:
        raise Refused(502, scrubbed(service, str(exc))) from None
    data = json_explain(found)
    data["notes"] = [scrubbed(service, n) for n in data["notes"]]
    if data["dhis2_note"]:
        data["dhis2_note"] = scrubbed(service, data["dhis2_note"])
    return data


def explain_page(data: dict[str, Any]) -> str:
    """The explanation as the HRIO's page (``templates/explain.html``): no script."""
    commands = [
        command(data["data_set"], data["period"], data["org_unit"], r["data_element"], None)
        for r in data["rows"]
    ]
    return (
        templates()
        .get_template("explain.html")
        .render(e=data, reasons=REASONS, commands=list(dict.fromkeys(commands)))
    )
