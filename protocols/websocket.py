"""
JSON-RPC 2.0 over WebSocket (RFC 6455): the C{/ws} face of the gateway, and
its clients.

Each text message a client sends is one JSON-RPC message (a request or a
batch, see L{protocols.jsonrpc}); each answer is one text message.  Messages
are served concurrently and answered as each finishes, so the answers to one
connection's requests may come in any order: match them by id.

    - A binary message is answered with an Invalid Request error (-32600,
      id C{null}) that says to send text; the connection stays open.
    - A message longer than L{maxMessageBytes} -- room for a poem at the
      service's limit however the client escapes it in JSON -- is refused
      as soon as its frame header announces the length, before any of it is
      buffered: the server closes the connection with code 1009 (message
      too big).  A poem that fits in a message but not within the service's
      limit gets the C{poem-too-large} error instead.
    - Text that is not UTF-8 closes the connection with 1007.
    - The handshake is refused with 403 unless L{protocols.origins} allows
      the page's origin; only version 13 of the protocol (RFC 6455) is
      spoken.
    - A request for C{/ws} that asks for no WebSocket (a browser opening
      the URL) gets 426 Upgrade Required, in the web face's JSON error form.
    - When the connection closes, the requests it still has running are
      abandoned.
    - While the client does not read its answers (the transport's write
      buffer is full), no more messages are read: a connection holds at
      most the answers to the requests it has in flight.
    - A connection that receives no message and has no request in flight
      for L{IDLE_TIMEOUT} seconds is closed with 1000 (C{idle}).  The
      server pings every L{PING_INTERVAL} seconds; the client has the
      factory's C{peerTimeout} to answer a ping, to finish its opening
      handshake, and to answer a close frame, or the connection is cut.
    - When the gateway stops, each connection is closed with code 1001
      (going away) as soon as it has no request running: at once if it has
      none, else right after its last answer.

The server is L{TransformWebSocketFactory}, an Autobahn factory, behind a
L{TransformWebSocketResource}.  The asynchronous
client is L{WebSocketTransformProxy}; the blocking client of
L{gateway.syncclient} speaks the same messages (L{protocols.jsonrpc}) through
the C{websockets} library.
"""

from autobahn.twisted.resource import WebSocketResource
from autobahn.twisted.websocket import (
    WebSocketClientFactory,
    WebSocketClientProtocol,
    WebSocketServerFactory,
    WebSocketServerProtocol,
)
from autobahn.websocket.protocol import WebSocketProtocol
from autobahn.websocket.types import ConnectionDeny
from twisted.internet.defer import CancelledError, Deferred
from twisted.internet.endpoints import connectProtocol
from twisted.internet.interfaces import (
    IDelayedCall,
    IPushProducer,
    IReactorTime,
    ISSLTransport,
    IStreamClientEndpoint,
)
from twisted.logger import Logger
from twisted.protocols.policies import ProtocolWrapper, TimeoutMixin
from twisted.python.failure import Failure
from twisted.web.server import Request
from zope.interface import implementer

from protocols.addresses import describeAddress, peerOf
from protocols.common import (
    MAX_REPLY_BYTES,
    ConnectionPerCall,
    ForbiddenOrigin,
    Refusals,
    ServingFactory,
    logRefusal,
    lostToAnError,
)
from protocols.connections import FIRST_BYTES_GRACE, Connections, IDrainable
from protocols.http import ServedChannel, errorBody
from protocols.interfaces import ITransformLister
from protocols.jsonrpc import decodeReply, encodeCall, poemOf
from protocols.jsonrpcserver import JSONRPCServer
from protocols.listing import listedTransforms
from protocols.observer import IServerObserver
from protocols.origins import OriginPolicy
from service.errors import PoemTooLarge, TransformError, TransformFailed
from service.transformer import Caller, TransformService

#: Bytes a message may hold besides its poem: the envelope, names, ids.
ENVELOPE_BYTES = 64 * 1024

#: Close code: the message is bigger than the endpoint accepts (RFC 6455).
CLOSE_MESSAGE_TOO_BIG = 1009

#: Close code: a normal end.
CLOSE_NORMAL = 1000

#: Close code: the server is going away (the gateway is stopping).
CLOSE_GOING_AWAY = 1001

#: Seconds a connection may receive no message with no request in flight
#: before it is closed (C{xform serve --ws-idle-timeout}).
IDLE_TIMEOUT = 300.0

#: Seconds between the server's pings (C{xform serve --ws-ping-interval}).
PING_INTERVAL = 30.0

#: The reason of the close frame of a connection closed for being idle.
IDLE_REASON = "idle"

#: The only message a binary frame gets.
BINARY_REFUSAL = "binary messages are not accepted; send each JSON-RPC message as one text message"


def maxMessageBytes(service: TransformService) -> int:
    """
    The longest WebSocket message the server reads for C{service}: six
    bytes for each byte of the largest poem (C{\\u00e9} is how an ASCII-only
    JSON encoder writes one character of two bytes; a control character
    takes six for one) and L{ENVELOPE_BYTES}.
    """
    return 6 * service.limits.maxPoemBytes + ENVELOPE_BYTES


def _isUTF8(data: bytes) -> bool:
    try:
        data.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


@implementer(IDrainable, IPushProducer)
class TransformWebSocketProtocol(WebSocketServerProtocol, TimeoutMixin):
    """
    One WebSocket connection: each message goes to the factory's
    L{JSONRPCServer}, each answer comes back as a text message.

    It is the transport's streaming producer: while the client does not
    read its answers, it reads no more messages.  Its idle timeout
    (L{TimeoutMixin}, the factory's C{idleTimeout}) runs while it receives
    no message data and has no request in flight.

    @ivar factory: the L{TransformWebSocketFactory} that made it.
    @ivar caller: who asks, for the service's caps on requests in flight.
    """

    # Not "log": that is Autobahn's own logger, whose lines about each
    # connection stay below the level txaio writes.
    gatewayLog = Logger()
    factory: "TransformWebSocketFactory"
    caller: Caller | None = None

    _counted = False
    _draining = False
    #: Whether a message has begun to arrive.
    _messaged = False
    _grace: IDelayedCall | None = None

    #: The client, as C{host:port}, for log lines.
    client = "?"

    def __init__(self) -> None:
        super().__init__()
        self._pending: set[Deferred] = set()

    def connectionMade(self) -> None:
        self.callLater = self.factory.reactor.callLater
        super().connectionMade()

    def takeOver(self, channel: ServedChannel) -> None:
        """
        Serve the connection that the HTTP C{channel} served until its
        request was upgraded: take its place among the gateway's
        connections, count as a WebSocket connection rather than an HTTP
        one, and as the transport's producer.
        """
        channel.handOver(self)
        self.factory.observer.connectionOpened()
        self._counted = True
        self.transport.unregisterProducer()
        self.transport.registerProducer(self, True)

    def onConnect(self, request):
        self.client = describeAddress(self.transport.getPeer())
        origin = request.headers.get("origin")
        secure = ISSLTransport.providedBy(self.transport)
        if not self.factory.origins.allows(origin, request.headers.get("host"), secure):
            reason = self.factory.origins.explain(origin)
            self._logRefusal(ForbiddenOrigin(reason))
            raise ConnectionDeny(ConnectionDeny.FORBIDDEN, reason)
        self.caller = Caller(peerOf(self.transport.getPeer()), self)
        self.gatewayLog.debug(
            "ws {peer}: connected (origin {origin})", peer=self.client, origin=origin or "none"
        )
        return None

    def _logRefusal(self, error: TransformError) -> None:
        logRefusal(
            self.gatewayLog,
            error,
            "{protocol} {peer}: answering {error}: {reason}",
            refusals=self.factory.refusals,
            protocol="ws",
            peer=self.client,
        )

    def onOpen(self) -> None:
        self.setTimeout(self.factory.idleTimeout)
        if self._draining:
            self._awaitFirstMessage()

    def dataReceived(self, data: bytes) -> None:
        if self.state != WebSocketProtocol.STATE_CONNECTING:  # the handshake was counted as HTTP
            self.factory.observer.received(len(data))
        super().dataReceived(data)

    def sendData(self, data: bytes, sync: bool = False, chopsize: int | None = None) -> None:
        self.factory.observer.sent(len(data))
        super().sendData(data, sync, chopsize)

    def pauseProducing(self) -> None:
        """
        The transport's write buffer is full: read no more messages until
        the client reads its answers.
        """
        self.transport.pauseProducing()

    def resumeProducing(self) -> None:
        self.transport.resumeProducing()

    def stopProducing(self) -> None:
        """
        The connection is ending; there is nothing more to read.
        """

    def onMessageFrameData(self, payload: bytes) -> None:
        self._messaged = True
        self.resetTimeout()  # a message arriving, however slowly, is no idleness
        super().onMessageFrameData(payload)

    def onMessageEnd(self) -> None:
        """
        The message is whole: check that a text message is UTF-8, and
        answer it (L{onMessage}); close a text message that is not UTF-8
        with 1007, as Autobahn does.

        This is Autobahn's own C{onMessageEnd} without what nothing here
        uses and every message paid for (a tenth of a small request's
        time): firing Autobahn's C{"message"} event, to which no listener
        is ever added, through a L{Deferred} of its own, and timings, which
        are not tracked.  The message is put together from the frames that
        Autobahn's C{onMessageBegin} and C{onMessageFrame} collected.

        Autobahn's own UTF-8 check, frame by frame as they arrive, is off
        (C{utf8validateIncoming}): Python's decoder checks a whole message
        at a small fraction of its cost (half the time of a 100 KB
        request went to it).  A message that is not UTF-8 is therefore
        refused once it is whole, rather than at its first wrong byte.
        """
        if not self.failedByMe:
            payload = b"".join(self.message_data)
            if self.message_is_binary or _isUTF8(payload):
                self.onMessage(payload, self.message_is_binary)
            else:
                self._invalid_payload("a text message that is not UTF-8")
        self.message_data = None

    def onMessage(self, payload: bytes, isBinary: bool) -> None:
        if isBinary:
            self._send(self.factory.rpc.refuse(BINARY_REFUSAL))
            return
        # Autobahn checked the UTF-8.
        try:
            answer = self.factory.rpc.answer(payload, self.caller, self._logRefusal)
        except Exception:
            self._failed(Failure())
            return
        if isinstance(answer, Deferred):
            self._pending.add(answer)
            answer.addBoth(self._settled, answer)
            answer.addCallback(self._send)
            answer.addErrback(self._failed)
            if self._draining:
                answer.addBoth(lambda _: self._closeIfIdle())
            return
        # Answered at once, with nothing in flight: the idle time starts
        # with this answer, not with the message's last frame (reading a
        # large message can take a while).
        self._send(answer)
        self.resetTimeout()
        if self._draining:
            self._closeIfIdle()

    def _settled(self, result: object, answer: Deferred) -> object:
        self._pending.discard(answer)
        if not self._pending:
            self.resetTimeout()  # the idle time starts with the last answer
        return result

    def timeoutConnection(self) -> None:
        """
        Abort a connection whose closing handshake is over but which the
        client has not closed (it does not read); keep one with requests in
        flight; close an idle one with 1000 (C{idle}).
        """
        if self.state == WebSocketProtocol.STATE_CLOSED:
            self.transport.abortConnection()
        elif self._pending:
            self.setTimeout(self.factory.idleTimeout)
        elif self.state == WebSocketProtocol.STATE_OPEN:
            self.gatewayLog.info(
                "ws {peer}: idle for {seconds:g} s; closing the connection",
                peer=self.client,
                seconds=self.factory.idleTimeout,
            )
            self.factory.observer.idleTimedOut()
            self.sendClose(CLOSE_NORMAL, IDLE_REASON)

    def onAutoPingTimeout(self) -> None:
        """
        The client did not answer a ping in time, nor send anything: it is
        gone, or does not read.  Cut the connection.
        """
        self.gatewayLog.info(
            "ws {peer}: no answer to a ping within {seconds:g} s; closing the connection",
            peer=self.client,
            seconds=self.autoPingTimeout,
        )
        self.factory.observer.idleTimedOut()
        super().onAutoPingTimeout()

    def dropConnection(self, abort: bool = False) -> None:
        """
        End the TCP connection once the WebSocket one is over.

        When the client's close frame answers the server's, Autobahn aborts
        the connection, throwing away what the transport has not sent yet.
        When the client's frame broke the protocol (an invalid close code,
        a close payload over 125 bytes), the server's answer, a close frame
        with 1002, went out in the same turn, and the client would get a
        reset instead.  So the connection is closed once what it has to
        send is sent, and aborted if the client has not read it within the
        factory's C{peerTimeout}.
        """
        if self.wasClean:  # the closing handshake is complete
            abort = False
        super().dropConnection(abort)
        if not abort:
            self.setTimeout(self.factory.peerTimeout)

    def drain(self) -> None:
        """
        The gateway is stopping: answer the requests running, and close
        with 1001 (going away) once none is left.  A WebSocket that has
        sent no message yet (it may be in its opening handshake) has
        L{FIRST_BYTES_GRACE} seconds, once open, to send one, which is
        answered: a client that connected just before is served, not cut.
        """
        self._draining = True
        for answer in list(self._pending):
            answer.addBoth(lambda _: self._closeIfIdle())
        if self._messaged:
            self._closeIfIdle()
        elif self.state == WebSocketProtocol.STATE_OPEN:
            self._awaitFirstMessage()

    def _awaitFirstMessage(self) -> None:
        self._grace = self.callLater(FIRST_BYTES_GRACE, self._closeIfSilent)

    def _closeIfSilent(self) -> None:
        if not self._messaged:
            self._closeIfIdle()

    def _closeIfIdle(self) -> None:
        if not self._pending and self.state == WebSocketProtocol.STATE_OPEN:
            self._goAway()

    def _goAway(self) -> None:
        # sendClose takes only the codes an application may choose (1000,
        # 3000-4999); 1001 and 1011 are the server's own.
        self.sendCloseFrame(CLOSE_GOING_AWAY, b"the gateway is stopping")

    def _send(self, answer: bytes | None) -> None:
        if answer is None or self.state != WebSocketProtocol.STATE_OPEN:
            return
        # An answer is never over the message limit: results that would take
        # it over are replaced by errors, and ids are short.
        self.sendMessage(answer, isBinary=False)

    def _failed(self, failure: Failure) -> None:
        if not failure.check(CancelledError):
            self.gatewayLog.failure("ws {peer}: while answering", failure, peer=self.client)

    def onClose(self, wasClean: bool, code: int | None, reason: str | None) -> None:
        self.setTimeout(None)
        if self._grace is not None and self._grace.active():
            self._grace.cancel()
        pending, self._pending = self._pending, set()
        for answer in pending:
            answer.cancel()
        # Autobahn keeps the timer of a closing handshake it started (after
        # a 1009 or 1007, say) running when the peer drops the connection
        # first; a closed connection needs no timer.
        if self.closeHandshakeTimeoutCall is not None:
            self.closeHandshakeTimeoutCall.cancel()
            self.closeHandshakeTimeoutCall = None
        if self._counted:
            self._counted = False
            self.factory.closed(self)


class TransformWebSocketFactory(ServingFactory, WebSocketServerFactory):
    """
    Serve JSON-RPC 2.0 over WebSocket for a L{TransformService}.  Its
    connections are accepted by the web site, whose caps they count
    against; once upgraded they count as WebSocket connections.

    @ivar rpc: the JSON-RPC server shared by every connection.
    @ivar origins: the pages allowed to connect.
    @ivar refusals: where its refusals are logged (the web site's).
    @ivar idleTimeout: seconds a connection may receive no message while
        it has no request in flight.
    @ivar peerTimeout: seconds the client has for what it owes the server:
        the rest of its opening handshake, the answer to a ping, to a close
        frame.
    """

    protocolName = "ws"
    protocol = TransformWebSocketProtocol
    noisy = False

    def __init__(
        self,
        service: TransformService,
        origins: OriginPolicy,
        refusals: Refusals,
        reactor=None,
        connections: Connections | None = None,
        observer: IServerObserver | None = None,
        idleTimeout: float = IDLE_TIMEOUT,
        peerTimeout: float = 30.0,
        pingInterval: float = PING_INTERVAL,
    ) -> None:
        """
        @param refusals: the web site's refusals, which keep their log lines
            few.
        @param connections: the gateway's connections (the web site's).
        @param observer: told what the WebSocket connections serve.
        @param pingInterval: seconds between the server's pings.
        """
        super().__init__(server="xform-gateway", reactor=reactor)
        self.idleTimeout = idleTimeout
        self.peerTimeout = peerTimeout
        self.refusals = refusals
        self.serve(connections, observer)
        limit = maxMessageBytes(service)
        self.rpc = JSONRPCServer(service, maxAnswerBytes=limit, observer=self.observer, clock=self.reactor)
        self.origins = origins
        self.setProtocolOptions(
            maxMessagePayloadSize=limit,
            maxFramePayloadSize=limit,
            # Say why (1009, 1007, ...) with a close frame, rather than just
            # dropping the connection.
            failByDrop=False,
            # Text is checked to be UTF-8 as a whole message, at a fraction
            # of the cost (TransformWebSocketProtocol.onMessageEnd).
            utf8validateIncoming=False,
            # Let every Origin through to onConnect, where the policy decides.
            allowNullOrigin=True,
            # RFC 6455 only: the drafts before it (8 and 7) are not spoken.
            versions=[13],
            openHandshakeTimeout=peerTimeout,
            closeHandshakeTimeout=peerTimeout,
            # A ping keeps a live page's connection (and the state of the
            # proxies and NATs on its way) open, and finds a client that is
            # gone or does not read; a message answers it as well as a pong.
            autoPingInterval=pingInterval,
            autoPingTimeout=peerTimeout,
        )


class TransformWebSocketResource(WebSocketResource):
    """
    C{/ws}: the WebSocket handshake of a L{TransformWebSocketFactory}.  A
    request that does not ask to upgrade to a WebSocket (a browser opening
    the URL) gets 426 Upgrade Required with a JSON body in the web face's
    error form, instead of Autobahn's own status page.  A WebSocket
    protocol takes the HTTP channel's place among the gateway's connections
    when it takes over the channel's transport.
    """

    def render(self, request: Request):
        upgrade = request.getHeader(b"upgrade") or b""
        if b"websocket" not in (token.strip().lower() for token in upgrade.split(b",")):
            request.setHeader(b"Upgrade", b"websocket")
            return errorBody(
                request,
                426,
                "upgrade-required",
                "this is the gateway's WebSocket JSON-RPC endpoint: connect with a WebSocket client, "
                "or open the page at /",
            )
        channel = request.channel
        transport = channel.transport
        result = super().render(request)
        protocol = _deliveredTo(transport)
        if (
            channel.transport is None
            and isinstance(channel, ServedChannel)
            and isinstance(protocol, TransformWebSocketProtocol)
        ):
            protocol.takeOver(channel)
        return result


def _deliveredTo(transport):
    """
    The protocol that C{transport} delivers what it reads to: over TLS, the
    one that Twisted's TLS layer, a L{ProtocolWrapper}, wraps (its own
    C{protocol} attribute is the TCP transport's, the TLS layer itself).
    """
    if isinstance(transport, ProtocolWrapper):
        return transport.wrappedProtocol
    return transport.protocol


class ConnectionClosed(TransformFailed):
    """
    The WebSocket connection closed before the reply came.

    @ivar code: the close code, if the server sent one.
    """

    def __init__(self, message: str, code: int | None = None) -> None:
        super().__init__(message)
        self.code = code


class _ClientProtocol(WebSocketClientProtocol):
    """
    Send one request, take the first message back, close.

    @ivar reply: fires with the answer's text once the connection is
        closed, or fails with L{ConnectionClosed}, L{PoemTooLarge}, or the
        reason the connection broke off (a failed TLS handshake).  It is
        made and fired here; cancelling it drops the connection.
    """

    _lost: Failure | None = None

    def __init__(self, request: str) -> None:
        super().__init__()
        self._request = request
        self._answer: bytes | None = None
        self.reply: Deferred[str] = Deferred(lambda _: self.dropConnection(abort=True))

    def connectionLost(self, reason: Failure) -> None:
        self._lost = reason  # for onClose, which Autobahn tells only in words
        super().connectionLost(reason)

    def onOpen(self) -> None:
        self.sendMessage(self._request.encode("utf-8"), isBinary=False)

    def onMessage(self, payload: bytes, isBinary: bool) -> None:
        if self._answer is None:
            self._answer = payload
            self.sendClose(CLOSE_NORMAL)

    def onClose(self, wasClean: bool, code: int | None, reason: str | None) -> None:
        if self.reply.called:
            return  # cancelled
        if self._answer is not None:
            self.reply.callback(self._answer.decode("utf-8", errors="replace"))
        elif code == CLOSE_MESSAGE_TOO_BIG:
            self.reply.errback(PoemTooLarge(f"the server refused the message as too big: {reason}"))
        elif self._lost is not None and lostToAnError(self._lost):
            self.reply.errback(self._lost)
        else:
            self.reply.errback(
                ConnectionClosed(f"the connection closed without a reply ({code}: {reason})", code)
            )


@implementer(ITransformLister)
class WebSocketTransformProxy(ConnectionPerCall):
    """
    Ask a gateway to transform poems over WebSocket JSON-RPC.

    Each call opens its own connection, as L{protocols.netstring.TransformProxy}
    does, and its L{Deferred} fires once that connection is closed: there is
    no connection state to manage and nothing left open for L{disconnect}
    to close.

    @ivar endpoint: where the gateway listens.
    @ivar timeout: seconds for each exchange, connecting included.
    """

    #: The id of the one request of each connection.
    REQUEST_ID = 1

    def __init__(
        self,
        endpoint: IStreamClientEndpoint,
        url: str,
        clock: IReactorTime,
        timeout: float = 10.0,
        maxReplyBytes: int = MAX_REPLY_BYTES,
    ) -> None:
        """
        @param endpoint: where the gateway listens.
        @param url: the WebSocket URL, C{ws://host:port/ws}, for the
            handshake's C{Host} and path.
        @param clock: measures C{timeout}, and runs Autobahn's timers.
        @param timeout: seconds for the whole exchange, connecting included.
        @param maxReplyBytes: the longest answer accepted.
        """
        super().__init__(clock, timeout)
        self.endpoint = endpoint
        self._factory = WebSocketClientFactory(url, useragent="xform-gateway", reactor=clock)
        self._factory.setProtocolOptions(
            maxMessagePayloadSize=maxReplyBytes, maxFramePayloadSize=maxReplyBytes, failByDrop=False
        )

    def xform(self, transform: str, poem: str) -> "Deferred[str]":
        """
        Transform C{poem} with C{transform} on the gateway.

        @return: a L{Deferred} firing with the new poem, or failing with the
            service's error that the gateway reported (L{UnknownTransform},
            ...), L{TransformTimeout}, L{ConnectionClosed}, or the
            connection error.
        """
        return self.exchange(self._transform(transform, poem))

    def listTransforms(self) -> "Deferred[list[tuple[str, str]]]":
        """
        The gateway's transforms: one C{list_transforms} call.

        @return: a L{Deferred} firing with C{(name, description)} pairs, or
            failing as L{xform} does, or with L{TransformFailed} for a
            result that is not a list of transforms.
        """
        return self.exchange(self._list())

    async def _transform(self, transform: str, poem: str) -> str:
        return poemOf(await self._call("transform", {"transform": transform, "poem": poem}))

    async def _list(self) -> list[tuple[str, str]]:
        listing = await self._call("list_transforms", [])
        try:
            return listedTransforms(listing)
        except ValueError as error:
            raise TransformFailed(f"unreadable list of transforms: {error}") from None

    async def _call(self, method: str, params: dict | list) -> object:
        """
        The result of one call of C{method}, on a connection of its own.

        @raise TransformError: the error the gateway answered with.
        """
        protocol = _ClientProtocol(encodeCall(method, params, self.REQUEST_ID))
        protocol.factory = self._factory
        await connectProtocol(self.endpoint, protocol)
        return decodeReply(await protocol.reply, self.REQUEST_ID)
