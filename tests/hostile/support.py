"""
What the hostile cases share: a real gateway they attack (L{Target}), the
polite client served meanwhile (L{PoliteClient}), the measurement of each
attack (L{Target.attack}), and raw clients that speak each protocol as
badly as an attacker likes.

Every attacker connects from 127.0.0.1 and the polite client from
127.0.0.2 (all of 127/8 is loopback), so that the gateway's caps per client
address hold the attacker and never the polite client.
"""

import base64
import http.client
import io
import json
import os
import re
import socket
import struct
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from gateway.server import LISTENERS
from tests.helpers import ROOT, GatewayProcess

#: Where attackers come from, and where the polite client comes from.
ATTACKER = "127.0.0.1"
POLITE = "127.0.0.2"

#: The polite client's worst latency allowed during any attack, in seconds:
#: what a person notices, far below the stalls of many seconds the attacks
#: caused before the gateway bounded them, and far enough above a loaded
#: machine's own hiccups.
POLITE_LATENCY = 2.0

#: How much the gateway's resident memory may grow during an attack, at its
#: peak, in bytes.
MEMORY_GROWTH = 150 * 1024 * 1024

#: How many descriptors the gateway may hold at the end of an attack above
#: what it held before it, once the attacker's connections are closed.
DESCRIPTORS_LEFT = 4

#: Seconds the gateway has to close the attacker's connections after the
#: attack (its idle timeout is 1 s).
SETTLE = 5.0

#: Where each attack's measurements are written, for docs/reliability.md.
ARTIFACTS = ROOT / "artifacts" / "hostile"


def status(pid: int) -> dict[str, int]:
    """
    The memory lines of C{/proc/PID/status}, in bytes.
    """
    fields = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        name, _, value = line.partition(":")
        if name in ("VmRSS", "VmHWM"):
            fields[name] = int(value.split()[0]) * 1024
    return fields


def descriptors(pid: int) -> list[str]:
    """
    What each open descriptor of process C{pid} points to.
    """
    found = []
    for name in os.listdir(f"/proc/{pid}/fd"):
        try:
            found.append(os.readlink(f"/proc/{pid}/fd/{name}"))
        except FileNotFoundError:
            pass  # closed meanwhile
    return found


class PoliteClient:
    """
    The polite client's process (L{tests.hostile.polite}), asked for a
    report on each attack's time.
    """

    def __init__(self, gateway: GatewayProcess) -> None:
        ports = [str(gateway.ports[name]) for name in ("netstring", "amp", "web")]
        self.process = subprocess.Popen(
            [sys.executable, "-m", "tests.hostile.polite", POLITE, *ports],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            cwd=ROOT,
            text=True,
        )
        assert json.loads(self.process.stdout.readline()) == {"ready": True}

    def report(self, start: float, end: float) -> dict:
        """
        The requests of each protocol that ran between C{start} and C{end},
        once each protocol has finished one started at C{start} or later.
        """
        self.process.stdin.write(f"report {start} {end}\n")
        self.process.stdin.flush()
        return json.loads(self.process.stdout.readline())

    def close(self) -> None:
        self.process.stdin.close()
        self.process.wait(10)


@dataclass
class Measurement:
    """
    What one attack did to the gateway, and how the polite client fared.

    @ivar name: the attack.
    @ivar rss: the gateway's resident memory before the attack.
    @ivar peak: its peak resident memory during the attack.
    @ivar descriptors: its open descriptors before the attack.
    @ivar mostDescriptors: the most it held during the attack (sampled).
    @ivar descriptorsAfter: how many it held once the attack was over.
    @ivar polite: the polite client's report for the attack's time.
    @ivar seconds: how long the attack took.
    @ivar notes: what the case adds (counts of refusals, answers, ...).
    """

    name: str
    rss: int = 0
    peak: int = 0
    descriptors: int = 0
    mostDescriptors: int = 0
    descriptorsAfter: int = 0
    polite: dict = field(default_factory=dict)
    seconds: float = 0.0
    notes: dict = field(default_factory=dict)

    @property
    def growth(self) -> int:
        return self.peak - self.rss

    def worstLatency(self) -> float:
        return max(self.polite[protocol]["worst"] or 0.0 for protocol in ("netstring", "amp", "ws", "http"))

    def summary(self) -> dict:
        return {
            "attack": self.name,
            "seconds": round(self.seconds, 2),
            "rss_mb": round(self.rss / 2**20, 1),
            "growth_mb": round(self.growth / 2**20, 1),
            "descriptors": self.descriptors,
            "most_descriptors": self.mostDescriptors,
            "descriptors_after": self.descriptorsAfter,
            "polite_worst_s": round(self.worstLatency(), 3),
            "polite_requests": sum(self.polite[p]["count"] for p in ("netstring", "amp", "ws", "http")),
            **self.notes,
        }


class _DescriptorSampler(threading.Thread):
    """
    Count the gateway's descriptors every few milliseconds, keeping the most.
    """

    def __init__(self, pid: int) -> None:
        super().__init__(daemon=True)
        self.pid = pid
        self.most = 0
        self.stopped = threading.Event()

    def run(self) -> None:
        while not self.stopped.wait(0.01):
            self.most = max(self.most, len(os.listdir(f"/proc/{self.pid}/fd")))

    def stop(self) -> int:
        self.stopped.set()
        self.join()
        return max(self.most, len(os.listdir(f"/proc/{self.pid}/fd")))


class Attack:
    """
    One attack under way (see L{Target.attack}).

    @ivar started: when it started (C{time.monotonic()}).
    """

    def __init__(self, target: "Target", measurement: Measurement) -> None:
        self.target = target
        self.measurement = measurement
        self.started = time.monotonic()

    def repeat(self, attack: Callable[[], object], most: int = 200) -> list:
        """
        Run C{attack} again and again, up to C{most} times, until the polite
        client has been served on every protocol since the attack started:
        so that a short attack overlaps the polite requests it is measured
        against.  It runs once at least, even if the polite client was
        served before it started (on a busy machine, say).

        @return: what each run returned.
        """
        results = []
        polite = self.target.polite
        done = threading.Event()

        def wait() -> None:
            polite.report(self.started, self.started)
            done.set()

        waiter = threading.Thread(target=wait, daemon=True)
        waiter.start()
        while not (results and done.is_set()) and len(results) < most:
            results.append(attack())
        waiter.join()
        return results

    def note(self, **notes) -> None:
        """
        Keep C{notes} with the measurement.
        """
        self.measurement.notes.update(notes)


class Target:
    """
    A real gateway attacked by a module of the hostile suite, with the
    polite client served meanwhile.

    @ivar gateway: the gateway's process.
    @ivar polite: the polite client.
    """

    def __init__(self, *arguments: str) -> None:
        self.gateway = GatewayProcess(
            "--metrics", "tcp:0:interface=127.0.0.1", *arguments, listeners=tuple(LISTENERS)
        )

    def start(self) -> "Target":
        self.gateway.start()
        self.gateway.waitForLog(lambda: "metrics" in self.gateway.ports, what="the metrics listener")
        self.polite = PoliteClient(self.gateway)
        return self

    def stop(self) -> None:
        self.polite.close()
        assert self.gateway.stop() == 0

    @property
    def pid(self) -> int:
        return self.gateway.process.pid

    def port(self, name: str) -> int:
        return self.gateway.ports[name]

    def metrics(self) -> dict[str, float]:
        """
        The gateway's C{/metrics}: each sample's value by its line's name
        and labels (C{'xform_connections_open{protocol="amp"}'}).
        """
        with socket.create_connection(("127.0.0.1", self.port("metrics")), timeout=10) as sock:
            sock.sendall(b"GET /metrics HTTP/1.0\r\n\r\n")
            body = b"".join(iter(lambda: sock.recv(65536), b"")).decode()
        samples = re.findall(r"^(xform_\S+) (\S+)$", body.partition("\r\n\r\n")[2], re.M)
        return {name: float(value) for name, value in samples}

    def accepted(self) -> float:
        """
        How many connections the gateway has accepted and not closed of
        itself... or closed for a cap or an idle timeout: those open, those
        refused, those timed out, as C{/metrics} counts them.
        """
        found = self.metrics().items()
        counted = ("xform_connections_open", "xform_connections_refused_total", "xform_idle_timeouts_total")
        return sum(value for name, value in found if name.startswith(counted))

    def total(self, prefix: str) -> float:
        """
        The sum of the samples of C{/metrics} whose name starts with
        C{prefix}: C{total("xform_connections_open")}.
        """
        return sum(value for name, value in self.metrics().items() if name.startswith(prefix))

    def waitUntil(self, condition: Callable[[], bool], seconds: float = SETTLE) -> bool:
        end = time.monotonic() + seconds
        while not condition():
            if time.monotonic() > end:
                return False
            time.sleep(0.02)
        return True

    @contextmanager
    def attack(
        self,
        name: str,
        memory: int = MEMORY_GROWTH,
        latency: float = POLITE_LATENCY,
        most: int | None = None,
    ) -> Iterator[Attack]:
        """
        Measure the attack run in the C{with} block: the gateway's peak
        memory and descriptors, and the polite client's requests meanwhile.
        When the block ends (the attacker's connections closed), the polite
        client must have been served on every protocol without an error
        and within C{latency} seconds; the gateway's memory must have grown
        by less than C{memory} bytes, it must have held at most C{most}
        more descriptors than before (if given), it must be back to about
        the descriptors it had, and it must have logged no traceback.
        """
        measurement = Measurement(name)
        pid = self.pid
        logged = len(self.gateway.log)
        Path(f"/proc/{pid}/clear_refs").write_text("5")  # the peak starts from now
        measurement.rss = status(pid)["VmRSS"]
        measurement.descriptors = len(os.listdir(f"/proc/{pid}/fd"))
        sampler = _DescriptorSampler(pid)
        sampler.start()
        attack = Attack(self, measurement)
        try:
            yield attack
        finally:
            ended = time.monotonic()
            measurement.mostDescriptors = sampler.stop()
        measurement.seconds = ended - attack.started
        measurement.peak = status(pid)["VmHWM"]
        measurement.polite = self.polite.report(attack.started, ended)
        self.waitUntil(
            lambda: len(os.listdir(f"/proc/{pid}/fd")) <= measurement.descriptors + DESCRIPTORS_LEFT
        )
        measurement.descriptorsAfter = len(os.listdir(f"/proc/{pid}/fd"))
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        (ARTIFACTS / f"{name}.json").write_text(json.dumps(measurement.summary(), indent=1) + "\n")
        self.check(measurement, memory, latency, most, self.gateway.log[logged:])

    def check(self, measurement: Measurement, memory: int, latency: float, most: int | None, log) -> None:
        summary = measurement.summary()
        polite = measurement.polite
        assert polite["waited"], f"the polite client was not served on every protocol: {summary}"
        for protocol in ("netstring", "amp", "ws", "http"):
            assert polite[protocol]["errors"] == [], (protocol, polite[protocol]["errors"])
        assert measurement.worstLatency() < latency, f"the polite client waited too long: {summary}"
        assert measurement.growth < memory, f"the gateway's memory grew too much: {summary}"
        if most is not None:
            assert measurement.mostDescriptors <= measurement.descriptors + most, summary
        assert measurement.descriptorsAfter <= measurement.descriptors + DESCRIPTORS_LEFT, summary
        tracebacks = [line for line in log if "Traceback" in line or "#critical]" in line]
        assert tracebacks == [], "\n".join(tracebacks)


# Raw clients.


def together(*calls: Callable[[], object]) -> None:
    """
    Run C{calls} at once, each in a thread of its own, and wait for all.
    """
    threads = [threading.Thread(target=call) for call in calls]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()


def connection(port: int, source: str = ATTACKER, timeout: float = 10.0) -> socket.socket:
    return socket.create_connection(("127.0.0.1", port), timeout=timeout, source_address=(source, 0))


def receiveAll(sock: socket.socket, most: int = 1 << 24) -> bytes:
    """
    Everything C{sock} receives until the other side closes (a reset
    counts as closing), up to C{most} bytes.
    """
    received = bytearray()
    try:
        while len(received) < most:
            data = sock.recv(65536)
            if not data:
                break
            received += data
    except ConnectionResetError:
        pass
    return bytes(received)


class _Received(io.BytesIO):
    """
    Bytes already received, read by L{httpBodies} as a socket's file, that
    each response read from it leaves open for the next.
    """

    def makefile(self, mode: str) -> "_Received":
        return self

    def close(self) -> None:
        pass


def httpBodies(data: bytes) -> list[tuple[int, bytes]]:
    """
    The status and body of each HTTP response in C{data}, read by
    L{http.client} whatever their framing (a length or chunks).
    """
    received = _Received(data)
    found = []
    while received.tell() < len(data):
        response = http.client.HTTPResponse(received)
        response.begin()
        found.append((response.status, response.read()))
    return found


def closedByPeer(sock: socket.socket, timeout: float = 5.0) -> bool:
    """
    Whether the other side closes C{sock} within C{timeout} seconds, reading
    and dropping whatever it sends first.
    """
    sock.settimeout(timeout)
    try:
        while sock.recv(65536):
            pass
    except ConnectionResetError:
        return True
    except TimeoutError:
        return False
    return True


def box(*pairs: tuple[bytes, bytes]) -> bytes:
    """
    An AMP box of C{pairs}, written from docs/protocols.md.
    """
    return (
        b"".join(struct.pack("!H", len(k)) + k + struct.pack("!H", len(v)) + v for k, v in pairs)
        + b"\x00\x00"
    )


class BoxReader:
    """
    AMP boxes, read as their bytes arrive.

    @ivar boxes: every whole box read so far.
    """

    def __init__(self) -> None:
        self.boxes: list[dict[bytes, bytes]] = []
        self._data = bytearray()
        self._current: dict[bytes, bytes] = {}

    def feed(self, data: bytes) -> None:
        self._data += data
        offset, data = 0, self._data
        while offset + 2 <= len(data):
            (size,) = struct.unpack_from("!H", data, offset)
            if not size:
                self.boxes.append(self._current)
                self._current, offset = {}, offset + 2
                continue
            if offset + 2 + size + 2 > len(data):
                break
            (length,) = struct.unpack_from("!H", data, offset + 2 + size)
            start = offset + 4 + size
            if start + length > len(data):
                break
            self._current[bytes(data[offset + 2 : offset + 2 + size])] = bytes(data[start : start + length])
            offset = start + length
        del self._data[:offset]


def receiveBoxes(sock: socket.socket, count: int) -> list[dict[bytes, bytes]]:
    """
    The next C{count} AMP boxes C{sock} receives (fewer if it closes first).
    """
    reader = BoxReader()
    while len(reader.boxes) < count:
        data = sock.recv(65536)
        if not data:
            break
        reader.feed(data)
    return reader.boxes


WS_KEY = base64.b64encode(b"hostile client!!").decode()


def upgradeRequest(port: int, origin: str | None = None, version: str = "13") -> bytes:
    headers = [
        "GET /ws HTTP/1.1",
        f"Host: 127.0.0.1:{port}",
        "Upgrade: websocket",
        "Connection: Upgrade",
        f"Sec-WebSocket-Key: {WS_KEY}",
        f"Sec-WebSocket-Version: {version}",
    ]
    if origin is not None:
        headers.append(f"Origin: {origin}")
    return ("\r\n".join(headers) + "\r\n\r\n").encode()


def readHead(sock: socket.socket) -> bytes:
    """
    An HTTP response's status line and headers, read byte by byte so that
    nothing after them is taken.
    """
    head = bytearray()
    while not head.endswith(b"\r\n\r\n"):
        byte = sock.recv(1)
        if not byte:
            break
        head += byte
    return bytes(head)


def webSocket(port: int, source: str = ATTACKER, origin: str | None = None) -> socket.socket:
    """
    A socket whose WebSocket handshake with C{/ws} has succeeded.
    """
    sock = connection(port, source)
    sock.sendall(upgradeRequest(port, origin))
    head = readHead(sock)
    assert head.startswith(b"HTTP/1.1 101 "), head
    return sock


def frame(opcode: int, payload: bytes = b"", fin: bool = True, mask: bool = True, rsv: int = 0, length=None):
    """
    A WebSocket frame as a client sends it (masked, unless told not to),
    announcing C{length} bytes of payload if given, else the payload's.
    """
    length = len(payload) if length is None else length
    first = (0x80 if fin else 0) | (rsv << 4) | opcode
    maskBit = 0x80 if mask else 0
    if length < 126:
        header = struct.pack("!BB", first, maskBit | length)
    elif length < 1 << 16:
        header = struct.pack("!BBH", first, maskBit | 126, length)
    else:
        header = struct.pack("!BBQ", first, maskBit | 127, length)
    if not mask:
        return header + payload
    key = b"\x01\x02\x03\x04"
    return header + key + bytes(byte ^ key[i % 4] for i, byte in enumerate(payload))


def text(message: str | bytes) -> bytes:
    data = message.encode() if isinstance(message, str) else message
    return frame(0x1, data)


def readFrames(data: bytes) -> list[tuple[int, bytes]]:
    """
    The whole server frames (unmasked) at the start of C{data}, as
    C{(opcode, payload)}.
    """
    frames, offset = [], 0
    while offset + 2 <= len(data):
        first, second = data[offset], data[offset + 1]
        length, offset = second & 0x7F, offset + 2
        if length == 126:
            (length,) = struct.unpack_from("!H", data, offset)
            offset += 2
        elif length == 127:
            (length,) = struct.unpack_from("!Q", data, offset)
            offset += 8
        if offset + length > len(data):
            break
        frames.append((first & 0x0F, data[offset : offset + length]))
        offset += length
    return frames


def closeCode(data: bytes) -> int | None:
    """
    The code of the first close frame in C{data}, if there is one.
    """
    for opcode, payload in readFrames(data):
        if opcode == 0x8:
            return struct.unpack("!H", payload[:2])[0] if len(payload) >= 2 else 1005
    return None


#: What L{closedWith} says of a connection reset without a close frame.
RESET = "reset"


def closedWith(sock: socket.socket, timeout: float = 5.0) -> int | str | None:
    """
    Read what the server sends on a WebSocket until its close frame, and
    answer that with a close frame of our own, as a client should.

    @return: the close frame's code; L{RESET} if the connection was reset
        before one came; C{None} if it closed without one, or if none came
        within C{timeout} seconds.
    """
    sock.settimeout(timeout)
    received = b""
    try:
        while (code := closeCode(received)) is None:
            data = sock.recv(65536)
            if not data:
                return None
            received += data
    except ConnectionResetError:
        return RESET
    except TimeoutError:
        return None
    try:
        sock.sendall(frame(0x8, struct.pack("!H", 1000)))
    except OSError:
        pass
    return code


def violated(port: int, data: bytes) -> int | str | None:
    """
    Open a WebSocket, send C{data} (a frame that breaks RFC 6455, say),
    and tell how the gateway closed it (L{closedWith}).  A reset is tried
    once more: when the frame reaches the gateway in two reads, the
    gateway may have stopped reading by the second, and its kernel then
    resets the connection, which takes the close frame still unread on our
    side with it (about once in a thousand, under load).
    """
    for _ in range(2):
        with webSocket(port) as sock:
            sock.sendall(data)
            code = closedWith(sock)
        if code != RESET:
            break
    return code


def rpc(method: str, params, id=1) -> str:
    return json.dumps({"jsonrpc": "2.0", "method": method, "params": params, "id": id})


def netstring(payload: bytes) -> bytes:
    return b"%d:%s," % (len(payload), payload)


def httpRequest(method: str, path: str, body: bytes = b"", headers: dict | None = None) -> bytes:
    lines = [f"{method} {path} HTTP/1.1", "Host: 127.0.0.1"]
    lines += [f"{name}: {value}" for name, value in (headers or {}).items()]
    if body and not any(name.lower() == "content-length" for name in (headers or {})):
        lines.append(f"Content-Length: {len(body)}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body
