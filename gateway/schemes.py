"""
The URL schemes of transform servers, one L{Scheme} record each, in
L{SCHEMES}: every table that depends on the scheme reads it (parsing a
server's URL in L{gateway.urls}, the asynchronous clients of
L{gateway.clients}, the blocking commands C{xform transform} and C{xform
transforms}, the tests).  Adding a scheme is adding a record here, and its
clients below it.

A scheme over TLS (C{netstrings://}, C{amps://}, C{wss://}, C{https://})
will be one more record each, its factories wrapping the same protocols in
TLS; a flag and a C{--ca-file} for them would be fields of the record and
options of the commands.

The records name everything they need without importing it: each
asynchronous factory imports its protocol when it is called, and the
blocking calls of L{gateway.syncclient} import their libraries when they
run, so that a command pays only for the protocol it speaks.
"""

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from gateway import syncclient

if TYPE_CHECKING:
    from gateway.urls import ServerURL
    from protocols.interfaces import ITransformClient


@dataclass(frozen=True)
class Scheme:
    """
    How to reach a transform server over one protocol.

    @ivar name: the scheme, as URLs spell it (C{amp}).
    @ivar defaultPort: the port when the URL names none.
    @ivar listener: the listener of C{xform serve} that serves it.
    @ivar makeClient: C{(reactor, server, timeout) -> client}: the
        asynchronous client (an L{ITransformClient}).
    @ivar transform: C{(server, name, poem, timeout) -> poem}: one blocking
        transform (L{gateway.syncclient}).
    @ivar listTransforms: C{(server, timeout) -> [(name, description)]}:
        the blocking listing of the server's transforms, or C{None} if the
        protocol has no way to ask.
    @ivar cannotList: why it cannot list them, when it cannot.
    @ivar path: the path when the URL names none.
    """

    name: str
    defaultPort: int
    listener: str
    makeClient: "Callable[[object, ServerURL, float], ITransformClient]"
    transform: "Callable[[ServerURL, str, str, float], str]"
    listTransforms: "Callable[[ServerURL, float], list[tuple[str, str]]] | None" = None
    cannotList: str = ""
    path: str = ""

    @property
    def form(self) -> str:
        """
        The form of its URLs, for messages: C{ws://HOST:PORT/ws}.
        """
        return f"{self.name}://HOST:PORT{self.path}"


def _hostEndpoint(reactor, server: "ServerURL"):
    from twisted.internet.endpoints import HostnameEndpoint

    return HostnameEndpoint(reactor, server.host, server.port)


def _netstringClient(reactor, server: "ServerURL", timeout: float) -> "ITransformClient":
    from protocols.netstring import TransformProxy

    return TransformProxy(_hostEndpoint(reactor, server), reactor, timeout)


def _ampClient(reactor, server: "ServerURL", timeout: float) -> "ITransformClient":
    from protocols.amp.client import AMPTransformClient

    return AMPTransformClient(_hostEndpoint(reactor, server), reactor, timeout)


def _webSocketClient(reactor, server: "ServerURL", timeout: float) -> "ITransformClient":
    from protocols.websocket import WebSocketTransformProxy

    return WebSocketTransformProxy(_hostEndpoint(reactor, server), server.withDefaultPath(), reactor, timeout)


def _httpClient(reactor, server: "ServerURL", timeout: float) -> "ITransformClient":
    from twisted.web.client import Agent

    from protocols.http import HTTPTransformProxy

    return HTTPTransformProxy(Agent(reactor), str(server), reactor, timeout)


#: Every scheme, by name, in the order messages list them.
SCHEMES: dict[str, Scheme] = {
    scheme.name: scheme
    for scheme in [
        Scheme(
            "netstring",
            10001,
            listener="netstring",
            makeClient=_netstringClient,
            transform=syncclient.transformNetstring,
            cannotList="the netstring protocol has no request for the list of transforms",
        ),
        Scheme(
            "amp",
            10002,
            listener="amp",
            makeClient=_ampClient,
            transform=syncclient.transformAMP,
            listTransforms=syncclient.listAMP,
        ),
        Scheme(
            "ws",
            8080,
            listener="web",
            makeClient=_webSocketClient,
            transform=syncclient.transformWebSocket,
            listTransforms=syncclient.listWebSocket,
            path="/ws",
        ),
        Scheme(
            "http",
            8080,
            listener="web",
            makeClient=_httpClient,
            transform=syncclient.transformHTTP,
            listTransforms=syncclient.listHTTP,
        ),
    ]
}
