"""
The poetry protocol of the Twisted introduction's Part 11, server and client.

The wire, byte by byte::

    client connects, sends nothing
    server -> client   <the poem, UTF-8>          then the server closes

A plain poem has no framing: the close is its end, so a client cannot tell a
whole poem from one cut short by a server that died.  With the netstring
option (Part 12, exercise 6) the server sends the poem as one netstring::

    server -> client   <length>:<the poem>,       then the server closes

and a client that sees the connection close before the comma knows the poem
is truncated.

A slow server (Part 11's slowpoetry, exercise 3) sends the poem, framed or
not, in pieces of L{Pace.numBytes} bytes, the first at once and then one
every L{Pace.delay} seconds.  When the client goes away mid-poem, it stops
sending to it and forgets it; other clients are not affected.

The client half is a L{PoetryClientFactory}: it downloads one poem and fires
its L{PoetryClientFactory.poem} L{Deferred} -- which it made, and which
nothing else fires -- once, with the poem or the reason it did not arrive.
"""

from collections.abc import Callable
from dataclasses import dataclass

from twisted.internet.defer import CancelledError, Deferred
from twisted.internet.error import ConnectionDone
from twisted.internet.interfaces import IAddress, IReactorTime, IStreamClientEndpoint
from twisted.internet.protocol import Factory, Protocol
from twisted.internet.task import LoopingCall
from twisted.logger import Logger
from twisted.protocols.policies import TimeoutMixin
from twisted.python.failure import Failure

from protocols.netstringwire import NetstringDecoder, NetstringError, encodeNetstring
from service.deadline import withDeadline

#: The largest poem a client accepts, in bytes.
MAX_POEM_BYTES = 64 * 1024 * 1024


@dataclass(frozen=True)
class Pace:
    """
    How a slow poetry server sends its poem.

    @ivar numBytes: the size of each piece, in bytes.
    @ivar delay: seconds between two pieces.
    """

    numBytes: int
    delay: float

    def __post_init__(self) -> None:
        if self.numBytes < 1:
            raise ValueError("a piece must be at least one byte")
        if not self.delay > 0:
            raise ValueError("the delay must be positive")


class PoetryServerProtocol(Protocol):
    """
    Send the factory's poem to one client, all at once or at the factory's
    pace, then close.

    @ivar factory: the L{PoetryServerFactory} that made this protocol.
    """

    log = Logger()
    factory: "PoetryServerFactory"

    _sent = 0
    _sending: LoopingCall | None = None

    def connectionMade(self) -> None:
        pace = self.factory.pace
        if pace is None:
            self._send(len(self.factory.payload))
            return
        self._sending = LoopingCall(self._send, pace.numBytes)
        self._sending.clock = self.factory.clock
        self._sending.start(pace.delay, now=True)

    def _send(self, numBytes: int) -> None:
        payload = self.factory.payload
        self.transport.write(payload[self._sent : self._sent + numBytes])
        self._sent = min(self._sent + numBytes, len(payload))
        if self._sent == len(payload):
            self._stopSending()
            self.transport.loseConnection()

    def _stopSending(self) -> None:
        if self._sending is not None and self._sending.running:
            self._sending.stop()

    def connectionLost(self, reason: Failure) -> None:
        self._stopSending()
        if self._sent < len(self.factory.payload):
            self.log.info(
                "poetry {poem}: a client left after {sent} of {size} bytes",
                poem=self.factory.name,
                sent=self._sent,
                size=len(self.factory.payload),
                peer=self.transport.getPeer(),
            )


class PoetryServerFactory(Factory):
    """
    Serve one poem.

    @ivar name: what the poem is called in the log (its file, say).
    @ivar payload: the bytes sent to each client: the poem, or the poem as
        one netstring.
    @ivar pace: how a slow server sends, or C{None} to send all at once.
    @ivar clock: schedules the pieces of a slow server.
    """

    protocol = PoetryServerProtocol
    noisy = False

    def __init__(
        self,
        poem: bytes,
        clock: IReactorTime,
        netstring: bool = False,
        pace: Pace | None = None,
        name: str = "poem",
    ) -> None:
        """
        @param poem: the poem, in UTF-8.
        @param netstring: send it as one netstring, so that a client can
            tell a truncated poem.
        """
        self.name = name
        self.payload = encodeNetstring(poem) if netstring else poem
        self.pace = pace
        self.clock = clock


class DownloadFailed(Exception):
    """
    The poem did not arrive whole; the message says why.
    """


class PoemTruncated(DownloadFailed):
    """
    The connection closed before the end of a netstring poem.
    """


class PoetryClientProtocol(Protocol, TimeoutMixin):
    """
    Receive one poem and hand the factory the poem, or the reason it did
    not arrive whole, when the connection closes.

    @ivar factory: the L{PoetryClientFactory} that made this protocol.
    """

    factory: "PoetryClientFactory"

    _received = 0
    _poem: bytes | None = None
    _error: DownloadFailed | None = None

    def connectionMade(self) -> None:
        self.callLater = self.factory.clock.callLater
        self._plain = bytearray()
        self._decoder = NetstringDecoder(self.factory.maxPoemBytes) if self.factory.netstring else None
        self.setTimeout(self.factory.idleTimeout)

    def dataReceived(self, data: bytes) -> None:
        if self._poem is not None or self._error is not None:
            return
        self.resetTimeout()
        self._received += len(data)
        self.factory.progress(self._received)
        try:
            self._take(data)
        except DownloadFailed as error:
            self._error = error
            self.transport.abortConnection()
            return
        if self._poem is not None:
            self.transport.loseConnection()  # the netstring is whole

    def _take(self, data: bytes) -> None:
        if self._decoder is None:
            if self._received > self.factory.maxPoemBytes:
                raise DownloadFailed(f"the poem is longer than {self.factory.maxPoemBytes} bytes")
            self._plain += data
            return
        self._decoder.feed(data)
        try:
            self._poem = self._decoder.pop()
        except NetstringError as error:
            raise DownloadFailed(f"the poem is not a netstring: {error}") from None

    def timeoutConnection(self) -> None:
        self._error = DownloadFailed(
            f"the server sent nothing for {self.factory.idleTimeout:g} seconds (after {self._received} bytes)"
        )
        self.transport.abortConnection()

    def connectionLost(self, reason: Failure) -> None:
        self.setTimeout(None)
        try:
            poem = self._outcome(reason).decode("utf-8")
        except DownloadFailed:
            self.factory.poemFailed(Failure())
        except UnicodeDecodeError as error:
            self.factory.poemFailed(Failure(DownloadFailed(f"the poem is not UTF-8 (byte {error.start})")))
        else:
            self.factory.poemReceived(poem)

    def _outcome(self, reason: Failure) -> bytes:
        if self._error is not None:
            raise self._error
        if self.factory.netstring:
            if self._poem is None:
                raise PoemTruncated(
                    f"the poem is truncated: the connection closed after {self._received} bytes, "
                    "before the end of its netstring"
                )
            return self._poem
        if not reason.check(ConnectionDone):
            raise DownloadFailed(
                f"the connection was lost after {self._received} bytes: {reason.getErrorMessage()}"
            )
        return bytes(self._plain)


class PoetryClientFactory(Factory):
    """
    Download one poem: "you make it, you fire it".  L{poem} is made here and
    fired here, once, with the poem or the reason it did not arrive; nothing
    that arrives afterwards changes it.

    @ivar poem: fires with the poem (C{str}), or fails with
        L{DownloadFailed} (L{PoemTruncated} for a netstring cut short), the
        connection error, or L{service.errors.TransformTimeout} when no
        connection was made in time.  Cancelling it abandons the download.
    @ivar clock: measures the timeouts.
    @ivar netstring: whether the poem comes as one netstring.
    @ivar idleTimeout: seconds the server may send nothing before the
        download is given up.
    @ivar maxPoemBytes: the largest poem accepted.
    @ivar progress: called with the number of bytes received so far, each
        time some arrive.
    """

    protocol = PoetryClientProtocol
    noisy = False

    def __init__(
        self,
        clock: IReactorTime,
        netstring: bool = False,
        idleTimeout: float = 10.0,
        maxPoemBytes: int = MAX_POEM_BYTES,
        progress: Callable[[int], object] = lambda received: None,
    ) -> None:
        self.clock = clock
        self.netstring = netstring
        self.idleTimeout = idleTimeout
        self.maxPoemBytes = maxPoemBytes
        self.progress = progress
        self.poem: Deferred[str] = Deferred(self._abandon)
        self._connecting: Deferred[Protocol] | None = None
        self._protocol: PoetryClientProtocol | None = None

    def download(self, endpoint: IStreamClientEndpoint, connectTimeout: float) -> "Deferred[str]":
        """
        Connect to the poetry server at C{endpoint} and download its poem.

        @param connectTimeout: seconds to connect within.
        @return: L{poem}.
        """
        self._connecting = withDeadline(endpoint.connect(self), connectTimeout, self.clock, "no connection")
        self._connecting.addErrback(self.poemFailed)
        return self.poem

    def buildProtocol(self, addr: IAddress) -> PoetryClientProtocol:
        self._protocol = super().buildProtocol(addr)
        return self._protocol

    def poemReceived(self, poem: str) -> None:
        """
        The protocol got the whole poem.
        """
        if not self.poem.called:
            self.poem.callback(poem)

    def poemFailed(self, reason: Failure) -> None:
        """
        The poem did not arrive, for C{reason}.
        """
        if not self.poem.called:
            self.poem.errback(reason)

    def _abandon(self, poem: "Deferred[str]") -> None:
        """
        Cancelling L{poem}: it fails with L{CancelledError} first, so that
        what the dropped attempt or connection reports is ignored.
        """
        poem.errback(CancelledError())
        if self._connecting is not None and not self._connecting.called:
            self._connecting.cancel()
        elif self._protocol is not None:
            self._protocol.transport.abortConnection()
