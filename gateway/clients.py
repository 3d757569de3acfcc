"""
Asynchronous transform clients, chosen by the scheme of a server URL: what
the poetry client and the upstream transforms talk to other servers with.

Every client is a L{TransformClient}, with two methods:

    - C{xform(transform, poem)} returns a L{Deferred} that fires with the
      new poem or fails with the errors of L{service.errors} (as far as its
      protocol can tell them apart), L{TransformTimeout} when the server is
      too slow, or the connection error;
    - C{disconnect()} releases the client once its owner is done with it:
      it closes whatever connection the client keeps open between calls,
      and returns a L{Deferred} that fires once that is closed.  The AMP
      client keeps its connection open for the next question, so this
      closes it; the netstring, WebSocket and HTTP clients open a
      connection per call and have nothing to close.  Whoever makes a
      client disconnects it when done (C{xform get-poetry} once its poems
      are printed, an upstream when the gateway stops), so that no
      connection is left for the reactor's shutdown to cut.

The AMP client also lists the server's transforms (C{listTransforms()}).
"""

from collections.abc import Callable
from dataclasses import replace
from typing import Protocol

from twisted.internet.defer import Deferred
from twisted.internet.endpoints import HostnameEndpoint
from twisted.internet.error import ConnectionRefusedError
from twisted.python.failure import Failure
from twisted.web.client import Agent

from gateway.urls import WEBSOCKET_PATH, ServerURL
from protocols.amp.client import AMPTransformClient
from protocols.http import HTTPTransformProxy
from protocols.netstring import TransformProxy
from protocols.websocket import WebSocketTransformProxy
from service.errors import TransformError


class TransformClient(Protocol):
    """
    What every client of L{CLIENTS} offers (see above).
    """

    def xform(self, transform: str, poem: str) -> "Deferred[str]": ...

    def disconnect(self) -> "Deferred[None]": ...


def _netstringClient(reactor, server: ServerURL, timeout: float) -> TransformClient:
    return TransformProxy(HostnameEndpoint(reactor, server.host, server.port), reactor, timeout)


def _ampClient(reactor, server: ServerURL, timeout: float) -> TransformClient:
    return AMPTransformClient(HostnameEndpoint(reactor, server.host, server.port), reactor, timeout)


def _webSocketClient(reactor, server: ServerURL, timeout: float) -> TransformClient:
    url = str(replace(server, path=server.path or WEBSOCKET_PATH))
    return WebSocketTransformProxy(HostnameEndpoint(reactor, server.host, server.port), url, reactor, timeout)


def _httpClient(reactor, server: ServerURL, timeout: float) -> TransformClient:
    return HTTPTransformProxy(Agent(reactor), str(server), reactor, timeout)


#: How to make a client for each scheme: (reactor, server, timeout) -> client.
CLIENTS: dict[str, Callable[[object, ServerURL, float], TransformClient]] = {
    "netstring": _netstringClient,
    "amp": _ampClient,
    "ws": _webSocketClient,
    "http": _httpClient,
}


def transformClient(reactor, server: ServerURL, timeout: float = 10.0) -> TransformClient:
    """
    A client for C{server}, over the protocol its scheme names.

    @param timeout: seconds each exchange may take, connecting included.
    @raise ValueError: if no client speaks that scheme.
    """
    try:
        makeClient = CLIENTS[server.scheme]
    except KeyError:
        raise ValueError(
            f"the {server.scheme}:// scheme has no client yet; use {', '.join(CLIENTS)}"
        ) from None
    return makeClient(reactor, server, timeout)


def describeFailure(failure: Failure) -> str:
    """
    Why a client's call (or any connection) failed, in a few words for a
    user: the error's wire name and message for the errors of
    L{service.errors}, C{connection refused}, or the error's own message.
    """
    if failure.check(TransformError):
        return f"{failure.value.name}: {failure.value.message}"
    if failure.check(ConnectionRefusedError):
        return "connection refused"
    return failure.getErrorMessage()
