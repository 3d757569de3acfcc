"""
The HTTP face in memory: the gateway's real web site on a
L{MemoryNetwork}, requested with treq on a real L{Agent}, and with
requests written by hand (read back by C{http.client}) where a path must
go out exactly as written; deadlines on the network's fake clock.  The
page's files over a real socket, since Twisted's web server sends a file
on the global reactor; the rest over real sockets in
L{tests.test_loopback} and, against a real gateway,
L{tests.test_web_process}.
"""

import json
import os
import re
import shutil
import tempfile
from pathlib import Path

import treq
from twisted.internet import reactor
from twisted.internet.defer import Deferred, succeed
from twisted.internet.endpoints import TCP4ClientEndpoint, connectProtocol, serverFromString
from twisted.internet.protocol import Protocol
from twisted.trial.unittest import SynchronousTestCase, TestCase
from twisted.web.iweb import UNKNOWN_LENGTH, IBodyProducer
from twisted.web.resource import Resource
from zope.interface import implementer

from gateway.poems import loadPoems
from gateway.web import makeSite
from protocols.http import errorFromResponse
from protocols.origins import OriginPolicy
from service import (
    BadRequest,
    Limits,
    Overloaded,
    PoemTooLarge,
    TransformFailed,
    TransformService,
    TransformTimeout,
    UnknownTransform,
    transforms,
)
from tests.helpers import POEMS, ROOT, captureLogs, misbehavingCatalogue
from tests.memory import HOST, Collector, MemoryTestCase, readResponse, treqClient

MAX_POEM_BYTES = 64 * 1024
TEXT = {"Content-Type": "text/plain; charset=utf-8"}


#: Where the web site listens, in memory.
WEB = 8080


class HTTPTestCase(MemoryTestCase):
    """
    The gateway's web site in memory, serving the checkout's poems, asked
    with treq on a real L{Agent} and, where a path must go out exactly as
    written, with bytes written by hand; deadlines on the network's fake
    clock.
    """

    limits = Limits(maxPoemBytes=MAX_POEM_BYTES, deadline=0.5)
    origins = OriginPolicy(["https://poems.example.org"])

    def setUp(self):
        super().setUp()
        self.service = TransformService(misbehavingCatalogue(self.reactor), self.reactor, self.limits)
        self.site = makeSite(self.service, self.poems(), self.origins, self.reactor)
        self.network.listen(WEB, self.site)
        self.address = f"{HOST}:{WEB}"
        self.http = treqClient(self.reactor)

    def poems(self):
        return loadPoems(ROOT / "poems")

    def url(self, path):
        return f"http://{self.address}{path}"

    def result(self, deferred):
        return self.successResultOf(self.network.run(deferred))

    def request(self, method, path, **kwargs):
        return self.result(self.http.request(method, self.url(path), **kwargs))

    def post(self, name, body, **kwargs):
        kwargs.setdefault("headers", TEXT)
        return self.request("POST", f"/transform/{name}", data=body, **kwargs)

    def text(self, response, encoding="ISO-8859-1"):
        return self.result(response.text(encoding))

    def json(self, response):
        return self.result(response.json())

    def assertError(self, response, status, name):
        """
        C{response} has C{status} and a JSON body naming the error C{name}
        with a message in words.
        """
        body = self.json(response)
        self.assertEqual((response.code, body["error"]), (status, name), body)
        self.assertTrue(body["message"])
        self.assertEqual(response.headers.getRawHeaders("content-type"), ["application/json"])
        return body

    def exactly(self, method, path, body=None, headers=()):
        """
        Send C{path} exactly as written, as C{http.client} writes a request,
        and read the response with C{http.client}; the status and the body.
        """
        lines = [f"{method} {path} HTTP/1.1", f"Host: {self.address}", "Connection: close"]
        lines += [f"{name}: {value}" for name, value in headers]
        if body is not None:
            lines.append(f"Content-Length: {len(body)}")
        collect = Collector("\r\n".join([*lines, "", ""]).encode("latin-1") + (body or b""))
        connectProtocol(TCP4ClientEndpoint(self.reactor, HOST, WEB), collect)
        response = readResponse(self.result(collect.done))
        return response.status, response.read()


class TransformRouteTests(HTTPTestCase):
    def test_transform(self):
        response = self.post("cummingsify", b"HELLO WORLD")
        self.assertEqual(response.code, 200)
        self.assertEqual(response.headers.getRawHeaders("content-type"), ["text/plain; charset=utf-8"])
        self.assertEqual(self.text(response), "hello world")

    def test_pipelineAndNonASCII(self):
        poem = POEMS["alla_sera"]
        response = self.post("titlecase%7Creverse", poem.encode("utf-8"))
        self.assertEqual(self.text(response, "utf-8"), transforms.reverse(transforms.titlecase(poem)))

    def test_pipeAsItIs(self):
        status, body = self.exactly("POST", "/transform/cummingsify|reverse", b"A\nB")
        self.assertEqual((status, body), (200, b"b\na"))

    def test_anyContentTypeIsText(self):
        """
        curl's default form type, or none at all, is read as UTF-8 text.
        """
        response = self.post("rot13", b"abc", headers={"Content-Type": "application/x-www-form-urlencoded"})
        self.assertEqual(self.text(response), "nop")
        status, body = self.exactly("POST", "/transform/rot13", b"abc")
        self.assertEqual((status, body), (200, b"nop"))

    def test_emptyPoem(self):
        response = self.post("reverse", b"")
        self.assertEqual((response.code, self.text(response)), (200, ""))

    def test_largestPoem(self):
        poem = "É" * (MAX_POEM_BYTES // 2)
        response = self.post("cummingsify", poem.encode("utf-8"))
        self.assertEqual(self.text(response, "utf-8"), poem.lower())

    def test_unknownTransform(self):
        body = self.assertError(self.post("nope", b"a"), 404, "unknown-transform")
        self.assertEqual(body["message"], "unknown transform 'nope'")

    def test_badRequests(self):
        self.assertError(self.post("rot13%7C%7Crot13", b"a"), 400, "bad-request")
        self.assertError(self.post("", b"a"), 400, "bad-request")
        self.assertError(self.post("rot13", b"\xff\xfe"), 400, "bad-request")
        latin1 = {"Content-Type": "text/plain; charset=ISO-8859-1"}
        body = self.assertError(self.post("rot13", "è".encode("latin-1"), headers=latin1), 400, "bad-request")
        self.assertIn("UTF-8", body["message"])
        self.assertError(self.post("%FF", b"a"), 400, "bad-request")

    def test_poemTooLarge(self):
        """
        A body over the limit is refused with 413, by its Content-Length or,
        chunked, once it passes the limit.
        """
        self.assertError(self.post("rot13", b"x" * (MAX_POEM_BYTES + 1)), 413, "poem-too-large")
        body = self.assertError(self.post("rot13", b"x" * (5 * 1024 * 1024)), 413, "poem-too-large")
        self.assertEqual(
            body["message"],
            f"the poem is 5,242,880 bytes; this gateway accepts at most {MAX_POEM_BYTES:,} (--max-poem-bytes)",
        )

        def chunks():
            for _ in range(20):
                yield b"x" * 8192

        chunked = self.request("POST", "/transform/rot13", data=_Chunked(chunks()), headers=TEXT)
        body = self.assertError(chunked, 413, "poem-too-large")
        self.assertEqual(
            body["message"],
            f"the poem is over {MAX_POEM_BYTES:,} bytes; this gateway accepts at most {MAX_POEM_BYTES:,} "
            "(--max-poem-bytes)",
        )

    def test_chunkedPoem(self):
        response = self.request("POST", "/transform/rot13", data=_Chunked([b"ab", b"c"]), headers=TEXT)
        self.assertEqual(self.text(response), "nop")

    def test_transformFailed(self):
        self.assertError(self.post("explode", b"a"), 500, "transform-failed")
        self.assertEqual(len(self.flushLoggedErrors(ZeroDivisionError)), 1)
        self.assertError(self.post("number", b"a"), 500, "transform-failed")

    def test_timeout(self):
        self.assertError(self.post("stall", b"a"), 504, "timeout")

    def test_wrongMethod(self):
        response = self.request("GET", "/transform/rot13")
        self.assertError(response, 405, "method-not-allowed")
        self.assertEqual(response.headers.getRawHeaders("allow"), ["POST"])

    def test_noName(self):
        self.assertError(self.request("POST", "/transform", data=b"a"), 404, "not-found")


class _Upload(Protocol):
    """
    Send a request's head, then its body in chunks of chunked encoding, one
    every L{PACE} seconds of the network's clock, without end (or until
    C{chunks} are sent), collecting what comes back.

    @ivar done: fires with what came back once the server has closed.
    @ivar answered: when the first byte of the answer came, on the clock.
    """

    PACE = 0.5

    def __init__(self, clock, head, chunk, chunks=None):
        self.clock, self.head, self.chunk, self.chunks = clock, head, chunk, chunks
        self.received = []
        self.answered = None
        self.done = Deferred()
        self._next = None

    def connectionMade(self):
        self.transport.write(self.head)
        self._send()

    def _send(self):
        if self.chunks == 0:
            return
        if self.chunks is not None:
            self.chunks -= 1
        self.transport.write(b"%x\r\n%s\r\n" % (len(self.chunk), self.chunk))
        self._next = self.clock.callLater(self.PACE, self._send)

    def dataReceived(self, data):
        if self.answered is None:
            self.answered = self.clock.seconds()
        self.received.append(data)

    def connectionLost(self, reason):
        if self._next is not None and self._next.active():
            self._next.cancel()
        self.done.callback(b"".join(self.received))


class BodyLimitTests(HTTPTestCase):
    """
    A body over the limit is refused as soon as that is known, at the
    headers when they announce its length, and the connection closed; no
    body is ever kept in a file.
    """

    def head(self, *headers):
        lines = ["POST /transform/rot13 HTTP/1.1", f"Host: {self.address}", *headers, "", ""]
        return "\r\n".join(lines).encode("latin-1")

    def exchange(self, data):
        """
        Send C{data} and keep the connection open; what came back once the
        server closed it, and when that was on the clock.
        """
        collect = Collector(data)
        connectProtocol(TCP4ClientEndpoint(self.reactor, HOST, WEB), collect)
        return self.result(collect.done), self.reactor.seconds()

    def assertRefused(self, data, message):
        response = readResponse(data)
        self.assertEqual(response.status, 413)
        self.assertEqual(response.getheader("connection"), "close")
        self.assertEqual(json.loads(response.read()), {"error": "poem-too-large", "message": message})

    def test_announcedLengthRefusedAtTheHeaders(self):
        """
        A Content-Length over the limit is answered 413 at once, with the
        first bytes of the body that came with the headers and none of the
        other ten gigabytes; the connection then closes.
        """
        data, closed = self.exchange(self.head("Content-Length: 10000000000") + b"x" * 1000)
        self.assertRefused(
            data,
            f"the poem is 10,000,000,000 bytes; this gateway accepts at most {MAX_POEM_BYTES:,} "
            "(--max-poem-bytes)",
        )
        self.assertEqual(closed, self.site.protocol.LINGER)

    def test_expectContinueAnswered413(self):
        """
        A request that expects C{100 Continue} before it sends a body over
        the limit gets 413 instead.
        """
        head = self.head("Content-Length: 10000000000", "Expect: 100-continue")
        data, _ = self.exchange(head)
        self.assertTrue(data.startswith(b"HTTP/1.1 413 "), data[:100])
        self.assertRefused(data, PoemTooLarge.forSize(10_000_000_000, MAX_POEM_BYTES).message)

    def test_endlessChunkedBodyCut(self):
        """
        A chunked body that never ends is answered 413 as soon as it passes
        the limit; what more comes is thrown away for a few seconds, then
        the connection is closed, however long the client goes on.
        """
        upload = _Upload(self.reactor, self.head("Transfer-Encoding: chunked"), b"x" * 8192)
        connectProtocol(TCP4ClientEndpoint(self.reactor, HOST, WEB), upload)
        data = self.result(upload.done)
        passed = upload.PACE * (MAX_POEM_BYTES // 8192)  # the chunk that passes it goes out then
        self.assertEqual(upload.answered, passed)
        self.assertEqual(self.reactor.seconds(), passed + self.site.protocol.LINGER)
        self.assertRefused(
            data,
            f"the poem is over {MAX_POEM_BYTES:,} bytes; this gateway accepts at most {MAX_POEM_BYTES:,} "
            "(--max-poem-bytes)",
        )

    def test_silentUploadCutAtTheIdleTimeout(self):
        """
        A client that stops half-way through its body is disconnected once
        it has been silent for the idle timeout (60 s by default).
        """
        upload = _Upload(self.reactor, self.head("Transfer-Encoding: chunked"), b"x" * 1000, chunks=3)
        connectProtocol(TCP4ClientEndpoint(self.reactor, HOST, WEB), upload)
        self.assertEqual(self.result(upload.done), b"")
        self.assertEqual(self.reactor.seconds(), 2 * upload.PACE + 60)


class LargeBodyTests(HTTPTestCase):
    limits = Limits(maxPoemBytes=1_000_000, deadline=0.5)

    def test_bodiesHeldInMemory(self):
        """
        Uploads under way hold no file descriptor each: a body is kept in
        memory (it is at most the limit), where Twisted would keep one of
        100 KB or more in a temporary file.
        """
        before = len(os.listdir("/proc/self/fd"))
        for _ in range(10):
            upload = Collector(BodyLimitTests.head(self, "Content-Length: 500000") + b"x" * 200_000)
            connectProtocol(TCP4ClientEndpoint(self.reactor, HOST, WEB), upload)
        self.network.flush()
        self.assertEqual(len(self.site.connections), 10)
        self.assertEqual(len(os.listdir("/proc/self/fd")), before)


class IdleTimeoutTests(HTTPTestCase):
    def test_silentConnectionIsClosed(self):
        """
        A connection that sends nothing is closed once the site's idle
        timeout (60 s by default) has passed on the site's clock.
        """
        silent = Collector(b"")
        connectProtocol(TCP4ClientEndpoint(self.reactor, HOST, WEB), silent)
        self.network.run(silent.done, patience=59)
        self.assertNoResult(silent.done)
        self.result(silent.done)
        self.assertEqual(self.reactor.seconds(), 60)


class OverloadTests(HTTPTestCase):
    limits = Limits(maxPoemBytes=MAX_POEM_BYTES, deadline=0.5, maxInFlight=1)

    def test_overloaded(self):
        """
        Past the requests in flight, 503 with Retry-After.
        """
        stalled = self.http.post(self.url("/transform/stall"), data=b"a", headers=TEXT)
        self.assertTrue(self.network.runUntil(lambda: self.service.inFlight == 1))
        response = self.post("rot13", b"a")
        self.assertError(response, 503, "overloaded")
        self.assertEqual(response.headers.getRawHeaders("retry-after"), ["1"])
        self.assertError(self.result(stalled), 504, "timeout")


@implementer(IBodyProducer)
class _Chunked:
    """
    A body of unknown length, so that treq sends it chunked.
    """

    length = UNKNOWN_LENGTH

    def __init__(self, chunks):
        self.chunks = chunks

    def startProducing(self, consumer):
        for chunk in self.chunks:
            consumer.write(chunk)
        return succeed(None)

    def pauseProducing(self):
        pass

    def resumeProducing(self):
        pass

    def stopProducing(self):
        pass


class OriginTests(HTTPTestCase):
    def test_noOrigin(self):
        self.assertEqual((self.post("rot13", b"a")).code, 200)

    def test_sameOrigin(self):
        response = self.post("rot13", b"a", headers={**TEXT, "Origin": f"http://{self.address}"})
        self.assertEqual(self.text(response), "n")

    def test_allowedOrigin(self):
        response = self.post("rot13", b"a", headers={**TEXT, "Origin": "https://poems.example.org"})
        self.assertEqual(self.text(response), "n")

    def test_otherSite(self):
        for origin in ["http://evil.example", "null", f"https://{self.address}"]:
            response = self.post("rot13", b"a", headers={**TEXT, "Origin": origin})
            self.assertError(response, 403, "forbidden-origin")

    def test_noCORS(self):
        """
        Nothing invites other sites to read the answers.
        """
        response = self.request("GET", "/transforms", headers={"Origin": "http://evil.example"})
        self.assertIsNone(response.headers.getRawHeaders("access-control-allow-origin"))


class RouteTests(HTTPTestCase):
    def test_transforms(self):
        response = self.request("GET", "/transforms")
        self.assertEqual(response.headers.getRawHeaders("content-type"), ["application/json"])
        self.assertEqual(
            self.json(response),
            [{"name": entry.name, "description": entry.description} for entry in self.service.transforms()],
        )
        self.assertEqual((self.request("GET", "/transforms/")).code, 200)

    def test_healthz(self):
        response = self.request("GET", "/healthz")
        self.assertEqual((response.code, self.json(response)), (200, {"status": "ok"}))

    def test_notFound(self):
        self.assertError(self.request("GET", "/transforms/rot13"), 404, "not-found")
        self.assertError(self.request("GET", "/healthz/deep"), 404, "not-found")
        self.assertError(self.request("GET", "/nothing-here"), 404, "not-found")
        self.assertError(self.request("GET", "/app.js/deeper"), 404, "not-found")

    def test_nulInAFileName(self):
        """
        A file name with a NUL byte, which the system refuses to look up,
        names no file: 404 in JSON, and nothing logged as an error.
        """
        for path in ["/app.js%00.html", "/%00", "/app.js%00"]:
            status, body = self.exactly("GET", path)
            self.assertEqual((status, json.loads(body)["error"]), (404, "not-found"), path)

    def test_wrongMethods(self):
        for method, path, allowed in [
            ("DELETE", "/transforms", "GET, HEAD"),
            ("POST", "/healthz", "GET, HEAD"),
            ("POST", "/poems", "GET, HEAD"),
            ("POST", "/app.js", "GET, HEAD"),
            ("PUT", "/", "GET, HEAD"),
            ("GET", "/transform", "POST"),
        ]:
            response = self.request(method, path)
            self.assertError(response, 405, "method-not-allowed")
            self.assertEqual(response.headers.getRawHeaders("allow"), [allowed])


class PageTests(TestCase):
    """
    The page's files, over a real socket: Twisted's web server sends a
    file through its global cooperator, which runs on the global reactor
    only.
    """

    async def setUp(self):
        self.service = TransformService(misbehavingCatalogue(reactor), reactor, HTTPTestCase.limits)
        site = makeSite(self.service, loadPoems(ROOT / "poems"), HTTPTestCase.origins, reactor)
        port = await serverFromString(reactor, "tcp:0:interface=127.0.0.1").listen(site)
        self.addCleanup(port.stopListening)
        self.address = f"127.0.0.1:{port.getHost().port}"

    def get(self, path):
        return treq.get(f"http://{self.address}{path}", persistent=False)

    async def test_page(self):
        response = await self.get("/")
        self.assertEqual(response.code, 200)
        self.assertIn("text/html", response.headers.getRawHeaders("content-type")[0])
        self.assertIn("<title>xform", await response.text("utf-8"))
        for path, kind in [("/app.js", "javascript"), ("/style.css", "text/css")]:
            response = await self.get(path)
            self.assertEqual(response.code, 200, path)
            self.assertIn(kind, response.headers.getRawHeaders("content-type")[0])
            await response.content()

    async def test_securityHeaders(self):
        for path in ["/", "/transforms", "/poems/science"]:
            response = await self.get(path)
            await response.content()
            self.assertEqual(response.headers.getRawHeaders("x-content-type-options"), ["nosniff"], path)
            self.assertIn(
                "frame-ancestors 'none'", response.headers.getRawHeaders("content-security-policy")[0]
            )


class FailingRouteTests(HTTPTestCase):
    """
    A route that fails with a bug of the gateway's is answered with 500 in
    JSON, and the failure is logged.
    """

    def setUp(self):
        super().setUp()
        self.site.resource.putChild(b"broken", _Broken())

    def test_internalError(self):
        self.assertError(self.request("GET", "/broken"), 500, "internal-error")
        self.assertEqual(len(self.flushLoggedErrors(ZeroDivisionError)), 1)


class _Broken(Resource):
    isLeaf = True

    def render_GET(self, request):
        return 1 // 0


class PoemRouteTests(HTTPTestCase):
    """
    The poems of a directory; nothing beside it is reachable.
    """

    def poems(self):
        directory = Path(tempfile.mkdtemp())
        self.addCleanup(shutil.rmtree, directory)
        (poems := directory / "poems").mkdir()
        (poems / "a.txt").write_text("A Title\n\nfirst line\n", "utf-8")
        (poems / "b.txt").write_text("\n  Second  \nline\n", "utf-8")
        (poems / "notes.md").write_text("not a poem", "utf-8")
        (poems / "latin1.txt").write_bytes("perché".encode("latin-1"))
        (poems.parent / "secret.txt").write_text("SECRET", "utf-8")
        self.directory = poems
        return loadPoems(poems)

    def test_list(self):
        response = self.request("GET", "/poems")
        self.assertEqual(
            self.json(response), [{"name": "a", "title": "A Title"}, {"name": "b", "title": "Second"}]
        )
        self.assertEqual(self.json(self.request("GET", "/poems/")), self.json(response))

    def test_poem(self):
        response = self.request("GET", "/poems/a")
        self.assertEqual(response.headers.getRawHeaders("content-type"), ["text/plain; charset=utf-8"])
        self.assertEqual(self.text(response, "utf-8"), "A Title\n\nfirst line\n")

    def test_unknownPoems(self):
        for name in ["c", "a.txt", "notes", "notes.md", "latin1", "A"]:
            self.assertError(self.request("GET", f"/poems/{name}"), 404, "not-found")

    def test_pathTraversal(self):
        """
        No spelling of a path leads out of the poems: names are looked up,
        never joined to a path.
        """
        attempts = [
            "/poems/../secret.txt",
            "/poems/..%2Fsecret",
            "/poems/..%2fsecret.txt",
            "/poems/%2e%2e/secret",
            "/poems/%2e%2e%2fsecret",
            "/poems/..%5csecret",
            "/poems/....//secret",
            "/poems//secret",
            "/poems/%00",
            "/poems/a/../../secret",
            f"/poems/{self.directory.parent}/secret.txt",
            f"/poems/%2F{str(self.directory.parent).replace('/', '%2F')}%2Fsecret.txt",
            "/../pyproject.toml",
            "/..%2fpyproject.toml",
            "/%2e%2e/pyproject.toml",
            "/static/../../pyproject.toml",
            "/app.js/..%2F..%2Fpyproject.toml",
        ]
        for path in attempts:
            status, body = self.exactly("GET", path)
            self.assertNotIn(b"SECRET", body, path)
            self.assertNotIn(b"[build-system]", body, path)
            self.assertIn(status, (400, 403, 404), path)

    def test_installedDirectoryMissing(self):
        self.assertEqual(loadPoems(self.directory / "nowhere"), {})


class ErrorFromResponseTests(SynchronousTestCase):
    """
    How the HTTP clients read an error answer back into a service error.
    """

    def test_namedInTheBody(self):
        error = errorFromResponse(
            404, b'{"error": "unknown-transform", "message": "unknown transform \'x\'"}'
        )
        self.assertIsInstance(error, UnknownTransform)
        self.assertEqual(error.message, "unknown transform 'x'")

    def test_byStatusWhenTheBodyNamesNone(self):
        """
        A body that is not ours (a proxy's page, say) is read by its status.
        """
        cases = {
            413: PoemTooLarge,
            504: TransformTimeout,
            503: Overloaded,
            418: BadRequest,
            502: TransformFailed,
        }
        for status, errorClass in cases.items():
            error = errorFromResponse(status, b"<html>Bad Gateway</html>")
            self.assertIs(type(error), errorClass, status)
            self.assertEqual(error.message, f"HTTP {status}: <html>Bad Gateway</html>")


class RefusalLogTests(HTTPTestCase):
    def test_refusalsLogged(self):
        """
        Each refused request is logged as over every protocol
        (L{protocols.common.logRefusal}), with its status and the client as
        host:port: the service's errors, a forbidden origin, a body over the
        limit.
        """
        events = captureLogs(self)
        self.assertError(self.post("nope", b"x"), 404, "unknown-transform")
        self.assertError(
            self.post("rot13", b"x", headers={**TEXT, "Origin": "http://evil.example"}),
            403,
            "forbidden-origin",
        )
        self.assertError(self.post("rot13", b"x" * (MAX_POEM_BYTES + 1)), 413, "poem-too-large")
        lines = [event["log_format"].format(**event) for event in events if event.get("error")]
        self.assertEqual(len(lines), 3, lines)
        for line, expected in zip(
            lines,
            [
                "answering 404 unknown-transform: unknown transform 'nope'",
                "answering 403 forbidden-origin: ",
                f"answering 413 poem-too-large: the poem is {MAX_POEM_BYTES + 1:,} bytes; this gateway accepts",
            ],
            strict=True,
        ):
            self.assertRegex(line, r"^http 127\.0\.0\.1:\d+: " + re.escape(expected))
