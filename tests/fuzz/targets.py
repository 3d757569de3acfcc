"""
One fuzzing target per parser of the gateway, each a function of bytes
that raises (an C{AssertionError}, or whatever escaped the code under
test) when the input makes the gateway misbehave:

    - C{netstring}: the netstring server on an in-memory transport,
      checked against the model of L{tests.test_wire_properties};
    - C{amp}: the AMP server on an in-memory transport
      (L{tests.test_amp.serveAnyStream});
    - C{jsonrpc}: the JSON-RPC server, the input read as UTF-8 text,
      checked against the model of L{tests.test_wire_properties};
    - C{http}: the web face's real C{twisted.web} site, as C{xform serve}
      makes it (routes, bodies, the page's files, the WebSocket upgrade and
      what follows it), on an in-memory transport: no traceback logged,
      no C{500}, and every answer an HTTP response of a documented status.

A target reads its input as the cuts to make, then the bytes: the first
byte says how many cuts (0 to 7), each of the next two-byte words where one
falls; the rest is the stream, fed to the server in those pieces.  They
need no atheris, so the default suite replays the inputs kept.
"""

import re

import txaio
from twisted.internet.address import IPv4Address
from twisted.internet.error import ConnectionDone
from twisted.internet.testing import MemoryReactorClock, StringTransport
from twisted.python.failure import Failure

from gateway.poems import defaultPoemsDirectory, loadPoems
from gateway.web import makeSite
from protocols.origins import OriginPolicy
from service import Limits, TransformService, builtinCatalogue
from tests.test_amp import serveAnyStream
from tests.test_wire_properties import Logged, checkJSONRPC, checkNetstringServer, failures

PEER = IPv4Address("TCP", "192.0.2.7", 40000)


def cutsAndStream(data: bytes) -> tuple[list[int], bytes]:
    """
    The cuts and the stream an input stands for.
    """
    count = data[0] % 8 if data else 0
    cuts = [int.from_bytes(data[1 + 2 * n : 3 + 2 * n], "big") for n in range(count)]
    return cuts, data[1 + 2 * count :]


def netstring(data: bytes) -> None:
    cuts, stream = cutsAndStream(data)
    checkNetstringServer(stream, cuts)


def amp(data: bytes) -> None:
    cuts, stream = cutsAndStream(data)
    serveAnyStream(stream, cuts)


def jsonrpc(data: bytes) -> None:
    checkJSONRPC(data.decode("utf-8", "replace"))


class _Web:
    """
    The web face's site on a fake clock, made once: making it reads the
    page's files and the poems.
    """

    def __init__(self) -> None:
        self.clock = MemoryReactorClock()
        txaio.config.loop = self.clock  # Autobahn's timers, on the same clock
        limits = Limits(maxPoemBytes=4096, deadline=1.0)
        service = TransformService(builtinCatalogue(self.clock), self.clock, limits)
        poems = loadPoems(defaultPoemsDirectory())
        self.site = makeSite(service, poems, OriginPolicy([]), self.clock, idleTimeout=30.0)


_web: _Web | None = None

#: The statuses the web face answers with (docs/protocols.md), and
#: Twisted's own for what is not HTTP at all.
STATUSES = {b"100", b"101", b"200", b"400", b"403", b"404", b"405", b"413", b"426", b"503", b"504"}


def http(data: bytes) -> None:
    """
    The C{http} target: a stream cut at the given places into one
    connection of the web face, which must log no failure and answer only
    with the statuses docs/protocols.md lists.
    """
    global _web
    if _web is None:
        _web = _Web()
    cuts, stream = cutsAndStream(data)
    channel = _web.site.buildProtocol(PEER)
    transport = StringTransport(peerAddress=PEER)
    transport.protocol = channel  # as a real transport has it: the WebSocket takes it over
    with Logged() as events:
        channel.makeConnection(transport)
        start = 0
        for end in [*sorted({cut % (len(stream) + 1) for cut in cuts}), len(stream)]:
            if transport.disconnecting:
                break  # a real transport reads nothing more once told to close
            transport.protocol.dataReceived(stream[start:end])
            start = end
        _web.clock.advance(0)
        _web.clock.advance(2.0)  # every deadline
        transport.protocol.connectionLost(Failure(ConnectionDone()))
        _web.clock.advance(60.0)  # every timer of the connection
    assert failures(events) == []
    written = transport.value()
    for status in re.findall(rb"(?:^|\r\n)HTTP/1\.[01] (\d{3}) ", written):
        assert status in STATUSES, written[:500]
    assert not written or re.match(rb"HTTP/1\.[01] ", written), written[:200]


TARGETS = {"netstring": netstring, "amp": amp, "jsonrpc": jsonrpc, "http": http}
