"""
The poetry tools as real processes on loopback, in the scenarios that need
them: the tutorial's, C{xform get-poetry} against C{xform poetry-server},
fast and slow, and a real gateway over every scheme of
L{gateway.schemes.SCHEMES}; a gateway killed mid-run; a poetry server
killed mid-poem, left by a client mid-poem, stopped by a signal.  Their
usage errors are checked in this process.  The client's logic over every
scheme, with gateways down, silent or dying and poetry servers silent or
dying, runs in memory: L{tests.test_poetryclient}.
"""

import signal
import socket

import pytest

from tests.helpers import (
    PLAIN_SCHEMES,
    POEMS,
    ROOT,
    GatewayProcess,
    PoetryServerProcess,
    XformProcess,
    freePort,
    listenersFor,
    xform,
)
from tests.test_poetryclient import printed

SCIENCE, ECSTASY = "poems/science.txt", "poems/ecstasy.txt"

#: A slow server's pace: the 3,003 bytes of ecstasy.txt in 0.9 seconds,
#: long enough to act while it is being sent.
SLOW = ("--num-bytes", "100", "--delay", "0.03")


@pytest.fixture(scope="module")
def fast():
    with PoetryServerProcess([SCIENCE]) as process:
        yield process.ports[SCIENCE]


@pytest.fixture(scope="module")
def slowServer():
    """
    A slow server: ecstasy.txt, 300 bytes every 0.05 s.
    """
    with PoetryServerProcess([ECSTASY], "--num-bytes", "300", "--delay", "0.05") as process:
        yield process


@pytest.fixture(scope="module")
def slow(slowServer):
    return slowServer.ports[ECSTASY]


def receiveAll(port: int) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=20) as connection:
        return b"".join(iter(lambda: connection.recv(65536), b""))


def getPoetry(*arguments) -> XformProcess:
    """
    A get-poetry run, started, its poems kept apart from its messages.
    """
    return XformProcess("get-poetry", *arguments, separateOutput=True).start()


@pytest.mark.parametrize("scheme", PLAIN_SCHEMES)
def test_tutorialScenario(fast, slow, fullGateway, scheme):
    """
    Two poetry servers, one slow, and a gateway reached over C{scheme}:
    both poems come back cummingsified, in command-line order, with
    progress in bytes, and get-poetry exits as soon as it is done.  The
    slow server's pace is real time, as in the tutorial: 0.45 s for the
    poem.  (Every progress line, exactly: L{tests.test_poetryclient}.)
    """
    gateway = fullGateway.url(scheme)
    status, out, err = xform("get-poetry", "--transform-server", gateway, str(fast), str(slow), timeout=10)
    assert (status, out) == (
        0,
        printed((fast, POEMS["science"].lower()), (slow, POEMS["ecstasy"].lower())),
    )
    lines = err.splitlines()
    assert f"127.0.0.1:{slow}: 300 bytes" in lines
    assert f"127.0.0.1:{slow}: 3003 bytes" in lines
    assert f"127.0.0.1:{fast}: 653 bytes" in lines
    assert f"127.0.0.1:{fast}: transformed by {gateway}" in lines
    assert f"127.0.0.1:{slow}: transformed by {gateway}" in lines
    assert all(line.startswith((f"127.0.0.1:{slow}: ", f"127.0.0.1:{fast}: ")) for line in lines), err


def test_transformServerDiesDuringTheRun(fast):
    """
    The gateway transforms the fast poem, then is killed while the slow one
    is still arriving: the first comes back transformed, the second falls
    back to the original.  Over AMP, the connection the first poem opened
    is gone, and the client connects again, to find the gateway down.
    The kill lands while the slow server, on real time, still sends (0.9
    s in all).  (Over every scheme, in memory: L{tests.test_poetryclient}.)
    """
    scheme = "amp"
    with (
        PoetryServerProcess([ECSTASY], *SLOW) as slowServer,
        GatewayProcess(listeners=listenersFor(scheme)) as gateway,
    ):
        slow = slowServer.ports[ECSTASY]
        server = gateway.url(scheme)
        client = getPoetry("--transform-server", server, str(fast), str(slow))
        client.waitForLog(
            lambda: client.logged(f"127.0.0.1:{fast}: transformed") and client.logged(f"{slow}: 300 bytes")
        )
        gateway.stop(signal.SIGKILL)
        assert client.wait(timeout=10) == 0
    assert client.output == printed((fast, POEMS["science"].lower()), (slow, POEMS["ecstasy"]))
    assert [line for line in client.log if line.startswith("xform:")] == [
        f"xform: 127.0.0.1:{slow}: cannot transform with 'cummingsify' at {server} "
        "(connection refused); printing the original poem"
    ]


def test_plainPoemServerDiesMidPoem():
    """
    Killed mid-poem, a server's socket closes as if the poem were done:
    without netstrings a poem cut short looks whole (the tutorial's
    point), and the client prints what came and cannot tell.  The kill
    lands while the slow server, on real time, still sends (0.9 s in all).
    (With netstrings, and exactly where it is cut:
    L{tests.test_poetryclient}.)
    """
    with PoetryServerProcess([ECSTASY], *SLOW) as server:
        port = server.ports[ECSTASY]
        client = getPoetry(str(port))
        client.waitForLog(lambda: client.logged(f"127.0.0.1:{port}: 300 bytes"))
        server.stop(signal.SIGKILL)
        status = client.wait()
    assert status == 0
    header = f"==> 127.0.0.1:{port} <==\n".encode()
    assert client.output.startswith(header)
    poem = client.output[len(header) :].decode()
    assert 300 <= len(poem) < len(POEMS["ecstasy"])
    assert POEMS["ecstasy"].startswith(poem.removesuffix("\n"))
    assert not [line for line in client.log if line.startswith("xform:")]


def test_clientLeavesMidPoem(slow, slowServer):
    """
    A client that disconnects mid-poem is let go and logged in one line;
    the server process carries on.  (That the others are still served:
    L{tests.test_poetryclient}.)
    """
    with socket.create_connection(("127.0.0.1", slow), timeout=20) as leaving:
        assert leaving.recv(100) == POEMS["ecstasy"][:100].encode()
    slowServer.waitForLog(lambda: slowServer.logged(f"poetry {ECSTASY}: a client left after "))
    assert slowServer.process.poll() is None
    assert not slowServer.logged("Traceback")


def test_startUpLinesAndOnePortPerPoem():
    """
    One line per poem, in command-line order, before anything else; each
    poem on its own port; a poem without a port gets a free one.
    """
    port = freePort()
    paths = [SCIENCE, "poems/alla_sera.txt", ECSTASY]
    with PoetryServerProcess(paths, "--port", str(port), "--port", "tcp:0:interface=127.0.0.1") as server:
        assert server.ports[SCIENCE] == port
        assert server.log[:3] == [
            f"poetry {path} listening on 127.0.0.1:{server.ports[path]}" for path in paths
        ]
        for path in paths:
            assert receiveAll(server.ports[path]).decode() == POEMS[path[6:-4]]


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_poetryServerExitsCleanlyOnSignal(signum):
    server = PoetryServerProcess([SCIENCE], *SLOW).start()
    port = server.ports[SCIENCE]
    with socket.create_connection(("127.0.0.1", port), timeout=20) as midPoem:
        midPoem.recv(100)
        assert server.stop(signum) == 0
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", port), timeout=5)
    assert not server.logged("Traceback")


#: Bad arguments of C{xform poetry-server}, each with the start of its one
#: line of error ({tmp} stands for a temporary directory).
POETRY_SERVER_ERRORS = {
    (): "no poem to serve: give at least one FILE",
    ("missing.txt",): "cannot read missing.txt: No such file or directory",
    ("{tmp}",): "cannot read {tmp}: Is a directory",
    ("{tmp}/latin1.txt",): "{tmp}/latin1.txt is not UTF-8 text",
    (SCIENCE, "--port", "1", "--port", "2"): "2 ports for 1 poems",
    (SCIENCE, "--port", "70000"): "--port: 70000 is not a port number (0 to 65535)",
    (SCIENCE, "--port", "nonsense:1"): "--port: invalid endpoint 'nonsense:1': ",
    (SCIENCE, "--num-bytes", "0"): "--num-bytes: '0' is not a positive number",
    (SCIENCE, "--delay", "-1"): "--delay: '-1' is not a positive number",
    (SCIENCE, "--bogus"): "option --bogus not recognized",
}


@pytest.mark.parametrize("arguments, message", POETRY_SERVER_ERRORS.items())
def test_poetryServerBadArguments(tmp_path, monkeypatch, xformHere, arguments, message):
    """
    Each bad argument gives one line on standard error, with a hint, and
    exit status 2.
    """
    (tmp_path / "latin1.txt").write_bytes("perché".encode("latin-1"))
    monkeypatch.chdir(ROOT)
    arguments = [argument.format(tmp=tmp_path) for argument in arguments]
    status, out, err = xformHere("poetry-server", *arguments)
    assert (status, out) == (2, b""), arguments
    assert err.startswith("xform poetry-server: " + message.format(tmp=tmp_path)), (arguments, err)
    assert err.endswith("; see 'xform poetry-server --help'\n") and err.count("\n") == 1, (arguments, err)


def test_poetryServerPortInUse(fast):
    """
    A port in use is found once the reactor runs: the real command says so
    in one line and exits with status 2.
    """
    status, out, err = xform("poetry-server", SCIENCE, "--port", str(fast), "--iface", "127.0.0.1")
    assert (status, out) == (2, b"")
    assert err.startswith(
        f"xform: poetry {SCIENCE} cannot listen: Couldn't listen on 127.0.0.1:{fast}: "
        "[Errno 98] Address already in use."
    )
    assert err.count("\n") == 1, err


@pytest.mark.parametrize(
    "arguments, message",
    {
        (): "which poems? give the [HOST:]PORT of at least one poetry server",
        ("host:port",): "'host:port' is not a poetry server's [HOST:]PORT",
        ("99999",): "'99999' is not a poetry server's [HOST:]PORT",
        ("1", "--transform-server", "gopher://x"): "--transform-server: 'gopher://x' is not a server URL",
        ("1", "--timeout", "0"): "--timeout: '0' is not a positive number",
    }.items(),
)
def test_getPoetryBadArguments(xformHere, arguments, message):
    status, out, err = xformHere("get-poetry", *arguments)
    assert (status, out) == (2, b""), arguments
    assert err.startswith(f"xform get-poetry: {message}") and err.count("\n") == 1, (arguments, err)
    assert err.endswith("; see 'xform get-poetry --help'\n"), err
