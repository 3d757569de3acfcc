"""
What holds the reactor while the netstring server answers large poems: the
gateway's netstring factory (its service, caps and observer, as C{xform
serve} builds them) served on the real reactor in this process, pinned to
core 1, while loadgen (core 0) streams poems of C{--size} bytes to it, one
connection at a time, and a L{LoopingCall} ticks every millisecond.

    .venv/bin/python bench/protocolstall.py [--size 10000000] [--duration 5]
    .venv/bin/python bench/protocolstall.py --steps [--size 10000000]

It prints the longest gaps between two ticks, in wall-clock time and in the
reactor thread's CPU time (what the reactor itself did in one go, which
other load on the machine does not move), and how many gaps passed 2, 5 and
10 ms of CPU.  C{--steps} times, in this process on a fake clock, each step
the server takes in one go on such a poem -- the decoding of the request,
the transform's longest slice, the encoding of the answer, the transport's
join of it -- to tell which of them makes the longest gaps.  Nothing here
asserts a speed.  (An ASCII answer over a mebibyte is encoded and written
256 KiB at a time: C{protocols.netstring.STREAMED_ANSWER_CHARS}.)
"""

import argparse
import heapq
import json
import os
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
sys.path.insert(0, str(HERE))

from harness import LOADGEN_CORES, MALLOC, buildLoadgen, pinned  # noqa: E402


def factory(reactor, maxPoemBytes: int):
    from gateway.metrics import GatewayMetrics
    from protocols.connections import Connections
    from protocols.netstring import TransformFactory
    from service import Limits, TransformService, builtinCatalogue

    service = TransformService(builtinCatalogue(reactor), reactor, Limits(maxPoemBytes=maxPoemBytes))
    connections = Connections(512, 128)
    observer = GatewayMetrics(service, connections, lambda: True).protocols["netstring"]
    return TransformFactory(service, reactor, connections=connections, observer=observer)


def probe(options) -> None:
    from twisted.internet import reactor, task

    port = reactor.listenTCP(0, factory(reactor, 16 * 2**20), interface="127.0.0.1")
    gaps: list[tuple[float, float]] = []  # (CPU ms, wall ms), the longest kept
    last = [time.perf_counter(), time.thread_time()]

    def tick() -> None:
        wall, cpu = time.perf_counter(), time.thread_time()
        gap = ((cpu - last[1]) * 1e3, (wall - last[0]) * 1e3)
        heapq.heappush(gaps, gap) if len(gaps) < 2000 else heapq.heappushpop(gaps, gap)
        last[:] = [wall, cpu]

    loadgen = [
        str(buildLoadgen()),
        "netstring",
        "--port",
        str(port.getHost().port),
        "--verify",
        "--conns",
        "1",
        "--poem-bytes",
        str(options.size),
        "--warmup",
        "0",
        "--duration",
        f"{options.duration:g}",
    ]
    client = subprocess.Popen(pinned(LOADGEN_CORES, loadgen), stdout=subprocess.PIPE, text=True)
    ticker = task.LoopingCall(tick)
    ticker.start(0.001)

    def finished() -> None:
        if client.poll() is None:
            reactor.callLater(0.1, finished)
            return
        ticker.stop()
        reactor.stop()

    reactor.callLater(0.1, finished)
    reactor.run()
    report = json.loads(client.stdout.read())
    longest = sorted(gaps, reverse=True)
    print(
        f"{report['requests']} poems of {options.size:,} bytes in {options.duration:g} s "
        f"({report['errors']['total']} errors); load average {os.getloadavg()[0]:.2f}"
    )
    print("longest gaps between ticks, CPU ms (wall ms):")
    print("  " + ", ".join(f"{cpu:.1f} ({wall:.1f})" for cpu, wall in longest[:10]))
    for limit in (2, 5, 10):
        print(f"  gaps over {limit} ms of CPU: {sum(cpu > limit for cpu, _ in gaps)}")


def steps(options) -> None:
    from twisted.internet.task import Clock

    from protocols.netstringwire import NetstringDecoder, decodeRequest, encodeNetstring

    poem = ("ABCDEFGHIJ KLMNOPQRS\n" * (options.size // 21 + 1))[: options.size]
    request = encodeNetstring(b"cummingsify." + poem.encode())
    reads = [request[start : start + 65536] for start in range(0, len(request), 65536)]
    clock = Clock()
    server = factory(clock, 16 * 2**20)

    def timed(what: str, function, *arguments):
        started = time.thread_time()
        result = function(*arguments)
        print(f"  {what:58} {(time.thread_time() - started) * 1e3:7.2f} ms")
        return result

    print(f"one request for cummingsify of {options.size:,} bytes, each step's CPU in one go:")
    decoder = NetstringDecoder(2**25)
    longest = 0.0
    for read in reads:
        started = time.thread_time()
        decoder.feed(read)
        payload = decoder.popView()  # as the server takes it
        longest = max(longest, time.thread_time() - started)
    print(f"  {'the longest read, fed to the decoder':58} {longest * 1e3:7.2f} ms")
    name, text = timed("decodeRequest (split, UTF-8 decoding)", decodeRequest, payload)
    result = server.service.transformEagerly(name, text)
    slices = []
    while not result.called:  # each turn of the reactor on its own
        call = clock.calls.pop(0)
        started = time.thread_time()
        call.func(*call.args, **call.kw)
        slices.append(time.thread_time() - started)
    print(
        f"  {'the transform: its longest turn (of ' + str(len(slices)) + ')':58} {max(slices) * 1e3:7.2f} ms"
    )
    poem = result.result
    piece = timed("a piece of a long ASCII answer encoded (256 KiB)", str.encode, poem[: 256 * 1024], "ascii")
    answer = timed("a non-ASCII answer's encoding, in one go", str.encode, poem, "utf-8")
    timed("... and framed", encodeNetstring, answer)
    del piece


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.strip().split("\n\n")[0])
    parser.add_argument("--size", type=int, default=10_000_000)
    parser.add_argument("--duration", type=float, default=5.0)
    parser.add_argument("--steps", action="store_true")
    options = parser.parse_args()
    if options.steps:
        steps(options)
        return
    if os.environ.get("BENCH_PINNED") is None:
        # Pinned to core 1 with the harness's allocator settings, as the harness runs a server.
        environment = dict(os.environ, BENCH_PINNED="1", **MALLOC)
        os.execvpe("taskset", ["taskset", "-c", "1", sys.executable, *sys.argv], environment)
    probe(options)


if __name__ == "__main__":
    main()
