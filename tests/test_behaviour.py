"""
The behaviour suite (L{tests.behaviour}) over each protocol, in memory: the
real server factories on a L{MemoryNetwork}, asked by the real client of
each scheme (L{gateway.clients.transformClient}) and, for WebSocket and
HTTP, by independent clients that see the wire's own error forms (the
C{websockets} library's protocol, and treq).  The same over real sockets,
once per wire: L{tests.test_loopback}.
"""

import json
from urllib.parse import quote

from twisted.internet.defer import Deferred, gatherResults
from twisted.internet.endpoints import HostnameEndpoint, connectProtocol
from twisted.internet.error import ConnectionRefusedError

from gateway.clients import transformClient
from gateway.urls import ServerURL
from gateway.web import makeSite
from protocols.amp.wire import ERROR_CODES as AMP_ERROR_CODES
from protocols.http import STATUS_CODES
from protocols.jsonrpc import ERROR_CODES
from protocols.netstring import NoReply, TransformFactory
from protocols.origins import OriginPolicy
from protocols.websocket import maxMessageBytes
from service import BadRequest, PoemTooLarge, TransformFailed, TransformTimeout, UnknownTransform, transforms
from service.errors import ERRORS_BY_NAME
from tests.behaviour import DEADLINE, MAX_POEM_BYTES, TransformBehaviour, serverService
from tests.helpers import POEMS, TrackingAMPFactory, captureLogs
from tests.memory import HOST, MemoryTestCase, treqClient
from tests.websocketclient import WebSocketClient

#: The ports the servers listen on, in memory.
NETSTRING, AMP, WEB = 10001, 10002, 8080


class BehaviourTestCase(MemoryTestCase):
    """
    The behaviour suite's service, on the clock of a L{MemoryNetwork}.
    """

    def setUp(self):
        super().setUp()
        self.service = serverService(self.reactor)

    def client(self, scheme, port, timeout=10.0):
        """
        The real client of C{scheme}, for a server on C{port}.
        """
        return transformClient(self.reactor, ServerURL(scheme, HOST, port), timeout)


class ServiceErrorsBehaviour(TransformBehaviour):
    """
    The behaviour through a client that raises the service's own error
    classes.
    """

    def transform(self, name, poem):
        return self.transformer.xform(name, poem)

    def assertRefused(self, result, errorName):
        errorClass = ERRORS_BY_NAME[errorName]
        error = self.failureResultOf(self.network.run(result), errorClass).value
        self.assertIs(type(error), errorClass)
        return error


class NetstringBehaviourTests(TransformBehaviour, BehaviourTestCase):
    """
    Netstrings: every error is a connection closed without a reply, which
    the Part 13 client reports as L{NoReply}; the server logs the error's
    name.
    """

    def setUp(self):
        super().setUp()
        self.events = captureLogs(self)
        self.network.listen(NETSTRING, TransformFactory(self.service, self.reactor))
        self.transformer = self.client("netstring", NETSTRING)

    def transform(self, name, poem):
        return self.transformer.xform(name, poem)

    def assertRefused(self, result, errorName):
        self.failureResultOf(self.network.run(result), NoReply)
        self.assertIn(errorName, [event.get("error") for event in self.events])


class AMPBehaviourTests(ServiceErrorsBehaviour, BehaviourTestCase):
    """
    AMP: every error is an error answer with the service's code, which the
    client raises as the service's error class; all the questions of a test
    share one connection, closed when the client disconnects.
    """

    def setUp(self):
        super().setUp()
        self.factory = TrackingAMPFactory(self.service, self.reactor)
        self.network.listen(AMP, self.factory)
        self.transformer = self.client("amp", AMP)
        self.addCleanup(self.disconnect)

    def disconnect(self):
        self.successResultOf(self.network.run(self.transformer.disconnect()))
        self.successResultOf(self.network.run(self.factory.whenAllClosed()))
        self.assertEqual(self.factory.open, {})

    def assertRefused(self, result, errorName):
        error = super().assertRefused(result, errorName)
        self.assertEqual(AMP_ERROR_CODES[type(error)].decode(), errorName.upper().replace("-", "_"))

    def test_oneConnection(self):
        self.resultOf(gatherResults([self.transform("reverse", "A\nB") for _ in range(10)]))
        self.assertEqual(len(self.factory.open), 1)

    def test_listTransforms(self):
        self.assertEqual(
            self.resultOf(self.transformer.listTransforms()),
            [(entry.name, entry.description) for entry in self.service.transforms()],
        )


class WebTestCase(BehaviourTestCase):
    """
    The gateway's web site for the behaviour suite's service, in memory.
    """

    def setUp(self):
        super().setUp()
        self.network.listen(WEB, makeSite(self.service, POEMS, OriginPolicy(), self.reactor))


class WebSocketBehaviourTests(ServiceErrorsBehaviour, WebTestCase):
    """
    WebSocket JSON-RPC through L{WebSocketTransformProxy}: every error is
    the service's error class, named by the JSON-RPC error's data.
    """

    def setUp(self):
        super().setUp()
        self.transformer = self.client("ws", WEB)


class HTTPBehaviourTests(ServiceErrorsBehaviour, WebTestCase):
    """
    HTTP through L{HTTPTransformProxy} on a real L{Agent}: every error is
    the service's error class, named by the JSON body.
    """

    def setUp(self):
        super().setUp()
        self.transformer = self.client("http", WEB)


class WireError(Exception):
    """
    The error a request was answered with, as it came over the wire.

    @ivar status: the HTTP status, or the JSON-RPC error code.
    @ivar name: the error's name from the body, or from C{error.data}.
    """

    def __init__(self, status, name):
        super().__init__(status, name)
        self.status, self.name = status, name


class JSONRPCBehaviourTests(TransformBehaviour, WebTestCase):
    """
    WebSocket JSON-RPC through an independent client (C{websockets}'
    protocol): every error is a JSON-RPC error with its documented code and
    its name as data.
    """

    def transform(self, name, poem):
        return Deferred.fromCoroutine(self._transform(name, poem))

    async def _transform(self, name, poem):
        client = WebSocketClient(f"ws://{HOST}:{WEB}/ws")
        await connectProtocol(HostnameEndpoint(self.reactor, HOST, WEB), client)
        self.assertEqual((await client.handshake).status_code, 101)
        client.send(json.dumps({"jsonrpc": "2.0", "method": "transform", "params": [name, poem], "id": 1}))
        [answer] = await client.received(1)
        client.close()
        answer = json.loads(answer)
        if "error" in answer:
            raise WireError(answer["error"]["code"], answer["error"].get("data"))
        return answer["result"]["poem"]

    def assertRefused(self, result, errorName):
        error = self.failureResultOf(self.network.run(result), WireError).value
        self.assertEqual((error.status, error.name), (ERROR_CODES[errorName], errorName))


class RawHTTPBehaviourTests(TransformBehaviour, WebTestCase):
    """
    HTTP through treq, reading the answers itself: every error is its
    documented status with a JSON body naming it.
    """

    def setUp(self):
        super().setUp()
        self.http = treqClient(self.reactor)

    def transform(self, name, poem):
        return Deferred.fromCoroutine(self._transform(name, poem))

    async def _transform(self, name, poem):
        response = await self.http.post(
            f"http://{HOST}:{WEB}/transform/{quote(name, safe='')}",
            data=poem.encode("utf-8"),
            headers={"Content-Type": "text/plain; charset=utf-8"},
        )
        if response.code != 200:
            body = await response.json()
            raise WireError(response.code, body["error"])
        self.assertEqual(response.headers.getRawHeaders("content-type"), ["text/plain; charset=utf-8"])
        return await response.text("utf-8")

    def assertRefused(self, result, errorName):
        error = self.failureResultOf(self.network.run(result), WireError).value
        self.assertEqual((error.status, error.name), (STATUS_CODES[errorName], errorName))


class WebClientTests(WebTestCase):
    """
    The asynchronous clients of the scheme table, C{ws://} and C{http://},
    beyond the behaviour suite: the new poem, or the service's own error
    class.
    """

    def outcome(self, result, *errorClasses):
        return self.failureResultOf(self.network.run(result), *errorClasses).value

    def test_transform(self):
        poem = POEMS["science"]
        for scheme in ("ws", "http"):
            self.assertEqual(
                self.successResultOf(
                    self.network.run(self.client(scheme, WEB).xform("piglatin|reverse", poem))
                ),
                transforms.reverse(transforms.piglatin(poem)),
                scheme,
            )

    def test_pipelineNameNeedsQuoting(self):
        result = self.client("http", WEB).xform("rot13 | rot13", "a/b?c#d")
        self.assertEqual(self.successResultOf(self.network.run(result)), "a/b?c#d")

    def test_errorsAreTheServicesClasses(self):
        for scheme in ("ws", "http"):
            client = self.client(scheme, WEB)
            self.outcome(client.xform("nope", "a"), UnknownTransform)
            self.outcome(client.xform("a||b", "a"), BadRequest)
            self.outcome(client.xform("rot13", "x" * (MAX_POEM_BYTES + 1)), PoemTooLarge)
            self.outcome(client.xform("number", "a"), TransformFailed)
            self.outcome(client.xform("stall", "a"), TransformTimeout)
            self.outcome(client.xform("rot13", "\ud800"), BadRequest)

    def test_clientTimeout(self):
        """
        A client gives up after its own timeout, before the server's
        deadline.
        """
        for scheme in ("ws", "http"):
            start = self.reactor.seconds()
            error = self.outcome(self.client(scheme, WEB, timeout=0.2).xform("stall", "a"), TransformTimeout)
            self.assertEqual(error.message, "no reply within 0.2 seconds")
            self.assertLess(self.reactor.seconds() - start, DEADLINE)

    def test_webSocketMessageTooBig(self):
        """
        A poem too big for the server's WebSocket messages closes the
        connection with 1009, which the client reports as PoemTooLarge.
        """
        poem = "x" * maxMessageBytes(self.service)
        error = self.outcome(self.client("ws", WEB).xform("rot13", poem), PoemTooLarge)
        self.assertIn("too big", error.message)

    def test_httpAnswerOverTheClientsLimit(self):
        """
        An HTTP answer longer than the client's C{maxReplyBytes} fails the
        call with L{TransformFailed}; one of that length is taken.
        """
        client = self.client("http", WEB)
        client.maxReplyBytes = 100
        self.assertEqual(self.successResultOf(self.network.run(client.xform("rot13", "x" * 100))), "k" * 100)
        error = self.outcome(client.xform("rot13", "x" * 101), TransformFailed)
        self.assertEqual(error.message, "the answer is over this client's limit of 100 bytes")

    def test_connectionRefused(self):
        for scheme in ("ws", "http"):
            self.outcome(self.client(scheme, WEB + 1).xform("rot13", "a"), ConnectionRefusedError)
