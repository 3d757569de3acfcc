"""
The transform service served over AMP: L{TransformAMPFactory} makes one
L{TransformAMP} per connection.  What the server accepts and answers, its
limits and timeouts are the contract of docs/protocols.md (section AMP).
"""

from twisted.internet.defer import CancelledError, Deferred, maybeDeferred
from twisted.internet.interfaces import IAddress, IPushProducer, IReactorTime
from twisted.logger import Logger
from twisted.protocols import amp
from twisted.protocols.policies import TimeoutMixin
from twisted.python.failure import Failure
from zope.interface import implementer

from protocols.addresses import peerOf
from protocols.amp.commands import ListTransforms, TransformPoem
from protocols.amp.connection import BoxConnection
from protocols.amp.wire import (
    ASK,
    COMMAND,
    ERROR,
    ERROR_CODE,
    ERROR_DESCRIPTION,
    ERRORS_BY_CODE,
    OversizeBox,
    errorCode,
    maxBoxBytes,
)
from protocols.common import Refusals, TransformServerFactory, logRefusal
from protocols.connections import FIRST_BYTES_GRACE, IDrainable
from protocols.listing import transformsListing
from protocols.observer import OK, UNOBSERVED, IServerObserver, stopwatch
from service.errors import BadRequest, PoemTooLarge, TransformError, TransformFailed
from service.transformer import Caller, TransformService


def _outcome(code: bytes) -> str:
    """
    The name of the error an AMP error code stands for (C{UNKNOWN_TRANSFORM}
    is C{unknown-transform}).
    """
    return code.decode("ascii", "replace").lower().replace("_", "-")


class TransformLocator(amp.CommandLocator):
    """
    The responders of one connection, on the shared service.  Every failure
    is answered with one of the service's error codes: an unexpected one is
    logged and answered C{TRANSFORM_FAILED}, never with Twisted's C{UNKNOWN},
    which would close the connection.

    C{ListTransforms} is answered by a responder that C{CommandLocator}
    wraps, as usual.  C{Transform}, the question asked again and again, has
    a responder of its own, L{answerTransform}, which does what that
    wrapping does -- the command's own C{parseArguments} and
    C{makeResponse}, its errors turned into C{RemoteAmpError}s -- and when
    the service makes the poem at once, returns the answer box itself, with
    no L{Deferred} of its own: the dispatcher sends it at once.

    @ivar service: the shared transform service.
    @ivar refusals: the listener's refusals, which keep their log lines few.
    @ivar peer: the client, for log lines.
    @ivar caller: who asks, for the service's caps on requests in flight.
    @ivar observer: told how each C{Transform} question ended.
    @ivar clock: times the questions.
    """

    log = Logger()
    peer = "?"
    caller: Caller | None = None
    #: The answers not given yet, to abandon if the connection goes; made
    #: for the first such answer, since most are given at once.
    _running: "set[Deferred] | None" = None

    def __init__(
        self,
        service: TransformService,
        refusals: Refusals,
        observer: IServerObserver = UNOBSERVED,
        clock: IReactorTime | None = None,
    ) -> None:
        self.service = service
        self.refusals = refusals
        self.observer = observer
        self._now = stopwatch(clock)

    def answerTransform(self, box: dict[bytes, bytes]) -> "amp.AmpBox | Failure | Deferred[amp.AmpBox]":
        """
        Answer a C{Transform} question.

        @return: the answer box, or the failure to answer with, when the
            service answered at once; else a L{Deferred} of either.
        """
        answered, transform, started = ASK in box, "", self._now()
        try:
            arguments = TransformPoem.parseArguments(box, self)
            transform = arguments["transform"]
            poem = self.service.transformEagerly(transform, arguments["poem"], self.caller)
            if isinstance(poem, str):
                return self._transformed(poem, transform, started)
        except Exception:
            return self._notTransformed(Failure(), transform, started, answered)
        answer = self._track(poem).addCallback(self._transformed, transform, started)
        return answer.addErrback(self._notTransformed, transform, started, answered)

    def _transformed(self, poem: str, transform: str, started: float) -> amp.AmpBox:
        answer = TransformPoem.makeResponse({"poem": poem}, self)
        self.observer.requestServed(transform, OK, self._now() - started)
        return answer

    def _notTransformed(self, failure: Failure, transform: str, started: float, answered: bool) -> Failure:
        if not failure.check(CancelledError):  # else the connection is gone
            error = failure.value
            outcome = error.name if isinstance(error, TransformError) else TransformFailed.name
            self.observer.requestServed(transform, outcome, self._now() - started)
        return self._answerFailure(failure, "Transform", answered)

    @ListTransforms.responder
    def listTransforms(self) -> "Deferred[dict]":
        return self.service.listing().addCallback(lambda entries: {"transforms": transformsListing(entries)})

    def locateResponder(self, name: bytes):
        if name == TransformPoem.commandName:
            return self.answerTransform
        responder = super().locateResponder(name)
        if responder is None:
            return None
        command = name.decode("ascii", "replace")

        def respond(box: dict[bytes, bytes]) -> Deferred:
            answer = self._track(maybeDeferred(responder, box))
            return answer.addErrback(self._answerFailure, command, ASK in box)

        return respond

    def _track(self, answer: Deferred) -> Deferred:
        """
        Keep C{answer} among the L{_running} ones until it fires.
        """
        if not answer.called:
            if self._running is None:
                self._running = set()
            self._running.add(answer)
            answer.addBoth(self._finished, answer)
        return answer

    def _finished(self, result: object, answer: Deferred) -> object:
        self._running.discard(answer)
        return result

    def _answerFailure(self, failure: Failure, command: str, answered: bool) -> Failure:
        """
        Turn C{failure} into an error answer, and log it; a refusal of a
        question that is not answered (sent without C{_ask}) is logged by
        L{TransformAMP.unhandledError} instead.
        """
        if failure.check(amp.RemoteAmpError):  # a service error, mapped by Command.errors
            cause = failure.value.local
            if answered and cause is not None and cause.check(TransformError):
                self.refused(cause.value)
            return failure
        if failure.check(TransformError):  # from the arguments or a responder of our own
            if answered:
                self.refused(failure.value)
            return Failure(
                amp.RemoteAmpError(errorCode(type(failure.value)), failure.value.message, local=failure)
            )
        if failure.check(CancelledError):  # the connection is gone; nobody reads this answer
            return Failure(amp.RemoteAmpError(b"TRANSFORM_FAILED", "cancelled", local=failure))
        self.log.failure(
            "amp {peer}: {command} failed unexpectedly", failure, peer=self.peer, command=command
        )
        return Failure(
            amp.RemoteAmpError(b"TRANSFORM_FAILED", f"the server failed to answer {command}", local=failure)
        )

    def refused(self, error: TransformError, doing: str = "answering") -> None:
        """
        Log a refusal of this connection's, as few times as the listener's
        refusals allow.
        """
        logRefusal(
            self.log,
            error,
            f"{{protocol}} {{peer}}: {doing} {{error}}: {{reason}}",
            refusals=self.refusals,
            protocol="amp",
            peer=self.peer,
        )

    def cancelAll(self) -> None:
        """
        Abandon every request still running: its client has gone.
        """
        for answer in list(self._running or ()):
            answer.cancel()


@implementer(IPushProducer, IDrainable)
class TransformAMP(BoxConnection, TimeoutMixin):
    """
    Serve the transform commands on one connection, many questions at once.

    Its responders are a L{TransformLocator}; this class manages the
    connection: the box limit, reading no faster than answers go out (it is
    the transport's streaming producer: while the client does not read its
    answers, it reads no questions), the idle timeout, and the drain.

    @ivar factory: the L{TransformAMPFactory} that made it.
    @ivar locator: the responders.
    """

    _closing = False
    _draining = False
    _received = False
    _readingData = False
    _grace = None

    def __init__(self, factory: "TransformAMPFactory") -> None:
        self.factory = factory
        self.locator = TransformLocator(factory.service, factory.refusals, factory.observer, factory.clock)
        super().__init__(self.locator, maxBoxBytes(factory.service.limits.maxPoemBytes))
        self.clock = factory.clock

    def connectionMade(self) -> None:
        super().connectionMade()
        self.locator.peer = self.peer
        self.locator.caller = Caller(peerOf(self.transport.getPeer()), self)
        self.callLater = self.factory.clock.callLater
        self.transport.registerProducer(self, True)
        self.setTimeout(self.factory.idleTimeout)
        self.factory.opened(self, self.locator.caller.peer)

    def dataReceived(self, data: bytes) -> None:
        self._received = True
        self.factory.observer.received(len(data))
        self._readingData = True
        try:
            super().dataReceived(data)
        finally:
            self._readingData = False
        self.resetTimeout()  # after the answers given while reading: see allAnswered

    def boxSent(self, size: int) -> None:
        self.factory.observer.sent(size)

    def allAnswered(self) -> None:
        # The idle time starts with the last answer; dataReceived resets
        # the timer after the answers given while it reads, the last one
        # included, so that the questions answered at once, one after the
        # other, do not reset it each time.
        if not self._readingData:
            self.resetTimeout()
        if self._draining:
            self._closeIfAnswered()

    def drain(self) -> None:
        """
        The gateway is stopping: questions received are answered, and so
        are questions that arrive while any is unanswered; the connection
        closes as soon as none is unanswered and no box is on its way (a
        connection that has sent nothing yet has L{FIRST_BYTES_GRACE}
        seconds to ask).
        """
        self._draining = True
        if self._received:
            self._closeIfAnswered()
        else:
            self._grace = self.factory.clock.callLater(FIRST_BYTES_GRACE, self._closeIfAnswered)

    def _closeIfAnswered(self) -> None:
        if not self.unanswered and not self.decoder.pending() and not self._closing:
            self._close()

    def unhandledError(self, failure: Failure) -> None:
        """
        The error of a command sent without C{_ask} has nothing to answer:
        it is logged as a refusal, as few times as the listener's refusals
        allow (an unknown command, Twisted's C{UNHANDLED}, as a
        L{BadRequest}).  Anything else is what L{BoxConnection} makes of it.
        """
        if not failure.check(amp.RemoteAmpError):
            super().unhandledError(failure)
            return
        error = ERRORS_BY_CODE.get(failure.value.errorCode, BadRequest)
        self.locator.refused(
            error(failure.value.description), "a command sent without _ask failed; nothing to answer:"
        )

    def oversizeBoxReceived(self, box: OversizeBox) -> None:
        if COMMAND not in box:
            self.drop(f"a box over the limit ({box.size} bytes) that is not a question")
            return
        if not self.isNewQuestion(box):
            return
        error = b"POEM_TOO_LARGE" if box[COMMAND] == TransformPoem.commandName else b"BAD_REQUEST"
        if box[COMMAND] == TransformPoem.commandName:
            self.factory.observer.requestServed("", _outcome(error), 0.0)
        maxPoemBytes = self.factory.service.limits.maxPoemBytes
        poemBytes = box.valueBytes.get(b"poem", 0)
        if error == b"POEM_TOO_LARGE" and poemBytes > maxPoemBytes:
            description = PoemTooLarge.forSize(poemBytes, maxPoemBytes).message
        else:
            description = (
                f"the request counts {box.size:,} bytes with its keys and pieces; this gateway accepts "
                f"at most {self.maxBoxBytes:,} (see the AMP limits in docs/protocols.md)"
            )
        if ASK not in box:
            self.unhandledError(Failure(amp.RemoteAmpError(error, description)))
            return
        self.locator.refused(ERRORS_BY_CODE[error](description))
        self.sendBox({ERROR: box[ASK], ERROR_CODE: error, ERROR_DESCRIPTION: description.encode("utf-8")})

    def pauseProducing(self) -> None:
        """
        The transport's write buffer is full: read no more questions until
        the client reads its answers.
        """
        self.pauseReading("answers")

    def resumeProducing(self) -> None:
        self.resumeReading("answers")

    def stopProducing(self) -> None:
        """
        The connection is ending; there is nothing more to read.
        """
        self.stopReading()

    def timeoutConnection(self) -> None:
        if self._closing:
            self.log.info("amp {peer}: did not close in time; aborting the connection", peer=self.peer)
            self.transport.abortConnection()
            return
        if self.unanswered:  # not idle: waiting for the service
            self.setTimeout(self.factory.idleTimeout)
            return
        self.log.info(
            "amp {peer}: idle for {seconds:g} s; closing the connection",
            peer=self.peer,
            seconds=self.factory.idleTimeout,
        )
        self.factory.observer.idleTimedOut()
        self._close()

    def _close(self) -> None:
        """
        Read nothing more and close once the answers are written; abort if
        the client does not read them within the idle timeout.
        """
        self._closing = True
        self.pauseReading("closing")
        self.transport.loseConnection()
        self.setTimeout(self.factory.idleTimeout)  # for a client that does not read

    def connectionLost(self, reason: Failure) -> None:
        self.setTimeout(None)
        if self._grace is not None and self._grace.active():
            self._grace.cancel()
        super().connectionLost(reason)
        self.locator.cancelAll()
        self.factory.closed(self)


class TransformAMPFactory(TransformServerFactory):
    """
    Serve the AMP transform commands for a L{TransformService}; the idle
    timeout is the time a connection with nothing in flight may stay silent.
    """

    protocolName = "amp"
    protocol = TransformAMP

    def makeProtocol(self, addr: IAddress) -> TransformAMP:
        return self.protocol(self)
