"""
L{gateway.listening.ListeningService}: Twisted's
L{StreamServerEndpointService} with a name, a log line and
C{whenListening}; and L{ListeningTree}, the root that stops when a listener
cannot listen; on in-memory endpoints.
"""

from twisted.application.service import MultiService
from twisted.internet.defer import CancelledError, Deferred, fail
from twisted.internet.endpoints import TCP4ServerEndpoint
from twisted.internet.error import CannotListenError
from twisted.internet.interfaces import IStreamServerEndpoint
from twisted.internet.protocol import Factory
from twisted.internet.testing import MemoryReactor
from twisted.trial.unittest import SynchronousTestCase
from zope.interface import implementer

from gateway.listening import CannotListen, ListeningService, ListeningTree, listeners
from tests.helpers import captureLogs


@implementer(IStreamServerEndpoint)
class PendingEndpoint:
    """
    An endpoint whose listening never finishes by itself: it records
    whether it was cancelled.
    """

    cancelled = False

    def listen(self, factory):
        def cancel(listening):
            self.cancelled = True

        self.listening = Deferred(cancel)
        return self.listening


@implementer(IStreamServerEndpoint)
class RefusingEndpoint:
    def listen(self, factory):
        return fail(CannotListenError("127.0.0.1", 1, OSError("Address already in use")))


class ListeningServiceTests(SynchronousTestCase):
    def setUp(self):
        self.events = captureLogs(self)

    def messages(self):
        return [event["log_format"].format(**event) for event in self.events if "name" in event]

    def test_listensAndSaysWhere(self):
        """
        It logs where it listens, and once stopped, that it no longer does.
        """
        reactor = MemoryReactor()
        service = ListeningService("web", TCP4ServerEndpoint(reactor, 8080, interface="127.0.0.1"), Factory())
        service.startService()
        port = self.successResultOf(service.whenListening())
        self.assertIs(service.port, port)
        host = port.getHost()
        self.assertEqual(self.messages(), [f"web listening on {host.host}:{host.port}"])
        self.successResultOf(service.whenListening())  # later callers get it too
        self.successResultOf(service.stopService())
        self.assertIsNone(service.port)
        self.assertEqual(self.messages()[1:], [f"web no longer listening on {host.host}:{host.port}"])

    def test_cannotListen(self):
        """
        A listener that cannot listen keeps the reason, and C{whenListening}
        fails with it, for waiters before and after; it logs nothing (its
        owner says why, once), and stopping it afterwards is clean.
        """
        service = ListeningService("netstring", RefusingEndpoint(), Factory())
        before = service.whenListening()
        service.startService()
        self.failureResultOf(before, CannotListenError)
        self.failureResultOf(service.whenListening(), CannotListenError)
        self.assertTrue(service.failure.check(CannotListenError))
        self.assertEqual(self.events, [])
        self.successResultOf(service.stopService())

    def test_stopCancelsAPendingListen(self):
        """
        Stopping the service while its endpoint is still setting up to
        listen cancels that, as L{StreamServerEndpointService} does: the
        port can no longer open after the service has stopped.
        """
        endpoint = PendingEndpoint()
        service = ListeningService("amp", endpoint, Factory())
        service.startService()
        waiting = service.whenListening()
        self.assertNoResult(waiting)
        self.successResultOf(service.stopService())
        self.assertTrue(endpoint.cancelled)
        self.failureResultOf(waiting, CancelledError)
        self.assertFalse(service.running)
        self.assertEqual(self.messages(), [])

    def test_listeners(self):
        root = MultiService()
        other = MultiService()
        other.setServiceParent(root)
        service = ListeningService("amp", PendingEndpoint(), Factory())
        service.setServiceParent(root)
        self.assertEqual(listeners(root), [service])


class ListeningTreeTests(SynchronousTestCase):
    """
    L{ListeningTree}: all of its listeners listen, or it stops.
    """

    def setUp(self):
        self.events = captureLogs(self)
        self.reactor = MemoryReactor()
        self.tree = ListeningTree(self.reactor)
        self.first = ListeningService("netstring", TCP4ServerEndpoint(self.reactor, 10001), Factory())
        self.first.setServiceParent(self.tree)

    def assertRaisesCannotListen(self, start):
        """
        C{start} raises L{CannotListen}, a C{SystemExit} whose code is one
        line (what Python prints, before exiting with status 1) and an
        C{Exception} (what twistd reports from a daemon's start); the tree
        and the listeners that did listen have stopped.
        """
        with self.assertRaises(CannotListen) as raised:
            start()
        self.assertIsInstance(raised.exception, SystemExit)
        self.assertIsInstance(raised.exception, Exception)
        self.assertEqual(
            raised.exception.code,
            "amp cannot listen: Couldn't listen on 127.0.0.1:1: Address already in use.",
        )
        self.assertFalse(self.tree.running)
        self.assertIsNone(self.first.port)
        self.assertFalse(self.reactor.hasStopped)

    def test_startService(self):
        """
        Started as C{twist} and C{xform serve} start it, the tree raises
        L{CannotListen} for a listener that cannot listen.
        """
        ListeningService("amp", RefusingEndpoint(), Factory()).setServiceParent(self.tree)
        self.assertRaisesCannotListen(self.tree.startService)

    def test_privilegedStartService(self):
        """
        Started as C{twistd} starts it, first with privileges, the tree
        raises L{CannotListen} at that first step.
        """
        ListeningService("amp", RefusingEndpoint(), Factory()).setServiceParent(self.tree)
        self.assertRaisesCannotListen(self.tree.privilegedStartService)

    def test_whenListening(self):
        """
        Once every listener listens, L{ListeningTree.whenListening} fires,
        and nothing stops.
        """
        ListeningService("amp", TCP4ServerEndpoint(self.reactor, 10002), Factory()).setServiceParent(
            self.tree
        )
        self.tree.startService()
        self.successResultOf(self.tree.whenListening())
        self.assertEqual([port for port, *_ in self.reactor.tcpServers], [10001, 10002])
        self.assertFalse(self.reactor.hasStopped)

    def test_cannotListenLater(self):
        """
        A listener that finds out only later that it cannot listen makes
        the tree log the same one line, as an error, and stop the reactor;
        L{ListeningTree.whenListening} fails with L{CannotListen}.
        """
        endpoint = PendingEndpoint()
        ListeningService("amp", endpoint, Factory()).setServiceParent(self.tree)
        self.tree.startService()
        waiting = self.tree.whenListening()
        self.assertNoResult(waiting)
        endpoint.listening.errback(CannotListenError("127.0.0.1", 1, OSError("Address already in use")))
        self.assertTrue(self.reactor.hasStopped)
        failure = self.failureResultOf(waiting, CannotListen)
        self.assertEqual(
            failure.value.code, "amp cannot listen: Couldn't listen on 127.0.0.1:1: Address already in use."
        )
        [error] = [event for event in self.events if event["log_level"].name == "error"]
        self.assertEqual(error["log_format"].format(**error), failure.value.code)

    def test_stoppedBeforeListening(self):
        """
        A tree stopped while a listener is still setting up to listen stops
        nothing else, and logs nothing.
        """
        ListeningService("amp", PendingEndpoint(), Factory()).setServiceParent(self.tree)
        self.tree.startService()
        self.successResultOf(self.tree.stopService())
        self.failureResultOf(self.tree.whenListening(), CancelledError)
        self.assertFalse(self.reactor.hasStopped)
        self.assertEqual([event for event in self.events if event["log_level"].name == "error"], [])
