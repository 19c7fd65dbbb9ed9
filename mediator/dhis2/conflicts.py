"""DHIS2's conflict codes: the E76xx code of a conflict (its own ``errorCode`` from 2.37,
or the one 2.36's fixed text stands for) and the ids it names, in one vocabulary
whatever the version. Codes and texts: dhis2-core's ``ErrorCode.java`` and
``DataValueImportConflict`` (2.37+), and 2.36.13.2 ``DefaultDataValueSetService.java``.
"""

from __future__ import annotations

import re

from mediator.model.report import Conflict

# 2.36 has no error codes: its fixed texts, matched in this order (2.36.13.2
# ``DefaultDataValueSetService.java``).
TEXTS_236: list[tuple[str, str]] = [
    (r"^Data set not found or not accessible", "E7600"),
    (r"User does not have write access for DataSet", "E7601"),
    (r"A valid dataset is required", "E7602"),
    (r"^Org unit not found or not accessible", "E7603"),
    (r"^Attribute option combo not found or not accessible(?! for writing)", "E7604"),
    (r"Data element not found or not accessible", "E7610"),
    (r"Period not valid", "E7611"),
    (r"Organisation unit not found or not accessible", "E7612"),
    (r"Category option combo not found or not accessible", "E7613"),
    (r"Attribute option combo not found or not accessible for writing", "E7615"),
    (r"not in hierarchy of current user", "E7617"),
    (r"Data value or comment not specified", "E7618"),
    (r"must match data element type", "E7619"),
    (r"not a valid option of the data element option set", "E7621"),
    (r"User has no data write access for CategoryOption", "E7614"),  # E7616 reads the same
    (r"^Comment is greater than max length", "E7620"),
    (r"Category option combo is required", "E7630"),
    (r"Attribute option combo is required", "E7631"),
    (r"Period type of period", "E7632"),
    (r"is not part of dataset", "E7633"),
    (r"must be part of category combo of data element", "E7634"),
    (r"must be part of category combo of data sets of data element", "E7635"),
    (r"must be assigned through data sets to organisation unit", "E7636"),
    (r"^Stored by is greater than max length", "E7637"),
    (r"is not within date range of attribute option combo", "E7638"),
    (r"is not valid for attribute option combo", "E7639"),
    (r"past expiry days", "E7640"),
    (r"after latest open future period", "E7641"),
    (r"already approved", "E7642"),
    (r"is not open for this data set at this time", "E7643"),
    (r"does not conform to the open periods", "E7644"),
    (r"No data value for file resource exist", "E7645"),
]
_TEXTS_236 = [(re.compile(pattern), code) for pattern, code in TEXTS_236]


def conflict_ids(conflict: Conflict) -> dict[str, str]:
    """The ids a conflict names, in one vocabulary whatever the version."""
    found = dict(conflict.objects)
    if conflict.object and not found:
        found["object"] = conflict.object
    aliases = {"organisationUnit": "ou", "dataElement": "de", "period": "pe", "dataSet": "ds"}
    out = {aliases.get(k, k): v for k, v in found.items()}
    if "categoryOptionCombo" in found:
        key = "aoc" if conflict.property == "attributeOptionCombo" else "coc"
        out[key] = found["categoryOptionCombo"]
    return out


def conflict_code(conflict: Conflict) -> str | None:
    """E76xx: the conflict's own code (2.37+) or the one 2.36's text stands for."""
    if conflict.errorCode:
        return conflict.errorCode
    for pattern, code in _TEXTS_236:
        if pattern.search(conflict.value):
            return code
    return None


def object_kind(code: str) -> str:
    return {
        "E7600": "ds",
        "E7601": "ds",
        "E7603": "ou",
        "E7604": "aoc",
        "E7610": "de",
        "E7611": "pe",
        "E7612": "ou",
        "E7613": "coc",
        "E7615": "aoc",
        "E7617": "ou",
        "E7633": "de",
        "E7636": "ou",
    }.get(code, "ids")
