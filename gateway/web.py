"""
The web face: one L{twisted.web} site serving the page, the WebSocket
JSON-RPC endpoint and the HTTP routes, all over the shared service, as a
plain resource tree::

    /                   the page and its files (gateway/static/)
    /ws                 WebSocket JSON-RPC 2.0 (L{protocols.websocket})
    /transform/<name>   POST a poem (L{protocols.http})
    /transforms         the catalogue as JSON (L{protocols.http})
    /poems              the bundled poems: [{"name": ..., "title": ...}, ...]
    /poems/<name>       one poem, text/plain
    /healthz            liveness: {"status": "ok"}
    /readyz             readiness: 200 {"status": "ready"}, or 503
                        {"status": "unready", "reasons": [...]}
    /metrics            the gateway's metrics (L{gateway.metrics})

The health, readiness and metrics routes are never written to the access
log: a load balancer and a scraper ask them all the time.

Every error of every route, a path that leads nowhere under the page's
files included, is answered in JSON as L{protocols.http} describes, and
every response carries L{SECURITY_HEADERS}.
"""

from collections.abc import Callable, Mapping
from pathlib import Path

from twisted.web.resource import Resource
from twisted.web.server import Request
from twisted.web.static import File

from gateway.metrics import GatewayMetrics, MetricsPage
from protocols.common import Refusals
from protocols.connections import Connections
from protocols.http import (
    APIResource,
    BoundedRequest,
    ErrorPage,
    JSONMethodErrors,
    NotFound,
    TransformCall,
    TransformRoute,
    TransformsRoute,
    WebSite,
    errorBody,
    jsonBody,
)
from protocols.httpwire import TEXT_PLAIN
from protocols.observer import UNOBSERVED
from protocols.origins import OriginPolicy
from protocols.websocket import (
    IDLE_TIMEOUT,
    PING_INTERVAL,
    TransformWebSocketFactory,
    TransformWebSocketResource,
)
from service.transformer import TransformService

#: Says why the gateway is not ready for more work: nothing if it is.
Readiness = Callable[[], list[str]]

#: The paths never written to the access log.
UNLOGGED = frozenset([b"/healthz", b"/readyz", b"/metrics"])

#: The page's files, shipped inside the package.
STATIC = Path(__file__).resolve().parent / "static"

#: The headers of every response: no content sniffing, no framing by
#: other sites, no referrer leaking poems, scripts only from the gateway.
SECURITY_HEADERS = {
    b"X-Content-Type-Options": b"nosniff",
    b"Referrer-Policy": b"no-referrer",
    b"Content-Security-Policy": (
        b"default-src 'self'; connect-src 'self'; img-src 'self' data:; "
        b"frame-ancestors 'none'; base-uri 'none'; form-action 'none'"
    ),
}


class PageRequest(BoundedRequest):
    """
    A request of the web face: every response carries L{SECURITY_HEADERS}.
    """

    def process(self) -> None:
        for name, value in SECURITY_HEADERS.items():
            self.setHeader(name, value)
        super().process()


class StaticFiles(JSONMethodErrors, File):
    """
    The page's files, with the face's JSON errors: 404 for a file that is
    not there (a name with a NUL byte included, which the system refuses to
    look up), 403 for one that may not be read, 405 for a method other
    than C{GET} or C{HEAD}.
    """

    childNotFound = NotFound()
    forbidden = ErrorPage(403, "forbidden", "that file may not be read")

    def getChild(self, path: bytes, request: Request) -> Resource:
        if b"\0" in path:
            return self.childNotFound
        return super().getChild(path, request)


class Health(APIResource):
    """
    C{GET /healthz}: 200 while the gateway's process runs its reactor.
    """

    def render_GET(self, request: Request) -> bytes:
        return jsonBody(request, {"status": "ok"})


class Ready(APIResource):
    """
    C{GET /readyz}: 200 while the gateway is ready for more work, else 503
    with the reasons.

    @ivar readiness: says why the gateway is not ready, if it is not.
    """

    def __init__(self, readiness: Readiness) -> None:
        super().__init__()
        self.readiness = readiness

    def render_GET(self, request: Request) -> bytes:
        reasons = self.readiness()
        if reasons:
            return jsonBody(request, {"status": "unready", "reasons": reasons}, 503)
        return jsonBody(request, {"status": "ready"})


class OperationsRoot(APIResource):
    """
    The root of the C{--metrics} site, which has nothing but its children.
    """

    def render_GET(self, request: Request) -> bytes:
        return errorBody(request, 404, "not-found", "nothing here but /metrics, /healthz and /readyz")


def _alwaysReady() -> list[str]:
    return []


def _healthRoutes(root: Resource, readiness: Readiness, metrics: GatewayMetrics | None) -> None:
    root.putChild(b"healthz", Health())
    root.putChild(b"readyz", Ready(readiness))
    if metrics is not None:
        root.putChild(b"metrics", MetricsPage(metrics))


def poemTitle(poem: str) -> str:
    """
    A poem's title: its first line that is not blank.
    """
    return next((line.strip() for line in poem.splitlines() if line.strip()), "")


class Poems(APIResource):
    """
    C{GET /poems}: the bundled poems, each name with its title; its children
    are the poems.  A name is only ever looked up among the poems given,
    never joined to a path.

    @ivar poems: the poems by name.
    """

    def __init__(self, poems: Mapping[str, str]) -> None:
        super().__init__()
        self.poems = poems

    def render_GET(self, request: Request) -> bytes:
        return jsonBody(
            request, [{"name": name, "title": poemTitle(poem)} for name, poem in self.poems.items()]
        )

    def getChild(self, path: bytes, request: Request) -> Resource:
        if path == b"":
            return self
        poem = self.poems.get(path.decode("utf-8", errors="replace"))
        if poem is None:
            return ErrorPage(404, "not-found", f"no poem called {path.decode(errors='replace')[:100]!r}")
        return Poem(poem)


class Poem(APIResource):
    """
    C{GET /poems/<name>}: one poem, as text.  Nothing is below it.

    @ivar poem: the poem.
    """

    def __init__(self, poem: str) -> None:
        super().__init__()
        self.poem = poem

    def getChild(self, path: bytes, request: Request) -> Resource:
        return NotFound()

    def render_GET(self, request: Request) -> bytes:
        request.setHeader(b"Content-Type", TEXT_PLAIN.encode())
        return self.poem.encode("utf-8")


def makeSite(
    service: TransformService,
    poems: Mapping[str, str],
    origins: OriginPolicy,
    reactor=None,
    idleTimeout: float = 60.0,
    accessLog: bool = False,
    connections: Connections | None = None,
    metrics: GatewayMetrics | None = None,
    readiness: Readiness = _alwaysReady,
    webSocketIdleTimeout: float = IDLE_TIMEOUT,
    pingInterval: float = PING_INTERVAL,
) -> WebSite:
    """
    The web face's site.

    @param poems: the poems served at C{/poems}, by name.
    @param origins: the pages allowed to use C{/ws} and to post.
    @param reactor: runs the timers, times the requests and sums up the
        refusals (the global one if C{None}).
    @param idleTimeout: seconds an HTTP connection may stay silent, or
        read none of its answers; and seconds a WebSocket client has to
        answer a ping or a close frame.
    @param accessLog: whether to log each request, at C{debug}.
    @param connections: the gateway's connections, with their caps.
    @param metrics: what the HTTP and WebSocket connections report to, and
        serves C{/metrics}; without it, there is no C{/metrics}.
    @param readiness: what C{/readyz} says.
    @param webSocketIdleTimeout: seconds a WebSocket may receive no message
        while it has no request in flight.
    @param pingInterval: seconds between the pings on each WebSocket.
    """
    if reactor is None:
        from twisted.internet import reactor
    refusals = Refusals(reactor)
    http = metrics.protocols["http"] if metrics is not None else None
    ws = metrics.protocols["ws"] if metrics is not None else None
    webSockets = TransformWebSocketFactory(
        service,
        origins,
        refusals,
        reactor,
        connections=connections,
        observer=ws,
        idleTimeout=webSocketIdleTimeout,
        peerTimeout=idleTimeout,
        pingInterval=pingInterval,
    )
    root = StaticFiles(str(STATIC))
    root.putChild(b"ws", TransformWebSocketResource(webSockets))
    call = TransformCall(service, origins, refusals, http or UNOBSERVED, reactor)
    root.putChild(b"transform", TransformRoute(call))
    root.putChild(b"transforms", TransformsRoute(service))
    root.putChild(b"poems", Poems(poems))
    _healthRoutes(root, readiness, metrics)
    site = WebSite(
        root,
        maxBodyBytes=service.limits.maxPoemBytes,
        refusals=refusals,
        accessLog=accessLog,
        connections=connections,
        observer=http,
        unlogged=UNLOGGED,
        requestFactory=PageRequest,
        reactor=reactor,
    )
    site.timeOut = idleTimeout
    return site


def makeMetricsSite(metrics: GatewayMetrics, readiness: Readiness, reactor=None) -> WebSite:
    """
    The site of C{--metrics}: C{/metrics}, C{/healthz} and C{/readyz}
    alone, for a scraper or a load balancer kept apart from the clients.
    Its connections count against no cap, and for no protocol.
    """
    root = OperationsRoot()
    _healthRoutes(root, readiness, metrics)
    return WebSite(root, maxBodyBytes=0, unlogged=UNLOGGED, reactor=reactor)
