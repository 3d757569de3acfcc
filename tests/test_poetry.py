"""
The poetry protocol on in-memory transports and fake clocks: the server,
fast and slow, plain and netstring; the client and its one L{Deferred}.
"""

from twisted.internet.address import IPv4Address
from twisted.internet.defer import CancelledError
from twisted.internet.endpoints import TCP4ClientEndpoint, TCP4ServerEndpoint
from twisted.internet.error import ConnectionDone, ConnectionLost, ConnectionRefusedError
from twisted.internet.task import Clock
from twisted.internet.testing import MemoryReactorClock, StringTransport
from twisted.python.failure import Failure
from twisted.test.iosim import ConnectionCompleter
from twisted.trial.unittest import SynchronousTestCase

from protocols.netstring import encodeNetstring
from protocols.poetry import (
    DownloadFailed,
    Pace,
    PoemTruncated,
    PoetryClientFactory,
    PoetryServerFactory,
)
from service import TransformTimeout
from tests.helpers import POEMS, captureLogs

PEER = IPv4Address("TCP", "192.0.2.7", 40000)
SCIENCE = POEMS["science"].encode("utf-8")
ALLA_SERA = POEMS["alla_sera"].encode("utf-8")


class PoetryServerTests(SynchronousTestCase):
    def setUp(self):
        self.clock = Clock()
        self.events = captureLogs(self)

    def connect(self, **options):
        factory = PoetryServerFactory(SCIENCE, self.clock, name="science.txt", **options)
        protocol = factory.buildProtocol(PEER)
        transport = StringTransport(peerAddress=PEER)
        protocol.makeConnection(transport)
        return protocol, transport

    def assertNoTimers(self):
        self.assertEqual(self.clock.getDelayedCalls(), [])

    def departures(self):
        return [event for event in self.events if "sent" in event]

    def test_wholePoemThenClose(self):
        """
        Part 11: on connect the server sends the poem and closes.
        """
        protocol, transport = self.connect()
        self.assertEqual(transport.value(), SCIENCE)
        self.assertTrue(transport.disconnecting)
        self.assertNoTimers()

    def test_netstring(self):
        protocol, transport = self.connect(netstring=True)
        self.assertEqual(transport.value(), encodeNetstring(SCIENCE))
        self.assertTrue(transport.disconnecting)

    def test_slowPiecesOnTheClock(self):
        """
        A slow server sends C{numBytes} at once, then C{numBytes} more every
        C{delay} seconds, and closes after the last piece.
        """
        protocol, transport = self.connect(pace=Pace(numBytes=100, delay=0.5))
        self.assertEqual(transport.value(), SCIENCE[:100])
        self.clock.advance(0.4)
        self.assertEqual(transport.value(), SCIENCE[:100])
        self.clock.advance(0.1)
        self.assertEqual(transport.value(), SCIENCE[:200])
        self.assertFalse(transport.disconnecting)
        self.clock.pump([0.5] * (len(SCIENCE) // 100 - 1))
        self.assertEqual(transport.value(), SCIENCE)
        self.assertTrue(transport.disconnecting)
        self.assertNoTimers()
        protocol.connectionLost(Failure(ConnectionDone()))
        self.assertEqual(self.departures(), [])

    def test_slowNetstring(self):
        """
        The netstring is paced like a plain poem, framing included.
        """
        payload = encodeNetstring(SCIENCE)
        protocol, transport = self.connect(netstring=True, pace=Pace(numBytes=1, delay=0.01))
        self.clock.pump([0.01] * (len(payload) - 2))
        self.assertEqual(transport.value(), payload[:-1])
        self.assertFalse(transport.disconnecting)
        self.clock.advance(0.01)
        self.assertEqual(transport.value(), payload)
        self.assertTrue(transport.disconnecting)

    def test_clientLeavesMidPoem(self):
        """
        When the client goes away mid-poem, the server stops sending, keeps
        no timer, and logs once how far it got.
        """
        protocol, transport = self.connect(pace=Pace(numBytes=100, delay=0.5))
        self.clock.advance(0.5)
        protocol.connectionLost(Failure(ConnectionLost()))
        self.assertNoTimers()
        self.clock.advance(10)
        self.assertEqual(transport.value(), SCIENCE[:200])
        [departure] = self.departures()
        self.assertEqual((departure["poem"], departure["sent"], departure["size"]), ("science.txt", 200, 653))
        self.assertEqual(departure["peer"], PEER)

    def test_othersAreServedWhenOneLeaves(self):
        """
        Clients of one slow server each have their own pace: one leaving
        does not disturb the others.
        """
        pace = Pace(numBytes=300, delay=1.0)
        first, firstTransport = self.connect(pace=pace)
        self.clock.advance(0.5)
        second, secondTransport = self.connect(pace=pace)
        first.connectionLost(Failure(ConnectionLost()))
        self.clock.pump([0.5, 0.5, 0.5, 0.5])
        self.assertEqual(firstTransport.value(), SCIENCE[:300])
        self.assertEqual(secondTransport.value(), SCIENCE)
        self.assertTrue(secondTransport.disconnecting)
        self.assertEqual([event["sent"] for event in self.departures()], [300])

    def test_emptyPoem(self):
        factory = PoetryServerFactory(b"", self.clock, netstring=True, pace=Pace(10, 1.0))
        transport = StringTransport()
        factory.buildProtocol(PEER).makeConnection(transport)
        self.assertEqual(transport.value(), b"0:,")
        self.assertTrue(transport.disconnecting)
        self.assertNoTimers()

    def test_badPace(self):
        self.assertRaises(ValueError, Pace, 0, 1.0)
        self.assertRaises(ValueError, Pace, 10, 0)


class PoetryClientTests(SynchronousTestCase):
    """
    The client protocol, fed by hand on a L{StringTransport}.
    """

    def setUp(self):
        self.clock = Clock()
        self.progress = []

    def connect(self, **options):
        self.factory = PoetryClientFactory(self.clock, progress=self.progress.append, **options)
        self.protocol = self.factory.buildProtocol(PEER)
        self.transport = StringTransport()
        self.protocol.makeConnection(self.transport)
        return self.factory.poem

    def receive(self, data, pieces=3):
        size = -(-len(data) // pieces)
        for start in range(0, len(data), size):
            self.protocol.dataReceived(data[start : start + size])

    def close(self, reason=ConnectionDone):
        self.protocol.connectionLost(Failure(reason()))

    def test_plainPoem(self):
        poem = self.connect()
        self.receive(ALLA_SERA)
        self.assertNoResult(poem)
        self.close()
        self.assertEqual(self.successResultOf(poem), POEMS["alla_sera"])
        third = -(-len(ALLA_SERA) // 3)
        self.assertEqual(self.progress, [third, 2 * third, len(ALLA_SERA)])
        self.assertEqual(self.clock.getDelayedCalls(), [])

    def test_plainPoemLost(self):
        """
        A plain poem is whole when the server closes cleanly; a connection
        lost otherwise is a failure.
        """
        poem = self.connect()
        self.receive(SCIENCE[:100])
        self.close(ConnectionLost)
        error = self.failureResultOf(poem, DownloadFailed).value
        self.assertIn("the connection was lost after 100 bytes", str(error))

    def test_netstringPoem(self):
        """
        Once the netstring is whole, the client closes; the poem is its
        payload.
        """
        poem = self.connect(netstring=True)
        self.receive(encodeNetstring(SCIENCE), pieces=7)
        self.assertTrue(self.transport.disconnecting)
        self.close()
        self.assertEqual(self.successResultOf(poem), POEMS["science"])
        self.assertEqual(self.progress[-1], len(encodeNetstring(SCIENCE)))

    def test_netstringTruncated(self):
        """
        A netstring poem cut short, even by a clean close, is truncated.
        """
        poem = self.connect(netstring=True)
        self.receive(encodeNetstring(SCIENCE)[:300])
        self.close()
        error = self.failureResultOf(poem, PoemTruncated).value
        self.assertEqual(
            str(error),
            "the poem is truncated: the connection closed after 300 bytes, before the end of its netstring",
        )

    def test_netstringCommaMissing(self):
        poem = self.connect(netstring=True)
        self.receive(encodeNetstring(SCIENCE)[:-1])
        self.close()
        self.failureResultOf(poem, PoemTruncated)

    def test_notANetstring(self):
        """
        A plain poem given to a netstring client is refused at its first
        bytes, and the connection dropped.
        """
        poem = self.connect(netstring=True)
        self.receive(SCIENCE)
        self.assertTrue(self.transport.disconnected)
        self.assertEqual(self.progress, [218])
        self.close(ConnectionLost)
        error = self.failureResultOf(poem, DownloadFailed).value
        self.assertEqual(
            str(error), "the poem is not a netstring: it does not start with a decimal length and a colon"
        )

    def test_notUTF8(self):
        for netstring, data in [(False, b"caf\xe9"), (True, b"4:caf\xe9,")]:
            poem = self.connect(netstring=netstring)
            self.receive(data, pieces=1)
            self.close()
            error = self.failureResultOf(poem, DownloadFailed).value
            self.assertEqual(str(error), "the poem is not UTF-8 (byte 3)")

    def test_tooLong(self):
        for netstring, data in [(False, b"x" * 101), (True, b"101:")]:
            poem = self.connect(netstring=netstring, maxPoemBytes=100)
            self.receive(data, pieces=1)
            self.assertTrue(self.transport.disconnected)
            self.close(ConnectionLost)
            self.failureResultOf(poem, DownloadFailed)

    def test_silentServer(self):
        """
        A server silent for C{idleTimeout} seconds, counted from its last
        bytes, is given up on.
        """
        poem = self.connect(idleTimeout=5)
        self.clock.advance(4)
        self.receive(b"Sonnet")
        self.clock.advance(4.9)
        self.assertFalse(self.transport.disconnected)
        self.clock.advance(0.1)
        self.assertTrue(self.transport.disconnected)
        self.close(ConnectionLost)
        error = self.failureResultOf(poem, DownloadFailed).value
        self.assertEqual(str(error), "the server sent nothing for 5 seconds (after 6 bytes)")
        self.assertEqual(self.clock.getDelayedCalls(), [])

    def test_firedOnce(self):
        """
        The factory fires its L{Deferred} once: a poem that completes after
        the download was cancelled changes nothing.
        """
        poem = self.connect(netstring=True)
        self.receive(encodeNetstring(SCIENCE)[:50])
        poem.cancel()
        self.assertTrue(self.transport.disconnected)
        self.factory.poemReceived("late")
        self.close(ConnectionLost)
        self.failureResultOf(poem, CancelledError)


class DownloadTests(SynchronousTestCase):
    """
    The client against the real server protocol, over in-memory connections
    made by a fake reactor.
    """

    def setUp(self):
        self.reactor = MemoryReactorClock()
        self.completer = ConnectionCompleter(self.reactor)
        self.endpoint = TCP4ClientEndpoint(self.reactor, "127.0.0.1", 10003)
        self.progress = []

    def serve(self, **options):
        TCP4ServerEndpoint(self.reactor, 10003).listen(PoetryServerFactory(SCIENCE, self.reactor, **options))

    def download(self, **options):
        factory = PoetryClientFactory(self.reactor, progress=self.progress.append, **options)
        return factory.download(self.endpoint, connectTimeout=3)

    def test_slowNetstringPoem(self):
        self.serve(netstring=True, pace=Pace(numBytes=200, delay=0.7))
        poem = self.download(netstring=True)
        pump = self.completer.succeedOnce()
        for _ in range(4):
            pump.flush()
            self.reactor.advance(0.7)
        pump.flush()
        self.assertEqual(self.successResultOf(poem), POEMS["science"])
        self.assertEqual(self.progress, [200, 400, 600, len(encodeNetstring(SCIENCE))])
        self.assertEqual(self.reactor.getDelayedCalls(), [])

    def test_clientLeavesASlowServer(self):
        """
        Cancelling a download drops the connection; the server stops
        sending to it and keeps no timer.
        """
        self.serve(pace=Pace(numBytes=100, delay=0.7))
        poem = self.download()
        pump = self.completer.succeedOnce()
        pump.flush()
        self.assertEqual(self.progress, [100])
        poem.cancel()
        pump.flush()
        self.failureResultOf(poem, CancelledError)
        self.assertTrue(pump.server.transport.disconnected)
        self.assertEqual(self.reactor.getDelayedCalls(), [])

    def test_connectionRefused(self):
        poem = self.download()
        self.completer.failOnce()
        self.failureResultOf(poem, ConnectionRefusedError)

    def test_noConnectionInTime(self):
        poem = self.download()
        self.reactor.advance(3)
        error = self.failureResultOf(poem, TransformTimeout).value
        self.assertEqual(error.message, "no connection within 3 seconds")

    def test_cancelWhileConnecting(self):
        poem = self.download()
        poem.cancel()
        self.failureResultOf(poem, CancelledError)
        self.assertEqual(self.reactor.getDelayedCalls(), [])
