"""
The HTTP face over real sockets: the web site on 127.0.0.1 in this
process's reactor, requested with treq, and with C{http.client} (in a
thread) where a path must go out exactly as written.
"""

import http.client
import re
import shutil
import tempfile
from pathlib import Path

import treq
from twisted.internet import reactor
from twisted.internet.defer import Deferred, succeed
from twisted.internet.endpoints import serverFromString
from twisted.internet.threads import deferToThread
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

MAX_POEM_BYTES = 64 * 1024
TEXT = {"Content-Type": "text/plain; charset=utf-8"}


class HTTPTestCase(TestCase):
    """
    A web site on a free loopback port, serving the checkout's poems.
    """

    limits = Limits(maxPoemBytes=MAX_POEM_BYTES, deadline=0.5)
    origins = OriginPolicy(["https://poems.example.org"])

    async def setUp(self):
        self.service = TransformService(misbehavingCatalogue(reactor), reactor, self.limits)
        await self.listen(makeSite(self.service, self.poems(), self.origins, reactor))

    def poems(self):
        return loadPoems(ROOT / "poems")

    async def listen(self, site):
        port = await serverFromString(reactor, "tcp:0:interface=127.0.0.1").listen(site)
        self.addCleanup(port.stopListening)
        self.address = f"127.0.0.1:{port.getHost().port}"

    def url(self, path):
        return f"http://{self.address}{path}"

    def request(self, method, path, **kwargs):
        return treq.request(method, self.url(path), persistent=False, **kwargs)

    async def post(self, name, body, **kwargs):
        kwargs.setdefault("headers", TEXT)
        return await self.request("POST", f"/transform/{name}", data=body, **kwargs)

    async def assertError(self, response, status, name):
        """
        C{response} has C{status} and a JSON body naming the error C{name}
        with a message in words.
        """
        body = await response.json()
        self.assertEqual((response.code, body["error"]), (status, name), body)
        self.assertTrue(body["message"])
        self.assertEqual(response.headers.getRawHeaders("content-type"), ["application/json"])
        return body

    def exactly(self, method, path, body=None, headers=()):
        """
        Send C{path} exactly as written; the status and the body.
        """

        def send():
            connection = http.client.HTTPConnection(*self.address.split(":"), timeout=10)
            try:
                connection.putrequest(method, path, skip_accept_encoding=True)
                for name, value in headers:
                    connection.putheader(name, value)
                if body is not None:
                    connection.putheader("Content-Length", str(len(body)))
                connection.endheaders(body)
                response = connection.getresponse()
                return response.status, response.read()
            finally:
                connection.close()

        return deferToThread(send)


class TransformRouteTests(HTTPTestCase):
    async def test_transform(self):
        response = await self.post("cummingsify", b"HELLO WORLD")
        self.assertEqual(response.code, 200)
        self.assertEqual(response.headers.getRawHeaders("content-type"), ["text/plain; charset=utf-8"])
        self.assertEqual(await response.text(), "hello world")

    async def test_pipelineAndNonASCII(self):
        poem = POEMS["alla_sera"]
        response = await self.post("titlecase%7Creverse", poem.encode("utf-8"))
        self.assertEqual(await response.text("utf-8"), transforms.reverse(transforms.titlecase(poem)))

    async def test_pipeAsItIs(self):
        status, body = await self.exactly("POST", "/transform/cummingsify|reverse", b"A\nB")
        self.assertEqual((status, body), (200, b"b\na"))

    async def test_anyContentTypeIsText(self):
        """
        curl's default form type, or none at all, is read as UTF-8 text.
        """
        response = await self.post(
            "rot13", b"abc", headers={"Content-Type": "application/x-www-form-urlencoded"}
        )
        self.assertEqual(await response.text(), "nop")
        status, body = await self.exactly("POST", "/transform/rot13", b"abc")
        self.assertEqual((status, body), (200, b"nop"))

    async def test_emptyPoem(self):
        response = await self.post("reverse", b"")
        self.assertEqual((response.code, await response.text()), (200, ""))

    async def test_largestPoem(self):
        poem = "É" * (MAX_POEM_BYTES // 2)
        response = await self.post("cummingsify", poem.encode("utf-8"))
        self.assertEqual(await response.text("utf-8"), poem.lower())

    async def test_unknownTransform(self):
        body = await self.assertError(await self.post("nope", b"a"), 404, "unknown-transform")
        self.assertEqual(body["message"], "unknown transform 'nope'")

    async def test_badRequests(self):
        await self.assertError(await self.post("rot13%7C%7Crot13", b"a"), 400, "bad-request")
        await self.assertError(await self.post("", b"a"), 400, "bad-request")
        await self.assertError(await self.post("rot13", b"\xff\xfe"), 400, "bad-request")
        latin1 = {"Content-Type": "text/plain; charset=ISO-8859-1"}
        body = await self.assertError(
            await self.post("rot13", "è".encode("latin-1"), headers=latin1), 400, "bad-request"
        )
        self.assertIn("UTF-8", body["message"])
        await self.assertError(await self.post("%FF", b"a"), 400, "bad-request")

    async def test_poemTooLarge(self):
        """
        A body over the limit is refused with 413, by its Content-Length or,
        chunked, once it passes the limit.
        """
        await self.assertError(await self.post("rot13", b"x" * (MAX_POEM_BYTES + 1)), 413, "poem-too-large")
        body = await self.assertError(
            await self.post("rot13", b"x" * (5 * 1024 * 1024)), 413, "poem-too-large"
        )
        self.assertEqual(
            body["message"],
            f"the poem is 5,242,880 bytes; this gateway accepts at most {MAX_POEM_BYTES:,} (--max-poem-bytes)",
        )

        def chunks():
            for _ in range(20):
                yield b"x" * 8192

        chunked = await self.request("POST", "/transform/rot13", data=_Chunked(chunks()), headers=TEXT)
        body = await self.assertError(chunked, 413, "poem-too-large")
        self.assertEqual(
            body["message"],
            f"the poem is over {MAX_POEM_BYTES:,} bytes; this gateway accepts at most {MAX_POEM_BYTES:,} "
            "(--max-poem-bytes)",
        )

    async def test_chunkedPoem(self):
        response = await self.request("POST", "/transform/rot13", data=_Chunked([b"ab", b"c"]), headers=TEXT)
        self.assertEqual(await response.text(), "nop")

    async def test_transformFailed(self):
        await self.assertError(await self.post("explode", b"a"), 500, "transform-failed")
        self.assertEqual(len(self.flushLoggedErrors(ZeroDivisionError)), 1)
        await self.assertError(await self.post("number", b"a"), 500, "transform-failed")

    async def test_timeout(self):
        await self.assertError(await self.post("stall", b"a"), 504, "timeout")

    async def test_wrongMethod(self):
        response = await self.request("GET", "/transform/rot13")
        await self.assertError(response, 405, "method-not-allowed")
        self.assertEqual(response.headers.getRawHeaders("allow"), ["POST"])

    async def test_noName(self):
        await self.assertError(await self.request("POST", "/transform", data=b"a"), 404, "not-found")


class OverloadTests(HTTPTestCase):
    limits = Limits(maxPoemBytes=MAX_POEM_BYTES, deadline=0.5, maxInFlight=1)

    async def test_overloaded(self):
        """
        Past the requests in flight, 503 with Retry-After.
        """
        stalled = Deferred.fromCoroutine(self.post("stall", b"a"))
        while self.service.inFlight == 0:
            await treq.get(self.url("/healthz"), persistent=False)
        response = await self.post("rot13", b"a")
        await self.assertError(response, 503, "overloaded")
        self.assertEqual(response.headers.getRawHeaders("retry-after"), ["1"])
        await self.assertError(await stalled, 504, "timeout")


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
    async def test_noOrigin(self):
        self.assertEqual((await self.post("rot13", b"a")).code, 200)

    async def test_sameOrigin(self):
        response = await self.post("rot13", b"a", headers={**TEXT, "Origin": f"http://{self.address}"})
        self.assertEqual(await response.text(), "n")

    async def test_allowedOrigin(self):
        response = await self.post("rot13", b"a", headers={**TEXT, "Origin": "https://poems.example.org"})
        self.assertEqual(await response.text(), "n")

    async def test_otherSite(self):
        for origin in ["http://evil.example", "null", f"https://{self.address}"]:
            response = await self.post("rot13", b"a", headers={**TEXT, "Origin": origin})
            await self.assertError(response, 403, "forbidden-origin")

    async def test_noCORS(self):
        """
        Nothing invites other sites to read the answers.
        """
        response = await self.request("GET", "/transforms", headers={"Origin": "http://evil.example"})
        self.assertIsNone(response.headers.getRawHeaders("access-control-allow-origin"))


class RouteTests(HTTPTestCase):
    async def test_transforms(self):
        response = await self.request("GET", "/transforms")
        self.assertEqual(response.headers.getRawHeaders("content-type"), ["application/json"])
        self.assertEqual(
            await response.json(),
            [{"name": entry.name, "description": entry.description} for entry in self.service.transforms()],
        )
        self.assertEqual((await self.request("GET", "/transforms/")).code, 200)

    async def test_healthz(self):
        response = await self.request("GET", "/healthz")
        self.assertEqual((response.code, await response.json()), (200, {"status": "ok"}))

    async def test_notFound(self):
        await self.assertError(await self.request("GET", "/transforms/rot13"), 404, "not-found")
        await self.assertError(await self.request("GET", "/healthz/deep"), 404, "not-found")
        await self.assertError(await self.request("GET", "/nothing-here"), 404, "not-found")
        await self.assertError(await self.request("GET", "/app.js/deeper"), 404, "not-found")

    async def test_wrongMethods(self):
        for method, path, allowed in [
            ("DELETE", "/transforms", "GET, HEAD"),
            ("POST", "/healthz", "GET, HEAD"),
            ("POST", "/poems", "GET, HEAD"),
            ("POST", "/app.js", "GET, HEAD"),
            ("PUT", "/", "GET, HEAD"),
            ("GET", "/transform", "POST"),
        ]:
            response = await self.request(method, path)
            await self.assertError(response, 405, "method-not-allowed")
            self.assertEqual(response.headers.getRawHeaders("allow"), [allowed])

    async def test_page(self):
        response = await self.request("GET", "/")
        self.assertEqual(response.code, 200)
        self.assertIn("text/html", response.headers.getRawHeaders("content-type")[0])
        self.assertIn("<title>xform", await response.text("utf-8"))
        for path, kind in [("/app.js", "javascript"), ("/style.css", "text/css")]:
            response = await self.request("GET", path)
            self.assertEqual(response.code, 200, path)
            self.assertIn(kind, response.headers.getRawHeaders("content-type")[0])

    async def test_securityHeaders(self):
        for path in ["/", "/transforms", "/poems/science"]:
            headers = (await self.request("GET", path)).headers
            self.assertEqual(headers.getRawHeaders("x-content-type-options"), ["nosniff"], path)
            self.assertIn("frame-ancestors 'none'", headers.getRawHeaders("content-security-policy")[0])


class FailingRouteTests(HTTPTestCase):
    """
    A route that fails with a bug of the gateway's is answered with 500 in
    JSON, and the failure is logged.
    """

    async def setUp(self):
        await super().setUp()
        self.site.resource.putChild(b"broken", _Broken())

    async def listen(self, site):
        self.site = site
        await super().listen(site)

    async def test_internalError(self):
        await self.assertError(await self.request("GET", "/broken"), 500, "internal-error")
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

    async def test_list(self):
        response = await self.request("GET", "/poems")
        self.assertEqual(
            await response.json(), [{"name": "a", "title": "A Title"}, {"name": "b", "title": "Second"}]
        )
        self.assertEqual(await (await self.request("GET", "/poems/")).json(), await response.json())

    async def test_poem(self):
        response = await self.request("GET", "/poems/a")
        self.assertEqual(response.headers.getRawHeaders("content-type"), ["text/plain; charset=utf-8"])
        self.assertEqual(await response.text("utf-8"), "A Title\n\nfirst line\n")

    async def test_unknownPoems(self):
        for name in ["c", "a.txt", "notes", "notes.md", "latin1", "A"]:
            await self.assertError(await self.request("GET", f"/poems/{name}"), 404, "not-found")

    async def test_pathTraversal(self):
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
            status, body = await self.exactly("GET", path)
            self.assertNotIn(b"SECRET", body, path)
            self.assertNotIn(b"[build-system]", body, path)
            self.assertIn(status, (400, 403, 404), path)

    async def test_installedDirectoryMissing(self):
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
    async def test_refusalsLogged(self):
        """
        Each refused request is logged as over every protocol
        (L{protocols.common.logRefusal}), with its status and the client as
        host:port: the service's errors, a forbidden origin, a body over the
        limit.
        """
        events = captureLogs(self)
        await self.assertError(await self.post("nope", b"x"), 404, "unknown-transform")
        await self.assertError(
            await self.post("rot13", b"x", headers={**TEXT, "Origin": "http://evil.example"}),
            403,
            "forbidden-origin",
        )
        await self.assertError(await self.post("rot13", b"x" * (MAX_POEM_BYTES + 1)), 413, "poem-too-large")
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
