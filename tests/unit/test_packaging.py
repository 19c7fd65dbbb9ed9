"""Installing prints nothing to worry an operator: setuptools deprecated ``project.license``
as a table (a warning printed three times per install); an SPDX string needs setuptools 77
(``setuptools/config/_apply_pyprojecttoml.py``, 77.0.0: "license" as a string)."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

PYPROJECT = Path(__file__).resolve().parents[2] / "pyproject.toml"


def test_the_license_is_an_spdx_string_and_the_build_uses_a_setuptools_that_reads_it():
    project = tomllib.loads(PYPROJECT.read_text())
    assert project["project"]["license"] == "AGPL-3.0-or-later"
    (setuptools,) = [r for r in project["build-system"]["requires"] if r.startswith("setuptools")]
    found = re.match(r"setuptools>=(\d+)", setuptools)
    assert found is not None and int(found.group(1)) >= 77
