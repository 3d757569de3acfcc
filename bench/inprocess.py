"""
What a request costs the gateway's protocols, measured in this process
without sockets, against the baselines' protocols measured the same way:
figures that other load on the machine moves little (CPU time) or not at
all (instructions).

    .venv/bin/python bench/inprocess.py cpu [SCENARIO ...] [--rounds 5]
    .venv/bin/python bench/inprocess.py instructions [SCENARIO ...]
    .venv/bin/python bench/inprocess.py memory [SCENARIO ...]
    .venv/bin/python bench/inprocess.py cpu --tree /tmp/base   # another checkout's code

Each scenario drives the real server factory (the gateway's service,
connection caps and metrics observer, as C{xform serve} builds them, on the
global reactor, which never runs) and its baseline's protocol with the
same requests, on C{StringTransport}s:

  - C{ns-200}, C{ns-100k}: a connection per request, as loadgen's netstring
    mode: the protocol is built and connected, the reactor's timers are
    run once (as between the accept and the first read), the request
    arrives in reads of 64 KiB (as Twisted's TCP transport reads), then
    the connection is lost;
  - C{amp-200}: 200 B C{Transform} questions on one connection, sixteen
    per read (loadgen keeps 8 x 16 in flight);
  - C{amp-60k}: 60 KB questions, one per read.

C{cpu} runs each server in a fresh process pinned to core 1, alternating
the gateway and its baseline, for several rounds, and gives the CPU time per
request (the best of 15 batches in each process), the medians of the
rounds and the baseline's time over the gateway's: the throughput ratio
the protocols alone would allow.  C{instructions} runs each twice under
C{valgrind --tool=callgrind} with two numbers of requests and gives the
instructions per request (the difference over the difference): the same
from run to run, whatever the load.  C{memory} opens 2,000 idle connections
(nothing received) and gives the bytes C{tracemalloc} sees allocated per
connection, transport objects excluded.  Every answer is checked once.
Nothing here asserts a speed; the sockets, the reactor's loop and the
kernel are what C{make bench} adds.
"""

import argparse
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(HERE / "baselines"))

from harness import MALLOC  # noqa: E402

#: What the scenarios send: 200 B of upper-case ASCII, as loadgen does.
SMALL = ("ABCDEFGHIJ " * 20)[:200]
LARGE = ("ABCDEFGHIJ KLMNOPQRS\n" * 5000)[:100_000]
MEDIUM = LARGE[:60_000]

#: A scenario: makes the server and returns C{run(count)}, which serves
#: C{count} requests and checks the answers of the first.
Driver = Callable[[int], None]


def _address():
    from twisted.internet.address import IPv4Address

    return IPv4Address("TCP", "127.0.0.1", 40000)


def _gatewayParts(protocol: str):
    """
    The service, connection registry and observer C{xform serve} gives the
    factory of C{protocol}, with its defaults.
    """
    from twisted.internet import reactor

    from gateway.metrics import GatewayMetrics
    from protocols.connections import Connections
    from service import Limits, TransformService, builtinCatalogue

    service = TransformService(builtinCatalogue(reactor), reactor, Limits())
    connections = Connections(512, 128)
    observer = GatewayMetrics(service, connections, lambda: True).protocols[protocol]
    return service, connections, observer


def _netstringDriver(factory, poem: str) -> Driver:
    from twisted.internet import reactor
    from twisted.internet.error import ConnectionDone
    from twisted.internet.testing import StringTransport
    from twisted.python.failure import Failure

    payload = b"cummingsify." + poem.encode()
    request = b"%d:%s," % (len(payload), payload)
    # Twisted's TCP transport reads at most 64 KiB at a time.
    reads = [request[start : start + 65536] for start in range(0, len(request), 65536)]
    expected = poem.lower().encode()
    expected = b"%d:%s," % (len(expected), expected)
    address = _address()
    done = Failure(ConnectionDone())

    def run(count: int) -> None:
        for number in range(count):
            protocol = factory.buildProtocol(address)
            transport = StringTransport(peerAddress=address)
            protocol.makeConnection(transport)
            reactor.runUntilCurrent()
            for read in reads:
                protocol.dataReceived(read)
            if number == 0 and transport.value() != expected:
                raise AssertionError(f"wrong answer: {transport.value()[:60]!r}")
            protocol.connectionLost(done)
        reactor.runUntilCurrent()

    return run


def netstringGateway(poem: str) -> Driver:
    from twisted.internet import reactor

    from protocols.netstring import TransformFactory

    service, connections, observer = _gatewayParts("netstring")
    return _netstringDriver(
        TransformFactory(service, reactor, connections=connections, observer=observer), poem
    )


def netstringTutorial(poem: str) -> Driver:
    from tutorial_netstring import TutorialTransformProtocol
    from twisted.internet.protocol import ServerFactory

    return _netstringDriver(ServerFactory.forProtocol(TutorialTransformProtocol), poem)


def _ampDriver(factory, poem: str, perRead: int) -> Driver:
    from twisted.internet.testing import StringTransport

    from protocols.amp.wire import decodeBoxes, encodeBox

    def question(tag: int) -> bytes:
        return encodeBox(
            [
                (b"_command", b"Transform"),
                (b"_ask", b"%x" % tag),
                (b"transform", b"cummingsify"),
                (b"poem", poem.encode()),
            ]
        )

    # Every question is answered within the read that brings it, so the
    # same tags can come again in the next read.
    read = b"".join(question(tag) for tag in range(perRead))
    address = _address()
    protocol = factory.buildProtocol(address)
    transport = StringTransport(peerAddress=address)
    protocol.makeConnection(transport)
    expected = poem.lower().encode()
    checked = []

    def run(count: int) -> None:
        for _ in range(max(1, count // perRead)):
            protocol.dataReceived(read)
            if not checked:
                checked.append(True)
                answers = decodeBoxes(transport.value())
                if len(answers) != perRead or any(box.get(b"poem") != expected for box in answers):
                    raise AssertionError(f"wrong answers: {transport.value()[:80]!r}")
            transport.clear()

    return run


def ampGateway(poem: str, perRead: int) -> Driver:
    from twisted.internet import reactor

    from protocols.amp.server import TransformAMPFactory

    service, connections, observer = _gatewayParts("amp")
    factory = TransformAMPFactory(service, reactor, connections=connections, observer=observer)
    return _ampDriver(factory, poem, perRead)


def ampBare(poem: str, perRead: int) -> Driver:
    from twisted.internet.protocol import Factory
    from twisted_amp import TransformAMP

    return _ampDriver(Factory.forProtocol(TransformAMP), poem, perRead)


#: Each scenario's servers: the gateway first, then its baseline.
SCENARIOS: dict[str, dict[str, Callable[[], Driver]]] = {
    "ns-200": {
        "gateway": lambda: netstringGateway(SMALL),
        "tutorial NetstringReceiver": lambda: netstringTutorial(SMALL),
    },
    "ns-100k": {
        "gateway": lambda: netstringGateway(LARGE),
        "tutorial NetstringReceiver": lambda: netstringTutorial(LARGE),
    },
    "amp-200": {
        "gateway": lambda: ampGateway(SMALL, 16),
        "bare Twisted AMP": lambda: ampBare(SMALL, 16),
    },
    "amp-60k": {
        "gateway": lambda: ampGateway(MEDIUM, 1),
        "bare Twisted AMP": lambda: ampBare(MEDIUM, 1),
    },
}

#: Requests per batch, by scenario: batches of about 50 ms.
BATCH = {"ns-200": 1000, "ns-100k": 200, "amp-200": 2000, "amp-60k": 400}


def cpuPerRequest(scenario: str, server: str, batches: int = 15) -> float:
    """
    The CPU time, in microseconds, one request costs: the best of
    C{batches} batches.
    """
    run = SCENARIOS[scenario][server]()
    count = BATCH[scenario]
    run(count)  # warm up
    best = float("inf")
    for _ in range(batches):
        started = time.process_time()
        run(count)
        best = min(best, time.process_time() - started)
    return best / count * 1e6


def _child(mode: str, scenario: str, server: str, count: int, tree: str | None, pin: bool) -> str:
    # The harness's allocator settings (bench/README.md): without them, glibc
    # maps and unmaps every 100 KB buffer, which costs more than the work.
    environment = dict(os.environ, PYTHONHASHSEED="0", **MALLOC)
    if tree:
        environment["PYTHONPATH"] = tree
    command = [sys.executable, __file__, mode, scenario, "--server", server, "--count", str(count)]
    if mode == "instructions-child":
        command = ["valgrind", "--tool=callgrind", "--callgrind-out-file=/dev/null", *command]
    if pin:
        command = ["taskset", "-c", "1", *command]
    done = subprocess.run(command, capture_output=True, text=True, env=environment, cwd=tempfile.gettempdir())
    if done.returncode:
        raise RuntimeError(f"{scenario} {server} failed:\n{done.stderr[-3000:]}")
    return done.stdout + done.stderr


def measureCPU(scenarios: list[str], rounds: int, tree: str | None) -> None:
    for scenario in scenarios:
        servers = list(SCENARIOS[scenario])
        costs: dict[str, list[float]] = {server: [] for server in servers}
        for number in range(rounds):
            for server in servers[number % 2 :] + servers[: number % 2]:
                costs[server].append(float(_child("cpu-child", scenario, server, 0, tree, pin=True)))
        gateway, base = (statistics.median(costs[server]) for server in servers)
        spread = ", ".join(
            f"{server}: {min(costs[server]):.2f}-{max(costs[server]):.2f}" for server in servers
        )
        print(
            f"{scenario:8} gateway {gateway:8.2f} us CPU per request, {servers[1]} {base:8.2f}: "
            f"ratio {base / gateway:.2f}x   (rounds {spread})",
            flush=True,
        )


_COLLECTED = re.compile(r"Collected : (\d+)")


def measureInstructions(scenarios: list[str], tree: str | None) -> None:
    for scenario in scenarios:
        perRequest = {}
        for server in SCENARIOS[scenario]:
            small, large = BATCH[scenario] // 10, BATCH[scenario] // 10 * 3
            counts = [
                int(
                    _COLLECTED.search(_child("instructions-child", scenario, server, count, tree, pin=False))[
                        1
                    ]
                )
                for count in (small, large)
            ]
            perRequest[server] = (counts[1] - counts[0]) / (large - small)
        (gateway, gatewayCost), (base, baseCost) = perRequest.items()
        print(
            f"{scenario:8} gateway {gatewayCost:12,.0f} instructions per request, {base} {baseCost:12,.0f}: "
            f"ratio {baseCost / gatewayCost:.2f}x",
            flush=True,
        )


def memoryPerConnection(scenario: str, server: str, count: int = 2000) -> float:
    """
    The bytes allocated per idle connection, as C{tracemalloc} counts them,
    the transports excluded.
    """
    import gc
    import tracemalloc

    from twisted.internet.testing import StringTransport

    address = _address()
    transports = [StringTransport(peerAddress=address) for _ in range(count)]
    protocolFactory = _factoryOf(scenario, server)
    protocolFactory.buildProtocol(address).makeConnection(StringTransport(peerAddress=address))
    gc.collect()
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    held = []
    for transport in transports:
        protocol = protocolFactory.buildProtocol(address)
        protocol.makeConnection(transport)
        held.append(protocol)
    gc.collect()
    after = tracemalloc.get_traced_memory()[0]
    tracemalloc.stop()
    return (after - before) / count


def _factoryOf(scenario: str, server: str):
    from twisted.internet import reactor
    from twisted.internet.protocol import Factory, ServerFactory

    if scenario.startswith("ns"):
        if server == "gateway":
            from protocols.netstring import TransformFactory

            service, connections, observer = _gatewayParts("netstring")
            connections.maxConnections = connections.maxPerPeer = None
            return TransformFactory(service, reactor, connections=connections, observer=observer)
        from tutorial_netstring import TutorialTransformProtocol

        return ServerFactory.forProtocol(TutorialTransformProtocol)
    if server == "gateway":
        from protocols.amp.server import TransformAMPFactory

        service, connections, observer = _gatewayParts("amp")
        connections.maxConnections = connections.maxPerPeer = None
        return TransformAMPFactory(service, reactor, connections=connections, observer=observer)
    from twisted_amp import TransformAMP

    return Factory.forProtocol(TransformAMP)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.strip().split("\n\n")[0])
    parser.add_argument(
        "mode", choices=["cpu", "instructions", "memory", "cpu-child", "instructions-child", "memory-child"]
    )
    parser.add_argument("scenarios", nargs="*", metavar="SCENARIO", help=f"one of {', '.join(SCENARIOS)}")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--tree", help="measure the code of this checkout (put first on PYTHONPATH)")
    parser.add_argument("--server", help=argparse.SUPPRESS)
    parser.add_argument("--count", type=int, help=argparse.SUPPRESS)
    options = parser.parse_args()
    options.scenarios = options.scenarios or list(SCENARIOS)
    for scenario in options.scenarios:
        if scenario not in SCENARIOS:
            parser.error(f"unknown scenario {scenario!r}: choose among {', '.join(SCENARIOS)}")
    tree = str(Path(options.tree).resolve()) if options.tree else None
    if options.mode == "cpu-child":
        print(cpuPerRequest(options.scenarios[0], options.server))
    elif options.mode == "instructions-child":
        run = SCENARIOS[options.scenarios[0]][options.server]()
        run(BATCH[options.scenarios[0]] // 10)  # warm up
        run(options.count)
    elif options.mode == "memory-child":
        print(memoryPerConnection(options.scenarios[0], options.server))
    else:
        print(f"code of {tree or ROOT}; load average {os.getloadavg()[0]:.2f}", flush=True)
        if options.mode == "cpu":
            measureCPU(options.scenarios, options.rounds, tree)
        elif options.mode == "instructions":
            measureInstructions(options.scenarios, tree)
        else:
            for scenario in options.scenarios:
                if scenario not in ("ns-200", "amp-200"):
                    continue
                sizes = {
                    server: float(_child("memory-child", scenario, server, 0, tree, pin=False))
                    for server in SCENARIOS[scenario]
                }
                (gateway, gatewaySize), (base, baseSize) = sizes.items()
                print(
                    f"idle {scenario[:-4]:9} gateway {gatewaySize:7,.0f} B per connection, {base} "
                    f"{baseSize:7,.0f}: ratio {gatewaySize / baseSize:.2f}x",
                    flush=True,
                )


if __name__ == "__main__":
    main()
