"""
The netstring transform protocol of the Twisted introduction's Part 12, with
the Part 13 client.

The wire, byte by byte::

    client -> server   <length>:<transform>.<poem>,
    server -> client   <length>:<new poem>,      then the server closes

C{<length>} is the payload's length in bytes, in decimal ASCII without
leading zeros; the payload is UTF-8 and is split at its first C{.}, so a
transform name never holds a dot and a poem may.  The server answers the
first netstring of a connection and every whole netstring that arrived with
it, one after the other, in order, as the tutorial's own server does; then
it closes, and whatever comes later is ignored (such as the newline C{echo}
adds).  On any error -- malformed netstring, over the size limit, no C{.},
unknown transform, invalid UTF-8, a failing transform, the deadline -- the
server closes the connection without answering that request or any after
it: the protocol has no way to say why, so the server logs the reason (for a
poem over the limit, its size, once the name before the C{.} has come).  A client may half-close after sending (C{nc -N}) and still get its
answer.  A client that sends nothing, or not a whole netstring, is dropped
after an idle timeout.  When the gateway stops, a connection that has sent
nothing yet is closed; one whose request is on its way or in flight gets its
answer first, within the drain's time.

The framing and the request's payload (L{protocols.netstringwire}) are
shared by the server (L{TransformFactory}), the asynchronous client
(L{TransformProxy}), the blocking client of L{gateway.syncclient} and the
poetry protocol.
"""

from collections.abc import Callable, Iterator

from twisted.internet.defer import CancelledError, Deferred, fail
from twisted.internet.endpoints import connectProtocol
from twisted.internet.interfaces import (
    IDelayedCall,
    IHalfCloseableProtocol,
    IReactorTime,
    IStreamClientEndpoint,
)
from twisted.internet.protocol import Protocol
from twisted.logger import Logger
from twisted.protocols.basic import FileSender
from twisted.protocols.policies import TimeoutMixin
from twisted.python.failure import Failure
from zope.interface import implementer

from protocols.addresses import describeAddress, peerOf
from protocols.common import (
    MAX_REPLY_BYTES,
    ConnectionPerCall,
    TransformServerFactory,
    logRefusal,
    lostToAnError,
)
from protocols.connections import FIRST_BYTES_GRACE, IDrainable
from protocols.interfaces import ITransformClient
from protocols.netstringwire import (
    SEPARATOR,
    NetstringDecoder,
    NetstringError,
    NetstringTooLong,
    decodeRequest,
    encodeNetstring,
    encodeRequest,
    netstringHeader,
)
from protocols.observer import OK
from service.catalogue import MAX_NAME_LENGTH
from service.errors import BadRequest, PoemTooLarge, TransformError, TransformFailed
from service.transformer import Caller, TransformService


class NoReply(TransformFailed):
    """
    The server closed the connection without answering.  The netstring
    protocol answers every error that way, so the cause is not known here:
    an unknown transform, a poem over the server's limit, a failure...
    """


def maxRequestBytes(service: TransformService) -> int:
    """
    The largest request payload worth reading for C{service}: the longest
    transform name, the C{.}, and the largest poem.  The service itself
    decides about the exact poem size.
    """
    return MAX_NAME_BYTES + len(SEPARATOR) + service.limits.maxPoemBytes


#: The most bytes a transform name can take in UTF-8.
MAX_NAME_BYTES = 4 * MAX_NAME_LENGTH

#: An ASCII answer of more characters than this is encoded and sent a piece
#: at a time (L{TransformProtocol._stream}): only with a poem limit raised
#: over the default mebibyte.
STREAMED_ANSWER_CHARS = 1024 * 1024


class _TextReader:
    """
    A text read a piece at a time, as C{FileSender} reads a file.
    """

    def __init__(self, text: str) -> None:
        self._text = text
        self._offset = 0

    def read(self, size: int) -> str:
        piece = self._text[self._offset : self._offset + size]
        self._offset += size
        return piece


class _AnswerSender(FileSender):
    """
    Twisted's C{FileSender}, in pieces of about a tenth of a millisecond's
    encoding each.
    """

    CHUNK_SIZE = 256 * 1024


@implementer(IHalfCloseableProtocol, IDrainable)
class TransformProtocol(Protocol, TimeoutMixin):
    """
    Serve the requests of one connection: read netstrings until at least
    one is whole, answer each in order, close.

    A connection makes one idle timer, when it is made, and keeps it: it is
    reset rather than replaced, and stopped only while the service works on
    a request it does not answer at once.

    @ivar factory: the L{TransformFactory} that made this protocol.
    @ivar caller: who asks, for the service's caps on requests in flight;
        C{None} once the connection is lost.
    """

    log = Logger()
    factory: "TransformFactory"
    caller: Caller | None = None

    _decoder: NetstringDecoder | None = None
    _tooLong: NetstringTooLong | None = None
    #: The whole requests not answered yet, in order.
    _requests: "Iterator[bytes | memoryview] | None" = None
    _request: "Deferred[str] | None" = None
    _received = 0
    _replied = False
    _transform = ""
    _started: float | None = None
    _grace = None

    def callLater(self, seconds: float, function: Callable[[], object]) -> IDelayedCall:
        """
        Schedule C{TimeoutMixin}'s idle timer on the factory's clock.
        """
        return self.factory.clock.callLater(seconds, function)

    @property
    def _peer(self) -> str:
        """
        The client, for log lines: described only when a line is written.
        """
        return describeAddress(self.transport.getPeer())

    def connectionMade(self) -> None:
        self.caller = Caller(peerOf(self.transport.getPeer()), self)
        self.factory.opened(self, self.caller.peer)
        self._decoder = NetstringDecoder(maxRequestBytes(self.factory.service))
        self.setTimeout(self.factory.idleTimeout)

    def dataReceived(self, data: bytes) -> None:
        self.factory.observer.received(len(data))
        if self._tooLong is not None:
            self._readNameOfTooLong(data)
            return
        if self._decoder is None:
            return  # the requests have arrived; anything after them is ignored
        self._received += len(data)
        self._decoder.feed(data)
        # A request gathered over reads is a view of the bytes received, not
        # copied before it is decoded (the decoder is not fed again once the
        # requests are taken).
        requests: list[bytes | memoryview] = []
        try:
            requests.extend(iter(self._decoder.popView, None))
        except NetstringTooLong as tooLong:
            if not requests:
                self._started = self.factory.clock.seconds()
                self._tooLong = tooLong
                self._readNameOfTooLong(b"")
                return
        except NetstringError as error:
            if not requests:
                self._refuse(BadRequest(f"malformed netstring: {error}"))
                return
        if not requests:
            self.resetTimeout()
            return
        self._decoder = None
        self._requests = iter(requests)
        self._answer()

    def _readNameOfTooLong(self, data: bytes) -> None:
        """
        A netstring is over the limit: read on, up to the longest name and
        its C{.}, to tell its poem's size, then refuse it.
        """
        tooLong = self._tooLong
        tooLong.head += data[: MAX_NAME_BYTES + 1 - len(tooLong.head)]
        dot = tooLong.head.find(SEPARATOR)
        if dot >= 0:
            poemBytes = tooLong.length - dot - len(SEPARATOR)
            self._refuse(PoemTooLarge.forSize(poemBytes, self.factory.service.limits.maxPoemBytes))
        elif len(tooLong.head) > MAX_NAME_BYTES:
            self._refuse(BadRequest("the request has no '.' after the longest transform name"))

    def _answer(self) -> None:
        """
        Answer the requests in order, one after the other as long as the
        service answers them at once, then close.  A request the service
        does not answer at once is answered, and the rest after it, once
        its L{Deferred} fires.
        """
        for payload in self._requests:
            self._started = self.factory.clock.seconds()
            try:
                name, poem = decodeRequest(payload)
                self._transform = name
                result = self.factory.service.transformEagerly(name, poem, self.caller)
            except TransformError as error:
                self._refuse(error)
                return
            if not isinstance(result, str):
                # The service's deadline bounds the wait; the idle time
                # starts again once the answers are written.
                self.setTimeout(None)
                self._request = result
                result.addCallbacks(self._answerLater, self._transformFailed)
                result.addErrback(self.log.failure, "while answering {peer}", peer=self._peer)
                return
            if not self._reply(result):
                return  # the answer is written a piece at a time; the next ones after it
        self.transport.loseConnection()
        # A client that never reads its answers must not hold them forever
        # (the timer is still running when every answer came at once).
        self.setTimeout(self.factory.idleTimeout)

    def _answerLater(self, poem: str) -> None:
        if self._reply(poem):
            self._answer()

    def _served(self, outcome: str) -> None:
        """
        Tell the observer how the request ended.
        """
        now = self.factory.clock.seconds()
        started = self._started if self._started is not None else now
        self.factory.observer.requestServed(self._transform, outcome, now - started)

    def _reply(self, poem: str) -> bool:
        """
        Write the answer C{poem}.

        @return: whether it is written already; if not, it is being written
            a piece at a time, and L{_answer} carries on once it is.
        """
        self._replied = True
        self._served(OK)
        if len(poem) > STREAMED_ANSWER_CHARS and poem.isascii():
            self._stream(poem)
            return False
        answer = encodeNetstring(poem.encode("utf-8"))
        self.factory.observer.sent(len(answer))
        # One string: the transport joins what it is given when it sends, so
        # an answer written in pieces would only be copied there instead.
        self.transport.write(answer)
        return True

    def _stream(self, poem: str) -> None:
        """
        Write a long ASCII answer a piece at a time, each piece encoded once
        the transport has sent the one before (Twisted's C{FileSender}), so
        that neither the encoding of the whole answer nor Twisted's join of
        what is written holds the reactor in one go; then go on with the
        requests.  Its length is its number of characters: ASCII.
        """
        header = netstringHeader(len(poem))
        self.factory.observer.sent(len(header) + len(poem) + 1)
        self.transport.write(header)
        # Each piece the client takes restarts the idle time (_encodePiece).
        self.setTimeout(self.factory.idleTimeout)
        sent = _AnswerSender().beginFileTransfer(_TextReader(poem), self.transport, self._encodePiece)
        sent.addCallbacks(self._streamed, self._streamStopped)
        sent.addErrback(self.log.failure, "while answering {peer}", peer=self._peer)

    def _encodePiece(self, piece: str) -> bytes:
        self.resetTimeout()
        return piece.encode("ascii")

    def _streamed(self, lastSent: object) -> None:
        self.transport.write(b",")
        self._answer()

    def _streamStopped(self, failure: Failure) -> None:
        """
        The transport stopped the answer's producer: the connection is gone.
        """

    def _transformFailed(self, failure: Failure) -> None:
        if failure.check(CancelledError):
            return  # the client went away first; nobody to tell
        failure.trap(TransformError)
        self._refuse(failure.value)

    def _refuse(self, error: TransformError) -> None:
        self._served(error.name)
        logRefusal(
            self.log,
            error,
            "{protocol} {peer}: closing without a reply: {error}: {reason}",
            refusals=self.factory.refusals,
            protocol="netstring",
            peer=self._peer,
        )
        self._decoder = self._tooLong = self._requests = None
        self.transport.loseConnection()

    def drain(self) -> None:
        """
        The gateway is stopping: a connection that has sent nothing yet is
        closed unless its request starts within L{FIRST_BYTES_GRACE}
        seconds; any other gets its answers first, and closes after them as
        always.
        """
        if self._decoder is not None and not self._received:
            self._grace = self.factory.clock.callLater(FIRST_BYTES_GRACE, self._closeIfSilent)

    def _closeIfSilent(self) -> None:
        if self._decoder is not None and not self._received:
            self._decoder = None
            self.setTimeout(None)
            self.transport.loseConnection()

    def readConnectionLost(self) -> None:
        """
        The client half-closed.  If a request is whole, it still gets the
        answers; otherwise it never can, so the connection is closed.
        """
        if self._tooLong is not None:
            limit = self.factory.service.limits.maxPoemBytes
            self._refuse(PoemTooLarge.forSize(limit, limit, exact=False))
        elif self._decoder is not None:
            self.setTimeout(None)
            if not self._received:
                # A port check (a load balancer's, a scanner's) asks nothing:
                # no refusal to log.
                self.log.debug("netstring {peer}: closed without sending anything", peer=self._peer)
                self._decoder = None
                self.transport.loseConnection()
                return
            self._refuse(
                BadRequest(
                    f"the client stopped sending after {self._received} bytes, before a whole netstring"
                )
            )

    def writeConnectionLost(self) -> None:
        """
        Nothing to do: the server writes its answers, then closes.
        """

    def timeoutConnection(self) -> None:
        self.factory.observer.idleTimedOut()
        if self._replied:
            self.log.info("netstring {peer}: did not read its reply in time; dropping it", peer=self._peer)
            self.transport.abortConnection()
        else:
            self.log.info(
                "netstring {peer}: no whole request within {seconds:g} s; dropping it",
                peer=self._peer,
                seconds=self.factory.idleTimeout,
            )
            self.transport.loseConnection()

    def connectionLost(self, reason: Failure) -> None:
        self.setTimeout(None)
        self._requests = None
        # The caller refers to this protocol: without it, the protocol, its
        # transport and their buffers go as soon as Twisted lets go of them,
        # rather than at the garbage collector's next pass (the service
        # keeps its own reference to a request's caller while it runs).
        self.caller = None
        if self._grace is not None and self._grace.active():
            self._grace.cancel()
        self.factory.closed(self)
        if self._request is not None and not self._request.called:
            self._request.cancel()


class TransformFactory(TransformServerFactory):
    """
    Serve the netstring protocol for a L{TransformService}; the idle timeout
    is the time a client may take to send its whole request, and to read
    its answer.
    """

    protocolName = "netstring"
    protocol = TransformProtocol


class TransformClientProtocol(Protocol):
    """
    Send one request and wait for its one answer.

    @ivar reply: fires with the new poem once the exchange is over and the
        connection closed, or fails with L{NoReply}, L{NetstringError}, or
        the reason the connection broke off (a failed TLS handshake).  It is
        made and fired here, once; cancelling it drops the connection.
    """

    _poem: str | None = None
    _error: Exception | None = None

    def __init__(self, request: bytes, maxReplyBytes: int) -> None:
        self._request = request
        self._decoder = NetstringDecoder(maxReplyBytes)
        self.reply: Deferred[str] = Deferred(lambda _: self.transport.abortConnection())

    def connectionMade(self) -> None:
        self.transport.write(encodeNetstring(self._request))

    def dataReceived(self, data: bytes) -> None:
        if self._poem is not None or self._error is not None:
            return
        self._decoder.feed(data)
        try:
            payload = self._decoder.pop()
            if payload is None:
                return
            self._poem = payload.decode("utf-8")
        except (NetstringError, UnicodeDecodeError) as error:
            self._error = NetstringError(f"unreadable reply: {error}")
            self.transport.abortConnection()
            return
        self.transport.loseConnection()

    def connectionLost(self, reason: Failure) -> None:
        if self.reply.called:
            return  # cancelled
        if self._poem is not None:
            self.reply.callback(self._poem)
        elif self._error is None and lostToAnError(reason):
            self.reply.errback(reason)
        else:
            self.reply.errback(self._error or NoReply("the server closed the connection without a reply"))


@implementer(ITransformClient)
class TransformProxy(ConnectionPerCall):
    """
    The Part 13 client: ask a netstring transform server to transform poems.

    Each call opens one connection, as the protocol requires, so
    L{disconnect} has nothing to close.
    """

    def __init__(
        self,
        endpoint: IStreamClientEndpoint,
        clock: IReactorTime,
        timeout: float = 10.0,
        maxReplyBytes: int = MAX_REPLY_BYTES,
    ) -> None:
        """
        @param endpoint: where the server listens.
        @param clock: measures C{timeout}.
        @param timeout: seconds for the whole exchange, connecting included.
        @param maxReplyBytes: the largest answer accepted.
        """
        super().__init__(clock, timeout)
        self.endpoint = endpoint
        self.maxReplyBytes = maxReplyBytes

    def xform(self, transform: str, poem: str) -> "Deferred[str]":
        """
        Transform C{poem} with C{transform} on the server.

        @return: a L{Deferred} firing with the new poem, or failing with
            L{NoReply} (the server refused or failed: the protocol does not
            say which), L{TransformTimeout}, L{BadRequest} (a name with a
            C{.}), L{NetstringError} (a garbled answer) or the connection
            error (e.g. L{twisted.internet.error.ConnectionRefusedError}).
        """
        try:
            request = encodeRequest(transform, poem)
        except BadRequest:
            return fail()
        return self.exchange(self._exchange(request))

    async def _exchange(self, request: bytes) -> str:
        protocol = TransformClientProtocol(request, self.maxReplyBytes)
        await connectProtocol(self.endpoint, protocol)
        return await protocol.reply
