"""
The poetry tools as real processes on loopback: C{xform poetry-server},
fast and slow, plain and netstring; C{xform get-poetry} against them and a
real gateway over every scheme in the clear (over TLS: tests/test_tls.py), including a
gateway that is down, silent or dies mid-run, and poetry servers that die
mid-poem.  Their usage errors are checked in this process.
"""

import signal
import socket

import pytest

from service import transforms
from tests.helpers import (
    PLAIN_SCHEMES,
    POEMS,
    ROOT,
    GatewayProcess,
    PoetryServerProcess,
    XformProcess,
    freePort,
    listenersFor,
    silentServer,
    xform,
)

SCIENCE, ECSTASY = "poems/science.txt", "poems/ecstasy.txt"

#: A slow server's pace: the 3,003 bytes of ecstasy.txt in 1.5 seconds,
#: long enough to act while it is being sent.
SLOW = ("--num-bytes", "100", "--delay", "0.05")


@pytest.fixture(scope="module")
def fast():
    with PoetryServerProcess([SCIENCE]) as process:
        yield process.ports[SCIENCE]


@pytest.fixture(scope="module")
def slow():
    """
    A slow server: ecstasy.txt, 300 bytes every 0.05 s.
    """
    with PoetryServerProcess([ECSTASY], "--num-bytes", "300", "--delay", "0.05") as process:
        yield process.ports[ECSTASY]


def printed(*poems) -> bytes:
    """
    What get-poetry prints for C{(port, poem)} pairs.
    """
    return "\n".join(f"==> 127.0.0.1:{port} <==\n{poem}" for port, poem in poems).encode()


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
    progress in bytes, and get-poetry exits as soon as it is done.
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


def test_commandLineOrderNotArrivalOrder(fast, slow, fullGateway):
    gateway = fullGateway.url("netstring")
    status, out, err = xform(
        "get-poetry", f"127.0.0.1:{slow}", "--quiet", str(fast), "--transform-server", gateway
    )
    assert (status, out, err) == (
        0,
        printed((slow, POEMS["ecstasy"].lower()), (fast, POEMS["science"].lower())),
        "",
    )


@pytest.mark.parametrize("scheme", PLAIN_SCHEMES)
def test_pipeline(fast, fullGateway, scheme):
    gateway = fullGateway.url(scheme)
    status, out, err = xform(
        "get-poetry", "-q", "--transform", "titlecase|reverse", "--transform-server", gateway, str(fast)
    )
    assert (status, err) == (0, "")
    assert out == printed((fast, transforms.reverse(transforms.titlecase(POEMS["science"]))))


def test_noTransformServerNoTransform(fast, slow):
    status, out, err = xform("get-poetry", "--quiet", str(fast), str(slow))
    assert (status, out, err) == (0, printed((fast, POEMS["science"]), (slow, POEMS["ecstasy"])), "")


def test_netstringPoems(fullGateway):
    gateway = fullGateway.url("netstring")
    with PoetryServerProcess(
        [SCIENCE, ECSTASY], "--netstring", "--num-bytes", "500", "--delay", "0.02"
    ) as server:
        ports = [server.ports[SCIENCE], server.ports[ECSTASY]]
        status, out, err = xform(
            "get-poetry", "--netstring", "-q", "--transform-server", gateway, *map(str, ports)
        )
        assert (status, out, err) == (
            0,
            printed((ports[0], POEMS["science"].lower()), (ports[1], POEMS["ecstasy"].lower())),
            "",
        )
        # A netstring poem read as a plain one shows its framing.
        status, out, err = xform("get-poetry", "-q", str(ports[0]))
        assert out == printed((ports[0], f"653:{POEMS['science']},\n"))


@pytest.mark.parametrize("scheme", PLAIN_SCHEMES)
def test_transformServerDown(fast, slow, scheme):
    """
    With no transform server listening, each poem falls back to the
    original, with a warning; every poem arrived, so the exit status is 0.
    """
    server = f"{scheme}://127.0.0.1:{freePort()}"
    status, out, err = xform(
        "get-poetry", "-q", "--transform-server", server, str(fast), str(slow), timeout=10
    )
    assert (status, out) == (0, printed((fast, POEMS["science"]), (slow, POEMS["ecstasy"])))
    assert err.splitlines() == [
        f"xform: 127.0.0.1:{port}: cannot transform with 'cummingsify' at {server} "
        "(connection refused); printing the original poem"
        for port in (fast, slow)
    ]


@pytest.mark.parametrize("scheme", PLAIN_SCHEMES)
def test_transformServerDiesDuringTheRun(fast, scheme):
    """
    The gateway transforms the fast poem, then is killed while the slow one
    is still arriving: the first comes back transformed, the second falls
    back to the original.  Over AMP, the connection the first poem opened
    is gone, and the client connects again, to find the gateway down.
    """
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


@pytest.mark.parametrize("scheme", PLAIN_SCHEMES)
def test_transformServerThatNeverAnswers(fast, scheme):
    with silentServer() as silent:
        server = f"{scheme}://127.0.0.1:{silent.getsockname()[1]}"
        status, out, err = xform(
            "get-poetry", "-q", "--transform-server", server, "--transform-timeout", "0.5", str(fast)
        )
    assert (status, out) == (0, printed((fast, POEMS["science"])))
    assert err == (
        f"xform: 127.0.0.1:{fast}: cannot transform with 'cummingsify' at {server} "
        "(timeout: no reply within 0.5 seconds); printing the original poem\n"
    )


def test_poetryServerDown(fast):
    """
    A poem that cannot be fetched is reported; the others are printed; the
    exit status is 1.
    """
    refused = freePort()
    status, out, err = xform("get-poetry", "-q", str(refused), str(fast))
    assert (status, out) == (1, printed((fast, POEMS["science"])))
    assert err == f"xform: 127.0.0.1:{refused}: no poem: connection refused\n"


def test_poetryServerThatSendsNothing():
    with silentServer() as silent:
        port = silent.getsockname()[1]
        status, out, err = xform("get-poetry", "--download-timeout", "0.5", str(port))
    assert (status, out) == (1, b"")
    assert (
        err == f"xform: 127.0.0.1:{port}: no poem: the server sent nothing for 0.5 seconds (after 0 bytes)\n"
    )


def poemServerDiesMidPoem(*options):
    with PoetryServerProcess([ECSTASY], *SLOW, *options) as server:
        port = server.ports[ECSTASY]
        client = getPoetry(*options, str(port))
        client.waitForLog(lambda: client.logged(f"127.0.0.1:{port}: 300 bytes"))
        server.stop(signal.SIGKILL)
        return port, client.wait(), client


def test_plainPoemServerDiesMidPoem():
    """
    Without netstrings a poem cut short looks whole (the tutorial's point):
    the client prints what came and cannot tell.
    """
    port, status, client = poemServerDiesMidPoem()
    assert status == 0
    header = f"==> 127.0.0.1:{port} <==\n".encode()
    assert client.output.startswith(header)
    poem = client.output[len(header) :].decode()
    assert 300 <= len(poem) < len(POEMS["ecstasy"])
    assert POEMS["ecstasy"].startswith(poem.removesuffix("\n"))
    assert not [line for line in client.log if line.startswith("xform:")]


def test_netstringPoemServerDiesMidPoem():
    port, status, client = poemServerDiesMidPoem("--netstring")
    assert (status, client.output) == (1, b"")
    [report] = [line for line in client.log if line.startswith("xform:")]
    assert report.startswith(
        f"xform: 127.0.0.1:{port}: no poem: the poem is truncated: the connection closed after "
    )
    assert report.endswith(" bytes, before the end of its netstring")


def test_clientLeavesASlowServerMidPoem():
    """
    A client that disconnects mid-poem is let go, logged in one line, and
    the server keeps serving the others.
    """
    with PoetryServerProcess([ECSTASY], *SLOW) as server:
        port = server.ports[ECSTASY]
        client = getPoetry("-q", str(port))
        with socket.create_connection(("127.0.0.1", port), timeout=20) as leaving:
            assert leaving.recv(100) == POEMS["ecstasy"][:100].encode()
        server.waitForLog(lambda: server.logged(f"poetry {ECSTASY}: a client left after "))
        assert client.wait() == 0
        assert client.output == printed((port, POEMS["ecstasy"]))
        assert server.process.poll() is None
    assert not server.logged("Traceback")


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
