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
      the page's origin.
    - When the connection closes, the requests it still has running are
      abandoned.

The server is L{TransformWebSocketFactory}, an Autobahn factory to put
behind an C{autobahn.twisted.resource.WebSocketResource}.  The asynchronous
client is L{WebSocketTransformProxy}; the blocking client of
L{gateway.syncclient} builds on the framing helpers at the end of this
module (L{handshakeRequest}, L{encodeFrame}, L{FrameDecoder}), as Autobahn's
framing is not usable without a reactor.
"""

import base64
import hashlib
import struct

from autobahn.exception import PayloadExceededError
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
from twisted.internet.interfaces import IReactorTime, ISSLTransport, IStreamClientEndpoint
from twisted.logger import Logger
from twisted.python.failure import Failure

from protocols.common import ConnectionPerCall
from protocols.jsonrpc import JSONRPCServer, decodeReply, encodeCall
from protocols.origins import OriginPolicy
from service.deadline import withDeadline
from service.errors import PoemTooLarge, TransformFailed
from service.transformer import TransformService

#: Bytes a message may hold besides its poem: the envelope, names, ids.
ENVELOPE_BYTES = 64 * 1024

#: Close code: the message is bigger than the endpoint accepts (RFC 6455).
CLOSE_MESSAGE_TOO_BIG = 1009

#: Close code: a normal end.
CLOSE_NORMAL = 1000

#: Close code: the server met a condition that kept it from answering.
CLOSE_INTERNAL_ERROR = 1011

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


class TransformWebSocketProtocol(WebSocketServerProtocol):
    """
    One WebSocket connection: each message goes to the factory's
    L{JSONRPCServer}, each answer comes back as a text message.

    @ivar factory: the L{TransformWebSocketFactory} that made it.
    """

    log = Logger()
    factory: "TransformWebSocketFactory"

    def __init__(self) -> None:
        super().__init__()
        self._pending: set[Deferred] = set()

    def onConnect(self, request):
        origin = request.headers.get("origin")
        secure = ISSLTransport.providedBy(self.transport)
        if not self.factory.origins.allows(origin, request.headers.get("host"), secure):
            reason = self.factory.origins.explain(origin)
            self.log.warn("ws {peer}: refused: {reason}", peer=self.peer, reason=reason)
            raise ConnectionDeny(ConnectionDeny.FORBIDDEN, reason)
        self.log.info("ws {peer}: connected (origin {origin})", peer=self.peer, origin=origin or "none")
        return None

    def onMessage(self, payload: bytes, isBinary: bool) -> None:
        if isBinary:
            self._send(self.factory.rpc.refuse(BINARY_REFUSAL))
            return
        answer = self.factory.rpc.handle(payload.decode("utf-8"))  # Autobahn checked the UTF-8
        self._pending.add(answer)
        answer.addBoth(self._settled, answer)
        answer.addCallback(self._send)
        answer.addErrback(self._failed)

    def _settled(self, result: object, answer: Deferred) -> object:
        self._pending.discard(answer)
        return result

    def _send(self, text: str | None) -> None:
        if text is None or self.state != WebSocketProtocol.STATE_OPEN:
            return
        try:
            self.sendMessage(text.encode("utf-8"), isBinary=False)
        except PayloadExceededError:
            # Even with its results replaced by errors, the answer is too
            # long (ids of megabytes): say so rather than leave the client
            # waiting.
            self.sendClose(CLOSE_INTERNAL_ERROR, "the answer is over the message limit")

    def _failed(self, failure: Failure) -> None:
        if not failure.check(CancelledError):
            self.log.failure("ws {peer}: while answering", failure, peer=self.peer)

    def onClose(self, wasClean: bool, code: int | None, reason: str | None) -> None:
        pending, self._pending = self._pending, set()
        for answer in pending:
            answer.cancel()
        # Autobahn keeps the timer of a closing handshake it started (after
        # a 1009 or 1007, say) running when the peer drops the connection
        # first; a closed connection needs no timer.
        if self.closeHandshakeTimeoutCall is not None:
            self.closeHandshakeTimeoutCall.cancel()
            self.closeHandshakeTimeoutCall = None


class TransformWebSocketFactory(WebSocketServerFactory):
    """
    Serve JSON-RPC 2.0 over WebSocket for a L{TransformService}.

    @ivar rpc: the JSON-RPC server shared by every connection.
    @ivar origins: the pages allowed to connect.
    """

    protocol = TransformWebSocketProtocol
    noisy = False

    def __init__(self, service: TransformService, origins: OriginPolicy, reactor=None) -> None:
        super().__init__(server="xform-gateway", reactor=reactor)
        limit = maxMessageBytes(service)
        self.rpc = JSONRPCServer(service, maxAnswerBytes=limit)
        self.origins = origins
        self.setProtocolOptions(
            maxMessagePayloadSize=limit,
            maxFramePayloadSize=limit,
            # Say why (1009, 1007, ...) with a close frame, rather than just
            # dropping the connection.
            failByDrop=False,
            # Let every Origin through to onConnect, where the policy decides.
            allowNullOrigin=True,
        )


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
        closed, or fails with L{ConnectionClosed} or L{PoemTooLarge}.  It is
        made and fired here; cancelling it drops the connection.
    """

    def __init__(self, request: str) -> None:
        super().__init__()
        self._request = request
        self._answer: bytes | None = None
        self.reply: Deferred[str] = Deferred(lambda _: self.dropConnection(abort=True))

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
        else:
            self.reply.errback(
                ConnectionClosed(f"the connection closed without a reply ({code}: {reason})", code)
            )


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
        maxReplyBytes: int = 64 * 1024 * 1024,
    ) -> None:
        """
        @param endpoint: where the gateway listens.
        @param url: the WebSocket URL, C{ws://host:port/ws}, for the
            handshake's C{Host} and path.
        @param clock: measures C{timeout}, and runs Autobahn's timers.
        @param timeout: seconds for the whole exchange, connecting included.
        @param maxReplyBytes: the longest answer accepted.
        """
        self.endpoint = endpoint
        self.timeout = timeout
        self._clock = clock
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
        request = encodeCall("transform", {"transform": transform, "poem": poem}, self.REQUEST_ID)
        exchange = Deferred.fromCoroutine(self._exchange(request))
        return withDeadline(exchange, self.timeout, self._clock, "no reply")

    async def _exchange(self, request: str) -> str:
        protocol = _ClientProtocol(request)
        protocol.factory = self._factory
        await connectProtocol(self.endpoint, protocol)
        result = decodeReply(await protocol.reply, self.REQUEST_ID)
        return poemOf(result)


def poemOf(result: object) -> str:
    """
    The poem in a C{transform} call's result.

    @raise TransformFailed: if the result is not C{{"poem": "..."}}.
    """
    if not isinstance(result, dict) or not isinstance(result.get("poem"), str):
        raise TransformFailed(f"the result holds no poem: {str(result)[:200]!r}")
    return result["poem"]


# The framing of the blocking client (RFC 6455, sections 4 and 5): a client
# masks what it sends; the server does not.

#: The GUID that turns a handshake key into its answer (RFC 6455, 1.3).
_GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"

OP_CONTINUATION, OP_TEXT, OP_BINARY, OP_CLOSE, OP_PING, OP_PONG = 0x0, 0x1, 0x2, 0x8, 0x9, 0xA


class FrameError(Exception):
    """
    The bytes received are not valid WebSocket frames from a server, or a
    message is over the size limit.
    """


def acceptKey(key: str) -> str:
    """
    The C{Sec-WebSocket-Accept} a server must answer to C{key}.
    """
    return base64.b64encode(hashlib.sha1(key.encode("ascii") + _GUID).digest()).decode("ascii")


def handshakeRequest(host: str, port: int, path: str, key: str) -> bytes:
    """
    The opening handshake of a client without an C{Origin} (not a browser).
    """
    hostHeader = f"[{host}]" if ":" in host else host
    return (
        f"GET {path} HTTP/1.1\r\n"
        f"Host: {hostHeader}:{port}\r\n"
        "Upgrade: websocket\r\n"
        "Connection: Upgrade\r\n"
        f"Sec-WebSocket-Key: {key}\r\n"
        "Sec-WebSocket-Version: 13\r\n"
        "\r\n"
    ).encode("ascii")


def encodeFrame(opcode: int, payload: bytes, mask: bytes) -> bytes:
    """
    One final, masked frame, as a client sends it.

    @param mask: four random bytes.
    """
    length = len(payload)
    if length < 126:
        header = struct.pack("!BB", 0x80 | opcode, 0x80 | length)
    elif length < 1 << 16:
        header = struct.pack("!BBH", 0x80 | opcode, 0x80 | 126, length)
    else:
        header = struct.pack("!BBQ", 0x80 | opcode, 0x80 | 127, length)
    repeated = (mask * (length // 4 + 1))[:length]
    masked = (int.from_bytes(payload, "big") ^ int.from_bytes(repeated, "big")).to_bytes(length, "big")
    return header + mask + masked


class FrameDecoder:
    """
    An incremental parser of the frames a server sends: feed it bytes as
    they arrive and pop whole messages and control frames.  Fragmented
    messages are joined.

    @ivar maxLength: the longest message accepted, in bytes.
    """

    def __init__(self, maxLength: int) -> None:
        """
        @param maxLength: the longest message accepted, in bytes.
        """
        self.maxLength = maxLength
        self._buffer = bytearray()
        self._fragments: list[bytes] = []
        self._fragmentsOpcode: int | None = None

    def feed(self, data: bytes) -> None:
        """
        Add received bytes.
        """
        self._buffer += data

    def pop(self) -> tuple[int, bytes] | None:
        """
        Take the next whole message or control frame.

        @return: its opcode and payload, or C{None} if none has arrived yet.
        @raise FrameError: if the bytes cannot be frames from a server.
        """
        while True:
            frame = self._popFrame()
            if frame is None:
                return None
            final, opcode, payload = frame
            if opcode >= OP_CLOSE:
                return opcode, payload
            if opcode == OP_CONTINUATION:
                if self._fragmentsOpcode is None:
                    raise FrameError("a continuation frame without a message to continue")
            elif self._fragmentsOpcode is not None:
                raise FrameError("a new message before the last one ended")
            else:
                self._fragmentsOpcode = opcode
            self._fragments.append(payload)
            if sum(map(len, self._fragments)) > self.maxLength:
                raise FrameError(f"a message over the limit of {self.maxLength} bytes")
            if final:
                message = (self._fragmentsOpcode, b"".join(self._fragments))
                self._fragments, self._fragmentsOpcode = [], None
                return message

    def _popFrame(self) -> tuple[bool, int, bytes] | None:
        buffer = self._buffer
        if len(buffer) < 2:
            return None
        first, second = buffer[0], buffer[1]
        if first & 0x70:
            raise FrameError("reserved bits set (no extension was agreed)")
        if second & 0x80:
            raise FrameError("a masked frame from the server")
        length, offset = second & 0x7F, 2
        if length == 126:
            if len(buffer) < 4:
                return None
            (length,), offset = struct.unpack_from("!H", buffer, 2), 4
        elif length == 127:
            if len(buffer) < 10:
                return None
            (length,), offset = struct.unpack_from("!Q", buffer, 2), 10
        if length > self.maxLength:
            raise FrameError(f"a frame over the limit of {self.maxLength} bytes")
        if len(buffer) < offset + length:
            return None
        payload = bytes(buffer[offset : offset + length])
        del buffer[: offset + length]
        return bool(first & 0x80), first & 0x0F, payload


def closeReason(payload: bytes) -> tuple[int | None, str]:
    """
    The code and reason of a close frame's payload.
    """
    if len(payload) < 2:
        return None, ""
    return struct.unpack("!H", payload[:2])[0], payload[2:].decode("utf-8", errors="replace")
