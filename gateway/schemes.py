"""
The URL schemes of transform servers, one L{Scheme} record each, in
L{SCHEMES}: every table that depends on the scheme reads it (parsing a
server's URL in L{gateway.urls}, the asynchronous clients of
L{gateway.clients}, the blocking commands C{xform transform} and C{xform
transforms}, the tests).  Adding a scheme is adding a record here, and its
clients below it.

Each protocol has a scheme over TLS too -- C{netstrings://}, C{amps://},
C{wss://}, C{https://} -- whose record has L{Scheme.tls} set and the same
clients: the asynchronous ones connect through the same endpoint wrapped in
TLS (C{wrapClientTLS}, C{optionsForClientTLS}; an C{Agent} whose
C{BrowserLikePolicyForHTTPS} trusts the same root, for HTTP), the blocking
ones are given an C{ssl.SSLContext}.  The server's certificate is verified
against the system's certificate authorities, or those of C{--ca-file}
only, and must name the host of the URL; nothing turns that off.

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
    from twisted.internet.interfaces import IStreamClientEndpoint

    from gateway.urls import ServerURL
    from protocols.interfaces import ITransformClient


@dataclass(frozen=True)
class Scheme:
    """
    How to reach a transform server over one protocol.

    @ivar name: the scheme, as URLs spell it (C{amp}).
    @ivar defaultPort: the port when the URL names none.
    @ivar listener: the listener of C{xform serve} that serves it.
    @ivar makeClient: C{(reactor, server, timeout, trustRoot) -> client}:
        the asynchronous client (an L{ITransformClient}); C{trustRoot}
        verifies the server's certificate over TLS: the certificate
        authorities of C{trustRootFromCertificates}, or C{None} for the
        system's.
    @ivar transform: C{(server, name, poem, timeout, tls) -> poem}: one
        blocking transform (L{gateway.syncclient}); C{tls} is the
        C{ssl.SSLContext} of a scheme over TLS, else C{None}.
    @ivar listTransforms: C{(server, timeout, tls) -> [(name,
        description)]}: the blocking listing of the server's transforms, or
        C{None} if the protocol has no way to ask.
    @ivar cannotList: why it cannot list them, when it cannot.
    @ivar path: the path when the URL names none.
    @ivar tls: whether it speaks its protocol over TLS.
    """

    name: str
    defaultPort: int
    listener: str
    makeClient: "Callable[[object, ServerURL, float, object], ITransformClient]"
    transform: "Callable[..., str]"
    listTransforms: "Callable[..., list[tuple[str, str]]] | None" = None
    cannotList: str = ""
    path: str = ""
    tls: bool = False

    @property
    def form(self) -> str:
        """
        The form of its URLs, for messages: C{ws://HOST:PORT/ws}.
        """
        return f"{self.name}://HOST:PORT{self.path}"


def _hostEndpoint(reactor, server: "ServerURL", trustRoot: object) -> "IStreamClientEndpoint":
    """
    The endpoint that reaches C{server}: a L{HostnameEndpoint}, wrapped in
    TLS for a scheme over TLS, with the server's certificate verified
    against C{trustRoot} (the system's if C{None}) and for the URL's host.
    """
    from twisted.internet.endpoints import HostnameEndpoint, wrapClientTLS

    endpoint = HostnameEndpoint(reactor, server.host, server.port)
    if not SCHEMES[server.scheme].tls:
        return endpoint
    from twisted.internet.ssl import optionsForClientTLS

    return wrapClientTLS(optionsForClientTLS(server.host, trustRoot), endpoint)


def _netstringClient(reactor, server: "ServerURL", timeout: float, trustRoot) -> "ITransformClient":
    from protocols.netstring import TransformProxy

    return TransformProxy(_hostEndpoint(reactor, server, trustRoot), reactor, timeout)


def _ampClient(reactor, server: "ServerURL", timeout: float, trustRoot) -> "ITransformClient":
    from protocols.amp.client import AMPTransformClient

    return AMPTransformClient(_hostEndpoint(reactor, server, trustRoot), reactor, timeout)


def _webSocketClient(reactor, server: "ServerURL", timeout: float, trustRoot) -> "ITransformClient":
    from protocols.websocket import WebSocketTransformProxy

    return WebSocketTransformProxy(
        _hostEndpoint(reactor, server, trustRoot), server.withDefaultPath(), reactor, timeout
    )


def _httpClient(reactor, server: "ServerURL", timeout: float, trustRoot) -> "ITransformClient":
    from twisted.web.client import Agent, BrowserLikePolicyForHTTPS

    from protocols.http import HTTPTransformProxy

    agent = Agent(reactor, contextFactory=BrowserLikePolicyForHTTPS(trustRoot))
    return HTTPTransformProxy(agent, str(server), reactor, timeout)


def _schemes(name: str, port: int, tlsName: str, tlsPort: int, **fields) -> list[Scheme]:
    """
    The records of one protocol: in the clear as C{name}, and over TLS as
    C{tlsName}, with the same clients.
    """
    return [Scheme(name, port, **fields), Scheme(tlsName, tlsPort, tls=True, **fields)]


#: Every scheme, by name, in the order messages list them: each protocol in
#: the clear, then over TLS.
SCHEMES: dict[str, Scheme] = {
    scheme.name: scheme
    for scheme in [
        *_schemes(
            "netstring",
            10001,
            "netstrings",
            10001,
            listener="netstring",
            makeClient=_netstringClient,
            transform=syncclient.transformNetstring,
            cannotList="the netstring protocol has no request for the list of transforms",
        ),
        *_schemes(
            "amp",
            10002,
            "amps",
            10002,
            listener="amp",
            makeClient=_ampClient,
            transform=syncclient.transformAMP,
            listTransforms=syncclient.listAMP,
        ),
        *_schemes(
            "ws",
            8080,
            "wss",
            8443,
            listener="web",
            makeClient=_webSocketClient,
            transform=syncclient.transformWebSocket,
            listTransforms=syncclient.listWebSocket,
            path="/ws",
        ),
        *_schemes(
            "http",
            8080,
            "https",
            8443,
            listener="web",
            makeClient=_httpClient,
            transform=syncclient.transformHTTP,
            listTransforms=syncclient.listHTTP,
        ),
    ]
}

#: The schemes over TLS, for messages: C{netstrings://, amps://, ...}.
TLS_URLS = ", ".join(f"{scheme.name}://" for scheme in SCHEMES.values() if scheme.tls)
