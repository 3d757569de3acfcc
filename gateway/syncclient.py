"""
The synchronous client (Part 12, exercise 5): plain blocking sockets, no
reactor.  Each scheme of L{gateway.urls} that it speaks has one function
here, taking the server, the transform, the poem and a timeout in seconds,
and, for the schemes that can list the transforms, one that lists them.
"""

import base64
import errno
import http.client
import json
import os
import socket
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from gateway.urls import WEBSOCKET_PATH, ServerURL, urlForm
from protocols.amp.wire import (
    ERRORS_BY_CODE,
    BoxDecoder,
    BrokenBox,
    decodeBoxes,
    encodeBox,
    maxBoxBytes,
    splitValue,
    takeValue,
)
from protocols.common import listedTransforms
from protocols.http import TEXT_PLAIN, TRANSFORMS_PATH, errorFromResponse, transformPath
from protocols.jsonrpc import decodeReply, encodeCall
from protocols.netstring import NetstringDecoder, NetstringError, encodeNetstring, encodeRequest
from protocols.websocket import (
    CLOSE_MESSAGE_TOO_BIG,
    CLOSE_NORMAL,
    OP_CLOSE,
    OP_PING,
    OP_PONG,
    OP_TEXT,
    FrameDecoder,
    FrameError,
    acceptKey,
    closeReason,
    encodeFrame,
    handshakeRequest,
    poemOf,
)
from service.errors import BadRequest, TransformError

#: The largest reply the client accepts, in bytes.
MAX_REPLY_BYTES = 64 * 1024 * 1024


class ClientError(Exception):
    """
    A failure to report to the user, already put in words.
    """


class _Deadline:
    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self._end = time.monotonic() + seconds

    def remaining(self) -> float:
        left = self._end - time.monotonic()
        if left <= 0:
            raise TimeoutError
        return left


@contextmanager
def _socketErrors(server: ServerURL, deadline: _Deadline) -> Iterator[None]:
    """
    Turn every socket and HTTP error into a L{ClientError} that names the
    server.
    """
    try:
        yield
    except http.client.HTTPException as error:
        raise ClientError(f"{server}: not a valid HTTP reply ({error!r})") from None
    except TimeoutError:
        raise ClientError(f"{server}: no reply within {deadline.seconds:g} seconds") from None
    except ConnectionRefusedError:
        raise ClientError(f"{server}: connection refused (is the gateway running?)") from None
    except socket.gaierror as error:
        raise ClientError(f"{server}: cannot resolve {server.host!r}: {error.strerror}") from None
    except OSError as error:
        raise ClientError(f"{server}: {error.strerror or error}") from None


@contextmanager
def _connection(server: ServerURL, deadline: _Deadline) -> Iterator[socket.socket]:
    """
    A connected socket whose blocking calls end with C{deadline}, with every
    socket error turned into a L{ClientError} that names the server.
    """
    with _socketErrors(server, deadline):
        with socket.create_connection((server.host, server.port), timeout=deadline.remaining()) as sock:
            yield sock


def _receive(sock: socket.socket, deadline: _Deadline) -> bytes:
    sock.settimeout(deadline.remaining())
    return sock.recv(256 * 1024)


def _closedByPeer(error: OSError) -> bool:
    """
    Whether C{error} means that the server has closed the connection.
    """
    return isinstance(error, (BrokenPipeError, ConnectionResetError, ConnectionAbortedError)) or (
        error.errno == errno.ENOTCONN
    )


def _popNetstring(server: ServerURL, decoder: NetstringDecoder) -> bytes | None:
    try:
        return decoder.pop()
    except NetstringError as error:
        raise ClientError(f"{server}: unreadable reply: {error}") from None


def transformNetstring(server: ServerURL, transform: str, poem: str, timeout: float) -> str:
    """
    Transform over the netstring protocol: send the request, half-close, read
    one netstring.
    """
    try:
        request = encodeNetstring(encodeRequest(transform, poem))
    except BadRequest as error:
        raise ClientError(error.message) from None
    deadline = _Deadline(timeout)
    decoder = NetstringDecoder(MAX_REPLY_BYTES)
    with _connection(server, deadline) as sock:
        try:
            sock.sendall(request)
            sock.shutdown(socket.SHUT_WR)
            while (payload := _popNetstring(server, decoder)) is None:
                data = _receive(sock, deadline)
                if not data:
                    break
                decoder.feed(data)
        except OSError as error:
            # The server reads the whole request before it answers, so a
            # close while sending (or a reset) is a refusal, like a clean
            # close without a reply.
            if not _closedByPeer(error):
                raise
            payload = None
    if payload is None:
        raise ClientError(
            f"{server}: closed the connection without a reply; the netstring protocol "
            "does not say why (an unknown transform, a poem over the limit, a failed "
            "transform or a timeout: the gateway's log tells)"
        )
    return _decodedPoem(server, payload)


def _decodedPoem(server: ServerURL, reply: bytes) -> str:
    try:
        return reply.decode("utf-8")
    except UnicodeDecodeError:
        raise ClientError(f"{server}: the reply is not UTF-8") from None


def _refused(server: ServerURL, error: TransformError) -> ClientError:
    return ClientError(f"{server}: {error.name}: {error.message}")


def _listed(server: ServerURL, listing: object) -> list[tuple[str, str]]:
    try:
        return listedTransforms(listing)
    except ValueError as error:
        raise ClientError(f"{server}: unreadable list of transforms: {error}") from None


def _requestHTTP(
    server: ServerURL, method: str, path: str, timeout: float, body: bytes | None = None
) -> bytes:
    """
    Make one HTTP request to C{path} under the server's own path, on its own
    connection.

    @return: the body of a 200 answer.
    @raise ClientError: for any other answer, with the gateway's error.
    """
    headers = {"Connection": "close"}
    if body is not None:
        headers["Content-Type"] = TEXT_PLAIN
    deadline = _Deadline(timeout)
    with _socketErrors(server, deadline):
        connection = http.client.HTTPConnection(server.host, server.port, timeout=deadline.remaining())
        try:
            connection.request(method, server.path.rstrip("/") + path, body=body, headers=headers)
            connection.sock.settimeout(deadline.remaining())
            response = connection.getresponse()
            answer = response.read(MAX_REPLY_BYTES + 1)
        finally:
            connection.close()
    if len(answer) > MAX_REPLY_BYTES:
        raise ClientError(f"{server}: the reply is over {MAX_REPLY_BYTES} bytes")
    if response.status != 200:
        raise _refused(server, errorFromResponse(response.status, answer))
    return answer


def transformHTTP(server: ServerURL, transform: str, poem: str, timeout: float) -> str:
    """
    Transform over HTTP: C{POST} the poem to C{/transform/<name>}.
    """
    try:
        body = poem.encode("utf-8")
    except UnicodeEncodeError:
        raise ClientError("the poem is not valid Unicode text") from None
    return _decodedPoem(server, _requestHTTP(server, "POST", transformPath(transform), timeout, body))


def listHTTP(server: ServerURL, timeout: float) -> list[tuple[str, str]]:
    """
    The transforms of an HTTP server, as C{(name, description)}: C{GET
    /transforms}.
    """
    answer = _requestHTTP(server, "GET", TRANSFORMS_PATH, timeout)
    try:
        listing = json.loads(answer)
    except ValueError as error:  # not JSON, or not UTF-8
        raise ClientError(f"{server}: unreadable list of transforms: {error}") from None
    return _listed(server, listing)


def _openWebSocket(sock: socket.socket, server: ServerURL, path: str, deadline: _Deadline) -> bytes:
    """
    Do the opening handshake on C{sock}; return the bytes received after it.
    """
    key = base64.b64encode(os.urandom(16)).decode("ascii")
    sock.sendall(handshakeRequest(server.host, server.port, path, key))
    received = b""
    while b"\r\n\r\n" not in received:
        if len(received) > 64 * 1024:
            raise ClientError(f"{server}: the handshake reply has no end")
        data = _receive(sock, deadline)
        if not data:
            raise ClientError(f"{server}: closed the connection during the WebSocket handshake")
        received += data
    head, _, rest = received.partition(b"\r\n\r\n")
    statusLine, *headerLines = head.decode("latin-1").split("\r\n")
    if statusLine.split(" ")[1:2] != ["101"]:
        raise ClientError(f"{server}: the WebSocket handshake was refused: {statusLine}")
    headers = {
        name.strip().lower(): value.strip()
        for name, _, value in (line.partition(":") for line in headerLines)
    }
    if headers.get("sec-websocket-accept") != acceptKey(key):
        raise ClientError(f"{server}: the handshake reply does not accept this client's key")
    return rest


def _describeClose(payload: bytes) -> str:
    code, reason = closeReason(payload)
    if code == CLOSE_MESSAGE_TOO_BIG:
        return f"the poem is too big for the gateway's WebSocket messages ({code}: {reason})"
    return f"the gateway closed the WebSocket ({code}: {reason or 'no reason given'})"


#: The id of the one request the WebSocket functions send per connection.
_REQUEST_ID = 1


def _callWebSocket(server: ServerURL, method: str, params: dict | list, timeout: float) -> object:
    """
    Call one JSON-RPC method over its own WebSocket connection: the
    handshake, the request in a text message, its answer, the closing
    handshake.

    @return: the call's result.
    @raise ClientError: when the gateway answers with an error, or not at
        all.
    """
    try:
        request = encodeCall(method, params, _REQUEST_ID).encode("utf-8")
    except UnicodeEncodeError:
        raise ClientError("the poem is not valid Unicode text") from None
    deadline = _Deadline(timeout)
    decoder = FrameDecoder(MAX_REPLY_BYTES)
    with _connection(server, deadline) as sock:
        decoder.feed(_openWebSocket(sock, server, server.path or WEBSOCKET_PATH, deadline))
        try:
            sock.sendall(encodeFrame(OP_TEXT, request, os.urandom(4)))
        except OSError as error:
            # The gateway refuses a message too big as soon as its header
            # arrives, and may drop the connection before the rest is sent:
            # its close frame, already received, says why.
            if not _closedByPeer(error):
                raise
        while True:
            try:
                message = decoder.pop()
            except FrameError as error:
                raise ClientError(f"{server}: unreadable WebSocket frames: {error}") from None
            if message is None:
                data = _receive(sock, deadline)
                if not data:
                    raise ClientError(f"{server}: closed the connection without a reply")
                decoder.feed(data)
            elif message[0] == OP_CLOSE:
                raise ClientError(f"{server}: {_describeClose(message[1])}")
            elif message[0] == OP_PING:
                sock.sendall(encodeFrame(OP_PONG, message[1], os.urandom(4)))
            elif message[0] == OP_TEXT:
                break
        sock.sendall(encodeFrame(OP_CLOSE, CLOSE_NORMAL.to_bytes(2, "big"), os.urandom(4)))
    try:
        return decodeReply(message[1].decode("utf-8", errors="replace"), _REQUEST_ID)
    except TransformError as error:
        raise _refused(server, error) from None


def transformWebSocket(server: ServerURL, transform: str, poem: str, timeout: float) -> str:
    """
    Transform over WebSocket JSON-RPC: one C{transform} call.
    """
    result = _callWebSocket(server, "transform", {"transform": transform, "poem": poem}, timeout)
    try:
        return poemOf(result)
    except TransformError as error:
        raise _refused(server, error) from None


def listWebSocket(server: ServerURL, timeout: float) -> list[tuple[str, str]]:
    """
    The transforms of a WebSocket JSON-RPC server, as C{(name,
    description)}: one C{list_transforms} call.
    """
    return _listed(server, _callWebSocket(server, "list_transforms", [], timeout))


#: The tag of the one question the AMP functions ask per connection.
_TAG = b"1"


def _askAMP(server: ServerURL, command: bytes, arguments: list[tuple[bytes, bytes]], timeout: float) -> dict:
    """
    Ask one AMP question and return the answer box, less its C{_answer}.

    @raise ClientError: when the server answers with an error, or not at
        all.
    """
    request = encodeBox([(b"_ask", _TAG), (b"_command", command), *arguments])
    deadline = _Deadline(timeout)
    decoder = BoxDecoder(maxBoxBytes(MAX_REPLY_BYTES))
    with _connection(server, deadline) as sock:
        sock.sendall(request)
        while True:
            try:
                answer = decoder.pop()
            except BrokenBox as error:
                raise ClientError(f"{server}: unreadable answer: {error}") from None
            if answer is not None and _TAG in (answer.get(b"_answer"), answer.get(b"_error")):
                break
            if answer is None:
                data = _receive(sock, deadline)
                if not data:
                    raise ClientError(f"{server}: closed the connection without an answer")
                decoder.feed(data)
    if answer.get(b"_error") == _TAG:
        code = answer.get(b"_error_code", b"")
        description = answer.get(b"_error_description", b"").decode("utf-8", "replace")
        error = ERRORS_BY_CODE.get(code)
        if error is not None:
            raise _refused(server, error(description))
        raise ClientError(f"{server}: {code.decode('ascii', 'replace')}: {description}")
    del answer[b"_answer"]
    return answer


def transformAMP(server: ServerURL, transform: str, poem: str, timeout: float) -> str:
    """
    Transform over AMP: one C{Transform} question on its own connection,
    the poem split as the protocol says.
    """
    try:
        arguments = [(b"transform", transform.encode("utf-8")), *splitValue(b"poem", poem.encode("utf-8"))]
        answer = _askAMP(server, b"Transform", arguments, timeout)
        return takeValue(answer, b"poem").decode("utf-8")
    except ValueError as error:  # a name over 65,535 bytes; an unreadable answer
        raise ClientError(f"{server}: {error}") from None
    except BadRequest as error:
        raise ClientError(f"{server}: unreadable answer: {error.message}") from None


def listAMP(server: ServerURL, timeout: float) -> list[tuple[str, str]]:
    """
    The transforms of an AMP server, as C{(name, description)}.
    """
    answer = _askAMP(server, b"ListTransforms", [], timeout)
    try:
        entries = decodeBoxes(takeValue(answer, b"transforms"))
        return [(entry[b"name"].decode("utf-8"), entry[b"description"].decode("utf-8")) for entry in entries]
    except (BadRequest, BrokenBox, KeyError, UnicodeDecodeError) as error:
        raise ClientError(f"{server}: unreadable list of transforms: {error!r}") from None


#: The transform function of each scheme this client speaks.
TRANSFORMERS: dict[str, Callable[[ServerURL, str, str, float], str]] = {
    "netstring": transformNetstring,
    "ws": transformWebSocket,
    "http": transformHTTP,
    "amp": transformAMP,
}

#: The listing function of each scheme that can list the transforms.
LISTERS: dict[str, Callable[[ServerURL, float], list[tuple[str, str]]]] = {
    "amp": listAMP,
    "ws": listWebSocket,
    "http": listHTTP,
}

#: Why a scheme cannot list the transforms, when it never will.
_CANNOT_LIST = {
    "netstring": "the netstring protocol has no request for the list of transforms",
}


def transform(server: ServerURL, name: str, poem: str, timeout: float) -> str:
    """
    Transform C{poem} with the transform C{name} on C{server}, blocking.

    @raise ClientError: on every failure, with the reason in words.
    """
    try:
        transformer = TRANSFORMERS[server.scheme]
    except KeyError:
        raise ClientError(
            f"the {server.scheme}:// scheme is not supported yet; use {', '.join(TRANSFORMERS)}"
        ) from None
    return transformer(server, name, poem, timeout)


def listTransforms(server: ServerURL, timeout: float) -> list[tuple[str, str]]:
    """
    The transforms C{server} offers, as C{(name, description)}, blocking.

    @raise ClientError: on every failure, with the reason in words, and for
        a scheme that cannot list them.
    """
    try:
        lister = LISTERS[server.scheme]
    except KeyError:
        reason = _CANNOT_LIST.get(server.scheme, f"the {server.scheme}:// scheme cannot list them yet")
        others = ", ".join(map(urlForm, LISTERS))
        raise ClientError(f"{server}: cannot list the transforms: {reason}; use {others}") from None
    return lister(server, timeout)
