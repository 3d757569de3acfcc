"""
The AMP protocol on in-memory transports: the framing helpers, the server
with a stock Twisted AMP client, the raw bytes of the docs, the limits, and
L{AMPTransformClient}, all on a fake clock.
"""

from twisted.internet.address import IPv4Address
from twisted.internet.defer import CancelledError, Deferred
from twisted.internet.endpoints import TCP4ClientEndpoint, TCP4ServerEndpoint
from twisted.internet.error import ConnectionDone, ConnectionRefusedError
from twisted.internet.task import deferLater
from twisted.internet.testing import MemoryReactorClock, StringTransport
from twisted.protocols import amp
from twisted.python.failure import Failure
from twisted.test import iosim
from twisted.trial.unittest import SynchronousTestCase

from protocols.amp import (
    ERROR_CODES,
    AMPTransformClient,
    BoxDecoder,
    BrokenBox,
    ListTransforms,
    Transform,
    TransformAMPFactory,
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
from tests.helpers import captureLogs, misbehavingCatalogue

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


#: The request and the answer shown in the docs, byte for byte.
REQUEST = (
    b"\x00\x04_ask\x00\x011"
    b"\x00\x08_command\x00\x09Transform"
    b"\x00\x04poem\x00\x0bHELLO WORLD"
    b"\x00\x09transform\x00\x0bcummingsify"
    b"\x00\x00"
)
ANSWER = b"\x00\x07_answer\x00\x011\x00\x04poem\x00\x0bhello world\x00\x00"


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


class FramingTests(SynchronousTestCase):
    """
    The framing helpers that the server, the clients and the docs share.
    """

    def test_splitSizes(self):
        """
        A value is cut into pieces of 65,535 bytes under C{name},
        C{name.2}, ...; a value that fits stays whole, an empty one is one
        empty piece.
        """
        cases = {
            0: [0],
            65535: [65535],
            65536: [65535, 1],
            200_000: [65535, 65535, 65535, 3395],
        }
        for size, sizes in cases.items():
            pieces = splitValue(b"poem", b"A" * size)
            self.assertEqual([len(piece) for key, piece in pieces], sizes, size)
            self.assertEqual(
                [key for key, piece in pieces], [b"poem"] + [b"poem.%d" % n for n in range(2, len(sizes) + 1)]
            )

    def test_splitKeepsCharactersWhole(self):
        """
        A cut that would fall inside a UTF-8 sequence moves back to its
        start, so every piece decodes on its own.
        """
        for character in ["é", "€", "𝄞"]:
            width = len(character.encode())
            for before in range(65535 - width + 1, 65536):
                text = "a" * before + character * 3 + "z"
                pieces = [piece for key, piece in splitValue(b"poem", text.encode())]
                self.assertEqual("".join(piece.decode("utf-8") for piece in pieces), text)
                self.assertTrue(all(len(piece) <= 65535 for piece in pieces))

    def test_takeValueJoinsPieces(self):
        values = {b"poem": b"ab", b"poem.2": b"cd", b"poem.3": b"e", b"transform": b"x"}
        self.assertEqual(takeValue(values, b"poem"), b"abcde")
        self.assertEqual(values, {b"transform": b"x"})

    def test_takeValueRefusesGapsAndStrays(self):
        for values in [
            {b"poem.2": b"a"},
            {b"poem": b"a", b"poem.3": b"b"},
            {b"poem": b"a", b"poem.2": b"b", b"poem.x": b"c"},
        ]:
            self.assertRaises(BadRequest, takeValue, dict(values), b"poem")

    def test_decoderWholeAndByteByByte(self):
        data = REQUEST + ANSWER
        expected = [dict(decodeBoxes(REQUEST)[0]), {b"_answer": b"1", b"poem": b"hello world"}]
        self.assertEqual(decodeBoxes(data), expected)
        decoder = BoxDecoder(1000)
        boxes = []
        for byte in data:
            decoder.feed(bytes([byte]))
            boxes += iter(decoder.pop, None)
        self.assertEqual(boxes, expected)
        self.assertEqual(decoder.pending(), 0)

    def test_decoderRefusesLongKeysAndBigBoxes(self):
        decoder = BoxDecoder(1000)
        decoder.feed(b"\x01\x00")
        self.assertRaises(BrokenBox, decoder.pop)
        decoder = BoxDecoder(len(REQUEST) - 1)
        decoder.feed(REQUEST[:30])
        self.assertRaises(BrokenBox, lambda: [decoder.pop(), decoder.feed(REQUEST[30:]), decoder.pop()])

    def test_decodeBoxesRefusesAPartialBox(self):
        self.assertRaises(BrokenBox, decodeBoxes, REQUEST[:-1])

    def test_encodeBoxRefusesWhatAMPCannotCarry(self):
        self.assertRaises(ValueError, encodeBox, [(b"", b"x")])
        self.assertRaises(ValueError, encodeBox, [(b"k" * 256, b"x")])
        self.assertRaises(ValueError, encodeBox, [(b"k", b"x" * 65536)])

    def test_errorCodesAreTheNamesUpperCased(self):
        self.assertEqual(
            {error.__name__: code for error, code in ERROR_CODES.items()},
            {
                "UnknownTransform": b"UNKNOWN_TRANSFORM",
                "BadRequest": b"BAD_REQUEST",
                "PoemTooLarge": b"POEM_TOO_LARGE",
                "TransformFailed": b"TRANSFORM_FAILED",
                "TransformTimeout": b"TIMEOUT",
                "Overloaded": b"OVERLOADED",
            },
        )

    def test_boxLimit(self):
        self.assertEqual(maxBoxBytes(1024 * 1024), 1024 * 1024 + 1024 + 65536)


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

    def ask(self, client, pump, command=Transform, **arguments):
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

    def test_theDocumentedBytes(self):
        """
        The request of the docs, byte for byte, gets the answer of the
        docs, byte for byte.
        """
        server, transport = self.raw()
        server.dataReceived(REQUEST)
        self.assertEqual(transport.value(), ANSWER)

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

    def test_badArguments(self):
        """
        Arguments that cannot be read are C{BAD_REQUEST}: a missing
        argument, a poem that is not UTF-8, pieces with a gap.
        """
        cases = [
            box(_ask=b"1", _command=b"Transform", poem=b"HELLO"),
            box(_ask=b"2", _command=b"Transform", transform=b"cummingsify"),
            box(_ask=b"3", _command=b"Transform", poem=b"\xff\xfe", transform=b"cummingsify"),
            box(_ask=b"4", _command=b"Transform", transform=b"\xc3", poem=b"HELLO"),
            encodeBox(
                [
                    (b"_ask", b"5"),
                    (b"_command", b"Transform"),
                    (b"poem", b"A"),
                    (b"poem.3", b"B"),
                    (b"transform", b"cummingsify"),
                ]
            ),
        ]
        server, transport = self.raw()
        server.dataReceived(b"".join(cases) + REQUEST)
        answers = decodeBoxes(transport.value())
        self.assertEqual([answer.get(b"_error_code") for answer in answers[:5]], [b"BAD_REQUEST"] * 5)
        self.assertEqual(sorted(answer[b"_error"] for answer in answers[:5]), [b"1", b"2", b"3", b"4", b"5"])
        self.assertIn(b"'transform'", answers[0][b"_error_description"])
        self.assertIn(b"poem.3", answers[4][b"_error_description"])
        self.assertEqual(answers[5], decodeBoxes(ANSWER)[0])
        self.assertFalse(transport.disconnecting)

    def test_unexpectedExceptionInTheService(self):
        """
        A service that raises something other than its own errors gets
        C{TRANSFORM_FAILED}, logged with its traceback; the connection
        carries on.
        """

        class BrokenService(TransformService):
            def transform(self, name, poem):
                if name == "bug":
                    raise RuntimeError("a bug in the service")
                return super().transform(name, poem)

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
        Send C{poem} to C{cummingsify} with the stock client and return the
        answer's keys and pieces as the server wrote them.
        """
        client, server, pump = self.connect()
        wire = []
        write = server.transport.write
        server.transport.write = lambda data: (wire.append(data), write(data))
        answer = self.transform(client, pump, "cummingsify", poem)
        self.assertEqual(self.successResultOf(answer), {"poem": poem.lower()})
        (answerBox,) = decodeBoxes(b"".join(wire))
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


class OutOfOrderTests(ServerTestCase):
    def test_answeredAsEachFinishes(self):
        """
        Questions in flight on one connection are answered as each
        finishes: a slow one does not hold up a fast one behind it.
        """
        client, server, pump = self.connect()
        slow = asked(client.callRemote(Transform, transform="cummingsify|later", poem="SLOW"))
        stalled = asked(client.callRemote(Transform, transform="stall", poem="STALLED"))
        fast = asked(client.callRemote(Transform, transform="reverse", poem="A\nB"))
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
        self.failureResultOf(asked(client.callRemote(Transform, transform="reverse", poem="x")))

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
        self.assertIn(b"the limit is %d bytes" % limit, answer[b"_error_description"])
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


class ClientTests(SynchronousTestCase):
    """
    L{AMPTransformClient} against the real server protocol, over in-memory
    connections made by a fake reactor.
    """

    def setUp(self):
        self.reactor = MemoryReactorClock()
        self.events = captureLogs(self)
        self.service = TransformService(slowCatalogue(self.reactor), self.reactor, Limits(deadline=60))
        TCP4ServerEndpoint(self.reactor, 10002).listen(TransformAMPFactory(self.service, self.reactor))
        self.completer = iosim.ConnectionCompleter(self.reactor)
        self.client = self.makeClient()

    def makeClient(self, **keywords):
        endpoint = TCP4ClientEndpoint(self.reactor, "127.0.0.1", 10002)
        return AMPTransformClient(endpoint, self.reactor, timeout=5, **keywords)

    def test_xform(self):
        result = self.client.xform("later|reverse", "Hello\nWorld")
        pump = self.completer.succeedOnce()
        self.assertNoResult(result)
        self.reactor.advance(LATER)
        pump.flush()
        self.assertEqual(self.successResultOf(result), "WORLD\nHELLO")

    def test_listTransforms(self):
        result = self.client.listTransforms()
        self.completer.succeedOnce()
        self.assertEqual(
            self.successResultOf(result),
            [(entry.name, entry.description) for entry in self.service.transforms()],
        )

    def test_bigPoem(self):
        poem = "Ä" * 300_000
        result = self.client.xform("cummingsify", poem)
        self.completer.succeedOnce()
        self.assertEqual(self.successResultOf(result), "ä" * 300_000)

    def test_oneConnectionForConcurrentQuestions(self):
        results = [self.client.xform("cummingsify", f"POEM {n}") for n in range(10)]
        self.assertEqual(len(self.reactor.tcpClients), 1)
        pump = self.completer.succeedOnce()
        more = self.client.xform("reverse", "A\nB")
        pump.flush()
        self.assertEqual(
            [self.successResultOf(result) for result in results], [f"poem {n}" for n in range(10)]
        )
        self.assertEqual(self.successResultOf(more), "B\nA")
        self.assertEqual(self.reactor.tcpClients, [])

    def test_remoteErrorsAreTheServiceErrors(self):
        results = {
            UnknownTransform: self.client.xform("nope", "poem"),
            BadRequest: self.client.xform("", "poem"),
            PoemTooLarge: self.client.xform("reverse", "A" * (1024 * 1024 + 1)),
            TransformFailed: self.client.xform("explode", "poem"),
        }
        self.completer.succeedOnce()
        for errorClass, result in results.items():
            self.assertIs(type(self.failureResultOf(result).value), errorClass)
        self.assertEqual(len(self.flushLoggedErrors(ZeroDivisionError)), 1)

    def test_reconnectsAfterTheConnectionIsLost(self):
        first = self.client.xform("cummingsify", "ONE")
        pump = self.completer.succeedOnce()
        self.assertEqual(self.successResultOf(first), "one")
        pump.serverIO.loseConnection()
        pump.flush()
        second = self.client.xform("cummingsify", "TWO")
        self.assertEqual(len(self.reactor.tcpClients), 1)
        self.completer.succeedOnce()
        self.assertEqual(self.successResultOf(second), "two")

    def test_asksAgainWhenAReusedConnectionCloses(self):
        """
        A question sent on an open connection that closes before the answer
        (the server's idle timeout, say) is asked again on a new one.
        """
        first = self.client.xform("cummingsify", "ONE")
        pump = self.completer.succeedOnce()
        self.successResultOf(first)
        second = self.client.xform("cummingsify", "TWO")
        pump.serverIO.loseConnection()  # the server closes; its answer is lost
        pump.flush()
        self.assertNoResult(second)
        self.completer.succeedOnce()
        self.assertEqual(self.successResultOf(second), "two")

    def test_doesNotAskAgainOnAFreshConnection(self):
        result = self.client.xform("cummingsify", "ONE")
        pump = self.completer.succeedOnce(greet=False)
        pump.serverIO.loseConnection()
        pump.flush()
        self.failureResultOf(result, ConnectionDone)
        self.assertEqual(self.reactor.tcpClients, [])

    def test_connectionRefused(self):
        result = self.client.xform("cummingsify", "HELLO")
        self.completer.failOnce()
        self.failureResultOf(result, ConnectionRefusedError)

    def test_timeout(self):
        """
        A late answer fails with L{TransformTimeout}; the connection stays
        usable for other questions, and the late answer is ignored.
        """
        self.client.timeout = 5
        result = self.client.xform("stall", "HELLO")
        pump = self.completer.succeedOnce()
        self.reactor.advance(5)
        error = self.failureResultOf(result, TransformTimeout).value
        self.assertEqual(error.message, "no reply within 5 seconds")
        after = self.client.xform("cummingsify", "AFTER")
        pump.flush()
        self.assertEqual(self.successResultOf(after), "after")
        self.reactor.advance(55)  # the server's deadline answers the stalled question
        pump.flush()
        self.assertFalse(pump.clientIO.disconnecting)
        self.assertFalse([event for event in self.events if event.get("log_failure")])

    def test_timeoutWhileConnecting(self):
        result = self.client.xform("cummingsify", "HELLO")
        self.reactor.advance(5)
        self.failureResultOf(result, TransformTimeout)

    def test_oneQuestionGivingUpDoesNotStopTheConnectionForOthers(self):
        early = self.client.xform("cummingsify", "EARLY")
        self.reactor.advance(4)
        late = self.client.xform("cummingsify", "LATE")
        self.reactor.advance(1)
        self.failureResultOf(early, TransformTimeout)
        self.completer.succeedOnce()
        self.assertEqual(self.successResultOf(late), "late")

    def test_cancel(self):
        result = self.client.xform("stall", "HELLO")
        self.completer.succeedOnce()
        result.cancel()
        self.failureResultOf(result, CancelledError)

    def test_disconnect(self):
        result = self.client.xform("stall", "HELLO")
        pump = self.completer.succeedOnce()
        closed = self.client.disconnect()
        self.assertNoResult(closed)
        pump.flush()
        self.successResultOf(closed)
        self.failureResultOf(result, ConnectionDone)
        self.assertEqual(self.reactor.tcpClients, [])
        self.assertEqual(self.service.inFlight, 0)
        self.successResultOf(self.client.disconnect())

    def test_answerOverTheClientsLimit(self):
        client = self.makeClient(maxReplyBytes=1000)
        result = client.xform("cummingsify", "A" * 100_000)
        pump = self.completer.succeedOnce()
        error = self.failureResultOf(result, PoemTooLarge).value
        self.assertIn("over this client's limit", error.message)
        small = client.xform("cummingsify", "SMALL")
        pump.flush()
        self.assertEqual(self.successResultOf(small), "small")
        self.assertFalse(pump.clientIO.disconnecting)

    def test_unencodableArguments(self):
        result = self.client.xform("cummingsify", "\udc80")
        self.completer.succeedOnce()
        self.failureResultOf(result, UnicodeEncodeError)

    def test_serverCommandsAreUnhandled(self):
        result = self.client.xform("cummingsify", "HELLO")
        pump = self.completer.succeedOnce()
        self.successResultOf(result)
        question = asked(pump.server.callRemote(ListTransforms))
        pump.flush()
        self.failureResultOf(question, amp.UnhandledCommand)

    def test_failingConnectionFailsEveryWaiter(self):
        results = [self.client.xform("cummingsify", "HELLO") for _ in range(3)]
        self.completer.failOnce()
        for result in results:
            self.failureResultOf(result, ConnectionRefusedError)
