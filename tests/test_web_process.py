"""
The web face of a real C{xform serve} process: the blocking client over
C{ws://} and C{http://} (in this process), and the options of the web
listener.
"""

import http.client
import json
import re
import subprocess
import sys

import pytest

from service import transforms
from tests.helpers import POEMS, ROOT, GatewayProcess
from tests.test_process import BIG_POEM, HUGE_POEM, xform


@pytest.fixture
def gateway(fullGateway):
    """
    The run's gateway with every listener on, and the default options.
    """
    return fullGateway


def servers(gateway):
    port = gateway.ports["web"]
    return {"ws": f"ws://127.0.0.1:{port}/ws", "http": f"http://127.0.0.1:{port}"}


def get(gateway, path):
    connection = http.client.HTTPConnection("127.0.0.1", gateway.ports["web"], timeout=10)
    try:
        connection.request("GET", path)
        response = connection.getresponse()
        return response.status, response.read()
    finally:
        connection.close()


@pytest.mark.parametrize("name", sorted(POEMS))
@pytest.mark.parametrize("scheme", ["ws", "http"])
def test_syncClientEveryPoem(gateway, xformHere, scheme, name):
    status, out, err = xformHere(
        "transform",
        "titlecase|reverse",
        str(ROOT / "poems" / f"{name}.txt"),
        "-s",
        servers(gateway)[scheme],
    )
    assert (status, err) == (0, "")
    assert out.decode() == transforms.reverse(transforms.titlecase(POEMS[name]))


@pytest.mark.parametrize("scheme", ["ws", "http"])
def test_syncClientBigPoem(gateway, xformHere, scheme):
    status, out, err = xformHere(
        "transform", "cummingsify", "-s", servers(gateway)[scheme], input=BIG_POEM.encode()
    )
    assert (status, err) == (0, "")
    assert out.decode() == BIG_POEM.lower()


def test_syncClientDefaultWebSocketPath(gateway):
    """
    The real command, over a ws:// URL without a path.
    """
    server = f"ws://127.0.0.1:{gateway.ports['web']}"
    assert xform("transform", "rot13", "-s", server, input=b"abc") == (0, b"nop", "")


@pytest.mark.parametrize("scheme", ["ws", "http"])
def test_syncClientErrorsInWords(gateway, xformHere, scheme):
    server = servers(gateway)[scheme]
    status, out, err = xformHere("transform", "nope", "-s", server, input=b"poem")
    assert (status, out, err) == (1, b"", f"xform: {server}: unknown-transform: unknown transform 'nope'\n")
    status, out, err = xformHere("transform", "cummingsify", "-s", server, input=HUGE_POEM.encode())
    assert (status, out) == (1, b"")
    assert f"xform: {server}: poem-too-large: " in err


def test_syncClientMessageTooBigForWebSocket(gateway, xformHere):
    """
    A poem too big for even a WebSocket message is refused with 1009,
    which the client puts in words.
    """
    poem = b"x" * (7 * 1024 * 1024)
    status, out, err = xformHere("transform", "cummingsify", "-s", servers(gateway)["ws"], input=poem)
    assert (status, out) == (1, b"")
    assert "the poem is too big for the gateway's WebSocket messages (1009" in err


def test_syncClientNotAWebSocket(gateway, xformHere):
    """
    A ws:// URL pointing at something that is not the WebSocket endpoint.
    """
    server = f"ws://127.0.0.1:{gateway.ports['web']}/transforms"
    status, out, err = xformHere("transform", "rot13", "-s", server, input=b"a")
    assert status == 1
    assert err.startswith(f"xform: {server}: the WebSocket handshake was refused: HTTP/1.1 ")


def test_pageAndRoutes(gateway):
    status, page = get(gateway, "/")
    assert status == 200 and b"<title>xform" in page
    assert get(gateway, "/healthz") == (200, b'{"status": "ok"}\n')
    status, poems = get(gateway, "/poems")
    assert [poem["name"] for poem in json.loads(poems)] == sorted(POEMS)


@pytest.fixture(scope="module")
def optionsGateway(tmp_path_factory):
    """
    A gateway serving the poems of a directory of its own, and letting a
    page of another site in.
    """
    poems = tmp_path_factory.mktemp("poems")
    (poems / "only.txt").write_text("The Only Poem\n", "utf-8")
    options = ("--poems", str(poems), "--allowed-origin", "https://poems.example.org")
    with GatewayProcess(*options, listeners=("web",)) as process:
        yield process


def test_poemsOption(optionsGateway):
    assert json.loads(get(optionsGateway, "/poems")[1]) == [{"name": "only", "title": "The Only Poem"}]
    assert get(optionsGateway, "/poems/only") == (200, b"The Only Poem\n")


def test_allowedOriginOption(optionsGateway):
    connection = http.client.HTTPConnection("127.0.0.1", optionsGateway.ports["web"], timeout=10)
    try:
        for origin, expected in [("https://poems.example.org", 200), ("https://evil.example", 403)]:
            connection.request("POST", "/transform/rot13", body=b"a", headers={"Origin": origin})
            response = connection.getresponse()
            response.read()
            assert response.status == expected, origin
    finally:
        connection.close()


@pytest.mark.parametrize(
    "arguments, messages",
    [
        (
            ("--allowed-origin", "poems.example.org"),
            ["--allowed-origin: 'poems.example.org' is not an origin"],
        ),
        (("--poems", "missing"), ["--poems:", "is not a directory"]),
        (("--web", "nonsense:1"), ["--web: invalid endpoint 'nonsense:1'"]),
    ],
)
def test_webUsageErrors(tmp_path, monkeypatch, xformHere, arguments, messages):
    monkeypatch.chdir(tmp_path)
    status, out, err = xformHere("serve", *arguments)
    assert status == 2 and all(message in err for message in messages)


def test_docsWebSocketExample(gateway):
    """
    The Python example of docs/protocols.md runs as written, against this
    gateway's port.
    """
    docs = (ROOT / "docs" / "protocols.md").read_text("utf-8")
    example = re.search(r"```python\n(.*?)```", docs[docs.index("### Talking to it") :], re.S).group(1)
    example = example.replace("127.0.0.1:8080", f"127.0.0.1:{gateway.ports['web']}")
    done = subprocess.run([sys.executable, "-c", example], capture_output=True, timeout=30, cwd=ROOT)
    assert (done.returncode, done.stdout, done.stderr) == (0, b"world\nhello\n", b"")
