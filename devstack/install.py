"""``python3 -m devstack.install TARGET...``: what ``./dev.sh`` installs, and only that.

Targets (several may be named; their steps are merged):

- ``demo``: the Python environment with the ``demo`` extra, the npm packages
  (pouchdb-server) and the OpenHIM core build;
- ``console``: the OpenHIM console build (``demo --keep`` serves it);
- ``test``: the ``test`` extra, npm, core, console and Debian's Chromium;
- ``lint``: the Python environment with the ``test`` extra (ruff, mypy) only.

Independent steps run side by side; each prints one line when done, with how long it
took (or ``cached``). What pip, npm and apt-get print goes to
``.cache/install/<step>.log``; a step that fails prints its log's tail and path, and
the install exits 1 once every step has ended. Chromium never fails an install: when
it cannot be installed the browser tests skip (and fail under ``CI=true``).

Standard library only: it runs before ``.venv`` exists.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from devstack import vendor

ROOT = Path(__file__).resolve().parent.parent
TAIL_LINES = 40


class StepFailed(Exception):
    """A step's command failed; the message is the line an operator reads."""


@dataclass
class Context:
    root: Path  # the checkout: .venv, node_modules and .cache/install/ live here
    extra: str  # the Python extra the targets need

    @property
    def logs(self) -> Path:
        return self.root / ".cache" / "install"


def _run(command: list[str], log: IO[str], cwd: Path, env: dict[str, str] | None = None) -> None:
    print(f"$ {' '.join(command)}", file=log, flush=True)
    try:
        code = subprocess.run(
            command, cwd=cwd, stdout=log, stderr=subprocess.STDOUT, env=env
        ).returncode
    except OSError as exc:
        raise StepFailed(f"{command[0]}: {exc.strerror}") from None
    if code != 0:
        raise StepFailed(f"{' '.join(command[:4])} exited {code}")


def _digest(*paths: Path) -> str:
    h = hashlib.sha256()
    for path in paths:
        h.update(path.read_bytes() if path.exists() else b"")
    return h.hexdigest()[:16]


# --- the steps: each returns "" when it did its work, or why it did none ------------

# an extra that installs another's packages too
COVERS = {"test": {"test", "demo"}, "demo": {"demo"}}


def python_env(ctx: Context, log: IO[str]) -> str:
    """``.venv`` with the project editable and the extra; reinstalled when
    pyproject.toml changes or the extra is not one the venv already covers."""
    venv = ctx.root / ".venv"
    stamp_file = venv / ".installed"
    files = _digest(ctx.root / "pyproject.toml")
    try:
        stamp = json.loads(stamp_file.read_text())
    except (OSError, ValueError):
        stamp = {}
    if not isinstance(stamp, dict):  # the bare hash the shell install wrote before
        stamp = {}
    python = venv / "bin" / "python"
    if (
        python.exists()
        and stamp.get("pyproject") == files
        and ctx.extra in COVERS.get(stamp.get("extra", ""), set())
    ):
        return "cached"
    if not python.exists():
        _run([os.environ.get("PYTHON", sys.executable), "-m", "venv", str(venv)], log, ctx.root)
    env = {**os.environ, "PIP_DISABLE_PIP_VERSION_CHECK": "1"}
    _run([str(python), "-m", "pip", "install", "-e", f".[{ctx.extra}]"], log, ctx.root, env)
    stamp_file.write_text(json.dumps({"pyproject": files, "extra": ctx.extra}))
    return ""


def npm_packages(ctx: Context, log: IO[str]) -> str:
    """node_modules from package-lock.json: pouchdb-server. Install scripts are
    skipped: leveldown loads its bundled prebuild, and sqlite3 (pouchdb-server's
    optional websql adapter, never used here) would otherwise compile for minutes."""
    modules = ctx.root / "node_modules"
    stamp_file = modules / ".installed"
    files = _digest(ctx.root / "package.json", ctx.root / "package-lock.json")
    pouchdb = modules / ".bin" / "pouchdb-server"
    if pouchdb.exists() and stamp_file.exists() and stamp_file.read_text() == files:
        return "cached"
    command = ["npm", "ci", "--ignore-scripts", "--no-audit", "--no-fund", "--loglevel=error"]
    _run(command, log, ctx.root)
    stamp_file.write_text(files)
    return ""


def _vendored(
    release: vendor.Release, build: Callable[[Path, IO[str] | None], None]
) -> Callable[[Context, IO[str]], str]:
    def step(ctx: Context, log: IO[str]) -> str:
        try:
            folder, built = vendor.ensure(release, build, log)
        except SystemExit as exc:  # vendor's one-line reasons (npm failed, bad archive...)
            raise StepFailed(str(exc)) from None
        print(f"{'built' if built else 'already built'} in {folder}", file=log)
        return "" if built else "cached"

    return step


def core(ctx: Context, log: IO[str]) -> str:
    return _vendored(vendor.CORE, vendor.build_core)(ctx, log)


def console(ctx: Context, log: IO[str]) -> str:
    return _vendored(vendor.CONSOLE, vendor.build_console)(ctx, log)


def chromium(ctx: Context, log: IO[str]) -> str:
    """Debian's chromium, for the browser tests and screenshots; never fails."""
    path = os.environ.get("CHROMIUM_PATH", "/usr/bin/chromium")
    if os.path.exists(path):
        return f"present ({path})"
    if os.geteuid() != 0 or shutil.which("apt-get") is None:
        return (
            f"{path} is missing and cannot be installed here (needs root and apt-get): "
            "the browser tests skip (fail under CI=true)"
        )
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    try:
        _run(["apt-get", "update", "-qq"], log, ctx.root, env)
        _run(["apt-get", "install", "-y", "-qq", "chromium"], log, ctx.root, env)
    except StepFailed as exc:
        return f"not installed ({exc}): the browser tests skip (fail under CI=true)"
    if not os.path.exists(path):
        return f"apt-get installed chromium but {path} is still missing (CHROMIUM_PATH?)"
    return ""


@dataclass(frozen=True)
class Step:
    name: str  # log file name
    label: str  # what the done line says
    run: Callable[[Context, IO[str]], str]


def steps_for(targets: list[str]) -> tuple[list[Step], str]:
    """The steps and the Python extra that the targets need."""
    extra = "test" if {"test", "lint"} & set(targets) else "demo"
    python = Step("python-env", f"python env (.venv, pip install -e .[{extra}])", python_env)
    npm_step = Step("npm", "npm packages (npm ci: pouchdb-server)", npm_packages)
    core_step = Step("core", f"OpenHIM core build ({vendor.CORE.name})", core)
    console_step = Step("console", f"OpenHIM console build ({vendor.CONSOLE.name})", console)
    chromium_step = Step("chromium", "chromium (browser tests)", chromium)
    wanted: dict[str, Step] = {}
    for target in targets:
        if target == "lint":
            chosen = [python]
        elif target == "demo":
            chosen = [python, npm_step, core_step]
        elif target == "console":
            chosen = [core_step, console_step]
        else:  # test
            chosen = [python, npm_step, core_step, console_step, chromium_step]
        wanted.update({s.name: s for s in chosen})
    return list(wanted.values()), extra


TARGETS = ("demo", "test", "lint", "console")
WIDTH = 52


def _tail(path: Path) -> str:
    try:
        lines = path.read_text(errors="replace").splitlines()
    except OSError:
        return ""
    return "\n".join("    " + line for line in lines[-TAIL_LINES:])


def install(targets: list[str], root: Path = ROOT, out: IO[str] | None = None) -> int:
    """Run the targets' steps side by side; 0 when all succeeded, else 1."""
    out = out or sys.stdout
    steps, extra = steps_for(targets)
    ctx = Context(root=root, extra=extra)
    ctx.logs.mkdir(parents=True, exist_ok=True)
    printing = threading.Lock()
    failures: list[tuple[Step, str, Path]] = []
    started = time.monotonic()

    def say(text: str) -> None:
        with printing:
            print(text, file=out, flush=True)

    def one(step: Step) -> None:
        log_path = ctx.logs / f"{step.name}.log"
        begun = time.monotonic()
        try:
            with open(log_path, "w") as log:
                note = step.run(ctx, log)
        except StepFailed as exc:
            failures.append((step, str(exc), log_path))
            say(f"  {step.label:<{WIDTH}} FAILED after {time.monotonic() - begun:.1f} s")
            return
        took = f"{time.monotonic() - begun:6.1f} s"
        say(f"  {step.label:<{WIDTH}} {note or took}")

    say(f"installing for {' + '.join(targets)} (logs in {ctx.logs}/)")
    with ThreadPoolExecutor(max_workers=len(steps)) as pool:
        for future in [pool.submit(one, step) for step in steps]:
            future.result()
    for step, reason, log_path in failures:
        say(f"\n{step.label} failed: {reason}\n--- last lines of {log_path}:")
        say(_tail(log_path))
        say(f"--- full log: {log_path}")
    if failures:
        say(f"install failed ({len(failures)} step(s)); see the log(s) above")
        return 1
    say(f"  {'installed':<{WIDTH}} {time.monotonic() - started:6.1f} s")
    return 0


def main(argv: list[str]) -> int:
    targets = argv or ["test"]
    unknown = [t for t in targets if t not in TARGETS]
    if unknown:
        print(
            f"devstack.install: unknown target {unknown[0]!r} (choose from {', '.join(TARGETS)})",
            file=sys.stderr,
        )
        return 2
    return install(targets)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
