"""The DHIS2 client over real HTTP against the DHIS2 stand-in, one server per version.

What a user cares about: the first push imports, an identical second push writes
nothing, a value lowered to zero or removed disappears from DHIS2, refused rows
and locked periods are reported row by row, and a dry run changes nothing.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime
from typing import Any

import pytest
import requests
from pydantic import SecretStr

from devstack import deployment as demo
from devstack.dhis2_standin import Dhis2StandIn
from mediator.dhis2.client import Dhis2Client
from mediator.model.values import DataValue, Exchange
from mediator.run.push import push
from mediator.settings.config import Dhis2Settings

VERSIONS = ["2.36", "2.37", "2.38.5", "2.40.3", "2.41", "2.42"]
PERIOD = "202410"
NOW = datetime(2024, 11, 15, 10, 0, 0)
CHUS = demo.OU_CHU[:4]


@pytest.fixture(scope="module", params=VERSIONS)
def server(request: pytest.FixtureRequest) -> Iterator[Dhis2StandIn]:
    running = Dhis2StandIn(version=request.param)
    running.set_now(NOW)
    with running:
        yield running


@pytest.fixture
def standin(server: Dhis2StandIn) -> Dhis2StandIn:
    """The version's server with an empty value store."""
    requests.post(f"{server.url}/__standin__/reset", timeout=10).raise_for_status()
    return server


def client(
    server: Dhis2StandIn, exchanges: list[Exchange] | None = None, **changes: Any
) -> Dhis2Client:
    settings = Dhis2Settings(
        url=server.url, username="admin", password=SecretStr("district"), chunk_size=4, **changes
    )
    return Dhis2Client(settings, recorder=exchanges.append if exchanges is not None else None)


def stored(server: Dhis2StandIn, period: str = PERIOD) -> dict[tuple[str, str, str], str]:
    values = requests.get(f"{server.url}/__standin__/values", timeout=10).json()
    return {
        (v["dataElement"], v["orgUnit"], v["categoryOptionCombo"]): v["value"]
        for v in values
        if v["period"] == period
    }


def rows(births: list[float], anc: int = 3, deliveries: int = 0) -> list[DataValue]:
    values = [
        DataValue(dataElement=demo.DE_BIRTHS, orgUnit=ou, value=b)
        for ou, b in zip(CHUS, births, strict=True)
    ]
    values.append(
        DataValue(
            dataElement=demo.DE_ANC_VISITS,
            categoryOptionCombo=demo.COC_UNDER_20,
            orgUnit=CHUS[0],
            value=anc,
        )
    )
    values.append(
        DataValue(dataElement=demo.DE_FACILITY_DELIVERIES, orgUnit=CHUS[0], value=deliveries)
    )
    return values


def test_first_push_imports_and_an_identical_second_push_writes_nothing(
    standin: Dhis2StandIn,
) -> None:
    first = push(client(standin), demo.DS_MONTHLY, PERIOD, rows([1.0, 2.0, 3.0, 4.0]))
    assert first.status == "success", first.error
    assert first.counts.imported == 5 and first.values_sent == 5 and first.delivered == 6
    held = stored(standin)
    assert held[(demo.DE_BIRTHS, CHUS[0], demo.DEFAULT_COC)] == "1"  # never "1.0"
    assert held[(demo.DE_ANC_VISITS, CHUS[0], demo.COC_UNDER_20)] == "3"
    assert (demo.DE_FACILITY_DELIVERIES, CHUS[0], demo.DEFAULT_COC) not in held

    exchanges: list[Exchange] = []
    second = push(client(standin, exchanges), demo.DS_MONTHLY, PERIOD, rows([1.0, 2.0, 3.0, 4.0]))
    assert (second.status, second.values_sent, second.values_unchanged) == ("success", 0, 5)
    assert second.values_zero == 1 and second.delivered == 6  # the zero DHIS2 stores as nothing
    assert not [e for e in exchanges if e.method == "POST"]
    assert stored(standin) == held


def test_lowered_to_zero_or_removed_values_leave_dhis2(standin: Dhis2StandIn) -> None:
    push(client(standin), demo.DS_MONTHLY, PERIOD, rows([1, 2, 3, 4]))
    later = [r for r in rows([0, 2, 3, 4]) if r.orgUnit != CHUS[3]]  # CHU 4 dropped out
    result = push(client(standin), demo.DS_MONTHLY, PERIOD, later, scope_org_units=CHUS)
    assert result.status == "success", result.error
    assert result.values_cleared == 2 and result.counts.deleted == 2
    held = stored(standin)
    assert (demo.DE_BIRTHS, CHUS[0], demo.DEFAULT_COC) not in held  # lowered to 0
    assert (demo.DE_BIRTHS, CHUS[3], demo.DEFAULT_COC) not in held  # removed
    assert held[(demo.DE_BIRTHS, CHUS[1], demo.DEFAULT_COC)] == "2"


def test_refused_rows_are_reported_row_by_row(standin: Dhis2StandIn) -> None:
    values = [
        *rows([1, 2, 3, 4]),
        DataValue(dataElement=demo.DE_BIRTHS, orgUnit="bbbbbbbbbbb", value=5),
    ]
    result = push(client(standin), demo.DS_MONTHLY, PERIOD, values)
    assert result.status == "warning"
    assert [(r.dataElement, r.orgUnit, r.value) for r in result.rejected] == [
        (demo.DE_BIRTHS, "bbbbbbbbbbb", "5")
    ]
    assert result.delivered == 6
    assert "org_units_not_assigned" in [f.code for f in result.preflight]
    assert len(stored(standin)) == 5


def test_a_period_not_open_yet_is_predicted_then_refused_by_dhis2_row_by_row(
    standin: Dhis2StandIn,
) -> None:
    """The preflight says it; DHIS2 decides (E7641 per row); nothing is stored."""
    result = push(client(standin), demo.DS_MONTHLY, "202411", rows([1, 2, 3, 4]))
    assert result.status == "error"
    assert [f.code for f in result.preflight] == ["period_not_open_yet"]
    assert result.rejected and result.delivered == result.values_zero
    assert {r.errorCode for r in result.rejected} <= {"E7641", None}  # 2.36 has no codes
    assert all("202411" in r.reason for r in result.rejected)
    assert stored(standin, "202411") == {}


def test_a_dry_run_changes_nothing(standin: Dhis2StandIn) -> None:
    push(client(standin), demo.DS_MONTHLY, PERIOD, rows([1, 2, 3, 4]))
    before = stored(standin)
    result = push(client(standin), demo.DS_MONTHLY, PERIOD, rows([9, 0, 3, 4]), dry_run=True)
    assert result.dry_run and result.values_sent == 2 and result.status == "success"
    assert stored(standin) == before


def test_async_import_with_an_api_token_or_basic_on_236(standin: Dhis2StandIn) -> None:
    if standin.version.at_least(37):
        token = standin.add_token("admin")
        settings = Dhis2Settings(url=standin.url, token=SecretStr(token), async_import=True)
    else:  # personal access tokens arrived in 2.37
        token = "district"  # noqa: S105 - the stand-in's admin password
        settings = Dhis2Settings(
            url=standin.url, username="admin", password=SecretStr(token), async_import=True
        )
    exchanges: list[Exchange] = []
    result = push(
        Dhis2Client(settings, recorder=exchanges.append),
        demo.DS_MONTHLY,
        PERIOD,
        rows([1, 2, 3, 4]),
    )
    assert result.status == "success" and result.counts.imported == 5
    assert any("taskSummaries" in e.path for e in exchanges)
    assert token not in str([e.model_dump() for e in exchanges])
