"""
Hold many idle connections open to a server, for the idle-memory benchmark.

    python bench/idle_connections.py --port P --protocol netstring|amp|ws [--connections N]

It opens N connections (a few dozen at a time, so that the listen backlog
never overflows); over C{ws} each one is upgraded at C{/ws} and the server's
101 answer awaited.  Then it prints one JSON line, C{{"open": N, "failed":
M, "seconds": S}}, holds the connections, sending nothing, until its
standard input closes, and resets them (C{SO_LINGER} 0) so that no
C{TIME_WAIT} is left behind to use up the loopback's ports.
"""

import argparse
import asyncio
import base64
import json
import os
import socket
import struct
import sys
import time

_AT_ONCE = 32


class IdleConnection(asyncio.Protocol):
    """
    A connection that sends nothing, or over WebSocket only its upgrade;
    C{ready} fires once it is open (upgraded).
    """

    def __init__(self, protocol: str, port: int) -> None:
        self.protocol = protocol
        self.port = port
        self.ready = asyncio.get_running_loop().create_future()
        self.answer = b""

    def connection_made(self, transport) -> None:
        self.transport = transport
        if self.protocol != "ws":
            self.ready.set_result(None)
            return
        key = base64.b64encode(os.urandom(16)).decode("ascii")
        transport.write(
            f"GET /ws HTTP/1.1\r\nHost: 127.0.0.1:{self.port}\r\nUpgrade: websocket\r\n"
            f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n".encode()
        )

    def data_received(self, data: bytes) -> None:
        if self.ready.done():
            return
        self.answer += data
        if b"\r\n\r\n" in self.answer:
            if self.answer.startswith(b"HTTP/1.1 101"):
                self.ready.set_result(None)
            else:
                self.ready.set_exception(ConnectionError(self.answer.split(b"\r\n")[0].decode()))

    def connection_lost(self, reason) -> None:
        if not self.ready.done():
            self.ready.set_exception(ConnectionError("closed before it was open"))

    def reset(self) -> None:
        sock = self.transport.get_extra_info("socket")
        if sock is not None:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        self.transport.abort()


async def hold(arguments: argparse.Namespace) -> None:
    loop = asyncio.get_running_loop()
    started = time.monotonic()
    limit = asyncio.Semaphore(_AT_ONCE)
    held: list[IdleConnection] = []

    async def openOne() -> bool:
        async with limit:
            try:
                _, connection = await loop.create_connection(
                    lambda: IdleConnection(arguments.protocol, arguments.port), "127.0.0.1", arguments.port
                )
                await asyncio.wait_for(connection.ready, 10)
            except (OSError, TimeoutError):
                return False
            held.append(connection)
            return True

    opened = await asyncio.gather(*(openOne() for _ in range(arguments.connections)))
    print(
        json.dumps(
            {"open": sum(opened), "failed": opened.count(False), "seconds": time.monotonic() - started}
        ),
        flush=True,
    )
    await loop.run_in_executor(None, sys.stdin.buffer.read)
    for connection in held:
        connection.reset()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.strip().split("\n\n")[0])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--protocol", choices=("netstring", "amp", "ws"), required=True)
    parser.add_argument("--connections", type=int, default=10_000)
    asyncio.run(hold(parser.parse_args()))


if __name__ == "__main__":
    main()
