"""
Attacks on C{/ws}: frames that break RFC 6455, lengths that announce more
than the gateway takes, JSON built to cost, and handshakes from other
sites' pages.
"""

import json
import struct
import time

from tests.hostile.conftest import DEFAULT
from tests.hostile.support import (
    connection,
    frame,
    readFrames,
    readHead,
    rpc,
    text,
    upgradeRequest,
    violated,
    webSocket,
)

#: The default gateway, with WebSockets closed after 1 s without a message.
GATEWAY = (*DEFAULT, "--ws-idle-timeout", "1")


def violations(target, name: str, frames: dict[str, bytes], memory: int = 20 * 2**20) -> dict:
    """
    Send each of C{frames} on a WebSocket of its own, again and again while
    the polite client is served.

    @return: the code of the close frame each got, by name.
    """
    port = target.port("web")

    def attack():
        return {case: violated(port, data) for case, data in frames.items()}

    with target.attack(name, memory=memory) as run:
        results = run.repeat(attack, most=20)
        run.note(connections=len(results) * len(frames))
    assert all(codes == results[0] for codes in results)
    return results[0]


def test_hugeLengths(target):
    """
    A frame announcing 2**62 bytes is refused as soon as its header has
    come, with close code 1009 (too big), and nothing of it is read; one
    announcing a length with its most significant bit set (which RFC 6455
    forbids) is a protocol error, 1002.
    """
    codes = violations(
        target,
        "ws-huge-lengths",
        {
            "2**62": frame(0x1, length=2**62),
            "most significant bit": frame(0x1, length=2**63 + 5),
            "7 MB": frame(0x1, length=7_000_000),
        },
    )
    assert codes == {"2**62": 1009, "most significant bit": 1002, "7 MB": 1009}


def test_invalidUTF8(target):
    """
    A text message that is not UTF-8, whole or split across fragments,
    closes the connection with 1007.
    """
    codes = violations(
        target,
        "ws-invalid-utf8",
        {
            "whole": text(b'{"jsonrpc": "2.0", "method": "\xff\xfe", "id": 1}'),
            "fragments": frame(0x1, b"\xe2\x82", fin=False) + frame(0x0, b"\x28"),
            "overlong": text(b"\xc0\xaf"),
        },
    )
    assert set(codes.values()) == {1007}


def test_badOpcodes(target):
    """
    Each reserved opcode (3 to 7, 11 to 15) is a protocol error: 1002.
    """
    codes = violations(
        target, "ws-bad-opcodes", {str(op): frame(op, b"x") for op in [*range(3, 8), *range(11, 16)]}
    )
    assert set(codes.values()) == {1002}


def test_framingViolations(target):
    """
    An unmasked frame, reserved bits set, a continuation with nothing to
    continue, a new message inside a fragmented one, a control frame of
    more than 125 bytes, a fragmented control frame: each is a protocol
    error, closed with 1002.
    """
    codes = violations(
        target,
        "ws-framing-violations",
        {
            "unmasked": frame(0x1, b"{}", mask=False),
            "reserved bits": frame(0x1, b"{}", rsv=0b100),
            "lone continuation": frame(0x0, b"{}"),
            "message inside a message": frame(0x1, b"[", fin=False) + frame(0x1, b"]"),
            "ping of 126 bytes": frame(0x9, b"x" * 126),
            "fragmented ping": frame(0x9, b"x", fin=False),
        },
    )
    assert set(codes.values()) == {1002}


def test_closeFrameViolations(target):
    """
    A close frame with a code that no endpoint may send (999, 1004, 1005,
    1006, 1015, 2999, 5000), with a payload of one byte, or of 126 bytes,
    is a protocol error: the gateway closes with 1002, not with a reset;
    one whose reason is not UTF-8 is closed with 1007.
    """
    codes = [999, 1004, 1005, 1006, 1015, 2999, 5000]
    frames = {str(code): frame(0x8, struct.pack("!H", code)) for code in codes}
    frames["one byte"] = frame(0x8, b"\x03")
    frames["126 bytes"] = frame(0x8, struct.pack("!H", 1000) + b"x" * 124)
    frames["reason not UTF-8"] = frame(0x8, struct.pack("!H", 1000) + b"\xff")
    expected = {**dict.fromkeys(frames, 1002), "reason not UTF-8": 1007}
    assert violations(target, "ws-close-violations", frames) == expected


def test_crossOriginHandshakes(target):
    """
    A handshake from another site's page, from C{Origin: null}, or from a
    page that names the gateway by a host name of its own choosing, is
    refused with 403; one for a draft of the protocol before RFC 6455, with
    400 and the version the gateway speaks (RFC 6455, 4.4); the gateway stays up for the
    polite client throughout.
    """
    port = target.port("web")
    origins = ["http://evil.example", "null", f"http://evil.example:{port}", "http://localhost.evil.example"]

    def attack():
        statuses = []
        for origin in origins:
            with connection(port) as sock:
                sock.sendall(upgradeRequest(port, origin))
                statuses.append(readHead(sock).split(b" ")[1])
        with connection(port) as sock:
            sock.sendall(upgradeRequest(port, version="8"))
            head = readHead(sock)
            statuses.append((head.split(b" ")[1], b"Sec-WebSocket-Version: 13" in head))
        return statuses

    with target.attack("ws-cross-origin", memory=20 * 2**20) as run:
        results = run.repeat(attack, most=50)
        run.note(handshakes=len(results) * (len(origins) + 1))
    assert all(statuses == [b"403"] * len(origins) + [(b"400", True)] for statuses in results), results[0]


def answers(sock, count: int = 1) -> list:
    """
    The next C{count} JSON-RPC answers on C{sock}.
    """
    received, found = b"", []
    while len(found) < count:
        data = sock.recv(1 << 20)
        assert data, "closed"
        received += data
        found = [json.loads(payload) for opcode, payload in readFrames(received) if opcode == 0x1]
    return found


def costly(target, name: str, messages: list[bytes]) -> list:
    """
    Send each of C{messages} (made to cost) on one WebSocket, again and
    again while the polite client is served.

    @return: the answer to each, from the first round.
    """
    port = target.port("web")

    def attack():
        with webSocket(port) as sock:
            found = []
            for message in messages:
                sock.sendall(text(message))
                found += answers(sock)
            return found

    with target.attack(name) as run:
        results = run.repeat(attack, most=20)
        run.note(messages=len(results) * len(messages), megabytes=round(sum(map(len, messages)) / 2**20, 1))
    return results[0]


def test_deeplyNestedAndHugeJSON(target):
    """
    JSON nested 100,000 deep is refused before it is parsed, over the limit
    of values (-32600); nested 5,000 deep it is too deep to parse (-32700);
    a poem of a mebibyte and one byte, written with six bytes a character,
    is answered C{poem-too-large} (3).
    """
    poem = "\\u0041" * (2**20 + 1)
    found = costly(
        target,
        "ws-nested-and-huge-json",
        [
            b"[" * 100_000 + b"]" * 100_000,
            b"[" * 5_000 + b"]" * 5_000,
            rpc("transform", ["rot13", "POEM"]).replace('"POEM"', f'"{poem}"').encode(),
        ],
    )
    assert [answer["error"]["code"] for answer in found] == [-32600, -32700, 3]


def test_batchesBuiltToCost(target):
    """
    A batch of 100,000 requests (4 MB), and 6 MB of C{[1,1,...]} (three
    million values), are each refused as a whole with one Invalid Request
    (id null), counted before anything is parsed.
    """
    request = b'{"jsonrpc":"2.0","method":"x","id":1}'
    found = costly(
        target,
        "ws-batches-built-to-cost",
        [b"[" + b",".join([request] * 100_000) + b"]", b"[" + b"1," * 3_000_000 + b"1]"],
    )
    assert [(answer["error"]["code"], answer["id"]) for answer in found] == [(-32600, None)] * 2


#: How many silent WebSockets the attacker holds open.
SILENT = 50


def test_silentWebSockets(target):
    """
    Fifty WebSockets that never say anything, nor answer a ping, are
    closed by the gateway within 4 s (four WebSocket idle timeouts of 1 s).
    """
    with target.attack("ws-silent") as run:
        silent = [webSocket(target.port("web")) for _ in range(SILENT)]
        started = time.monotonic()
        gauge = 'xform_connections_open{protocol="ws"}'
        closed = target.waitUntil(lambda: target.metrics()[gauge] == 0, 4)
        run.note(websockets=SILENT, seconds=round(time.monotonic() - started, 1))
        for sock in silent:
            sock.close()
    assert closed
