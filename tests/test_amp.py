"""
The AMP server on in-memory transports and a fake clock, with a stock
Twisted AMP client and with the raw bytes of the docs: its commands,
errors, limits, flow control and idle timeout (plus one loopback test of a
client that never reads).  The framing is tested in L{tests.test_amp_wire},
the asynchronous client in L{tests.test_amp_client}.
"""

import socket

from hypothesis import given, settings
from hypothesis import strategies as st
from twisted.internet import reactor
from twisted.internet.address import IPv4Address
from twisted.internet.defer import Deferred
from twisted.internet.endpoints import (
    TCP4ClientEndpoint,
    connectProtocol,
    serverFromString,
)
from twisted.internet.error import ConnectionDone
from twisted.internet.interfaces import IPushProducer
from twisted.internet.protocol import Protocol
from twisted.internet.task import deferLater
from twisted.internet.testing import MemoryReactorClock, StringTransport
from twisted.logger import LogLevel, globalLogPublisher
from twisted.protocols import amp
from twisted.python.failure import Failure
from twisted.test import iosim
from twisted.trial.unittest import SynchronousTestCase, TestCase
from zope.interface.verify import verifyObject

from protocols.amp.commands import ListTransforms, TransformPoem
from protocols.amp.server import TransformAMP, TransformAMPFactory
from protocols.amp.wire import (
    ERROR_CODES,
    BoxDecoder,
    decodeBoxes,
    encodeBox,
    maxBoxBytes,
    splitValue,
    takeValue,
)
from service import (
    BadRequest,
    Catalogue,
    Limits,
    Overloaded,
    PoemTooLarge,
    TransformFailed,
    TransformService,
    TransformTimeout,
    UnknownTransform,
    transforms,
)
from service import Transform as CatalogueEntry
from tests.helpers import TrackingAMPFactory, captureLogs, misbehavingCatalogue
from tests.test_amp_wire import ANSWER, REQUEST, cutAnywhere

PEER = IPv4Address("TCP", "192.0.2.7", 40000)

#: How long the C{later} transform of L{slowCatalogue} takes, in seconds.
LATER = 1.0


def slowCatalogue(clock):
    """
    The misbehaving catalogue, plus C{later}: it answers the poem in upper
    case after L{LATER} seconds, so that tests can order answers on a fake
    clock.
    """
    catalogue = misbehavingCatalogue(clock)
    slow = CatalogueEntry(
        "later", "upper case, later", lambda poem: deferLater(clock, LATER, str.upper, poem)
    )
    catalogue.add(slow)
    return catalogue


def asked(question: Deferred) -> Deferred:
    """
    A L{Deferred} of the answer to C{question}, asked with a stock AMP
    client: the question's own L{Deferred} needs its errbacks before the
    answer arrives, or the client treats an error as unhandled.
    """
    answer = Deferred()
    question.chainDeferred(answer)
    return answer


def box(**values: bytes) -> bytes:
    """
    A box of the given keys and values, in the order given.
    """
    return encodeBox([(key.encode(), value) for key, value in values.items()])


class ServerTestCase(SynchronousTestCase):
    """
    A gateway's AMP factory on a fake clock, its service limited to
    C{maxPoemBytes}.
    """

    maxPoemBytes = 300_000
    deadline = 3.0

    def setUp(self):
        self.clock = MemoryReactorClock()
        self.events = captureLogs(self)
        self.service = self.makeService()
        self.factory = TransformAMPFactory(self.service, self.clock, idleTimeout=30.0)

    def makeService(self):
        return TransformService(
            slowCatalogue(self.clock),
            self.clock,
            Limits(maxPoemBytes=self.maxPoemBytes, deadline=self.deadline),
        )

    def connect(self):
        """
        A stock Twisted AMP client connected to a new server protocol.

        @return: the client, the server protocol and the pump between them.
        """
        server = self.factory.buildProtocol(PEER)
        client = amp.AMP()
        pump = iosim.connect(
            server,
            iosim.FakeTransport(server, isServer=True, peerAddress=PEER),
            client,
            iosim.FakeTransport(client, isServer=False),
            clock=self.clock,
        )
        return client, server, pump

    def raw(self):
        """
        A server protocol on a L{StringTransport}, to be fed bytes.
        """
        server = self.factory.buildProtocol(PEER)
        transport = StringTransport(peerAddress=PEER)
        server.makeConnection(transport)
        return server, transport

    def ask(self, client, pump, command=TransformPoem, **arguments):
        """
        Ask a question and pump until nothing moves.

        @return: a L{Deferred} of the answer.
        """
        answer = asked(client.callRemote(command, **arguments))
        pump.flush()
        return answer

    def transform(self, client, pump, name, poem):
        return self.ask(client, pump, transform=name, poem=poem)

    def logged(self, text):
        return [event for event in self.events if text in event.get("log_format", "")]


class CommandTests(ServerTestCase):
    def test_transform(self):
        client, server, pump = self.connect()
        answer = self.transform(client, pump, "cummingsify", "HELLO WORLD")
        self.assertEqual(self.successResultOf(answer), {"poem": "hello world"})

    def test_pipelineWithAnAsynchronousStep(self):
        client, server, pump = self.connect()
        answer = self.transform(client, pump, "cummingsify|later|reverse", "Hello\nWorld")
        self.assertNoResult(answer)
        self.clock.advance(LATER)
        pump.flush()
        self.assertEqual(self.successResultOf(answer)["poem"], "WORLD\nHELLO")

    def test_listTransforms(self):
        client, server, pump = self.connect()
        answer = self.successResultOf(self.ask(client, pump, ListTransforms))
        self.assertEqual(
            answer["transforms"],
            [{"name": entry.name, "description": entry.description} for entry in self.service.transforms()],
        )

    def test_interfaces(self):
        server, transport = self.raw()
        self.assertTrue(verifyObject(amp.IBoxSender, server))
        self.assertTrue(verifyObject(IPushProducer, server))
        self.assertIs(transport.producer, server)
        self.assertTrue(transport.streaming)

    def test_theDocumentedBytes(self):
        """
        The request of the docs, byte for byte, gets the answer of the
        docs, byte for byte.
        """
        server, transport = self.raw()
        server.dataReceived(REQUEST)
        self.assertEqual(transport.value(), ANSWER)

    def test_theDocumentedErrorBytes(self):
        server, transport = self.raw()
        server.dataReceived(box(_ask=b"2", _command=b"Transform", transform=b"nope", poem=b"x"))
        self.assertEqual(
            transport.value(),
            b"\x00\x06_error\x00\x012\x00\x0b_error_code\x00\x11UNKNOWN_TRANSFORM"
            b"\x00\x12_error_description\x00\x18unknown transform 'nope'\x00\x00",
        )

    def test_byteByByte(self):
        server, transport = self.raw()
        for byte in REQUEST:
            server.dataReceived(bytes([byte]))
        self.assertEqual(transport.value(), ANSWER)

    def test_unknownCommand(self):
        """
        An unknown command gets Twisted's C{UNHANDLED} error, and the
        connection carries on.
        """
        server, transport = self.raw()
        server.dataReceived(box(_ask=b"7", _command=b"Nope") + REQUEST)
        first, second = decodeBoxes(transport.value())
        self.assertEqual((first[b"_error"], first[b"_error_code"]), (b"7", b"UNHANDLED"))
        self.assertEqual(second, decodeBoxes(ANSWER)[0])
        self.assertFalse(transport.disconnecting)


class ErrorTests(ServerTestCase):
    """
    Every error code, each answering one question while the connection
    and the other questions carry on.
    """

    def assertRefused(self, answer, errorClass, code):
        error = self.failureResultOf(answer, errorClass).value
        self.assertIs(type(error), errorClass)
        self.assertEqual(ERROR_CODES[errorClass], code)
        return error.message

    def assertStillServing(self, client, pump):
        self.assertEqual(
            self.successResultOf(self.transform(client, pump, "cummingsify", "STILL HERE")),
            {"poem": "still here"},
        )

    def test_unknownTransform(self):
        client, server, pump = self.connect()
        message = self.assertRefused(
            self.transform(client, pump, "nope", "poem"), UnknownTransform, b"UNKNOWN_TRANSFORM"
        )
        self.assertEqual(message, "unknown transform 'nope'")
        self.assertStillServing(client, pump)
        self.assertTrue(self.logged("answering {error}"))

    def test_refusalsAreLoggedSparingly(self):
        """
        A flood of refused questions writes a few lines, as on every
        protocol; the rest are summed up in one line when the listener
        stops.
        """
        client, server, pump = self.connect()
        for _ in range(20):
            self.assertRefused(
                self.transform(client, pump, "nope", "poem"), UnknownTransform, b"UNKNOWN_TRANSFORM"
            )
        self.assertEqual(len(self.logged("answering {error}")), 5)
        self.factory.stopFactory()
        (summary,) = self.logged("more {error!r} refusals")
        self.assertEqual((summary["protocol"], summary["count"]), ("amp", 15))

    def test_badRequest(self):
        client, server, pump = self.connect()
        message = self.assertRefused(
            self.transform(client, pump, "cummingsify||reverse", "poem"), BadRequest, b"BAD_REQUEST"
        )
        self.assertIn("empty step", message)
        self.assertStillServing(client, pump)

    def test_poemTooLarge(self):
        client, server, pump = self.connect()
        poem = "A" * (self.maxPoemBytes + 1)
        message = self.assertRefused(
            self.transform(client, pump, "cummingsify", poem), PoemTooLarge, b"POEM_TOO_LARGE"
        )
        self.assertEqual(message, PoemTooLarge.forSize(self.maxPoemBytes + 1, self.maxPoemBytes).message)
        self.assertStillServing(client, pump)

    def test_transformFailed(self):
        client, server, pump = self.connect()
        self.assertRefused(
            self.transform(client, pump, "explode", "poem"), TransformFailed, b"TRANSFORM_FAILED"
        )
        self.assertRefused(
            self.transform(client, pump, "number", "poem"), TransformFailed, b"TRANSFORM_FAILED"
        )
        self.assertEqual(len(self.flushLoggedErrors(ZeroDivisionError)), 1)
        self.assertStillServing(client, pump)

    def test_timeout(self):
        client, server, pump = self.connect()
        answer = self.transform(client, pump, "stall", "poem")
        self.clock.advance(self.deadline)
        pump.flush()
        message = self.assertRefused(answer, TransformTimeout, b"TIMEOUT")
        self.assertEqual(message, "no result within 3 seconds")
        self.assertStillServing(client, pump)

    def test_overloaded(self):
        self.service.limits = Limits(maxPoemBytes=self.maxPoemBytes, deadline=self.deadline, maxInFlight=1)
        client, server, pump = self.connect()
        stalled = self.transform(client, pump, "stall", "poem")
        self.assertRefused(self.transform(client, pump, "reverse", "poem"), Overloaded, b"OVERLOADED")
        self.assertNoResult(stalled)
        self.clock.advance(self.deadline)
        pump.flush()
        self.failureResultOf(stalled, TransformTimeout)
        self.assertStillServing(client, pump)

    def assertBadRequest(self, question, *described):
        """
        C{question}, tagged C{bad}, is answered C{BAD_REQUEST} with a
        description holding C{described}, and the connection carries on.
        """
        server, transport = self.raw()
        server.dataReceived(question + REQUEST)
        answer, after = decodeBoxes(transport.value())
        self.assertEqual((answer[b"_error"], answer[b"_error_code"]), (b"bad", b"BAD_REQUEST"))
        for text in described:
            self.assertIn(text, answer[b"_error_description"])
        self.assertEqual(after, decodeBoxes(ANSWER)[0])
        self.assertFalse(transport.disconnecting)

    def test_missingTransform(self):
        self.assertBadRequest(box(_ask=b"bad", _command=b"Transform", poem=b"HELLO"), b"'transform'")

    def test_missingPoem(self):
        self.assertBadRequest(box(_ask=b"bad", _command=b"Transform", transform=b"cummingsify"), b"'poem'")

    def test_poemNotUTF8(self):
        self.assertBadRequest(
            box(_ask=b"bad", _command=b"Transform", poem=b"\xff\xfe", transform=b"cummingsify"), b"UTF-8"
        )

    def test_nameNotUTF8(self):
        self.assertBadRequest(
            box(_ask=b"bad", _command=b"Transform", transform=b"\xc3", poem=b"HELLO"), b"UTF-8"
        )

    def test_piecesWithAGap(self):
        question = encodeBox(
            [
                (b"_ask", b"bad"),
                (b"_command", b"Transform"),
                (b"poem", b"A"),
                (b"poem.3", b"B"),
                (b"transform", b"cummingsify"),
            ]
        )
        self.assertBadRequest(question, b"poem.3")

    def test_unexpectedExceptionInTheService(self):
        """
        A service that raises something other than its own errors gets
        C{TRANSFORM_FAILED}, logged with its traceback; the connection
        carries on.
        """

        class BrokenService(TransformService):
            # The AMP server asks the service through transformEagerly.
            def transformEagerly(self, name, poem, caller=None):
                if name == "bug":
                    raise RuntimeError("a bug in the service")
                return super().transformEagerly(name, poem)

        self.factory.service = BrokenService(misbehavingCatalogue(self.clock), self.clock)
        client, server, pump = self.connect()
        message = self.assertRefused(
            self.transform(client, pump, "bug", "poem"), TransformFailed, b"TRANSFORM_FAILED"
        )
        self.assertEqual(message, "the server failed to answer Transform")
        self.assertEqual(len(self.flushLoggedErrors(RuntimeError)), 1)
        self.assertTrue(self.logged("failed unexpectedly"))
        self.assertStillServing(client, pump)

    def test_unexpectedExceptionWritingTheAnswer(self):
        """
        An answer that cannot be encoded -- a description holding a lone
        surrogate -- is C{TRANSFORM_FAILED} too, not Twisted's
        connection-dropping C{UNKNOWN}.
        """
        catalogue = Catalogue([CatalogueEntry("odd", "a lone \udc80 surrogate", transforms.reverse)])
        catalogue.add(CatalogueEntry("cummingsify", "lowercase", transforms.cummingsify))
        self.factory.service = TransformService(catalogue, self.clock)
        client, server, pump = self.connect()
        self.assertRefused(self.ask(client, pump, ListTransforms), TransformFailed, b"TRANSFORM_FAILED")
        self.assertEqual(len(self.flushLoggedErrors(amp.BadLocalReturn)), 1)
        self.assertStillServing(client, pump)

    def test_clientLeavesDuringTheTransform(self):
        """
        A client that goes away abandons its questions: the service stops
        waiting for them, no timer is left and nothing is logged as an
        error.
        """
        client, server, pump = self.connect()
        questions = [self.transform(client, pump, name, "poem") for name in ["stall", "cummingsify|later"]]
        self.assertEqual(self.service.inFlight, 2)
        client.transport.loseConnection()
        pump.flush()
        for question in questions:
            self.failureResultOf(question, ConnectionDone)
        self.assertEqual(self.service.inFlight, 0)
        self.assertEqual(self.clock.getDelayedCalls(), [])
        self.assertFalse([event for event in self.events if event.get("log_failure")])


class SplitPoemTests(ServerTestCase):
    """
    Poems over 65,535 bytes travel split, both ways.
    """

    def roundTrip(self, poem):
        """
        Send C{poem} to C{cummingsify} with the stock client, then as raw
        bytes; return the answer's keys and pieces as the server wrote them.
        """
        client, server, pump = self.connect()
        answer = self.transform(client, pump, "cummingsify", poem)
        self.assertEqual(self.successResultOf(answer), {"poem": poem.lower()})
        server, transport = self.raw()
        question = [(b"_ask", b"1"), (b"_command", b"Transform"), *splitValue(b"poem", poem.encode())]
        server.dataReceived(encodeBox([*question, (b"transform", b"cummingsify")]))
        (answerBox,) = decodeBoxes(transport.value())
        return {key: value for key, value in answerBox.items() if key.startswith(b"poem")}

    def test_largestWholeValue(self):
        pieces = self.roundTrip("A" * 65535)
        self.assertEqual({key: len(value) for key, value in pieces.items()}, {b"poem": 65535})

    def test_oneByteMore(self):
        pieces = self.roundTrip("A" * 65536)
        self.assertEqual({key: len(value) for key, value in pieces.items()}, {b"poem": 65535, b"poem.2": 1})

    def test_200000Bytes(self):
        pieces = self.roundTrip("A" * 200_000)
        self.assertEqual(
            {key: len(value) for key, value in pieces.items()},
            {b"poem": 65535, b"poem.2": 65535, b"poem.3": 65535, b"poem.4": 3395},
        )

    def test_multiByteCharactersAcrossTheCut(self):
        """
        With two-byte characters from the first byte, the 65,535-byte cut
        falls inside one; the piece ends before it instead, and every piece
        is UTF-8 on its own.
        """
        pieces = self.roundTrip("É" * 40_000)
        self.assertEqual(
            {key: len(value) for key, value in pieces.items()}, {b"poem": 65534, b"poem.2": 14466}
        )
        self.assertEqual("".join(piece.decode("utf-8") for piece in pieces.values()), "é" * 40_000)

    def test_piecesCutAnywhereAreJoinedBeforeDecoding(self):
        """
        A client may cut inside a UTF-8 sequence: the server joins the
        bytes, then decodes.
        """
        poem = ("É" * 40_000).encode()
        server, transport = self.raw()
        server.dataReceived(
            encodeBox(
                [
                    (b"_ask", b"1"),
                    (b"_command", b"Transform"),
                    (b"poem", poem[:65535]),
                    (b"poem.2", poem[65535:]),
                    (b"transform", b"cummingsify"),
                ]
            )
        )
        (answer,) = decodeBoxes(transport.value())
        self.assertEqual(takeValue(answer, b"poem").decode(), "é" * 40_000)


class TurnTests(ServerTestCase):
    """
    A connection handles at most C{boxesPerTurn} boxes in one turn of the
    reactor; the rest wait for the next, reading paused meanwhile.
    """

    def test_floodAnsweredOverTurns(self):
        server, transport = self.raw()
        questions = [
            box(_ask=b"%d" % n, _command=b"Transform", transform=b"rot13", poem=b"x") for n in range(150)
        ]
        server.dataReceived(b"".join(questions))
        self.assertEqual(len(decodeBoxes(transport.value())), server.boxesPerTurn)
        self.assertEqual(transport.producerState, "paused")
        self.clock.advance(0)
        self.assertEqual(
            [answer[b"_answer"] for answer in decodeBoxes(transport.value())], [b"%d" % n for n in range(150)]
        )
        self.assertEqual(transport.producerState, "producing")


class FireAndForgetTests(ServerTestCase):
    """
    A question without C{_ask} is carried out and never answered; when it
    fails, the server logs one line for information and carries on.
    """

    def sendThenRequest(self, question):
        """
        Send C{question}, then the docs' request: only the request is
        answered, and the connection stays open.

        @return: the log events about commands sent without C{_ask}.
        """
        server, transport = self.raw()
        server.dataReceived(question + REQUEST)
        self.clock.advance(0)  # the boxes past one turn's
        self.assertEqual(transport.value(), ANSWER)
        self.assertFalse(transport.disconnecting)
        self.assertFalse([event for event in self.events if event.get("log_failure")])
        self.assertFalse([event for event in self.events if event["log_level"] > LogLevel.info])
        self.assertFalse(self.logged("answering"))
        return self.logged("without _ask")

    def assertOneLine(self, events, code):
        """
        One line was logged, a refusal of the error C{code} (by its name);
        return its reason.
        """
        (event,) = events
        self.assertEqual(event["log_level"], LogLevel.info)
        self.assertEqual(event["error"].upper().replace("-", "_"), code)
        return event["reason"]

    def test_failingCommand(self):
        events = self.sendThenRequest(box(_command=b"Transform", transform=b"nope", poem=b"x"))
        self.assertEqual(self.assertOneLine(events, "UNKNOWN_TRANSFORM"), "unknown transform 'nope'")

    def test_badArguments(self):
        events = self.sendThenRequest(box(_command=b"Transform", poem=b"x"))
        self.assertIn("'transform'", self.assertOneLine(events, "BAD_REQUEST"))

    def test_unknownCommand(self):
        """
        An unknown command (Twisted's C{UNHANDLED}) is refused as a bad
        request.
        """
        events = self.sendThenRequest(box(_command=b"Nope"))
        self.assertIn("Nope", self.assertOneLine(events, "BAD_REQUEST"))

    def test_unknownCommandsAreRefusalsOfTheListener(self):
        """
        A thousand unknown commands are logged as few times as any other
        refusal: a few lines, then a summary of the others.
        """
        events = self.sendThenRequest(box(_command=b"Nope") * 1000)
        self.assertLess(len(events), 10)

    def test_oversizeCommand(self):
        question = encodeBox(
            [(b"_command", b"Transform"), *splitValue(b"poem", b"A" * (self.maxPoemBytes * 2))]
        )
        events = self.sendThenRequest(question)
        self.assertIn(
            f"the poem is {self.maxPoemBytes * 2:,} bytes; this gateway accepts at most {self.maxPoemBytes:,}",
            self.assertOneLine(events, "POEM_TOO_LARGE"),
        )

    def test_commandThatSucceeds(self):
        """
        A command without C{_ask} that succeeds runs to its end, silently.
        """
        server, transport = self.raw()
        server.dataReceived(box(_command=b"Transform", transform=b"later", poem=b"x"))
        self.assertEqual(self.service.inFlight, 1)
        self.clock.advance(LATER)
        self.assertEqual(self.service.inFlight, 0)
        self.assertEqual(transport.value(), b"")
        self.assertFalse(self.logged("without _ask"))


class SmallPiecesTests(ServerTestCase):
    """
    Pieces of a split poem may be of any size, down to one byte, and come
    in any order; what they count against the box limit is their bytes and
    8 bytes each (docs/protocols.md).
    """

    maxPoemBytes = 1024 * 1024

    def askInPieces(self, poem: bytes, pieceBytes: int, order=list):
        """
        Ask for C{cummingsify} of C{poem} cut into pieces of C{pieceBytes},
        keys in C{order}, sent 64 KiB at a time.

        @return: the answer box, and the most the connection held.
        """
        cuts = range(0, len(poem), pieceBytes)
        pieces = [
            (b"poem.%d" % n if n > 1 else b"poem", poem[cut : cut + pieceBytes])
            for n, cut in enumerate(cuts, 1)
        ]
        data = encodeBox(
            [(b"_ask", b"1"), (b"_command", b"Transform"), (b"transform", b"cummingsify"), *order(pieces)]
        )
        server, transport = self.raw()
        held = 0
        for start in range(0, len(data), 65536):
            server.dataReceived(data[start : start + 65536])
            held = max(held, server.bufferedBytes())
        # A large poem is transformed in slices, one per turn of the clock.
        for _ in range(10_000):
            if transport.value():
                break
            self.clock.advance(0)
        (answer,) = decodeBoxes(transport.value())
        self.assertFalse(transport.disconnecting)
        return answer, held

    def test_100KilobytesInOneBytePieces(self):
        poem = ("ÉCOUTE " * 15_000)[:100_000].encode()
        answer, held = self.askInPieces(poem, 1)
        self.assertEqual(takeValue(answer, b"poem"), poem.decode().lower().encode())
        self.assertLessEqual(held, maxBoxBytes(self.maxPoemBytes) + 65536)

    def test_aMebibyteInPiecesOf65535BytesInTwistedsOrder(self):
        """
        Twisted sorts keys: C{poem.10} comes before C{poem.2}.
        """
        poem = ("Ä" * (1024 * 1024 // 2)).encode()
        answer, held = self.askInPieces(poem, 65535, order=sorted)
        self.assertEqual(takeValue(answer, b"poem"), poem.decode().lower().encode())


class SmallPiecesOverTheLimitTests(ServerTestCase):
    maxPoemBytes = 100_000

    def test_tooManyPiecesForTheLimit(self):
        """
        A poem within the limit in pieces too small for the box limit is
        read to its end without being kept, and refused.
        """
        poem = b"A" * self.maxPoemBytes
        pieces = [(b"poem.%d" % n if n > 1 else b"poem", poem[n - 1 : n]) for n in range(1, len(poem) + 1)]
        server, transport = self.raw()
        server.dataReceived(encodeBox([(b"_ask", b"1"), (b"_command", b"Transform"), *pieces]))
        (answer,) = decodeBoxes(transport.value())
        self.assertEqual(answer[b"_error_code"], b"POEM_TOO_LARGE")
        limit = f"this gateway accepts at most {maxBoxBytes(self.maxPoemBytes):,} (see the AMP limits"
        self.assertIn(limit.encode(), answer[b"_error_description"])
        self.assertLessEqual(server.bufferedBytes(), maxBoxBytes(self.maxPoemBytes))


class OutOfOrderTests(ServerTestCase):
    def test_answeredAsEachFinishes(self):
        """
        Questions in flight on one connection are answered as each
        finishes: a slow one does not hold up a fast one behind it.
        """
        client, server, pump = self.connect()
        slow = asked(client.callRemote(TransformPoem, transform="cummingsify|later", poem="SLOW"))
        stalled = asked(client.callRemote(TransformPoem, transform="stall", poem="STALLED"))
        fast = asked(client.callRemote(TransformPoem, transform="reverse", poem="A\nB"))
        pump.flush()
        self.assertEqual(self.successResultOf(fast), {"poem": "B\nA"})
        self.assertNoResult(slow)
        self.clock.advance(LATER)
        pump.flush()
        self.assertEqual(self.successResultOf(slow), {"poem": "SLOW"})
        self.assertNoResult(stalled)
        self.clock.advance(self.deadline)
        pump.flush()
        self.failureResultOf(stalled, TransformTimeout)

    def test_tagsOnTheWire(self):
        server, transport = self.raw()
        server.dataReceived(
            box(_ask=b"slow", _command=b"Transform", poem=b"SLOW", transform=b"later")
            + box(_ask=b"fast", _command=b"Transform", poem=b"FAST", transform=b"cummingsify")
        )
        self.clock.advance(LATER)
        self.assertEqual(
            [answer[b"_answer"] for answer in decodeBoxes(transport.value())], [b"fast", b"slow"]
        )


class BrokenBoxTests(ServerTestCase):
    """
    Bytes that are not AMP drop their connection, with a log line, and only
    that connection.
    """

    def assertDropped(self, data, reason):
        client, server, pump = self.connect()
        other, otherServer, otherPump = self.connect()
        server.dataReceived(data)
        self.assertTrue(server.transport.disconnecting)
        dropped = self.logged("dropping the connection")
        self.assertEqual(len(dropped), 1)
        self.assertIn(reason, dropped[0]["reason"])
        self.assertEqual(
            self.successResultOf(self.transform(other, otherPump, "cummingsify", "OTHER")), {"poem": "other"}
        )
        self.assertFalse(otherServer.transport.disconnecting)
        pump.flush()
        self.failureResultOf(asked(client.callRemote(TransformPoem, transform="reverse", poem="x")))

    def test_keyOver255Bytes(self):
        self.assertDropped(b"\x01\x00" + b"k" * 256, "a key of 256 bytes")

    def test_notAQuestion(self):
        self.assertDropped(box(hello=b"world"), "neither a question nor the answer to one")

    def test_answerToNothing(self):
        self.assertDropped(box(_answer=b"1", poem=b"x"), "neither a question nor the answer to one")

    def test_tagReusedWhileUnanswered(self):
        question = box(_ask=b"1", _command=b"Transform", poem=b"x", transform=b"stall")
        self.assertDropped(question + question, "reused")

    def test_restOfTheDataIsIgnored(self):
        server, transport = self.raw()
        server.dataReceived(b"\x01\x00" + b"k" * 256 + REQUEST)
        self.assertEqual(transport.value(), b"")
        server.dataReceived(REQUEST)
        self.assertEqual(transport.value(), b"")

    def test_truncatedBoxThenClose(self):
        """
        A connection that ends in the middle of a box is logged as such;
        nothing is answered.
        """
        server, transport = self.raw()
        server.dataReceived(REQUEST[:40])
        server.connectionLost(Failure(ConnectionDone()))
        (event,) = self.logged("in the middle of a box")
        self.assertEqual(event["bytes"], 40)
        self.assertEqual(transport.value(), b"")
        self.assertEqual(self.clock.getDelayedCalls(), [])

    def test_truncatedBoxThenSilence(self):
        """
        A box that never ends is dropped with its connection after the
        idle timeout; the other connections are not disturbed.
        """
        client, server, pump = self.connect()
        other, otherServer, otherPump = self.connect()
        server.dataReceived(REQUEST[:40])
        self.clock.advance(29)
        self.successResultOf(self.transform(other, otherPump, "cummingsify", "KEEPS ME OPEN"))
        self.clock.advance(1)
        self.assertTrue(server.transport.disconnecting)
        self.assertFalse(otherServer.transport.disconnecting)
        pump.flush()
        self.assertTrue(self.logged("in the middle of a box"))


class LimitTests(ServerTestCase):
    """
    The memory a connection may hold: one box of C{maxBoxBytes}, and as
    much in unanswered questions.
    """

    maxPoemBytes = 100_000

    def question(self, tag, poem, transform=b"cummingsify"):
        return encodeBox(
            [
                (b"_ask", tag),
                (b"_command", b"Transform"),
                *splitValue(b"poem", poem),
                (b"transform", transform),
            ]
        )

    def test_oversizeBoxIsAnsweredNotHeld(self):
        """
        A box over the limit is read to its end without being kept, and
        answered C{POEM_TOO_LARGE}: the poem size stays the only limit a
        client meets, and the connection carries on.
        """
        server, transport = self.raw()
        limit = server.maxBoxBytes
        self.assertEqual(limit, maxBoxBytes(self.maxPoemBytes))
        data = self.question(b"big", b"A" * 5_000_000)
        held = 0
        for start in range(0, len(data), 4096):
            server.dataReceived(data[start : start + 4096])
            held = max(held, server.bufferedBytes())
        self.assertLessEqual(held, limit + 65537)
        (answer,) = decodeBoxes(transport.value())
        self.assertEqual((answer[b"_error"], answer[b"_error_code"]), (b"big", b"POEM_TOO_LARGE"))
        self.assertEqual(
            answer[b"_error_description"],
            f"the poem is 5,000,000 bytes; this gateway accepts at most {self.maxPoemBytes:,} "
            "(--max-poem-bytes)".encode(),
        )
        self.assertFalse(transport.disconnecting)
        transport.clear()
        server.dataReceived(REQUEST)
        self.assertEqual(transport.value(), ANSWER)
        self.assertEqual(server.bufferedBytes(), 0)

    def test_oversizeBoxOfAnotherCommand(self):
        server, transport = self.raw()
        server.dataReceived(
            encodeBox(
                [(b"_ask", b"x"), (b"_command", b"ListTransforms")]
                + [(b"junk.%d" % n, b"j" * 60000) for n in range(5)]
            )
        )
        (answer,) = decodeBoxes(transport.value())
        self.assertEqual(answer[b"_error_code"], b"BAD_REQUEST")

    def test_aPoemAtTheLimitFits(self):
        client, server, pump = self.connect()
        poem = "É" * (self.maxPoemBytes // 2)
        name = "cummingsify|" * 15 + "cummingsify"
        self.assertEqual(
            self.successResultOf(self.transform(client, pump, name, poem)), {"poem": poem.lower()}
        )

    def test_unansweredQuestionsPauseReading(self):
        """
        While unanswered questions and the box coming in would hold more
        than one box's worth, the server reads nothing more; it reads on as
        answers go out.
        """
        server, transport = self.raw()
        server.dataReceived(self.question(b"1", b"A" * 90_000, b"stall"))
        self.assertEqual(transport.producerState, "producing")
        server.dataReceived(self.question(b"2", b"B" * 90_000) + REQUEST)
        self.assertEqual(transport.producerState, "paused")
        self.assertEqual(transport.value(), b"")
        self.assertLessEqual(server.bufferedBytes(), server.maxBoxBytes + 65537)
        self.clock.advance(self.deadline)
        self.assertEqual(transport.producerState, "producing")
        answers = decodeBoxes(transport.value())
        self.assertEqual(
            [answer.get(b"_answer", answer.get(b"_error")) for answer in answers], [b"1", b"2", b"1"]
        )
        self.assertEqual(answers[0][b"_error_code"], b"TIMEOUT")
        self.assertEqual(takeValue(answers[1], b"poem"), b"b" * 90_000)
        self.assertEqual(answers[2], decodeBoxes(ANSWER)[0])

    def test_answersNotReadPauseReading(self):
        """
        When the transport's write buffer is full (a client that does not
        read its answers), the server stops reading questions until it
        drains.
        """
        server, transport = self.raw()
        self.assertIs(transport.producer, server)
        server.pauseProducing()
        self.assertEqual(transport.producerState, "paused")
        server.dataReceived(REQUEST)
        self.assertEqual(transport.value(), b"")
        server.resumeProducing()
        self.assertEqual(transport.producerState, "producing")
        self.assertEqual(transport.value(), ANSWER)

    def test_bothReasonsMustClear(self):
        server, transport = self.raw()
        server.dataReceived(self.question(b"1", b"A" * 90_000, b"stall"))
        server.dataReceived(self.question(b"2", b"B" * 90_000))
        server.pauseProducing()
        self.clock.advance(self.deadline)
        self.assertEqual(transport.producerState, "paused")
        self.assertEqual(len(decodeBoxes(transport.value())), 1)
        server.resumeProducing()
        self.assertEqual(len(decodeBoxes(transport.value())), 2)


class BoundedWriteTransport(StringTransport):
    """
    A L{StringTransport} whose write buffer, like a real transport's, tells
    its producer to pause once it holds more than L{bound} bytes, and to
    resume once the peer has read it (L{read}).
    """

    bound = 64 * 1024

    def write(self, data):
        super().write(data)
        if len(self.value()) > self.bound and self.producer is not None and not self._full:
            self._full = True
            self.producer.pauseProducing()

    _full = False

    def read(self) -> bytes:
        data = self.value()
        self.clear()
        if self._full:
            self._full = False
            self.producer.resumeProducing()
        return data


class ClientThatDoesNotReadTests(ServerTestCase):
    """
    A client that sends questions without reading its answers: once the
    answers fill the transport's buffer, the server reads nothing more, so
    it holds at most that buffer and a read's worth of questions.
    """

    def test_serverStopsReading(self):
        questions = b"".join(
            box(_ask=b"%d" % n, _command=b"Transform", transform=b"reverse", poem=b"A\nB" * 100)
            for n in range(2000)
        )
        server = self.factory.buildProtocol(PEER)
        transport = BoundedWriteTransport(peerAddress=PEER)
        server.makeConnection(transport)
        sent, answers, rounds = 0, [], 0
        while sent < len(questions):
            rounds += 1
            while transport.producerState == "producing" and sent < len(questions):
                server.dataReceived(questions[sent : sent + 4096])  # as the reactor reads
                sent += 4096
                self.assertLessEqual(len(transport.value()), transport.bound + 1000)
                self.assertLessEqual(server.bufferedBytes(), 4096)
            if sent < len(questions):
                self.assertEqual(transport.producerState, "paused")
            answers += decodeBoxes(transport.read())  # the client reads, at last
        answers += decodeBoxes(transport.read())
        self.assertEqual([answer[b"_answer"] for answer in answers], [b"%d" % n for n in range(2000)])
        self.assertGreater(rounds, 5)
        self.assertEqual(takeValue(answers[-1], b"poem").decode(), transforms.reverse("A\nB" * 100))


class ClientThatDoesNotReadLoopbackTests(TestCase):
    """
    The same over real TCP on 127.0.0.1, with small socket buffers: the
    server stops reading once its answers are not read, and answers every
    question once they are.
    """

    questions = 3000

    async def test_serverStopsReading(self):
        paused: Deferred = Deferred()
        answered = []

        class WatchedAMP(TransformAMP):
            def connectionMade(self):
                self.transport.getHandle().setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 65536)
                super().connectionMade()

            def sendBox(self, box):
                super().sendBox(box)
                answered.append(box)

            def pauseProducing(self):
                super().pauseProducing()
                if not paused.called:
                    paused.callback(self)

        factory = TrackingAMPFactory(TransformService(misbehavingCatalogue(reactor), reactor), reactor)
        factory.protocol = WatchedAMP
        port = await serverFromString(reactor, "tcp:0:interface=127.0.0.1").listen(factory)
        self.addCleanup(port.stopListening)
        client = SilentClient(self.questions)
        await connectProtocol(TCP4ClientEndpoint(reactor, "127.0.0.1", port.getHost().port), client)
        self.addCleanup(factory.whenAllClosed)
        self.addCleanup(client.transport.loseConnection)

        server = await paused
        self.assertLess(len(answered), self.questions)
        self.assertLessEqual(server.bufferedBytes(), 64 * 1024)
        client.transport.resumeProducing()
        answers = await client.answered
        self.assertEqual(
            [answer[b"_answer"] for answer in answers], [b"%d" % n for n in range(self.questions)]
        )


class SilentClient(Protocol):
    """
    Sends C{count} questions at once, and reads nothing until resumed.

    @ivar answered: fires with the answers once they are all in.
    """

    def __init__(self, count: int) -> None:
        self.count = count
        self.decoder = BoxDecoder(10**6)
        self.answers: list[dict] = []
        self.answered: Deferred = Deferred()

    def connectionMade(self):
        self.transport.getHandle().setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 65536)
        self.transport.pauseProducing()
        self.transport.write(
            b"".join(
                box(_ask=b"%d" % n, _command=b"Transform", transform=b"reverse", poem=b"A\nB" * 60)
                for n in range(self.count)
            )
        )

    def dataReceived(self, data):
        self.decoder.feed(data)
        self.answers += iter(self.decoder.pop, None)
        if len(self.answers) == self.count:
            self.answered.callback(self.answers)


class IdleTimeoutTests(ServerTestCase):
    deadline = 100.0

    def test_silentClientIsClosed(self):
        server, transport = self.raw()
        self.clock.advance(29.9)
        self.assertFalse(transport.disconnecting)
        self.clock.advance(0.1)
        self.assertTrue(transport.disconnecting)
        self.assertTrue(self.logged("idle for {seconds:g} s"))

    def test_notWhileAQuestionIsInFlight(self):
        server, transport = self.raw()
        server.dataReceived(box(_ask=b"1", _command=b"Transform", poem=b"x", transform=b"stall"))
        self.clock.advance(99)
        self.assertFalse(transport.disconnecting)
        self.clock.advance(1)  # the deadline: answered TIMEOUT, and the idle time starts
        self.assertEqual(decodeBoxes(transport.value())[0][b"_error_code"], b"TIMEOUT")
        self.clock.advance(29.9)
        self.assertFalse(transport.disconnecting)
        self.clock.advance(0.1)
        self.assertTrue(transport.disconnecting)

    def test_receivingKeepsTheConnection(self):
        server, transport = self.raw()
        for byte in REQUEST:
            self.clock.advance(20)
            server.dataReceived(bytes([byte]))
        self.assertEqual(transport.value(), ANSWER)
        self.assertFalse(transport.disconnecting)

    def test_clientThatDoesNotCloseIsAborted(self):
        server, transport = self.raw()
        self.clock.advance(30)
        self.assertTrue(transport.disconnecting)
        self.assertFalse(transport.disconnected)
        self.clock.advance(30)
        self.assertTrue(transport.disconnected)

    def test_noTimerAfterTheConnectionEnds(self):
        server, transport = self.raw()
        server.dataReceived(REQUEST)
        server.connectionLost(Failure(ConnectionDone()))
        self.assertEqual(self.clock.getDelayedCalls(), [])


# Hypothesis: the server on arbitrary streams.

_keys = st.sampled_from([b"poem", b"poem.2", b"poem.3", b"transform", b"x", b"_ask", b"_answer", b"_error"])
_values = st.one_of(
    st.sampled_from([b"cummingsify", b"stall", b"rot13|nope", b"later", b"HELLO", b"\xc3"]),
    st.binary(max_size=20),
)
_pairs = st.lists(st.tuples(_keys, _values), max_size=4)
_questions = st.builds(
    lambda tag, command, pairs: encodeBox([(b"_ask", tag), (b"_command", command), *pairs]),
    st.sampled_from([b"1", b"2", b"3"]),
    st.sampled_from([b"Transform", b"ListTransforms", b"Nope"]),
    _pairs,
)
_streams = st.lists(
    st.one_of(_questions, _questions, _questions, _pairs.map(encodeBox), st.binary(max_size=30)), max_size=8
).map(b"".join)


def serveAnyStream(stream: bytes, cuts: list[int]) -> None:
    """
    Feed a gateway's AMP server C{stream} cut at C{cuts}, and check that
    it raises nothing and logs no traceback; that it writes whole boxes,
    each answering once a question that was asked, or drops the
    connection; and that it leaves no timer behind once its listener has
    stopped.  (Also the check of
    the AMP fuzzing target, L{tests.fuzz.targets}.)
    """
    events = []
    globalLogPublisher.addObserver(events.append)
    try:
        clock = MemoryReactorClock()
        service = TransformService(misbehavingCatalogue(clock), clock, Limits(maxPoemBytes=100, deadline=1))
        factory = TransformAMPFactory(service, clock)
        server = factory.buildProtocol(PEER)
        transport = StringTransport(peerAddress=PEER)
        server.makeConnection(transport)
        for chunk in cutAnywhere(stream, cuts):
            server.dataReceived(chunk)
        clock.advance(1)  # every deadline has passed
        server.connectionLost(Failure(ConnectionDone()))
        factory.stopFactory()  # the listener stops: its summary of refusals is written
    finally:
        globalLogPublisher.removeObserver(events.append)
    for answer in decodeBoxes(transport.value()):
        tag = answer.get(b"_answer", answer.get(b"_error"))
        assert tag is not None and tag in stream
        assert b"_answer" in answer or {b"_error_code", b"_error_description"} <= set(answer)
    assert not [event for event in events if event.get("log_failure") and event.get("transform") != "explode"]
    assert clock.getDelayedCalls() == []


@settings(max_examples=200, deadline=None)
@given(stream=_streams, cuts=st.lists(st.integers(min_value=0), max_size=10))
def test_serverOnAnyStream(stream, cuts):
    """
    Whatever bytes a client sends, cut anywhere, the server raises
    nothing and logs no traceback; it writes whole boxes, each answering
    once a question that was asked, or it drops the connection.
    """
    serveAnyStream(stream, cuts)


_names = st.sampled_from(
    [b"cummingsify", b"rot13|reverse", b"echo", b"stall", b"explode", b"number", b"nope", b""]
)
_poems = st.one_of(st.text(max_size=20).map(str.encode), st.binary(max_size=8), st.just(b"x" * 101))
_asked = st.lists(
    st.one_of(
        st.tuples(st.just(b"Transform"), _names, _poems),
        st.tuples(st.sampled_from([b"ListTransforms", b"Nope"]), st.none(), st.none()),
    ),
    max_size=6,
)


def _expectedCode(name: bytes, poem: bytes) -> "bytes | str":
    """
    What the service answers C{name} of C{poem} on a clock of its own: the
    new poem, or the AMP code of its error.
    """
    try:
        name, poem = name.decode(), poem.decode()
    except UnicodeDecodeError:
        return b"BAD_REQUEST"
    clock = MemoryReactorClock()
    results = []
    TransformService(misbehavingCatalogue(clock), clock, Limits(maxPoemBytes=100, deadline=1)).transform(
        name, poem
    ).addBoth(results.append)
    clock.advance(0)  # every turn of work, however many a loaded machine takes
    clock.advance(1)  # the deadline of what stalls
    [result] = results
    return result if isinstance(result, str) else ERROR_CODES[type(result.value)]


@settings(max_examples=200, deadline=None)
@given(asked=_asked, cuts=st.lists(st.integers(min_value=0), max_size=10))
def test_serverAnswersEveryQuestionOnce(asked, cuts):
    """
    Well-formed questions, each with its own tag, cut anywhere: the server
    keeps the connection open and answers each exactly once, a
    C{Transform} with the service's own poem or error code, an unknown
    command with C{UNHANDLED}.
    """
    stream = b""
    for tag, (command, name, poem) in enumerate(asked):
        arguments = [] if name is None else [(b"transform", name), (b"poem", poem)]
        stream += encodeBox([(b"_ask", b"%d" % tag), (b"_command", command), *arguments])
    clock = MemoryReactorClock()
    service = TransformService(misbehavingCatalogue(clock), clock, Limits(maxPoemBytes=100, deadline=1))
    server = TransformAMPFactory(service, clock).buildProtocol(PEER)
    transport = StringTransport(peerAddress=PEER)
    server.makeConnection(transport)
    for chunk in cutAnywhere(stream, cuts):
        server.dataReceived(chunk)
    clock.advance(0)  # every turn of work, however many a loaded machine takes
    clock.advance(1)  # every deadline has passed
    assert not transport.disconnecting
    answers = {int(box.get(b"_answer", box.get(b"_error"))): box for box in decodeBoxes(transport.value())}
    assert len(answers) == len(decodeBoxes(transport.value())) == len(asked)
    for tag, (command, name, poem) in enumerate(asked):
        answer = answers[tag]
        if command == b"Transform":
            expected = _expectedCode(name, poem)
            if isinstance(expected, str):
                assert takeValue(dict(answer), b"poem") == expected.encode()
            else:
                assert answer[b"_error_code"] == expected
        elif command == b"Nope":
            assert answer[b"_error_code"] == b"UNHANDLED"
        else:
            assert b"transforms" in answer
    server.connectionLost(Failure(ConnectionDone()))
