"""
What one WebSocket JSON-RPC or HTTP request costs the gateway, against the
bare servers, in measures that other load on the machine moves little:

    .venv/bin/python bench/web_cost.py inprocess ws-200 ws-100k http-200 --rounds 5
    .venv/bin/python bench/web_cost.py callgrind ws-200
    .venv/bin/python bench/web_cost.py sockets ws-200 --rounds 3 --duration 3

C{inprocess} drives one server protocol on an in-memory transport, without
sockets: the gateway's web site as C{xform serve} builds it (metrics,
connection caps, origin policy), or the bare server of the scenario
(C{bench/baselines/autobahn_ws.py}'s protocol on its own Autobahn factory,
C{bench/baselines/twisted_web.py}'s site).  A WebSocket is opened through
its handshake, then sent the scenario's requests as loadgen sends them
(masked text frames, sixteen to a read for 200 B, reads of 64 KiB for
100 KB); an HTTP channel gets wrk's request, one at a time on a keep-alive
connection.  Every answer is counted in what the server wrote.  Each run is
a fresh process pinned to core 1, the servers alternating; it prints the
CPU time per request, the best of several batches, and for each scenario
the medians over the rounds and their ratio (bare over gateway: above 1,
the gateway spends less).

With C{--before NAME=DIR} (repeatable), the gateway of an earlier source
tree (C{git archive COMMIT | tar -x -C DIR}) is measured too, as the server
NAME, in the same run: what a change bought.

C{callgrind} counts the instructions per request with valgrind's callgrind
(no timing at all: the count is the same on a busy machine): the same
driver run for N and 2N requests, the difference over N.  C{--keep} writes
the 2N run's profile to C{bench/results/callgrind-SERVER-SCENARIO.out}, for
C{callgrind_annotate}.

C{sockets} runs the servers as C{bench/run.py} does, each its own process
on core 1 driven by loadgen or wrk on core 0, and takes the server's CPU
time (user and system, from C{/proc}) per request besides its req/s: at
saturation throughput is the inverse of that cost, which other work on the
machine moves much less than it moves the req/s.  It includes the kernel's
share (reads, writes, C{epoll}) that the in-process driver leaves out, and
the C{websockets} baseline, which has no in-process equivalent here.

No test asserts a speed.
"""

import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path[:0] = [str(HERE), str(HERE / "baselines")]

import harness  # noqa: E402

SCENARIOS = ("ws-200", "ws-100k", "http-200")

#: The source trees of earlier gateways, by the name they are measured as
#: (C{--before}).
EARLIER: dict[str, Path] = {}

#: The poem bytes of each scenario, and how many requests make one batch.
SIZES = {"ws-200": 200, "ws-100k": 100_000, "http-200": 200}
REQUESTS = {"ws-200": 4000, "ws-100k": 200, "http-200": 2000}

WORDS = "THE MOON IS A SILVER SPOON AND I HAVE WALKED ALL NIGHT THROUGH RAIN WHERE LITTLE SPARROWS".split()


def makePoem(size: int) -> str:
    """
    Upper-case words in lines of at most 60 characters, C{size} bytes
    ending in a newline, as loadgen's and wrk's poems are.
    """
    lines, line, length = [], "", 0
    index = 0
    while length < size:
        word = WORDS[index % len(WORDS)]
        index += 1
        if line and len(line) + 1 + len(word) > 60:
            lines.append(line)
            length += len(line) + 1
            line = word
        else:
            line = f"{line} {word}" if line else word
    text = "\n".join([*lines, line])
    return text[: size - 1] + "\n"


# -- in process ----------------------------------------------------------------


def _frame(payload: bytes, mask: bytes = b"\x37\xfa\x21\x3d") -> bytes:
    """
    One masked text frame, as a client sends it.
    """
    length = len(payload)
    if length < 126:
        header = bytes([0x81, 0x80 | length])
    elif length < 65536:
        header = bytes([0x81, 0x80 | 126]) + length.to_bytes(2, "big")
    else:
        header = bytes([0x81, 0x80 | 127]) + length.to_bytes(8, "big")
    key = int.from_bytes(mask * (length // 4 + 1), "little")
    masked = (int.from_bytes(payload, "little") ^ key).to_bytes(length + 4, "little")[:length]
    return header + mask + masked


HANDSHAKE = (
    b"GET /ws HTTP/1.1\r\nHost: 127.0.0.1:8080\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
    b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
)


class Driver:
    """
    One server's protocol on an in-memory transport, sent a scenario's
    requests.

    @ivar reads: what each C{dataReceived} gets, and how many answers each
        must bring.
    """

    def __init__(self, server: str, scenario: str, requests: int) -> None:
        from twisted.internet import reactor

        self.reactor = reactor
        self.server = server
        self.scenario = scenario
        poem = makePoem(SIZES[scenario])
        if scenario.startswith("ws"):
            self.factory = self._webSocketFactory() if server == "bare" else self._gatewaySite()
            self.marker = b'"result":{"poem":"' + json.dumps(poem.lower())[1:-1].encode()[:40]
            self.reads = self._frames(poem, requests)
        else:
            self.factory = self._bareSite() if server == "bare" else self._gatewaySite()
            self.marker = b"HTTP/1.1 200 OK"
            body = poem.encode()
            request = (
                b"POST /transform/cummingsify HTTP/1.1\r\nHost: 127.0.0.1:8080\r\n"
                b"Content-Length: %d\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n%s" % (len(body), body)
            )
            self.reads = [(request, 1)] * requests

    def _frames(self, poem: str, requests: int) -> list[tuple[bytes, int]]:
        tail = json.dumps({"method": "transform", "params": {"transform": "cummingsify", "poem": poem}})
        frames = [_frame(f'{{"jsonrpc":"2.0","id":{n},{tail[1:]}'.encode()) for n in range(requests)]
        if len(frames[0]) < 4096:  # sixteen in flight arrive together
            return [(b"".join(frames[n : n + 16]), len(frames[n : n + 16])) for n in range(0, requests, 16)]
        reads = []
        for frame in frames:  # a read of 64 KiB at most, as Twisted reads
            pieces = [frame[offset : offset + 65536] for offset in range(0, len(frame), 65536)]
            reads += [(piece, 0) for piece in pieces[:-1]] + [(pieces[-1], 1)]
        return reads

    def _gatewaySite(self):
        import txaio

        from gateway.metrics import GatewayMetrics
        from gateway.web import makeSite
        from protocols.connections import Connections
        from protocols.origins import OriginPolicy
        from service import Limits, TransformService, builtinCatalogue

        txaio.use_twisted()
        service = TransformService(builtinCatalogue(self.reactor), self.reactor, Limits())
        connections = Connections(100_000, 100_000)
        metrics = GatewayMetrics(service, connections, lambda: True)
        # The timers are long so that none is due while measured: the
        # reactor does not run here.
        return makeSite(
            service,
            {},
            OriginPolicy(),
            self.reactor,
            idleTimeout=3600,
            connections=connections,
            metrics=metrics,
            webSocketIdleTimeout=3600,
            pingInterval=3600,
        )

    def _webSocketFactory(self):
        from autobahn.twisted.websocket import WebSocketServerFactory
        from autobahn_ws import TransformWebSocket

        factory = WebSocketServerFactory(reactor=self.reactor)
        factory.protocol = TransformWebSocket
        return factory

    def _bareSite(self):
        from twisted_web import site

        return site()

    def connect(self):
        """
        A new connection, its WebSocket open if the scenario has one.

        @return: the transport.
        """
        from twisted.internet.address import IPv4Address
        from twisted.internet.testing import StringTransport

        address = IPv4Address("TCP", "127.0.0.1", 40000)
        transport = StringTransport(peerAddress=address, hostAddress=IPv4Address("TCP", "127.0.0.1", 8080))
        transport.protocol = self.factory.buildProtocol(address)
        transport.protocol.makeConnection(transport)
        if self.scenario.startswith("ws"):
            transport.protocol.dataReceived(HANDSHAKE)
            if b"101 Switching Protocols" not in transport.value():
                raise SystemExit(f"no WebSocket: {transport.value()[:300]!r}")
            transport.clear()
        return transport

    def batch(self) -> float:
        """
        Send every request on a new connection.

        @return: the CPU seconds it took.
        """
        from twisted.internet.error import ConnectionDone
        from twisted.python.failure import Failure

        transport = self.connect()
        answered = 0
        started = time.process_time()
        for data, answers in self.reads:
            transport.protocol.dataReceived(data)
            if answers:
                answered += transport.value().count(self.marker)
                transport.clear()
        spent = time.process_time() - started
        if answered != sum(answers for _, answers in self.reads):
            raise SystemExit(f"{self.server} {self.scenario}: {answered} answers for {len(self.reads)} reads")
        transport.protocol.connectionLost(Failure(ConnectionDone()))
        return spent


def requestCost(server: str, scenario: str, requests: int, batches: int) -> float:
    """
    The CPU time, in microseconds, that C{server} spends on one request of
    C{scenario}: the best of C{batches} batches of C{requests}.
    """
    driver = Driver(server, scenario, requests)
    return min(driver.batch() for _ in range(batches)) / requests * 1e6


def _requestCommand(server: str, scenario: str, *options: str) -> tuple[list[str], dict[str, str]]:
    """
    The command measuring C{server} (C{gateway}, C{bare}, or the name of
    an earlier gateway given with C{--before}) on C{scenario}, and its
    environment.
    """
    environment = {**os.environ, **harness.MALLOC}
    if server in EARLIER:
        # The earlier tree's packages come before this one's, which the
        # virtual environment's editable install puts on the path.
        environment["PYTHONPATH"] = str(EARLIER[server])
        server = "gateway"
    return [sys.executable, __file__, "request", scenario, "--server", server, *options], environment


def _compared(scenario: str, costs: dict[str, float], unit: str) -> None:
    """
    Print each server's cost, and the ratios: the bare server's over each
    gateway's, each earlier gateway's over this one's.
    """
    ratios = []
    if "bare" in costs:
        ratios += [
            f"bare / {server} {costs['bare'] / cost:.2f}"
            for server, cost in costs.items()
            if server != "bare"
        ]
    if "gateway" in costs:
        ratios += [
            f"{name} / gateway {costs[name] / costs['gateway']:.2f}" for name in costs if name in EARLIER
        ]
    line = ", ".join(f"{server} {cost:,.2f}" for server, cost in costs.items())
    print(f"{scenario}: {unit}: {line}" + (f"; {', '.join(ratios)}" if ratios else ""))


def inProcess(scenarios: list[str], servers: list[str], rounds: int) -> None:
    for scenario in scenarios:
        costs: dict[str, list[float]] = {server: [] for server in servers}
        for round in range(rounds):
            for server in servers[round % len(servers) :] + servers[: round % len(servers)]:
                command, environment = _requestCommand(server, scenario)
                done = subprocess.run(
                    harness.pinned(harness.SERVER_CORES, command),
                    capture_output=True,
                    text=True,
                    cwd=ROOT,
                    env=environment,
                )
                if done.returncode:
                    raise SystemExit(done.stderr)
                costs[server].append(float(done.stdout))
                print(
                    f"  {scenario} round {round + 1}: {server:8} {costs[server][-1]:8.2f} us CPU per request"
                )
        medians = {server: statistics.median(values) for server, values in costs.items()}
        _compared(scenario, medians, "median us CPU per request")


def instructions(server: str, scenario: str, requests: int, keep: Path | None = None) -> int:
    """
    The instructions C{server} runs to start, open a connection and answer
    C{requests} requests of C{scenario}, counted by callgrind.
    """
    command, environment = _requestCommand(server, scenario, "--requests", str(requests), "--batches", "1")
    done = subprocess.run(
        ["valgrind", "--tool=callgrind", f"--callgrind-out-file={keep or '/dev/null'}", *command],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env={**environment, "PYTHONHASHSEED": "0"},
    )
    found = re.search(r"Collected : (\d+)", done.stderr)
    if done.returncode or not found:
        raise SystemExit(done.stderr[-2000:])
    return int(found.group(1))


def callgrind(scenarios: list[str], servers: list[str], keep: bool) -> None:
    for scenario in scenarios:
        counts = {}
        for server in servers:
            requests = REQUESTS[scenario] // 4
            out = HERE / "results" / f"callgrind-{server}-{scenario}.out" if keep else None
            if out:
                out.parent.mkdir(exist_ok=True)
            once = instructions(server, scenario, requests)
            twice = instructions(server, scenario, 2 * requests, out)
            counts[server] = (twice - once) / requests
            print(f"  {scenario}: {server:8} {counts[server]:12,.0f} instructions per request", flush=True)
        _compared(scenario, counts, "instructions per request")


# -- over sockets --------------------------------------------------------------


def cpuSeconds(pid: int) -> float:
    """
    The user and system CPU time of process C{pid} so far.
    """
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def sockets(scenarios: list[str], rounds: int, duration: float, warmup: float) -> None:
    byName = {scenario.name: scenario for scenario in _runScenarios()}
    logs = HERE / "results" / "logs" / "web_cost"
    for name in scenarios:
        scenario = byName[name]
        rates: dict[str, list[float]] = {server.name: [] for server in scenario.servers}
        costs: dict[str, list[float]] = {server.name: [] for server in scenario.servers}
        with harness.Running(scenario.servers, logs / name) as running:
            for number in range(rounds):
                for each in running[number % len(running) :] + running[: number % len(running)]:
                    each.check()
                    if warmup:
                        scenario.load.measure(each.port, warmup, 0)
                    cpu = cpuSeconds(each.process.pid)
                    measure = scenario.load.measure(each.port, duration, 0)
                    perRequest = (cpuSeconds(each.process.pid) - cpu) / max(1, measure.requests) * 1e6
                    rates[each.server.name].append(measure.requestsPerSecond)
                    costs[each.server.name].append(perRequest)
                    errors = f", errors {measure.errors}" if measure.errors else ""
                    print(
                        f"  {name} round {number + 1}: {each.server.name:24} {measure.requestsPerSecond:9,.0f} req/s"
                        f"  {perRequest:8.1f} us CPU per request{errors}",
                        flush=True,
                    )
        gateway = scenario.servers[0].name
        gatewayCost = statistics.median(costs[gateway])
        for server in scenario.servers:
            cost = statistics.median(costs[server.name])
            ratio = "" if server.name == gateway else f"  {cost / gatewayCost:.2f}x (its CPU / the gateway's)"
            print(
                f"{name}: {server.name:24} {statistics.median(rates[server.name]):9,.0f} req/s"
                f"  {cost:8.1f} us CPU per request{ratio}"
            )


def _runScenarios():
    import run

    return [scenario for scenario in run.scenarios(useUvloop=True) if scenario.name in SCENARIOS]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[1])
    parser.add_argument("command", choices=["inprocess", "callgrind", "sockets", "request"])
    parser.add_argument("scenarios", nargs="*", choices=[[], *SCENARIOS], default=list(SCENARIOS))
    parser.add_argument("--server", action="append", help="gateway, bare, or a NAME of --before")
    parser.add_argument(
        "--before",
        action="append",
        default=[],
        metavar="NAME=DIR",
        help="the source of an earlier gateway, measured as the server NAME "
        "(e.g. git archive COMMIT | tar -x -C DIR)",
    )
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--requests", type=int)
    parser.add_argument("--batches", type=int, default=10)
    parser.add_argument("--duration", type=float, default=3.0)
    parser.add_argument("--warmup", type=float, default=1.0)
    parser.add_argument("--keep", action="store_true", help="callgrind: keep the profiles")
    options = parser.parse_args()
    for earlier in options.before:
        name, _, directory = earlier.partition("=")
        EARLIER[name] = Path(directory)
    servers = options.server or ["gateway", "bare", *EARLIER]
    if options.command == "request":
        if servers[0] not in ("gateway", "bare"):
            raise SystemExit("web_cost.py: measure an earlier gateway with inprocess or callgrind")
        (scenario,) = options.scenarios
        print(requestCost(servers[0], scenario, options.requests or REQUESTS[scenario], options.batches))
        return
    print(f"load average before: {os.getloadavg()[0]:.2f}", flush=True)
    if options.command == "inprocess":
        inProcess(options.scenarios, servers, options.rounds)
    elif options.command == "callgrind":
        callgrind(options.scenarios, servers, options.keep)
    else:
        harness.buildLoadgen()
        sockets(options.scenarios, options.rounds, options.duration, options.warmup)
    print(f"load average after: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
