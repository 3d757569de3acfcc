"""
The blocking client (Part 12, exercise 5): what C{xform transform} and
C{xform transforms} run, without a reactor.  Each scheme's record in
L{gateway.schemes} names its functions here: maintained blocking libraries
where there are some (C{websockets.sync.client} for WebSocket,
C{http.client} for HTTP), the project's own framing only for netstrings
(L{protocols.netstringwire}) and AMP.  The messages are those of the
asynchronous clients (L{protocols.jsonrpc}, L{protocols.httpwire}, ...).
Each function imports its library when it runs, so that a command pays only
for the protocol it speaks.

Each function speaks its protocol over TLS when given an C{ssl.SSLContext}
(L{tlsContext}), which verifies the server's certificate and that it names
the URL's host: C{ssl} wraps the socket of netstrings and AMP, and
C{websockets} and C{http.client} take the context.  (Importing C{ssl} costs
a command nothing: C{twisted.python.usage}, which every command imports,
has loaded it already.)

Every failure is a L{ClientError} that says what went wrong in words.
"""

from __future__ import annotations

import errno
import re
import socket
import ssl
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

from protocols.listing import listedTransforms
from protocols.netstringwire import NetstringDecoder, NetstringError, encodeNetstring, encodeRequest
from service.errors import BadRequest, TransformError

if TYPE_CHECKING:
    from gateway.urls import ServerURL

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


def tlsContext(caFile: str | None = None) -> ssl.SSLContext:
    """
    The TLS settings of the blocking clients: the server's certificate must
    be signed by a certificate authority of the system's, or of C{caFile}
    only, and name the host of the server's URL.

    @param caFile: a file of certificates in PEM form, or C{None}.
    @raise ValueError: if C{caFile} cannot be read or holds no certificate.
    """
    try:
        return ssl.create_default_context(cafile=caFile)
    except ssl.SSLError:
        raise ValueError(f"{caFile} holds no certificate in PEM form") from None
    except OSError as error:
        raise ValueError(f"cannot read {caFile}: {error.strerror}") from None


#: What OpenSSL adds around its reason: C{[SSL: CODE] reason (_ssl.c:1006)}.
_OPENSSL_NOISE = re.compile(r"^\[[^]]*\]\s*|\s*\(_ssl\.c:\d+\)$")


def _describeTLSError(error: ssl.SSLError) -> str:
    """
    A TLS failure in words: C{certificate verify failed: <why>} when the
    server's certificate is refused, else OpenSSL's reason
    (C{wrong version number}, for a server that does not speak TLS).
    """
    if isinstance(error, ssl.SSLCertVerificationError):
        return f"certificate verify failed: {error.verify_message}"
    return _OPENSSL_NOISE.sub("", str(error.args[1] if len(error.args) > 1 else error))


@contextmanager
def _socketErrors(server: ServerURL, deadline: _Deadline) -> Iterator[None]:
    """
    Turn every socket, TLS and HTTP error into a L{ClientError} that names
    the server.
    """
    import http.client

    try:
        yield
    except ssl.SSLError as error:
        raise ClientError(f"{server}: TLS failed: {_describeTLSError(error)}") from None
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


def _connect(server: ServerURL, deadline: _Deadline, tls: ssl.SSLContext | None) -> socket.socket:
    """
    A socket connected to C{server}, under C{deadline}; over TLS with
    C{tls}, once the handshake is done.
    """
    sock = socket.create_connection((server.host, server.port), timeout=deadline.remaining())
    if tls is None:
        return sock
    try:
        return tls.wrap_socket(sock, server_hostname=server.host)
    except BaseException:
        sock.close()
        raise


def _closedByPeer(error: OSError) -> bool:
    """
    Whether C{error} means that the server has closed the connection (over
    TLS, perhaps without saying so in TLS).
    """
    closed = (BrokenPipeError, ConnectionResetError, ConnectionAbortedError, ssl.SSLEOFError)
    return isinstance(error, closed) or error.errno == errno.ENOTCONN


def _refused(server: ServerURL, error: TransformError) -> ClientError:
    return ClientError(f"{server}: {error.name}: {error.message}")


def _decodedPoem(server: ServerURL, reply: bytes) -> str:
    try:
        return reply.decode("utf-8")
    except UnicodeDecodeError:
        raise ClientError(f"{server}: the reply is not UTF-8") from None


def _encodedPoem(poem: str) -> bytes:
    try:
        return poem.encode("utf-8")
    except UnicodeEncodeError:
        raise ClientError("the poem is not valid Unicode text") from None


def _listed(server: ServerURL, listing: object) -> list[tuple[str, str]]:
    try:
        return listedTransforms(listing)
    except ValueError as error:
        raise ClientError(f"{server}: unreadable list of transforms: {error}") from None


def transformNetstring(
    server: ServerURL, transform: str, poem: str, timeout: float, tls: ssl.SSLContext | None = None
) -> str:
    """
    Transform over the netstring protocol: send the request, half-close, read
    one netstring.  Over TLS (C{tls}), which cannot half-close, it only
    sends: the gateway answers a whole netstring without waiting for more.
    """
    try:
        request = encodeNetstring(encodeRequest(transform, poem))
    except BadRequest as error:
        raise ClientError(error.message) from None
    deadline = _Deadline(timeout)
    decoder = NetstringDecoder(MAX_REPLY_BYTES)
    payload = None
    with _socketErrors(server, deadline):
        with _connect(server, deadline, tls) as sock:
            try:
                sock.sendall(request)
                if tls is None:
                    sock.shutdown(socket.SHUT_WR)
                while (payload := decoder.pop()) is None:
                    sock.settimeout(deadline.remaining())
                    data = sock.recv(256 * 1024)
                    if not data:
                        break
                    decoder.feed(data)
            except NetstringError as error:
                raise ClientError(f"{server}: unreadable reply: {error}") from None
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


def _requestHTTP(
    server: ServerURL,
    method: str,
    path: str,
    timeout: float,
    tls: ssl.SSLContext | None,
    body: bytes | None = None,
) -> bytes:
    """
    Make one HTTP request to C{path} under the server's own path, on its own
    connection (over TLS with C{tls}).

    @return: the body of a 200 answer.
    @raise ClientError: for any other answer, with the gateway's error.
    """
    import http.client

    from protocols.httpwire import TEXT_PLAIN, errorFromResponse

    headers = {"Connection": "close"}
    if body is not None:
        headers["Content-Type"] = TEXT_PLAIN
    deadline = _Deadline(timeout)
    with _socketErrors(server, deadline):
        if tls is None:
            connection = http.client.HTTPConnection(server.host, server.port, timeout=deadline.remaining())
        else:
            connection = http.client.HTTPSConnection(
                server.host, server.port, timeout=deadline.remaining(), context=tls
            )
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


def transformHTTP(
    server: ServerURL, transform: str, poem: str, timeout: float, tls: ssl.SSLContext | None = None
) -> str:
    """
    Transform over HTTP: C{POST} the poem to C{/transform/<name>}.
    """
    from protocols.httpwire import transformPath

    body = _encodedPoem(poem)
    return _decodedPoem(server, _requestHTTP(server, "POST", transformPath(transform), timeout, tls, body))


def listHTTP(server: ServerURL, timeout: float, tls: ssl.SSLContext | None = None) -> list[tuple[str, str]]:
    """
    The transforms of an HTTP server, as C{(name, description)}: C{GET
    /transforms}.
    """
    import json

    from protocols.httpwire import TRANSFORMS_PATH

    answer = _requestHTTP(server, "GET", TRANSFORMS_PATH, timeout, tls)
    try:
        listing = json.loads(answer)
    except ValueError as error:  # not JSON, or not UTF-8
        raise ClientError(f"{server}: unreadable list of transforms: {error}") from None
    return _listed(server, listing)


#: The id of the one request the WebSocket functions send per connection.
_REQUEST_ID = 1

#: The size of the frames a WebSocket message is sent in.
_FRAME_BYTES = 64 * 1024


def _pieces(message: bytes) -> Iterator[bytes]:
    """
    C{message} in frames of L{_FRAME_BYTES} at most.
    """
    return (message[start : start + _FRAME_BYTES] for start in range(0, max(len(message), 1), _FRAME_BYTES))


def _callWebSocket(
    server: ServerURL, method: str, params: dict | list, timeout: float, tls: ssl.SSLContext | None
) -> object:
    """
    Call one JSON-RPC method over its own WebSocket connection, through
    C{websockets}: the handshake, the request in a text message, its
    answer, the closing handshake.

    @return: the call's result.
    @raise ClientError: when the gateway answers with an error, or not at
        all.
    """
    from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidStatus, ProtocolError
    from websockets.frames import CloseCode
    from websockets.sync.client import connect

    from protocols.jsonrpc import decodeReply, encodeCall

    request = _encodedPoem(encodeCall(method, params, _REQUEST_ID))
    deadline = _Deadline(timeout)
    try:
        with _socketErrors(server, deadline):
            with connect(
                server.withDefaultPath(),
                open_timeout=deadline.remaining(),
                close_timeout=deadline.remaining(),
                max_size=MAX_REPLY_BYTES,
                compression=None,
                proxy=None,
                ssl=tls,
                user_agent_header="xform-gateway",
            ) as websocket:
                # In pieces, so that a refusal from the server (1009, too
                # big) is read as soon as it comes, between two pieces.
                websocket.send(_pieces(request), text=True)
                answer = websocket.recv(timeout=deadline.remaining())
    except InvalidStatus as refused:
        status = refused.response
        raise ClientError(
            f"{server}: the WebSocket handshake was refused: HTTP/1.1 {status.status_code} "
            f"{status.reason_phrase}"
        ) from None
    except InvalidHandshake as error:
        if isinstance(error.__cause__, EOFError):
            raise ClientError(f"{server}: closed the connection during the WebSocket handshake") from None
        raise ClientError(f"{server}: the WebSocket handshake failed: {error}") from None
    except ConnectionClosed as closed:
        if closed.rcvd is None:
            raise ClientError(f"{server}: closed the connection without a reply") from None
        code, reason = closed.rcvd.code, closed.rcvd.reason
        if code == CloseCode.MESSAGE_TOO_BIG:
            raise ClientError(
                f"{server}: the poem is too big for the gateway's WebSocket messages ({code}: {reason})"
            ) from None
        raise ClientError(
            f"{server}: the gateway closed the WebSocket ({code}: {reason or 'no reason given'})"
        ) from None
    except ProtocolError as error:
        raise ClientError(f"{server}: unreadable WebSocket frames: {error}") from None
    try:
        return decodeReply(
            answer if isinstance(answer, str) else answer.decode("utf-8", "replace"), _REQUEST_ID
        )
    except TransformError as error:
        raise _refused(server, error) from None


def transformWebSocket(
    server: ServerURL, transform: str, poem: str, timeout: float, tls: ssl.SSLContext | None = None
) -> str:
    """
    Transform over WebSocket JSON-RPC: one C{transform} call.
    """
    from protocols.jsonrpc import poemOf

    result = _callWebSocket(server, "transform", {"transform": transform, "poem": poem}, timeout, tls)
    try:
        return poemOf(result)
    except TransformError as error:
        raise _refused(server, error) from None


def listWebSocket(
    server: ServerURL, timeout: float, tls: ssl.SSLContext | None = None
) -> list[tuple[str, str]]:
    """
    The transforms of a WebSocket JSON-RPC server, as C{(name,
    description)}: one C{list_transforms} call.
    """
    return _listed(server, _callWebSocket(server, "list_transforms", [], timeout, tls))


#: The tag of the one question the AMP functions ask per connection.
_TAG = b"1"


def _askAMP(
    server: ServerURL,
    command: bytes,
    arguments: list[tuple[bytes, bytes]],
    timeout: float,
    tls: ssl.SSLContext | None,
) -> dict:
    """
    Ask one AMP question and return the answer box, less its C{_answer}.

    @raise ClientError: when the server answers with an error, or not at
        all.
    """
    from protocols.amp.wire import ERRORS_BY_CODE, BoxDecoder, BrokenBox, encodeBox, maxBoxBytes

    request = encodeBox([(b"_ask", _TAG), (b"_command", command), *arguments])
    deadline = _Deadline(timeout)
    decoder = BoxDecoder(maxBoxBytes(MAX_REPLY_BYTES))
    with _socketErrors(server, deadline):
        with _connect(server, deadline, tls) as sock:
            sock.sendall(request)
            while True:
                try:
                    answer = decoder.pop()
                except BrokenBox as error:
                    raise ClientError(f"{server}: unreadable answer: {error}") from None
                if answer is not None and _TAG in (answer.get(b"_answer"), answer.get(b"_error")):
                    break
                if answer is None:
                    sock.settimeout(deadline.remaining())
                    data = sock.recv(256 * 1024)
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


def transformAMP(
    server: ServerURL, transform: str, poem: str, timeout: float, tls: ssl.SSLContext | None = None
) -> str:
    """
    Transform over AMP: one C{Transform} question on its own connection,
    the poem split as the protocol says.
    """
    from protocols.amp.wire import splitValue, takeValue

    try:
        arguments = [(b"transform", transform.encode("utf-8")), *splitValue(b"poem", poem.encode("utf-8"))]
        answer = _askAMP(server, b"Transform", arguments, timeout, tls)
        return takeValue(answer, b"poem").decode("utf-8")
    except ValueError as error:  # a name over 65,535 bytes; an unreadable answer
        raise ClientError(f"{server}: {error}") from None
    except BadRequest as error:
        raise ClientError(f"{server}: unreadable answer: {error.message}") from None


def listAMP(server: ServerURL, timeout: float, tls: ssl.SSLContext | None = None) -> list[tuple[str, str]]:
    """
    The transforms of an AMP server, as C{(name, description)}.
    """
    from protocols.amp.wire import BrokenBox, decodeBoxes, takeValue

    answer = _askAMP(server, b"ListTransforms", [], timeout, tls)
    try:
        entries = decodeBoxes(takeValue(answer, b"transforms"))
        return [(entry[b"name"].decode("utf-8"), entry[b"description"].decode("utf-8")) for entry in entries]
    except (BadRequest, BrokenBox, KeyError, UnicodeDecodeError) as error:
        raise ClientError(f"{server}: unreadable list of transforms: {error!r}") from None
