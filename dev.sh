#!/usr/bin/env bash
# One entry point for a fresh machine (Python 3.11, Node 20 with npm):
#   ./dev.sh demo   install everything, then run the demo (the mediator's main job)
#   ./dev.sh test   install everything, then run the whole test suite
#   ./dev.sh install | lint | bench
set -euo pipefail
cd "$(dirname "$0")"
PY=${PYTHON:-python3}

# the status page's browser test drives Debian's Chromium (Playwright never downloads one)
install_chromium() {
  [ -x /usr/bin/chromium ] && return 0
  if [ "$(id -u)" -ne 0 ] || ! command -v apt-get >/dev/null; then
    echo "dev.sh: /usr/bin/chromium is missing and cannot be installed here (needs root and apt-get);" \
      "install Debian's chromium package, or the browser test skips (and fails under CI=true)" >&2
    return 0
  fi
  echo "dev.sh: installing Debian's chromium for the status page's browser test..."
  if ! { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; }; then
    echo "dev.sh: could not install chromium with apt-get; the browser test will skip (fail under CI=true)" >&2
  fi
}

install() {
  install_chromium
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
  # the real OpenHIM core 8.5.0 and console 1.18.2, built once per release archive
  # into .cache/ (git-ignored); a no-op when already built
  .venv/bin/python -m devstack.openhim_core install >/dev/null
  .venv/bin/python -m devstack.openhim_console install >/dev/null
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
