"""
The asynchronous AMP client of the transform service, L{AMPTransformClient}:
what the poetry client and the upstream transforms use to talk to an AMP
server (docs/protocols.md, section AMP, says what it sends and gets).
"""

from functools import partial

from twisted.application.internet import ClientService
from twisted.internet.defer import Deferred, succeed
from twisted.internet.error import ConnectionClosed
from twisted.internet.interfaces import IDelayedCall, IReactorTime, IStreamClientEndpoint
from twisted.internet.protocol import Factory
from twisted.protocols import amp
from twisted.python.failure import Failure
from zope.interface import implementer

from protocols.amp.commands import ListTransforms, TransformPoem
from protocols.amp.connection import BoxConnection
from protocols.amp.wire import ANSWER, ERROR, ERROR_CODE, ERROR_DESCRIPTION, OversizeBox, maxBoxBytes
from protocols.common import MAX_REPLY_BYTES
from protocols.interfaces import ITransformLister
from service.deadline import withDeadline

#: Seconds before L{ClientService} tries again after a connection attempt
#: failed, for the questions asked while that failure was being reported.
RETRY_DELAY = 0.1


class ClientAMP(BoxConnection):
    """
    The client's side of one connection: it answers no commands, turns an
    answer over its limit into a C{POEM_TOO_LARGE} error for the question,
    and tells its L{AMPTransformClient} when the connection is made and
    lost.

    @ivar closedByClient: C{True} once the client has chosen to close it.
    """

    closedByClient = False
    _abort: IDelayedCall | None = None

    def __init__(self, client: "AMPTransformClient") -> None:
        super().__init__(amp.CommandLocator(), maxBoxBytes(client.maxReplyBytes))
        self._client = client

    def connectionMade(self) -> None:
        super().connectionMade()
        self._client._connectionMade(self)

    def oversizeBoxReceived(self, box: OversizeBox) -> None:
        if ANSWER not in box and ERROR not in box:
            self.log.info(
                "amp {peer}: ignoring a command over the limit ({size} bytes)", peer=self.peer, size=box.size
            )
            return
        description = f"the answer is {box.size} bytes, over this client's limit of {self.maxBoxBytes} bytes"
        tag = box[ANSWER] if ANSWER in box else box[ERROR]
        self.boxReceived(
            {ERROR: tag, ERROR_CODE: b"POEM_TOO_LARGE", ERROR_DESCRIPTION: description.encode("utf-8")}
        )

    def abortUnlessClosedWithin(self, seconds: float, clock: IReactorTime) -> None:
        """
        Drop the connection if it is still open in C{seconds}.  Closing a
        TLS connection waits for the server to take part (to finish the
        handshake, to answer the close), which an unresponsive one never
        does.
        """
        self._abort = clock.callLater(seconds, self.transport.abortConnection)

    def connectionLost(self, reason: Failure) -> None:
        if self._abort is not None and self._abort.active():
            self._abort.cancel()
        self._client._connectionLost(self)  # first: failing the questions may ask them again
        super().connectionLost(reason)


@implementer(ITransformLister)
class AMPTransformClient:
    """
    Ask an AMP transform server for transforms, over one connection made
    when first needed and shared by every question asked while it is open.

    The connection is a L{ClientService}'s, started when a question needs a
    connection and stopped when the connection is lost or cannot be made
    with no question waiting for it: so a lost connection is made again for
    the next question, and a server that is down fails each question with
    the connection error instead of being tried again in the background.
    A question whose reused connection closes before the answer (the
    server's idle timeout, say) is asked once more on a new one, since
    transforms have no side effects.

    L{ClientService} fires the L{Deferred}s of L{ClientService.whenConnected}
    inside its state machine, which refuses to be called again from there;
    so what they bring is handed on at the next turn of the reactor, where
    the callbacks of a question may call this client again.

    @ivar endpoint: where the server listens.
    @ivar timeout: seconds each question may take, connecting included.
    @ivar maxReplyBytes: the largest answer accepted.
    """

    def __init__(
        self,
        endpoint: IStreamClientEndpoint,
        clock: IReactorTime,
        timeout: float = 10.0,
        maxReplyBytes: int = MAX_REPLY_BYTES,
    ) -> None:
        self.endpoint = endpoint
        self.timeout = timeout
        self.maxReplyBytes = maxReplyBytes
        self._clock = clock
        self._protocol: ClientAMP | None = None
        self._asking = 0
        factory = Factory.forProtocol(partial(ClientAMP, self))
        factory.noisy = False
        self._service = ClientService(
            endpoint, factory, retryPolicy=lambda failures: RETRY_DELAY, clock=clock
        )

    def xform(self, transform: str, poem: str) -> "Deferred[str]":
        """
        Transform C{poem} with C{transform} on the server.

        @return: a L{Deferred} firing with the new poem, or failing with the
            service's error (L{service.errors.UnknownTransform}, ...) as the
            server reported it, L{service.errors.TransformTimeout} when the
            answer is late, or the connection error.
        """
        answer = self._ask(TransformPoem, transform=transform, poem=poem)
        return answer.addCallback(lambda box: box["poem"])

    def listTransforms(self) -> "Deferred[list[tuple[str, str]]]":
        """
        The server's transforms.

        @return: a L{Deferred} firing with a list of C{(name, description)},
            or failing as L{xform} does.
        """
        answer = self._ask(ListTransforms)
        return answer.addCallback(
            lambda box: [(entry["name"], entry["description"]) for entry in box["transforms"]]
        )

    def disconnect(self) -> "Deferred[None]":
        """
        Close the connection, if there is one (dropping it if it is not
        closed within L{timeout}), and stop connecting; questions in flight
        fail.  A later question connects again.

        @return: a L{Deferred} that fires once the connection is closed.
        """
        if self._protocol is not None:
            self._protocol.closedByClient = True
            self._protocol.abortUnlessClosedWithin(self.timeout, self._clock)
        if not self._service.running:
            return succeed(None)
        return self._handedOn(self._service.stopService())

    def _ask(self, command: type[amp.Command], **arguments) -> "Deferred[dict]":
        answer = Deferred.fromCoroutine(self._call(command, arguments))
        return withDeadline(answer, self.timeout, self._clock, "no reply")

    async def _call(self, command: type[amp.Command], arguments: dict) -> dict:
        self._asking += 1
        try:
            reused = self._protocol is not None
            protocol = await self._connection()
            try:
                return await protocol.callRemote(command, **arguments)
            except ConnectionClosed:
                if not reused or protocol.closedByClient:
                    raise
            return await (await self._connection()).callRemote(command, **arguments)
        finally:
            self._asking -= 1
            if not self._asking and self._protocol is None and self._service.running:
                self._service.stopService()  # nobody needs a connection: stop trying

    def _connection(self) -> "Deferred[ClientAMP]":
        """
        The open connection, or the next one made.
        """
        if self._protocol is not None:
            return succeed(self._protocol)
        if not self._service.running:
            self._service.startService()
        return self._handedOn(self._service.whenConnected(failAfterFailures=1))

    def _handedOn(self, result: Deferred) -> Deferred:
        """
        C{result}, or if it has not fired yet, a L{Deferred} that fires
        with its result at the next turn of the reactor (see above).
        """
        if result.called:
            return result
        handedOn: Deferred = Deferred()

        def handOn(outcome: object) -> None:
            fire = handedOn.errback if isinstance(outcome, Failure) else handedOn.callback
            self._clock.callLater(0, fire, outcome)

        result.addBoth(handOn)
        return handedOn

    def _connectionMade(self, protocol: ClientAMP) -> None:
        self._protocol = protocol

    def _connectionLost(self, protocol: ClientAMP) -> None:
        if self._protocol is protocol:
            self._protocol = None
        if self._service.running:
            self._service.stopService()  # instead of reconnecting on its own
