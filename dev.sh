#!/usr/bin/env bash
# One entry point for a fresh machine (Python 3.11, Node 20 with npm):
#   ./dev.sh demo   install everything, then run the demo (the mediator's main job)
#   ./dev.sh test   install everything, then run the whole test suite
#   ./dev.sh install | lint | bench
set -euo pipefail
cd "$(dirname "$0")"
PY=${PYTHON:-python3}

install() {
  if [ ! -x .venv/bin/python ]; then
    "$PY" -m venv .venv
  fi
  # the stamp keeps repeat runs fast; it changes when pyproject.toml or package-lock.json change
  local stamp
  stamp=$(cat pyproject.toml package-lock.json | sha256sum | cut -c1-16)
  if [ "$(cat .venv/.installed 2>/dev/null)" != "$stamp" ] || [ ! -x node_modules/.bin/pouchdb-server ]; then
    .venv/bin/python -m pip install --quiet --upgrade pip
    .venv/bin/python -m pip install --quiet -e '.[test]'
    npm ci --no-audit --no-fund --loglevel=error
    echo "$stamp" > .venv/.installed
  fi
}

case "${1:-}" in
  install) install ;;
  demo) install; shift; exec .venv/bin/python -m mediator demo "$@" ;;
  test)
    install; shift
    .venv/bin/ruff check mediator devstack tests benchmarks
    .venv/bin/ruff format --check mediator devstack tests benchmarks
    .venv/bin/mypy
    exec .venv/bin/python -m pytest "$@" ;;
  lint) install; .venv/bin/ruff check mediator devstack tests benchmarks; .venv/bin/ruff format --check mediator devstack tests benchmarks; .venv/bin/mypy ;;
  bench) install; shift; exec .venv/bin/python -m benchmarks.national "$@" ;;
  *) echo "usage: ./dev.sh demo|test|install|lint|bench" >&2; exit 2 ;;
esac
