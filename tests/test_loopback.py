"""
The behaviour suite over each protocol, with real sockets on 127.0.0.1 and
the real reactor.
"""

import json
from urllib.parse import quote

import treq
from twisted.internet import reactor
from twisted.internet.defer import Deferred, gatherResults
from twisted.internet.endpoints import serverFromString
from twisted.internet.error import ConnectionRefusedError
from twisted.internet.threads import deferToThread
from twisted.trial.unittest import TestCase
from websockets.sync.client import connect

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
from tests.behaviour import MAX_POEM_BYTES, TransformBehaviour, serverService
from tests.helpers import POEMS, TrackingAMPFactory, captureLogs, freePort


class NetstringBehaviourTests(TransformBehaviour, TestCase):
    """
    Netstrings: every error is a connection closed without a reply, which
    the Part 13 client reports as L{NoReply}; the server logs the error's
    name.
    """

    async def setUp(self):
        self.events = captureLogs(self)
        self.service = serverService()
        port = await serverFromString(reactor, "tcp:0:interface=127.0.0.1").listen(
            TransformFactory(self.service, reactor)
        )
        self.addCleanup(port.stopListening)
        self.client = transformClient(reactor, ServerURL("netstring", "127.0.0.1", port.getHost().port))

    def transform(self, name, poem):
        return self.client.xform(name, poem)

    async def assertRefused(self, result, errorName):
        await self.assertFailure(result, NoReply)
        self.assertIn(errorName, [event.get("error") for event in self.events])


class AMPBehaviourTests(TransformBehaviour, TestCase):
    """
    AMP: every error is an error answer with the service's code, which the
    client raises as the service's error class; all the questions of a test
    share one connection.
    """

    async def setUp(self):
        self.service = serverService()
        self.factory = TrackingAMPFactory(self.service, reactor)
        port = await serverFromString(reactor, "tcp:0:interface=127.0.0.1").listen(self.factory)
        self.addCleanup(port.stopListening)
        self.client = transformClient(reactor, ServerURL("amp", "127.0.0.1", port.getHost().port))
        self.addCleanup(self.factory.whenAllClosed)
        self.addCleanup(self.client.disconnect)

    def transform(self, name, poem):
        return self.client.xform(name, poem)

    async def assertRefused(self, result, errorName):
        errorClass = ERRORS_BY_NAME[errorName]
        error = await self.assertFailure(result, errorClass)
        self.assertIs(type(error), errorClass)
        self.assertEqual(AMP_ERROR_CODES[type(error)].decode(), errorName.upper().replace("-", "_"))

    async def test_oneConnection(self):
        await gatherResults([self.transform("reverse", "A\nB") for _ in range(10)])
        self.assertEqual(len(self.factory.open), 1)

    async def test_listTransforms(self):
        self.assertEqual(
            await self.client.listTransforms(),
            [(entry.name, entry.description) for entry in self.service.transforms()],
        )


class WebTestCase(TestCase):
    """
    The web site for the behaviour suite's service on a free loopback port.
    """

    async def setUp(self):
        self.service = serverService()
        site = makeSite(self.service, POEMS, OriginPolicy(), reactor)
        port = await serverFromString(reactor, "tcp:0:interface=127.0.0.1").listen(site)
        self.addCleanup(port.stopListening)
        self.address = f"127.0.0.1:{port.getHost().port}"


class WireError(Exception):
    """
    The error a request was answered with, as it came over the wire.

    @ivar status: the HTTP status, or the JSON-RPC error code.
    @ivar name: the error's name from the body, or from C{error.data}.
    """

    def __init__(self, status, name):
        super().__init__(status, name)
        self.status, self.name = status, name


def _transformOverWebSocket(url, name, poem):
    with connect(url, proxy=None, max_size=None) as ws:
        ws.send(json.dumps({"jsonrpc": "2.0", "method": "transform", "params": [name, poem], "id": 1}))
        answer = json.loads(ws.recv(timeout=10))
    if "error" in answer:
        raise WireError(answer["error"]["code"], answer["error"].get("data"))
    return answer["result"]["poem"]


class WebSocketBehaviourTests(TransformBehaviour, WebTestCase):
    """
    WebSocket JSON-RPC, through an independent client (C{websockets}, in a
    thread): every error is a JSON-RPC error with its documented code and
    its name as data.
    """

    def transform(self, name, poem):
        return deferToThread(_transformOverWebSocket, f"ws://{self.address}/ws", name, poem)

    async def assertRefused(self, result, errorName):
        error = await self.assertFailure(result, WireError)
        self.assertEqual((error.status, error.name), (ERROR_CODES[errorName], errorName))


class HTTPBehaviourTests(TransformBehaviour, WebTestCase):
    """
    HTTP, through treq: every error is its documented status with a JSON
    body naming it.
    """

    async def _transform(self, name, poem):
        response = await treq.post(
            f"http://{self.address}/transform/{quote(name, safe='')}",
            data=poem.encode("utf-8"),
            headers={"Content-Type": "text/plain; charset=utf-8"},
            persistent=False,
        )
        if response.code != 200:
            body = await response.json()
            raise WireError(response.code, body["error"])
        self.assertEqual(response.headers.getRawHeaders("content-type"), ["text/plain; charset=utf-8"])
        return await response.text("utf-8")

    def transform(self, name, poem):
        return Deferred.fromCoroutine(self._transform(name, poem))

    async def assertRefused(self, result, errorName):
        error = await self.assertFailure(result, WireError)
        self.assertEqual((error.status, error.name), (STATUS_CODES[errorName], errorName))


class WebClientTests(WebTestCase):
    """
    The asynchronous clients of the registry, C{ws://} and C{http://}:
    the new poem, or the service's own error class.
    """

    def client(self, scheme, timeout=10.0):
        host, port = self.address.split(":")
        return transformClient(reactor, ServerURL(scheme, host, int(port)), timeout)

    async def test_transform(self):
        for scheme in ("ws", "http"):
            poem = POEMS["science"]
            self.assertEqual(
                await self.client(scheme).xform("piglatin|reverse", poem),
                transforms.reverse(transforms.piglatin(poem)),
                scheme,
            )

    async def test_pipelineNameNeedsQuoting(self):
        self.assertEqual(await self.client("http").xform("rot13 | rot13", "a/b?c#d"), "a/b?c#d")

    async def test_errorsAreTheServicesClasses(self):
        for scheme in ("ws", "http"):
            client = self.client(scheme)
            await self.assertFailure(client.xform("nope", "a"), UnknownTransform)
            await self.assertFailure(client.xform("a||b", "a"), BadRequest)
            await self.assertFailure(client.xform("rot13", "x" * (MAX_POEM_BYTES + 1)), PoemTooLarge)
            await self.assertFailure(client.xform("number", "a"), TransformFailed)
            await self.assertFailure(client.xform("stall", "a"), TransformTimeout)
            await self.assertFailure(client.xform("rot13", "\ud800"), BadRequest)

    async def test_clientTimeout(self):
        """
        A client gives up after its own timeout, before the server's
        deadline.
        """
        for scheme in ("ws", "http"):
            error = await self.assertFailure(
                self.client(scheme, timeout=0.2).xform("stall", "a"), TransformTimeout
            )
            self.assertEqual(error.message, "no reply within 0.2 seconds")

    async def test_webSocketMessageTooBig(self):
        """
        A poem too big for the server's WebSocket messages closes the
        connection with 1009, which the client reports as PoemTooLarge.
        """
        poem = "x" * maxMessageBytes(self.service)
        error = await self.assertFailure(self.client("ws").xform("rot13", poem), PoemTooLarge)
        self.assertIn("too big", error.message)

    async def test_connectionRefused(self):
        port = freePort()
        for scheme in ("ws", "http"):
            client = transformClient(reactor, ServerURL(scheme, "127.0.0.1", port))
            await self.assertFailure(client.xform("rot13", "a"), ConnectionRefusedError)
