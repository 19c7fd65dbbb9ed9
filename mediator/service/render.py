"""What the mediator renders for people: the status page (``templates/status.html``)
and the coverage table as CSV. No Flask here: the views in ``app.py`` only wrap
these strings in responses."""

from __future__ import annotations

import csv
import io
from datetime import UTC, date, datetime
from functools import cache
from typing import Any
from urllib.parse import urlencode
from zoneinfo import ZoneInfo

from jinja2 import Environment, PackageLoader, select_autoescape

from mediator.model.periods import Period, PeriodError

from .history import CoverageRow, CoverageTable, RunHistory

# no script at all, and the page (CHW usernames) is not kept by caches
STATUS_PAGE_HEADERS = {
    "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; img-src 'self'; "
    "base-uri 'none'; form-action 'none'; frame-ancestors 'none'",
    "Cache-Control": "no-store",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
}
EXPLAIN_PATH = "/explain"
COVERAGE_COLUMNS = [
    "dataSet",
    "period",
    "orgUnit",
    "name",
    "expected",
    "synced",
    "percent",
    "missing",
    "newest_doc",
    "newest_doc_age_days",
    "held",
]

CHART_LABEL_WIDTH = 200  # org unit names, left of the bars
CHART_BAR_WIDTH = 360  # 100 % of CHWs synced
CHART_VALUE_WIDTH = 130  # "66.7 % (2 of 3)", right of the bars
CHART_ROW_HEIGHT = 30
CHART_BAR_HEIGHT = 18
CHART_TOP = 26  # room for the axis labels


def period_label(period: str) -> str:
    """``202405`` → ``May 2024 (202405)``: HRIOs read months, DHIS2 ids stay visible."""
    try:
        parsed = Period.parse(period)
    except PeriodError:
        return period
    if parsed.period_type != "Monthly":
        return period
    return f"{date(parsed.first.year, parsed.first.month, 1).strftime('%B %Y')} ({period})"


def sync_age(row: CoverageRow, now: datetime) -> str:
    """How long ago the org unit's newest target doc was written, in words."""
    if row.newest_doc is not None:
        newest = row.newest_doc
        newest = newest.replace(tzinfo=UTC) if newest.tzinfo is None else newest.astimezone(UTC)
        seconds = max(0.0, (now - newest).total_seconds())
        if seconds < 3600:
            ago = f"{int(seconds // 60)} min"
        elif seconds < 2 * 86400:
            ago = f"{int(seconds // 3600)} h"
        else:
            ago = f"{int(seconds // 86400)} days"
        return f"{ago} ago ({newest.strftime('%Y-%m-%d %H:%M')} UTC)"
    if row.newest_doc_age_days is not None:
        return f"{row.newest_doc_age_days:.1f} days before the run"
    if row.synced == 0:
        return "no target doc for this period"
    return "not known (the target docs carry no update time)"


def _chart(table: CoverageTable) -> dict[str, Any]:
    rows = sorted(table.org_units, key=lambda r: (r.percent, r.name or r.org_unit))
    bars = []
    for i, row in enumerate(rows):
        y = CHART_TOP + i * CHART_ROW_HEIGHT
        bars.append(
            {
                "row": row,
                "y": y,
                "text_y": y + CHART_BAR_HEIGHT / 2 + 5,
                "width": round(CHART_BAR_WIDTH * min(max(row.percent, 0.0), 100.0) / 100, 2),
            }
        )
    return {
        "bars": bars,
        "label_width": CHART_LABEL_WIDTH,
        "bar_width": CHART_BAR_WIDTH,
        "bar_height": CHART_BAR_HEIGHT,
        "width": CHART_LABEL_WIDTH + CHART_BAR_WIDTH + CHART_VALUE_WIDTH,
        "height": CHART_TOP + len(rows) * CHART_ROW_HEIGHT + 4,
        "ticks": [
            {"percent": p, "x": CHART_LABEL_WIDTH + CHART_BAR_WIDTH * p / 100}
            for p in (0, 25, 50, 75, 100)
        ],
    }


class Clock:
    """Times as the page shows them: in MEDIATOR_TIMEZONE, and in UTC beside them."""

    def __init__(self, timezone: str) -> None:
        self.timezone = timezone
        self.zone = ZoneInfo(timezone)

    def __call__(self, moment: datetime | None, seconds: bool = False) -> str:
        if moment is None:
            return ""
        moment = moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment
        shape = "%Y-%m-%d %H:%M:%S" if seconds else "%Y-%m-%d %H:%M"
        utc = moment.astimezone(UTC).strftime(shape)
        if self.timezone == "UTC":
            return f"{utc} UTC"
        local = moment.astimezone(self.zone)
        return f"{local.strftime(shape)} {self.timezone} ({utc} UTC)"


def data_set_label(names: dict[str, str]) -> Any:
    """``Name (id)`` when DHIS2 gave a name, else the id."""

    def label(data_set: str) -> str:
        name = names.get(data_set)
        return f"{name} ({data_set})" if name else data_set

    return label


def page_context(
    history: RunHistory, now: datetime, timezone: str = "UTC", config_problem: str | None = None
) -> dict[str, Any]:
    """Everything ``templates/status.html`` shows, computed here so the template
    only lays it out (and Jinja's autoescaping covers every value from CHT)."""
    runs = history.runs()
    coverage = history.coverage()
    sections = []
    if coverage is not None:
        for table in coverage.for_latest_period():
            sections.append(
                {
                    "table": table,
                    "chart": _chart(table),
                    "rows": sorted(table.org_units, key=lambda r: r.name or r.org_unit),
                    "missing": [
                        {"row": r, "age": sync_age(r, now)}
                        for r in sorted(table.org_units, key=lambda r: r.name or r.org_unit)
                        if r.missing
                    ],
                }
            )
    names = history.names()
    return {
        "now": now,
        "runs": runs,
        "latest": runs[0] if runs else None,
        "coverage": coverage,
        "coverage_period": coverage.latest_period() if coverage else None,
        "sections": sections,
        "period_label": period_label,
        "limit": history.limit,
        "when": Clock(timezone),
        "names": names,
        "ds_name": names.get,
        "state_shared": history.path is not None,
        "config_problem": config_problem,
        "explain_link": explain_link,
    }


def explain_link(data_set: str, period: str, org_unit: str, **more: str | None) -> str:
    """The explain page of an org unit (every element) or of one cell (``dataElement``,
    ``categoryOptionCombo``), as the status page links to it."""
    query = {"dataSet": data_set, "period": period, "orgUnit": org_unit}
    query.update({k: v for k, v in more.items() if v})
    return f"{EXPLAIN_PATH}?{urlencode(query)}"


@cache
def templates() -> Environment:
    # autoescaping as Flask's render_template does it: every value from CHT is escaped
    return Environment(
        loader=PackageLoader("mediator.service", "templates"),
        autoescape=select_autoescape(["html"]),
    )


def status_page(
    history: RunHistory, now: datetime, timezone: str = "UTC", config_problem: str | None = None
) -> str:
    """``GET /``: the HRIO's page (last runs, sync coverage of the newest period), times
    in ``timezone`` (MEDIATOR_TIMEZONE) and UTC; ``config_problem``: why the next run
    cannot start, said first."""
    context = page_context(history, now, timezone, config_problem)
    return templates().get_template("status.html").render(**context)


def coverage_csv(tables: list[dict[str, Any]]) -> str:
    """One line per (data set, period, org unit), for a spreadsheet."""
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(COVERAGE_COLUMNS)
    for table in tables:
        for row in table["orgUnits"]:
            age = row["newest_doc_age_days"]
            writer.writerow(
                [
                    table["dataSet"],
                    table["period"],
                    row["orgUnit"],
                    row["name"],
                    row["expected"],
                    row["synced"],
                    row["percent"],
                    " ".join(row["missing"]),
                    row["newest_doc"] or "",
                    age if age is not None else "",
                    "true" if row.get("held") else "false",
                ]
            )
    return out.getvalue()
