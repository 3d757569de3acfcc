"""
L{gateway.listening.ListeningService}: Twisted's
L{StreamServerEndpointService} with a name, a log line and
C{whenListening}, on in-memory endpoints.
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

from gateway.listening import ListeningService, listeners
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

        return Deferred(cancel)


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

    def test_cannotListen(self):
        """
        A listener that cannot listen says so in one line (no traceback),
        and C{whenListening} fails with the reason, for waiters before and
        after; stopping it afterwards is clean.
        """
        service = ListeningService("netstring", RefusingEndpoint(), Factory())
        before = service.whenListening()
        service.startService()
        self.failureResultOf(before, CannotListenError)
        self.failureResultOf(service.whenListening(), CannotListenError)
        [message] = self.messages()
        self.assertTrue(
            message.startswith("netstring cannot listen: Couldn't listen on 127.0.0.1:1"), message
        )
        self.assertFalse([event for event in self.events if event.get("log_failure")])
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
