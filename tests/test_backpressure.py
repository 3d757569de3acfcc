"""
A client that sends requests and never reads the answers, over HTTP and
WebSocket: the gateway stops reading from it while its answers are unread,
so that what one connection holds stays bounded.

In memory, the contract with the transport: a transport whose write buffer
is full tells its producer to pause (C{pauseProducing}), and to resume once
the buffer has drained; here a L{StringTransport} is told so by hand.  Over
loopback, the real thing: a client whose socket reads nothing pipelines
megabyte requests, and the server serves only a few of them until the
client reads.  Those tests wait on the wall clock for the server to stop
serving (a few tenths of a second), since the kernel's buffers are what is
tested.
"""

import json

from twisted.internet import reactor
from twisted.internet.address import IPv4Address
from twisted.internet.defer import Deferred
from twisted.internet.endpoints import TCP4ClientEndpoint, connectProtocol, serverFromString
from twisted.internet.protocol import Protocol
from twisted.internet.task import deferLater
from twisted.internet.testing import StringTransport, StringTransportWithDisconnection
from twisted.trial.unittest import TestCase

from gateway.web import makeSite
from protocols.origins import OriginPolicy
from protocols.websocket import TransformWebSocketProtocol
from service import Limits, Transform, TransformService
from tests.helpers import misbehavingCatalogue
from tests.memory import MemoryTestCase
from tests.websocketclient import UPGRADE, WebSocketClient

CLIENT = IPv4Address("TCP", "192.0.2.7", 40000)

HEALTH = b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n"


class InMemoryTests(MemoryTestCase):
    """
    The web face's connections on L{StringTransport}s, the site's clock the
    network's.
    """

    def setUp(self):
        super().setUp()
        self.service = TransformService(misbehavingCatalogue(self.reactor), self.reactor, Limits(deadline=5))
        self.site = makeSite(self.service, {}, OriginPolicy(), self.reactor, idleTimeout=30)

    def connect(self, transport=None):
        protocol = self.site.buildProtocol(CLIENT)
        transport = transport or StringTransport(peerAddress=CLIENT)
        protocol.makeConnection(transport)
        return protocol, transport

    def test_httpStopsReadingWithARequestInFlight(self):
        """
        While the client leaves its answers unread, the channel reads
        nothing, even with a request in flight (Twisted's own channel
        stops reading only between requests).
        """
        protocol, transport = self.connect()
        protocol.dataReceived(b"POST /transform/stall HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\n\r\na")
        self.assertEqual(self.service.inFlight, 1)
        transport.producer.pauseProducing()
        self.assertEqual(transport.producerState, "paused")
        transport.producer.resumeProducing()
        self.assertEqual(transport.producerState, "producing")

    def test_httpRequestsWaitForTheClientToRead(self):
        """
        Requests that arrive behind unread answers are served only once the
        client has read them: the answers of a whole read of pipelined
        requests never pile up.
        """
        protocol, transport = self.connect()
        transport.producer.pauseProducing()
        protocol.dataReceived(HEALTH * 3)
        self.assertEqual(transport.value(), b"")
        transport.producer.resumeProducing()
        self.assertEqual(transport.value().count(b"HTTP/1.1 200 OK"), 3)

    def test_httpClientNotReadingIsCut(self):
        """
        A client that reads none of its answers for the idle timeout is
        cut (aborted: closing would wait for it to read).
        """
        protocol, transport = self.connect()
        protocol.dataReceived(HEALTH)
        transport.producer.pauseProducing()
        self.reactor.advance(29.9)
        self.assertFalse(transport.disconnecting)
        self.reactor.advance(0.1)
        self.assertTrue(transport.disconnected)

    def test_webSocketIsItsTransportsProducer(self):
        """
        Once upgraded, the WebSocket protocol takes the HTTP channel's place
        as the transport's producer: while the client leaves its answers
        unread, it reads no more messages.
        """
        transport = StringTransportWithDisconnection(peerAddress=CLIENT)
        protocol, _ = self.connect(transport)
        transport.protocol = protocol
        protocol.dataReceived(UPGRADE)
        self.assertTrue(transport.value().startswith(b"HTTP/1.1 101 "), transport.value())
        self.assertIsInstance(transport.producer, TransformWebSocketProtocol)
        self.assertTrue(transport.streaming)
        transport.producer.pauseProducing()
        self.assertEqual(transport.producerState, "paused")
        transport.producer.resumeProducing()
        self.assertEqual(transport.producerState, "producing")
        transport.producer.dropConnection(abort=True)


#: A poem of a megabyte, and its answer (upper case, by C{count}).
POEM = "a megabyte of a poem\n" * 50_000
ANSWER = POEM.upper()


class _SilentReader(Protocol):
    """
    A client that reads nothing (until L{read}) and sends C{requests} at
    once.  Reading nothing, its socket's receive buffer stays at its first
    size, which the system grows only for a client that reads.

    @ivar received: what came back.
    @ivar closed: fires once the connection is closed.
    """

    def __init__(self, requests: bytes) -> None:
        self.requests = requests
        self.received = bytearray()
        self.closed = Deferred()

    def connectionMade(self) -> None:
        self.transport.pauseProducing()
        self.transport.write(self.requests)

    def read(self) -> None:
        self.transport.resumeProducing()

    def dataReceived(self, data: bytes) -> None:
        self.received += data

    def connectionLost(self, reason) -> None:
        self.closed.callback(None)


class LoopbackTests(TestCase):
    """
    The web face on a loopback port, on the global reactor; its C{count}
    transform counts the requests it has served.
    """

    #: Requests sent at once, each a megabyte.
    REQUESTS = 24

    async def setUp(self):
        self.served = 0
        catalogue = misbehavingCatalogue(reactor)
        catalogue.add(Transform("count", "upper case, counted", self._count))
        limits = Limits(maxPoemBytes=2_000_000, maxInFlightPerConnection=64)
        service = TransformService(catalogue, reactor, limits)
        site = makeSite(service, {}, OriginPolicy(), reactor)
        port = await serverFromString(reactor, "tcp:0:interface=127.0.0.1").listen(site)
        self.addCleanup(port.stopListening)
        self.port = port.getHost().port

    def _count(self, poem: str) -> str:
        self.served += 1
        return poem.upper()

    async def settled(self) -> int:
        """
        How many requests the server has served once it stops serving more
        (no more for a few tenths of a second; at most ten seconds).
        """
        last = -1
        for _ in range(40):
            if self.served == last:
                break
            last = self.served
            await deferLater(reactor, 0.25, lambda: None)
        return self.served

    async def connect(self, protocol: Protocol) -> Protocol:
        return await connectProtocol(TCP4ClientEndpoint(reactor, "127.0.0.1", self.port), protocol)

    async def test_http(self):
        """
        Pipelined POSTs of a megabyte each: a handful are served while the
        client reads nothing; once it reads, every one is answered.
        """
        body = POEM.encode()
        request = b"POST /transform/count HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n%s" % (
            len(body),
            body,
        )
        client = await self.connect(
            _SilentReader(
                request * (self.REQUESTS - 1)
                + request.replace(b"Host: x\r\n", b"Host: x\r\nConnection: close\r\n")
            )
        )
        served = await self.settled()
        self.assertLess(served, self.REQUESTS // 2)
        client.read()
        await client.closed
        self.assertEqual(self.served, self.REQUESTS)
        self.assertEqual(bytes(client.received).count(b"HTTP/1.1 200 OK"), self.REQUESTS)
        self.assertEqual(bytes(client.received).count(ANSWER.encode()), self.REQUESTS)

    async def test_webSocket(self):
        """
        Messages of a megabyte each: a handful are served while the client
        reads nothing; once it reads, every one is answered.
        """
        client = WebSocketClient(f"ws://127.0.0.1:{self.port}/ws")
        await self.connect(client)
        await client.handshake
        client.transport.pauseProducing()
        for id in range(self.REQUESTS):
            call = {"jsonrpc": "2.0", "method": "transform", "params": ["count", POEM], "id": id}
            client.send(json.dumps(call))
        served = await self.settled()
        self.assertLess(served, self.REQUESTS // 2)
        client.transport.resumeProducing()
        answers = [json.loads(message) for message in await client.received(self.REQUESTS)]
        self.assertEqual(sorted(answer["id"] for answer in answers), list(range(self.REQUESTS)))
        self.assertTrue(all(answer["result"]["poem"] == ANSWER for answer in answers))
        client.close()
        await client.closed
