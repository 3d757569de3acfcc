"""
The gateway as C{xform serve} builds it (L{gateway.server.makeService} from
its parsed options), in memory: options that reach the listeners, on the
network's fake clock.  The real process: L{tests.test_process}.
"""

from twisted.internet.endpoints import TCP4ClientEndpoint, connectProtocol
from twisted.logger import formatEvent

from tests.helpers import captureLogs
from tests.memory import GATEWAY, HOST, Collector, MemoryTestCase


class IdleTimeoutTests(MemoryTestCase):
    """
    C{--idle-timeout}: a client that stops half-way through a request is
    dropped once the timeout has passed, and the gateway says so.
    """

    def setUp(self):
        super().setUp()
        self.events = captureLogs(self)
        self.gateway("--idle-timeout", "0.5")

    def assertDropped(self, listener, request, said):
        """
        A client sends C{request} to C{listener} and nothing more: it gets
        no answer and its connection is closed after 0.5 s, not before; the
        log says each of C{said}.
        """
        idle = Collector(request)
        connectProtocol(TCP4ClientEndpoint(self.reactor, HOST, GATEWAY[listener]), idle)
        self.network.run(idle.done, patience=0.49)
        self.assertNoResult(idle.done)
        self.assertEqual(self.successResultOf(self.network.run(idle.done)), b"")
        self.assertEqual(self.reactor.seconds(), 0.5)
        lines = [formatEvent(event) for event in self.events]
        for text in said:
            self.assertTrue([line for line in lines if text in line], (text, lines))

    def test_netstring(self):
        self.assertDropped("netstring", b"23:cummingsify.HEL", ["no whole request within 0.5 s; dropping it"])

    def test_amp(self):
        self.assertDropped(
            "amp",
            b"\x00\x04_ask",
            ["idle for 0.5 s; closing the connection", "the connection closed in the middle of a box"],
        )
