"""
The behaviour suite over each protocol, with real sockets on 127.0.0.1 and
the real reactor.
"""

from twisted.internet import reactor
from twisted.internet.defer import Deferred, gatherResults
from twisted.internet.endpoints import serverFromString
from twisted.trial.unittest import TestCase

from gateway.clients import transformClient
from gateway.urls import ServerURL
from protocols.amp import ERROR_CODES, TransformAMP, TransformAMPFactory
from protocols.netstring import NoReply, TransformFactory
from service.errors import ERRORS_BY_NAME
from tests.behaviour import TransformBehaviour, serverService
from tests.helpers import captureLogs


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


class _TrackedAMP(TransformAMP):
    def connectionMade(self):
        super().connectionMade()
        self.factory.open[self] = Deferred()

    def connectionLost(self, reason):
        super().connectionLost(reason)
        self.factory.open.pop(self).callback(None)


class _TrackingAMPFactory(TransformAMPFactory):
    """
    Knows its open connections, so that a test can wait until the server's
    side of each has closed.
    """

    protocol = _TrackedAMP

    def __init__(self, *arguments, **keywords):
        super().__init__(*arguments, **keywords)
        self.open: dict[_TrackedAMP, Deferred] = {}

    def whenAllClosed(self) -> Deferred:
        return gatherResults(list(self.open.values()))


class AMPBehaviourTests(TransformBehaviour, TestCase):
    """
    AMP: every error is an error answer with the service's code, which the
    client raises as the service's error class; all the questions of a test
    share one connection.
    """

    async def setUp(self):
        self.service = serverService()
        self.factory = _TrackingAMPFactory(self.service, reactor)
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
        self.assertEqual(ERROR_CODES[type(error)].decode(), errorName.upper().replace("-", "_"))

    async def test_oneConnection(self):
        await gatherResults([self.transform("reverse", "A\nB") for _ in range(10)])
        self.assertEqual(len(self.factory.open), 1)

    async def test_listTransforms(self):
        self.assertEqual(
            await self.client.listTransforms(),
            [(entry.name, entry.description) for entry in self.service.transforms()],
        )
