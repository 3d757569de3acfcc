"""
TLS on every protocol, both ways, with certificates made in the test
(L{tests.certificates}): the gateway's listeners on C{ssl:} endpoints; the
blocking client over C{netstrings://}, C{amps://}, C{wss://} and
C{https://} against a real gateway process; the asynchronous clients over
each of them, in this process and as the upstreams of another gateway
process, and in C{xform get-poetry}; the page over https in headless
Chromium, trusting the test's authority.  A certificate from an authority
the client does not trust, or for another host, is refused with
C{certificate verify failed} by both kinds of client; a key or certificate
the gateway cannot use stops it at start-up with one line.
"""

import http.client
import json
import os
import re
import ssl
import subprocess
import tempfile
from pathlib import Path

import pytest
from playwright.sync_api import Error as PlaywrightError
from playwright.sync_api import expect, sync_playwright
from twisted.internet import reactor
from twisted.internet.endpoints import serverFromString
from twisted.internet.task import Clock
from twisted.internet.threads import deferToThread
from twisted.python.failure import Failure
from twisted.trial.unittest import TestCase
from websockets.exceptions import InvalidStatus
from websockets.sync.client import connect

from gateway.clients import describeFailure, readCAFile, transformClient
from gateway.schemes import SCHEMES
from gateway.server import LISTENERS
from gateway.syncclient import ClientError, tlsContext
from gateway.urls import ServerURL
from gateway.web import makeSite
from protocols.amp.server import TransformAMPFactory
from protocols.netstring import TransformFactory
from protocols.origins import OriginPolicy
from service import TransformService, builtinCatalogue, transforms
from tests.certificates import makeTLSFiles
from tests.helpers import (
    POEMS,
    TLS_SCHEMES,
    GatewayProcess,
    PoetryServerProcess,
    eachScheme,
    xform,
)
from tests.test_browser import CHROMIUM, CHROMIUM_ARGS, PATIENCE
from tests.test_operations_process import samples

#: What a blocking client says of a certificate its authorities did not sign.
UNTRUSTED = "TLS failed: certificate verify failed: unable to get local issuer certificate"

#: The schemes over TLS that can list the transforms.
LISTING_SCHEMES = [name for name in TLS_SCHEMES if SCHEMES[name].listTransforms]

#: The poem of most requests.
POEM = POEMS["science"]

#: The gateway's own transforms.
TRANSFORMS = [entry.name for entry in builtinCatalogue(Clock())]


@pytest.fixture(scope="module")
def tlsFiles(tmp_path_factory):
    return makeTLSFiles(tmp_path_factory.mktemp("tls"))


@pytest.fixture(scope="module")
def tlsGateway(tlsFiles):
    """
    A real gateway with every listener on an C{ssl:} endpoint, reached over
    any TLS scheme with C{tlsGateway.url}.
    """
    endpoints = [argument for name in LISTENERS for argument in (f"--{name}", tlsFiles.endpoint())]
    with GatewayProcess(*endpoints, listeners=tuple(LISTENERS)) as process:
        yield process


def test_listeningLines(tlsGateway):
    """
    Each listener on C{ssl:} logs where it listens as a listener on C{tcp:}
    does: the address and the port it got.
    """
    for name, port in tlsGateway.ports.items():
        assert tlsGateway.logged(f"{name} listening on 127.0.0.1:{port}")


@pytest.mark.parametrize("scheme", TLS_SCHEMES)
def test_transform(tlsGateway, tlsFiles, xformHere, scheme):
    """
    The blocking client transforms over each TLS scheme, trusting the
    authority of C{--ca-file}; the certificate names the IP address.
    """
    url = tlsGateway.url(scheme)
    status, out, err = xformHere(
        "transform", "cummingsify|reverse", "-s", url, "--ca-file", str(tlsFiles.ca), input=POEM.encode()
    )
    assert (status, out.decode(), err) == (0, transforms.reverse(POEM.lower()), "")


@pytest.mark.parametrize("scheme", LISTING_SCHEMES)
def test_listTransforms(tlsGateway, tlsFiles, xformHere, scheme):
    """
    C{xform transforms} lists them over each TLS scheme that can, reaching
    the gateway by the host name its certificate gives.
    """
    url = tlsGateway.url(scheme).replace("127.0.0.1", "localhost")
    status, out, err = xformHere("transforms", "-s", url, "--ca-file", str(tlsFiles.ca))
    assert (status, err) == (0, "")
    assert [line.split()[0] for line in out.decode().splitlines()] == TRANSFORMS


@pytest.mark.parametrize("trust", ["other", "system"])
@pytest.mark.parametrize("scheme", TLS_SCHEMES)
def test_untrustedCertificate(tlsGateway, tlsFiles, xformHere, scheme, trust):
    """
    Trusting another authority, or the system's (which never signed the
    test's certificate), the blocking client refuses the gateway's
    certificate and says so in one line, exit status 1.
    """
    url = tlsGateway.url(scheme)
    caFile = ["--ca-file", str(tlsFiles.otherCA)] if trust == "other" else []
    status, out, err = xformHere("transform", "rot13", "-s", url, *caFile, input=b"poem")
    assert (status, out, err) == (1, b"", f"xform: {url}: {UNTRUSTED}\n")


def test_realCommand(tlsGateway, tlsFiles):
    """
    The real command, as a process, over TLS.
    """
    url = tlsGateway.url("wss")
    assert xform("transform", "rot13", "-s", url, "--ca-file", str(tlsFiles.ca), input=b"HELLO") == (
        0,
        b"URYYB",
        "",
    )


def test_poemOverTheLimitOverNetstrings(tlsGateway, tlsFiles, xformHere):
    """
    A TLS connection cannot be half-closed, so the netstring client sends
    without it; a poem the gateway refuses while it is still being sent is
    reported as over C{netstring://}: closed without a reply.
    """
    status, out, err = xformHere(
        "transform",
        "rot13",
        "-s",
        tlsGateway.url("netstrings"),
        "--ca-file",
        str(tlsFiles.ca),
        input=b"x" * 5_000_000,
    )
    assert (status, out) == (1, b"")
    assert "closed the connection without a reply" in err


def _post(tlsGateway, tlsFiles, origin: str) -> tuple[int, bytes]:
    port = tlsGateway.ports["web"]
    connection = http.client.HTTPSConnection(
        "127.0.0.1", port, timeout=10, context=ssl.create_default_context(cafile=tlsFiles.ca)
    )
    try:
        connection.request("POST", "/transform/rot13", body=b"HELLO", headers={"Origin": origin})
        response = connection.getresponse()
        return response.status, response.read()
    finally:
        connection.close()


def _webSocket(tlsGateway, tlsFiles, origin: str) -> str:
    context = ssl.create_default_context(cafile=tlsFiles.ca)
    with connect(tlsGateway.url("wss"), ssl=context, origin=origin, proxy=None) as webSocket:
        webSocket.send(
            json.dumps({"jsonrpc": "2.0", "method": "transform", "params": ["rot13", "HI"], "id": 1})
        )
        return json.loads(webSocket.recv(timeout=10))["result"]["poem"]


def test_sameOriginOverTLS(tlsGateway, tlsFiles):
    """
    Served over TLS, the gateway's own page has an C{https} origin: a
    C{POST} and a WebSocket from it are let in, and from the same host and
    port over C{http} they are refused, as another site's would be.
    """
    own = f"https://127.0.0.1:{tlsGateway.ports['web']}"
    clear = f"http://127.0.0.1:{tlsGateway.ports['web']}"
    assert _post(tlsGateway, tlsFiles, own) == (200, b"URYYB")
    status, body = _post(tlsGateway, tlsFiles, clear)
    assert (status, json.loads(body)["error"]) == (403, "forbidden-origin")
    assert _webSocket(tlsGateway, tlsFiles, own) == "UV"
    with pytest.raises(InvalidStatus) as refused:
        _webSocket(tlsGateway, tlsFiles, clear)
    assert refused.value.response.status_code == 403


def test_webSocketsOverTLSFreeTheirPlace(tlsFiles):
    """
    A WebSocket over TLS counts as a WebSocket connection, not an HTTP one,
    while it is open, and frees its place among the connections once
    closed, as in the clear: with C{--max-connections-per-peer 2}, ten in a
    row from one address are each let in.
    """
    with GatewayProcess(
        "--web", tlsFiles.endpoint(), "--max-connections-per-peer", "2", "--metrics", "tcp:0:interface=127.0.0.1",
        listeners=("web", "metrics"),
    ) as gateway:  # fmt: skip
        own = f"https://127.0.0.1:{gateway.ports['web']}"
        context = ssl.create_default_context(cafile=tlsFiles.ca)
        with connect(gateway.url("wss"), ssl=context, origin=own, proxy=None):
            found = samples(gateway.ports["metrics"])
            assert found["xform_connections_open", (("protocol", "ws"),)] == 1
            assert found["xform_connections_open", (("protocol", "http"),)] == 0
        for _ in range(10):
            assert _webSocket(gateway, tlsFiles, own) == "UV"


@pytest.fixture(scope="module")
def frontGateway(tlsGateway, tlsFiles):
    """
    A gateway whose upstreams are C{tlsGateway} over each TLS scheme, each
    under its scheme's name as prefix, trusting the test's authority
    through C{XFORM_CA_FILE}.
    """
    upstreams = [
        arg for scheme in TLS_SCHEMES for arg in ("--upstream", f"{scheme}={tlsGateway.url(scheme)}")
    ]
    with GatewayProcess(*upstreams, listeners=("amp",), env={"XFORM_CA_FILE": str(tlsFiles.ca)}) as process:
        yield process


@pytest.mark.parametrize("scheme", TLS_SCHEMES)
def test_upstreamOverTLS(frontGateway, xformHere, scheme):
    """
    The front gateway's asynchronous client for C{scheme} forwards
    C{scheme:NAME} over TLS, in a pipeline with one of its own transforms.
    """
    status, out, err = xformHere(
        "transform", f"{scheme}:cummingsify|reverse", "-s", frontGateway.url("amp"), input=POEM.encode()
    )
    assert (status, out.decode(), err) == (0, transforms.reverse(POEM.lower()), "")


def test_upstreamsListedOverTLS(frontGateway, xformHere):
    """
    The upstreams over TLS that can list their transforms are asked for
    them; the netstring one cannot be.
    """
    status, out, err = xformHere("transforms", "-s", frontGateway.url("amp"))
    names = [line.split()[0] for line in out.decode().splitlines()]
    listed = [f"{scheme}:{name}" for scheme in LISTING_SCHEMES for name in TRANSFORMS]
    assert (status, err, names) == (0, "", [*TRANSFORMS, "netstrings:*", *listed])


@pytest.fixture(scope="module")
def poetryServer():
    with PoetryServerProcess(["poems/science.txt"]) as process:
        yield process.ports["poems/science.txt"]


@pytest.mark.parametrize("trust", ["ca", "otherCA"])
def test_getPoetryOverTLS(tlsGateway, tlsFiles, poetryServer, trust):
    """
    C{xform get-poetry} has the poem transformed over TLS when it trusts the
    gateway's authority; when it does not, it prints the original poem and
    says why.
    """
    url = tlsGateway.url("https")
    caFile = str(getattr(tlsFiles, trust))
    status, out, err = xform(
        "get-poetry", "--quiet", "--transform-server", url, "--ca-file", caFile, str(poetryServer)
    )
    header = f"==> 127.0.0.1:{poetryServer} <==\n"
    if trust == "ca":
        assert (status, out.decode(), err) == (0, header + POEM.lower(), "")
    else:
        assert (status, out.decode()) == (0, header + POEM)
        assert err == (
            f"xform: 127.0.0.1:{poetryServer}: cannot transform with 'cummingsify' at {url} "
            "(TLS failed: certificate verify failed); printing the original poem\n"
        )


def _nssDatabase(home, ca=None) -> dict[str, str]:
    """
    An environment whose C{HOME} holds the NSS database Chromium trusts on
    Linux, with C{ca} in it as an authority for servers, if given.
    """
    database = f"sql:{home}/.pki/nssdb"
    os.makedirs(f"{home}/.pki/nssdb")
    subprocess.run(["certutil", "-d", database, "-N", "--empty-password"], check=True)
    if ca is not None:
        subprocess.run(
            ["certutil", "-d", database, "-A", "-t", "C,,", "-n", "test CA", "-i", str(ca)], check=True
        )
    return {**os.environ, "HOME": str(home)}


def test_pageOverHTTPS(tlsGateway, tlsFiles, tmp_path):
    """
    Chromium, trusting the test's authority (in its NSS database, as a user
    would add it; no certificate error is ignored), loads the page over
    https: it opens its WebSocket over wss:// to the same host and port,
    which the security headers and the same-origin check let through, and
    lists the transforms.  Without that trust, Chromium refuses the page.
    """
    url = f"https://127.0.0.1:{tlsGateway.ports['web']}/"
    with sync_playwright() as playwright:
        trusting = _nssDatabase(tmp_path / "trusting", tlsFiles.ca)
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, env=trusting)
        try:
            page = browser.new_page()
            sockets = []
            page.on("websocket", lambda socket: sockets.append(socket.url))
            page.goto(url)
            expect(page.locator("#connection")).to_have_attribute("data-state", "open", timeout=PATIENCE)
            expect(page.get_by_label("Transform", exact=True).locator("option")).to_have_count(
                len(TRANSFORMS)
            )
            assert sockets == [f"wss://127.0.0.1:{tlsGateway.ports['web']}/ws"]
        finally:
            browser.close()
        browser = playwright.chromium.launch(
            executable_path=CHROMIUM, args=CHROMIUM_ARGS, env=_nssDatabase(tmp_path / "distrusting")
        )
        try:
            with pytest.raises(PlaywrightError, match="ERR_CERT_AUTHORITY_INVALID"):
                browser.new_page().goto(url)
        finally:
            browser.close()


@eachScheme("assertTrusted", "assertUntrusted", "assertOtherHost", schemes=TLS_SCHEMES)
class AsynchronousClientTests(TestCase):
    """
    The asynchronous clients of L{gateway.clients} against the gateway's own
    listeners on C{ssl:} endpoints in this process: one with the test's
    certificate, one with a certificate for another host.
    """

    async def setUp(self):
        directory = tempfile.TemporaryDirectory()
        self.addCleanup(directory.cleanup)
        self.files = makeTLSFiles(Path(directory.name))
        service = TransformService(builtinCatalogue(reactor), reactor)
        self.ports = {}
        for elsewhere in (False, True):
            for listener, factory in [
                ("netstring", TransformFactory(service, reactor)),
                ("amp", TransformAMPFactory(service, reactor)),
                ("web", makeSite(service, POEMS, OriginPolicy(), reactor)),
            ]:
                port = await serverFromString(reactor, self.files.endpoint(elsewhere=elsewhere)).listen(
                    factory
                )
                self.addCleanup(port.stopListening)
                self.ports[listener, elsewhere] = port.getHost().port

    def server(self, scheme: str, elsewhere: bool = False) -> ServerURL:
        return ServerURL(
            scheme, "127.0.0.1", self.ports[SCHEMES[scheme].listener, elsewhere], SCHEMES[scheme].path
        )

    async def call(self, scheme: str, caFile, elsewhere: bool = False) -> str:
        client = transformClient(reactor, self.server(scheme, elsewhere), 10, readCAFile(str(caFile)))
        try:
            return await client.xform("rot13", "HELLO")
        finally:
            await client.disconnect()

    async def failure(self, scheme: str, caFile, elsewhere: bool = False) -> Failure:
        """
        How a call fails, which it must.
        """
        try:
            await self.call(scheme, caFile, elsewhere)
        except Exception:
            return Failure()
        self.fail("the call did not fail")

    async def assertTrusted(self, scheme):
        """
        Trusting the authority of C{--ca-file}, each client transforms over
        TLS.
        """
        self.assertEqual(await self.call(scheme, self.files.ca), "URYYB")

    async def assertUntrusted(self, scheme):
        """
        Trusting another authority, each client refuses the certificate:
        C{certificate verify failed}.
        """
        failure = await self.failure(scheme, self.files.otherCA)
        self.assertEqual(describeFailure(failure), "TLS failed: certificate verify failed")

    async def assertOtherHost(self, scheme):
        """
        A certificate that the trusted authority signed for another host is
        refused too, by the asynchronous client and by the blocking one.
        """
        failure = await self.failure(scheme, self.files.ca, elsewhere=True)
        self.assertEqual(
            describeFailure(failure),
            "TLS failed: certificate verify failed: the certificate does not name the server's host",
        )
        blocking = SCHEMES[scheme].transform
        server, context = self.server(scheme, elsewhere=True), tlsContext(str(self.files.ca))
        error = await self.assertFailure(
            deferToThread(blocking, server, "rot13", "HELLO", 10, context), ClientError
        )
        self.assertEqual(
            str(error),
            f"{server}: TLS failed: certificate verify failed: "
            "IP address mismatch, certificate is not valid for '127.0.0.1'.",
        )


@pytest.mark.parametrize(
    "endpoint, message",
    [
        ("ssl:0:privateKey={missing}", "cannot read {missing}: No such file or directory"),
        (
            "ssl:0:privateKey={key}",
            "cannot load its certificate (certKey=) and private key (privateKey=) from PEM files "
            "(OpenSSL: no start line)",
        ),
        (
            "ssl:0:privateKey={elsewhereKey}:certKey={certificate}",
            "its certificate (certKey=) and private key (privateKey=) do not match",
        ),
    ],
)
def test_unusableKeyOrCertificate(tlsFiles, tmp_path, xformHere, monkeypatch, endpoint, message):
    """
    A key or certificate that cannot be read, is not PEM, or does not match
    the other stops the gateway at start-up with one line naming the
    option (and its variable), exit status 2.
    """
    names = {
        "missing": tmp_path / "missing.pem",
        "key": tlsFiles.key,
        "elsewhereKey": tlsFiles.elsewhereKey,
        "certificate": tlsFiles.certificate,
    }
    endpoint, message = endpoint.format(**names), message.format(**names)
    status, out, err = xformHere("serve", "--netstring", "off", "--amp", "off", "--web", endpoint)
    assert (status, out) == (2, b"")
    assert err == f"xform serve: --web: invalid endpoint {endpoint!r}: {message}; see 'xform serve --help'\n"
    monkeypatch.setenv("XFORM_AMP", endpoint)
    status, out, err = xformHere("serve", "--netstring", "off", "--web", "off")
    assert err == (
        f"xform serve: --amp: invalid endpoint {endpoint!r}: {message} (from XFORM_AMP); "
        "see 'xform serve --help'\n"
    )


@pytest.mark.parametrize(
    "arguments, message",
    [
        (
            ["transform", "rot13", "-s", "https://localhost", "--ca-file", "{missing}"],
            "xform transform: --ca-file: cannot read {missing}: No such file or directory",
        ),
        (
            ["transforms", "-s", "amps://localhost", "--ca-file", "{key}"],
            "xform transforms: --ca-file: {key} holds no certificate in PEM form",
        ),
        (
            ["transform", "rot13", "--ca-file", "{ca}"],
            "xform transform: --ca-file: netstring://127.0.0.1:10001 does not use TLS; "
            "netstrings://, amps://, wss://, https:// do",
        ),
        (
            ["get-poetry", "--transform-server", "wss://localhost/ws", "--ca-file", "{key}", "10003"],
            "xform get-poetry: --ca-file: {key} holds no certificate in PEM form",
        ),
        (
            ["get-poetry", "--transform-server", "amp://localhost", "--ca-file", "{ca}", "10003"],
            "xform get-poetry: --ca-file: amp://localhost:10002 does not use TLS; "
            "netstrings://, amps://, wss://, https:// do",
        ),
        (
            ["get-poetry", "--ca-file", "{ca}", "10003"],
            "xform get-poetry: --ca-file: it is for a --transform-server over TLS, and there is none",
        ),
        (
            ["serve", "--ca-file", "{missing}"],
            "xform serve: --ca-file: cannot read {missing}: No such file or directory",
        ),
    ],
)
def test_unusableCAFile(tlsFiles, tmp_path, xformHere, arguments, message):
    """
    A C{--ca-file} that cannot be read, holds no certificate, or that no
    TLS URL would use, is a usage error of every command that has it.
    """
    names = {"missing": tmp_path / "missing.pem", "key": tlsFiles.key, "ca": tlsFiles.ca}
    command = arguments[0]
    status, out, err = xformHere(*(argument.format(**names) for argument in arguments))
    assert (status, out) == (2, b"")
    assert err == f"{message.format(**names)}; see 'xform {command} --help'\n"


def test_caFileInTheConfiguration(tlsFiles, xformHere, monkeypatch):
    """
    C{xform serve --print-config} shows the C{--ca-file} by its path, from
    the command line or from C{XFORM_CA_FILE}.
    """
    status, out, err = xformHere("serve", "--ca-file", str(tlsFiles.ca), "--print-config")
    assert (status, err) == (0, "")
    assert re.search(rf"^ca-file +{re.escape(str(tlsFiles.ca))}  \(command line\)$", out.decode(), re.M)
    monkeypatch.setenv("XFORM_CA_FILE", str(tlsFiles.otherCA))
    status, out, err = xformHere("serve", "--print-config")
    configured = rf"^ca-file +{re.escape(str(tlsFiles.otherCA))}  \(environment XFORM_CA_FILE\)$"
    assert re.search(configured, out.decode(), re.M)
