"""
Faults, in memory: a client that leaves while its transform runs, over
every protocol, on a gateway built as C{xform serve} builds it.  (Upstreams
that never answer, answer half or reset: L{tests.test_upstream}; the
gateway killed while C{get-poetry} runs: L{tests.test_poetry_process};
the same over real sockets, against attackers: L{tests.hostile}.)
"""

import json

from twisted.internet.endpoints import HostnameEndpoint, connectProtocol

from protocols.amp.wire import encodeBox, splitValue
from protocols.netstring import encodeNetstring
from tests.helpers import captureLogs, eachScheme
from tests.memory import GATEWAY, HOST, Collector, MemoryTestCase
from tests.websocketclient import WebSocketClient

#: A request that takes many turns of slices: sixteen C{mirror} steps on
#: 200,000 newlines.
PIPELINE = "|".join(["mirror"] * 16)
POEM = "\n" * 200_000

#: What each scheme sends to ask for it, through which listener.
REQUESTS = {
    "netstring": encodeNetstring(f"{PIPELINE}.{POEM}".encode()),
    "amp": encodeBox(
        [
            (b"_ask", b"1"),
            (b"_command", b"Transform"),
            (b"transform", PIPELINE.encode()),
            *splitValue(b"poem", POEM.encode()),
        ]
    ),
    "http": (
        f"POST /transform/{PIPELINE} HTTP/1.1\r\nHost: {HOST}\r\nContent-Length: {len(POEM)}\r\n\r\n{POEM}"
    ).encode(),
    "ws": json.dumps({"jsonrpc": "2.0", "method": "transform", "params": [PIPELINE, POEM], "id": 1}),
}
LISTENER = {"netstring": "netstring", "amp": "amp", "http": "web", "ws": "web"}


@eachScheme("assertLeavingAbandonsTheWork")
class ClientLeavesTests(MemoryTestCase):
    """
    A client that goes away while its transform runs: the work stops
    before its next slice, the request no longer counts in flight, nothing
    is left scheduled, and nothing is logged as a failure.
    """

    def setUp(self):
        super().setUp()
        self.events = captureLogs(self)
        self.service = self.gateway("--deadline", "30").service

    def connect(self, scheme: str):
        """
        A client of C{scheme}, connected (and over WebSocket, its handshake
        done), that has sent nothing yet.
        """
        endpoint = HostnameEndpoint(self.reactor, HOST, GATEWAY[LISTENER[scheme]])
        client = WebSocketClient(f"ws://{HOST}:{GATEWAY['web']}/ws") if scheme == "ws" else Collector(b"")
        connectProtocol(endpoint, client)
        if scheme == "ws":
            self.assertEqual(self.successResultOf(self.network.run(client.handshake)).status_code, 101)
        self.network.flush()
        return client

    def deliver(self) -> None:
        """
        Move the bytes of every connection without letting the clock run
        what it has scheduled, the turns of sliced work among it: so that
        the client can leave between two slices, as it would between two
        turns of a real reactor.
        """
        for pump in self.network.pumps:
            pump.flush(advanceClock=False)

    def assertLeavingAbandonsTheWork(self, scheme):
        client = self.connect(scheme)
        if scheme == "ws":
            client.send(REQUESTS[scheme])
        else:
            client.transport.write(REQUESTS[scheme])
        self.deliver()
        self.assertEqual(self.service.inFlight, 1)
        steps = self.service.slicedSteps
        client.transport.abortConnection()
        self.deliver()
        self.assertEqual(self.service.inFlight, 0)
        self.network.runUntil(lambda: False, patience=60)  # whatever is left to happen, happens
        self.assertEqual(self.service.slicedSteps, steps, "a step started after the client left")
        self.assertEqual(self.reactor.getDelayedCalls(), [])
        self.assertEqual([event for event in self.events if event.get("log_failure")], [])
