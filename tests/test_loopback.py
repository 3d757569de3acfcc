"""
The real thing, once per wire: each protocol's server on a real socket on
127.0.0.1 in this process's reactor, asked by the real client of each
scheme of L{gateway.schemes.SCHEMES}, a transform and a refusal.  The whole
behaviour suite runs in memory: L{tests.test_behaviour}.
"""

from twisted.internet import reactor
from twisted.internet.endpoints import serverFromString
from twisted.trial.unittest import TestCase

from gateway.clients import transformClient
from gateway.schemes import SCHEMES
from gateway.urls import ServerURL
from gateway.web import makeSite
from protocols.netstring import NoReply, TransformFactory
from protocols.origins import OriginPolicy
from service import UnknownTransform, transforms
from tests.behaviour import serverService
from tests.helpers import POEMS, TrackingAMPFactory, eachScheme, echoed


@eachScheme("assertTransform", "assertRefusal")
class LoopbackTests(TestCase):
    """
    Every listener of the gateway on a free loopback port, for the
    behaviour suite's service.
    """

    async def setUp(self):
        self.service = serverService(reactor)
        self.amp = TrackingAMPFactory(self.service, reactor)
        factories = {
            "netstring": TransformFactory(self.service, reactor),
            "amp": self.amp,
            "web": makeSite(self.service, POEMS, OriginPolicy(), reactor),
        }
        self.ports = {}
        for name, factory in factories.items():
            port = await serverFromString(reactor, "tcp:0:interface=127.0.0.1").listen(factory)
            self.addCleanup(port.stopListening)
            self.ports[name] = port.getHost().port

    def client(self, scheme):
        """
        The real client of C{scheme} for its listener, disconnected (and
        its connections closed on the server's side) at the end of the test.
        """
        client = transformClient(
            reactor, ServerURL(scheme, "127.0.0.1", self.ports[SCHEMES[scheme].listener])
        )
        self.addCleanup(self.amp.whenAllClosed)
        self.addCleanup(client.disconnect)
        return client

    async def assertTransform(self, scheme):
        """
        A poem and a pipeline with an asynchronous step, over real sockets.
        """
        poem = POEMS["science"]
        self.assertEqual(
            await self.client(scheme).xform("cummingsify|echo", poem), echoed(transforms.cummingsify(poem))
        )

    async def assertRefusal(self, scheme):
        """
        An unknown transform, refused the protocol's way: over netstrings a
        connection closed without a reply, elsewhere the service's error.
        """
        expected = NoReply if scheme == "netstring" else UnknownTransform
        await self.assertFailure(self.client(scheme).xform("nope", "poem"), expected)
