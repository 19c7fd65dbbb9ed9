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

    def _from(self, firsts: dict[int, int]) -> bool:
        """True from the given first patch of each listed minor, and on every later minor.

        ``{38: 4, 39: 2}`` means 2.38.4+, 2.39.2+ and 2.40+ (minors below the first
        key never qualify).
        """
        if self.minor > max(firsts):
            return True
        first = firsts.get(self.minor)
        return first is not None and self.patch >= first

    @property
    def rejected_indexes(self) -> bool:
        # 2.39.2 and 2.40.1 ImportSummary.java: first tags with rejectedIndexes (grep per tag)
        return self._from({39: 2, 40: 1})

    @property
    def strict_dataset_options(self) -> bool:
        """strictDataSetApproval/Locking/InputPeriods options and settings exist from 2.39.1."""
        # 2.39.1 SettingKey.java:162-164 (DATA_IMPORT_STRICT_DATA_SET_*, default TRUE)
        return self.at_least(39, 1)

    @property
    def target_data_sets(self) -> bool:
        """2.39.1+: period checks run per target data set (``checkDataValueTargetDataSets``);
        before, against one "approval data set" (``ImportContext.getApprovalDataSet``)."""
        # 2.39.1 DataValueSetImportValidator.java (checkDataValueTargetDataSets);
        # 2.37.10 ImportContext.java:227-233 (getApprovalDataSet)
        return self.at_least(39, 1)

    @property
    def strict_elements_needs_dataset(self) -> bool:
        """strictDataElements without a dataSet aborts (E7602; 2.36 its legacy text) on
        2.36.*, 2.37.0-2.37.9, 2.38.0-2.38.3 and 2.39.0-2.39.1."""
        # 2.36.13.2 DVSS ("A valid dataset is required"); 2.38.3 VAL:207-214
        # (validateDataSetExistsStrictDataElements); gone in 2.37.10, 2.38.4, 2.39.2
        return not self._from({37: 10, 38: 4, 39: 2})

    @property
    def day_truncated_periods(self) -> bool:
        """expiryDays and dataInputPeriods compare whole days (DHIS2-14591) on 2.37.10,
        2.38.4+, 2.39.2+, 2.40+; before, exact instants."""
        # 2.37.10 DataSet.java:552-561, DataInputPeriod.java:98-101 (Period.isDateInTimeFrame)
        return self._from({37: 10, 38: 4, 39: 2})

    @property
    def expiry_after_end_day(self) -> bool:
        """2.42: open until period end + 1 day + expiryDays (a double), to the instant."""
        # 2.42.5.2 DataSet.java:140,458-469 (isDateWithTimeInTimeFrame, addDays(double))
        return self.minor >= 42

    @property
    def e7642_new_text(self) -> bool:
        # 2.39.0 ErrorCode.java E7642 "Data already approved ... org unit:"; 2.38.7 "Data is ..."
        return self.minor >= 39

    @property
    def user_uid_in_e7617(self) -> bool:
        # 2.37.0 DataValueSetImportValidator.java validateDataValueOrgUnitInUserHierarchy:
        # currentUser.getUid(); 2.36 prints the username in its text instead
        return self.minor >= 37

    @property
    def lock_exception_needs_capture(self) -> bool:
        """POST /api/lockExceptions checks the caller's capture org units (``canCapture``)."""
        # 2.38.4, 2.39.2, 2.40.0 LockExceptionController.java (canCapture; grep per tag)
        return self._from({38: 4, 39: 2})

    @property
    def me_top_level_username(self) -> bool:
        """``username`` is a property of /api/me from 2.38 (MeDto); 2.36/2.37 serialise the
        User, whose getUsername() has no @JsonProperty (only ``userCredentials.username``)."""
        # 2.36.13.2 User.java:300 (no @JsonProperty); 2.38.0 MeDto.java:59,108
        return self.minor >= 38

    @property
    def me_user_credentials(self) -> bool:
        """``userCredentials`` in /api/me up to 2.41; 2.42's MeDto has none."""
        # 2.41.0 MeDto.java:189-190 (setUserCredentials); absent in 2.42.0 MeDto.java
        return self.minor <= 41

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
        """2.36.7+: "0" on a zero-insignificant element deletes an existing value;
        2.36.0-2.36.6 skip it first and keep the old value."""
        # 2.36.0 DVSS:1233-1238 (skip); 2.36.13.2 DVSS:1395-1400 (commit 9925fc9a539)
        return self.minor >= 37 or self.patch >= 7

    @property
    def delete_needs_value(self) -> bool:
        """2.36.0-2.36.6 apply "value or comment required" (E7618) to importStrategy=DELETE."""
        # 2.36.6 DVSS: isNullValue check without !strategy.isDelete(); added in 2.36.7
        return self.minor == 36 and self.patch <= 6

    @property
    def double_expiry_days(self) -> bool:
        # 2.42.5.2 DataSet.java:140 (private double expiryDays); int before
        return self.minor >= 42

    @property
    def settings_404(self) -> str | None:
        """GET /api/systemSettings/{unknown}: 2.36-2.40 answer ``{key: ""}``; 2.41 and
        2.42 answer 404 with these texts."""
        # 2.41.9.1 SystemSettingController.java:91-92,217-219; 2.42.5.2
        # SystemSettingsController.java checkKeyExists "Setting does not exist: "
        if self.minor == 41:
            return "Setting does not exist or is marked as confidential"
        if self.minor >= 42:
            return "Setting does not exist: "
        return None

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
