"""
The gateway as C{xform serve} builds it (L{gateway.server.makeService} from
its parsed options), in memory: options that reach the listeners, on the
network's fake clock.  The real process: L{tests.test_process}.
"""

from twisted.internet.endpoints import TCP4ClientEndpoint, connectProtocol
from twisted.logger import formatEvent

from gateway.options import OptionError
from gateway.server import listenerEndpoint, withBacklog
from tests.helpers import captureLogs
from tests.memory import GATEWAY, HOST, Collector, MemoryTestCase, url
from tests.websocketclient import UPGRADE, WebSocketClient


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


class WebSocketTimeoutTests(MemoryTestCase):
    """
    C{--ws-idle-timeout}, C{--ws-ping-interval} and C{--idle-timeout} reach
    the WebSockets: one that sends no message is closed with 1000
    (C{idle}), one that answers no ping is cut once the first has waited
    for the idle timeout; the gateway says so.
    """

    def setUp(self):
        super().setUp()
        self.events = captureLogs(self)
        self.gateway("--ws-idle-timeout", "20", "--ws-ping-interval", "2", "--idle-timeout", "3")

    def said(self, text):
        lines = [formatEvent(event) for event in self.events]
        self.assertTrue([line for line in lines if text in line], (text, lines))

    def test_idle(self):
        client = WebSocketClient(url("ws"))
        connectProtocol(TCP4ClientEndpoint(self.reactor, HOST, GATEWAY["web"]), client)
        self.assertEqual(self.successResultOf(self.network.run(client.closed)), 1000)
        self.assertEqual((client.closeReason, self.reactor.seconds()), ("idle", 20))
        self.said("idle for 20 s; closing the connection")

    def test_noAnswerToAPing(self):
        silent = Collector(UPGRADE)
        connectProtocol(TCP4ClientEndpoint(self.reactor, HOST, GATEWAY["web"]), silent)
        self.successResultOf(self.network.run(silent.done))
        self.assertGreaterEqual(self.reactor.seconds(), 2 + 3)
        self.assertLess(self.reactor.seconds(), 2 + 3 + 0.5)  # Autobahn's timers tick by 0.2 s
        self.said("no answer to a ping within 3 s; closing the connection")


class BacklogTests(MemoryTestCase):
    """
    Every listener the gateway builds has a listen backlog of
    L{BACKLOG}, unless its endpoint string gives one; strings without one
    keep working.
    """

    def backlogs(self):
        return {port: backlog for port, _, backlog, _ in self.reactor.tcpServers}

    def test_default(self):
        self.gateway("--metrics", "tcp:9100:interface=127.0.0.1")
        self.assertEqual(
            self.backlogs(),
            {GATEWAY["netstring"]: 1024, GATEWAY["amp"]: 1024, GATEWAY["web"]: 1024, 9100: 1024},
        )

    def test_given(self):
        self.gateway("--web", "tcp:8181:interface=127.0.0.1:backlog=7")
        self.assertEqual(self.backlogs()[8181], 7)

    def test_onlyWhereItFits(self):
        for written, built in [
            ("tcp:80", "tcp:80:backlog=1024"),
            ("TCP6:80:interface=\\:\\:1", "TCP6:80:interface=\\:\\:1:backlog=1024"),
            ("unix:/run/xform.sock", "unix:/run/xform.sock:backlog=1024"),
            ("tcp:80:backlog=3", "tcp:80:backlog=3"),
            ("systemd:domain=INET:index=0", "systemd:domain=INET:index=0"),
        ]:
            self.assertEqual(withBacklog(written), built, written)

    def test_errorsQuoteTheStringAsWritten(self):
        with self.assertRaises(OptionError) as raised:
            listenerEndpoint(self.reactor, "tcp:nope", "web")
        self.assertIn("'tcp:nope'", str(raised.exception))
        self.assertNotIn("backlog", str(raised.exception))
