"""
The gateway as an operator runs it, as real processes on loopback: its
metrics after known traffic over every protocol, health and readiness, the
connection caps (127.0.0.2 and up are other client addresses: all of 127/8
is loopback), and the drain on SIGTERM under C{xform serve}, C{twist} and
C{twistd}: requests in flight finish, or are cut at the drain timeout, or
at once on a second signal; the process exits 0 either way.
"""

import http.client
import json
import signal
import socket
import sys
import threading
import time
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect

from gateway import syncclient
from gateway.schemes import SCHEMES
from gateway.server import LISTENERS
from gateway.urls import parseServerURL
from tests.helpers import PLAIN_SCHEMES, GatewayProcess, HeldUpstream

POEM = "Science! True daughter of Old Time thou art!\nWho alterest all things with thy peering eyes."


def metricsGateway(*arguments: str, listeners=tuple(LISTENERS), command=None) -> GatewayProcess:
    """
    A gateway with its C{--metrics} listener on a free port too, started.
    """
    process = GatewayProcess(
        "--metrics", "tcp:0:interface=127.0.0.1", *arguments, listeners=listeners, command=command
    )
    process.start()
    process.waitForLog(lambda: "metrics" in process.ports, what="the metrics listener")
    return process


def get(port: int, path: str) -> tuple[int, bytes]:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        connection.request("GET", path)
        response = connection.getresponse()
        return response.status, response.read()
    finally:
        connection.close()


def samples(port: int) -> dict[tuple[str, tuple], float]:
    """
    Every sample of the gateway's C{/metrics}, parsed by
    C{prometheus_client}, by name and labels.
    """
    status, body = get(port, "/metrics")
    assert status == 200
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(body.decode())
        for sample in family.samples
    }


def requests(found: dict, protocol: str, transform: str, outcome: str) -> float:
    labels = (("outcome", outcome), ("protocol", protocol), ("transform", transform))
    return found.get(("xform_requests_total", labels), 0)


def transform(process: GatewayProcess, scheme: str, name: str, poem: str, timeout: float = 30.0) -> str:
    return SCHEMES[scheme].transform(parseServerURL(process.url(scheme)), name, poem, timeout)


@pytest.fixture(scope="module")
def gateway():
    process = metricsGateway()
    yield process
    process.stop()


def test_metricsCountEveryProtocol(gateway):
    """
    Three answered requests and one refused over each protocol show as
    three and one, by protocol, transform and outcome, in the latency
    histogram, and in the bytes each way.
    """
    before = samples(gateway.ports["metrics"])
    for scheme in PLAIN_SCHEMES:
        for _ in range(3):
            assert transform(gateway, scheme, "rot13", "poem") == "cbrz"
        with pytest.raises(syncclient.ClientError):
            transform(gateway, scheme, "no-such-transform", "poem")
    after = samples(gateway.ports["metrics"])
    for scheme in PLAIN_SCHEMES:
        protocol = scheme
        assert requests(after, protocol, "rot13", "ok") - requests(before, protocol, "rot13", "ok") == 3, (
            scheme
        )
        refused = requests(after, protocol, "other", "unknown-transform")
        assert refused - requests(before, protocol, "other", "unknown-transform") == 1, scheme
        count = ("xform_request_duration_seconds_count", (("protocol", protocol),))
        assert after[count] - before.get(count, 0) == 4, scheme
        for name in ["xform_received_bytes_total", "xform_sent_bytes_total"]:
            key = (name, (("protocol", protocol),))
            assert after[key] > before.get(key, 0), (scheme, name)
    assert after["xform_transforms_in_flight", ()] == 0


def test_healthAndReadiness(gateway):
    """
    C{/healthz} and C{/readyz} answer in JSON on the web listener and on
    the metrics listener, which also serves C{/metrics}; none of them is
    written to the log, however often asked.
    """
    for port in [gateway.ports["web"], gateway.ports["metrics"]]:
        for _ in range(3):
            assert get(port, "/healthz") == (200, b'{"status": "ok"}\n')
            assert get(port, "/readyz") == (200, b'{"status": "ready"}\n')
    assert get(gateway.ports["metrics"], "/transforms")[0] == 404
    assert get(gateway.ports["web"], "/metrics")[0] == 200
    assert not [line for line in gateway.log if "/healthz" in line or "/readyz" in line or "/metrics" in line]


def openConnection(port: int, source: str) -> socket.socket:
    return socket.create_connection(("127.0.0.1", port), timeout=5, source_address=(source, 0))


def closedAtOnce(connection: socket.socket) -> bool:
    """
    Whether the gateway closed C{connection} without a byte.
    """
    with connection:
        try:
            return connection.recv(1) == b""
        except ConnectionResetError:
            return True


def test_connectionCaps():
    """
    Past the cap per address, a connection from that address is closed at
    once and another address is served; past the total cap, any new
    connection is closed (HTTP: answered 503 with Retry-After first).
    Each refusal shows in the metrics, which the caps never keep from
    answering.
    """
    process = metricsGateway("--max-connections", "4", "--max-connections-per-peer", "2")
    netstring, web = process.ports["netstring"], process.ports["web"]
    try:
        held = [openConnection(netstring, "127.0.0.1") for _ in range(2)]
        assert closedAtOnce(openConnection(netstring, "127.0.0.1"))
        with openConnection(netstring, "127.0.0.2") as other:
            other.sendall(b"23:cummingsify.HELLO WORLD,")
            assert other.recv(100) == b"11:hello world,"
        held += [openConnection(netstring, "127.0.0.2"), openConnection(netstring, "127.0.0.3")]
        assert get(process.ports["metrics"], "/readyz")[0] == 503
        assert closedAtOnce(openConnection(netstring, "127.0.0.4"))
        busy = http.client.HTTPConnection("127.0.0.1", web, timeout=5, source_address=("127.0.0.4", 0))
        busy.request("GET", "/transforms")
        response = busy.getresponse()
        assert (response.status, response.getheader("Retry-After")) == (503, "1")
        assert json.loads(response.read())["error"] == "overloaded"
        found = samples(process.ports["metrics"])
        refused = "xform_connections_refused_total"
        assert found[refused, (("limit", "connections-per-peer"), ("protocol", "netstring"))] == 1
        assert found[refused, (("limit", "connections"), ("protocol", "netstring"))] == 1
        assert found[refused, (("limit", "connections"), ("protocol", "http"))] == 1
        assert found["xform_connections_open", (("protocol", "netstring"),)] == 4
        for connection in held:
            connection.close()
    finally:
        assert process.stop() == 0


class HeldRequest(threading.Thread):
    """
    A transform of L{POEM} over C{scheme}, in a thread, that the gateway's
    upstream, a L{HeldUpstream} given to it, holds until released: a
    request in flight when a signal comes.  L{outcome} is the answer (the
    poem in capitals) or the error.
    """

    def __init__(self, process: GatewayProcess, upstream: HeldUpstream, scheme: str = "http") -> None:
        super().__init__(daemon=True)
        self.process, self.upstream, self.scheme = process, upstream, scheme
        self.outcome: object = None

    def run(self) -> None:
        try:
            self.outcome = transform(self.process, self.scheme, "held:capitals", POEM, 60)
        except syncclient.ClientError as error:
            self.outcome = error

    def startInFlight(self) -> "HeldRequest":
        """
        Start it, and wait until the upstream holds it.
        """
        self.start()
        assert self.upstream.received.wait(20), "the request never reached the upstream"
        return self


def test_drainFinishesRequestsInFlight():
    """
    On SIGTERM the gateway stops listening and turns unready at once; the
    request in flight gets its answer; an idle WebSocket is closed with
    1001, idle HTTP and AMP connections are closed; then it exits 0.
    """
    upstream = HeldUpstream()
    process = metricsGateway("--deadline", "60", *upstream.arguments)
    try:
        with upstream, connect(process.url("ws")) as idleSocket:
            idleHTTP = http.client.HTTPConnection("127.0.0.1", process.ports["web"], timeout=10)
            idleHTTP.request("GET", "/transforms")
            idleHTTP.getresponse().read()
            idleAMP = openConnection(process.ports["amp"], "127.0.0.1")
            slow = HeldRequest(process, upstream).startInFlight()
            process.process.send_signal(signal.SIGTERM)
            process.waitForLog(lambda: process.logged("draining"), what="the drain")
            assert get(process.ports["metrics"], "/readyz")[0] == 503
            with pytest.raises(ConnectionRefusedError):
                socket.create_connection(("127.0.0.1", process.ports["netstring"]), timeout=5)
            with pytest.raises(ConnectionClosed):
                idleSocket.recv(10)
            assert idleSocket.close_code == 1001
            assert closedAtOnce(idleAMP)
            assert idleHTTP.sock.recv(1) == b""
            upstream.release()
            slow.join(60)
            assert slow.outcome == POEM.upper()
            assert process.wait(20) == 0
            assert process.logged("drained: every connection is closed")
    finally:
        process.stop()


def test_drainTimeoutCutsWhatIsLeft():
    """
    A request still in flight at the drain timeout is cut, and the process
    exits 0 without waiting for it.
    """
    upstream = HeldUpstream()
    process = metricsGateway("--deadline", "60", "--drain-timeout", "0.2", *upstream.arguments)
    try:
        slow = HeldRequest(process, upstream, "ws").startInFlight()
        signalled = time.monotonic()
        process.process.send_signal(signal.SIGTERM)
        assert process.wait(20) == 0
        slow.join(20)
        assert isinstance(slow.outcome, syncclient.ClientError), slow.outcome
        assert time.monotonic() - signalled < 3
        assert process.logged("drain timed out; cutting the connections left (1)")
    finally:
        upstream.close()
        process.stop()


def test_secondSignalCutsTheDrainShort():
    """
    A second signal during the drain cuts it short: the process exits at
    once, 0, though its drain timeout is far off.
    """
    upstream = HeldUpstream()
    process = metricsGateway("--deadline", "60", "--drain-timeout", "30", *upstream.arguments)
    try:
        slow = HeldRequest(process, upstream, "amp").startInFlight()
        process.process.send_signal(signal.SIGTERM)
        process.waitForLog(lambda: process.logged("draining"), what="the drain")
        signalled = time.monotonic()
        process.process.send_signal(signal.SIGINT)
        assert process.wait(20) == 0
        assert time.monotonic() - signalled < 3
        slow.join(20)
        assert isinstance(slow.outcome, syncclient.ClientError), slow.outcome
        assert process.logged("SIGINT again: cutting the drain short")
    finally:
        upstream.close()
        process.stop()


BIN = Path(sys.executable).parent

#: The gateway under each runner; twistd writes its pid file where told.
RUNNERS = {
    "twist": (str(BIN / "twist"), "--log-format=text", "xform-gateway"),
    "twistd": (str(BIN / "twistd"), "--nodaemon", "--pidfile=", "xform-gateway"),
}


@pytest.mark.parametrize("runner", sorted(RUNNERS))
def test_drainUnderTwistedRunners(runner):
    """
    Under C{twist} and C{twistd -n}, SIGTERM drains the same way: the
    request in flight gets its answer, and the process exits 0.
    """
    upstream = HeldUpstream()
    process = metricsGateway(
        "--deadline", "60", *upstream.arguments, listeners=("web",), command=RUNNERS[runner]
    )
    try:
        slow = HeldRequest(process, upstream).startInFlight()
        process.process.send_signal(signal.SIGTERM)
        process.waitForLog(lambda: process.logged("draining"), what="the drain")
        upstream.release()
        assert process.wait(30) == 0
        slow.join(30)
        assert slow.outcome == POEM.upper()
        assert process.logged("drained: every connection is closed")
    finally:
        upstream.close()
        process.stop()
