"""
Upstream transform servers: a gateway started with C{--upstream
PREFIX=URL} offers that server's transforms as C{PREFIX:NAME} through its
protocols, joined into pipelines with its own; an upstream that is down or
silent gives C{transform-failed} or C{timeout}, with one line in the log.
"""

import pytest
from twisted.internet import reactor
from twisted.internet.defer import CancelledError, Deferred
from twisted.internet.endpoints import serverFromString
from twisted.internet.protocol import Factory, Protocol
from twisted.protocols.basic import NetstringReceiver
from twisted.trial.unittest import TestCase

from gateway.clients import transformClient
from gateway.schemes import SCHEMES
from gateway.server import LISTENERS
from gateway.upstream import Upstream
from gateway.urls import ServerURL
from protocols.netstring import NoReply, encodeNetstring
from service import Limits, TransformFailed, TransformService, TransformTimeout, builtinCatalogue, transforms
from tests.behaviour import serverService
from tests.helpers import (
    PLAIN_SCHEMES,
    POEMS,
    GatewayProcess,
    TrackingAMPFactory,
    captureLogs,
    eachScheme,
    freePort,
    listenersFor,
    silentServer,
    xform,
)
from tests.test_process import netcat


class TutorialTransformProtocol(NetstringReceiver):
    """
    The Part 12 transformation server as the tutorial writes it, on
    Twisted's own L{NetstringReceiver}: an independent peer that knows
    nothing of this project.  It offers C{cummingsify} only, and closes
    without a reply for anything else.
    """

    def stringReceived(self, request: bytes) -> None:
        name, dot, poem = request.partition(b".")
        if dot and name == b"cummingsify":
            self.sendString(poem.lower())
        self.transport.loseConnection()


async def listen(factory):
    return await serverFromString(reactor, "tcp:0:interface=127.0.0.1").listen(factory)


# A server that is down or silent is the same to a client over TLS (and a
# silent one never finishes the handshake): every scheme.
@eachScheme("assertUpstreamDown", "assertUpstreamSilent", schemes=SCHEMES)
class UpstreamTests(TestCase):
    """
    A service whose catalogue delegates C{up} to an L{Upstream}, with the
    real netstring client, against real servers on loopback.
    """

    def setUp(self):
        self.events = captureLogs(self)

    def serviceFor(self, port, timeout=5.0, scheme="netstring"):
        self.server = ServerURL(scheme, "127.0.0.1", port)
        upstream = Upstream("up", self.server, transformClient(reactor, self.server, timeout), reactor)
        self.addCleanup(upstream.stopService)
        catalogue = builtinCatalogue(reactor)
        catalogue.delegate("up", upstream.resolve)
        return TransformService(catalogue, reactor, Limits(deadline=timeout + 5))

    def warnings(self):
        return [event for event in self.events if event.get("prefix") == "up"]

    def assertNoTraceback(self):
        self.assertFalse([event for event in self.events if event.get("log_failure")])

    async def test_joinsPipelines(self):
        port = await listen(Factory.forProtocol(TutorialTransformProtocol))
        self.addCleanup(port.stopListening)
        service = self.serviceFor(port.getHost().port)
        poem = POEMS["science"]
        result = await service.transform("titlecase|up:cummingsify|reverse", poem)
        self.assertEqual(result, transforms.reverse(poem.lower()))
        self.assertEqual(self.warnings(), [])

    async def assertUpstreamDown(self, scheme):
        """
        An upstream that is down gives L{TransformFailed} saying so, and one
        warning without a traceback.
        """
        service = self.serviceFor(freePort(), scheme=scheme)
        error = await self.assertFailure(service.transform("up:cummingsify", "HELLO"), TransformFailed)
        self.assertEqual(error.message, f"upstream up ({self.server}): connection refused")
        [warning] = self.warnings()
        self.assertEqual((warning["transform"], warning["reason"]), ("cummingsify", "connection refused"))
        self.assertNoTraceback()

    async def test_upstreamRefuses(self):
        """
        The upstream's own refusal comes through as it is: over netstrings,
        L{NoReply}, a L{TransformFailed}.
        """
        port = await listen(Factory.forProtocol(TutorialTransformProtocol))
        self.addCleanup(port.stopListening)
        service = self.serviceFor(port.getHost().port)
        await self.assertFailure(service.transform("up:nope", "HELLO"), NoReply)
        self.assertEqual(len(self.warnings()), 1)

    async def assertUpstreamSilent(self, scheme):
        """
        An upstream that never answers gives L{TransformTimeout} after the
        client's timeout, and one warning.
        """
        silent = silentServer()
        self.addCleanup(silent.close)
        service = self.serviceFor(silent.getsockname()[1], timeout=0.2, scheme=scheme)
        error = await self.assertFailure(service.transform("up:cummingsify", "HELLO"), TransformTimeout)
        self.assertEqual(error.message, "no reply within 0.2 seconds")
        self.assertEqual(len(self.warnings()), 1)
        self.assertNoTraceback()

    async def test_callerGivesUp(self):
        """
        A caller that gives up cancels the upstream call, whether it is
        still looking the address up or connected; that is no failure of
        the upstream's, so nothing is logged.
        """
        connected = Deferred()
        silent = Factory.forProtocol(Protocol)
        silent.buildProtocol = lambda address: connected.callback(None) or Protocol()
        port = await listen(silent)
        self.addCleanup(port.stopListening)
        service = self.serviceFor(port.getHost().port)

        resolving = service.transform("up:cummingsify", "HELLO")
        resolving.cancel()
        await self.assertFailure(resolving, CancelledError)

        waiting = service.transform("up:cummingsify", "HELLO")
        await connected
        waiting.cancel()
        await self.assertFailure(waiting, CancelledError)
        self.assertEqual(self.warnings(), [])
        self.assertEqual(service.inFlight, 0)


class UpstreamServiceTests(TestCase):
    """
    An L{Upstream} is a service of the gateway: stopping it releases its
    client (see L{gateway.clients}).
    """

    async def test_stoppingClosesTheAMPConnection(self):
        """
        The AMP client keeps its connection open between questions;
        stopping the upstream closes it.
        """
        factory = TrackingAMPFactory(serverService(), reactor)
        port = await listen(factory)
        self.addCleanup(port.stopListening)
        server = ServerURL("amp", "127.0.0.1", port.getHost().port)
        upstream = Upstream("up", server, transformClient(reactor, server), reactor)
        upstream.startService()
        self.assertEqual(await upstream.xform("cummingsify", "HELLO"), "hello")
        self.assertEqual(await upstream.xform("reverse", "A\nB"), "B\nA")
        self.assertEqual(len(factory.open), 1)
        await upstream.stopService()
        await factory.whenAllClosed().addTimeout(5, reactor)
        self.assertFalse(upstream.running)


@pytest.mark.parametrize("scheme", SCHEMES)
def test_stoppingWithNothingOpen(scheme):
    """
    An upstream whose client has no connection open stops at once.
    """
    server = ServerURL(scheme, "127.0.0.1", freePort())
    upstream = Upstream("up", server, transformClient(reactor, server), reactor)
    upstream.startService()
    stopped = upstream.stopService()
    assert stopped.called
    assert stopped.result is None


@pytest.fixture(scope="module")
def frontGateway(fullGateway):
    """
    A gateway in front of another (C{fullGateway}), which it reaches over
    every scheme, each under the scheme's name as prefix: C{amp:reverse}
    is C{reverse} asked over AMP.
    """
    upstreams = [
        arg for scheme in PLAIN_SCHEMES for arg in ("--upstream", f"{scheme}={fullGateway.url(scheme)}")
    ]
    with GatewayProcess(*upstreams, listeners=tuple(LISTENERS)) as process:
        yield process


@pytest.mark.parametrize("scheme", PLAIN_SCHEMES)
def test_upstreamGatewayProcess(frontGateway, scheme):
    """
    Asked over C{scheme}, the front gateway forwards C{scheme:NAME} to the
    other over C{scheme} too, in a pipeline with one of its own transforms.
    """
    poem = POEMS["science"]
    status, out, err = xform(
        "transform",
        f"{scheme}:piglatin|reverse|{scheme}:titlecase",
        "-s",
        frontGateway.url(scheme),
        input=poem.encode(),
    )
    assert (status, out.decode(), err) == (
        0,
        transforms.titlecase(transforms.reverse(transforms.piglatin(poem))),
        "",
    )


def test_upstreamOverNetcat(frontGateway):
    """
    C{PREFIX:NAME} works from netcat too; a prefix that is not configured is
    an unknown transform.
    """
    port = frontGateway.ports["netstring"]
    assert netcat(port, encodeNetstring(b"amp:cummingsify.HELLO WORLD")) == b"11:hello world,"
    assert netcat(port, encodeNetstring(b"elsewhere:cummingsify.HELLO")) == b""
    frontGateway.waitForLog(lambda: frontGateway.logged("unknown-transform: unknown transform 'elsewhere:"))


@pytest.mark.parametrize("scheme", PLAIN_SCHEMES)
def test_upstreamGoesAway(scheme):
    """
    An upstream reached over C{scheme} answers, then stops: the caller gets
    C{transform-failed}, and the gateway logs one line saying why, no
    traceback, and still stops cleanly.  Over AMP, the connection the
    first answer came on closes with the upstream, and the gateway
    connects again, to find it gone.
    """
    with (
        GatewayProcess(listeners=listenersFor(scheme)) as upstream,
        GatewayProcess("--upstream", f"up={upstream.url(scheme)}", listeners=("web",)) as gateway,
    ):
        url, caller = upstream.url(scheme), gateway.url("http")
        assert xform("transform", "up:cummingsify", "-s", caller, input=b"HELLO") == (0, b"hello", "")
        assert upstream.stop() == 0
        status, out, err = xform("transform", "up:cummingsify", "-s", caller, input=b"HELLO")
        assert (status, out, err) == (
            1,
            b"",
            f"xform: {caller}: transform-failed: upstream up ({url}): connection refused\n",
        )
        reason = f"upstream up ({url}) failed 'cummingsify': connection refused"
        gateway.waitForLog(lambda: gateway.logged(reason))
        assert gateway.stop() == 0
    assert len([line for line in gateway.log if reason in line]) == 1
    assert not gateway.logged("Traceback") and not gateway.logged("Unhandled")


def test_stopsWithItsUpstreamConnectionOpen(fullGateway):
    """
    A gateway whose AMP client holds a connection open to its upstream
    stops at once and cleanly: stopping the upstream's service closes it.
    """
    with GatewayProcess("--upstream", f"up={fullGateway.url('amp')}") as gateway:
        assert netcat(gateway.ports["netstring"], encodeNetstring(b"up:cummingsify.HELLO")) == b"5:hello,"
        assert gateway.stop(timeout=5) == 0
    assert not gateway.logged("Traceback") and not gateway.logged("Unhandled")


def test_silentUpstreamProcess():
    """
    An upstream that never answers gives C{timeout} within the gateway's
    deadline.
    """
    with silentServer() as silent:
        url = f"netstring://127.0.0.1:{silent.getsockname()[1]}"
        with GatewayProcess("--upstream", f"slow={url}", "--deadline", "0.5") as gateway:
            assert netcat(gateway.ports["netstring"], encodeNetstring(b"slow:reverse.A\nB\nC")) == b""
            gateway.waitForLog(lambda: gateway.logged("closing without a reply: timeout: no"))
    assert not gateway.logged("Traceback")


@pytest.mark.parametrize(
    "arguments, message",
    {
        ("--upstream", "remote"): "--upstream: 'remote': give PREFIX=URL",
        ("--upstream", "remote=127.0.0.1:1"): "--upstream: remote: '127.0.0.1:1' is not a server URL",
        ("--upstream", "a.b=netstring://h"): "unusable prefix 'a.b'",
        ("--upstream", "a=netstring://h", "--upstream", "a=netstring://i"): "prefix 'a' is given twice",
    }.items(),
)
def test_upstreamUsageErrors(xformHere, arguments, message):
    status, out, err = xformHere("serve", *arguments)
    assert status == 2 and message in err, (arguments, err)


class TutorialUpstreamTests(TestCase):
    """
    A gateway process whose upstream is the tutorial's own kind of server,
    written above on Twisted's L{NetstringReceiver} and run here.
    """

    async def setUp(self):
        self.tutorial = await listen(Factory.forProtocol(TutorialTransformProtocol))
        self.addCleanup(self.tutorial.stopListening)
        self.url = f"netstring://127.0.0.1:{self.tutorial.getHost().port}"
        self.gateway = GatewayProcess("--upstream", f"tut={self.url}").start()
        self.addCleanup(self.gateway.stop)
        server = ServerURL("netstring", "127.0.0.1", self.gateway.ports["netstring"])
        self.client = transformClient(reactor, server)

    async def test_throughTheGateway(self):
        poem = POEMS["ecstasy"]
        self.assertEqual(await self.client.xform("tut:cummingsify", poem), poem.lower())
        self.assertEqual(
            await self.client.xform("tut:cummingsify|mirror", poem), transforms.mirror(poem.lower())
        )
        await self.assertFailure(self.client.xform("tut:reverse", poem), NoReply)

    async def test_upstreamGoesAway(self):
        self.assertEqual(await self.client.xform("tut:cummingsify", "HELLO"), "hello")
        await self.tutorial.stopListening()
        await self.assertFailure(self.client.xform("tut:cummingsify", "HELLO"), NoReply)
        self.gateway.waitForLog(
            lambda: self.gateway.logged(f"upstream tut ({self.url}) failed 'cummingsify': connection refused")
        )
        self.assertFalse(self.gateway.logged("Traceback"))
