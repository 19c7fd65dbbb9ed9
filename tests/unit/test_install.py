"""What ``./dev.sh demo`` and ``./dev.sh test`` install (devstack/install.py), with fake
``npm``, ``node``, ``apt-get`` and Python on PATH that write down how they were called:
no venv is made, nothing is downloaded, and caches and logs live in ``tmp_path``."""

from __future__ import annotations

import dataclasses
import io
import os
import subprocess
import sys
import tarfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from devstack import install, vendor

ROOT = Path(__file__).resolve().parents[2]

FAKE_NPM = """#!/bin/sh
echo "npm $* @ $PWD" >> "$CALLS"
if [ -n "$FAIL_NPM" ]; then echo "npm ERR! code ENOTFOUND registry.npmjs.org"; exit 1; fi
case "$1 $2" in
  "ci "*) mkdir -p node_modules/.bin node_modules/ssl-root-cas
          touch node_modules/.bin/pouchdb-server node_modules/ssl-root-cas/ssl-root-cas.js ;;
  "run build") mkdir -p lib && touch lib/server.js ;;
  "install "*) mkdir -p dist && touch dist/index.html ;;
esac
"""
FAKE_PYTHON = """#!/bin/sh
# only `-m venv DIR`: a venv whose python writes down its pip calls
echo "python $*" >> "$CALLS"
mkdir -p "$3/bin"
printf '#!/bin/sh\\necho "venv-python $*" >> "$CALLS"\\n' > "$3/bin/python"
chmod +x "$3/bin/python"
"""
FAKES = {
    "npm": FAKE_NPM,
    "node": "#!/bin/sh\necho v20.19.0\n",
    "apt-get": '#!/bin/sh\necho "apt-get $*" >> "$CALLS"\n',
    "python": FAKE_PYTHON,
}


@pytest.fixture
def checkout(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A checkout's install files in tmp_path, fakes first on PATH, a cache and
    fake release archives of its own."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for name, text in FAKES.items():
        (bin_dir / name).write_text(text)
        (bin_dir / name).chmod(0o755)
    root = tmp_path / "checkout"
    root.mkdir()
    for name in ("pyproject.toml", "package.json", "package-lock.json"):
        (root / name).write_bytes((ROOT / name).read_bytes())
    archives = tmp_path / "vendor"
    archives.mkdir()
    for attr in ("CORE", "CONSOLE"):
        release = getattr(vendor, attr)
        top = tmp_path / "src" / release.name
        top.mkdir(parents=True)
        (top / "package.json").write_text("{}")
        (top / "package-lock.json").write_text("{}")
        with tarfile.open(archives / release.archive, "w:gz") as tar:
            tar.add(top, arcname=release.name)
        digest = vendor.sha256_of(archives / release.archive)
        monkeypatch.setattr(vendor, attr, dataclasses.replace(release, sha256=digest))
    monkeypatch.setattr(vendor, "VENDOR", archives)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setenv("PYTHON", str(bin_dir / "python"))
    monkeypatch.setenv("CALLS", str(tmp_path / "calls"))
    monkeypatch.setenv("DEVSTACK_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("CHROMIUM_PATH", str(tmp_path / "no-chromium"))
    monkeypatch.delenv("FAIL_NPM", raising=False)
    monkeypatch.setattr(os, "geteuid", lambda: 0)  # as root, apt-get would be asked
    vendor.node_major.cache_clear()
    yield root
    vendor.node_major.cache_clear()


def run(root: Path, *targets: str) -> tuple[int, str, list[str]]:
    out = io.StringIO()
    code = install.install(list(targets), root=root, out=out)
    calls_file = Path(os.environ["CALLS"])
    calls = calls_file.read_text().splitlines() if calls_file.exists() else []
    calls_file.unlink(missing_ok=True)
    return code, out.getvalue(), calls


def test_the_demo_installs_its_extra_npm_and_core_but_no_chromium_and_no_console(checkout):
    code, out, calls = run(checkout, "demo")

    assert code == 0, out
    assert not [c for c in calls if c.startswith("apt-get")]
    assert not [c for c in calls if vendor.CONSOLE.name in c]
    assert any(c.startswith("venv-python -m pip install -e .[demo]") for c in calls)
    assert f"npm ci --ignore-scripts --no-audit --no-fund --loglevel=error @ {checkout}" in calls
    core_calls = [c.split(" @ ")[0] for c in calls if vendor.CORE.name in c]
    assert core_calls[0].startswith("npm ci --ignore-scripts")
    assert core_calls[1].startswith("npm run build")
    built = vendor.CORE.folder
    assert built.parent == Path(os.environ["DEVSTACK_CACHE_DIR"])
    assert (built / "lib" / "server.js").exists()
    assert (built / "node_modules" / "ssl-root-cas" / "ssl-root-cas-latest.js").exists()
    for label in (
        "python env (.venv, pip install -e .[demo])",
        "npm packages (npm ci: pouchdb-server)",
        f"OpenHIM core build ({vendor.CORE.name})",
    ):  # one line each, with how long it took
        (line,) = [line for line in out.splitlines() if label in line]
        assert line.endswith(" s"), line
    assert "chromium" not in out and "console" not in out


def test_a_second_install_is_all_cached_and_runs_nothing(checkout):
    run(checkout, "demo")
    code, out, calls = run(checkout, "demo")

    assert code == 0
    assert calls == []
    assert out.count("cached") == 3


def test_the_test_target_asks_apt_get_for_chromium_and_builds_the_console(checkout):
    code, out, calls = run(checkout, "test")

    assert code == 0, out
    assert "apt-get install -y -qq chromium" in calls
    assert any(c.startswith("venv-python -m pip install -e .[test]") for c in calls)
    assert (vendor.CONSOLE.folder / "dist" / "index.html").exists()
    # apt-get (a fake) made no /usr/bin/chromium: said in one line, not a failure
    assert f"apt-get installed chromium but {os.environ['CHROMIUM_PATH']} is still missing" in out


def test_a_demo_venv_gets_the_test_extra_when_the_tests_need_it(checkout):
    run(checkout, "demo")
    _, _, calls = run(checkout, "test")
    assert any(c.startswith("venv-python -m pip install -e .[test]") for c in calls)
    _, out, calls = run(checkout, "demo")
    assert calls == [] and "python env (.venv, pip install -e .[demo])" in out


def test_chromium_that_is_present_is_not_installed(checkout, monkeypatch):
    there = checkout / "chromium"
    there.touch()
    monkeypatch.setenv("CHROMIUM_PATH", str(there))
    code, out, calls = run(checkout, "test")
    assert code == 0
    assert not [c for c in calls if c.startswith("apt-get")]
    assert f"present ({there})" in out


def test_without_root_chromium_is_not_installed_and_the_install_succeeds(checkout, monkeypatch):
    monkeypatch.setattr(os, "geteuid", lambda: 1000)
    code, out, calls = run(checkout, "test")
    assert code == 0
    assert not [c for c in calls if c.startswith("apt-get")]
    assert "is missing and cannot be installed here (needs root and apt-get)" in out


def test_a_failing_step_prints_its_log_tail_and_path_and_exits_1(checkout, monkeypatch):
    monkeypatch.setenv("FAIL_NPM", "1")
    code, out, _ = run(checkout, "demo")

    assert code == 1
    log = checkout / ".cache" / "install" / "npm.log"
    assert "npm packages (npm ci: pouchdb-server)" in out and "FAILED after" in out
    assert f"--- full log: {log}" in out
    assert "npm ERR! code ENOTFOUND registry.npmjs.org" in out
    assert out.rstrip().splitlines()[-1].startswith("install failed")
    # nothing half-built is left as if it were done
    assert not vendor.CORE.built()
    assert not (checkout / "node_modules" / ".installed").exists()


def test_an_unknown_target_is_one_line_and_exit_2(capsys):
    assert install.main(["deploy"]) == 2
    err = capsys.readouterr().err
    assert (
        err == "devstack.install: unknown target 'deploy' (choose from demo, test, lint, console)\n"
    )


def test_the_installer_imports_only_the_standard_library():
    """It runs on the system Python before .venv exists (-S: no site-packages)."""
    done = subprocess.run(
        [sys.executable, "-S", "-c", "import devstack.install"],
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stderr


def test_two_installs_at_once_build_a_release_once_into_one_folder(checkout):
    builds: list[Path] = []

    def build(src: Path, log: object) -> None:
        builds.append(src)
        (src / "lib").mkdir()

    with ThreadPoolExecutor(max_workers=2) as pool:
        done = list(pool.map(lambda _: vendor.ensure(vendor.CORE, build), range(2)))

    assert len(builds) == 1
    assert sorted(built for _, built in done) == [False, True]
    assert done[0][0] == done[1][0] == vendor.CORE.folder
    assert (vendor.CORE.folder / "lib").is_dir()
    # only the finished folder and its lock: no temporary build folder is left
    assert sorted(p.name for p in vendor.CORE.folder.parent.iterdir()) == [
        vendor.CORE.folder.name,
        vendor.CORE.folder.name + ".lock",
    ]


def test_another_recipe_or_node_builds_into_a_folder_of_its_own(checkout):
    newer = dataclasses.replace(vendor.CORE, recipe=vendor.CORE.recipe + 1)
    assert newer.folder != vendor.CORE.folder
    assert vendor.CORE.key("v22") != vendor.CORE.key("v20")
    assert vendor.CORE.folder.name == (
        f"{vendor.CORE.name}-{vendor.CORE.sha256[:12]}-r{vendor.CORE.recipe}-node20"
    )


def test_a_venv_stamped_by_the_old_shell_install_is_reinstalled_once(checkout):
    run(checkout, "demo")
    (checkout / ".venv" / ".installed").write_text("1234567890123456")  # a bare hash
    _, _, calls = run(checkout, "demo")
    assert [c for c in calls if "pip install" in c] == ["venv-python -m pip install -e .[demo]"]
    _, _, calls = run(checkout, "demo")
    assert calls == []
