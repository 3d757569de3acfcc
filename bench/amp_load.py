"""
A load generator for AMP C{Transform} questions of any size: the poem goes
split across C{poem}, C{poem.2}, ... as docs/protocols.md says, and the
answer is joined the same way.  It is for the benchmarks whose poems are
over the 65,535 bytes that loadgen's AMP mode sends as one value.

    python bench/amp_load.py --port P [--conns C] [--inflight K] [--poem-bytes B]
                             [--duration S] [--warmup S]

Like loadgen: a closed loop of C connections with K questions in flight on
each, every answer checked to be the lowercased poem, and one JSON object on
standard output with loadgen's keys (C{requests}, C{errors}, C{req_per_s},
C{MB_per_s}, C{latency_us}, C{cpu}).  A question counts when its answer
arrives within the measured seconds, after the warm-up.  It runs on uvloop
when that is installed.  Exit status 1 if no question was answered.
"""

import argparse
import asyncio
import json
import math
import random
import resource
import struct
import sys
import time
from collections import Counter

_PREFIX = struct.Struct("!H")
_MAX_VALUE = 65535
_WORDS = b"THE MOON IS A SILVER SPOON AND I HAVE WALKED ALL NIGHT THROUGH RAIN WHERE LITTLE SPARROWS".split()


def makePoem(size: int) -> bytes:
    """
    Upper-case ASCII words in lines of at most 60 characters: C{size} bytes
    ending in a newline.
    """
    pick = random.Random(1).choice
    lines, line = [], b""
    written = 0
    while written < size:
        word = pick(_WORDS)
        if len(line) + 1 + len(word) > 60:
            lines.append(line)
            written += len(line) + 1
            line = word
        else:
            line = line + b" " + word if line else word
    lines.append(line)
    return b"\n".join(lines)[: size - 1] + b"\n"


def encodePairs(pairs) -> bytes:
    return b"".join(_PREFIX.pack(len(key)) + key + _PREFIX.pack(len(value)) + value for key, value in pairs)


def splitPoem(poem: bytes) -> list[tuple[bytes, bytes]]:
    """
    The keys and pieces of an ASCII poem: C{poem}, C{poem.2}, ... of at
    most 65,535 bytes each.
    """
    pieces = [poem[start : start + _MAX_VALUE] for start in range(0, len(poem), _MAX_VALUE)] or [b""]
    keys = [b"poem"] + [b"poem.%d" % number for number in range(2, len(pieces) + 1)]
    return list(zip(keys, pieces, strict=True))


class Run:
    """
    What all connections share: the question, the expected answer, the
    measured window and what was counted in it.
    """

    def __init__(self, arguments: argparse.Namespace) -> None:
        self.arguments = arguments
        poem = makePoem(arguments.poem_bytes)
        self.poemBytes = len(poem)
        self.expected = poem.lower()
        self.question = (
            encodePairs([(b"_command", b"Transform"), (b"transform", b"cummingsify"), *splitPoem(poem)])
            + b"\x00\x00"
        )
        now = time.perf_counter_ns()
        self.measureFrom = now + int(arguments.warmup * 1e9)
        self.end = self.measureFrom + int(arguments.duration * 1e9)
        self.latencies: list[int] = []
        self.errors: Counter[str] = Counter()
        self.connections: set[AMPQuestions] = set()

    def running(self) -> bool:
        return time.perf_counter_ns() < self.end

    def answered(self, sentAt: int, answeredAt: int) -> None:
        if self.measureFrom <= answeredAt <= self.end:
            self.latencies.append(answeredAt - sentAt)

    def failed(self, kind: str, count: int = 1) -> None:
        if time.perf_counter_ns() <= self.end:
            self.errors[kind] += count


class AMPQuestions(asyncio.Protocol):
    """
    One connection: keeps C{inflight} questions asked, checks each answer.
    """

    def __init__(self, run: Run) -> None:
        self.run = run
        self.received = bytearray()
        self.needed = 2
        self.asked: dict[bytes, int] = {}
        self.lastTag = 0
        self.transport = None

    def connection_made(self, transport) -> None:
        self.transport = transport
        self.run.connections.add(self)
        for _ in range(self.run.arguments.inflight):
            self.ask()

    def ask(self) -> None:
        if not self.run.running():
            return
        self.lastTag += 1
        tag = b"%x" % self.lastTag
        self.asked[tag] = time.perf_counter_ns()
        self.transport.write(b"\x00\x04_ask" + _PREFIX.pack(len(tag)) + tag)
        self.transport.write(self.run.question)

    def data_received(self, data: bytes) -> None:
        self.received += data
        while len(self.received) >= self.needed:
            box = self.popBox()
            if box is None:
                return
            self.answer(box)

    def popBox(self) -> dict[bytes, bytes] | None:
        """
        The first whole box received, or L{None} and C{needed} set to the
        bytes to wait for; values are copied only once the box is whole.
        """
        received, offset, spans = self.received, 0, []
        while True:
            if len(received) < offset + 2:
                self.needed = offset + 2
                return None
            (keyLength,) = _PREFIX.unpack_from(received, offset)
            if keyLength == 0:
                break
            valueAt = offset + 2 + keyLength
            if len(received) < valueAt + 2:
                self.needed = valueAt + 2
                return None
            (valueLength,) = _PREFIX.unpack_from(received, valueAt)
            end = valueAt + 2 + valueLength
            if len(received) < end:
                self.needed = end
                return None
            spans.append((offset + 2, valueAt, end))
            offset = end
        box = {
            bytes(received[start:valueAt]): bytes(received[valueAt + 2 : end])
            for start, valueAt, end in spans
        }
        del received[: offset + 2]
        self.needed = 2
        return box

    def answer(self, box: dict[bytes, bytes]) -> None:
        answeredAt = time.perf_counter_ns()
        sentAt = self.asked.pop(box.get(b"_answer", box.get(b"_error")), None)
        if sentAt is None:
            self.run.failed("protocol")
            self.transport.abort()
            return
        if b"_error" in box:
            self.run.failed("app-error")
        else:
            pieces, number = [box.get(b"poem")], 2
            while (piece := box.get(b"poem.%d" % number)) is not None:
                pieces.append(piece)
                number += 1
            if None in pieces or b"".join(pieces) != self.run.expected:
                self.run.failed("mismatch")
            else:
                self.run.answered(sentAt, answeredAt)
        self.ask()

    def connection_lost(self, reason) -> None:
        self.run.connections.discard(self)
        if self.asked and self.run.running():
            self.run.failed("closed-early", len(self.asked))
            self.asked.clear()
            asyncio.get_running_loop().call_later(0.001, connect, self.run)


def connect(run: Run) -> None:
    """
    Open one connection, again 1 ms after a failure, while the run lasts.
    """
    loop = asyncio.get_running_loop()

    def failed(attempt: asyncio.Future) -> None:
        if attempt.exception() is not None and run.running():
            run.failed("connect")
            loop.call_later(0.001, connect, run)

    attempt = asyncio.ensure_future(
        loop.create_connection(lambda: AMPQuestions(run), "127.0.0.1", run.arguments.port)
    )
    attempt.add_done_callback(failed)


def percentile(ordered: list[int], fraction: float) -> float:
    if not ordered:
        return 0.0
    return ordered[max(0, math.ceil(fraction * len(ordered)) - 1)] / 1e3


async def drive(arguments: argparse.Namespace) -> dict:
    run = Run(arguments)
    for _ in range(arguments.conns):
        connect(run)
    await asyncio.sleep((run.end - time.perf_counter_ns()) / 1e9)
    inFlight = sum(len(connection.asked) for connection in run.connections)
    for connection in list(run.connections):
        connection.transport.abort()
    ordered = sorted(run.latencies)
    usage = resource.getrusage(resource.RUSAGE_SELF)
    wall = arguments.warmup + arguments.duration
    return {
        "mode": "amp-split",
        "port": arguments.port,
        "conns": arguments.conns,
        "inflight": arguments.inflight,
        "duration_s": arguments.duration,
        "warmup_s": arguments.warmup,
        "poem_bytes": run.poemBytes,
        "verify": True,
        "loop": type(asyncio.get_running_loop()).__module__.split(".")[0],
        "requests": len(ordered),
        "errors": {**run.errors, "total": sum(run.errors.values())},
        "inflight_at_end": inFlight,
        "req_per_s": len(ordered) / arguments.duration,
        "MB_per_s": len(ordered) * run.poemBytes / arguments.duration / 1e6,
        "latency_us": {
            "mean": sum(ordered) / len(ordered) / 1e3 if ordered else 0.0,
            "p50": percentile(ordered, 0.5),
            "p90": percentile(ordered, 0.9),
            "p99": percentile(ordered, 0.99),
            "max": percentile(ordered, 1.0),
        },
        "cpu": {"pct_of_one_core": 100 * (usage.ru_utime + usage.ru_stime) / wall},
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.strip().split("\n\n")[0])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--conns", type=int, default=4)
    parser.add_argument("--inflight", type=int, default=2)
    parser.add_argument("--poem-bytes", type=int, default=1_000_000)
    parser.add_argument("--duration", type=float, default=3.0)
    parser.add_argument("--warmup", type=float, default=1.0)
    arguments = parser.parse_args()
    try:
        import uvloop
    except ImportError:
        result = asyncio.run(drive(arguments))
    else:
        result = uvloop.run(drive(arguments))
    print(json.dumps(result))
    sys.stdout.flush()
    sys.exit(0 if result["requests"] else 1)


if __name__ == "__main__":
    main()
