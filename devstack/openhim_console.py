"""The real OpenHIM console 1.18.2, built once and served over HTTPS.

``python -m devstack.openhim_console install`` (or ``./dev.sh install console``)
unpacks the release archive (``../shared/vendor/openhim-console-1.18.2.tar.gz``) into
the per-machine cache (``devstack/vendor.py``:
``~/.cache/cht-dhis2-mediator/openhim-console-1.18.2-KEY/``), points its ``morris.js``
dev dependency (the dashboard charts; a GitHub git URL in the release) at the npm
registry's ``morris.js@0.5.0``, and runs ``npm install``, whose ``prepare`` runs the
webpack production build into ``dist/``. Once per archive, recipe and Node major.

``ConsoleServer`` serves that ``dist/`` over HTTPS (a self-signed certificate
made at start; over plain http Chromium drops core's session cookie and the
console says the credentials were wrong although the login succeeded), with
``config/default.json`` pointing at a running core's API. The rest drives it in
headless Chromium: ``login`` (root's forced first-login password change
included), ``open_transaction`` (through the Transactions list, as a person
clicks), ``read_transaction`` (what the transaction page shows, read from the
DOM and its layout) and ``screenshot``. ``python -m devstack.openhim_console
screenshot`` writes ``docs/openhim-console.png``.
"""

from __future__ import annotations

import functools
import json
import logging
import secrets
import ssl
import subprocess
import sys
import tempfile
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .browser import chromium_page
from .openhim_core import ROOT_DEFAULT_PASSWORD, ROOT_EMAIL, OpenhimCore
from .vendor import CONSOLE, ROOT, build_console, ensure

if TYPE_CHECKING:
    from playwright.sync_api import Page


def install() -> Path:
    """The console built in the per-machine cache (a no-op when it already is)."""
    return ensure(CONSOLE, build_console)[0]


# --- serving dist/ over HTTPS -------------------------------------------------------


def self_signed(folder: Path) -> tuple[Path, Path]:
    """A throw-away certificate for 127.0.0.1, made with openssl."""
    cert, key = folder / "console.pem", folder / "console.key"
    subprocess.run(
        [
            *("openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2"),
            *("-keyout", str(key), "-out", str(cert), "-subj", "/CN=127.0.0.1"),
            *("-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost"),
        ],
        check=True,
        capture_output=True,
    )
    return cert, key


class _Handler(SimpleHTTPRequestHandler):
    """dist/ as it is, but config/default.json says where core's API is."""

    config: bytes = b"{}"

    def do_GET(self) -> None:
        if self.path.split("?")[0] == "/config/default.json":
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(self.config)))
            self.end_headers()
            self.wfile.write(self.config)
            return
        super().do_GET()

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib name
        pass


class ConsoleServer:
    """The built console on a free loopback port over HTTPS, pointed at ``core``."""

    def __init__(self, core: OpenhimCore, port: int = 0) -> None:
        dist = CONSOLE.folder / "dist"
        if not (dist / "index.html").exists():
            raise RuntimeError(
                f"{dist} is missing: run ./dev.sh install (python -m devstack.openhim_console"
                " install)"
            )
        shipped = json.loads((dist / "config" / "default.json").read_text())
        config = {**shipped, "protocol": "https", "host": "127.0.0.1", "port": core.ports["api"]}
        handler = type("ConsoleHandler", (_Handler,), {"config": json.dumps(config).encode()})
        self._tmp = tempfile.TemporaryDirectory(prefix="openhim-console-")
        cert, key = self_signed(Path(self._tmp.name))
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(cert, key)
        self.server = ThreadingHTTPServer(
            ("127.0.0.1", port), functools.partial(handler, directory=str(dist))
        )
        self.server.daemon_threads = True
        self.server.socket = context.wrap_socket(self.server.socket, server_side=True)
        self.port = int(self.server.server_address[1])
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"https://127.0.0.1:{self.port}"

    def start(self) -> ConsoleServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self._tmp.cleanup()

    def __enter__(self) -> ConsoleServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


# --- the console in headless Chromium --------------------------------------------------

WIDTH, HEIGHT = 1440, 900
SCREENSHOT = ROOT / "docs" / "openhim-console.png"


@contextmanager
def console_page(width: int = WIDTH, height: int = HEIGHT) -> Iterator[Page]:
    """Debian's headless Chromium (``devstack/browser.py``), accepting the self-signed
    certificates of the console and of core's API."""
    with chromium_page(width=width, height=height, ignore_https_errors=True) as page:
        page.set_default_timeout(30_000)
        yield page


def login(page: Page, console: ConsoleServer, core: OpenhimCore, email: str = ROOT_EMAIL) -> None:
    """Log in as a person does. Root with core's first-start password is made to
    choose a new one (openhim-console app/scripts/controllers/login.js:95): a new
    random one is chosen, and ``core.root_password`` follows it, so the driver's
    API calls keep working."""
    password = core.root_password if email == ROOT_EMAIL else core.mediator_user[1]
    page.goto(f"{console.url}/#!/login", wait_until="load")
    page.fill("input[placeholder='E-mail address']", email)
    page.fill("input[placeholder='Password']", password)
    page.click("input[type=submit][value=Login]")
    reset = page.locator("input[placeholder='New Password']")
    transactions = page.locator("text=Transactions")
    page.wait_for_function(
        "() => location.hash.includes('/transactions') || "
        "[...document.querySelectorAll('input[placeholder=\"New Password\"]')]"
        ".some(e => e.offsetParent !== null)"
    )
    if email == ROOT_EMAIL and password == ROOT_DEFAULT_PASSWORD and reset.is_visible():
        new = f"root-{secrets.token_urlsafe(12)}"
        reset.fill(new)
        page.fill("input[placeholder='Confirm Password']", new)
        page.click("input[type=submit][value=RESET]")
        page.locator("text=Root Password Successfully Reset >> visible=true").first.wait_for()
        core.root_password = new
    transactions.first.wait_for()


def open_transaction(page: Page, console: ConsoleServer, tx_id: str, channel: str) -> None:
    """Open Transactions, then click the newest row of ``channel`` (the list shows no
    ids), as a person does; fails unless that row is transaction ``tx_id``. Returns
    once the transaction page shows its orchestrations, properties and bodies."""
    page.goto(f"{console.url}/#!/transactions", wait_until="load")
    cell = page.locator("tr.table-list td[data-title=Channel]", has_text=channel).first
    cell.wait_for()
    cell.click()
    page.wait_for_url(f"**/transactions/{tx_id}")
    # the bodies are highlighted after the rest is drawn: wait for their text too
    page.wait_for_function(
        """() => document.querySelectorAll('.default-labels-box').length > 0
          && document.querySelectorAll('td[data-title=Name]').length > 0
          && [...document.querySelectorAll('h4')]
               .filter(h => h.textContent.trim().endsWith(' body'))
               .every(h => h.parentElement.querySelector('.hljsFormat')
                             .textContent.trim().length > 0)"""
    )


# what the transaction page shows, read from the DOM and the layout Chromium made
READ_TRANSACTION = """() => {
  const text = el => (el ? el.textContent.trim() : null);
  const heading = name => [...document.querySelectorAll('h3')]
    .find(h => h.textContent.trim() === name);
  const section = name => { const h = heading(name); return h ? h.parentElement : null; };
  const statusRow = [...document.querySelectorAll('table.transactionsSummary tr')]
    .find(tr => text(tr.querySelector('th')) === 'Status');
  const badge = statusRow ? statusRow.querySelector('span.label') : null;
  const orch = section('Orchestrations');
  const table = orch ? orch.querySelector('table') : null;
  const box = el => { const r = el.getBoundingClientRect();
    return {left: r.left, right: r.right, width: r.width}; };
  const headers = table ? Object.fromEntries([...table.querySelectorAll('thead th')]
    .map(th => [text(th), box(th)])) : {};
  const within = name => headers[name] !== undefined && headers[name].left >= 0
    && headers[name].right <= window.innerWidth;
  const responseBody = [...document.querySelectorAll('h4')]
    .find(h => h.textContent.trim() === 'Response body');
  const props = section('Properties');
  return {
    viewport: {width: window.innerWidth, height: window.innerHeight},
    status: text(badge),
    orchestrationTable: table ? {
      width: box(table).width, right: box(table).right,
      statusHeaderVisible: within('Status'),
      responseTimeHeaderVisible: within('Response Time'),
    } : null,
    orchestrations: table ? [...table.querySelectorAll('tbody td[data-title=Name]')]
      .map(td => text(td)) : [],
    properties: props ? Object.fromEntries([...props.querySelectorAll('.default-labels-box')]
      .map(el => { const key = el.firstChild.textContent.trim().replace(/:$/, '');
                   return [key, text(el.querySelector('strong'))]; })) : {},
    responseBody: responseBody ? text(responseBody.parentElement.querySelector('.hljsFormat'))
      : null,
  };
}"""


def read_transaction(page: Page) -> dict[str, Any]:
    """What the open transaction page shows:

    - ``status``: the status badge's text;
    - ``orchestrationTable``: the table's ``width`` and ``right`` edge (px) and
      whether its Status and Response Time column headers lie within the viewport
      (``statusHeaderVisible``, ``responseTimeHeaderVisible``), or None;
    - ``orchestrations``: the Name column, in order;
    - ``properties``: the Properties boxes as a dict (key: shown value);
    - ``responseBody``: the response body text shown (highlighted, as laid out);
    - ``viewport``: the window's inner width and height.
    """
    return dict(page.evaluate(READ_TRANSACTION))


def screenshot(page: Page, path: Path = SCREENSHOT) -> Path:
    """The whole page as a PNG (``docs/openhim-console.png`` by default)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(path), full_page=True)
    return path


def _screenshot_main(argv: list[str]) -> int:
    """The local stack's monthly channel run through the real core, then its
    transaction in the real console, as a PNG."""
    from mediator.model.periods import Month

    from .browser import missing
    from .stack import LocalStack

    logging.getLogger().setLevel(logging.WARNING)
    problem = missing()
    if problem:
        print(f"cannot take the screenshot: {problem}", file=sys.stderr)
        return 1
    out = Path(argv[0]) if argv else SCREENSHOT
    last = Month.previous_completed("UTC")
    with LocalStack(months=[last.shift(-2).tag, last.shift(-1).tag, last.tag]) as stack:
        assert stack.openhim is not None
        stack.wait_registered("urn:mediator:cht-dhis2-aggregate")
        channels = stack.install_channels("urn:mediator:cht-dhis2-aggregate")
        polling = next(c for c in channels if c["type"] == "polling")
        tx = stack.openhim.fire_polling_channel(polling["_id"])
        with ConsoleServer(stack.openhim) as console, console_page() as page:
            login(page, console, stack.openhim)
            open_transaction(page, console, tx["_id"], polling["name"])
            screenshot(page, out)
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    args = sys.argv[1:]
    if args[:1] == ["install"] and len(args) == 1:
        print(install())
    elif args[:1] == ["screenshot"]:
        sys.exit(_screenshot_main(args[1:]))
    else:
        raise SystemExit("usage: python -m devstack.openhim_console install | screenshot [PATH]")
