"""The package layout keeps its rules (``docs/architecture.md``).

Each package of ``mediator/`` says in its ``__init__`` docstring what it may import, in
two lines the checker below reads:

    May import: mediator.model, mediator.settings
    Outside the standard library: pydantic

Every import of every module is checked against its package's lines (imports inside
functions too: a lazy import is still a dependency). Beside those lines, the house
rules hold whatever a docstring says: the engine imports no peer and no framework,
the peers (cht, dhis2, openhim) import no other peer, only ``mediator.service`` imports
Flask, and nothing imports ``devstack`` except the demo command's lazy import.

Sizes: a module over 450 lines, a class over 300 or a function over 60 carries a
comment that begins with ``long:`` saying why (at the top of the module, or on the
lines just above the definition).
"""

from __future__ import annotations

import ast
import re
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[2] / "mediator"
STDLIB = set(sys.stdlib_module_names) | {"__future__"}
PEERS = ("mediator.cht", "mediator.dhis2", "mediator.openhim")
FRAMEWORKS = {"flask", "werkzeug", "jinja2", "apscheduler", "requests"}
MODULE_LINES, CLASS_LINES, FUNCTION_LINES = 450, 300, 60


@dataclass(frozen=True)
class Rules:
    package: str  # mediator.engine
    internal: frozenset[str]  # mediator packages it may import, besides itself
    external: frozenset[str]  # distributions outside the standard library


@dataclass(frozen=True)
class Import:
    module: str  # the importing module, mediator.engine.aggregation
    target: str  # what it imports, absolute: mediator.cht.client, orjson
    line: int
    lazy: bool  # inside a function


def _listed(docstring: str, label: str) -> frozenset[str]:
    """The comma-separated names after ``label:``, up to a blank line or the next label."""
    lines = docstring.splitlines()
    start = next((i for i, line in enumerate(lines) if line.startswith(f"{label}:")), None)
    if start is None:
        raise AssertionError(f"no '{label}:' line")
    text = lines[start].removeprefix(f"{label}:")
    for line in lines[start + 1 :]:
        if not line.strip() or re.match(r"^[A-Z][\w ]*:", line):
            break
        text += "," + line
    words = [w.strip(" .") for w in text.split(",")]
    return frozenset(w for w in words if w and w != "nothing")


def rules_of(package_dir: Path) -> Rules:
    """The two lines of a package's ``__init__`` docstring."""
    init = package_dir / "__init__.py"
    docstring = ast.get_docstring(ast.parse(init.read_text())) or ""
    name = "mediator." + package_dir.name
    try:
        return Rules(
            name,
            _listed(docstring, "May import"),
            _listed(docstring, "Outside the standard library"),
        )
    except AssertionError as exc:
        raise AssertionError(f"{init}: {exc}") from None


def imports_of(module: str, source: str) -> list[Import]:
    """Every import in ``source``, relative ones made absolute."""
    found: list[Import] = []
    package = module.rsplit(".", 1)[0]

    def visit(node: ast.AST, lazy: bool) -> None:
        for child in ast.iter_child_nodes(node):
            inner = lazy or isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef)
            if isinstance(child, ast.Import):
                found.extend(Import(module, a.name, child.lineno, lazy) for a in child.names)
            elif isinstance(child, ast.ImportFrom):
                if child.level:
                    base = package.split(".")[: len(package.split(".")) - child.level + 1]
                    stem = ".".join(base)
                    target = f"{stem}.{child.module}" if child.module else stem
                    if not child.module:  # from . import rules: each name is a module
                        found.extend(
                            Import(module, f"{stem}.{a.name}", child.lineno, lazy)
                            for a in child.names
                        )
                        continue
                else:
                    target = child.module or ""
                found.append(Import(module, target, child.lineno, lazy))
            visit(child, inner)

    visit(ast.parse(source), False)
    return found


def _package_of(target: str) -> str:
    """mediator.cht.client -> mediator.cht; mediator.__main__ -> mediator; orjson.x -> orjson."""
    parts = target.split(".")
    if parts[0] != "mediator":
        return parts[0]
    return ".".join(parts[:2]) if len(parts) > 1 and (PACKAGE / parts[1]).is_dir() else "mediator"


def violations(module: str, source: str, rules: Rules | None) -> list[str]:
    """What in ``source`` breaks its package's rules or the house rules."""
    problems = []
    home = _package_of(module)
    for imp in imports_of(module, source):
        where = f"{module}:{imp.line} imports {imp.target}"
        top = imp.target.split(".")[0]
        target_pkg = _package_of(imp.target)
        if top == "devstack":
            if not (module == "mediator.cli.commands" and imp.lazy):
                problems.append(f"{where}: only the demo command may import devstack, lazily")
            continue
        if home == "mediator.engine" and (
            target_pkg in PEERS or target_pkg in ("mediator.http", "mediator.run")
        ):
            problems.append(f"{where}: the engine imports no peer, no HTTP, no run")
        if home == "mediator.engine" and top in FRAMEWORKS:
            problems.append(f"{where}: the engine imports no framework")
        if home in PEERS and target_pkg in PEERS and target_pkg != home:
            problems.append(f"{where}: a peer imports no other peer")
        if top in ("flask", "werkzeug") and home != "mediator.service":
            problems.append(f"{where}: only mediator.service imports Flask")
        if rules is None or top in STDLIB:
            continue
        if top == "mediator":
            if target_pkg not in (home, "mediator") and target_pkg not in rules.internal:
                problems.append(f"{where}: {home} may import {_shown(rules.internal)}")
        elif top not in rules.external:
            problems.append(
                f"{where}: outside the standard library {home} may use {_shown(rules.external)}"
            )
    return problems


def _shown(names: frozenset[str]) -> str:
    return ", ".join(sorted(names)) or "nothing"


def _modules() -> list[tuple[str, Path]]:
    out = []
    for path in sorted(PACKAGE.rglob("*.py")):
        rel = path.relative_to(PACKAGE.parent).with_suffix("")
        parts = list(rel.parts)
        if parts[-1] == "__init__":
            parts.pop()
        out.append((".".join(parts), path))
    return out


def _packages() -> list[Path]:
    return sorted(p for p in PACKAGE.iterdir() if (p / "__init__.py").is_file())


def test_every_package_says_what_it_is_for_and_may_import() -> None:
    assert len(_packages()) >= 8
    for package in _packages():
        docstring = ast.get_docstring(ast.parse((package / "__init__.py").read_text())) or ""
        first = docstring.splitlines()[0] if docstring else ""
        assert len(first) > 20, f"{package}/__init__.py: say in a line what the package is for"
        rules_of(package)  # both lines present


def test_every_module_keeps_its_package_rules() -> None:
    rules = {r.package: r for r in map(rules_of, _packages())}
    problems = []
    for module, path in _modules():
        problems += violations(module, path.read_text(), rules.get(_package_of(module)))
    assert problems == []


def test_the_rules_catch_the_engine_reading_cht() -> None:
    """The checker is not vacuous: an engine that reads CHT itself, a peer calling
    another, Flask below the service, devstack imported at start-up all fail."""
    engine = rules_of(PACKAGE / "engine")
    cases = {
        ("mediator.engine.aggregation", "from mediator.cht.client import ChtReader\n"): engine,
        ("mediator.engine.aggregation", "from ..cht import client\n"): engine,
        ("mediator.engine.aggregation", "def f():\n    import requests\n"): engine,
        ("mediator.dhis2.client", "from mediator.openhim.client import OpenhimClient\n"): (
            rules_of(PACKAGE / "dhis2")
        ),
        ("mediator.run.pipeline", "from flask import Flask\n"): rules_of(PACKAGE / "run"),
        ("mediator.cli.commands", "from devstack.demo import run_demo\n"): None,
    }
    for (module, source), rules in cases.items():
        assert violations(module, source, rules), f"{module}: {source!r} was allowed"
    # and what is allowed stays allowed
    assert (
        violations("mediator.cli.commands", "def demo():\n    from devstack.demo import x\n", None)
        == []
    )
    assert violations("mediator.engine.aggregation", "from .mapping import x\n", engine) == []


# -- sizes ---------------------------------------------------------------------------


def _reasoned(lines: list[str], first: int) -> bool:
    """A ``# long:`` comment in the block of comments just above line ``first`` (1-based,
    the definition or its first decorator)."""
    index = first - 2
    while index >= 0 and lines[index].lstrip().startswith("#"):
        if lines[index].lstrip().startswith("# long:"):
            return True
        index -= 1
    return False


def oversized(source: str, name: str) -> list[str]:
    lines = source.splitlines()
    found = []
    if len(lines) > MODULE_LINES and not any(line.startswith("# long:") for line in lines[:40]):
        found.append(f"{name}: {len(lines)} lines (> {MODULE_LINES}) without a '# long:' reason")
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef):
            limit = CLASS_LINES if isinstance(node, ast.ClassDef) else FUNCTION_LINES
            size = (node.end_lineno or node.lineno) - node.lineno + 1
            first = min([node.lineno, *(d.lineno for d in node.decorator_list)])
            if size > limit and not _reasoned(lines, first):
                found.append(f"{name}:{node.lineno} {node.name}: {size} lines (> {limit})")
    return found


def test_no_module_class_or_function_over_its_size_without_a_reason() -> None:
    found = []
    for module, path in _modules():
        found += oversized(path.read_text(), module)
    assert found == []


@pytest.mark.parametrize(
    ("source", "flagged"),
    [
        ("def f():\n" + "    x = 1\n" * 70, True),
        ("# long: one loop, hot\ndef f():\n" + "    x = 1\n" * 70, False),
        ("# a reason without the word\ndef f():\n" + "    x = 1\n" * 70, True),
        ("x = 1\n" * 451, True),
        ("# long: a table of words\n" + "x = 1\n" * 451, False),
    ],
)
def test_the_size_check_reads_long_comments(source: str, flagged: bool) -> None:
    assert bool(oversized(source, "m")) is flagged
