"""
The blocking client, C{xform transform} and C{xform transforms}, against
every scheme it speaks: the list of transforms from a real gateway over each
scheme that can list them (as a process once, to prove the real command),
and each scheme's failure modes against a port that refuses and a server
that never answers, run in this process.
"""

import re
import socket
import subprocess
import threading

import pytest
from twisted.internet.task import Clock
from websockets.utils import accept_key

from gateway.schemes import SCHEMES
from service import builtinCatalogue
from tests.helpers import PLAIN_SCHEMES, ROOT, XformProcess, freePort, silentServer, xform

#: What C{xform transforms} prints for the built-in catalogue.
CATALOGUE = list(builtinCatalogue(Clock()))
WIDTH = max(len(entry.name) for entry in CATALOGUE)
LISTING = "".join(f"{entry.name:<{WIDTH}}  {entry.description}\n" for entry in CATALOGUE).encode()


#: The schemes in the clear that can list the transforms.
LISTING_SCHEMES = [name for name in PLAIN_SCHEMES if SCHEMES[name].listTransforms]


@pytest.mark.parametrize("scheme", LISTING_SCHEMES)
def test_listTransforms(fullGateway, xformHere, scheme):
    assert xformHere("transforms", "--server", fullGateway.url(scheme)) == (0, LISTING, "")


def test_listTransformsProcess(fullGateway):
    """
    The real command lists them too, over its default scheme's kind.
    """
    assert xform("transforms", "--server", fullGateway.url("amp")) == (0, LISTING, "")


def test_netstringCannotList(fullGateway, xformHere):
    server = fullGateway.url("netstring")
    status, out, err = xformHere("transforms", "--server", server)
    assert (status, out) == (1, b"")
    assert err == (
        f"xform: {server}: cannot list the transforms: the netstring protocol has no request for "
        "the list of transforms; use amp://HOST:PORT, amps://HOST:PORT, ws://HOST:PORT/ws, "
        "wss://HOST:PORT/ws, http://HOST:PORT, https://HOST:PORT\n"
    )


@pytest.mark.parametrize("scheme", SCHEMES)
def test_refusedServer(xformHere, scheme):
    """
    A port nothing listens on is refused, with one line and exit status 1,
    whatever the scheme.
    """
    refused = f"{scheme}://127.0.0.1:{freePort()}"
    status, out, err = xformHere("transform", "cummingsify", "-s", refused, input=b"poem")
    assert (status, out, err) == (1, b"", f"xform: {refused}: connection refused (is the gateway running?)\n")


@pytest.mark.parametrize("scheme", SCHEMES)
def test_silentServer(xformHere, scheme):
    """
    A server that accepts the connection but never answers is given up on
    after C{--timeout}, with one line and exit status 1, whatever the
    scheme.  The blocking client runs no reactor: its timeout is the
    socket's, on the wall clock, and is the behaviour under test; 0.1 s
    keeps it short.
    """
    with silentServer() as silent:
        address = f"{scheme}://127.0.0.1:{silent.getsockname()[1]}"
        status, out, err = xformHere("transform", "cummingsify", "-s", address, "-t", "0.1", input=b"poem")
    assert (status, out, err) == (1, b"", f"xform: {address}: no reply within 0.1 seconds\n")


def test_webSocketRefusedBeforeSending(tmp_path):
    """
    A gateway may refuse a message (1009, too big) before the client has
    sent it all: here the close frame comes with the handshake's answer,
    so that the client has it before it sends the first byte of its
    message, whatever the threads' timing.  The client sends no more and
    reports the close frame.  (Against the real gateway, which refuses
    while the client sends, from the frame's header:
    L{tests.test_web_process}.)
    """
    poem = tmp_path / "big.txt"
    poem.write_bytes(b"x" * (8 * 1024 * 1024))
    with socket.create_server(("127.0.0.1", 0)) as listening:
        server = f"ws://127.0.0.1:{listening.getsockname()[1]}"
        client = subprocess.Popen(
            [*XformProcess.command, "transform", "rot13", str(poem), "-s", server],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            cwd=ROOT,
        )
        connection, _ = listening.accept()
        with connection:
            handshake = b""
            while b"\r\n\r\n" not in handshake:
                handshake += connection.recv(4096)
            key = re.search(rb"Sec-WebSocket-Key: (\S+)", handshake).group(1).decode()
            reason = b"\x03\xf1message too big"  # 1009
            connection.sendall(
                b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                + f"Sec-WebSocket-Accept: {accept_key(key)}\r\n\r\n".encode()
                + bytes([0x88, len(reason)])
                + reason
            )
            connection.shutdown(socket.SHUT_WR)
            received = 0
            while data := connection.recv(65536):  # until the client goes
                received += len(data)
        out, err = client.communicate(timeout=30)
    assert (client.returncode, out) == (1, b"")
    assert "the poem is too big for the gateway's WebSocket messages (1009: message too big)" in err.decode()
    assert received < len(poem.read_bytes())


def test_webSocketClosedDuringHandshake(xformHere):
    """
    A server that closes the connection instead of answering the
    handshake is reported in words.
    """
    with socket.create_server(("127.0.0.1", 0)) as listening:
        server = f"ws://127.0.0.1:{listening.getsockname()[1]}"

        def closeAfterTheRequest():
            connection, _ = listening.accept()
            with connection:
                connection.recv(4096)

        closer = threading.Thread(target=closeAfterTheRequest)
        closer.start()
        status, out, err = xformHere("transform", "rot13", "-s", server, input=b"a")
        closer.join()
    assert (status, out, err) == (
        1,
        b"",
        f"xform: {server}: closed the connection during the WebSocket handshake\n",
    )
