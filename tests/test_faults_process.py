"""
Faults as real processes over real sockets: upstreams that send half an
answer and close, or reset the connection, over every scheme; the gateway
killed with SIGKILL and started again while C{xform get-poetry} runs.
(Upstreams down, silent or gone, over every scheme, in memory:
L{tests.test_upstream}; a client leaving mid-transform, in memory:
L{tests.test_faults}.)
"""

import base64
import hashlib
import http.client
import itertools
import json
import re
import signal
import socket
import struct
import threading
import time

import pytest

from gateway.schemes import SCHEMES
from tests.helpers import PLAIN_SCHEMES, POEMS, GatewayProcess, XformProcess, accepted, freePort
from tests.test_poetryclient import printed

#: What each scheme's half an answer is: the start of what a whole one
#: would be, then the connection closes.
HALF_ANSWERS = {
    "netstring": b"11:hel",
    "amp": b"\x00\x07_answer\x00\x011\x00\x04poem\x00\x0bhel",
    "http": b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 11\r\n\r\nhel",
    "ws": b"\x81\x7e\x00\x64" + b'{"jsonrpc"',  # a text frame of 100 bytes: 10 of them
}

#: The GUID of RFC 6455, which the accept key hashes in.
WEBSOCKET_GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"

FAULTS = ("half", "reset")

#: What each scheme's answer that never ends starts with; it goes on with
#: bytes of the poem (for AMP: pieces C{poem.2}, C{poem.3}, ... of 65,535
#: bytes each).
ENDLESS_ANSWERS = {
    "netstring": b"99999999999:",
    "amp": b"\x00\x07_answer\x00\x011\x00\x04poem\xff\xff",
    "http": b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 99999999999\r\n\r\n",
    "ws": b"\x81\x7f" + struct.pack("!Q", 99_999_999_999),
}

#: How much an upstream's endless answer may make the gateway grow.
ENDLESS_GROWTH = 150 * 2**20


class FaultyUpstream(threading.Thread):
    """
    A transform server for C{scheme} on a free loopback port that reads
    each request and then, for C{fault} C{"half"}, sends half an answer and
    closes; for C{"reset"}, resets the connection; for C{"endless"}, sends
    an answer that never ends, until the client closes or C{stop()} says
    (after a WebSocket handshake done right, for C{ws}).

    @ivar sent: the bytes of endless answers sent so far.
    """

    def __init__(self, scheme: str, fault: str, stop=lambda: False) -> None:
        """
        @param stop: tells an endless answer to stop.
        """
        super().__init__(daemon=True)
        self.scheme, self.fault, self.stop = scheme, fault, stop
        self.sent = 0
        self.listening = socket.socket()
        self.listening.bind(("127.0.0.1", 0))
        self.listening.listen()
        self.url = f"{scheme}://127.0.0.1:{self.listening.getsockname()[1]}{SCHEMES[scheme].path}"
        self.start()

    def run(self) -> None:
        for connection in accepted(self.listening):
            with connection:
                connection.settimeout(5)
                try:
                    self.serve(connection)
                except OSError:
                    pass

    def serve(self, connection: socket.socket) -> None:
        request = connection.recv(65536)
        if self.scheme == "ws":
            key = re.search(rb"sec-websocket-key: *(\S+)", request, re.IGNORECASE).group(1)
            accept = base64.b64encode(hashlib.sha1(key + WEBSOCKET_GUID).digest())
            connection.sendall(
                b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                b"Sec-WebSocket-Accept: " + accept + b"\r\n\r\n"
            )
            connection.recv(65536)  # the request's frame
        if self.fault == "reset":
            connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        elif self.fault == "half":
            connection.sendall(HALF_ANSWERS[self.scheme])
        else:
            connection.sendall(ENDLESS_ANSWERS[self.scheme])
            piece = b"x" * 65535
            for n in itertools.count(2):
                if self.stop():
                    return
                connection.sendall(piece)
                self.sent += len(piece)
                if self.scheme == "amp":
                    key = b"poem.%d" % n
                    connection.sendall(struct.pack("!H", len(key)) + key + b"\xff\xff")

    def close(self) -> None:
        self.listening.close()


@pytest.fixture(scope="module")
def faultyUpstreams():
    """
    A gateway with one upstream per scheme and fault, prefixed
    C{<scheme>-<fault>}, each a L{FaultyUpstream} (its C{upstreams}, by
    scheme and fault).
    """
    upstreams = {
        (scheme, fault): FaultyUpstream(scheme, fault) for scheme in PLAIN_SCHEMES for fault in FAULTS
    }
    arguments = [
        argument
        for (scheme, fault), upstream in upstreams.items()
        for argument in ("--upstream", f"{scheme}-{fault}={upstream.url}")
    ]
    with GatewayProcess(*arguments, "--deadline", "10", listeners=("web",)) as gateway:
        gateway.upstreams = upstreams
        yield gateway
    for upstream in upstreams.values():
        upstream.close()


def request(port: int, method: str, path: str, body: bytes | None = None) -> tuple[int, bytes]:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=20)
    try:
        connection.request(method, path, body=body)
        response = connection.getresponse()
        return response.status, response.read()
    finally:
        connection.close()


@pytest.mark.parametrize("fault", FAULTS)
@pytest.mark.parametrize("scheme", PLAIN_SCHEMES)
def test_upstreamThatFailsMidAnswer(faultyUpstreams, scheme, fault):
    """
    An upstream reached over C{scheme} that sends half its answer and
    closes, or resets the connection, makes the request fail at once with
    C{transform-failed} (500), not at the deadline; the gateway says why in
    one line, with no traceback, and has nothing left in flight.
    """
    gateway, prefix = faultyUpstreams, f"{scheme}-{fault}"
    logged = len(gateway.log)
    started = time.monotonic()
    status, body = request(gateway.ports["web"], "POST", f"/transform/{prefix}:cummingsify", b"HELLO")
    assert (status, json.loads(body)["error"]) == (500, "transform-failed")
    assert time.monotonic() - started < 5
    said = f"] upstream {prefix} ({faultyUpstreams.upstreams[scheme, fault].url}) failed 'cummingsify': "
    gateway.waitForLog(lambda: gateway.logged(said), what="the upstream's failure")
    lines = gateway.log[logged:]
    assert len([line for line in lines if said in line]) == 1, lines
    assert not [line for line in lines if "Traceback" in line or "#critical]" in line], lines
    assert b"\nxform_transforms_in_flight 0.0\n" in request(gateway.ports["web"], "GET", "/metrics")[1]


def residentMemory(pid: int) -> int:
    line = next(line for line in open(f"/proc/{pid}/status") if line.startswith("VmRSS:"))
    return int(line.split()[1]) * 1024


@pytest.mark.parametrize("scheme", PLAIN_SCHEMES)
def test_upstreamWhoseAnswerNeverEnds(scheme):
    """
    An upstream whose answer never ends (a netstring of 99,999,999,999
    bytes, an AMP box of endless pieces, a WebSocket frame or an HTTP body
    of as many) makes the request fail with C{transform-failed} or
    C{timeout}, and the gateway grows by less than 150 MB: its client
    refuses an answer over its limit.  (The upstream stops once the gateway
    has grown past that, so that a failure costs the machine nothing
    more.)  An answer cut at the deadline was longer than that bound: the
    AMP client reads a box over its limit to its end, dropping it, and this
    one has no end; at loopback speed a 1 s deadline lets through many
    times the bound.
    """
    gateway = GatewayProcess(listeners=("web",))
    grown = threading.Event()
    upstream = FaultyUpstream(scheme, "endless", grown.is_set)
    gateway.arguments += ["--upstream", f"up={upstream.url}", "--deadline", "1"]
    with gateway:
        start = residentMemory(gateway.process.pid)
        most = start

        def watch() -> None:
            nonlocal most
            while not grown.is_set() and gateway.process.poll() is None:
                most = max(most, residentMemory(gateway.process.pid))
                if most - start > ENDLESS_GROWTH:
                    grown.set()
                time.sleep(0.01)

        watcher = threading.Thread(target=watch, daemon=True)
        watcher.start()
        try:
            status, body = request(gateway.ports["web"], "POST", "/transform/up:cummingsify", b"HELLO")
        finally:
            grown.set()
            watcher.join()
            upstream.close()
    error = json.loads(body)["error"]
    assert error in ("transform-failed", "timeout")
    assert most - start < ENDLESS_GROWTH
    if error == "timeout":
        assert upstream.sent > ENDLESS_GROWTH, upstream.sent


class HeldPoem(threading.Thread):
    """
    A poetry server of the tutorial's kind on a free loopback port that
    sends its poem to the first client only once L{release}d, then closes.
    """

    def __init__(self, poem: str) -> None:
        super().__init__(daemon=True)
        self.poem = poem.encode()
        self.released = threading.Event()
        self.listening = socket.socket()
        self.listening.bind(("127.0.0.1", 0))
        self.listening.listen()
        self.port = self.listening.getsockname()[1]
        self.start()

    def release(self) -> None:
        self.released.set()

    def run(self) -> None:
        with self.listening, self.listening.accept()[0] as connection:
            self.released.wait(30)
            connection.sendall(self.poem)


def test_gatewayKilledAndStartedAgainWhileGetPoetryRuns():
    """
    C{get-poetry} with three poems and an AMP gateway: the first poem comes
    back transformed; the gateway is killed (SIGKILL); the second poem
    arrives while it is down and falls back to the original, with one
    line saying so; the gateway starts again on the same port; the third
    poem, arriving then, is transformed on a new connection.
    """
    port = freePort()
    endpoint = f"tcp:{port}:interface=127.0.0.1"
    server = f"amp://127.0.0.1:{port}"
    first, second, third = (
        HeldPoem(POEMS["science"]),
        HeldPoem(POEMS["ecstasy"]),
        HeldPoem(POEMS["alla_sera"]),
    )
    gateway = GatewayProcess("--amp", endpoint, listeners=("amp",)).start()
    try:
        client = XformProcess(
            "get-poetry",
            "--transform-server",
            server,
            *(str(p.port) for p in (first, second, third)),
            separateOutput=True,
        ).start()
        first.release()
        client.waitForLog(lambda: client.logged(f"127.0.0.1:{first.port}: transformed by {server}"))
        gateway.stop(signal.SIGKILL)
        second.release()
        client.waitForLog(lambda: client.logged(f"127.0.0.1:{second.port}: cannot transform"))
        gateway = GatewayProcess("--amp", endpoint, listeners=("amp",)).start()
        third.release()
        assert client.wait(timeout=20) == 0
    finally:
        gateway.stop()
    assert client.output == printed(
        (first.port, POEMS["science"].lower()),
        (second.port, POEMS["ecstasy"]),
        (third.port, POEMS["alla_sera"].lower()),
    )
    assert [line for line in client.log if line.startswith("xform:")] == [
        f"xform: 127.0.0.1:{second.port}: cannot transform with 'cummingsify' at {server} "
        "(connection refused); printing the original poem"
    ]
    assert client.logged(f"127.0.0.1:{third.port}: transformed by {server}")
