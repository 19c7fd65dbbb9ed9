"""The operator guide's troubleshooting table is the mediator's own explanations."""

from __future__ import annotations

import re
from pathlib import Path

from mediator.run.diagnoses import troubleshooting_table
from mediator.run.wording import CHT, CONFLICTS, ERRORS, FINDINGS

GUIDE = Path(__file__).resolve().parents[2] / "docs" / "operator-guide.md"


def test_the_troubleshooting_table_is_generated_from_the_diagnoses():
    text = GUIDE.read_text()
    table = re.search(
        r"<!-- troubleshooting table: .*? -->\n(.*)<!-- end of troubleshooting table -->",
        text,
        re.S,
    )
    assert table, "the guide lost its troubleshooting table markers"
    assert table.group(1) == troubleshooting_table(), (
        "docs/operator-guide.md is out of date: paste "
        "mediator.run.diagnoses.troubleshooting_table()"
    )


def test_every_kind_of_problem_is_in_the_guide():
    text = GUIDE.read_text()
    for table in (CONFLICTS, FINDINGS, ERRORS, CHT):
        for explain in table.values():
            assert explain.title in text
