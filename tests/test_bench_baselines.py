"""
The baselines of C{bench/} are code of ours too: each one, started as its
own process on a free loopback port, answers a real request exactly as the
gateway does, so that the benchmarks' load generators, which check every
reply, hold for both.  No speed is measured here (C{make bench} does that).
"""

import http.client
import importlib.util
import json
import socket
import struct
import subprocess
import sys
from pathlib import Path

import pytest
from websockets.sync.client import connect

BASELINES = Path(__file__).resolve().parent.parent / "bench" / "baselines"
HAVE_UVLOOP = importlib.util.find_spec("uvloop") is not None

#: Each baseline's command line after the port, by a name for the tests.
COMMANDS = {
    "tutorial-netstring": ["tutorial_netstring.py"],
    "asyncio-netstring": ["asyncio_netstring.py"],
    "twisted-amp": ["twisted_amp.py"],
    "autobahn-ws": ["autobahn_ws.py"],
    "websockets-ws": ["websockets_ws.py"],
    "twisted-web": ["twisted_web.py"],
}
if HAVE_UVLOOP:
    COMMANDS["asyncio-netstring-uvloop"] = ["asyncio_netstring.py", "--uvloop"]
    COMMANDS["websockets-ws-uvloop"] = ["websockets_ws.py", "--uvloop"]

uvloopOnly = pytest.mark.skipif(not HAVE_UVLOOP, reason="uvloop is not installed (make bench installs it)")


@pytest.fixture(scope="module")
def ports():
    """
    Every baseline started at once on port 0; the port each one prints.
    """
    processes = {
        name: subprocess.Popen(
            [sys.executable, str(BASELINES / script), "0", *options],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for name, (script, *options) in COMMANDS.items()
    }
    try:
        found = {}
        for name, process in processes.items():
            line = process.stdout.readline()
            assert line.startswith("listening on 127.0.0.1:"), f"{name}: {line!r} {process.stderr.read()}"
            found[name] = int(line.rsplit(":", 1)[1])
        yield found
    finally:
        for process in processes.values():
            process.terminate()
            process.communicate(timeout=10)


def receiveAll(sock: socket.socket) -> bytes:
    chunks = []
    while chunk := sock.recv(65536):
        chunks.append(chunk)
    return b"".join(chunks)


@pytest.mark.parametrize(
    "name",
    ["tutorial-netstring", "asyncio-netstring", pytest.param("asyncio-netstring-uvloop", marks=uvloopOnly)],
)
def test_netstring(ports, name):
    """
    One netstring in, the lowercased poem as one netstring out, then the
    server closes.
    """
    with socket.create_connection(("127.0.0.1", ports[name]), timeout=5) as sock:
        sock.sendall(b"23:cummingsify.HELLO WORLD,")
        assert receiveAll(sock) == b"11:hello world,"


def box(pairs) -> bytes:
    return b"".join(struct.pack("!H", len(k)) + k + struct.pack("!H", len(v)) + v for k, v in pairs) + b"\0\0"


def readBox(stream) -> dict[bytes, bytes]:
    result = {}
    while length := struct.unpack("!H", stream.read(2))[0]:
        key = stream.read(length)
        result[key] = stream.read(struct.unpack("!H", stream.read(2))[0])
    return result


def test_amp(ports):
    """
    The bare AMP server answers C{Transform} with the gateway's bytes, and
    joins and splits long poems as docs/protocols.md says: 80,000 bytes of
    C{É} come back as C{poem} (65,534 bytes: the cut moved out of a
    character) and C{poem.2}.
    """
    question = [(b"_ask", b"1"), (b"_command", b"Transform"), (b"poem", b"HELLO WORLD")]
    long = "É".encode() * 40_000
    with socket.create_connection(("127.0.0.1", ports["twisted-amp"]), timeout=5) as sock:
        sock.sendall(box([*question, (b"transform", b"cummingsify")]))
        stream = sock.makefile("rb")
        expected = b"\x00\x07_answer\x00\x011\x00\x04poem\x00\x0bhello world\x00\x00"
        assert stream.read(len(expected)) == expected
        pieces = [(b"poem", long[:65535]), (b"poem.2", long[65535:])]
        sock.sendall(
            box([(b"_ask", b"2"), (b"_command", b"Transform"), (b"transform", b"cummingsify"), *pieces])
        )
        answer = readBox(stream)
    assert sorted(answer) == [b"_answer", b"poem", b"poem.2"]
    assert (len(answer[b"poem"]), len(answer[b"poem.2"])) == (65534, 14466)
    assert (answer[b"poem"] + answer[b"poem.2"]).decode() == "é" * 40_000


@pytest.mark.parametrize(
    "name", ["autobahn-ws", "websockets-ws", pytest.param("websockets-ws-uvloop", marks=uvloopOnly)]
)
def test_websocket(ports, name):
    """
    A JSON-RPC C{transform} call at C{/ws} is answered with the gateway's
    text, byte for byte.
    """
    request = {
        "jsonrpc": "2.0",
        "method": "transform",
        "params": {"transform": "cummingsify", "poem": "HÉLLO"},
    }
    with connect(f"ws://127.0.0.1:{ports[name]}/ws", open_timeout=5) as websocket:
        websocket.send(json.dumps({**request, "id": 1}))
        assert websocket.recv(timeout=5) == '{"jsonrpc":"2.0","result":{"poem":"héllo"},"id":1}'


def test_http(ports):
    """
    C{POST /transform/cummingsify} answers the lowercased body as UTF-8
    text.
    """
    connection = http.client.HTTPConnection("127.0.0.1", ports["twisted-web"], timeout=5)
    try:
        connection.request("POST", "/transform/cummingsify", body="HÉLLO WORLD".encode())
        response = connection.getresponse()
        assert (response.status, response.getheader("Content-Type")) == (200, "text/plain; charset=utf-8")
        assert response.read().decode() == "héllo world"
    finally:
        connection.close()
