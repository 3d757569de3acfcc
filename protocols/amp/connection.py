"""
One AMP connection, server's or client's, on Twisted's public AMP API:
boxes decoded and encoded by L{protocols.amp.wire}, dispatched by an
C{amp.BoxDispatcher} to the responders of an C{amp.CommandLocator}.
"""

from twisted.internet.defer import Deferred
from twisted.internet.error import ConnectionLost
from twisted.internet.interfaces import IReactorTime
from twisted.internet.protocol import Protocol
from twisted.logger import Logger
from twisted.protocols import amp
from twisted.python.failure import Failure
from zope.interface import implementer

from protocols.addresses import describeAddress
from protocols.amp.wire import (
    ANSWER,
    ASK,
    COMMAND,
    ERROR,
    ERROR_CODE,
    ERROR_DESCRIPTION,
    BoxDecoder,
    BrokenBox,
    OversizeBox,
    encodeBox,
)


@implementer(amp.IBoxSender)
class BoxConnection(Protocol):
    """
    The boxes of one connection: it decodes them with a
    L{BoxDecoder<protocols.amp.wire.BoxDecoder>} that reads a box over the
    limit to its end without keeping it, hands the others to
    L{dispatcher}, and sends the boxes L{dispatcher} gives it (questions
    asked with L{callRemote}, answers of its responders).

    It does what Twisted's parser leaves to chance: bytes that are not AMP,
    a box that is neither a question nor the answer to one asked here, and
    a tag reused while its question is unanswered drop the connection with
    a log line; and it reads no faster than its questions are answered:
    while unanswered questions and the box coming in hold a box's worth, it
    stops reading (L{pauseReading}) until answers go out.

    @ivar dispatcher: the C{amp.BoxDispatcher} of the connection.
    @ivar decoder: the decoder of the boxes received.
    @ivar peer: the other side, for log lines.
    @ivar unanswered: the tags of the questions received and not answered
        yet, with what each box counted.
    @ivar heldBytes: what the boxes of L{unanswered} counted, together.
    """

    log = Logger()
    peer = "?"

    #: The most boxes handled in one turn of the reactor, once L{clock} is
    #: set: past them, reading pauses until the next turn, so that a
    #: connection that floods questions answered at once leaves time to
    #: the other connections and to work done in slices.
    boxesPerTurn = 32
    #: Schedules the next turn's boxes; C{None}: every box received is
    #: handled at once.
    clock: IReactorTime | None = None

    def __init__(self, locator: amp.IResponderLocator, maxBoxBytes: int) -> None:
        """
        @param locator: finds the responder of each question received.
        @param maxBoxBytes: the limit of one box received.
        """
        self.dispatcher = amp.BoxDispatcher(locator)
        self.decoder = BoxDecoder(maxBoxBytes, skipOversize=True)
        self.unanswered: dict[bytes, int] = {}
        self.heldBytes = 0
        self._asked: set[bytes] = set()
        self._pauses: set[str] = set()
        self._reading = False
        self._finished = False

    @property
    def maxBoxBytes(self) -> int:
        """
        The limit of one box received.
        """
        return self.decoder.maxBoxBytes

    def callRemote(self, command: type[amp.Command], **arguments: object) -> Deferred:
        """
        Ask a question: see C{amp.BoxDispatcher.callRemote}.
        """
        return self.dispatcher.callRemote(command, **arguments)

    def connectionMade(self) -> None:
        self.peer = describeAddress(self.transport.getPeer())
        self.dispatcher.startReceivingBoxes(self)

    def dataReceived(self, data: bytes) -> None:
        if self._finished:
            return
        self.decoder.feed(data)
        self.readBoxes()

    def readBoxes(self) -> None:
        """
        Handle the boxes received, as long as nothing pauses reading.
        """
        if self._reading:  # called again while handling a box: the loop below goes on
            return
        self._reading = True
        handled = 0
        try:
            while not self._pauses and not self._finished:
                if handled == self.boxesPerTurn and self.clock is not None:
                    self.pauseReading("turn")
                    self.clock.callLater(0, self.resumeReading, "turn")
                    break
                handled += 1
                try:
                    box = self.decoder.pop(self.maxBoxBytes - self.heldBytes if self.heldBytes else None)
                except BrokenBox as error:
                    self.drop(str(error))
                    return
                if box is None:
                    break
                if type(box) is OversizeBox:
                    self.oversizeBoxReceived(box)
                else:
                    self.boxReceived(box)
        finally:
            self._reading = False
        self._holdFewerBytes()

    def boxReceived(self, box: dict[bytes, bytes]) -> None:
        """
        A box within the limit arrived: dispatch it, unless it breaks the
        rules of AMP.
        """
        if ANSWER in box or ERROR in box:
            tag = box[ANSWER] if ANSWER in box else box[ERROR]
            if tag not in self._asked:
                self.drop(
                    f"a box that is neither a question nor the answer to one: no question "
                    f"tagged {tag[:32]!r} is waiting for its answer"
                )
                return
            if ANSWER not in box and (ERROR_CODE not in box or ERROR_DESCRIPTION not in box):
                self.drop("an error without its _error_code and _error_description")
                return
            self._asked.discard(tag)
        elif COMMAND in box:
            if not self.isNewQuestion(box):
                return
            tag = box.get(ASK)
            if tag is not None:
                size = self.decoder.lastBoxBytes
                self.unanswered[tag] = size
                self.heldBytes += size
                # More is held: reading may have to pause (it cannot resume).
                if self.heldBytes + self.decoder.heldBytes() >= self.maxBoxBytes:
                    self.pauseReading("questions")
        else:
            self.drop("a box that is neither a question nor the answer to one")
            return
        self.dispatcher.ampBoxReceived(box)

    def oversizeBoxReceived(self, box: OversizeBox) -> None:
        """
        A box over the limit arrived; C{box} holds only its AMP keys, and
        C{box.size} what it counted.
        """
        raise NotImplementedError

    def isNewQuestion(self, box: dict[bytes, bytes]) -> bool:
        """
        Whether the question C{box} may be handled; one that reuses the tag
        of a question still unanswered drops the connection.
        """
        if box.get(ASK) in self.unanswered:
            self.drop(f"the tag {box[ASK][:32]!r} was reused while its question is unanswered")
            return False
        return True

    def sendBox(self, box: dict[bytes, bytes]) -> None:
        """
        Send a box: AMP's own keys first (C{_answer}, C{_error_code}, ...),
        sorted as Twisted sorts them, then the others in the order of
        C{box}, so that the pieces of a split value go in order.

        @raise ConnectionLost: if the connection is gone.
        """
        if self._finished:
            raise ConnectionLost()
        items = box.items()
        ampKeys = sorted([item for item in items if item[0][:1] == b"_"])
        data = encodeBox(ampKeys + [item for item in items if item[0][:1] != b"_"])
        self.transport.write(data)
        self.boxSent(len(data))
        if ASK in box:
            self._asked.add(box[ASK])
            return
        size = self.unanswered.pop(box.get(ANSWER, box.get(ERROR)), None)
        if size is not None:
            self.heldBytes -= size
            if "questions" in self._pauses:  # less is held: reading may resume
                self._holdFewerBytes()
            if not self.unanswered:
                self.allAnswered()

    def allAnswered(self) -> None:
        """
        The last question that was unanswered is answered: none is left in
        L{unanswered}.
        """

    def boxSent(self, size: int) -> None:
        """
        A box of C{size} bytes was written.
        """

    def unhandledError(self, failure: Failure) -> None:
        """
        A failure nobody handled: the error of a command sent without
        C{_ask}, which has nothing to answer and is logged in one line, or
        a bug, logged with its traceback, that drops the connection since a
        question may now never be answered.
        """
        if failure.check(amp.RemoteAmpError):
            self.log.info(
                "amp {peer}: a command sent without _ask failed; nothing to answer: {code}: {description}",
                peer=self.peer,
                code=failure.value.errorCode.decode("ascii", "replace"),
                description=failure.value.description,
            )
            return
        self.log.failure("amp {peer}: unexpected failure; dropping the connection", failure, peer=self.peer)
        self.finish()
        self.transport.abortConnection()

    def bufferedBytes(self) -> int:
        """
        What this connection holds of the boxes received: the box coming in
        as far as it is kept, the bytes not parsed yet, and what the
        unanswered questions counted.
        """
        return self.decoder.heldBytes() + self.heldBytes

    def _holdFewerBytes(self) -> None:
        """
        Stop reading while unanswered questions and the box coming in hold
        a box's worth; a lone box has its own limit.
        """
        held = self.heldBytes
        if held and held + self.decoder.heldBytes() >= self.maxBoxBytes:
            self.pauseReading("questions")
        else:
            self.resumeReading("questions")

    def pauseReading(self, reason: str) -> None:
        """
        Read nothing more until L{resumeReading} is called with every
        reason given here.
        """
        if not self._pauses and not self._finished:
            self.transport.pauseProducing()
        self._pauses.add(reason)

    def resumeReading(self, reason: str) -> None:
        """
        Lift one reason not to read; once none is left, read again, the
        boxes already received first.
        """
        if reason not in self._pauses:
            return
        self._pauses.discard(reason)
        if not self._pauses and not self._finished:
            self.transport.resumeProducing()
            self.readBoxes()

    def stopReading(self) -> None:
        """
        Read nothing more, without telling the transport: it is closing.
        """
        self._pauses.add("stopped")

    def finish(self) -> None:
        """
        Read, pause and resume nothing more: the connection is ending.
        """
        self._finished = True

    def drop(self, reason: str) -> None:
        """
        The peer does not speak AMP: log why and abort the connection.
        """
        self.log.info("amp {peer}: dropping the connection: {reason}", peer=self.peer, reason=reason)
        self.finish()
        self.transport.abortConnection()

    def connectionLost(self, reason: Failure) -> None:
        pending = self.decoder.pending()
        if pending and not self._finished:
            self.log.info(
                "amp {peer}: the connection closed in the middle of a box ({bytes} bytes of it received)",
                peer=self.peer,
                bytes=pending,
            )
        self.finish()
        self.dispatcher.stopReceivingBoxes(reason)
