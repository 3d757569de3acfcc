"""
WebSockets that say nothing, on a gateway of their own that closes a
WebSocket after 1 s without a message (C{--ws-idle-timeout 1}): the other
WebSocket attacks send messages that may take longer than that to arrive.
"""

import time

from tests.hostile.conftest import DEFAULT
from tests.hostile.support import webSocket

GATEWAY = (*DEFAULT, "--ws-idle-timeout", "1")

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
