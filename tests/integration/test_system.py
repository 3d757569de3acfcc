"""
Every protocol through HAProxy, as users of the compose system reach it: the
netstring protocol as netcat speaks it, AMP with a poem over one value's
limit, WebSocket JSON-RPC, HTTP, the page, and the poetry client with the
two poetry servers.
"""

import http.client
import json
import re
import socket
import subprocess
import sys
import urllib.request

import pytest
from websockets.exceptions import InvalidStatus
from websockets.sync.client import connect

from tests.integration.system import SCHEMES, waitUntil

#: A poem in Italian, over twice AMP's 65,535 bytes for one value.
BIG_POEM = "Forse perché della fatal quïete\ntu sei l'immago a me sì cara vieni, o Sera!\n" * 2000


def test_netstringHalfClose(system):
    """
    A netstring client that half-closes once it has sent its request (as
    C{nc -N} does) gets the answer through HAProxy, and the connection
    closes after it.
    """
    server = system.servers["netstring"]
    with socket.create_connection((server.host, server.port), timeout=10) as sock:
        sock.sendall(b"23:cummingsify.HELLO WORLD,")
        sock.shutdown(socket.SHUT_WR)
        reply = b"".join(iter(lambda: sock.recv(4096), b""))
    assert reply == b"11:hello world,"


def test_netstringRefusalThroughHAProxy(system):
    """
    A netstring request for an unknown transform gets the connection closed
    without a byte, through HAProxy as from the gateway itself.
    """
    server = system.servers["netstring"]
    with socket.create_connection((server.host, server.port), timeout=10) as sock:
        sock.sendall(b"10:nope.HELLO,")
        sock.shutdown(socket.SHUT_WR)
        assert sock.recv(4096) == b""


def test_ampPoemOverOneValue(system):
    """
    A poem longer than one AMP value travels split across keys through
    HAProxy, both ways.
    """
    assert len(BIG_POEM.encode("utf-8")) > 2 * 65535
    assert system.transform("amp", "cummingsify", BIG_POEM) == BIG_POEM.lower()


def test_ampListTransforms(system):
    """
    C{ListTransforms} over AMP lists the catalogue through HAProxy.
    """
    names = [name for name, description in SCHEMES["amp"].listTransforms(system.servers["amp"], 10)]
    assert {"cummingsify", "reverse", "titlecase", "rot13", "echo"} <= set(names)


def test_webSocketJsonRpc(system):
    """
    A batch of JSON-RPC requests over a WebSocket through HAProxy gets the
    answers to each: a pipeline, the listing and a refusal.
    """
    batch = [
        {"jsonrpc": "2.0", "method": "transform", "params": ["cummingsify|reverse", "HELLO\nWORLD"], "id": 1},
        {"jsonrpc": "2.0", "method": "list_transforms", "id": "list"},
        {"jsonrpc": "2.0", "method": "transform", "params": {"transform": "nope", "poem": "x"}, "id": 3},
    ]
    with connect(str(system.servers["ws"]), open_timeout=10) as websocket:
        websocket.send(json.dumps(batch))
        replies = {reply["id"]: reply for reply in json.loads(websocket.recv(10))}
        websocket.send(
            json.dumps({"jsonrpc": "2.0", "method": "transform", "params": ["rot13", "abc"], "id": 4})
        )
        later = json.loads(websocket.recv(10))
    assert replies[1]["result"] == {"poem": "world\nhello"}
    assert "titlecase" in [entry["name"] for entry in replies["list"]["result"]]
    assert replies[3]["error"]["data"] == "unknown-transform"
    assert later == {"jsonrpc": "2.0", "result": {"poem": "nop"}, "id": 4}


def _request(system, method: str, path: str, body: bytes | None = None):
    server = system.servers["http"]
    connection = http.client.HTTPConnection(server.host, server.port, timeout=10)
    try:
        connection.request(method, path, body)
        response = connection.getresponse()
        return response.status, response.getheader("Content-Type"), response.read()
    finally:
        connection.close()


def test_http(system):
    """
    The HTTP routes answer through HAProxy: a transform, the listing, the
    health check, and a refusal with its status and JSON body.
    """
    assert _request(system, "POST", "/transform/cummingsify", b"HELLO WORLD")[::2] == (200, b"hello world")
    status, contentType, body = _request(system, "GET", "/transforms")
    assert (status, contentType) == (200, "application/json")
    assert "piglatin" in [entry["name"] for entry in json.loads(body)]
    status, contentType, body = _request(system, "GET", "/healthz")
    assert (status, json.loads(body)) == (200, {"status": "ok"})
    status, contentType, body = _request(system, "POST", "/transform/nope", b"HELLO")
    assert (status, json.loads(body)["error"]) == (404, "unknown-transform")


def test_httpLargePoems(system):
    """
    HAProxy passes a body of almost the gateway's limit whole, and the
    gateway's refusal of a body over it.
    """
    poem = ("x" * 99 + "\n") * 10_000
    assert _request(system, "POST", "/transform/titlecase", poem.encode())[::2] == (
        200,
        poem.replace("x" * 99, "X" + "x" * 98).encode(),
    )
    status, contentType, body = _request(system, "POST", "/transform/cummingsify", b"x" * (1024 * 1024 + 1))
    assert (status, json.loads(body)["error"]) == (413, "poem-too-large")


def test_page(system):
    """
    The page and every file it links to come through HAProxy.
    """
    status, contentType, page = _request(system, "GET", "/")
    assert (status, contentType.split(";")[0]) == (200, "text/html")
    links = re.findall(rb'(?:src|href)="([^":]+)"', page)
    assert links
    for link in links:
        assert _request(system, "GET", "/" + link.decode().lstrip("/"))[0] == 200, link


def test_pageWebSocketOrigins(system):
    """
    The page's own WebSocket, opened from the origin it was loaded from
    through HAProxy, is accepted; another site's is refused: HAProxy passes
    C{Host} and C{Origin} on unchanged.
    """
    server = system.servers["ws"]
    address = f"{socket.gethostbyname(server.host)}:{server.port}"
    with connect(f"ws://{address}/ws", origin=f"http://{address}", open_timeout=10) as websocket:
        websocket.send(
            json.dumps({"jsonrpc": "2.0", "method": "transform", "params": ["reverse", "a\nb"], "id": 1})
        )
        assert json.loads(websocket.recv(10))["result"] == {"poem": "b\na"}
    with pytest.raises(InvalidStatus) as refusal:
        connect(f"ws://{address}/ws", origin="https://elsewhere.example", open_timeout=10)
    assert refusal.value.response.status_code == 403


def _download(server: str) -> str:
    host, port = server.rsplit(":", 1)
    with socket.create_connection((host, int(port)), timeout=10) as sock:
        return b"".join(iter(lambda: sock.recv(65536), b"")).decode("utf-8")


@pytest.mark.network
@pytest.mark.parametrize("scheme", SCHEMES)
def test_getPoetry(system, scheme):
    """
    C{xform get-poetry} downloads the poems of the two poetry servers and has
    them transformed through HAProxy, over each protocol.
    """
    if not system.poetryServers:
        pytest.skip("XFORM_POETRY_SERVERS does not name the poetry servers (on the compose network only)")
    poems = {server: _download(server) for server in system.poetryServers}
    done = subprocess.run(
        [sys.executable, "-m", "gateway", "get-poetry", "--transform-server", str(system.servers[scheme])]
        + list(system.poetryServers),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    for server, poem in poems.items():
        assert f"==> {server} <==\n{poem.lower()}" in done.stdout
        assert f"{server}: transformed by {system.servers[scheme]}" in done.stderr


@pytest.mark.network
def test_haproxyStats(system):
    """
    HAProxy's Prometheus endpoint counts two replicas up in each backend,
    and its stats page lists them as UP.

    A replica HAProxy has just found through DNS counts as up at once but
    shows as C{UP 1/2} on the stats page until its first health check
    passes (within C{fastinter}, 500 ms): the stats page is asked until
    then.
    """
    if not system.stats:
        pytest.skip("XFORM_HAPROXY_STATS does not name HAProxy's stats (on the compose network only)")
    with urllib.request.urlopen(f"{system.stats}/metrics", timeout=10) as response:
        metrics = response.read().decode()
    for backend in ("netstring", "amp", "web"):
        assert f'haproxy_backend_active_servers{{proxy="{backend}"}} 2\n' in metrics

    def twoWebReplicasUp():
        with urllib.request.urlopen(f"{system.stats}/stats;csv", timeout=10) as response:
            rows = [line.split(",") for line in response.read().decode().splitlines()]
        statuses = [row[17] for row in rows if row[0] == "web" and row[1] not in ("FRONTEND", "BACKEND")]
        return statuses.count("UP") == 2

    waitUntil(twoWebReplicasUp, 10, "two web replicas UP on HAProxy's stats page")
