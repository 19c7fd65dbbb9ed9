"""How a run walks its (data set, period) jobs: each month is read once, and a group
is pushed and let go before the next is read (memory holds one group)."""

from __future__ import annotations

from mediator.model.periods import Period
from mediator.run.jobs import Job
from mediator.run.jobs import month_groups as _month_groups


def periods(groups: list[list[Job]]) -> list[list[str]]:
    return [[f"{j.data_set}:{j.period.iso}" for j in group] for group in groups]


def test_monthly_periods_are_read_and_pushed_one_month_at_a_time():
    jobs = [
        Job(ds, Period.parse(p)) for ds in ("A", "B") for p in ("2024-03", "2024-01", "2024-02")
    ]
    assert periods(_month_groups(jobs)) == [
        ["A:202401", "B:202401"],
        ["A:202402", "B:202402"],
        ["A:202403", "B:202403"],
    ]


def test_a_quarter_joins_the_months_it_shares_so_each_month_is_read_once():
    jobs = [
        Job("M", Period.parse("2024-02")),
        Job("Q", Period.parse("2024Q1")),
        Job("M", Period.parse("2024-04")),
        Job("Y", Period.parse("2023")),
    ]
    assert periods(_month_groups(jobs)) == [["Y:2023"], ["Q:2024Q1", "M:202402"], ["M:202404"]]
