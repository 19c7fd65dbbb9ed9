"""When DHIS2 refuses a period, release by release (``mediator.dhis2.rules``), and what
the preflight then says per org unit: tested at each release boundary the rules change,
against the instants where they differ (the last open day, the first locked instant)."""

from __future__ import annotations

from datetime import date, datetime

import pytest

from mediator.dhis2 import rules
from mediator.dhis2.metadata import DataSetMeta
from mediator.dhis2.preflight import Server, check
from mediator.model.periods import Period
from mediator.model.values import DataValue

JAN_END = date(2024, 1, 31)
OU_A, OU_B = "DiszpKrYNg8", "Rp268JB6Ne4"


def v(text: str) -> tuple[int, int, int]:
    major, minor, patch = [*text.split("."), "0"][:3]
    return int(major), int(minor), int(patch)


@pytest.mark.parametrize(
    ("version", "now", "expired"),
    [
        # instant rule: end (31 Jan 00:00) + 10 days = 10 Feb 00:00
        ("2.37.9", datetime(2024, 2, 10, 0, 0, 0), False),
        ("2.37.9", datetime(2024, 2, 10, 0, 0, 1), True),
        ("2.38.3", datetime(2024, 2, 10, 12, 0), True),
        ("2.39.1", datetime(2024, 2, 10, 12, 0), True),
        # day rule: 10 Feb is open all day
        ("2.37.10", datetime(2024, 2, 10, 23, 59, 59), False),
        ("2.37.10", datetime(2024, 2, 11, 0, 0), True),
        ("2.38.4", datetime(2024, 2, 10, 23, 59), False),
        ("2.39.2", datetime(2024, 2, 10, 23, 59), False),
        ("2.40.0", datetime(2024, 2, 10, 23, 59), False),
        ("2.41.1", datetime(2024, 2, 10, 23, 59), False),
        ("2.41.1", datetime(2024, 2, 11, 0, 0), True),
        # 2.42: open until end + 1 day + 10 days = 11 Feb 00:00, to the instant
        ("2.42.0", datetime(2024, 2, 11, 0, 0, 0), False),
        ("2.42.0", datetime(2024, 2, 11, 0, 0, 1), True),
    ],
)
def test_expiry_by_release(version: str, now: datetime, expired: bool) -> None:
    assert rules.expired(v(version), 10, JAN_END, now) is expired


def test_fractional_expiry_days_only_count_on_242() -> None:
    """2.42 stores expiryDays as a double; before, 0.5 is 0: never expires."""
    assert rules.expired((2, 42, 0), 0.5, JAN_END, datetime(2024, 2, 1, 11, 59)) is False
    assert rules.expired((2, 42, 0), 0.5, JAN_END, datetime(2024, 2, 1, 12, 0, 1)) is True
    assert rules.expired((2, 41, 1), 0.5, JAN_END, datetime(2030, 1, 1)) is False


@pytest.mark.parametrize(
    ("version", "now", "open_"),
    [
        ("2.37.9", datetime(2024, 2, 10, 0, 0), False),  # closing at its exact instant
        ("2.37.9", datetime(2024, 2, 9, 23, 59), True),
        ("2.37.10", datetime(2024, 2, 10, 18, 0), True),  # the closing day is open all day
        ("2.42.0", datetime(2024, 2, 10, 18, 0), True),
        ("2.42.0", datetime(2024, 2, 11, 0, 0), False),
    ],
)
def test_data_input_period_closing_day_by_release(version: str, now: datetime, open_: bool) -> None:
    closing = datetime(2024, 2, 10)
    assert rules.input_window_open(v(version), datetime(2024, 2, 1), closing, now) is open_


def meta(**changes: object) -> DataSetMeta:
    body: dict[str, object] = {
        "id": "pBOMPrpg1QX",
        "periodType": "Monthly",
        "expiryDays": 10,
        "openFuturePeriods": 0,
        "dataSetElements": [{"dataElement": {"id": "f7n9E0hX8qk", "valueType": "NUMBER"}}],
        "organisationUnits": [{"id": OU_A}, {"id": OU_B}],
    }
    body.update(changes)
    return DataSetMeta.model_validate(body)


def rows() -> list[DataValue]:
    return [DataValue(dataElement="f7n9E0hX8qk", orgUnit=ou, value=3) for ou in (OU_A, OU_B)]


def expiry_message(server: Server) -> str | None:
    pre = check(meta(), "pBOMPrpg1QX", "202401", rows(), server)
    assert not pre.blocked and len(pre.ready) == 2  # predictions never hold rows back
    found = [f for f in pre.findings if f.code == "period_expired"]
    return found[0].message if found else None


LATE = datetime(2024, 3, 1)


def test_a_lock_exception_opens_its_org_unit_only() -> None:
    server = Server(
        version=(2, 41, 1),
        now=LATE,
        authorities=frozenset({"F_DATAVALUE_ADD"}),
        lock_exceptions=frozenset({OU_A}),
    )
    message = expiry_message(server)
    assert message is not None
    assert f"will refuse the values at {OU_B} (E7640)" in message
    assert f"{OU_A} have a lock exception and are open" in message


@pytest.mark.parametrize("authority", ["F_EDIT_EXPIRED", "ALL"])
def test_a_user_who_may_edit_expired_data_gets_no_warning(authority: str) -> None:
    server = Server(version=(2, 42, 0), now=LATE, authorities=frozenset({authority}))
    assert expiry_message(server) is None


def test_unknown_authorities_or_exceptions_say_may() -> None:
    assert "may refuse" in (expiry_message(Server(version=(2, 41, 1), now=LATE)) or "")
    known_user = Server(version=(2, 41, 1), now=LATE, authorities=frozenset({"F_DATAVALUE_ADD"}))
    assert "its lock exceptions could not be read" in (expiry_message(known_user) or "")


def test_the_last_open_day_gives_no_warning_on_241_and_one_on_2379() -> None:
    last_day = datetime(2024, 2, 10, 18, 0)
    user = frozenset({"F_DATAVALUE_ADD"})
    assert expiry_message(Server(version=(2, 41, 1), now=last_day, authorities=user)) is None
    old = Server(version=(2, 37, 9), now=last_day, authorities=user, lock_exceptions=frozenset())
    assert "will refuse" in (expiry_message(old) or "")


@pytest.mark.parametrize(
    ("version", "words"), [("2.39.0", "may refuse"), ("2.39.1", "will refuse")]
)
def test_future_periods_are_certain_only_where_dhis2_counts_per_data_set(
    version: str, words: str
) -> None:
    pre = check(meta(), "pBOMPrpg1QX", "202403", rows(), Server(version=v(version), now=LATE))
    (found,) = [f for f in pre.findings if f.code == "period_not_open_yet"]
    assert words in found.message and not pre.blocked


def test_unassigned_org_units_are_an_error_when_the_server_is_strict_but_never_block() -> None:
    data_set = meta(organisationUnits=[{"id": OU_A}])
    strict = Server(now=datetime(2024, 2, 2), strict_org_units=True)
    pre = check(data_set, "pBOMPrpg1QX", "202401", rows(), strict)
    (found,) = [f for f in pre.findings if f.code == "org_units_not_assigned_strict"]
    assert found.level == "error" and found.ids == [OU_B] and "E7636" in found.message
    assert not pre.blocked and len(pre.ready) == 2
    lax = check(data_set, "pBOMPrpg1QX", "202401", rows(), Server(now=datetime(2024, 2, 2)))
    assert [f.code for f in lax.findings] == ["org_units_not_assigned"]


def test_period_last_day() -> None:
    assert Period.parse("2024Q1").last_day == date(2024, 3, 31)
    assert Period.parse("202402").last_day == date(2024, 2, 29)
