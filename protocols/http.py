"""
The plain HTTP face of the transform service, and its client.

Routes (every body is UTF-8)::

    POST /transform/<name>   body: the poem (text/plain; charset=utf-8)
                             200 text/plain: the new poem
    GET  /transforms         200 JSON: [{"name": ..., "description": ...}, ...]

C{<name>} is a transform or a pipeline, percent-encoded as any path segment
(C{cummingsify%7Creverse}, though most clients send C{|} as it is).  The
body is read as UTF-8 whatever the C{Content-Type}, unless that names
another charset.

The routes are a plain L{twisted.web} resource tree: the gateway puts them
under its root (L{gateway.web}) next to the page and its own routes, which
answer errors the same way.  Errors answer with a status and a small JSON
body, C{{"error": NAME, "message": "..."}}; the service's errors map by
L{STATUS_CODES}, and the HTTP face adds C{not-found} (404: no such route),
C{method-not-allowed} (405, with C{Allow}), C{forbidden-origin} (403: a
C{POST} from a page that L{protocols.origins} does not allow) and
C{internal-error} (500: a bug of the gateway's, logged).  C{503} also says
C{Retry-After: 1}.

A body over the service's maximum poem size is refused with 413 as soon
as that is known: at the headers when they announce its length (instead of
C{100 Continue}), else once it passes the limit; then the connection
closes, what more comes of the body thrown away (L{ServedChannel}).  A body
is held in memory, never in a file (L{BoundedRequest}).  While the client
leaves its answers unread, its connection reads nothing more.

A connection over the gateway's connection caps is answered C{503
overloaded} with C{Retry-After: 1} and C{Connection: close} as soon as its
request starts to arrive (L{BusyChannel}).  When the gateway stops, idle
keep-alive connections are closed, and every response still to come says
C{Connection: close} (L{ServedChannel}).

The client is L{HTTPTransformProxy}, on treq.  The paths and the reading of
error answers are in L{protocols.httpwire}, shared with the blocking client
of L{gateway.syncclient}.
"""

import json
from collections.abc import Callable
from http import HTTPStatus
from io import BytesIO

from treq.client import HTTPClient
from treq.content import collect
from twisted.internet.defer import CancelledError, Deferred
from twisted.internet.interfaces import IAddress, IReactorTime
from twisted.internet.protocol import Protocol
from twisted.internet.task import Cooperator
from twisted.logger import Logger
from twisted.python.failure import Failure
from twisted.web.client import FileBodyProducer, RequestTransmissionFailed, ResponseNeverReceived
from twisted.web.http import RESPONSES, HTTPChannel
from twisted.web.iweb import UNKNOWN_LENGTH, IAgent, IBodyProducer, IResponse
from twisted.web.resource import Resource
from twisted.web.server import NOT_DONE_YET, Request, Site, UnsupportedMethod
from zope.interface import implementer

from protocols.addresses import describeAddress, peerOf
from protocols.atonce import then
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
from protocols.httpwire import (
    APPLICATION_JSON,
    STATUS_CODES,
    TEXT_PLAIN,
    TRANSFORMS_PATH,
    errorFromResponse,
    transformPath,
)
from protocols.interfaces import ITransformLister
from protocols.listing import listedTransforms, transformsListing
from protocols.observer import OK, UNOBSERVED, IServerObserver, stopwatch
from protocols.origins import OriginPolicy
from service.errors import BadRequest, PoemTooLarge, TransformError, TransformFailed
from service.transformer import Caller, TransformService


def jsonBody(request: Request, value: object, status: int = 200) -> bytes:
    """
    Set C{request}'s status and content type, and return C{value} as the
    JSON body.
    """
    # Twisted's table of reasons lacks some (426 Upgrade Required): Python's has them.
    request.setResponseCode(status, None if status in RESPONSES else HTTPStatus(status).phrase.encode())
    request.setHeader(b"Content-Type", APPLICATION_JSON.encode())
    return json.dumps(value, ensure_ascii=False).encode("utf-8") + b"\n"


def errorBody(request: Request, status: int, name: str, message: str) -> bytes:
    """
    Set C{request}'s status and return the JSON body of an error.
    """
    if status == 503:
        request.setHeader(b"Retry-After", b"1")
    return jsonBody(request, {"error": name, "message": message}, status)


def _finish(request: Request, body: bytes) -> None:
    """
    Answer C{request} with C{body}, its length said, as Twisted does for a
    body a resource returns (rather than in chunks).
    """
    request.setHeader(b"Content-Length", b"%d" % len(body))
    request.write(body)
    request.finish()


class JSONMethodErrors:
    """
    A mixin for resources: a method the resource does not serve is answered
    with 405, an C{Allow} header and a JSON body, rather than Twisted's HTML
    page.
    """

    def render(self, request: Request):
        try:
            if request.method == b"HEAD" and not hasattr(self, "render_GET"):
                # Resource.render_HEAD would call the render_GET it lacks.
                raise UnsupportedMethod(self.servedMethods())
            return super().render(request)
        except UnsupportedMethod as unsupported:
            allowed = {method.decode() for method in unsupported.allowedMethods}
            if "GET" not in allowed:
                allowed.discard("HEAD")  # HEAD is served by render_GET
            allowed = sorted(allowed)
            request.setHeader(b"Allow", ", ".join(allowed).encode())
            return errorBody(
                request,
                405,
                "method-not-allowed",
                f"{request.method.decode(errors='replace')} is not allowed here; use {' or '.join(allowed)}",
            )

    def servedMethods(self) -> list[bytes]:
        """
        The methods this resource has a C{render_<METHOD>} for.
        """
        return [name.removeprefix("render_").encode() for name in dir(self) if name.startswith("render_")]


class ErrorPage(Resource):
    """
    A leaf answering one error to any method, in JSON (the JSON form of
    L{twisted.web.resource.NoResource}).

    @ivar status: the HTTP status.
    @ivar name: the error's name.
    @ivar message: the error's explanation.
    """

    isLeaf = True

    def __init__(self, status: int, name: str, message: str) -> None:
        super().__init__()
        self.status, self.name, self.message = status, name, message

    def render(self, request: Request) -> bytes:
        return errorBody(request, self.status, self.name, self.message)


class NotFound(Resource):
    """
    A leaf answering 404 C{not-found} to any method, naming the path.
    """

    isLeaf = True

    def render(self, request: Request) -> bytes:
        return errorBody(
            request, 404, "not-found", f"nothing at {request.path.decode(errors='replace')[:200]}"
        )


class APIResource(JSONMethodErrors, Resource):
    """
    A resource answering in JSON, its errors included: it has no children
    but itself (for a final C{/}); anything below it is L{NotFound}.
    """

    def getChild(self, path: bytes, request: Request) -> Resource:
        return self if path == b"" else NotFound()


class TransformRoute(APIResource):
    """
    C{/transform}: the parent of L{TransformCall}, which serves every name
    below it; a C{POST} to C{/transform} itself names no transform.

    @ivar call: the child, C{/transform/<name>}.
    """

    def __init__(self, call: "TransformCall") -> None:
        super().__init__()
        self.call = call

    def getChild(self, path: bytes, request: Request) -> Resource:
        return self.call

    def render_POST(self, request: Request) -> bytes:
        return errorBody(request, 404, "not-found", "POST the poem to /transform/<name>")


class TransformCall(APIResource):
    """
    C{POST /transform/<name>}: the body is the poem, the answer the new
    poem.  The name is the rest of the path, C{/} included.  Requests count
    against the service's caps on requests in flight as the requests of
    their connection (the HTTP channel) and of the client's address.

    @ivar service: the transform service called.
    @ivar origins: the pages allowed to post.
    @ivar refusals: where refusals are logged (the web site's).
    @ivar observer: told how each request ended.
    @ivar clock: times the requests.
    """

    log = Logger()
    isLeaf = True

    def __init__(
        self,
        service: TransformService,
        origins: OriginPolicy,
        refusals: Refusals,
        observer: IServerObserver = UNOBSERVED,
        clock: IReactorTime | None = None,
    ) -> None:
        super().__init__()
        self.service = service
        self.origins = origins
        self.refusals = refusals
        self.observer = observer
        self._now = stopwatch(clock)

    def render_POST(self, request: Request):
        started = self._now()
        origin = request.getHeader(b"origin")
        origin = origin.decode("latin-1") if origin is not None else None
        host = request.getHeader(b"host")
        if not self.origins.allows(origin, host and host.decode("latin-1"), request.isSecure()):
            return self._refusal(request, 403, ForbiddenOrigin(self.origins.explain(origin)))
        try:
            name, poem = self._decode(request)
        except BadRequest as error:
            return self._refusal(request, 400, error)
        caller = Caller(peerOf(request.getClientAddress()), request.channel)
        result = self.service.transform(name, poem, caller)
        arguments = (request, name, started)
        pending = then(result, self._answer, self._refuse, arguments, arguments)
        if isinstance(pending, Deferred):  # the answer is still to come
            request.notifyFinish().addErrback(lambda _: pending.cancel())  # the client went away
        return NOT_DONE_YET

    @staticmethod
    def _decode(request: Request) -> tuple[str, str]:
        contentType = (request.getHeader(b"content-type") or b"").decode("latin-1").lower()
        for parameter in contentType.split(";")[1:]:
            key, _, value = parameter.strip().partition("=")
            if key == "charset" and value.strip('"') not in ("utf-8", "utf8"):
                raise BadRequest(f"the poem must be sent as UTF-8, not {value}")
        try:
            # The segment this leaf was found by, and any after it.
            name = "/".join(segment.decode("utf-8") for segment in [*request.prepath[-1:], *request.postpath])
            poem = request.content.read().decode("utf-8")
        except UnicodeDecodeError as error:
            raise BadRequest(f"the request is not valid UTF-8 (byte {error.start} of its part)") from None
        return name, poem

    def _answer(self, poem: str, request: Request, transform: str, started: float) -> None:
        self.observer.requestServed(transform, OK, self._now() - started)
        request.setHeader(b"Content-Type", TEXT_PLAIN.encode())
        _finish(request, poem.encode("utf-8"))

    def _refuse(self, failure: Failure, request: Request, transform: str, started: float) -> None:
        if failure.check(CancelledError):
            return  # the client went away
        if failure.check(TransformError):
            status = STATUS_CODES.get(failure.value.name, 500)
            body = self._refusal(request, status, failure.value, transform, self._now() - started)
        else:
            self.log.failure(
                "http {peer}: while transforming", failure, peer=describeAddress(request.getClientAddress())
            )
            self.observer.requestServed(transform, "internal-error", self._now() - started)
            body = errorBody(request, 500, "internal-error", "the gateway failed; its log tells why")
        _finish(request, body)

    def _refusal(
        self, request: Request, status: int, error: TransformError, transform: str = "", seconds: float = 0.0
    ) -> bytes:
        """
        Count and log the refusal of C{request} with C{error}, and return
        the body of its answer, with C{status}.

        @param transform: the name the request asked for, when it got that
            far.
        @param seconds: how long it took.
        """
        self.observer.requestServed(transform, error.name, seconds)
        logRefusal(
            self.log,
            error,
            "{protocol} {peer}: answering {status} {error}: {reason}",
            refusals=self.refusals,
            protocol="http",
            peer=describeAddress(request.getClientAddress()),
            status=status,
        )
        return errorBody(request, status, error.name, error.message)


class TransformsRoute(APIResource):
    """
    C{GET /transforms}: the service's listing, upstreams' transforms
    included.

    @ivar service: the transform service whose transforms are listed.
    """

    def __init__(self, service: TransformService) -> None:
        super().__init__()
        self.service = service

    def render_GET(self, request: Request):
        listing = self.service.listing()
        request.notifyFinish().addErrback(lambda _: listing.cancel())  # the client went away
        listing.addCallback(lambda entries: _finish(request, jsonBody(request, transformsListing(entries))))
        listing.addErrback(lambda failure: failure.trap(CancelledError))
        return NOT_DONE_YET


class BoundedRequest(Request):
    """
    A request whose body is held in memory, and only up to its site's
    C{maxBodyBytes}; one of a L{ServedChannel}, which stops it at its
    headers when they announce a longer body, and ends it as soon as a
    body in chunks passes the limit.  Such a request is answered with 413
    whatever resource it was for, and its connection closed.  A request
    behind answers the client has not read waits until they are read
    (L{ServedChannel.whenWritable}).  A resource that fails is answered
    with 500 in JSON, and logged.

    @ivar tooLarge: whether its body is over the limit.
    @ivar received: whether the whole request is in (or taken as such).
    """

    log = Logger()

    tooLarge = False
    received = False
    _bodyBytes = 0
    _announced: int | None = None

    def _limit(self) -> int:
        return self.channel.site.maxBodyBytes

    def gotLength(self, length: int | None) -> None:
        """
        Hold the body in memory whatever its length: it is at most the
        limit, where Twisted keeps a body of 100 KB or more in a temporary
        file, a descriptor held for as long as the upload lasts.
        """
        self.content = BytesIO()

    def refuseBody(self, announced: int | None) -> None:
        """
        The body is over the limit (C{announced} by the headers, or
        C{None} when it came in chunks): keep none of it, and answer 413.
        """
        self.tooLarge = True
        self._announced = announced
        self.content = BytesIO()

    def handleContentChunk(self, data: bytes) -> None:
        if self.tooLarge:
            return
        self._bodyBytes += len(data)
        if self._bodyBytes > self._limit():
            self.refuseBody(None)
            return
        super().handleContentChunk(data)

    def requestReceived(self, command: bytes, path: bytes, version: bytes) -> None:
        self.received = True
        super().requestReceived(command, path, version)

    def process(self) -> None:
        self.channel.whenWritable(super().process)

    def render(self, resource: Resource) -> None:
        if self.tooLarge:
            # The body is the poem: its size is known when announced, and
            # only over the limit when it came in chunks.
            known = self._announced is not None
            error = PoemTooLarge.forSize(self._announced if known else self._limit(), self._limit(), known)
            if isinstance(resource, TransformCall):
                resource.observer.requestServed("", error.name, 0.0)
            logRefusal(
                self.log,
                error,
                "{protocol} {peer}: answering {status} {error}: {reason}",
                refusals=self.channel.site.refusals,
                protocol="http",
                peer=describeAddress(self.getClientAddress()),
                status=413,
            )
            resource = ErrorPage(413, error.name, error.message)
        super().render(resource)

    def processingFailed(self, reason: Failure) -> Failure:
        """
        Log why a resource failed and answer 500 in JSON, as every other
        error of the face.
        """
        self.log.failure("while answering {uri}", reason, uri=self.uri)
        _finish(self, errorBody(self, 500, "internal-error", "the gateway failed; its log tells why"))
        return reason


@implementer(IDrainable)
class ServedChannel(HTTPChannel):
    """
    One HTTP connection of a L{WebSite}: counted among the gateway's
    connections and for the site's observer, drained when the gateway
    stops, and bounded for a client that sends too much or reads too
    little:

        - A request whose C{Content-Length} is over the site's
          C{maxBodyBytes} is answered 413 at its headers (instead of
          C{100 Continue} if it expects one), and one whose chunked body
          passes the limit as soon as it does; then the connection closes.
          What more of the body comes in the next L{LINGER} seconds is read
          and thrown away: closing a connection with unread data resets
          it, and a client that sends its whole body before it reads would
          lose the answer.
        - While the transport's write buffer is full (the client does not
          read its answers), nothing more is read from the connection, and
          no request is served until the client has read them: a
          connection holds at most one answer more than the transport's
          buffer.  A client that reads nothing for the idle timeout is cut.

    @ivar site: the L{WebSite} that made it.
    """

    log = Logger()
    site: "WebSite"
    _draining = False
    _received = False
    _grace = None
    _stalled = None
    _transportFull = False
    _discarding = False
    _linger = None
    _secure: bool | None = None

    #: Seconds the rest of a body refused as too large is read and thrown
    #: away before the connection closes.
    LINGER = 5.0

    def __init__(self) -> None:
        super().__init__()
        self._whenWritable: list[Callable[[], object]] = []

    def connectionMade(self) -> None:
        super().connectionMade()
        self.site.opened(self, peerOf(self.transport.getPeer()))

    def dataReceived(self, data: bytes) -> None:
        self._received = True
        self.site.observer.received(len(data))
        if self._discarding:
            return
        super().dataReceived(data)
        self._answerTooLarge()

    def allHeadersReceived(self) -> None:
        """
        The headers of a request are in: refuse a body announced over the
        limit now, before any of it is read (and without the C{100
        Continue} that Twisted sends to a request that expects one).
        """
        if self.length is not None and self.length > self.site.maxBodyBytes:
            self.requests[-1].refuseBody(self.length)
            return
        super().allHeadersReceived()

    def requestDone(self, request: Request) -> None:
        super().requestDone(request)
        self._answerTooLarge()  # a request read from what was waiting behind the one done

    def _answerTooLarge(self) -> None:
        """
        A request whose body is over the limit and not whole yet is
        answered now (413, by L{BoundedRequest.render}), as if its body had
        ended, and the connection closes after the answer: the rest of the
        body is thrown away as it comes (L{loseConnection}).
        """
        if not self.requests:
            return
        request = self.requests[-1]
        if request.tooLarge and not request.received:
            self.persistent = False
            self._discarding = True
            request.responseHeaders.setRawHeaders(b"Connection", [b"close"])
            self.allContentReceived()

    def loseConnection(self) -> None:
        """
        Close the connection once what it has to send is sent; after a body
        refused as too large, only L{LINGER} seconds later (unless the
        client closes first), throwing away what comes until then.
        """
        if self._discarding and self._linger is None:
            self._linger = self.callLater(self.LINGER, super().loseConnection)
            return
        super().loseConnection()

    def whenWritable(self, call: Callable[[], object]) -> None:
        """
        Call C{call} now, or once the client has read the answers that fill
        the transport's write buffer.
        """
        if self._transportFull:
            self._whenWritable.append(call)
        else:
            call()

    def pauseProducing(self) -> None:
        """
        The transport's write buffer is full: read nothing more (Twisted
        only stops reading between requests), serve no request until it
        drains, and cut the connection if it does not drain within the idle
        timeout.
        """
        super().pauseProducing()
        self._transportFull = True
        self.transport.pauseProducing()
        if self._stalled is None and self.timeOut:
            self._stalled = self.callLater(self.timeOut, self._notReading)

    def resumeProducing(self) -> None:
        """
        The client has read its answers: read again, and serve the requests
        that waited.
        """
        super().resumeProducing()
        self._transportFull = False
        self._stopStallTimer()
        self.transport.resumeProducing()
        waiting, self._whenWritable = self._whenWritable, []
        for call in waiting:
            call()

    def _stopStallTimer(self) -> None:
        if self._stalled is not None:
            if self._stalled.active():
                self._stalled.cancel()
            self._stalled = None

    def _notReading(self) -> None:
        self._stopStallTimer()
        self.log.info(
            "http {peer}: read none of its answers for {seconds:g} s; closing the connection",
            peer=describeAddress(self.transport.getPeer()),
            seconds=self.timeOut,
        )
        self.site.observer.idleTimedOut()
        self.transport.abortConnection()

    def writeHeaders(self, version, code, reason, headers) -> None:
        super().writeHeaders(version, code, reason, headers)
        size = len(version) + len(code) + len(reason) + 6  # two spaces, two CRLFs
        for name, values in headers.getAllRawHeaders():
            size += len(values) * (len(name) + 4) + sum(map(len, values))  # name: value CRLF
        self.site.observer.sent(size)

    def isSecure(self) -> bool:
        """
        Whether the connection is over TLS: looked up once, since a
        connection keeps its transport (Twisted looks it up for every
        request that asks).
        """
        if self._secure is None:
            self._secure = super().isSecure()
        return self._secure

    def write(self, data: bytes) -> None:
        self.site.observer.sent(len(data))
        super().write(data)

    def writeSequence(self, iovec) -> None:
        self.site.observer.sent(sum(map(len, iovec)))
        super().writeSequence(iovec)

    def checkPersistence(self, request: Request, version: bytes) -> bool:
        """
        Keep the connection open after C{request}'s response, as HTTP says,
        unless the gateway is stopping: then the response says
        C{Connection: close}.
        """
        if self._draining:
            request.responseHeaders.setRawHeaders(b"Connection", [b"close"])
            return False
        return super().checkPersistence(request, version)

    def handOver(self, protocol: IDrainable) -> None:
        """
        C{protocol} serves this connection from now on (a WebSocket): it
        takes the channel's place among the gateway's connections, and the
        channel no longer counts as an HTTP connection.  It must take the
        channel's place as the transport's producer too.
        """
        self._stopStallTimer()
        self.site.connections.replace(self, protocol)
        self.site.observer.connectionClosed()

    def drain(self) -> None:
        """
        The gateway is stopping: close the connection now if it has no
        request (after L{FIRST_BYTES_GRACE} seconds if it has sent nothing
        yet), else once the requests it has are answered, each response
        not yet begun saying C{Connection: close}.
        """
        self._draining = True
        if self.transport is None:  # taken over by a protocol not counted
            self.site.connections.remove(self)
            return
        if not self.requests:
            if self._received:
                self.loseConnection()
            else:
                self._grace = self.callLater(FIRST_BYTES_GRACE, self._closeIfSilent)
            return
        self.persistent = False
        for request in self.requests:
            if not request.startedWriting:
                request.responseHeaders.setRawHeaders(b"Connection", [b"close"])

    def _closeIfSilent(self) -> None:
        if not self.requests and self.transport is not None:
            self.loseConnection()

    def timeoutConnection(self) -> None:
        if self._transportFull:  # closing would wait for the client to read
            self._notReading()
            return
        self.site.observer.idleTimedOut()
        super().timeoutConnection()

    def connectionLost(self, reason: Failure) -> None:
        super().connectionLost(reason)
        for timer in (self._grace, self._linger):
            if timer is not None and timer.active():
                timer.cancel()
        self._stopStallTimer()
        self._whenWritable = []
        self.site.closed(self)


class BusyChannel(Protocol):
    """
    A connection over the gateway's caps: as soon as its request starts to
    arrive (so that closing does not reset the connection before the
    client reads the answer), it is answered C{503 overloaded}, with
    C{Retry-After: 1} and C{Connection: close}, and closed.  One that says
    nothing within L{GRACE} seconds is closed without an answer.

    @ivar site: the L{WebSite} that refused it.
    """

    GRACE = 1.0
    BODY = b'{"error": "overloaded", "message": "the gateway has too many connections; try again later"}\n'
    ANSWER = (
        b"HTTP/1.1 503 Service Unavailable\r\n"
        b"Content-Type: application/json\r\n"
        b"Retry-After: 1\r\n"
        b"Connection: close\r\n"
        b"Content-Length: %d\r\n\r\n%s" % (len(BODY), BODY)
    )

    def __init__(self, site: "WebSite") -> None:
        self.site = site
        self._answered = False

    def connectionMade(self) -> None:
        self.site.busy += 1
        self._timer = self.site.clock.callLater(self.GRACE, self.transport.abortConnection)

    def dataReceived(self, data: bytes) -> None:
        if not self._answered:
            self._answered = True
            self.transport.write(self.ANSWER)
            self.transport.loseConnection()

    def connectionLost(self, reason: Failure) -> None:
        self.site.busy -= 1
        if self._timer.active():
            self._timer.cancel()


class WebSite(ServingFactory, Site):
    """
    A L{Site} of L{BoundedRequest}s (or of the given C{requestFactory},
    a subclass) on L{ServedChannel}s, that counts its connections in the
    gateway's L{Connections} and answers one over its caps with a
    L{BusyChannel}; at most L{MAX_BUSY} such answers are under way at once,
    and past that a connection over the caps is closed at once.  Its access
    log is not a file: with L{accessLog} on, each request is one C{debug}
    line of C{twisted.logger}, else nothing.  It never reads a body as a
    form: C{request.args} holds the query's arguments only.

    @ivar maxBodyBytes: the largest request body kept.
    @ivar refusals: where the refusals of the site's routes, WebSocket
        included, are logged; what it has not written yet is summed up
        when the site stops.
    @ivar accessLog: whether to log each request.
    @ivar unlogged: the paths whose requests are never written to the
        access log (health checks, scrapes).
    @ivar busy: the L{BusyChannel}s open.
    """

    protocolName = "http"
    protocol = ServedChannel
    requestFactory = BoundedRequest
    noisy = False
    MAX_BUSY = 32

    requestLog = Logger()

    def __init__(
        self,
        resource: Resource,
        maxBodyBytes: int,
        refusals: Refusals | None = None,
        accessLog: bool = False,
        connections: Connections | None = None,
        observer: IServerObserver | None = None,
        unlogged: frozenset[bytes] = frozenset(),
        **kwargs,
    ) -> None:
        """
        @param refusals: where refusals are logged, by default a
            L{Refusals} of its own.
        @param connections: the gateway's connections, with their caps.
        @param observer: told what the HTTP connections serve.
        """
        # No route reads a form: the poem is the body as it is.  Parsing
        # bodies as forms would cost a POST with a Content-Type half its
        # time (Twisted parses the type with the email package), and hold
        # a multipart body's parts in memory.
        super().__init__(resource, parsePOSTFormSubmission=False, **kwargs)
        self.serve(connections, observer)
        self.maxBodyBytes = maxBodyBytes
        self.refusals = refusals if refusals is not None else Refusals(self.clock)
        self.accessLog = accessLog
        self.unlogged = unlogged
        self.busy = 0

    @property
    def clock(self) -> IReactorTime:
        return self.reactor

    def buildProtocol(self, addr: IAddress) -> Protocol | None:
        if self.refused(addr):
            return BusyChannel(self) if self.busy < self.MAX_BUSY else None
        return super().buildProtocol(addr)

    def log(self, request: Request) -> None:
        """
        Log C{request} (once answered) as C{http HOST:PORT: METHOD PATH
        STATUS BYTES}, if L{accessLog} is on and its path is not one of
        L{unlogged}.
        """
        if self.accessLog and request.path not in self.unlogged:
            self.requestLog.debug(
                "http {peer}: {method} {path} {status} {bytes}",
                peer=describeAddress(request.getClientAddress()),
                method=request.method.decode("latin-1"),
                path=request.path.decode("latin-1")[:200],
                status=request.code,
                bytes=request.sentLength,
            )

    def stopFactory(self) -> None:
        self.refusals.flush()
        super().stopFactory()


def httpClient(agent: IAgent, clock: IReactorTime) -> HTTPClient:
    """
    A treq client on C{agent} that writes a request body of bytes on
    C{clock}: treq's default writes it with Twisted's global cooperator,
    on the global reactor whatever reactor the agent uses.  A body that is
    already an L{IBodyProducer} is sent as it is.
    """
    writer = Cooperator(scheduler=lambda work: clock.callLater(0, work))

    def bodyProducer(body: "bytes | IBodyProducer") -> IBodyProducer:
        if IBodyProducer.providedBy(body):
            return body
        return FileBodyProducer(BytesIO(body), cooperator=writer)

    return HTTPClient(agent, data_to_body_producer=bodyProducer)


@implementer(ITransformLister)
class HTTPTransformProxy(ConnectionPerCall):
    """
    Ask a gateway to transform poems over HTTP, one request each, through
    treq.

    With an agent whose connection pool is not persistent (the default of
    L{twisted.web.client.Agent}), each request's connection closes with it,
    so L{disconnect} has nothing to close; a persistent pool is for the
    agent's owner to close.

    @ivar baseURL: the gateway, without a final C{/}.
    @ivar timeout: seconds for each exchange, connecting included.
    @ivar maxReplyBytes: the longest body of an answer accepted.
    """

    def __init__(
        self,
        agent: IAgent,
        baseURL: str,
        clock: IReactorTime,
        timeout: float = 10.0,
        maxReplyBytes: int = MAX_REPLY_BYTES,
    ) -> None:
        """
        @param agent: makes the requests (a L{twisted.web.client.Agent}).
        @param baseURL: the gateway, C{http://host:port}.
        @param clock: measures C{timeout}, and schedules the writes of
            each request's body (see L{httpClient}).
        @param timeout: seconds for each exchange, connecting included.
        @param maxReplyBytes: the longest body of an answer accepted.
        """
        super().__init__(clock, timeout)
        self.baseURL = baseURL.rstrip("/")
        self.maxReplyBytes = maxReplyBytes
        self._http = httpClient(agent, clock)

    def xform(self, transform: str, poem: str) -> "Deferred[str]":
        """
        Transform C{poem} with C{transform} on the gateway.

        @return: a L{Deferred} firing with the new poem, or failing with the
            service's error the gateway reported (chosen by the JSON body,
            else by the status), L{TransformTimeout}, or the connection
            error.
        """
        return self.exchange(self._exchange(transform, poem))

    async def _exchange(self, transform: str, poem: str) -> str:
        try:
            body = poem.encode("utf-8")
        except UnicodeEncodeError:
            raise BadRequest("the poem is not valid Unicode text (it holds a lone surrogate)") from None
        answer = await self._request(
            "POST", transformPath(transform), data=body, headers={"Content-Type": TEXT_PLAIN}
        )
        try:
            return answer.decode("utf-8")
        except UnicodeDecodeError:
            raise TransformFailed("the reply is not UTF-8") from None

    def listTransforms(self) -> "Deferred[list[tuple[str, str]]]":
        """
        The gateway's transforms: C{GET /transforms}.

        @return: a L{Deferred} firing with C{(name, description)} pairs, or
            failing as L{xform} does, or with L{TransformFailed} for an
            answer that is not a list of transforms.
        """
        return self.exchange(self._list())

    async def _list(self) -> list[tuple[str, str]]:
        answer = await self._request("GET", TRANSFORMS_PATH)
        try:
            return listedTransforms(json.loads(answer))
        except ValueError as error:
            raise TransformFailed(f"unreadable list of transforms: {error}") from None

    async def _request(self, method: str, path: str, **options) -> bytes:
        """
        The body of the gateway's answer to C{method} C{path}.

        @raise TransformError: the error the gateway answered with.
        @raise Exception: the reason the connection broke off (a failed TLS
            handshake), or C{ResponseNeverReceived} when it was closed.
        """
        try:
            response = await self._http.request(method, self.baseURL + path, **options)
        except (RequestTransmissionFailed, ResponseNeverReceived) as error:
            # A cancelled request (the deadline, say) fails this way; say so.
            if any(reason.check(CancelledError) for reason in error.reasons):
                raise CancelledError() from None
            for reason in error.reasons:
                if lostToAnError(reason):
                    reason.raiseException()
            raise
        answer = await self._body(response)
        if response.code != 200:
            raise errorFromResponse(response.code, answer)
        return answer

    async def _body(self, response: IResponse) -> bytes:
        """
        The body of C{response}, read as it comes.

        @raise TransformFailed: the body is, or is announced as, longer
            than L{maxReplyBytes}; its connection is closed at once.
        """
        pieces: list[bytes] = []
        received = 0

        def collector(data: bytes) -> None:
            nonlocal received
            received += len(data)
            length = received if response.length is UNKNOWN_LENGTH else max(received, response.length)
            if length > self.maxReplyBytes:
                raise TransformFailed(f"the answer is over this client's limit of {self.maxReplyBytes} bytes")
            pieces.append(data)

        await collect(response, collector)
        return b"".join(pieces)
