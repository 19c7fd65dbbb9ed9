#!/usr/bin/env bash
# One entry point for a fresh machine (Python 3.11, Node 20 with npm):
#   ./dev.sh demo [--keep]     install what the demo needs, then run it (the mediator's main job)
#   ./dev.sh test [PYTEST...]  install everything, then lint, type checks and the whole test suite
#   ./dev.sh install [demo|test|lint|console]   (default test: everything)
#   ./dev.sh lint | bench | screenshot [PATH]
# What each target installs, and where the logs and caches are: README, "Installing".
set -euo pipefail
cd "$(dirname "$0")"
PY=${PYTHON:-python3}

# devstack/install.py runs on the system Python (standard library only) and makes .venv
install() { "$PY" -m devstack.install "$@"; }

lint() {
  .venv/bin/ruff check mediator devstack tests benchmarks
  .venv/bin/ruff format --check mediator devstack tests benchmarks
  .venv/bin/mypy
}

case "${1:-}" in
  install) shift; install "${@:-test}" ;;
  demo)
    shift
    # --keep leaves the stack running and serves the OpenHIM console: build it too
    case " $* " in *" --keep "*) install demo console ;; *) install demo ;; esac
    exec .venv/bin/python -m mediator demo "$@" ;;
  test) shift; install test; lint; exec .venv/bin/python -m pytest "$@" ;;
  lint) install lint; lint ;;
  bench) shift; install demo; exec .venv/bin/python -m benchmarks.national "$@" ;;
  screenshot)
    shift; install test  # the console, Chromium and playwright (the test extra)
    exec .venv/bin/python -m devstack.openhim_console screenshot "$@" ;;
  *) echo "usage: ./dev.sh demo|test|install [demo|test|lint|console]|lint|bench|screenshot" >&2; exit 2 ;;
esac
