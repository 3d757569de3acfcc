"""
The behaviour suite over each protocol, with real sockets on 127.0.0.1 and
the real reactor.
"""

from twisted.internet import reactor
from twisted.internet.endpoints import serverFromString
from twisted.trial.unittest import TestCase

from gateway.clients import transformClient
from gateway.urls import ServerURL
from protocols.netstring import NoReply, TransformFactory
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
