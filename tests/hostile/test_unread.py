"""
Clients that never read what the gateway answers, on a gateway of their
own: before the gateway bounded them, they took gigabytes, and what one of
them leaves behind should not count against the next attack measured.
"""

import itertools
import socket
from collections.abc import Iterator

from tests.hostile.support import (
    box,
    httpRequest,
    netstring,
    readHead,
    rpc,
    status,
    text,
    upgradeRequest,
)

#: The poem each request of a client that never reads carries.
POEM = b"X" * 256 * 1024

#: The most a client that never reads sends, in bytes.
MOST = 400 * 2**20

#: How much the gateway's memory may grow before a client that never reads
#: has shown that nothing bounds it (the attack's bound is
#: L{tests.hostile.support.MEMORY_GROWTH}).
GREW = 100 * 2**20

#: Seconds a send may block before the gateway counts as having stopped
#: reading.
BLOCKED = 1.0


def neverReads(target, sock: socket.socket, requests: Iterator[bytes]) -> str:
    """
    Send C{requests} one after the other on C{sock}, never reading, until the
    gateway stops reading (a send blocks for L{BLOCKED} seconds), closes
    the connection, or its memory grows past L{GREW} (then stop: the test
    has failed, and the machine is spared), or L{MOST} bytes have gone.

    @return: C{"paused"}, C{"dropped"}, C{"grew"} or C{"sent"}.
    """
    start = status(target.pid)["VmRSS"]
    sock.settimeout(BLOCKED)
    sent = 0
    try:
        for request in requests:
            sock.sendall(request)
            sent += len(request)
            if sent > MOST:
                break
            if status(target.pid)["VmRSS"] - start > GREW:
                return "grew"
    except TimeoutError:
        return "paused"
    except (BrokenPipeError, ConnectionResetError):
        return "dropped"
    return "sent"


def smallBuffers(port: int, upgrade: bool = False) -> socket.socket:
    """
    A connection whose receive buffer is small, so that the kernel holds
    little of what the gateway sends it.
    """
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 65536)
    sock.bind(("127.0.0.1", 0))
    sock.connect(("127.0.0.1", port))
    if upgrade:
        sock.sendall(upgradeRequest(port))
        assert readHead(sock).startswith(b"HTTP/1.1 101 ")
    return sock


def test_ampClientThatNeverReads(target):
    """
    An AMP client pipelines questions of 256 KiB (four pieces) and never reads the
    answers: the gateway stops reading from it once its answers pile up,
    and its memory stays bounded.
    """
    pieces = [(b"poem", POEM[:65535]), *[(b"poem.%d" % n, POEM[:65535]) for n in range(2, 5)]]
    questions = (
        box((b"_ask", b"%x" % n), (b"_command", b"Transform"), (b"transform", b"cummingsify"), *pieces)
        for n in itertools.count()
    )
    with target.attack("amp-never-reads") as run:
        with smallBuffers(target.port("amp")) as sock:
            outcome = neverReads(target, sock, questions)
        run.note(outcome=outcome)
    assert outcome == "paused"


def test_netstringClientThatNeverReads(target):
    """
    Twenty netstring clients each send a request of a mebibyte and never
    read the reply: the gateway holds none of them past the idle timeout
    (1 s).  (A reply of a mebibyte fits in the kernel's socket buffers, so
    the gateway has usually written it all and closed at once.)
    """
    before = target.total("xform_idle_timeouts_total")
    with target.attack("netstring-never-reads") as run:
        socks = []
        for _ in range(20):
            sock = smallBuffers(target.port("netstring"))
            sock.sendall(netstring(b"cummingsify." + POEM * 4))
            socks.append(sock)
        gauge = 'xform_connections_open{protocol="netstring"}'
        dropped = target.waitUntil(lambda: target.metrics()[gauge] == 0, 5)
        timedOut = target.total("xform_idle_timeouts_total") - before
        for sock in socks:
            sock.close()
        run.note(clients=len(socks), timed_out=timedOut)
    assert dropped


def test_webSocketClientThatNeverReads(target):
    """
    A WebSocket client sends requests of 256 KiB and never reads the
    answers: the gateway stops reading from it, or drops it, once its
    unread answers pass a bound, and its memory stays bounded.
    """
    request = text(rpc("transform", ["cummingsify", POEM.decode()]))
    with target.attack("ws-never-reads") as run:
        with smallBuffers(target.port("web"), upgrade=True) as sock:
            outcome = neverReads(target, sock, itertools.repeat(request))
        run.note(outcome=outcome)
    assert outcome in ("paused", "dropped")


def test_httpClientThatNeverReads(target):
    """
    An HTTP client pipelines requests of 256 KiB on one connection and
    never reads the answers: the gateway stops reading from it, or drops
    it, once its unread answers pass a bound, and its memory stays bounded.
    """
    request = httpRequest("POST", "/transform/cummingsify", POEM)
    with target.attack("http-never-reads") as run:
        with smallBuffers(target.port("web")) as sock:
            outcome = neverReads(target, sock, itertools.repeat(request))
        run.note(outcome=outcome)
    assert outcome in ("paused", "dropped")
