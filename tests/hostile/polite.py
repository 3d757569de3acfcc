"""
The polite client of the hostile suite (L{Polite}), run as a process of
its own so that the attackers' threads in the test process never delay it,
and the well-behaved client of every protocol it is made of (L{Client},
which C{make soak} uses too).  The polite client asks the gateway for one
small transform over each protocol in turn, netstring, AMP, WebSocket and
HTTP, each on a new connection from its own loopback address, and keeps
every request's start, latency and outcome.

    python -m tests.hostile.polite SOURCE NETSTRING_PORT AMP_PORT WEB_PORT

On standard input it takes one command a line, and answers each with one
line of JSON on standard output:

    report START END   once each protocol has finished a request started at
                       START or later (time.monotonic(), the same clock in
                       every process), the requests started between START
                       and END by protocol: how many, the worst latency
                       (a request still running counts with its time so
                       far) and the errors

It stops when its standard input closes.
"""

import codecs
import http.client
import json
import socket
import struct
import sys
import threading
import time
from urllib.parse import quote

from websockets.sync.client import connect

#: Seconds a polite request may take before it counts as failed.
TIMEOUT = 10.0

#: Seconds between two requests: enough for the attack to have the machine.
PAUSE = 0.005

#: Seconds a report waits for a request of every protocol.
PATIENCE = 30.0

POEM = "Polite Poem\nasks for little\nand waits its turn.\n"
EXPECTED = codecs.encode(POEM, "rot13")
PROTOCOLS = ("netstring", "amp", "ws", "http")


class Client:
    """
    A well-behaved client of every protocol, from its own loopback address,
    a new connection for each request: it checks the framing of each
    answer, and raises L{ValueError} for an answer that is not a poem.
    """

    def __init__(self, source: str, netstring: int, amp: int, web: int) -> None:
        self.source = source
        self.ports = {"netstring": netstring, "amp": amp, "ws": web, "http": web}

    def ask(self, protocol: str, name: str, poem: str) -> str:
        """
        The gateway's answer over C{protocol} to C{name} of C{poem}.
        """
        return getattr(self, protocol)(name, poem)

    def connect(self, port: int) -> socket.socket:
        return socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT, source_address=(self.source, 0))

    def netstring(self, name: str, poem: str) -> str:
        payload = f"{name}.{poem}".encode()
        with self.connect(self.ports["netstring"]) as sock:
            sock.sendall(b"%d:%s," % (len(payload), payload))
            answer = b"".join(iter(lambda: sock.recv(65536), b""))
        length, _, rest = answer.partition(b":")
        if not length.isdigit() or len(rest) != int(length) + 1 or rest[-1:] != b",":
            raise ValueError(f"not one netstring: {answer[:80]!r}")
        return rest[:-1].decode()

    def amp(self, name: str, poem: str) -> str:
        data = poem.encode()
        pieces = [data[start : start + 65535] for start in range(0, len(data), 65535)] or [b""]
        keys = [b"poem"] + [b"poem.%d" % n for n in range(2, len(pieces) + 1)]
        pairs = [
            (b"_ask", b"1"),
            (b"_command", b"Transform"),
            (b"transform", name.encode()),
            *zip(keys, pieces, strict=True),
        ]
        box = b"".join(struct.pack("!H", len(k)) + k + struct.pack("!H", len(v)) + v for k, v in pairs)
        with self.connect(self.ports["amp"]) as sock:
            sock.sendall(box + b"\x00\x00")
            stream = sock.makefile("rb")
            answer = {}
            while size := struct.unpack("!H", stream.read(2))[0]:
                key = stream.read(size)
                answer[key] = stream.read(struct.unpack("!H", stream.read(2))[0])
        if b"poem" not in answer:
            raise ValueError(f"AMP error: {answer}")
        parts, n = [answer[b"poem"]], 2
        while b"poem.%d" % n in answer:
            parts.append(answer[b"poem.%d" % n])
            n += 1
        return b"".join(parts).decode()

    def ws(self, name: str, poem: str) -> str:
        sock = self.connect(self.ports["ws"])
        url = f"ws://127.0.0.1:{self.ports['ws']}/ws"
        with connect(url, sock=sock, open_timeout=TIMEOUT, close_timeout=1, max_size=None) as websocket:
            request = {"jsonrpc": "2.0", "method": "transform", "params": [name, poem], "id": 7}
            websocket.send(json.dumps(request))
            answer = json.loads(websocket.recv(timeout=TIMEOUT))
        if "result" not in answer:
            raise ValueError(f"JSON-RPC error: {answer}")
        return answer["result"]["poem"]

    def http(self, name: str, poem: str) -> str:
        connection = http.client.HTTPConnection(
            "127.0.0.1", self.ports["http"], timeout=TIMEOUT, source_address=(self.source, 0)
        )
        try:
            connection.request("POST", "/transform/" + quote(name), body=poem.encode())
            response = connection.getresponse()
            body = response.read().decode()
        finally:
            connection.close()
        if response.status != 200:
            raise ValueError(f"HTTP {response.status}: {body}")
        return body


class Polite(Client):
    """
    Ask for C{rot13} of L{POEM} over each protocol in turn, for ever,
    keeping each request's start, latency and outcome for L{report}.
    """

    def __init__(self, *arguments) -> None:
        super().__init__(*arguments)
        #: (protocol, started, seconds or None while running, error or None)
        self.requests: list[list] = []
        self.changed = threading.Condition()

    def run(self) -> None:
        while True:
            for protocol in PROTOCOLS:
                record = [protocol, time.monotonic(), None, None]
                with self.changed:
                    self.requests.append(record)
                try:
                    if self.ask(protocol, "rot13", POEM) != EXPECTED:
                        raise ValueError("a wrong answer")
                except Exception as error:  # every failure is the report's to tell
                    record[3] = f"{type(error).__name__}: {error}"
                with self.changed:
                    record[2] = time.monotonic() - record[1]
                    self.changed.notify_all()
                time.sleep(PAUSE)

    def report(self, start: float, end: float) -> dict:
        def servedSince() -> bool:
            done = {record[0] for record in self.requests if record[1] >= start and record[2] is not None}
            return done >= set(PROTOCOLS)

        with self.changed:
            waited = self.changed.wait_for(servedSince, PATIENCE)
            now = time.monotonic()
            report = {"waited": waited}
            for protocol in PROTOCOLS:
                mine = [
                    r
                    for r in self.requests
                    if r[0] == protocol
                    and r[1] <= end
                    and (r[1] >= start or r[2] is None or r[1] + r[2] >= start)
                ]
                report[protocol] = {
                    "count": len(mine),
                    "worst": max((r[2] if r[2] is not None else now - r[1] for r in mine), default=None),
                    "errors": [r[3] for r in mine if r[3]],
                }
            del self.requests[: max(0, len(self.requests) - 1000)]
        return report


def main(source: str, netstring: str, amp: str, web: str) -> None:
    polite = Polite(source, int(netstring), int(amp), int(web))
    threading.Thread(target=polite.run, daemon=True).start()
    print(json.dumps({"ready": True}), flush=True)
    for line in sys.stdin:
        command, *arguments = line.split()
        if command == "report":
            print(json.dumps(polite.report(*map(float, arguments))), flush=True)


if __name__ == "__main__":
    main(*sys.argv[1:])
