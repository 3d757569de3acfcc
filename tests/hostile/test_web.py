"""
Attacks on the web listener's HTTP side: paths that try to leave the
page's files and the poems, requests from other sites' pages, and bodies
that are too long, endless or slow.
"""

import http.client
import json
import select
import socket
import time

from tests.hostile.support import connection, descriptors, httpRequest, readHead, receiveAll

#: Paths that try to reach files outside the page's and the poems.
TRAVERSALS = [
    "/../../../../etc/passwd",
    "/%2e%2e/%2e%2e/%2e%2e/etc/passwd",
    "/..%2f..%2f..%2fetc%2fpasswd",
    "/%252e%252e/%252e%252e/etc/passwd",
    "/static/../../pyproject.toml",
    "/..%5c..%5cpyproject.toml",
    "//etc/passwd",
    "/index.html/../../pyproject.toml",
    "/poems/../../pyproject.toml",
    "/poems/..%2f..%2fpyproject.toml",
    "/poems/%2e%2e%2fREADME",
    "/poems/science/../../../../etc/passwd",
    "/poems/....//....//etc/passwd",
    "/transform/..%2f..%2fetc%2fpasswd",
]

#: What must never be in an answer: the first line of /etc/passwd, of the
#: project's files, of the gateway's code.
SECRETS = [b"root:", b"[project]", b"[build-system]", b"import ", b"# Poems"]


def get(port: int, path: str, headers: dict | None = None) -> tuple[bytes, bytes]:
    """
    The status and the whole answer of C{GET path}, on a connection of its
    own.
    """
    with connection(port) as sock:
        sock.sendall(httpRequest("GET", path, headers={"Connection": "close", **(headers or {})}))
        answer = receiveAll(sock)
    return answer.split(b" ", 2)[1], answer


def test_pathTraversal(target):
    """
    No path leads out of the page's files or the poems, however it is
    written: each is answered 403 or 404 (or 400, or 405 for a C{GET} of a
    transform), with nothing of any other file.
    """
    port = target.port("web")

    def attack():
        return [get(port, path) for path in TRAVERSALS]

    with target.attack("http-path-traversal", memory=20 * 2**20) as run:
        results = run.repeat(attack, most=20)
        run.note(requests=len(results) * len(TRAVERSALS))
    for answers in results:
        for path, (status, answer) in zip(TRAVERSALS, answers, strict=True):
            assert status in (b"400", b"403", b"404", b"405"), (path, answer[:300])
            assert not [secret for secret in SECRETS if secret in answer], (path, answer[:300])


def test_nulInPath(target):
    """
    A path with a NUL byte (C{/app.js%00.html}) is answered 404 (or 400),
    and the gateway logs no traceback.
    """
    port = target.port("web")
    with target.attack("http-nul-in-path", memory=20 * 2**20) as run:
        results = run.repeat(lambda: get(port, "/app.js%00.html"), most=20)
        run.note(requests=len(results))
    assert {status for status, _ in results} <= {b"400", b"404"}


def test_headOfAPostOnlyRoute(target):
    """
    C{HEAD /transform/rot13} (what C{curl -I} sends) is answered 405, with
    C{Allow: POST}, and the gateway logs no traceback.
    """
    port = target.port("web")

    def attack():
        with connection(port) as sock:
            sock.sendall(httpRequest("HEAD", "/transform/rot13", headers={"Connection": "close"}))
            return receiveAll(sock)

    with target.attack("http-head-of-a-post-route", memory=20 * 2**20) as run:
        results = run.repeat(attack, most=20)
        run.note(requests=len(results))
    assert all(answer.startswith(b"HTTP/1.1 405 ") and b"Allow: POST" in answer for answer in results)


def test_otherSitesPagesAndBrowsers(target):
    """
    A C{POST} from another site's page is refused with 403
    C{forbidden-origin}; a browser opening C{/ws} gets 426 in JSON; both
    answers carry the page's security headers.
    """
    port = target.port("web")

    def attack():
        with connection(port) as sock:
            headers = {"Origin": "http://evil.example", "Connection": "close"}
            sock.sendall(httpRequest("POST", "/transform/rot13", b"HELLO", headers))
            posted = receiveAll(sock)
        return posted, get(port, "/ws")[1]

    with target.attack("http-other-origins", memory=20 * 2**20) as run:
        results = run.repeat(attack, most=50)
        run.note(requests=2 * len(results))
    for posted, opened in results:
        assert posted.startswith(b"HTTP/1.1 403 ") and b'"forbidden-origin"' in posted
        assert opened.startswith(b"HTTP/1.1 426 ") and b'"upgrade-required"' in opened
        for answer in (posted, opened):
            assert b"Content-Security-Policy: " in answer and b"X-Content-Type-Options: nosniff" in answer


def test_oversizeBodySentWhole(target):
    """
    A body of 2 MiB, sent whole, is answered 413 C{poem-too-large} and never
    stored: the gateway's memory does not grow by its size for each.  The
    attacker closes once it has the answer, as a client does; the gateway
    would read and drop more of the body for a few seconds (the in-memory
    tests of tests/test_http.py time that).
    """
    port = target.port("web")
    body = b"x" * 2 * 2**20

    def attack():
        with connection(port) as sock:
            sock.sendall(httpRequest("POST", "/transform/rot13", body, {"Connection": "close"}))
            answer = http.client.HTTPResponse(sock)
            answer.begin()
            return answer.status, json.loads(answer.read())["error"]

    with target.attack("http-oversize-body", memory=40 * 2**20) as run:
        results = run.repeat(attack, most=20)
        run.note(requests=len(results))
    assert set(results) == {(413, "poem-too-large")}


def firstAnswer(sock: socket.socket, timeout: float = 3.0) -> bytes:
    """
    The status line and headers of what the server answers within
    C{timeout} seconds, or what came (nothing, if it closed or kept
    silent).
    """
    sock.settimeout(timeout)
    try:
        return readHead(sock)
    except (TimeoutError, ConnectionResetError):
        return b""


def test_hugeContentLength(target):
    """
    A body announced as ten gigabytes is refused at its headers, with 413,
    before any of it is sent; with C{Expect: 100-continue} too, which is
    then never answered C{100 Continue}.
    """
    port = target.port("web")
    heads = []
    with target.attack("http-huge-content-length", memory=20 * 2**20):
        for expect in [{}, {"Expect": "100-continue"}]:
            with connection(port) as sock:
                headers = {"Content-Length": "10000000000", **expect}
                sock.sendall(httpRequest("POST", "/transform/rot13", headers=headers))
                heads.append(firstAnswer(sock))
    assert [head.split(b" ", 2)[1:2] for head in heads] == [[b"413"], [b"413"]], heads


def test_endlessChunkedBody(target):
    """
    A chunked body that never ends is cut once it passes the poem limit:
    the client gets 413 while it is still sending, or within 3 s of its
    sixteenth mebibyte.
    """
    chunk = b"%x\r\n%s\r\n" % (65536, b"x" * 65536)
    with target.attack("http-endless-chunked-body", memory=40 * 2**20) as run:
        with connection(target.port("web")) as sock:
            sock.sendall(httpRequest("POST", "/transform/rot13", headers={"Transfer-Encoding": "chunked"}))
            sent, answer = 0, b""
            while sent < 16 * 2**20 and not answer:
                try:
                    sock.sendall(chunk)
                    sent += len(chunk)
                    if select.select([sock], [], [], 0)[0]:
                        answer = sock.recv(65536)
                except (ConnectionResetError, BrokenPipeError):
                    break
            answer = answer or firstAnswer(sock)
            run.note(sent_mb=round(sent / 2**20, 1))
    assert answer.startswith(b"HTTP/1.1 413 "), (answer[:100], sent)


#: How many slow uploads hold their bodies open at once.
UPLOADS = 40


def files(pid: int) -> list[str]:
    """
    The descriptors of process C{pid} that are files (temporary ones
    included), not sockets, pipes or the like.
    """
    return [link for link in descriptors(pid) if link.startswith("/")]


def test_slowUploadsHoldNoFiles(target):
    """
    Forty clients upload bodies of 500,000 bytes, slowly (a byte every
    0.3 s after the first 200,000, so that no idle timeout ends them): the
    gateway holds their connections, but no file for any of them.
    """
    port = target.port("web")
    before = files(target.pid)
    with target.attack("http-slow-uploads", memory=60 * 2**20) as run:
        uploads = [connection(port) for _ in range(UPLOADS)]
        head = httpRequest("POST", "/transform/rot13", headers={"Content-Length": "500000"})
        for sock in uploads:
            sock.sendall(head + b"x" * 200_000)
        most = []
        for _ in range(4):
            time.sleep(0.3)
            for sock in uploads:
                sock.sendall(b"x")
            most.append(len(files(target.pid)) - len(before))
        for sock in uploads:
            sock.close()
        run.note(uploads=UPLOADS, most_files=max(most))
    assert max(most) == 0, most
