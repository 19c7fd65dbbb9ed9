"""TLS to CHT, DHIS2 and OpenHIM: verification is on by default, a custom CA bundle
is supported, and turning verification off is explicit, per peer, and logged as a
warning. The peers are the DHIS2 stand-in (and CouchDB through a proxy) served
over HTTPS with a certificate signed by a CA made for the test with ``openssl``,
and the real OpenHIM core 8.5.0 with that certificate installed in its keystore.
"""

from __future__ import annotations

import logging
import shutil
import subprocess
import threading
from collections.abc import Iterator
from typing import Any

import pytest
from werkzeug.serving import make_server

from devstack.dhis2_standin import Dhis2StandIn
from devstack.faultproxy import FaultProxy
from devstack.openhim_core import OpenhimCore
from mediator.http.errors import TlsFailed
from mediator.openhim.client import OpenhimClient
from mediator.openhim.console_config import load_registration
from mediator.run.pipeline import execute
from mediator.settings.config import OpenhimSettings, RuntimeConfig

from .helpers import held, request

pytestmark = [
    pytest.mark.skipif(shutil.which("openssl") is None, reason="needs openssl"),
    # verification off is the point of two tests: urllib3's warning is expected there
    pytest.mark.filterwarnings("ignore::urllib3.exceptions.InsecureRequestWarning"),
]


@pytest.fixture(scope="module")
def certs(tmp_path_factory) -> dict[str, str]:
    """A test CA and a server certificate for 127.0.0.1 that it signs."""
    d = tmp_path_factory.mktemp("certs")

    def ssl(*args: str) -> None:
        subprocess.run(["openssl", *args], cwd=d, check=True, capture_output=True)

    ssl(
        "req",
        "-x509",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-keyout",
        "ca.key",
        "-out",
        "ca.pem",
        "-days",
        "2",
        "-subj",
        "/CN=mediator test CA",
    )
    ssl(
        "req",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-keyout",
        "server.key",
        "-out",
        "server.csr",
        "-subj",
        "/CN=127.0.0.1",
    )
    (d / "ext.cnf").write_text("subjectAltName=IP:127.0.0.1,DNS:localhost\n")
    ssl(
        "x509",
        "-req",
        "-in",
        "server.csr",
        "-CA",
        "ca.pem",
        "-CAkey",
        "ca.key",
        "-CAcreateserial",
        "-out",
        "server.pem",
        "-days",
        "2",
        "-extfile",
        "ext.cnf",
    )
    return {name: str(d / name) for name in ("ca.pem", "server.pem", "server.key")}


class Https:
    """Serves a WSGI app over HTTPS on loopback."""

    def __init__(self, app: Any, certs: dict[str, str]) -> None:
        self.server = make_server(
            "127.0.0.1",
            0,
            app,
            threaded=True,
            ssl_context=(certs["server.pem"], certs["server.key"]),
        )
        self.url = f"https://127.0.0.1:{self.server.server_port}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture(scope="module")
def peers(couch, base_db, certs) -> Iterator[dict[str, Any]]:
    d2 = Dhis2StandIn(version="2.41.1")
    proxy = FaultProxy(couch.url)  # CouchDB behind TLS
    servers = {
        "dhis2": Https(d2.app, certs),
        "cht": Https(proxy._wsgi, certs),
    }
    yield {"d2": d2, "urls": {k: s.url for k, s in servers.items()}, "db": base_db}
    for s in servers.values():
        s.stop()


def env_for(couch, peers, **extra: str) -> dict[str, str]:
    return {
        "CHT_URL": peers["urls"]["cht"],
        "CHT_DB": peers["db"],
        "CHT_USERNAME": couch.username,
        "CHT_PASSWORD": couch.password,
        "DHIS2_URL": peers["urls"]["dhis2"],
        "DHIS2_USERNAME": "admin",
        "DHIS2_PASSWORD": "district",
        "DHIS2_MAX_ATTEMPTS": "3",
        **extra,
    }


def test_verification_is_on_by_default_cht_fails_with_a_clear_tls_error_naming_the_url(
    couch, peers, certs
):
    cfg = RuntimeConfig.from_env(env_for(couch, peers))
    report = execute(request(), cfg)
    assert report.status == "Failed"
    (finding,) = [f for f in report.findings if f.level == "error"]
    assert f"TLS certificate verification failed for CHT at {peers['urls']['cht']}" in (
        finding.message
    )
    assert "CHT_CA_BUNDLE" in finding.message


def test_dhis2_with_an_untrusted_certificate_fails_at_once_naming_the_url(couch, peers, certs):
    cfg = RuntimeConfig.from_env(env_for(couch, peers, CHT_CA_BUNDLE=certs["ca.pem"]))
    report = execute(request(), cfg)
    assert report.status == "Failed"
    for result in report.results:
        assert f"TLS certificate verification failed for DHIS2 at {peers['urls']['dhis2']}" in (
            result.error
        )
        assert "DHIS2_CA_BUNDLE" in result.error
    # a certificate error is not retried: one failed request per data set at most
    failed = [ex for ex in report.exchanges if ex.error and "TLS" in ex.error]
    assert 1 <= len(failed) <= len(report.results)


def test_ca_bundles_per_peer_make_the_whole_run_work(couch, peers, certs, computed):
    peers["d2"].store.clear()
    cfg = RuntimeConfig.from_env(
        env_for(couch, peers, CHT_CA_BUNDLE=certs["ca.pem"], DHIS2_CA_BUNDLE=certs["ca.pem"])
    )
    report = execute(request(), cfg)
    assert report.status == "Successful", report.model_dump_json(indent=1)
    assert held(peers["d2"]) == computed


def test_turning_verification_off_is_explicit_per_peer_and_logged(couch, peers, caplog):
    caplog.set_level(logging.WARNING)
    cfg = RuntimeConfig.from_env(
        env_for(couch, peers, CHT_VERIFY_TLS="false", DHIS2_VERIFY_TLS="false")
    )
    assert cfg.cht.verify is False and cfg.dhis2.verify is False
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert any("OFF for CHT" in w for w in warnings) and any("OFF for DHIS2" in w for w in warnings)
    assert execute(request(), cfg).status == "Successful"
    only_cht = RuntimeConfig.from_env(env_for(couch, peers, CHT_VERIFY_TLS="false"))
    assert only_cht.cht.verify is False and only_cht.dhis2.verify is True


@pytest.fixture(scope="module")
def tls_core(certs) -> Iterator[OpenhimCore]:
    """A core of its own (the session's keeps its bundled certificate) serving the
    test CA's certificate, as ops install a real one in the console."""
    with OpenhimCore() as core:
        with open(certs["server.pem"]) as cert, open(certs["server.key"]) as key:
            core.use_certificate(cert.read(), key.read())
        yield core


def test_openhim_tls_default_bundle_and_self_signed_switch(tls_core, certs, caplog):
    caplog.set_level(logging.WARNING)
    registration = load_registration()
    base = {
        "OPENHIM_URL": tls_core.url,
        "OPENHIM_USERNAME": tls_core.mediator_user[0],
        "OPENHIM_PASSWORD": tls_core.mediator_user[1],
    }
    with pytest.raises(
        TlsFailed, match=r"TLS certificate verification failed for OpenHIM .*OPENHIM_CA_BUNDLE"
    ):
        OpenhimClient(OpenhimSettings.from_env(base)).register(registration)
    OpenhimClient(
        OpenhimSettings.from_env({**base, "OPENHIM_CA_BUNDLE": certs["ca.pem"]})
    ).register(registration)
    insecure = OpenhimSettings.from_env({**base, "OPENHIM_TRUST_SELF_SIGNED": "true"})
    assert insecure.verify is False
    assert "OFF for OpenHIM" in caplog.text
    OpenhimClient(insecure).register(registration)
    assert tls_core.mediator(registration["urn"]) is not None  # core stored it
