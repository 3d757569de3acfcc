"""
The netstring protocol on in-memory transports: the framing, the server, and
the Part 13 client, all on a fake clock.
"""

from twisted.internet.address import IPv4Address
from twisted.internet.defer import CancelledError
from twisted.internet.endpoints import TCP4ClientEndpoint, TCP4ServerEndpoint
from twisted.internet.error import ConnectionDone, ConnectionRefusedError
from twisted.internet.testing import MemoryReactorClock, StringTransport
from twisted.logger import LogLevel
from twisted.python.failure import Failure
from twisted.test.iosim import ConnectionCompleter
from twisted.trial.unittest import SynchronousTestCase

from protocols.netstring import (
    STREAMED_ANSWER_CHARS,
    NetstringDecoder,
    NetstringError,
    NetstringTooLong,
    NoReply,
    TransformFactory,
    TransformProxy,
    encodeNetstring,
    maxRequestBytes,
)
from protocols.netstringwire import decodeRequest
from service import BadRequest, Limits, TransformService, TransformTimeout
from tests.helpers import POEMS, captureLogs, misbehavingCatalogue

HELLO = b"23:cummingsify.HELLO WORLD,"
PEER = IPv4Address("TCP", "192.0.2.7", 40000)


class NetstringDecoderTests(SynchronousTestCase):
    def popAll(self, decoder):
        return list(iter(decoder.pop, None))

    def test_wholeAndSplit(self):
        decoder = NetstringDecoder(100)
        for byte in b"5:hello,0:,3:a.b,":
            decoder.feed(bytes([byte]))
        self.assertEqual(self.popAll(decoder), [b"hello", b"", b"a.b"])

    def test_viewOfAPayloadGatheredOverReads(self):
        """
        L{NetstringDecoder.popView} gives a payload that came in one read as
        bytes, and one gathered over several reads as a view of the bytes
        received, which L{decodeRequest} decodes as it would bytes.
        """
        decoder = NetstringDecoder(100)
        decoder.feed(b"11:rot13.HELLO,16:rot13.caf\xc3\xa9 po")
        whole = decoder.popView()
        decoder.feed(b"em,")
        gathered = decoder.popView()
        self.assertEqual((type(whole), whole), (bytes, b"rot13.HELLO"))
        self.assertIsInstance(gathered, memoryview)
        self.assertEqual(decodeRequest(gathered), ("rot13", "café poem"))
        for payload in [b"rot13.caf\xc3", b"no dot", b"x" * 2000 + b".poem"]:
            decoder = NetstringDecoder(3000)
            decoder.feed(encodeNetstring(payload)[:3])
            decoder.feed(encodeNetstring(payload)[3:])
            view = decoder.popView()
            try:
                expected = decodeRequest(payload)
            except BadRequest as error:
                self.assertEqual(self.assertRaises(BadRequest, decodeRequest, view).message, error.message)
            else:
                self.assertEqual(decodeRequest(view), expected)

    def test_incomplete(self):
        decoder = NetstringDecoder(100)
        decoder.feed(b"12")
        self.assertIsNone(decoder.pop())
        decoder.feed(b":hello")
        self.assertIsNone(decoder.pop())
        decoder.feed(b" world!,")
        self.assertEqual(decoder.pop(), b"hello world!")

    def test_errors(self):
        cases = {
            b"x:": "does not start with a decimal length",
            b":": "does not start with a decimal length",
            b"-1:": "does not start with a decimal length",
            b" 1:a,": "does not start with a decimal length",
            b"01:a,": "leading zero",
            b"00": "leading zero",
            b"101:": "its length, 101 bytes, is over the limit of 100 bytes",
            b"1000:": "its length, 1,000 bytes, is over the limit of 100 bytes",
            b"1" * 21: "its length has more than 20 digits",
            b"3:abc;": "not followed by a comma",
        }
        for data, message in cases.items():
            decoder = NetstringDecoder(100)
            decoder.feed(data)
            error = self.assertRaises(NetstringError, decoder.pop)
            self.assertIn(message, str(error), data)

    def test_tooLongOnceTheLengthIsWhole(self):
        """
        A length over the limit is refused once its colon arrives, with the
        length it announces and the bytes of the payload that came with it.
        """
        decoder = NetstringDecoder(100)
        decoder.feed(b"1000")
        self.assertIsNone(decoder.pop())
        decoder.feed(b":cummingsify.HEL")
        error = self.assertRaises(NetstringTooLong, decoder.pop)
        self.assertEqual((error.length, error.head), (1000, b"cummingsify.HEL"))

    def test_limitIsInclusive(self):
        decoder = NetstringDecoder(100)
        decoder.feed(encodeNetstring(b"x" * 100))
        self.assertEqual(decoder.pop(), b"x" * 100)


class ServerTestCase(SynchronousTestCase):
    maxPoemBytes = 1000

    def setUp(self):
        self.clock = MemoryReactorClock()
        self.service = TransformService(
            misbehavingCatalogue(self.clock), self.clock, Limits(maxPoemBytes=self.maxPoemBytes, deadline=3.0)
        )
        self.factory = TransformFactory(self.service, self.clock, idleTimeout=30.0)
        self.events = captureLogs(self)

    def connect(self):
        protocol = self.factory.buildProtocol(PEER)
        transport = StringTransport(peerAddress=PEER)
        protocol.makeConnection(transport)
        return protocol, transport

    def request(self, *chunks):
        protocol, transport = self.connect()
        for chunk in chunks:
            protocol.dataReceived(chunk)
        return protocol, transport

    def assertReplied(self, transport, expected):
        self.assertEqual(transport.value(), expected)
        self.assertTrue(transport.disconnecting)

    def assertRefused(self, transport, errorName, written=b""):
        """
        The connection was closed with no reply to the refused request (after
        the answers C{written} to those before it), and the reason was
        logged once, naming the client.
        """
        self.assertEqual(transport.value(), written)
        self.assertTrue(transport.disconnecting or transport.disconnected)
        refusals = [
            event for event in self.events if "error" in event and event.get("peer") == "192.0.2.7:40000"
        ]
        self.assertEqual([event["error"] for event in refusals], [errorName])


class NetstringServerTests(ServerTestCase):
    def test_tutorialExample(self):
        protocol, transport = self.request(HELLO)
        self.assertReplied(transport, b"11:hello world,")

    def test_byteByByte(self):
        protocol, transport = self.request(*[bytes([byte]) for byte in HELLO])
        self.assertReplied(transport, b"11:hello world,")

    def test_oddChunks(self):
        request = encodeNetstring(b"reverse." + POEMS["science"].encode())
        chunks, sizes, start = [], [1, 2, 3, 5, 7, 11, 13], 0
        while start < len(request):
            size = sizes[len(chunks) % len(sizes)]
            chunks.append(request[start : start + size])
            start += size
        protocol, transport = self.request(*chunks)
        expected = "\n".join(reversed(POEMS["science"][:-1].split("\n"))) + "\n"
        self.assertReplied(transport, encodeNetstring(expected.encode()))

    def test_severalClientsInterleaved(self):
        """
        Requests from several connections, arriving interleaved, are each
        answered on their own connection.
        """
        connections = [self.connect() for _ in range(5)]
        requests = [encodeNetstring(f"cummingsify.POEM {i}".encode()) for i in range(5)]
        for start in range(0, max(map(len, requests)), 4):
            for (protocol, _), request in zip(connections, requests, strict=True):
                if request[start : start + 4]:
                    protocol.dataReceived(request[start : start + 4])
        for i, (_, transport) in enumerate(connections):
            self.assertReplied(transport, encodeNetstring(f"poem {i}".encode()))

    def test_asynchronousTransform(self):
        protocol, transport = self.request(b"10:echo.HELLO,")
        self.assertEqual(transport.value(), b"")
        self.clock.advance(0)
        self.assertReplied(transport, encodeNetstring("HELLO … hello … hello".encode()))

    def test_utf8Poem(self):
        poem = POEMS["alla_sera"]
        protocol, transport = self.request(encodeNetstring(b"cummingsify." + poem.encode()))
        self.assertReplied(transport, encodeNetstring(poem.lower().encode()))

    def test_dotsStayInThePoem(self):
        protocol, transport = self.request(b"18:cummingsify.A.B.C.,")
        self.assertReplied(transport, b"6:a.b.c.,")

    def test_emptyPoem(self):
        protocol, transport = self.request(b"12:cummingsify.,")
        self.assertReplied(transport, b"0:,")

    def test_bytesAfterTheRequestAreIgnored(self):
        """
        Only the first netstring is read, so C{echo '23:...,' | nc} works
        despite the newline.
        """
        protocol, transport = self.request(HELLO + b"\n" + b"garbage")
        self.assertReplied(transport, b"11:hello world,")

    def test_everyNetstringThatCameWithTheFirstIsAnswered(self):
        """
        As the tutorial's server does, every whole netstring that arrived
        with the first is answered, in order; then the server closes.
        """
        requests = HELLO + b"10:echo.HELLO," + encodeNetstring(b"reverse.ONE\nTWO\n")
        protocol, transport = self.request(requests)
        self.assertFalse(transport.disconnecting)
        self.clock.advance(0)
        expected = [b"11:hello world,", encodeNetstring("HELLO … hello … hello".encode()), b"8:TWO\nONE\n,"]
        self.assertReplied(transport, b"".join(expected))

    def test_manyNetstringsInOneReadAreAllAnswered(self):
        """
        Thousands of requests in one read, each answered at once, are all
        answered, in order, and the connection closes: the server answers
        them in a loop, not in nested calls.
        """
        count = 5000
        protocol, transport = self.request(b"".join(encodeNetstring(b"reverse.%d" % n) for n in range(count)))
        self.assertReplied(transport, b"".join(encodeNetstring(b"%d" % n) for n in range(count)))

    def test_netstringsAfterTheFirstChunkAreIgnored(self):
        """
        A netstring that comes in a later piece of data, once the first
        request is whole, is not read.
        """
        protocol, transport = self.request(HELLO, b"10:echo.HELLO,")
        self.assertReplied(transport, b"11:hello world,")

    def test_aRefusalEndsTheAnswers(self):
        """
        The requests before a refused one are answered; the refused one and
        those after it are not.
        """
        protocol, transport = self.request(HELLO + b"10:nope.HELLO," + HELLO)
        self.assertRefused(transport, "unknown-transform", written=b"11:hello world,")

    def test_framingLimitFollowsTheService(self):
        self.assertEqual(maxRequestBytes(self.service), self.maxPoemBytes + 1 + 4 * 256)
        poem = b"A" * self.maxPoemBytes
        protocol, transport = self.request(encodeNetstring(b"cummingsify." + poem))
        self.assertReplied(transport, encodeNetstring(poem.lower()))

    def test_badInputs(self):
        """
        Each bad request closes its connection without a reply and logs
        why, with the error's name.
        """
        cases = [
            (b"abc:cummingsify.HELLO,", "bad-request"),
            (b"023:cummingsify.HELLO WORLD,", "bad-request"),
            (b"23:cummingsify.HELLO WORLD;", "bad-request"),
            (b"99999999:cummingsify.", "poem-too-large"),
            (b"11:cummingsify,", "bad-request"),
            (b"6:.HELLO,", "bad-request"),
            (b"10:nope.HELLO,", "unknown-transform"),
            (b"15:__class__.HELLO,", "unknown-transform"),
            (encodeNetstring(b"cummingsify.\xff\xfe\xfd"), "bad-request"),
            (encodeNetstring(b"cummingsify." + b"A" * (self.maxPoemBytes + 1)), "poem-too-large"),
            (b"13:explode.HELLO,", "transform-failed"),
            (b"12:number.HELLO,", "transform-failed"),
        ]
        for data, errorName in cases:
            del self.events[:]
            self.clock.advance(1)  # one a second: slower than the log's limit on refusals
            protocol, transport = self.request(data)
            self.assertRefused(transport, errorName)
        self.assertEqual(len(self.flushLoggedErrors(ZeroDivisionError)), 1)
        self.assertEqual(self.service.inFlight, 0)

    def test_refusedOnceWhateverFollows(self):
        """
        Bytes arriving after a malformed netstring do not log the refusal
        again.
        """
        protocol, transport = self.request(b"x", b"y", b"1:a,")
        protocol.readConnectionLost()
        self.assertRefused(transport, "bad-request")

    def test_oversizeLengthIsRefusedBeforeThePoem(self):
        """
        A netstring over the limit is refused as soon as the name before its
        C{.} has come, with the size of its poem, in the service's words.
        """
        protocol, transport = self.request(b"2000000:", b"cummingsify", b".POEM")
        self.assertRefused(transport, "poem-too-large")
        self.assertEqual(
            self.events[-1]["reason"],
            "the poem is 1,999,988 bytes; this gateway accepts at most 1,000 (--max-poem-bytes)",
        )

    def test_oversizeLengthWithoutADot(self):
        """
        Past the longest name without a C{.}, an oversize netstring is a bad
        request; what comes after is not kept.
        """
        protocol, transport = self.request(b"2000000:" + b"x" * (4 * 256), b"x" * 100_000)
        self.assertRefused(transport, "bad-request")
        self.assertIn("no '.'", self.events[-1]["reason"])

    def test_oversizeLengthThenHalfClose(self):
        """
        A client that half-closes before the name of its oversize netstring
        has come learns, in the log, that the poem is over the limit.
        """
        protocol, transport = self.request(b"2000000:cumm")
        self.assertFalse(transport.disconnecting)
        protocol.readConnectionLost()
        self.assertRefused(transport, "poem-too-large")
        self.assertIn("the poem is over 1,000 bytes", self.events[-1]["reason"])

    def test_deadline(self):
        protocol, transport = self.request(b"11:stall.HELLO,")
        self.clock.advance(2.9)
        self.assertFalse(transport.disconnecting)
        self.clock.advance(0.1)
        self.assertRefused(transport, "timeout")
        self.assertEqual(self.service.inFlight, 0)

    def test_clientLeavesDuringTheTransform(self):
        """
        A client that goes away abandons its request: the service stops
        waiting for it and nothing is logged as an error.
        """
        protocol, transport = self.request(b"11:stall.HELLO,")
        self.assertEqual(self.service.inFlight, 1)
        protocol.connectionLost(Failure(ConnectionRefusedError()))
        self.assertEqual(self.service.inFlight, 0)
        self.assertEqual(self.clock.getDelayedCalls(), [])
        self.assertFalse([event for event in self.events if event.get("log_failure")])


class LongAnswerTests(ServerTestCase):
    """
    An ASCII answer of more than L{STREAMED_ANSWER_CHARS} characters is
    encoded and written a piece at a time, each piece once the transport has
    taken the one before.
    """

    maxPoemBytes = 3 * STREAMED_ANSWER_CHARS

    def longRequest(self):
        """
        Ask for a long answer, and another after it in the same read.
        """
        poem = "ABC DEF\n" * (STREAMED_ANSWER_CHARS // 8 + 1)
        protocol, transport = self.request(encodeNetstring(b"reverse." + poem.encode()) + HELLO)
        self.clock.advance(0)  # the transform runs in slices
        while self.clock.getDelayedCalls() and transport.producer is None:
            self.clock.advance(0.01)
        return protocol, transport, "".join(reversed(poem.splitlines(keepends=True))).encode()

    def test_writtenAPieceAtATime(self):
        """
        The answer is written in pieces of 256 KiB at most, and the answers
        after it once it is written.
        """
        protocol, transport, expected = self.longRequest()
        written = [len(transport.value())]
        while transport.producer is not None:
            transport.producer.resumeProducing()
            written.append(len(transport.value()))
        self.assertReplied(transport, encodeNetstring(expected) + b"11:hello world,")
        self.assertGreater(len(written), 4)
        self.assertLessEqual(max(b - a for a, b in zip(written, written[1:], strict=False)), 256 * 1024 + 16)

    def test_clientThatStopsReading(self):
        """
        A client that stops reading the answer is dropped after the idle
        timeout, and nothing more is written.
        """
        protocol, transport, expected = self.longRequest()
        transport.producer.resumeProducing()
        written = len(transport.value())
        self.clock.advance(30)
        self.assertTrue(transport.disconnected)
        protocol.connectionLost(Failure(ConnectionDone()))
        self.assertEqual(len(transport.value()), written)
        self.assertEqual(self.clock.getDelayedCalls(), [])

    def test_nonASCIIIsWrittenAtOnce(self):
        poem = "é" * (STREAMED_ANSWER_CHARS + 1)
        protocol, transport = self.request(encodeNetstring(b"cummingsify." + poem.encode()))
        self.clock.advance(0)
        while self.clock.getDelayedCalls() and not transport.value():
            self.clock.advance(0.01)
        self.assertReplied(transport, encodeNetstring(poem.encode()))


class HalfCloseTests(ServerTestCase):
    def test_wholeRequestThenHalfClose(self):
        """
        C{nc -N} shuts its sending side down after the request; the answer
        still comes.
        """
        protocol, transport = self.request(b"10:echo.HELLO,")
        protocol.readConnectionLost()
        self.assertFalse(transport.disconnecting)
        self.clock.advance(0)
        self.assertReplied(transport, encodeNetstring("HELLO … hello … hello".encode()))

    def test_partialRequestThenHalfClose(self):
        protocol, transport = self.request(b"23:cummingsify.HEL")
        protocol.readConnectionLost()
        self.assertRefused(transport, "bad-request")
        self.assertIn("after 18 bytes", self.events[-1]["reason"])

    def test_nothingThenHalfClose(self):
        """
        A client that closes without sending anything (a port check) is
        closed too, with no refusal logged.
        """
        protocol, transport = self.connect()
        protocol.readConnectionLost()
        self.assertTrue(transport.disconnecting)
        self.assertEqual([event for event in self.events if event["log_level"] > LogLevel.debug], [])


class IdleTimeoutTests(ServerTestCase):
    def test_silentClientIsDropped(self):
        protocol, transport = self.connect()
        self.clock.advance(29.9)
        self.assertFalse(transport.disconnecting)
        self.clock.advance(0.1)
        self.assertTrue(transport.disconnecting)
        self.assertEqual(transport.value(), b"")

    def test_partialRequestIsDropped(self):
        protocol, transport = self.request(b"23:cummingsify")
        self.clock.advance(30)
        self.assertTrue(transport.disconnecting)

    def test_activityKeepsTheConnection(self):
        """
        The timeout counts from the last bytes received, so a slow but
        steady client is served.
        """
        protocol, transport = self.connect()
        for byte in HELLO:
            self.clock.advance(20)
            protocol.dataReceived(bytes([byte]))
        self.assertReplied(transport, b"11:hello world,")

    def test_replyThatIsNeverRead(self):
        """
        A client that does not read its reply is dropped after the idle
        timeout instead of holding the reply forever.
        """
        protocol, transport = self.request(HELLO)
        self.assertTrue(transport.disconnecting)
        self.assertFalse(transport.disconnected)
        self.clock.advance(30)
        self.assertTrue(transport.disconnected)

    def test_noTimerAfterTheConnectionEnds(self):
        protocol, transport = self.request(HELLO)
        protocol.connectionLost(Failure(ConnectionRefusedError()))
        self.assertEqual(self.clock.getDelayedCalls(), [])


class TransformProxyTests(SynchronousTestCase):
    """
    The Part 13 client against the real server protocol, over in-memory
    connections made by a fake reactor.
    """

    def setUp(self):
        self.reactor = MemoryReactorClock()
        service = TransformService(misbehavingCatalogue(self.reactor), self.reactor, Limits(deadline=60))
        TCP4ServerEndpoint(self.reactor, 10001).listen(TransformFactory(service, self.reactor))
        self.completer = ConnectionCompleter(self.reactor)
        self.proxy = TransformProxy(
            TCP4ClientEndpoint(self.reactor, "127.0.0.1", 10001), self.reactor, timeout=5
        )

    def test_xform(self):
        result = self.proxy.xform("cummingsify|echo", "HELLO")
        pump = self.completer.succeedOnce()
        pump.flush()
        self.reactor.advance(0)
        pump.flush()
        self.assertEqual(self.successResultOf(result), "hello … hello … hello")

    def test_noReply(self):
        result = self.proxy.xform("nope", "HELLO")
        self.completer.succeedOnce().flush()
        self.failureResultOf(result, NoReply)

    def test_connectionRefused(self):
        result = self.proxy.xform("cummingsify", "HELLO")
        self.completer.failOnce()
        self.failureResultOf(result, ConnectionRefusedError)

    def test_timeout(self):
        result = self.proxy.xform("stall", "HELLO")
        pump = self.completer.succeedOnce()
        pump.flush()
        self.reactor.advance(5)
        pump.flush()
        error = self.failureResultOf(result, TransformTimeout).value
        self.assertEqual(error.message, "no reply within 5 seconds")
        self.assertTrue(pump.client.transport.disconnecting or pump.client.transport.disconnected)

    def test_timeoutWhileConnecting(self):
        result = self.proxy.xform("cummingsify", "HELLO")
        self.reactor.advance(5)
        self.failureResultOf(result, TransformTimeout)

    def test_cancel(self):
        result = self.proxy.xform("stall", "HELLO")
        self.completer.succeedOnce().flush()
        result.cancel()
        self.failureResultOf(result, CancelledError)

    def test_nameWithADot(self):
        self.failureResultOf(self.proxy.xform("a.b", "HELLO"), BadRequest)
