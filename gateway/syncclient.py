"""
The synchronous client (Part 12, exercise 5): plain blocking sockets, no
reactor.  Each scheme of L{gateway.urls} that it speaks has one function
here, taking the server, the transform, the poem and a timeout in seconds.
"""

import socket
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from gateway.urls import ServerURL
from protocols.netstring import NetstringDecoder, NetstringError, encodeNetstring, encodeRequest
from service.errors import BadRequest

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
def _connection(server: ServerURL, deadline: _Deadline) -> Iterator[socket.socket]:
    """
    A connected socket whose blocking calls end with C{deadline}, with every
    socket error turned into a L{ClientError} that names the server.
    """
    try:
        with socket.create_connection((server.host, server.port), timeout=deadline.remaining()) as sock:
            yield sock
    except TimeoutError:
        raise ClientError(f"{server}: no reply within {deadline.seconds:g} seconds") from None
    except ConnectionRefusedError:
        raise ClientError(f"{server}: connection refused (is the gateway running?)") from None
    except socket.gaierror as error:
        raise ClientError(f"{server}: cannot resolve {server.host!r}: {error.strerror}") from None
    except OSError as error:
        raise ClientError(f"{server}: {error.strerror or error}") from None


def _receive(sock: socket.socket, deadline: _Deadline) -> bytes:
    sock.settimeout(deadline.remaining())
    return sock.recv(256 * 1024)


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
        sock.sendall(request)
        sock.shutdown(socket.SHUT_WR)
        while True:
            try:
                payload = decoder.pop()
            except NetstringError as error:
                raise ClientError(f"{server}: unreadable reply: {error}") from None
            if payload is not None:
                break
            data = _receive(sock, deadline)
            if not data:
                raise ClientError(
                    f"{server}: closed the connection without a reply; the netstring protocol "
                    "does not say why (an unknown transform, a poem over the limit, a failed "
                    "transform or a timeout: the gateway's log tells)"
                )
            decoder.feed(data)
    try:
        return payload.decode("utf-8")
    except UnicodeDecodeError:
        raise ClientError(f"{server}: the reply is not UTF-8") from None


#: The transform function of each scheme this client speaks.
TRANSFORMERS: dict[str, Callable[[ServerURL, str, str, float], str]] = {
    "netstring": transformNetstring,
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
