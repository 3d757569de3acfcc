"""
L{AMPTransformClient} on its L{ClientService}, against the real server
protocol, over in-memory connections made by a fake reactor.
"""

from twisted.internet.defer import CancelledError
from twisted.internet.endpoints import TCP4ClientEndpoint, TCP4ServerEndpoint
from twisted.internet.error import ConnectionDone, ConnectionRefusedError
from twisted.internet.testing import MemoryReactorClock
from twisted.protocols import amp
from twisted.test import iosim
from twisted.trial.unittest import SynchronousTestCase

from protocols.amp.client import RETRY_DELAY, AMPTransformClient
from protocols.amp.commands import ListTransforms
from protocols.amp.server import TransformAMPFactory
from service import (
    BadRequest,
    Limits,
    PoemTooLarge,
    TransformFailed,
    TransformService,
    TransformTimeout,
    UnknownTransform,
)
from tests.helpers import captureLogs
from tests.test_amp import LATER, asked, slowCatalogue


class ClientTests(SynchronousTestCase):
    """
    L{AMPTransformClient} against the real server protocol, over in-memory
    connections made by a fake reactor.
    """

    def setUp(self):
        self.reactor = MemoryReactorClock()
        self.events = captureLogs(self)
        self.service = TransformService(slowCatalogue(self.reactor), self.reactor, Limits(deadline=60))
        TCP4ServerEndpoint(self.reactor, 10002).listen(TransformAMPFactory(self.service, self.reactor))
        self.completer = iosim.ConnectionCompleter(self.reactor)
        self.client = self.makeClient()

    def makeClient(self, **keywords):
        endpoint = TCP4ClientEndpoint(self.reactor, "127.0.0.1", 10002)
        return AMPTransformClient(endpoint, self.reactor, timeout=5, **keywords)

    def test_xform(self):
        result = self.client.xform("later|reverse", "Hello\nWorld")
        pump = self.completer.succeedOnce()
        self.assertNoResult(result)
        self.reactor.advance(LATER)
        pump.flush()
        self.assertEqual(self.successResultOf(result), "WORLD\nHELLO")

    def test_listTransforms(self):
        result = self.client.listTransforms()
        self.completer.succeedOnce()
        self.assertEqual(
            self.successResultOf(result),
            [(entry.name, entry.description) for entry in self.service.transforms()],
        )

    def test_bigPoem(self):
        poem = "Ä" * 300_000
        result = self.client.xform("cummingsify", poem)
        self.completer.succeedOnce()
        self.assertEqual(self.successResultOf(result), "ä" * 300_000)

    def test_oneConnectionForConcurrentQuestions(self):
        results = [self.client.xform("cummingsify", f"POEM {n}") for n in range(10)]
        self.assertEqual(len(self.reactor.tcpClients), 1)
        pump = self.completer.succeedOnce()
        more = self.client.xform("reverse", "A\nB")
        pump.flush()
        self.assertEqual(
            [self.successResultOf(result) for result in results], [f"poem {n}" for n in range(10)]
        )
        self.assertEqual(self.successResultOf(more), "B\nA")
        self.assertEqual(self.reactor.tcpClients, [])

    def assertRemoteError(self, result, errorClass):
        self.completer.succeedOnce()
        self.assertIs(type(self.failureResultOf(result).value), errorClass)

    def test_unknownTransformIsTheServiceError(self):
        self.assertRemoteError(self.client.xform("nope", "poem"), UnknownTransform)

    def test_badRequestIsTheServiceError(self):
        self.assertRemoteError(self.client.xform("", "poem"), BadRequest)

    def test_poemTooLargeIsTheServiceError(self):
        self.assertRemoteError(self.client.xform("reverse", "A" * (1024 * 1024 + 1)), PoemTooLarge)

    def test_transformFailedIsTheServiceError(self):
        self.assertRemoteError(self.client.xform("explode", "poem"), TransformFailed)
        self.assertEqual(len(self.flushLoggedErrors(ZeroDivisionError)), 1)

    def test_reconnectsAfterTheConnectionIsLost(self):
        first = self.client.xform("cummingsify", "ONE")
        pump = self.completer.succeedOnce()
        self.assertEqual(self.successResultOf(first), "one")
        pump.serverIO.loseConnection()
        pump.flush()
        second = self.client.xform("cummingsify", "TWO")
        self.assertEqual(len(self.reactor.tcpClients), 1)
        self.completer.succeedOnce()
        self.assertEqual(self.successResultOf(second), "two")

    def test_asksAgainWhenAReusedConnectionCloses(self):
        """
        A question sent on an open connection that closes before the answer
        (the server's idle timeout, say) is asked again on a new one.
        """
        first = self.client.xform("cummingsify", "ONE")
        pump = self.completer.succeedOnce()
        self.successResultOf(first)
        second = self.client.xform("cummingsify", "TWO")
        pump.serverIO.loseConnection()  # the server closes; its answer is lost
        pump.flush()
        self.assertNoResult(second)
        self.completer.succeedOnce()
        self.assertEqual(self.successResultOf(second), "two")

    def test_doesNotAskAgainOnAFreshConnection(self):
        result = self.client.xform("cummingsify", "ONE")
        pump = self.completer.succeedOnce(greet=False)
        pump.serverIO.loseConnection()
        pump.flush()
        self.failureResultOf(result, ConnectionDone)
        self.assertEqual(self.reactor.tcpClients, [])

    def test_connectionRefused(self):
        """
        A question fails with the connection error of the first attempt
        (at the next turn of the reactor, out of L{ClientService}'s state
        machine), and nothing connects again in the background.
        """
        result = self.client.xform("cummingsify", "HELLO")
        self.completer.failOnce()
        self.assertNoResult(result)
        self.reactor.advance(0)
        self.failureResultOf(result, ConnectionRefusedError)
        self.reactor.advance(1000)
        self.assertEqual(self.reactor.tcpClients, [])

    def test_timeout(self):
        """
        A late answer fails with L{TransformTimeout}; the connection stays
        usable for other questions, and the late answer is ignored.
        """
        self.client.timeout = 5
        result = self.client.xform("stall", "HELLO")
        pump = self.completer.succeedOnce()
        self.reactor.advance(5)
        error = self.failureResultOf(result, TransformTimeout).value
        self.assertEqual(error.message, "no reply within 5 seconds")
        after = self.client.xform("cummingsify", "AFTER")
        pump.flush()
        self.assertEqual(self.successResultOf(after), "after")
        self.reactor.advance(55)  # the server's deadline answers the stalled question
        pump.flush()
        self.assertFalse(pump.clientIO.disconnecting)
        self.assertFalse([event for event in self.events if event.get("log_failure")])

    def test_timeoutWhileConnecting(self):
        result = self.client.xform("cummingsify", "HELLO")
        self.reactor.advance(5)
        self.failureResultOf(result, TransformTimeout)

    def test_oneQuestionGivingUpDoesNotStopTheConnectionForOthers(self):
        early = self.client.xform("cummingsify", "EARLY")
        self.reactor.advance(4)
        late = self.client.xform("cummingsify", "LATE")
        self.reactor.advance(1)
        self.failureResultOf(early, TransformTimeout)
        self.completer.succeedOnce()
        self.assertEqual(self.successResultOf(late), "late")

    def test_cancel(self):
        result = self.client.xform("stall", "HELLO")
        self.completer.succeedOnce()
        result.cancel()
        self.failureResultOf(result, CancelledError)

    def test_disconnect(self):
        result = self.client.xform("stall", "HELLO")
        pump = self.completer.succeedOnce()
        closed = self.client.disconnect()
        self.assertNoResult(closed)
        pump.flush()
        self.successResultOf(closed)
        self.failureResultOf(result, ConnectionDone)
        self.assertEqual(self.reactor.tcpClients, [])
        self.assertEqual(self.service.inFlight, 0)
        self.successResultOf(self.client.disconnect())

    def test_answerOverTheClientsLimit(self):
        client = self.makeClient(maxReplyBytes=1000)
        result = client.xform("cummingsify", "A" * 100_000)
        pump = self.completer.succeedOnce()
        error = self.failureResultOf(result, PoemTooLarge).value
        self.assertIn("over this client's limit", error.message)
        small = client.xform("cummingsify", "SMALL")
        pump.flush()
        self.assertEqual(self.successResultOf(small), "small")
        self.assertFalse(pump.clientIO.disconnecting)

    def test_unencodableArguments(self):
        result = self.client.xform("cummingsify", "\udc80")
        self.completer.succeedOnce()
        self.failureResultOf(result, UnicodeEncodeError)

    def test_serverCommandsAreUnhandled(self):
        result = self.client.xform("cummingsify", "HELLO")
        pump = self.completer.succeedOnce()
        self.successResultOf(result)
        question = asked(pump.server.callRemote(ListTransforms))
        pump.flush()
        self.failureResultOf(question, amp.UnhandledCommand)

    def test_failingConnectionFailsEveryWaiter(self):
        results = [self.client.xform("cummingsify", "HELLO") for _ in range(3)]
        self.completer.failOnce()
        self.reactor.advance(0)
        for result in results:
            self.failureResultOf(result, ConnectionRefusedError)

    def test_noReconnectionWhileIdle(self):
        """
        A connection lost while no question waits is made again only for
        the next question.
        """
        self.assertEqual(self.successResultOf(self.askOnce("ONE")), "one")
        self.pump.serverIO.loseConnection()
        self.pump.flush()
        self.reactor.advance(100)
        self.assertEqual(self.reactor.tcpClients, [])
        self.assertEqual(self.successResultOf(self.askOnce("TWO")), "two")

    def askOnce(self, poem):
        result = self.client.xform("cummingsify", poem)
        self.pump = self.completer.succeedOnce()
        return result

    def test_downServerFailsEachQuestionPromptly(self):
        """
        While the server is down, each question fails with the error of its
        own connection attempt, made when it is asked; nothing is tried in
        between.
        """
        for _ in range(3):
            result = self.client.xform("cummingsify", "HELLO")
            self.assertEqual(len(self.reactor.tcpClients), 1)
            self.completer.failOnce()
            self.reactor.advance(0)
            self.failureResultOf(result, ConnectionRefusedError)
            self.reactor.advance(60)
            self.assertEqual(self.reactor.tcpClients, [])

    def test_questionAskedWhileAFailureIsReported(self):
        """
        A question asked after an attempt failed but before its failure is
        reported waits for the next attempt, L{RETRY_DELAY} later.
        """
        first = self.client.xform("cummingsify", "ONE")
        self.completer.failOnce()
        second = self.client.xform("cummingsify", "TWO")
        self.reactor.advance(0)
        self.failureResultOf(first, ConnectionRefusedError)
        self.assertNoResult(second)
        self.assertEqual(self.reactor.tcpClients, [])
        self.reactor.advance(RETRY_DELAY)
        self.completer.succeedOnce()
        self.assertEqual(self.successResultOf(second), "two")

    def test_askingAgainFromAFailedQuestion(self):
        """
        L{ClientService} may not be called from inside its state machine,
        where a failed attempt is reported: the client hands the failure on
        at the next turn, so a question's errback may ask again.
        """
        retried = []
        self.client.xform("cummingsify", "ONE").addErrback(
            lambda failure: retried.append(self.client.xform("cummingsify", "TWO"))
        )
        self.completer.failOnce()
        self.reactor.advance(0)
        (second,) = retried
        self.completer.succeedOnce()
        self.assertEqual(self.successResultOf(second), "two")

    def test_disconnectingFromAFailedQuestion(self):
        closed = []
        self.client.xform("cummingsify", "ONE").addErrback(
            lambda failure: closed.append(self.client.disconnect())
        )
        self.completer.failOnce()
        self.reactor.advance(0)
        self.successResultOf(closed[0])
        self.reactor.advance(60)
        self.assertEqual(self.reactor.tcpClients, [])

    def test_disconnectWhileConnecting(self):
        """
        Disconnecting stops the attempt in progress; the questions waiting
        for it fail with L{CancelledError}.
        """
        result = self.client.xform("cummingsify", "HELLO")
        closed = self.client.disconnect()
        self.assertTrue(self.reactor.connectors[0].stoppedConnecting)
        self.reactor.advance(0)
        self.successResultOf(closed)
        self.failureResultOf(result, CancelledError)

    def test_askingAfterDisconnecting(self):
        self.assertEqual(self.successResultOf(self.askOnce("ONE")), "one")
        closed = self.client.disconnect()
        self.pump.flush()
        self.successResultOf(closed)
        self.assertEqual(self.successResultOf(self.askOnce("TWO")), "two")
