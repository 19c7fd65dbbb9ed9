"""Run orchestration: one run = periods × data sets, CHT read → engine → DHIS2.

Knows nothing of Flask or OpenHIM: callers pass a ``RunRequest`` and get a
``RunReport`` back.
"""

from __future__ import annotations

from pydantic import BaseModel, Field

from .config import RuntimeConfig
from .periods import Month
from .report import RunReport


class RunRequest(BaseModel):
    periods: list[Month] = Field(default_factory=list)  # empty: the previous completed month
    data_sets: list[str] = Field(default_factory=list)  # empty: the configured ones
    org_unit: str | None = None
    dry_run: bool | None = None  # None: the configured default
    trigger: str = "cli"  # cli | openhim | schedule


def execute(request: RunRequest, config: RuntimeConfig) -> RunReport:
    """Placeholder until the orchestration lands; the signature is the contract."""
    raise NotImplementedError
