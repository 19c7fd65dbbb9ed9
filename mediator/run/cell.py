"""One DHIS2 cell, as ``explain`` and ``GET /explain`` are asked for it, checked once:
``RunRequest``'s own checks and limits for the period, data set and org unit (one of
each), and the data element and category option combo."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from mediator.model.values import is_uid

from .request import CLI_NAMES, MAX_VALUE_CHARS, RunInputError, RunRequest


@dataclass(frozen=True)
class CellAsk:
    """One DHIS2 cell, as asked: the run's scope (one data set, period and org unit)
    and the data element, with a category option combo or all of the element's."""

    request: RunRequest
    data_element: str | None  # None: every data element the data set maps (the page's)
    category_option_combo: str | None = None

    @property
    def data_set(self) -> str:
        return self.request.data_sets[0]

    @property
    def org_unit(self) -> str:
        assert self.request.org_unit is not None
        return self.request.org_unit

    @classmethod
    def from_fields(
        cls,
        fields: Mapping[str, Any],
        *,
        names: Mapping[str, str] = CLI_NAMES,
        trigger: str = "cli",
        dhis2_ids: bool = True,
        every_element: bool = False,
    ) -> CellAsk:
        """The cell from what a caller typed: ``RunRequest.from_fields``'s fields and
        checks (``period``, ``dataSet``, ``orgUnit``) and ``dataElement``,
        ``categoryOptionCombo``; one period, one data set, one org unit.
        ``every_element``: without ``dataElement``, every element (the explain page)."""
        fields = dict(fields)
        element: str | None = None
        if not every_element or fields.get("dataElement") is not None:
            element = _one(fields.pop("dataElement", None), names.get("dataElement", "dataElement"))
        fields.pop("dataElement", None)
        coc = fields.pop("categoryOptionCombo", None)
        coc_name = names.get("categoryOptionCombo", "categoryOptionCombo")
        coc = _one(coc, coc_name) if coc is not None else None
        for name in ("from", "to"):
            if name in fields:
                raise RunInputError(
                    f"explain is of one period: give {names['period']}, not {names[name]}"
                )
        request = RunRequest.from_fields(fields, names=names, trigger=trigger, dhis2_ids=dhis2_ids)
        if len(request.periods) != 1:
            raise RunInputError(f"explain is of one period: give {names['period']} once")
        if len(request.data_sets) != 1:
            raise RunInputError(f"explain is of one data set: give {names['dataSet']} once")
        if request.org_unit is None:
            raise RunInputError(f"explain is of one org unit: give {names['orgUnit']}")
        if dhis2_ids:
            for text, name in ((element, "dataElement"), (coc, "categoryOptionCombo")):
                if text is not None and not is_uid(text):
                    raise RunInputError(
                        f"{names.get(name, name)} {text!r} is not a DHIS2 id "
                        "(11 letters/digits, starting with a letter)"
                    )
        return cls(request, element, coc)


def _one(value: Any, name: str) -> str:
    if isinstance(value, list):
        if len(value) != 1:
            raise RunInputError(f"give {name} once")
        value = value[0]
    if not isinstance(value, str) or not value.strip():
        raise RunInputError(f"{name} is required: the id of the cell's DHIS2 data element")
    if len(value) > MAX_VALUE_CHARS:
        raise RunInputError(f"{name} is longer than any DHIS2 id")
    return value.strip()
