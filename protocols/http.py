"""
The plain HTTP face of the gateway, and its client.

Routes (every body is UTF-8)::

    POST /transform/<name>   body: the poem (text/plain; charset=utf-8)
                             200 text/plain: the new poem
    GET  /transforms         200 JSON: [{"name": ..., "description": ...}, ...]
    GET  /healthz            200 JSON: {"status": "ok"}
    GET  /poems              200 JSON: [{"name": "science", "title": "Sonnet - To Science"}, ...]
    GET  /poems/<name>       200 text/plain: the poem

C{<name>} is a transform or a pipeline, percent-encoded as any path segment
(C{cummingsify%7Creverse}, though most clients send C{|} as it is).  The
body is read as UTF-8 whatever the C{Content-Type}, unless that names
another charset.

Errors answer with a status and a small JSON body, C{{"error": NAME,
"message": "..."}}; the service's errors map by L{STATUS_CODES}, and the
HTTP face adds C{not-found} (404: no such route or poem),
C{method-not-allowed} (405) and C{forbidden-origin} (403: a C{POST} from a
page that L{protocols.origins} does not allow).  C{503} also says
C{Retry-After: 1}.

A body over the service's maximum poem size is refused with 413 once it
passes the limit; the rest of it is read and thrown away, never stored
(L{BoundedRequest}).

The client is L{HTTPTransformProxy}; L{transformPath}, L{TRANSFORMS_PATH} and
L{errorFromResponse} serve the blocking client of L{gateway.syncclient} as
well.
"""

import json
from collections.abc import Mapping
from io import BytesIO
from urllib.parse import quote

from twisted.internet.defer import CancelledError, Deferred
from twisted.internet.interfaces import IReactorTime
from twisted.logger import Logger
from twisted.python.failure import Failure
from twisted.web.client import FileBodyProducer, ResponseNeverReceived, readBody
from twisted.web.http_headers import Headers
from twisted.web.iweb import IAgent
from twisted.web.resource import Resource
from twisted.web.server import NOT_DONE_YET, Request, Site, UnsupportedMethod

from protocols.common import ConnectionPerCall, transformsListing
from protocols.origins import OriginPolicy
from service.deadline import withDeadline
from service.errors import ERRORS_BY_NAME, BadRequest, PoemTooLarge, TransformError, TransformFailed
from service.transformer import TransformService

TEXT_PLAIN = "text/plain; charset=utf-8"
APPLICATION_JSON = "application/json"

#: The HTTP status of each service error, by the error's name.
STATUS_CODES = {
    "unknown-transform": 404,
    "bad-request": 400,
    "poem-too-large": 413,
    "transform-failed": 500,
    "timeout": 504,
    "overloaded": 503,
}

#: The service error each of those statuses stands for, for the client.
_ERRORS_BY_STATUS = {status: ERRORS_BY_NAME[name] for name, status in STATUS_CODES.items()}

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


#: The path that lists the transforms.
TRANSFORMS_PATH = "/transforms"


def transformPath(name: str) -> str:
    """
    The path to C{POST} a poem to for the transform C{name}.
    """
    return "/transform/" + quote(name, safe="")


def errorFromResponse(status: int, body: bytes) -> TransformError:
    """
    The service error an HTTP error response stands for: the class its
    JSON body names, else one fitting the status.
    """
    try:
        document = json.loads(body)
        name, message = document["error"], str(document["message"])
    except (ValueError, TypeError, KeyError):
        name, message = None, body[:200].decode("utf-8", errors="replace")
    errorClass = ERRORS_BY_NAME.get(name)
    if errorClass is not None:
        return errorClass(message)
    errorClass = _ERRORS_BY_STATUS.get(status, BadRequest if 400 <= status < 500 else TransformFailed)
    return errorClass(f"HTTP {status}: {message}")


def _writeJSON(request: Request, value: object, status: int = 200) -> bytes:
    request.setResponseCode(status)
    request.setHeader(b"Content-Type", APPLICATION_JSON.encode())
    return json.dumps(value, ensure_ascii=False).encode("utf-8") + b"\n"


def errorBody(request: Request, status: int, name: str, message: str) -> bytes:
    """
    Set C{request}'s status and return the JSON body of an error.
    """
    if status == 503:
        request.setHeader(b"Retry-After", b"1")
    return _writeJSON(request, {"error": name, "message": message}, status)


class APIResource(Resource):
    """
    A resource answering in JSON, its errors included: a method it does not
    serve gets 405 with an C{Allow} header.
    """

    def render(self, request: Request):
        try:
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

    def getChild(self, path: bytes, request: Request) -> Resource:
        return self if path == b"" else NotFound()


class NotFound(APIResource):
    """
    404 for any method.
    """

    isLeaf = True

    def render(self, request: Request) -> bytes:
        return errorBody(
            request, 404, "not-found", f"nothing at {request.path.decode(errors='replace')[:200]}"
        )


class ErrorPage(APIResource):
    """
    One fixed error for any method.

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


class TransformResource(APIResource):
    """
    C{POST /transform/<name>}: the body is the poem, the answer the new
    poem.

    @ivar service: the transform service called.
    @ivar origins: the pages allowed to post.
    """

    log = Logger()
    isLeaf = True

    def __init__(self, service: TransformService, origins: OriginPolicy) -> None:
        super().__init__()
        self.service = service
        self.origins = origins

    def render_POST(self, request: Request):
        origin = request.getHeader(b"origin")
        origin = origin.decode("latin-1") if origin is not None else None
        host = request.getHeader(b"host")
        if not self.origins.allows(origin, host and host.decode("latin-1"), request.isSecure()):
            return errorBody(request, 403, "forbidden-origin", self.origins.explain(origin))
        if not request.postpath:
            return errorBody(request, 404, "not-found", "POST the poem to /transform/<name>")
        try:
            name, poem = self._decode(request)
        except BadRequest as error:
            return errorBody(request, 400, error.name, error.message)
        result = self.service.transform(name, poem)
        request.notifyFinish().addErrback(lambda _: result.cancel())  # the client went away
        result.addCallbacks(self._answer, self._refuse, callbackArgs=(request,), errbackArgs=(request,))
        return NOT_DONE_YET

    @staticmethod
    def _decode(request: Request) -> tuple[str, str]:
        contentType = (request.getHeader(b"content-type") or b"").decode("latin-1").lower()
        for parameter in contentType.split(";")[1:]:
            key, _, value = parameter.strip().partition("=")
            if key == "charset" and value.strip('"') not in ("utf-8", "utf8"):
                raise BadRequest(f"the poem must be sent as UTF-8, not {value}")
        try:
            name = "/".join(segment.decode("utf-8") for segment in request.postpath)
            poem = request.content.read().decode("utf-8")
        except UnicodeDecodeError as error:
            raise BadRequest(f"the request is not valid UTF-8 (byte {error.start} of its part)") from None
        return name, poem

    def _answer(self, poem: str, request: Request) -> None:
        request.setHeader(b"Content-Type", TEXT_PLAIN.encode())
        request.write(poem.encode("utf-8"))
        request.finish()

    def _refuse(self, failure: Failure, request: Request) -> None:
        if failure.check(CancelledError):
            return  # the client went away
        if failure.check(TransformError):
            error = failure.value
            status, name, message = STATUS_CODES.get(error.name, 500), error.name, error.message
        else:
            self.log.failure("while transforming for {peer}", failure, peer=request.getClientAddress())
            status, name, message = 500, "internal-error", "the gateway failed; its log tells why"
        request.write(errorBody(request, status, name, message))
        request.finish()


class TransformsResource(APIResource):
    """
    C{GET /transforms}: the catalogue.

    @ivar service: the transform service whose catalogue is listed.
    """

    def __init__(self, service: TransformService) -> None:
        super().__init__()
        self.service = service

    def render_GET(self, request: Request) -> bytes:
        return _writeJSON(request, transformsListing(self.service))


class HealthResource(APIResource):
    """
    C{GET /healthz}: 200 while the gateway serves.
    """

    def render_GET(self, request: Request) -> bytes:
        return _writeJSON(request, {"status": "ok"})


def poemTitle(poem: str) -> str:
    """
    A poem's title: its first line that is not blank.
    """
    return next((line.strip() for line in poem.splitlines() if line.strip()), "")


class PoemsResource(APIResource):
    """
    C{GET /poems} and C{GET /poems/<name>}: the bundled poems.  A name is
    only ever looked up among the poems given, never joined to a path.

    @ivar poems: the poems by name.
    """

    isLeaf = True

    def __init__(self, poems: Mapping[str, str]) -> None:
        super().__init__()
        self.poems = poems

    def render_GET(self, request: Request) -> bytes:
        path = [segment.decode("utf-8", errors="replace") for segment in request.postpath]
        if path in ([], [""]):
            return _writeJSON(
                request, [{"name": name, "title": poemTitle(poem)} for name, poem in self.poems.items()]
            )
        if len(path) == 1 and path[0] in self.poems:
            request.setHeader(b"Content-Type", TEXT_PLAIN.encode())
            return self.poems[path[0]].encode("utf-8")
        return errorBody(request, 404, "not-found", f"no poem called {'/'.join(path)[:100]!r}")


class BoundedRequest(Request):
    """
    A request whose body is kept only up to its site's C{maxBodyBytes}.
    Past that the body is discarded as it arrives, and the request is
    answered with 413 whatever resource it was for.  Every response carries
    L{SECURITY_HEADERS}.
    """

    _bodyBytes = 0
    _tooLarge = False

    def _limit(self) -> int:
        return self.channel.site.maxBodyBytes

    def gotLength(self, length: int | None) -> None:
        if length is not None and length > self._limit():
            self._tooLarge = True
            length = 0
        super().gotLength(length)

    def handleContentChunk(self, data: bytes) -> None:
        if self._tooLarge:
            return
        self._bodyBytes += len(data)
        if self._bodyBytes > self._limit():
            self._tooLarge = True
            self.content.close()
            self.content = BytesIO()
            return
        super().handleContentChunk(data)

    def process(self) -> None:
        for name, value in SECURITY_HEADERS.items():
            self.setHeader(name, value)
        super().process()

    def render(self, resource: Resource) -> None:
        if self._tooLarge:
            resource = ErrorPage(
                413,
                PoemTooLarge.name,
                f"the request body is over the limit of {self._limit()} bytes",
            )
        super().render(resource)


class WebSite(Site):
    """
    A L{Site} of L{BoundedRequest}s.

    @ivar maxBodyBytes: the largest request body kept.
    """

    requestFactory = BoundedRequest
    noisy = False

    def __init__(self, resource: Resource, maxBodyBytes: int, **kwargs) -> None:
        super().__init__(resource, **kwargs)
        self.maxBodyBytes = maxBodyBytes


class HTTPTransformProxy(ConnectionPerCall):
    """
    Ask a gateway to transform poems over HTTP, one request each.

    With an agent whose connection pool is not persistent (the default of
    L{twisted.web.client.Agent}), each request's connection closes with it,
    so L{disconnect} has nothing to close; a persistent pool is for the
    agent's owner to close.

    @ivar agent: makes the requests.
    @ivar baseURL: the gateway, without a final C{/}.
    @ivar timeout: seconds for each exchange, connecting included.
    """

    def __init__(self, agent: IAgent, baseURL: str, clock: IReactorTime, timeout: float = 10.0) -> None:
        """
        @param agent: makes the requests (a L{twisted.web.client.Agent}).
        @param baseURL: the gateway, C{http://host:port}.
        @param clock: measures C{timeout}.
        @param timeout: seconds for each exchange, connecting included.
        """
        self.agent = agent
        self.baseURL = baseURL.rstrip("/")
        self.timeout = timeout
        self._clock = clock

    def xform(self, transform: str, poem: str) -> "Deferred[str]":
        """
        Transform C{poem} with C{transform} on the gateway.

        @return: a L{Deferred} firing with the new poem, or failing with the
            service's error the gateway reported (chosen by the JSON body,
            else by the status), L{TransformTimeout}, or the connection
            error.
        """
        exchange = Deferred.fromCoroutine(self._exchange(transform, poem))
        return withDeadline(exchange, self.timeout, self._clock, "no reply")

    async def _exchange(self, transform: str, poem: str) -> str:
        try:
            body = poem.encode("utf-8")
        except UnicodeEncodeError:
            raise BadRequest("the poem is not valid Unicode text (it holds a lone surrogate)") from None
        try:
            response = await self.agent.request(
                b"POST",
                (self.baseURL + transformPath(transform)).encode("ascii"),
                Headers({b"Content-Type": [TEXT_PLAIN.encode()]}),
                FileBodyProducer(BytesIO(body)),
            )
        except ResponseNeverReceived as error:
            # A cancelled request (the deadline, say) fails this way; say so.
            if any(reason.check(CancelledError) for reason in error.reasons):
                raise CancelledError() from None
            raise
        answer = await readBody(response)
        if response.code != 200:
            raise errorFromResponse(response.code, answer)
        try:
            return answer.decode("utf-8")
        except UnicodeDecodeError:
            raise TransformFailed("the reply is not UTF-8") from None
