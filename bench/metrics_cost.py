"""
What the metrics cost: the AMP server with the gateway's metrics observer
against the same server with none, on the 200 B AMP benchmark.

    .venv/bin/python bench/metrics_cost.py --rounds 5 --duration 5
    .venv/bin/python bench/metrics_cost.py inprocess --rounds 5

Each round runs the server twice, once each way, alternating which goes
first, pinned to core 1 with the load generator (../shared/tools/loadgen,
built into bench/.build/) on core 0: 8 connections, 16 requests in flight
each, every reply verified.  It prints each run, the medians and their
ratio, both of requests per second and of the server's CPU time per
request (user and system, from /proc): on a machine shared with other work
the first moves by tens of percent from run to run, the second much less,
and at saturation throughput is its inverse.

C{inprocess} measures without sockets, which other load on the machine
moves least: 2,000 AMP questions for 200 B poems fed in 16 KiB reads to one
server protocol on an in-memory transport, the CPU time per question taken
as the best of 15 batches, in a fresh process pinned to core 1 for each
way, alternating, for several rounds; it prints the median of each way's
rounds and their ratio.  The server is the gateway's own AMP factory, service and connection
caps; only the observer differs (L{gateway.metrics.ProtocolMetrics}, or
L{protocols.observer.UNOBSERVED}).  No test asserts a speed.
"""

import argparse
import json
import os
import socket
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
LOADGEN_SOURCE = ROOT.parent / "shared" / "tools" / "loadgen"
LOADGEN = ROOT / "bench" / ".build" / "loadgen"


def serve(observed: bool, port: int) -> None:
    """
    Serve AMP on C{port} until killed, with the metrics observer or none.
    """
    from twisted.internet import reactor

    from gateway.metrics import GatewayMetrics
    from protocols.amp.server import TransformAMPFactory
    from protocols.connections import Connections
    from protocols.observer import UNOBSERVED
    from service import Limits, TransformService, builtinCatalogue

    service = TransformService(builtinCatalogue(reactor), reactor, Limits())
    connections = Connections(512, 128)
    observer = GatewayMetrics(service, connections, lambda: True).protocols["amp"] if observed else UNOBSERVED
    factory = TransformAMPFactory(service, reactor, connections=connections, observer=observer)
    reactor.listenTCP(port, factory, interface="127.0.0.1")
    reactor.run()


def perQuestion(observed: bool, batches: int = 15, questions: int = 2000) -> float:
    """
    The CPU time, in microseconds, the AMP server spends on one question:
    the best of C{batches} batches of C{questions}.
    """
    from twisted.internet import reactor
    from twisted.internet.address import IPv4Address
    from twisted.internet.testing import StringTransport

    from gateway.metrics import GatewayMetrics
    from protocols.amp.server import TransformAMPFactory
    from protocols.amp.wire import encodeBox
    from protocols.connections import Connections
    from protocols.observer import UNOBSERVED
    from service import Limits, TransformService, builtinCatalogue

    service = TransformService(builtinCatalogue(reactor), reactor, Limits())
    connections = Connections(512, 128)
    observer = GatewayMetrics(service, connections, lambda: True).protocols["amp"] if observed else UNOBSERVED
    factory = TransformAMPFactory(service, reactor, connections=connections, observer=observer)
    poem = ("ABCDEFGHIJ " * 20)[:200].encode()
    data = b"".join(
        encodeBox(
            [
                (b"_command", b"Transform"),
                (b"_ask", b"%d" % n),
                (b"transform", b"cummingsify"),
                (b"poem", poem),
            ]
        )
        for n in range(questions)
    )
    reads = [data[offset : offset + 16384] for offset in range(0, len(data), 16384)]
    best = float("inf")
    address = IPv4Address("TCP", "127.0.0.1", 40000)
    for _ in range(batches):
        server, transport = factory.buildProtocol(address), StringTransport(peerAddress=address)
        server.makeConnection(transport)
        started = time.process_time()
        for read in reads:
            server.dataReceived(read)
            transport.clear()
        best = min(best, time.process_time() - started)
        server.connectionLost(None)
    return best / questions * 1e6


def inProcess(rounds: int) -> None:
    costs: dict[bool, list[float]] = {False: [], True: []}
    for round in range(rounds):
        for observed in (round % 2 == 0, round % 2 != 0):
            done = subprocess.run(
                ["taskset", "-c", "1", sys.executable, __file__, "question"]
                + (["--observed"] if observed else []),
                capture_output=True,
                text=True,
                check=True,
                cwd=ROOT,
            )
            costs[observed].append(float(done.stdout))
            print(
                f"round {round + 1}, {'metrics' if observed else 'no metrics':<10} {costs[observed][-1]:6.2f} us CPU per question"
            )
    without, withMetrics = statistics.median(costs[False]), statistics.median(costs[True])
    print(
        f"medians: without metrics {without:.2f} us, with {withMetrics:.2f} us: {withMetrics / without:.3f}"
    )


def freePort() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def cpuSeconds(pid: int) -> float:
    """
    The user and system CPU time of process C{pid} so far.
    """
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def run(observed: bool, duration: float) -> dict:
    port = freePort()
    server = subprocess.Popen(
        ["taskset", "-c", "1", sys.executable, __file__, "serve", "--port", str(port)]
        + (["--observed"] if observed else []),
        cwd=ROOT,
    )
    try:
        deadline = time.monotonic() + 10
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)
        cpu = cpuSeconds(server.pid)
        done = subprocess.run(
            [
                "taskset",
                "-c",
                "0",
                str(LOADGEN),
                "amp",
                "--port",
                str(port),
                "--conns",
                "8",
                "--inflight",
                "16",
            ]
            + ["--duration", str(duration), "--poem-bytes", "200", "--verify"],
            capture_output=True,
            text=True,
            check=True,
        )
        result = json.loads(done.stdout)
        result["cpu_us_per_request"] = (cpuSeconds(server.pid) - cpu) / result["requests"] * 1e6
        return result
    finally:
        server.kill()
        server.wait()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[1])
    parser.add_argument(
        "command", nargs="?", default="measure", choices=["measure", "inprocess", "serve", "question"]
    )
    parser.add_argument("--port", type=int)
    parser.add_argument("--observed", action="store_true")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--duration", type=float, default=5.0)
    options = parser.parse_args()
    if options.command == "serve":
        serve(options.observed, options.port)
        return
    if options.command == "question":
        print(perQuestion(options.observed))
        return
    print(f"load average before: {os.getloadavg()[0]:.2f}")
    if options.command == "inprocess":
        inProcess(options.rounds)
        print(f"load average after: {os.getloadavg()[0]:.2f}")
        return
    LOADGEN.parent.mkdir(parents=True, exist_ok=True)
    subprocess.run(["sh", str(LOADGEN_SOURCE / "build.sh"), str(LOADGEN)], check=True)
    rates: dict[bool, list[float]] = {False: [], True: []}
    costs: dict[bool, list[float]] = {False: [], True: []}
    for round in range(options.rounds):
        for observed in (round % 2 == 0, round % 2 != 0):
            result = run(observed, options.duration)
            rates[observed].append(result["req_per_s"])
            costs[observed].append(result["cpu_us_per_request"])
            print(
                f"round {round + 1}, {'metrics' if observed else 'no metrics':<10} "
                f"{result['req_per_s']:9,.0f} req/s, {result['cpu_us_per_request']:6.1f} us CPU per request, "
                f"errors {result.get('errors')}"
            )
    without, withMetrics = statistics.median(rates[False]), statistics.median(rates[True])
    cpuWithout, cpuWith = statistics.median(costs[False]), statistics.median(costs[True])
    print(f"medians: without metrics {without:,.0f} req/s, {cpuWithout:.1f} us CPU per request")
    print(f"         with metrics    {withMetrics:,.0f} req/s, {cpuWith:.1f} us CPU per request")
    print(
        f"with / without: throughput {withMetrics / without:.3f}, CPU per request {cpuWith / cpuWithout:.3f}"
    )
    print(f"load average after: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
