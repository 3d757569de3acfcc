"""
An independent WebSocket client for the in-memory tests: the C{websockets}
library's own client state machine (its sans-I/O L{ClientProtocol}, which
knows nothing of Twisted or Autobahn) on a Twisted transport, so that it
runs on a L{tests.memory.MemoryNetwork} as well as on a socket.
"""

from twisted.internet.defer import Deferred
from twisted.internet.protocol import Protocol
from twisted.python.failure import Failure
from websockets.client import ClientProtocol
from websockets.frames import Opcode
from websockets.http11 import Response
from websockets.uri import parse_uri

#: An opening handshake for C{/ws}, written by hand: for a client that says
#: nothing more (and answers nothing) once it is in.
UPGRADE = (
    b"GET /ws HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
    b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
)


class WebSocketClient(Protocol):
    """
    Open a WebSocket, send messages, collect the messages that come back.

    @ivar handshake: fires with the server's handshake response (a
        C{websockets} L{Response}: check its C{status_code}) once it has
        come.
    @ivar messages: every message received so far, in order: C{str} for a
        text message, C{bytes} for a binary one.
    @ivar closed: fires once the connection is closed, with the code of the
        server's close frame (or C{None} if it sent none).
    @ivar closeReason: the reason of the server's close frame, if any.
    """

    def __init__(self, url: str, origin: str | None = None, host: str | None = None) -> None:
        """
        @param origin: the C{Origin} header to send, if any.
        @param host: the C{Host} header to send instead of the URL's.
        """
        self._websocket = ClientProtocol(parse_uri(url), max_size=None)
        self._request = self._websocket.connect()
        if origin is not None:
            self._request.headers["Origin"] = origin
        if host is not None:
            del self._request.headers["Host"]
            self._request.headers["Host"] = host
        self.handshake: Deferred[Response] = Deferred()
        self.closed: Deferred[int | None] = Deferred()
        self.closeReason: str | None = None
        self.messages: list[str | bytes] = []
        self._fragments: list[bytes] = []
        self._waiting: list[tuple[int, Deferred]] = []

    def connectionMade(self) -> None:
        self._websocket.send_request(self._request)
        self._write()

    def send(self, message: str | bytes) -> None:
        """
        Send C{message}: a text message for C{str}, a binary one for
        C{bytes}.
        """
        if isinstance(message, str):
            self._websocket.send_text(message.encode("utf-8"))
        else:
            self._websocket.send_binary(message)
        self._write()

    def sendRaw(self, data: bytes) -> None:
        """
        Write C{data} on the connection as it is: frames no library would
        send.
        """
        self.transport.write(data)

    def close(self) -> None:
        """
        Start the closing handshake.
        """
        self._websocket.send_close()
        self._write()

    def received(self, count: int) -> "Deferred[list[str | bytes]]":
        """
        A L{Deferred} firing with the first C{count} messages once they have
        come.
        """
        waiting: Deferred[list[str | bytes]] = Deferred()
        self._waiting.append((count, waiting))
        self._deliver()
        return waiting

    def dataReceived(self, data: bytes) -> None:
        self._websocket.receive_data(data)
        self._takeEvents()
        self._write()

    def connectionLost(self, reason: Failure) -> None:
        self._websocket.receive_eof()
        self._takeEvents()
        if not self.handshake.called:
            self.handshake.errback(reason)
        self.closeReason = self._websocket.close_reason
        self.closed.callback(self._websocket.close_code if self._websocket.close_rcvd else None)

    def _takeEvents(self) -> None:
        for event in self._websocket.events_received():
            if isinstance(event, Response):
                self.handshake.callback(event)
            elif event.opcode in (Opcode.TEXT, Opcode.BINARY, Opcode.CONT):
                if event.opcode is not Opcode.CONT:
                    self._binary = event.opcode is Opcode.BINARY
                self._fragments.append(event.data)
                if event.fin:
                    message = b"".join(self._fragments)
                    self._fragments = []
                    self.messages.append(message if self._binary else message.decode("utf-8"))
        self._deliver()

    def _deliver(self) -> None:
        for count, waiting in list(self._waiting):
            if len(self.messages) >= count:
                self._waiting.remove((count, waiting))
                waiting.callback(self.messages[:count])

    def _write(self) -> None:
        for data in self._websocket.data_to_send():
            if data:
                self.transport.write(data)
            else:
                self.transport.loseConnection()  # the end of the stream
