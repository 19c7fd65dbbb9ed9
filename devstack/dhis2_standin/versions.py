"""Which DHIS2 release the stand-in imitates, and every behaviour that hangs on it.

All version-dependent choices live here so the rest of the stand-in asks one
question ("does this release wrap the body?") instead of comparing numbers.
Sources: dhis2.md §0 (version table), §2.3 (message variants), §3 (auth).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

SUPPORTED_MINORS = range(36, 43)


@dataclass(frozen=True)
class Dhis2Version:
    """A parsed ``2.<minor>.<patch>[.<hotfix>]`` version string.

    ``ignore_unchanged`` overrides the DHIS2-15254 boundary (identical re-post
    counted ``ignored`` instead of ``updated``) when a test wants to pin it.
    """

    raw: str
    minor: int
    patch: int = 0
    hotfix: int = 0
    ignore_unchanged_override: bool | None = None

    @classmethod
    def parse(cls, raw: str, ignore_unchanged: bool | None = None) -> Dhis2Version:
        core = re.split(r"[-_]", raw.strip(), maxsplit=1)[0]
        parts = [int(p) for p in core.split(".") if p.isdigit()]
        if len(parts) < 2 or parts[0] != 2 or parts[1] not in SUPPORTED_MINORS:
            raise ValueError(f"unsupported DHIS2 version {raw!r}: use 2.36 .. 2.42")
        patch = parts[2] if len(parts) > 2 else 0
        hotfix = parts[3] if len(parts) > 3 else 0
        return cls(raw.strip(), parts[1], patch, hotfix, ignore_unchanged)

    def at_least(self, minor: int, patch: int = 0) -> bool:
        return (self.minor, self.patch) >= (minor, patch)

    # -- response shape ---------------------------------------------------

    def plain_import_response(self, path_api_version: int | None) -> bool:
        """Bare ImportSummary instead of a WebMessage for a sync import.

        2.36 never wraps. 2.37-2.41 use ``withPlainResponseBefore(V38)`` with the
        default API version V37 (2.37) or V38 (2.38+); 2.42 always wraps.
        """
        if self.minor == 36:
            return True
        if self.minor >= 42:
            return False
        api = path_api_version if path_api_version is not None else (37 if self.minor == 37 else 38)
        return api < 38

    @property
    def extended_conflicts(self) -> bool:
        return self.minor >= 37

    @property
    def rejected_indexes(self) -> bool:
        return self.minor >= 41

    @property
    def strict_dataset_options(self) -> bool:
        """strictDataSetApproval/Locking/InputPeriods exist from 2.39.3 and 2.40."""
        return self.at_least(39, 3)

    @property
    def all_target_datasets_must_pass(self) -> bool:
        """Since 2.39.3/2.40 every data set of the element must allow input (DHIS2-7836)."""
        return self.at_least(39, 3)

    @property
    def strict_elements_needs_dataset(self) -> bool:
        """2.37 - 2.39.2 abort with E7602 when strictDataElements has no dataSet."""
        return self.minor >= 37 and not self.at_least(39, 3)

    # -- counting ---------------------------------------------------------

    @property
    def ignore_unchanged(self) -> bool:
        """DHIS2-15254: 2.38.6, 2.39.5, 2.40.3 and 2.41.0 count identical re-posts as ignored."""
        if self.ignore_unchanged_override is not None:
            return self.ignore_unchanged_override
        if self.minor >= 41:
            return True
        return {38: 6, 39: 5, 40: 3}.get(self.minor, 10**6) <= self.patch

    @property
    def zero_deletes_existing(self) -> bool:
        """2.37+: "0" on a zero-insignificant element deletes; 2.36 keeps the old value."""
        return self.minor >= 37

    @property
    def delete_needs_value(self) -> bool:
        """2.36 still applies "value or comment required" to importStrategy=DELETE."""
        return self.minor == 36

    @property
    def honours_payload_dates(self) -> bool:
        """created/lastUpdated in the payload are ignored from 2.41 (DHIS2-8084)."""
        return self.minor <= 40

    @property
    def completion_ignores_dry_run(self) -> bool:
        """2.41 registers completeDate even on dryRun (source reading)."""
        return self.minor >= 41

    @property
    def iso_dash_daily(self) -> bool:
        """``yyyy-MM-dd`` is a Daily period from 2.41."""
        return self.minor >= 41

    # -- message variants -------------------------------------------------

    @property
    def e7619_new_text(self) -> bool:
        return self.at_least(39, 1)

    @property
    def e7641_new_text(self) -> bool:
        return self.at_least(39, 1)

    @property
    def e7633_plural(self) -> bool:
        return self.at_least(39, 2)

    # -- async ------------------------------------------------------------

    def job_name(self, epoch_ms: int) -> str:
        return "dataValueImport" if self.minor <= 40 else f"DATAVALUE_IMPORT ({epoch_ms})"

    @property
    def initial_job_status(self) -> str:
        """JobConfiguration's default status: SCHEDULED up to 2.40, NOT_STARTED in 2.41+."""
        return "SCHEDULED" if self.minor <= 40 else "NOT_STARTED"

    @property
    def job_response_type(self) -> str | None:
        return "JobConfigurationWebMessageResponse" if self.minor >= 42 else None

    # -- auth and errors --------------------------------------------------

    @property
    def login_path(self) -> str:
        return "/dhis-web-commons/security/login.action" if self.minor <= 40 else "/dhis-web-login/"

    @property
    def api_tokens(self) -> bool:
        return self.minor >= 37

    @property
    def checks_token_checksum(self) -> bool:
        return self.minor >= 41

    @property
    def access_denied_message(self) -> str:
        return "Access Denied" if self.minor >= 42 else "Access is denied"

    @property
    def not_found_error_code(self) -> str | None:
        return "E1005" if self.minor >= 41 else None
