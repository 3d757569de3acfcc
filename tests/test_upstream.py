"""
Upstream transform servers: a gateway started with C{--upstream
PREFIX=URL} offers that server's transforms as C{PREFIX:NAME} through its
protocols, joined into pipelines with its own; an upstream that is down or
silent gives C{transform-failed} or C{timeout}, with one line in the log.

The upstreams' logic runs in memory, through the real client of each
scheme, with gateways built as C{xform serve} builds them; real gateway
processes prove it over real sockets: one in front of another over every
scheme, one whose upstream is the tutorial's own kind of server, one that
stops with its upstream connection open.
"""

import pytest
from twisted.internet import reactor
from twisted.internet.defer import CancelledError
from twisted.internet.endpoints import serverFromString
from twisted.internet.interfaces import IHostnameResolver, IHostResolution
from twisted.internet.protocol import Factory, Protocol
from twisted.internet.testing import MemoryReactorClock
from twisted.logger import formatEvent
from twisted.protocols.basic import NetstringReceiver
from twisted.trial.unittest import TestCase
from zope.interface import implementer

from gateway.clients import transformClient
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
)
from tests.memory import GATEWAY, HOST, MemoryTestCase
from tests.memory import url as memoryURL
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


#: Where the tutorial's server and the upstream gateway listen, in memory.
TUTORIAL = 11000
UPSTREAM = {"netstring": 11001, "amp": 11002, "web": 18080}


class UpstreamTestCase(MemoryTestCase):
    def setUp(self):
        super().setUp()
        self.events = captureLogs(self)

    def warnings(self):
        return [event for event in self.events if event.get("prefix") == "up"]

    def assertNoTraceback(self):
        self.assertFalse([event for event in self.events if event.get("log_failure")])

    def result(self, deferred):
        return self.successResultOf(self.network.run(deferred))

    def failure(self, deferred, *errorClasses):
        return self.failureResultOf(self.network.run(deferred), *errorClasses).value


@eachScheme("assertUpstreamDown", "assertUpstreamSilent")
class UpstreamTests(UpstreamTestCase):
    """
    A service whose catalogue delegates C{up} to an L{Upstream}, with the
    real client of a scheme, against servers in memory.
    """

    def serviceFor(self, port, timeout=5.0, scheme="netstring"):
        self.server = ServerURL(scheme, HOST, port)
        upstream = Upstream(
            "up", self.server, transformClient(self.reactor, self.server, timeout), self.reactor
        )
        self.addCleanup(lambda: self.result(upstream.stopService()))
        catalogue = builtinCatalogue(self.reactor)
        catalogue.delegate("up", upstream.resolve)
        return TransformService(catalogue, self.reactor, Limits(deadline=timeout + 5))

    def test_joinsPipelines(self):
        self.network.listen(TUTORIAL, Factory.forProtocol(TutorialTransformProtocol))
        service = self.serviceFor(TUTORIAL)
        poem = POEMS["science"]
        result = self.result(service.transform("titlecase|up:cummingsify|reverse", poem))
        self.assertEqual(result, transforms.reverse(poem.lower()))
        self.assertEqual(self.warnings(), [])

    def assertUpstreamDown(self, scheme):
        """
        An upstream that is down gives L{TransformFailed} saying so, and one
        warning without a traceback.
        """
        service = self.serviceFor(TUTORIAL, scheme=scheme)
        error = self.failure(service.transform("up:cummingsify", "HELLO"), TransformFailed)
        self.assertEqual(error.message, f"upstream up ({self.server}): connection refused")
        [warning] = self.warnings()
        self.assertEqual((warning["transform"], warning["reason"]), ("cummingsify", "connection refused"))
        self.assertNoTraceback()

    def test_upstreamRefuses(self):
        """
        The upstream's own refusal comes through as it is: over netstrings,
        L{NoReply}, a L{TransformFailed}.
        """
        self.network.listen(TUTORIAL, Factory.forProtocol(TutorialTransformProtocol))
        service = self.serviceFor(TUTORIAL)
        self.failure(service.transform("up:nope", "HELLO"), NoReply)
        self.assertEqual(len(self.warnings()), 1)

    def assertUpstreamSilent(self, scheme):
        """
        An upstream that never answers gives L{TransformTimeout} after the
        client's timeout, and one warning.
        """
        self.silentServer(TUTORIAL)
        service = self.serviceFor(TUTORIAL, timeout=0.2, scheme=scheme)
        error = self.failure(service.transform("up:cummingsify", "HELLO"), TransformTimeout)
        self.assertEqual(error.message, "no reply within 0.2 seconds")
        self.assertEqual(self.reactor.seconds(), 0.2)
        self.assertEqual(len(self.warnings()), 1)
        self.assertNoTraceback()

    def test_callerGivesUp(self):
        """
        A caller that gives up cancels the upstream call, whether it is
        still looking the address up, connecting or connected; that is no
        failure of the upstream's, so nothing is logged.
        """
        connected = []
        silent = Factory.forProtocol(Protocol)
        silent.buildProtocol = lambda address: connected.append(address) or Protocol()
        self.network.listen(TUTORIAL, silent)
        service = self.serviceFor(TUTORIAL)

        resolver = self.reactor.installNameResolver(_NeverResolves())
        resolving = service.transform("up:cummingsify", "HELLO")
        resolving.cancel()
        self.failure(resolving, CancelledError)
        self.reactor.installNameResolver(resolver)

        connecting = service.transform("up:cummingsify", "HELLO")
        connecting.cancel()
        self.failure(connecting, CancelledError)
        self.assertEqual(connected, [])

        waiting = service.transform("up:cummingsify", "HELLO")
        self.assertTrue(self.network.runUntil(lambda: connected))
        waiting.cancel()
        self.failure(waiting, CancelledError)
        self.assertEqual(self.warnings(), [])
        self.assertEqual(service.inFlight, 0)
        self.assertEqual(self.network.pumps, [])


@implementer(IHostResolution)
class _Resolution:
    def __init__(self, name: str) -> None:
        self.name = name

    def cancel(self) -> None:
        """
        Nothing to stop: it never ends anyway.
        """


@implementer(IHostnameResolver)
class _NeverResolves:
    """
    A name resolver that starts every resolution and finishes none.
    """

    def resolveHostName(self, receiver, hostName, portNumber=0, addressTypes=None, transportSemantics="TCP"):
        resolution = _Resolution(hostName)
        receiver.resolutionBegan(resolution)
        return resolution


class UpstreamServiceTests(UpstreamTestCase):
    """
    An L{Upstream} is a service of the gateway: stopping it releases its
    client (see L{gateway.clients}).
    """

    def test_stoppingClosesTheAMPConnection(self):
        """
        The AMP client keeps its connection open between questions;
        stopping the upstream closes it.
        """
        factory = TrackingAMPFactory(serverService(self.reactor), self.reactor)
        self.network.listen(UPSTREAM["amp"], factory)
        server = ServerURL("amp", HOST, UPSTREAM["amp"])
        upstream = Upstream("up", server, transformClient(self.reactor, server), self.reactor)
        upstream.startService()
        self.assertEqual(self.result(upstream.xform("cummingsify", "HELLO")), "hello")
        self.assertEqual(self.result(upstream.xform("reverse", "A\nB")), "B\nA")
        self.assertEqual(len(factory.open), 1)
        self.result(upstream.stopService())
        self.result(factory.whenAllClosed())
        self.assertFalse(upstream.running)


@pytest.mark.parametrize("scheme", PLAIN_SCHEMES)
def test_stoppingWithNothingOpen(scheme):
    """
    An upstream whose client has no connection open stops at once.
    """
    clock = MemoryReactorClock()
    server = ServerURL(scheme, HOST, UPSTREAM["netstring"])
    upstream = Upstream("up", server, transformClient(clock, server), clock)
    upstream.startService()
    stopped = upstream.stopService()
    assert stopped.called
    assert stopped.result is None


@eachScheme("assertUpstreamGoesAway")
class UpstreamGatewayTests(UpstreamTestCase):
    """
    Gateways as C{xform serve} builds them, in memory, one the upstream of
    the other.
    """

    def assertUpstreamGoesAway(self, scheme):
        """
        An upstream reached over C{scheme} answers, then stops: the caller gets
        C{transform-failed}, and the gateway logs one line saying why, no
        traceback, and still stops cleanly.  Over AMP, the connection the
        first answer came on closes with the upstream, and the gateway
        connects again, to find it gone.
        """
        upstream = self.gateway(ports=UPSTREAM)
        url = memoryURL(scheme, UPSTREAM)
        self.gateway("--upstream", f"up={url}")
        caller = transformClient(self.reactor, ServerURL("http", HOST, GATEWAY["web"]))
        self.assertEqual(self.result(caller.xform("up:cummingsify", "HELLO")), "hello")
        self.result(upstream.stopService())
        for port in UPSTREAM.values():
            self.network.kill(port)  # the process has ended
        error = self.failure(caller.xform("up:cummingsify", "HELLO"), TransformFailed)
        self.assertEqual(error.message, f"upstream up ({url}): connection refused")
        reason = f"upstream up ({url}) failed 'cummingsify': connection refused"
        said = [formatEvent(event) for event in self.events]
        self.assertEqual([line for line in said if reason in line], [reason])
        self.assertNoTraceback()

    def test_silentUpstream(self):
        """
        An upstream that never answers gives C{timeout} within the gateway's
        deadline.
        """
        self.silentServer(TUTORIAL)
        self.gateway("--upstream", f"slow=netstring://{HOST}:{TUTORIAL}", "--deadline", "0.5")
        caller = transformClient(self.reactor, ServerURL("netstring", HOST, GATEWAY["netstring"]))
        self.failure(caller.xform("slow:reverse", "A\nB\nC"), NoReply)
        self.assertEqual(self.reactor.seconds(), 0.5)
        said = [formatEvent(event) for event in self.events]
        self.assertTrue([line for line in said if "closing without a reply: timeout: no" in line], said)
        self.assertNoTraceback()


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
def test_upstreamGatewayProcess(frontGateway, xformHere, scheme):
    """
    Asked over C{scheme}, the front gateway forwards C{scheme:NAME} to the
    other over C{scheme} too, in a pipeline with one of its own transforms.
    """
    poem = POEMS["science"]
    status, out, err = xformHere(
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


def test_stopsWithItsUpstreamConnectionOpen(fullGateway):
    """
    A gateway whose AMP client holds a connection open to its upstream
    stops at once and cleanly: stopping the upstream's service closes it.
    """
    with GatewayProcess("--upstream", f"up={fullGateway.url('amp')}") as gateway:
        assert netcat(gateway.ports["netstring"], encodeNetstring(b"up:cummingsify.HELLO")) == b"5:hello,"
        assert gateway.stop(timeout=5) == 0
    assert not gateway.logged("Traceback") and not gateway.logged("Unhandled")


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
    written above on Twisted's L{NetstringReceiver} and run here, on a real
    socket; then the server goes away.
    """

    async def test_throughTheGatewayThenGone(self):
        tutorial = await serverFromString(reactor, "tcp:0:interface=127.0.0.1").listen(
            Factory.forProtocol(TutorialTransformProtocol)
        )
        self.addCleanup(tutorial.stopListening)
        url = f"netstring://127.0.0.1:{tutorial.getHost().port}"
        gateway = GatewayProcess("--upstream", f"tut={url}").start()
        self.addCleanup(gateway.stop)
        client = transformClient(reactor, ServerURL("netstring", "127.0.0.1", gateway.ports["netstring"]))

        poem = POEMS["ecstasy"]
        self.assertEqual(await client.xform("tut:cummingsify", poem), poem.lower())
        self.assertEqual(await client.xform("tut:cummingsify|mirror", poem), transforms.mirror(poem.lower()))
        await self.assertFailure(client.xform("tut:reverse", poem), NoReply)

        await tutorial.stopListening()
        await self.assertFailure(client.xform("tut:cummingsify", "HELLO"), NoReply)
        gateway.waitForLog(
            lambda: gateway.logged(f"upstream tut ({url}) failed 'cummingsify': connection refused")
        )
        self.assertFalse(gateway.logged("Traceback"))
