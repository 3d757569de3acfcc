"""
How long the reactor waits while the service transforms large poems, and
how fast it transforms 100 KB ones, run in slices, in worker threads or in a
process pool.

    .venv/bin/python bench/stall.py calibrate
    .venv/bin/python bench/stall.py stall [--size 1048576] [--transform cummingsify] [--modes ...]
    .venv/bin/python bench/stall.py throughput [--size 100000] [--transform cummingsify] [--modes ...]
    .venv/bin/python bench/stall.py cpu [--size 100000] [--transform mirror]
    .venv/bin/python bench/stall.py fastpath

C{calibrate} times every synchronous transform in one call on a MiB of
several kinds of text and prints the worst, in milliseconds per MiB and in
characters per millisecond: the figures behind the C{Slicing} of each entry
of L{service.catalogue.builtinCatalogue}.

C{stall} runs one transform of a poem of C{--size} characters on the real
reactor while a L{LoopingCall} ticks every millisecond, and prints the
longest gap between two ticks (the longest the reactor was held) and how
long the transform took.  C{throughput} keeps C{--concurrency} requests in
flight for C{--duration} seconds and prints requests per second and the
longest gap.  The modes:

  - C{slices}: the service as the gateway builds it, without workers: a
    poem over a turn's budget is worked through in slices;
  - C{inline}: every transform in one call in the reactor thread (the
    service before slices, less its offloading);
  - C{threads}: every transform of a poem of 32 KiB or more in one of two
    worker threads (as the gateway once did);
  - C{processes}: the same in a pool of two processes
    (L{concurrent.futures.ProcessPoolExecutor}; the poem and the result
    cross a pipe, pickled).

C{cpu} gives the CPU time of one request in slices and in one call, on a
L{Clock}: what slicing itself costs.

C{fastpath} times C{service.transform("cummingsify", poem)} for a 200 B poem,
answered at once, against the coroutine path it took before (forced here by
a transform of unknown cost), on a L{Clock}: no reactor, no I/O.

Never part of the test run; read the figures on a quiet machine.
"""

import argparse
import dataclasses
import sys
import time
import timeit
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from twisted.internet import defer, reactor, task  # noqa: E402
from twisted.internet.threads import deferToThreadPool  # noqa: E402
from twisted.python.threadpool import ThreadPool  # noqa: E402

from service import Catalogue, Limits, TransformService, builtinCatalogue, transforms  # noqa: E402

MiB = 1 << 20
POEMS = "".join(path.read_text("utf-8") for path in sorted((ROOT / "poems").glob("*.txt")))

#: Kinds of text, each repeated to the size asked for.
KINDS = {
    "poems": POEMS,
    "newlines": "\n",
    "short lines": "a b\n",
    "upper ASCII": "HELLO WORLD AND MORE\n",
    "greek": "ΑΣ ΣΑΣ Σ\n",
    "dotted I": "İ",
    "cjk": "詩歌的翻译\n",
    "emoji": "😀 a\n",
    "one line": "Word ",
}


def text(kind: str, chars: int) -> str:
    unit = KINDS[kind]
    return (unit * (chars // len(unit) + 1))[:chars]


def calibrate(options) -> None:
    print(
        f"{'transform':12} {'worst kind':12} {'ms/MiB':>8} {'chars/ms':>9}   ASCII: {'ms/MiB':>7} {'chars/ms':>9}"
    )
    for entry in builtinCatalogue(reactor):
        if entry.slicing is None:
            continue
        timings = {}
        for kind in KINDS:
            poem = text(kind, MiB)
            timings[kind] = min(timeit.repeat(lambda: entry.function(poem), number=1, repeat=3))  # noqa: B023
        worst = max(timings, key=timings.get)
        ascii = max(seconds for kind, seconds in timings.items() if KINDS[kind].isascii())
        print(
            f"{entry.name:12} {worst:12} {timings[worst] * 1000:8.1f} {MiB / timings[worst] / 1000:9,.0f}"
            f"   ASCII: {ascii * 1000:7.1f} {MiB / ascii / 1000:9,.0f}"
        )
    timings = {}
    for kind in KINDS:
        poem = text(kind, MiB)
        timings[kind] = min(timeit.repeat(lambda: poem.encode("utf-8"), number=1, repeat=3))  # noqa: B023
    worst = max(timings, key=timings.get)
    print(f"{'(UTF-8)':12} {worst:12} {timings[worst] * 1000:8.1f} {MiB / timings[worst] / 1000:9,.0f}")


#: The poem size from which the threads and processes modes hand a
#: transform over, as the gateway once did.
OFFLOAD_CHARS = 32 * 1024


def _inThreads(pool: ThreadPool):
    def offload(function, poem):
        return deferToThreadPool(reactor, pool, function, poem)

    return offload


def _inProcesses(pool: ProcessPoolExecutor):
    def offload(function, poem):
        result = defer.Deferred()
        future = pool.submit(function, poem)

        def done(future):
            error = future.exception()
            if error is None:
                reactor.callFromThread(result.callback, future.result())
            else:
                reactor.callFromThread(result.errback, error)

        future.add_done_callback(done)
        return result

    return offload


def _oneCall(catalogue: Catalogue, offload=None) -> Catalogue:
    """
    C{catalogue} with every sliced transform run in one call instead, or,
    with C{offload}, handed to it for a poem of L{OFFLOAD_CHARS} or more.
    """

    def handedOver(function):
        if offload is None:
            return function
        return lambda poem: offload(function, poem) if len(poem) >= OFFLOAD_CHARS else function(poem)

    return Catalogue(
        dataclasses.replace(entry, function=handedOver(entry.function), slicing=None)
        if entry.slicing
        else entry
        for entry in catalogue
    )


def makeService(mode: str, maxPoemBytes: int):
    """
    The service for C{mode}, and what to call to stop what it started.
    """
    catalogue = builtinCatalogue(reactor)
    limits = Limits(maxPoemBytes=maxPoemBytes, deadline=600, maxInFlight=1000)
    if mode == "slices":
        return TransformService(catalogue, reactor, limits), lambda: None
    if mode == "inline":
        return TransformService(_oneCall(catalogue), reactor, limits), lambda: None
    if mode == "threads":
        threads = ThreadPool(minthreads=0, maxthreads=2)
        threads.start()
        return TransformService(_oneCall(catalogue, _inThreads(threads)), reactor, limits), threads.stop
    if mode == "processes":
        processes = ProcessPoolExecutor(2)
        processes.submit(len, "").result()  # start the processes before measuring
        service = TransformService(_oneCall(catalogue, _inProcesses(processes)), reactor, limits)
        return service, processes.shutdown
    raise ValueError(mode)


class Gaps:
    """
    The gaps between ticks of a L{LoopingCall} every millisecond, in wall
    time (what a client waits) and in the reactor thread's CPU time (what
    the reactor did in between, whatever else the machine runs).
    """

    def __init__(self) -> None:
        self.gaps: list[float] = []
        self.cpu: list[float] = []
        self._last = time.perf_counter(), time.thread_time()
        self._loop = task.LoopingCall(self._tick)
        self._loop.start(0.001)

    def _tick(self) -> None:
        now = time.perf_counter(), time.thread_time()
        self.gaps.append(now[0] - self._last[0])
        self.cpu.append(now[1] - self._last[1])
        self._last = now

    def stop(self) -> tuple[float, float, float]:
        """
        Stop, and give the longest gap, its 99th percentile and the longest
        in CPU time, in ms.
        """
        self._loop.stop()
        self._tick()  # the gap until now counts too
        gaps = sorted(self.gaps)
        return gaps[-1] * 1000, gaps[int(len(gaps) * 0.99)] * 1000, max(self.cpu) * 1000


async def idle() -> float:
    """
    The longest gap between ticks with nothing else to do for 0.3 s: what
    the machine's other load costs the reactor.
    """
    gaps = Gaps()
    await task.deferLater(reactor, 0.3, lambda: None)
    return gaps.stop()[0]


async def stall(options) -> None:
    poem = text(options.kind, options.size)
    print(f"{options.transform} of {options.size:,} characters of {options.kind}")
    print(f"  {'idle':10} longest stall {await idle():7.1f} ms")
    for mode in options.modes:
        service, stop = makeService(mode, 8 * options.size)
        try:
            await task.deferLater(reactor, 0.05, lambda: None)
            gaps = Gaps()
            started = time.perf_counter()
            await service.transform(options.transform, poem)
            took = time.perf_counter() - started
            await task.deferLater(reactor, 0.01, lambda: None)
            longest, p99, cpu = gaps.stop()
        finally:
            stop()
        print(
            f"  {mode:10} longest stall {longest:7.1f} ms (CPU {cpu:6.1f} ms)  p99 tick {p99:5.1f} ms  "
            f"transform took {took * 1000:7.0f} ms"
        )


async def throughput(options) -> None:
    poem = text(options.kind, options.size)
    print(
        f"{options.transform} of {options.size:,} characters of {options.kind}, "
        f"{options.concurrency} in flight for {options.duration:g} s"
    )
    print(f"  {'idle':10} longest stall {await idle():7.1f} ms")
    for mode in options.modes:
        service, stop = makeService(mode, 8 * options.size)
        try:
            await task.deferLater(reactor, 0.05, lambda: None)
            gaps = Gaps()
            deadline = time.perf_counter() + options.duration
            count = 0

            async def client(service=service, deadline=deadline):
                nonlocal count
                while time.perf_counter() < deadline:
                    # Each request arrives in a turn of its own, as from
                    # a connection.
                    await task.deferLater(reactor, 0, service.transform, options.transform, poem)
                    count += 1

            started = time.perf_counter()
            await defer.gatherResults(
                [defer.Deferred.fromCoroutine(client()) for _ in range(options.concurrency)]
            )
            elapsed = time.perf_counter() - started
            longest, p99, cpu = gaps.stop()
        finally:
            stop()
        print(
            f"  {mode:10} {count / elapsed:8,.0f} req/s  longest stall {longest:6.1f} ms (CPU {cpu:6.1f} ms)  "
            f"p99 tick {p99:5.1f} ms"
        )


def fastpath(options) -> None:
    clock = task.Clock()
    poem = text("poems", 200)
    catalogue = builtinCatalogue(clock)
    # The same transform, of unknown cost, as every transform was before:
    # it takes the coroutine, the deadline and the bookkeeping.
    catalogue.add(dataclasses.replace(catalogue.lookup("cummingsify"), name="unknown-cost", slicing=None))
    service = TransformService(catalogue, clock)
    for name in ["cummingsify", "unknown-cost", "cummingsify|reverse|rot13", "Cummingsify"]:
        calls, total = timeit.Timer(lambda: service.transform(name, poem)).autorange()  # noqa: B023
        best = min(timeit.repeat(lambda: service.transform(name, poem), number=calls, repeat=5))  # noqa: B023
        print(f"  {name:28} {best / calls * 1e6:6.2f} µs per call")
    print(
        f"  (transforms.cummingsify alone: {min(timeit.repeat(lambda: transforms.cummingsify(poem), number=100000, repeat=5)) * 10:.2f} µs)"
    )


def cpu(options) -> None:
    """
    The CPU time of one request, in slices and in one call, driven by a
    L{Clock}: what slicing costs, without the reactor or the machine's load.
    """
    poem = text(options.kind, options.size)
    clock = task.Clock()
    catalogue = builtinCatalogue(clock)
    oneCall = Catalogue(
        dataclasses.replace(entry, slicing=None) if entry.slicing else entry for entry in catalogue
    )
    print(f"{options.transform} of {options.size:,} characters of {options.kind}, CPU time per request")
    for label, entries in [("slices", catalogue), ("one call", oneCall)] * 2:
        service = TransformService(entries, clock, Limits(maxPoemBytes=8 * options.size))
        started, count = time.thread_time(), 0
        while time.thread_time() - started < options.duration / 4:
            result = service.transform(options.transform, poem)
            clock.advance(0)
            assert result.called
            count += 1
        print(f"  {label:10} {(time.thread_time() - started) / count * 1e6:9,.0f} µs")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("what", choices=["calibrate", "stall", "throughput", "fastpath", "cpu"])
    parser.add_argument("--size", type=int, default=None, help="characters per poem")
    parser.add_argument("--kind", default="poems", choices=KINDS)
    parser.add_argument("--transform", default="cummingsify")
    parser.add_argument("--modes", nargs="+", default=["slices", "inline", "threads", "processes"])
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--duration", type=float, default=3.0)
    options = parser.parse_args()
    if options.what == "calibrate":
        calibrate(options)
    elif options.what == "fastpath":
        fastpath(options)
    elif options.what == "cpu":
        options.size = options.size or 100_000
        cpu(options)
    else:
        if options.size is None:
            options.size = MiB if options.what == "stall" else 100_000
        run = stall if options.what == "stall" else throughput
        task.react(lambda _: defer.Deferred.fromCoroutine(run(options)))


if __name__ == "__main__":
    main()
