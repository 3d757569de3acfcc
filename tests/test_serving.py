"""
What an operator relies on, on in-memory transports and fake clocks: what
each protocol reports to its observer, the caps on connections and on
requests in flight per connection and per address, the drain of each
protocol's connections, the drain of the whole tree and its timeout,
and readiness.
"""

import http.client

from prometheus_client.parser import text_string_to_metric_families
from twisted.internet import reactor
from twisted.internet.address import IPv4Address
from twisted.internet.defer import Deferred
from twisted.internet.endpoints import clientFromString, serverFromString
from twisted.internet.error import ConnectionRefusedError
from twisted.internet.task import deferLater
from twisted.internet.testing import MemoryReactorClock, StringTransport
from twisted.internet.threads import deferToThread
from twisted.protocols import amp
from twisted.test import iosim
from twisted.trial.unittest import SynchronousTestCase, TestCase

from gateway.drain import Gateway
from gateway.metrics import (
    DURATION_BUCKETS,
    OTHER,
    PIPELINE,
    GatewayMetrics,
    ProtocolMetrics,
    transformLabels,
)
from gateway.web import makeSite
from protocols.amp.commands import TransformPoem
from protocols.amp.server import TransformAMPFactory
from protocols.connections import DRAINING, FIRST_BYTES_GRACE, TOO_MANY, TOO_MANY_FROM_PEER, Connections
from protocols.http import BusyChannel
from protocols.jsonrpc import encodeCall
from protocols.jsonrpcserver import JSONRPCServer
from protocols.netstring import NoReply, TransformFactory, TransformProxy
from protocols.origins import OriginPolicy
from service import Caller, Catalogue, Limits, Overloaded, Transform, TransformService, UnknownTransform
from tests.helpers import misbehavingCatalogue
from tests.websocketclient import UPGRADE

HELLO = b"23:cummingsify.HELLO WORLD,"
REPLY = b"11:hello world,"


def peer(host: str, port: int = 40000) -> IPv4Address:
    return IPv4Address("TCP", host, port)


#: The client of most connections.
CLIENT = peer("192.0.2.7")

#: How long the C{later} transform takes, in seconds.
LATER = 0.3


def laterCatalogue(clock) -> Catalogue:
    """
    The misbehaving catalogue and C{later}: the poem in upper case after
    L{LATER} seconds of C{clock}.
    """
    catalogue = misbehavingCatalogue(clock)
    catalogue.add(
        Transform("later", "upper case, later", lambda poem: deferLater(clock, LATER, str.upper, poem))
    )
    return catalogue


class OperationsCase(SynchronousTestCase):
    """
    One service on a fake clock, its connections in one registry, each
    protocol reporting to its own L{ProtocolMetrics}.
    """

    limits = Limits(deadline=3.0, maxInFlight=8, maxInFlightPerConnection=2, maxInFlightPerPeer=3)

    def setUp(self):
        self.clock = MemoryReactorClock()
        self.service = TransformService(laterCatalogue(self.clock), self.clock, self.limits)
        self.connections = Connections(maxConnections=4, maxPerPeer=2)
        label = transformLabels(entry.name for entry in self.service.catalogue)
        self.observed = {name: ProtocolMetrics(name, label) for name in ("netstring", "amp", "ws", "http")}
        self.netstring = TransformFactory(
            self.service, self.clock, 30.0, self.connections, self.observed["netstring"]
        )
        self.amp = TransformAMPFactory(self.service, self.clock, 30.0, self.connections, self.observed["amp"])

    def netstringConnection(self, address=CLIENT):
        protocol = self.netstring.buildProtocol(address)
        if protocol is None:
            return None, None
        transport = StringTransport(peerAddress=address)
        protocol.makeConnection(transport)
        return protocol, transport

    def ampConnection(self, address=CLIENT):
        server = self.amp.buildProtocol(address)
        client = amp.AMP()
        pump = iosim.connect(
            server,
            iosim.FakeTransport(server, isServer=True, peerAddress=address),
            client,
            iosim.FakeTransport(client, isServer=False),
            clock=self.clock,
        )
        return client, server, pump

    def ask(self, client, pump, name, poem="poem"):
        answer = Deferred()
        client.callRemote(TransformPoem, transform=name, poem=poem).chainDeferred(answer)
        pump.flush()
        return answer


class ObserverTests(OperationsCase):
    def test_netstringRequestCounted(self):
        """
        A netstring request is counted once with its transform and outcome;
        its bytes in and out, and its connection while open.
        """
        protocol, transport = self.netstringConnection()
        observed = self.observed["netstring"]
        self.assertEqual(observed.openConnections, 1)
        protocol.dataReceived(HELLO)
        self.assertEqual(transport.value(), REPLY)
        protocol.connectionLost(None)
        self.assertEqual(observed.requests, {("cummingsify", "ok"): 1})
        self.assertEqual((observed.bytesIn, observed.bytesOut), (len(HELLO), len(REPLY)))
        self.assertEqual(observed.openConnections, 0)

    def test_netstringRefusalsCounted(self):
        """
        A malformed netstring and an unknown transform count as requests,
        each with its error's name.
        """
        for data in [b"x:", b"8:nope.abc,"]:
            protocol, transport = self.netstringConnection()
            protocol.dataReceived(data)
            protocol.connectionLost(None)
        self.assertEqual(
            self.observed["netstring"].requests, {(OTHER, "bad-request"): 1, (OTHER, "unknown-transform"): 1}
        )

    def test_ampDurationsOnTheClock(self):
        """
        AMP questions are counted by outcome, and each one's duration on
        the clock falls in its bucket: C{later} takes L{LATER} seconds.
        """
        client, server, pump = self.ampConnection()
        answers = [self.ask(client, pump, name) for name in ["later", "reverse", "nope"]]
        self.clock.advance(LATER)
        pump.flush()
        self.assertEqual(self.successResultOf(answers[0]), {"poem": "POEM"})
        self.failureResultOf(answers[2], UnknownTransform)
        observed = self.observed["amp"]
        self.assertEqual(
            observed.requests, {("later", "ok"): 1, ("reverse", "ok"): 1, (OTHER, "unknown-transform"): 1}
        )
        later = DURATION_BUCKETS.index(0.5)
        self.assertEqual(observed.durations[0], 2)  # answered at once
        self.assertEqual(observed.durations[later], 1)
        self.assertAlmostEqual(observed.durationSum, LATER)
        self.assertGreater(observed.bytesIn, 0)
        self.assertGreater(observed.bytesOut, 0)

    def test_jsonrpcBatchCountsEachTransform(self):
        """
        Each C{transform} request of a JSON-RPC batch counts once; a
        listing is no transform; bad params are a bad request.
        """
        observed = self.observed["ws"]
        rpc = JSONRPCServer(self.service, observer=observed, clock=self.clock)
        batch = (
            "["
            + ",".join(
                [
                    encodeCall("transform", ["rot13", "a"], 1),
                    encodeCall("transform", ["rot13|reverse", "a"], 2),
                    encodeCall("transform", [1, "a"], 3),
                    encodeCall("list_transforms", [], 4),
                ]
            )
            + "]"
        )
        rpc.answer(batch.encode())
        self.assertEqual(
            observed.requests, {("rot13", "ok"): 1, (PIPELINE, "ok"): 1, (OTHER, "bad-request"): 1}
        )

    def test_labelsAreBounded(self):
        """
        However many names clients send, the transform label takes the
        catalogue's names, C{pipeline} and C{other} only.
        """
        label = transformLabels(["rot13", "reverse"])
        names = {label(f"name-{n}") for n in range(1000)} | {label(f"rot13|x{n}") for n in range(1000)}
        self.assertEqual(names, {OTHER, PIPELINE})
        self.assertEqual(label("rot13"), "rot13")


class ConnectionCapTests(OperationsCase):
    def test_refusals(self):
        """
        The registry refuses a connection over the cap per address, over
        the total cap, and any while it drains; a closed connection frees
        its place.
        """
        connections = Connections(maxConnections=3, maxPerPeer=2)
        first, second, third = object(), object(), object()
        connections.add(first, "a")
        connections.add(second, "a")
        self.assertEqual(connections.refusal("a"), TOO_MANY_FROM_PEER)
        self.assertIsNone(connections.refusal("b"))
        connections.add(third, "b")
        self.assertEqual(connections.refusal("c"), TOO_MANY)
        connections.remove(first)
        self.assertIsNone(connections.refusal("a"))
        connections.draining = True
        self.assertEqual(connections.refusal("d"), DRAINING)

    def test_capsHoldOverEveryProtocol(self):
        """
        The caps count the connections of every protocol together: two
        netstring connections from one address leave none for it over AMP;
        the fourth connection in all is refused whoever asks.  Each refusal
        is counted by the protocol that refused it.
        """
        self.netstringConnection()
        self.netstringConnection()
        self.assertIsNone(self.amp.buildProtocol(peer("192.0.2.7")))
        self.ampConnection(peer("192.0.2.8"))
        self.netstringConnection(peer("192.0.2.9"))
        self.assertEqual(self.netstringConnection(peer("192.0.2.10")), (None, None))
        self.assertEqual(self.observed["amp"].refused, {TOO_MANY_FROM_PEER: 1})
        self.assertEqual(self.observed["netstring"].refused, {TOO_MANY: 1})

    def test_httpOverTheCapsAnswered503(self):
        """
        An HTTP connection over the caps is answered 503 overloaded, with
        Retry-After and Connection: close, once its request arrives.
        """
        site = makeSite(
            self.service, {}, OriginPolicy(), self.clock, connections=Connections(maxConnections=0)
        )
        busy = site.buildProtocol(peer("192.0.2.7"))
        self.assertIsInstance(busy, BusyChannel)
        transport = StringTransport()
        busy.makeConnection(transport)
        self.assertEqual(transport.value(), b"")
        busy.dataReceived(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        head, _, body = transport.value().partition(b"\r\n\r\n")
        self.assertTrue(head.startswith(b"HTTP/1.1 503 "))
        self.assertIn(b"Retry-After: 1", head)
        self.assertIn(b"Connection: close", head)
        self.assertIn(b'"overloaded"', body)
        self.assertTrue(transport.disconnecting)

    def test_webSocketInItsOpeningHandshakeCounts(self):
        """
        A WebSocket connection still in its opening handshake holds its
        place under the caps (as an HTTP connection: the handshake is an
        HTTP request), and the idle timeout ends it there.
        """
        site = makeSite(
            self.service, {}, OriginPolicy(), self.clock, connections=Connections(maxConnections=1)
        )
        opening = site.buildProtocol(peer("192.0.2.7"))
        transport = StringTransport()
        opening.makeConnection(transport)
        opening.dataReceived(UPGRADE[:-2])  # all but the blank line that ends it
        self.assertIsInstance(site.buildProtocol(peer("192.0.2.8")), BusyChannel)
        self.clock.advance(site.timeOut)
        self.assertTrue(transport.disconnecting)
        self.assertEqual(transport.value(), b"")

    def test_silentHTTPConnectionOverTheCapsDropped(self):
        """
        A connection over the caps that sends nothing is dropped after
        L{BusyChannel.GRACE} seconds.
        """
        site = makeSite(
            self.service, {}, OriginPolicy(), self.clock, connections=Connections(maxConnections=0)
        )
        busy = site.buildProtocol(peer("192.0.2.7"))
        transport = StringTransport()
        busy.makeConnection(transport)
        self.clock.advance(BusyChannel.GRACE)
        self.assertTrue(transport.disconnecting)
        self.assertEqual(transport.value(), b"")


class InFlightCapTests(OperationsCase):
    """
    The service's caps per connection and per address hold on every
    protocol, since each passes its L{Caller}.
    """

    def test_netstringPerAddress(self):
        """
        Netstring has one request per connection, so its cap is the one per
        address: past it, the next connection from that address is closed
        without a reply; another address is served.
        """
        self.connections.maxPerPeer = self.connections.maxConnections = None
        for _ in range(3):
            protocol, transport = self.netstringConnection()
            protocol.dataReceived(b"10:stall.poem,")
            self.assertFalse(transport.disconnecting)
        protocol, transport = self.netstringConnection()
        protocol.dataReceived(b"10:stall.poem,")
        self.assertTrue(transport.disconnecting)
        self.assertEqual(transport.value(), b"")
        protocol, transport = self.netstringConnection(peer("192.0.2.8"))
        protocol.dataReceived(HELLO)
        self.assertEqual(transport.value(), REPLY)
        self.assertEqual(self.observed["netstring"].requests["stall", "overloaded"], 1)
        self.assertEqual(self.service.refusals["in-flight-per-peer"], 1)

    def test_ampPerConnection(self):
        """
        Past its connection's cap, an AMP question is answered
        C{OVERLOADED}; another connection is served.
        """
        client, server, pump = self.ampConnection()
        stalled = [self.ask(client, pump, "stall") for _ in range(2)]
        refused = self.ask(client, pump, "reverse")
        self.failureResultOf(refused, Overloaded)
        other, _, otherPump = self.ampConnection(peer("192.0.2.8"))
        self.assertEqual(self.successResultOf(self.ask(other, otherPump, "reverse")), {"poem": "poem"})
        for answer in stalled:
            self.assertNoResult(answer)
        self.assertEqual(self.service.refusals["in-flight-per-connection"], 1)

    def test_jsonrpcPerConnection(self):
        """
        Past its connection's cap, a JSON-RPC request is answered with the
        C{overloaded} error.
        """
        rpc = JSONRPCServer(self.service)
        caller = Caller("192.0.2.7", object())
        for n in range(2):
            rpc.answer(encodeCall("transform", ["stall", "a"], n).encode(), caller)
        answer = rpc.answer(encodeCall("transform", ["reverse", "a"], 9).encode(), caller)
        self.assertIn(b'"overloaded"', answer)


class DrainTests(OperationsCase):
    def test_netstringIdleClosedInFlightAnswered(self):
        """
        Draining closes a netstring connection that sends nothing within
        the grace; one whose request is in flight gets its answer, then
        closes.
        """
        idle, idleTransport = self.netstringConnection()
        busy, busyTransport = self.netstringConnection(peer("192.0.2.8"))
        busy.dataReceived(b"10:later.poem,")
        self.connections.drain()
        self.assertFalse(busyTransport.disconnecting)
        self.clock.advance(LATER)
        self.assertEqual(busyTransport.value(), b"4:POEM,")
        self.assertTrue(busyTransport.disconnecting)
        self.assertFalse(idleTransport.disconnecting)
        self.clock.advance(FIRST_BYTES_GRACE - LATER)
        self.assertTrue(idleTransport.disconnecting)
        self.assertEqual(idleTransport.value(), b"")

    def test_requestArrivingInTheGraceServed(self):
        """
        A client that connected just before the drain, and whose request
        arrives within the grace, is served: the drain does not cut a
        request on its way.
        """
        protocol, transport = self.netstringConnection()
        client, server, pump = self.ampConnection(peer("192.0.2.8"))
        self.connections.drain()
        self.clock.advance(FIRST_BYTES_GRACE / 2)
        protocol.dataReceived(HELLO)
        self.assertEqual(transport.value(), REPLY)
        self.assertEqual(self.successResultOf(self.ask(client, pump, "reverse")), {"poem": "poem"})
        self.assertTrue(server.transport.disconnecting)

    def test_ampClosesOnceAnswered(self):
        """
        Draining closes an AMP connection once its questions are answered,
        not before.
        """
        client, server, pump = self.ampConnection()
        answer = self.ask(client, pump, "later")
        self.connections.drain()
        pump.flush()
        self.assertFalse(server.transport.disconnecting)
        self.clock.advance(LATER)
        pump.flush()
        self.assertEqual(self.successResultOf(answer), {"poem": "POEM"})
        self.assertEqual(len(self.connections), 0)

    def test_newConnectionsRefusedWhileDraining(self):
        self.connections.drain()
        self.assertEqual(self.netstringConnection(), (None, None))
        self.assertEqual(self.observed["netstring"].refused, {DRAINING: 1})


class GatewayStopTests(OperationsCase):
    """
    The drain of the whole tree, on a fake clock.
    """

    def gateway(self, drainTimeout=2.0, drainDelay=0.0):
        gateway = Gateway(
            self.clock,
            self.service,
            self.connections,
            drainTimeout,
            handleSignals=False,
            drainDelay=drainDelay,
        )
        gateway.startService()
        return gateway

    def test_drainDelayServesOnUnready(self):
        """
        With a drain delay, a stopping gateway is unready at once but goes on
        serving its connections as usual for that long; then it drains.
        """
        gateway = self.gateway(drainDelay=3.0)
        client, server, pump = self.ampConnection()
        stopped = gateway.stopService()
        self.assertEqual(gateway.readiness(), ["stopping"])
        self.clock.advance(2.9)
        self.assertEqual(self.successResultOf(self.ask(client, pump, "reverse")), {"poem": "poem"})
        self.assertFalse(server.transport.disconnecting)
        self.assertFalse(self.connections.draining)
        self.clock.advance(0.1)
        pump.flush()
        self.assertTrue(server.transport.disconnecting)
        self.successResultOf(stopped)

    def test_secondSignalCutsTheDelayShort(self):
        """
        Cutting the drain short during the delay ends the delay too.
        """
        gateway = self.gateway(drainDelay=3.0)
        client, server, pump = self.ampConnection()
        answer = self.ask(client, pump, "stall")
        stopped = gateway.stopService()
        gateway._cutShort()
        pump.flush()
        self.successResultOf(stopped)
        self.failureResultOf(answer)
        self.assertEqual(len(self.connections), 0)

    def test_drainedBeforeTheTimeout(self):
        """
        Stopping waits for the request in flight, which is answered; then
        the tree has stopped.
        """
        gateway = self.gateway()
        client, server, pump = self.ampConnection()
        answer = self.ask(client, pump, "later")
        stopped = gateway.stopService()
        pump.flush()
        self.assertNoResult(stopped)
        self.assertEqual(gateway.readiness(), ["stopping"])
        self.clock.advance(LATER)
        pump.flush()
        self.assertEqual(self.successResultOf(answer), {"poem": "POEM"})
        self.successResultOf(stopped)

    def test_cutAtTheTimeout(self):
        """
        A request still in flight when the drain times out is cut: its
        connection is aborted, and the tree stops.
        """
        gateway = self.gateway(drainTimeout=2.0)
        client, server, pump = self.ampConnection()
        answer = self.ask(client, pump, "stall")
        stopped = gateway.stopService()
        self.clock.advance(1.9)
        pump.flush()
        self.assertNoResult(stopped)
        self.clock.advance(0.1)
        pump.flush()
        self.successResultOf(stopped)
        self.failureResultOf(answer)
        self.assertEqual(len(self.connections), 0)

    def test_notReadyAtTheCapOnRequestsInFlight(self):
        """
        The gateway is not ready while as many requests are in flight as
        the service takes.
        """
        gateway = self.gateway()
        self.assertEqual(gateway.readiness(), [])
        for n in range(self.limits.maxInFlight):
            self.service.transform("stall", "poem", Caller(f"192.0.2.{n}", n))
        [reason] = gateway.readiness()
        self.assertIn("--max-in-flight", reason)


class MetricsTests(OperationsCase):
    def test_exposition(self):
        """
        The exposition, parsed with C{prometheus_client}'s own parser,
        holds the counts the protocols reported and the service's.
        """
        metrics = GatewayMetrics(self.service, self.connections, lambda: True)
        metrics.protocols["netstring"].requestServed("rot13", "ok", 0.002)
        metrics.protocols["netstring"].connectionRefused(TOO_MANY)
        samples = {
            (sample.name, tuple(sorted(sample.labels.items()))): sample.value
            for family in text_string_to_metric_families(metrics.exposition().decode())
            for sample in family.samples
        }
        key = (("outcome", "ok"), ("protocol", "netstring"), ("transform", "rot13"))
        self.assertEqual(samples["xform_requests_total", key], 1)
        self.assertEqual(
            samples["xform_request_duration_seconds_bucket", (("le", "0.0025"), ("protocol", "netstring"))], 1
        )
        self.assertEqual(
            samples["xform_request_duration_seconds_bucket", (("le", "0.001"), ("protocol", "netstring"))], 0
        )
        self.assertEqual(
            samples["xform_connections_refused_total", (("limit", TOO_MANY), ("protocol", "netstring"))], 1
        )
        self.assertEqual(samples["xform_transforms_in_flight", ()], 0)
        self.assertEqual(samples["xform_ready", ()], 1)


class IdleTimeoutTests(OperationsCase):
    def test_idleTimeoutCounted(self):
        """
        A netstring client that sends nothing is dropped at the idle
        timeout, and counted.
        """
        protocol, transport = self.netstringConnection()
        self.clock.advance(30.0)
        self.assertTrue(transport.disconnecting)
        self.assertEqual(self.observed["netstring"].idleTimeouts, 1)


class LoopbackTests(TestCase):
    """
    On the real reactor and loopback sockets.
    """

    async def test_upstreamCallsCounted(self):
        """
        The calls to an upstream are counted by outcome: answered, refused
        by the upstream (a netstring server closes without a reply), and
        the upstream unreachable.
        """
        service = TransformService(misbehavingCatalogue(reactor), reactor, Limits())
        port = await serverFromString(reactor, "tcp:0:interface=127.0.0.1").listen(
            TransformFactory(service, reactor)
        )
        self.addCleanup(port.stopListening)
        metrics = GatewayMetrics(service, Connections(), lambda: True)
        endpoint = clientFromString(reactor, f"tcp:127.0.0.1:{port.getHost().port}")
        upstream = metrics.observeUpstream("up", TransformProxy(endpoint, reactor))
        self.assertEqual(await upstream.xform("rot13", "a"), "n")
        with self.assertRaises(NoReply):
            await upstream.xform("nope", "a")
        closed = metrics.observeUpstream(
            "down", TransformProxy(clientFromString(reactor, "tcp:127.0.0.1:1"), reactor)
        )
        with self.assertRaises(ConnectionRefusedError):
            await closed.xform("rot13", "a")
        self.assertEqual(upstream.calls, {"ok": 1, "transform-failed": 1})
        self.assertEqual(closed.calls, {"connection-failed": 1})
        exposition = metrics.exposition().decode()
        self.assertIn('xform_upstream_calls_total{outcome="ok",upstream="up"} 1.0', exposition)

    async def test_httpCountsAgainstTheClientsAddress(self):
        """
        Over HTTP a request counts against its client's address: past that
        address's cap it is answered 503, while another address is served.
        """
        limits = Limits(deadline=1.0, maxInFlight=8, maxInFlightPerPeer=1)
        service = TransformService(misbehavingCatalogue(reactor), reactor, limits)
        site = makeSite(service, {}, OriginPolicy(), reactor)
        port = await serverFromString(reactor, "tcp:0:interface=127.0.0.1").listen(site)
        self.addCleanup(port.stopListening)
        address = ("127.0.0.1", port.getHost().port)

        def post(source: str, name: str) -> int:
            connection = http.client.HTTPConnection(*address, timeout=10, source_address=(source, 0))
            try:
                connection.request("POST", f"/transform/{name}", body=b"poem")
                return connection.getresponse().status
            finally:
                connection.close()

        stalled = deferToThread(post, "127.0.0.1", "stall")
        while service.inFlight == 0:
            await deferLater(reactor, 0.01, lambda: None)
        self.assertEqual(await deferToThread(post, "127.0.0.1", "rot13"), 503)
        self.assertEqual(await deferToThread(post, "127.0.0.2", "rot13"), 200)
        self.assertEqual(await stalled, 504)
