"""
JSON-RPC 2.0 over the gateway's WebSocket endpoint, in memory: the real
web site on a L{MemoryNetwork}, driven by an independent client (the
C{websockets} library's own protocol, L{tests.websocketclient}) and, where
a test needs bytes no client library would send, by raw bytes on its
connection; deadlines on the network's fake clock.  Over real sockets:
L{tests.test_loopback} and, with the C{websockets} library's blocking
client against a real gateway, L{tests.test_web_process}.
"""

import json
import os

from twisted.internet import reactor
from twisted.internet.defer import Deferred
from twisted.internet.endpoints import HostnameEndpoint, TCP4ClientEndpoint, connectProtocol, serverFromString
from twisted.trial.unittest import TestCase
from websockets.frames import Frame, Opcode

from gateway.web import makeSite
from protocols.connections import FIRST_BYTES_GRACE, Connections
from protocols.jsonrpc import (
    ANSWER_TOO_BIG,
    ERROR_CODES,
    INVALID_PARAMS,
    INVALID_REQUEST,
    METHOD_NOT_FOUND,
    PARSE_ERROR,
)
from protocols.origins import OriginPolicy
from protocols.websocket import IDLE_REASON, IDLE_TIMEOUT, PING_INTERVAL, maxMessageBytes
from service import Limits, Transform, TransformService, transforms
from tests.helpers import POEMS, captureLogs, echoed, misbehavingCatalogue
from tests.memory import HOST, Collector, MemoryTestCase, readResponse
from tests.websocketclient import UPGRADE, WebSocketClient

#: The server's limits: a 1 MB poem fits, a request stalls for 0.5 s, and one
#: connection may use the whole cap on requests in flight (the caps per
#: connection and per address are tested in tests/test_overload.py).
LIMITS = Limits(
    maxPoemBytes=1_100_000, deadline=0.5, maxInFlight=64, maxInFlightPerConnection=64, maxInFlightPerPeer=64
)

MEGABYTE_POEM = ("Das Gedicht, ein Megabyte lang.\n" * 40_000)[:1_000_000]

SENTINEL = {"jsonrpc": "2.0", "method": "transform", "params": ["cummingsify", "SENTINEL"], "id": "sentinel"}
SENTINEL_ANSWER = {"jsonrpc": "2.0", "result": {"poem": "sentinel"}, "id": "sentinel"}


def request(method, params=None, id=1):
    message = {"jsonrpc": "2.0", "method": method, "id": id}
    if params is not None:
        message["params"] = params
    return message


def notification(method, params=None):
    message = request(method, params)
    del message["id"]
    return message


def result(value, id=1):
    return {"jsonrpc": "2.0", "result": value, "id": id}


def error(code, id=1, data=None):
    response = {"jsonrpc": "2.0", "error": {"code": code}, "id": id}
    if data is not None:
        response["error"]["data"] = data
    return response


def appError(name, id=1):
    return error(ERROR_CODES[name], id, name)


def withoutMessages(answer):
    """
    C{answer} with the text of its errors checked (a non-empty string) and
    dropped, so that answers compare by code, data and id.
    """
    for response in answer if isinstance(answer, list) else [answer]:
        if isinstance(response, dict) and "error" in response:
            message = response["error"].pop("message")
            assert isinstance(message, str) and message, response
    return answer


#: The conformance table: (what, the message sent, the answer expected or
#: None for no answer at all).  Messages that are not str are sent as JSON.
CASES = [
    (
        "transform, named params",
        request("transform", {"transform": "cummingsify", "poem": "HI"}),
        result({"poem": "hi"}),
    ),
    ("transform, positional params", request("transform", ["reverse", "a\nb"]), result({"poem": "b\na"})),
    (
        "a pipeline with an asynchronous step",
        request("transform", ["cummingsify|echo", "A B"]),
        result({"poem": "a b … b … b"}),
    ),
    (
        "non-ASCII",
        request("transform", ["titlecase", POEMS["alla_sera"]]),
        result({"poem": transforms.titlecase(POEMS["alla_sera"])}),
    ),
    ("a string id", request("transform", ["rot13", "a"], id="abc"), result({"poem": "n"}, "abc")),
    ("an empty string id", request("transform", ["rot13", "a"], id=""), result({"poem": "n"}, "")),
    ("a number id", request("transform", ["rot13", "a"], id=-42), result({"poem": "n"}, -42)),
    ("a fractional id", request("transform", ["rot13", "a"], id=2.5), result({"poem": "n"}, 2.5)),
    ("a null id", request("transform", ["rot13", "a"], id=None), result({"poem": "n"}, None)),
    ("a huge id", request("transform", ["rot13", "a"], id=10**60 + 7), result({"poem": "n"}, 10**60 + 7)),
    (
        "the longest string id",
        request("transform", ["rot13", "a"], id="i" * 256),
        result({"poem": "n"}, "i" * 256),
    ),
    (
        "a string id too long",
        request("transform", ["rot13", "a"], id="i" * 257),
        error(INVALID_REQUEST, None),
    ),
    ("list_transforms", request("list_transforms"), None),  # checked in its own test
    ("a notification", notification("transform", ["rot13", "a"]), None),
    ("a notification of an unknown method", notification("nope"), None),
    ("a notification that fails", notification("transform", ["explode", "a"]), None),
    ("a notification with bad params", notification("transform", {"wrong": 1}), None),
    (
        "a batch mixing good and bad calls",
        [
            request("transform", ["cummingsify", "A"], id=1),
            notification("transform", ["rot13", "a"]),
            request("transform", ["nope", "a"], id=2),
            {"foo": "boo"},
            request("no_such_method", id=3),
            request("transform", {"transform": 1, "poem": "a"}, id=4),
            7,
            request("transform", ["reverse", "x\ny"], id=5),
        ],
        [
            result({"poem": "a"}, 1),
            appError("unknown-transform", 2),
            error(INVALID_REQUEST, None),
            error(METHOD_NOT_FOUND, 3),
            error(INVALID_PARAMS, 4),
            error(INVALID_REQUEST, None),
            result({"poem": "y\nx"}, 5),
        ],
    ),
    ("a batch of notifications", [notification("transform", ["rot13", "a"]), notification("nope")], None),
    ("an empty batch", [], error(INVALID_REQUEST, None)),
    ("a batch of junk", [1, 2], [error(INVALID_REQUEST, None), error(INVALID_REQUEST, None)]),
    (
        "not JSON",
        '{"jsonrpc": "2.0", "method": "transform", "params": ["rot13", "a"]',
        error(PARSE_ERROR, None),
    ),
    ("NaN", '{"jsonrpc": "2.0", "method": "transform", "params": NaN, "id": 1}', error(PARSE_ERROR, None)),
    ("deeply nested JSON", "[" * 5_000 + "]" * 5_000, error(PARSE_ERROR, None)),
    ("too many values", "[" * 50_000 + "]" * 50_000, error(INVALID_REQUEST, None)),
    (
        "nested params within reach",
        request("transform", {"transform": "rot13", "poem": [[[["a"]]]]}),
        error(INVALID_PARAMS),
    ),
    ("a number", "42", error(INVALID_REQUEST, None)),
    ("no jsonrpc member", {"method": "list_transforms", "id": 1}, error(INVALID_REQUEST, 1)),
    ("jsonrpc 1.0", {"jsonrpc": "1.0", "method": "list_transforms", "id": 1}, error(INVALID_REQUEST, 1)),
    (
        "a method that is not a string",
        {"jsonrpc": "2.0", "method": ["transform"], "id": 1},
        error(INVALID_REQUEST, 1),
    ),
    ("params that are a string", request("transform", "rot13 a"), error(INVALID_REQUEST)),
    ("a boolean id", request("transform", ["rot13", "a"], id=True), error(INVALID_REQUEST, None)),
    ("an object id", request("transform", ["rot13", "a"], id={"a": 1}), error(INVALID_REQUEST, None)),
    ("an unknown method", request("transform_all"), error(METHOD_NOT_FOUND)),
    ("a private name as method", request("_transform", ["rot13", "a"]), error(METHOD_NOT_FOUND)),
    ("too few params", request("transform", ["rot13"]), error(INVALID_PARAMS)),
    ("too many params", request("transform", ["rot13", "a", "b"]), error(INVALID_PARAMS)),
    ("a missing param", request("transform", {"poem": "a"}), error(INVALID_PARAMS)),
    (
        "an unknown param",
        request("transform", {"transform": "rot13", "poem": "a", "x": 1}),
        error(INVALID_PARAMS),
    ),
    ("a poem that is a number", request("transform", ["rot13", 42]), error(INVALID_PARAMS)),
    ("a name that is null", request("transform", [None, "a"]), error(INVALID_PARAMS)),
    ("params for list_transforms", request("list_transforms", ["all"]), error(INVALID_PARAMS)),
    ("an unknown transform", request("transform", ["nope", "a"]), appError("unknown-transform")),
    ("an attribute as transform", request("transform", ["__class__", "a"]), appError("unknown-transform")),
    ("a bad pipeline", request("transform", ["rot13||rot13", "a"]), appError("bad-request")),
    ("an empty name", request("transform", ["", "a"]), appError("bad-request")),
    (
        "a lone surrogate",
        '{"jsonrpc": "2.0", "method": "transform", "params": ["rot13", "\\ud800"], "id": 1}',
        appError("bad-request"),
    ),
    ("a poem over the limit", request("transform", ["rot13", "x" * 1_100_001]), appError("poem-too-large")),
    ("a failing transform", request("transform", ["explode", "a"]), appError("transform-failed")),
    ("a transform answering no poem", request("transform", ["number", "a"]), appError("transform-failed")),
    ("a transform that never answers", request("transform", ["stall", "a"]), appError("timeout")),
    (
        "a 1 MB poem",
        request("transform", ["cummingsify", MEGABYTE_POEM]),
        result({"poem": MEGABYTE_POEM.lower()}),
    ),
]


def _encoded(message):
    return message if isinstance(message, str | bytes) else json.dumps(message)


#: Where the web site listens, in memory.
WEB = 8080


class WebSocketTestCase(MemoryTestCase):
    """
    The gateway's web site in memory, its service with the misbehaving
    transforms and L{LIMITS}, on the network's clock.
    """

    origins = OriginPolicy()
    limits = LIMITS

    def setUp(self):
        super().setUp()
        self.service = TransformService(misbehavingCatalogue(self.reactor), self.reactor, self.limits)
        self.site = self.makeSite()
        self.network.listen(WEB, self.site)
        self.address = f"{HOST}:{WEB}"
        self.url = f"ws://{self.address}/ws"

    def makeSite(self):
        return makeSite(self.service, POEMS, self.origins, self.reactor)

    def connect(self, **options):
        """
        A L{WebSocketClient} connecting to C{/ws}; run the network for it
        to get anywhere.
        """
        client = WebSocketClient(self.url, **options)
        connectProtocol(HostnameEndpoint(self.reactor, HOST, WEB), client)
        return client

    def open(self, **options):
        """
        A L{WebSocketClient} whose handshake has succeeded.
        """
        client = self.connect(**options)
        self.assertEqual(self.successResultOf(self.network.run(client.handshake)).status_code, 101)
        return client

    def receive(self, client, count):
        """
        The first C{count} messages C{client} has received, as JSON, once
        they have come.
        """
        return [
            json.loads(message) for message in self.successResultOf(self.network.run(client.received(count)))
        ]

    def closeCode(self, client):
        """
        The code of the close frame the server ends C{client}'s connection
        with.
        """
        return self.successResultOf(self.network.run(client.closed))


class ConformanceTests(WebSocketTestCase):
    def exchangeAll(self, cases):
        """
        On one connection, send each case's message and take its answer;
        when none is expected, send a sentinel request right after, whose
        answer must be the next message.
        """
        client = self.open()
        for count, (_, message, expected) in enumerate(cases, 1):
            client.send(_encoded(message))
            if expected is None:
                client.send(json.dumps(SENTINEL))
            self.receive(client, count)
        client.close()
        return self.receive(client, len(cases))

    def test_conformanceTable(self):
        cases = [case for case in CASES if case[0] != "list_transforms"]
        answers = self.exchangeAll(cases)
        for (what, _, expected), answer in zip(cases, answers, strict=True):
            self.assertEqual(withoutMessages(answer), expected or SENTINEL_ANSWER, what)
        self.assertEqual(len(self.flushLoggedErrors(ZeroDivisionError)), 2)  # explode, twice

    def test_listTransforms(self):
        [answer] = self.exchangeAll([("", request("list_transforms", id="l"), True)])
        self.assertEqual(answer["id"], "l")
        self.assertEqual(
            answer["result"],
            [{"name": entry.name, "description": entry.description} for entry in self.service.transforms()],
        )

    def test_errorMessagesAreWords(self):
        answers = self.exchangeAll([("", request("transform", ["nope", "a"]), True), ("", "[]", True)])
        self.assertEqual(answers[0]["error"]["message"], "unknown transform 'nope'")
        self.assertEqual(answers[1]["error"]["message"], "Invalid Request: the batch is empty")

    def test_overloaded(self):
        """
        Past the service's requests in flight, a request is refused with
        the overloaded error, in a batch as well.
        """
        stalls = [request("transform", ["stall", str(i)], id=i) for i in range(LIMITS.maxInFlight)]
        extra = request("transform", ["rot13", "a"], id="extra")
        [answer] = self.exchangeAll([("", [*stalls, extra], True)])
        answer = withoutMessages(answer)
        self.assertEqual(answer[-1], appError("overloaded", "extra"))
        self.assertEqual(answer[:-1], [appError("timeout", i) for i in range(LIMITS.maxInFlight)])

    def test_answerTooBigForOneMessage(self):
        """
        A batch whose answer would be over the message limit gets -32000
        errors in place of its results (a transform can make a poem longer
        than JSON escaping does).
        """
        poem = ("x" * 1000 + "\n") * 100  # echo triples every line
        batch = [request("transform", ["echo", poem], id=i) for i in range(25)]
        [answer] = self.exchangeAll([("", batch, True)])
        self.assertEqual(withoutMessages(answer), [error(ANSWER_TOO_BIG, i) for i in range(25)])
        [answer] = self.exchangeAll([("", batch[:2], True)])
        self.assertEqual(answer, [result({"poem": echoed(poem)}, i) for i in range(2)])

    def test_binaryMessage(self):
        """
        A binary message gets an Invalid Request error that says to send
        text; the connection stays usable.
        """
        client = self.open()
        client.send(b'{"jsonrpc": "2.0", "method": "list_transforms", "id": 1}')
        [refusal] = self.receive(client, 1)
        client.send(json.dumps(request("transform", ["rot13", "a"], id=2)))
        answer = self.receive(client, 2)[1]
        self.assertIn("send each JSON-RPC message as one text message", refusal["error"]["message"])
        self.assertEqual(withoutMessages(refusal), error(INVALID_REQUEST, None))
        self.assertEqual(answer, result({"poem": "n"}, 2))

    def concurrently(self, messages):
        """
        Send C{messages} at once on one connection; the answers, in the
        order they came.
        """
        client = self.open()
        for message in messages:
            client.send(json.dumps(message))
        return self.receive(client, len(messages))

    def test_fiftyConcurrentRequests(self):
        """
        Fifty requests sent at once on one connection are all answered,
        each to its own id.
        """
        poems = {i: f"POEM NUMBER {i}\nTHE END" for i in range(50)}
        pipelines = ["cummingsify|echo", "rot13", "reverse|echo", "piglatin"]
        messages = [request("transform", [pipelines[i % 4], poem], id=i) for i, poem in poems.items()]
        answers = self.concurrently(messages)
        self.assertEqual(sorted(answer["id"] for answer in answers), list(range(50)))
        for answer in answers:
            i = answer["id"]
            expected = poems[i]
            for step in pipelines[i % 4].split("|"):
                expected = {"echo": echoed}.get(step, getattr(transforms, step))(expected)
            self.assertEqual(answer, result({"poem": expected}, i))

    def test_answeredAsEachFinishes(self):
        """
        A slow request does not hold up the ones after it: their answers
        come first, the slow one's at its deadline.
        """
        answers = self.concurrently(
            [
                request("transform", ["stall", "a"], id="slow"),
                request("transform", ["rot13", "a"], id="fast"),
            ]
        )
        self.assertEqual([answer["id"] for answer in answers], ["fast", "slow"])
        self.assertEqual(answers[1]["error"]["data"], "timeout")
        self.assertGreaterEqual(self.reactor.seconds(), LIMITS.deadline)

    def test_oversizeMessage(self):
        """
        A message over the limit closes the connection with 1009.
        """
        limit = maxMessageBytes(self.service)
        self.assertEqual(limit, 6 * LIMITS.maxPoemBytes + 64 * 1024)
        client = self.open()
        client.send("x" * (limit + 1))
        self.assertEqual(self.closeCode(client), 1009)
        self.assertIn("exceeds payload limit", client.closeReason)

    def test_oversizeRefusedFromTheHeader(self):
        """
        A frame announcing a terabyte is refused (1009) as soon as its
        header arrives: not a byte of its payload needs to be sent.
        """
        client = self.open()
        client.sendRaw(bytes([0x80 | Opcode.TEXT, 0x80 | 127]) + (1 << 40).to_bytes(8, "big") + os.urandom(4))
        self.assertEqual(self.closeCode(client), 1009)

    def test_invalidUTF8(self):
        """
        A text message that is not UTF-8 closes the connection with 1007.
        """
        client = self.open()
        client.sendRaw(Frame(Opcode.TEXT, b'"\xff\xfe"').serialize(mask=True))
        self.assertEqual(self.closeCode(client), 1007)

    def test_characterSplitAcrossFragments(self):
        """
        Text is UTF-8 as a whole message: a character split across two
        fragments is read as one.
        """
        client = self.open()
        message = json.dumps(request("transform", ["cummingsify", "CAFÉ"]), ensure_ascii=False).encode()
        cut = message.index("É".encode()) + 1
        client.sendRaw(Frame(Opcode.TEXT, message[:cut], fin=False).serialize(mask=True))
        client.sendRaw(Frame(Opcode.CONT, message[cut:]).serialize(mask=True))
        self.assertEqual(self.receive(client, 1), [result({"poem": "café"})])

    def test_invalidUTF8AcrossFragments(self):
        """
        A message whose fragments, put together, are not UTF-8 closes the
        connection with 1007 once it is whole.
        """
        client = self.open()
        client.sendRaw(Frame(Opcode.TEXT, b'"\xe2\x82', fin=False).serialize(mask=True))
        client.sendRaw(Frame(Opcode.CONT, b'("').serialize(mask=True))
        self.assertEqual(self.closeCode(client), 1007)


class ClosingTests(WebSocketTestCase):
    limits = Limits(maxPoemBytes=1000, deadline=60.0)

    def test_closingAbandonsRequests(self):
        """
        Requests still running when their connection closes are cancelled:
        they leave the service as the connection closes, long before their
        deadline.
        """
        client = self.open()
        client.send(json.dumps([request("transform", ["stall", "a"], id=i) for i in range(3)]))
        client.send(json.dumps(SENTINEL))
        self.assertEqual(self.receive(client, 1), [SENTINEL_ANSWER])
        self.assertEqual(self.service.inFlight, 3)
        client.close()
        self.assertEqual(self.closeCode(client), 1000)
        self.assertEqual(self.service.inFlight, 0)
        self.assertLess(self.reactor.seconds(), 60.0)


class DrainTests(WebSocketTestCase):
    """
    The drain of a WebSocket: answer what it asked, then close with 1001.
    """

    def setUp(self):
        self.connections = Connections()
        super().setUp()

    def makeSite(self):
        return makeSite(self.service, POEMS, self.origins, self.reactor, connections=self.connections)

    def test_silentWebSocketHasAGraceToAsk(self):
        """
        A WebSocket that has sent no message when the drain starts (it may
        have just connected, its request on its way) has
        L{FIRST_BYTES_GRACE} seconds to send one, which is answered; then
        it is closed with 1001.
        """
        client = self.open()
        self.connections.drain()
        self.reactor.advance(FIRST_BYTES_GRACE / 2)
        client.send(json.dumps(SENTINEL))
        self.assertEqual(self.receive(client, 1), [SENTINEL_ANSWER])
        self.assertEqual(self.closeCode(client), 1001)
        self.assertEqual(self.reactor.seconds(), FIRST_BYTES_GRACE / 2)

    def test_silentWebSocketClosedAfterTheGrace(self):
        client = self.open()
        self.connections.drain()
        self.assertEqual(self.closeCode(client), 1001)
        self.assertEqual(self.reactor.seconds(), FIRST_BYTES_GRACE)

    def test_webSocketThatHasAskedClosedAtOnce(self):
        """
        A WebSocket that has had its answers is closed with 1001 as the
        drain starts.
        """
        client = self.open()
        client.send(json.dumps(SENTINEL))
        self.assertEqual(self.receive(client, 1), [SENTINEL_ANSWER])
        self.connections.drain()
        self.assertEqual(self.closeCode(client), 1001)
        self.assertEqual(self.reactor.seconds(), 0)


class TimeoutTests(WebSocketTestCase):
    """
    The timeouts of a connection, with the site's defaults: closed with
    1000 (C{idle}) after 300 s without a message or a request in flight;
    pinged every 30 s, and cut if it answers no ping within 60 s (the
    HTTP idle timeout of L{makeSite}).
    """

    limits = Limits(maxPoemBytes=1000, deadline=1000.0)

    def waitUntil(self, when):
        """
        Run the network until C{when} on its clock.
        """
        now = Deferred()
        self.reactor.callLater(when - self.reactor.seconds(), now.callback, None)
        self.network.run(now)

    def assertIdleClose(self, client, when):
        self.assertEqual(self.closeCode(client), 1000)
        self.assertEqual(client.closeReason, IDLE_REASON)
        self.assertEqual(self.reactor.seconds(), when)

    def test_idleConnectionClosed(self):
        """
        A client that answers the pings but sends no message is closed
        with 1000 (C{idle}) after 300 s.
        """
        client = self.open()
        self.assertIdleClose(client, IDLE_TIMEOUT)

    def test_messagesKeepItOpen(self):
        """
        The idle time starts again with each message.
        """
        client = self.open()
        self.waitUntil(200)
        client.send(json.dumps(SENTINEL))
        self.assertEqual(self.receive(client, 1), [SENTINEL_ANSWER])
        self.assertIdleClose(client, 200 + IDLE_TIMEOUT)

    def test_requestInFlightIsNotIdle(self):
        """
        A connection waiting for its answer is not idle: its idle time
        starts with the answer.
        """
        client = self.open()
        client.send(json.dumps(request("transform", ["stall", "a"])))
        self.assertEqual(withoutMessages(self.receive(client, 1)[0]), appError("timeout"))
        self.assertIdleClose(client, 1000 + IDLE_TIMEOUT)

    def test_idleTimeStartsWithAnAnswerGivenAtOnce(self):
        """
        The idle time starts with an answer given at once, however long
        making it took, not with the request's arrival.
        """

        def slow(poem):
            self.reactor.advance(20)  # the transform works for 20 s of the clock
            return poem

        self.service.catalogue.add(Transform("slow", "takes 20 s", slow))
        client = self.open()
        client.send(json.dumps(request("transform", ["slow", "a"])))
        self.assertEqual(self.receive(client, 1), [result({"poem": "a"})])
        self.assertIdleClose(client, 20 + IDLE_TIMEOUT)

    def test_clientAnsweringNoPingCut(self):
        """
        A client that answers no ping (gone, or not reading) is cut once
        the first ping has waited 60 s, long before it would be idle.
        """
        silent = Collector(UPGRADE)
        connectProtocol(HostnameEndpoint(self.reactor, HOST, WEB), silent)
        received = self.successResultOf(self.network.run(silent.done))
        self.assertTrue(received.startswith(b"HTTP/1.1 101 "))
        self.assertIn(bytes([0x80 | Opcode.PING]), received)
        self.assertLess(self.reactor.seconds() - (PING_INTERVAL + 60), 0.5)  # Autobahn's timers tick by 0.2 s
        self.assertGreaterEqual(self.reactor.seconds(), PING_INTERVAL + 60)


class CloseFrameTests(TestCase):
    """
    A close frame that breaks the protocol is answered with a close frame
    with 1002 (protocol error) before the connection closes.  Over a real
    socket: in memory, aborting a connection loses nothing it has to send,
    which is what went wrong.
    """

    async def setUp(self):
        service = TransformService(misbehavingCatalogue(reactor), reactor, LIMITS)
        port = await serverFromString(reactor, "tcp:0:interface=127.0.0.1").listen(
            makeSite(service, POEMS, OriginPolicy(), reactor)
        )
        self.addCleanup(port.stopListening)
        self.url = f"ws://127.0.0.1:{port.getHost().port}/ws"
        self.port = port.getHost().port

    async def closeWith(self, frame: bytes):
        client = WebSocketClient(self.url)
        await connectProtocol(TCP4ClientEndpoint(reactor, "127.0.0.1", self.port), client)
        await client.handshake
        client.sendRaw(frame)
        return await client.closed

    async def test_invalidCloseCodes(self):
        for code in [999, 1005, 1006, 2999]:
            frame = Frame(Opcode.CLOSE, code.to_bytes(2, "big") + b"bye").serialize(mask=True)
            self.assertEqual(await self.closeWith(frame), 1002, code)

    async def test_closePayloadOver125Bytes(self):
        payload = (1000).to_bytes(2, "big") + b"x" * 198
        frame = (
            bytes([0x80 | Opcode.CLOSE, 0x80 | 126]) + len(payload).to_bytes(2, "big") + bytes(4) + payload
        )
        self.assertEqual(await self.closeWith(frame), 1002)


class OriginTests(WebSocketTestCase):
    origins = OriginPolicy(["https://poems.example.org"])

    def status(self, **options):
        """
        Open and close a connection; the handshake's status.
        """
        client = self.connect(**options)
        status = self.successResultOf(self.network.run(client.handshake)).status_code
        if status == 101:
            client.close()
        self.network.run(client.closed)
        return status

    def test_noOrigin(self):
        self.assertEqual(self.status(), 101)

    def test_sameOrigin(self):
        self.assertEqual(self.status(origin=f"http://{self.address}"), 101)

    def test_allowedOrigin(self):
        self.assertEqual(self.status(origin="https://poems.example.org"), 101)

    def test_otherSite(self):
        for origin in [
            "http://evil.example",
            "https://poems.example.org:8443",
            f"https://{self.address}",
            "null",
        ]:
            self.assertEqual(self.status(origin=origin), 403, origin)

    def test_refusalLogged(self):
        """
        A refused handshake is logged as every refusal is, once, with the
        client as host:port.
        """
        events = captureLogs(self)
        self.assertEqual(self.status(origin="http://evil.example"), 403)
        [line] = [event["log_format"].format(**event) for event in events if event.get("error")]
        self.assertRegex(
            line,
            r"^ws 127\.0\.0\.1:\d+: answering forbidden-origin: origin 'http://evil\.example' is not allowed",
        )

    def test_reboundName(self):
        """
        A page on a name rebound to 127.0.0.1 sends matching Origin and Host
        headers, and is still refused.
        """
        status = self.status(origin=f"http://evil.example:{WEB}", host=f"evil.example:{WEB}")
        self.assertEqual(status, 403)


class HandshakeTests(WebSocketTestCase):
    def get(self, headers):
        """
        C{GET /ws} with C{headers}: the status, headers and body of the
        answer.
        """
        lines = ["GET /ws HTTP/1.1", f"Host: {self.address}", "Connection: close"]
        lines += [f"{name}: {value}" for name, value in headers.items()]
        request = Collector("\r\n".join([*lines, "", ""]).encode("latin-1"))
        connectProtocol(HostnameEndpoint(self.reactor, HOST, WEB), request)
        response = readResponse(self.successResultOf(self.network.run(request.done)))
        self.reason = response.reason
        return response.status, dict(response.getheaders()), response.read()

    def test_aBrowserOpeningTheURL(self):
        """
        C{GET /ws} without an upgrade (a browser opening the URL) gets 426
        Upgrade Required and the web face's JSON error, with its security
        headers, instead of Autobahn's status page.
        """
        status, headers, body = self.get({})
        self.assertEqual((status, self.reason), (426, "Upgrade Required"))
        self.assertEqual(headers["Upgrade"], "websocket")
        self.assertEqual(headers["X-Content-Type-Options"], "nosniff")
        self.assertEqual(json.loads(body)["error"], "upgrade-required")
        self.assertNotIn(b"Autobahn", body)

    def test_onlyRFC6455(self):
        """
        A handshake for version 8 of the protocol (a draft before RFC 6455)
        is refused.
        """
        headers = {
            "Upgrade": "websocket",
            "Connection": "Upgrade",
            "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ==",
            "Sec-WebSocket-Version": "8",
        }
        status, headers, body = self.get(headers)
        self.assertEqual(status, 400)
        self.assertEqual(headers["Sec-WebSocket-Version"], "13")


class RefusalLogTests(WebSocketTestCase):
    def test_refusalsLogged(self):
        """
        The requests the service refuses are logged as over every protocol
        (L{protocols.common.logRefusal}): a batch of 20 refused requests
        writes the first five lines, and when the site stops, one line sums
        up the others.
        """
        events = captureLogs(self)
        client = self.open()
        client.send(
            json.dumps([request("transform", {"transform": "nope", "poem": "x"}, i) for i in range(20)])
        )
        [answers] = self.receive(client, 1)
        self.assertEqual(len(answers), 20)
        lines = [event["log_format"].format(**event) for event in events if event.get("error")]
        self.assertEqual(len(lines), 5)
        self.assertRegex(
            lines[0], r"^ws 127\.0\.0\.1:\d+: answering unknown-transform: unknown transform 'nope'$"
        )
        client.close()
        self.network.run(client.closed)
        self.site.stopFactory()  # what its port does when it stops listening
        summary = [event["log_format"].format(**event) for event in events if event.get("count")]
        self.assertEqual(len(summary), 1)
        self.assertRegex(summary[0], r"^ws: 15 more 'unknown-transform' refusals in the last [\d.e-]+ s$")
