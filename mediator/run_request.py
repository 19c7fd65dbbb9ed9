"""What a run is asked to do, validated once, whoever asks: the command line, the
push endpoint, the schedule."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator

from .periods import Month, Period


class RunInputError(ValueError):
    """The request cannot be run as asked (unknown data set, bad period…): a 400 / exit 2."""


class RunRequest(BaseModel):
    """What to run. With no ``periods`` and no ``span`` it is a scheduled run: the
    latest completed period of each data set's type and the ``lookback`` before it."""

    model_config = ConfigDict(arbitrary_types_allowed=True)

    periods: list[Period] = Field(default_factory=list)
    span: tuple[Month, Month] | None = None  # a backfill: every period these months touch
    as_of: datetime | None = None  # "now" for the default periods (a rerun replays it)
    data_sets: list[str] = Field(default_factory=list)  # empty: the configured ones
    org_unit: str | None = None
    dry_run: bool | None = None  # None: the configured default
    trigger: str = "cli"  # cli | openhim | http | schedule

    @field_validator("periods", mode="before")
    @classmethod
    def _months_are_periods(cls, value: Any) -> Any:
        """A Month or a period's ISO text is accepted where a Period is meant."""
        if not isinstance(value, list):
            return value
        return [
            Period(v, "Monthly")
            if isinstance(v, Month)
            else Period.parse(v)
            if isinstance(v, str)
            else v
            for v in value
        ]

    @property
    def scheduled(self) -> bool:
        return not self.periods and self.span is None
