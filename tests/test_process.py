"""
The real thing: C{xform serve} as a process on free loopback ports, talked
to by netcat, by the blocking client C{xform transform} (in this process,
and as a process where the real command must be proved) and by the Part 13
client; the usage errors of C{xform serve}, in this process.  (Under twist
and twistd, and what the operator sees: L{tests.test_operations}.)
"""

import signal
import socket
import subprocess
import sys

import pytest
from twisted.internet import reactor
from twisted.internet.endpoints import TCP4ClientEndpoint
from twisted.trial.unittest import TestCase

from gateway.schemes import SCHEMES
from gateway.server import LISTENERS, ServeOptions
from protocols.netstring import NoReply, TransformProxy, encodeNetstring
from service import transforms
from tests.helpers import POEMS, ROOT, GatewayProcess, freePort, xform

#: A poem of about 900 KB, and one of 2 MiB and a bit.
BIG_POEM = (POEMS["ecstasy"] * 300)[:900_000]
HUGE_POEM = "A" * (2 * 1024 * 1024 + 1)


@pytest.fixture(scope="module")
def gateway():
    with GatewayProcess() as process:
        yield process


def netcat(port, data):
    done = subprocess.run(["nc", "-N", "127.0.0.1", str(port)], input=data, capture_output=True, timeout=30)
    return done.stdout


def server(gateway):
    return f"netstring://127.0.0.1:{gateway.ports['netstring']}"


def test_netcatTutorialExample(gateway):
    """
    C{printf '23:cummingsify.HELLO WORLD,' | nc -N 127.0.0.1 PORT} prints
    C{11:hello world,}.
    """
    assert netcat(gateway.ports["netstring"], b"23:cummingsify.HELLO WORLD,") == b"11:hello world,"


def test_netcatAsynchronousPipeline(gateway):
    request = encodeNetstring(b"cummingsify|echo.HELLO\nWORLD")
    expected = encodeNetstring("hello … hello … hello\nworld … world … world".encode())
    assert netcat(gateway.ports["netstring"], request) == expected


def test_netcatBadRequestGetsNothing(gateway):
    assert netcat(gateway.ports["netstring"], b"10:nope.HELLO,") == b""
    gateway.waitForLog(lambda: gateway.logged("unknown-transform: unknown transform 'nope'"))


@pytest.mark.parametrize("name", sorted(POEMS))
def test_syncClientEveryPoem(gateway, xformHere, name):
    status, out, err = xformHere(
        "transform", "titlecase|reverse", str(ROOT / "poems" / f"{name}.txt"), "-s", server(gateway)
    )
    assert (status, err) == (0, "")
    assert out.decode() == transforms.reverse(transforms.titlecase(POEMS[name]))


def test_syncClientReadsStandardInput(gateway):
    """
    The real command, reading its standard input.
    """
    assert xform("transform", "cummingsify", "--server", server(gateway), input=b"HELLO") == (0, b"hello", "")


def test_syncClientBigPoem(gateway, xformHere):
    status, out, err = xformHere("transform", "cummingsify", "-s", server(gateway), input=BIG_POEM.encode())
    assert (status, err) == (0, "")
    assert out.decode() == BIG_POEM.lower()


def test_hugePoemRefusedByDefault(gateway, xformHere):
    status, out, err = xformHere("transform", "cummingsify", "-s", server(gateway), input=HUGE_POEM.encode())
    assert (status, out) == (1, b"")
    assert "closed the connection without a reply" in err
    size = f"{len(HUGE_POEM.encode()):,}"
    gateway.waitForLog(
        lambda: gateway.logged(
            f"closing without a reply: poem-too-large: the poem is {size} bytes; "
            "this gateway accepts at most 1,048,576 (--max-poem-bytes)"
        )
    )


def test_hugePoemAcceptedWithARaisedLimit(xformHere):
    with GatewayProcess("--max-poem-bytes", "3000000") as raised:
        status, out, err = xformHere(
            "transform", "cummingsify", "-s", server(raised), input=HUGE_POEM.encode()
        )
    assert (status, err) == (0, "")
    assert out.decode() == HUGE_POEM.lower()


def test_syncClientUnknownTransform(gateway, xformHere):
    """
    The gateway refuses an unknown transform by closing without a reply,
    which the client says.  (A refused port and a silent server:
    L{tests.test_syncclient_process}.)
    """
    status, out, err = xformHere("transform", "nope", "-s", server(gateway), input=b"poem")
    assert (status, out) == (1, b"")
    assert "closed the connection without a reply" in err


@pytest.mark.parametrize(
    "arguments, message",
    [
        (("-s", "gopher://x"), "is not a server URL"),
        (("missing.txt",), "cannot read"),
        (("latin1.txt",), "is not UTF-8 text"),
    ],
)
def test_syncClientUsageErrors(tmp_path, monkeypatch, xformHere, arguments, message):
    (tmp_path / "latin1.txt").write_bytes("perché".encode("latin-1"))
    monkeypatch.chdir(tmp_path)
    status, out, err = xformHere("transform", "cummingsify", *arguments)
    assert status == 2 and message in err


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_cleanExitOnSignal(signum):
    gateway = GatewayProcess().start()
    port = gateway.ports["netstring"]
    assert gateway.stop(signum) == 0
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", port), timeout=5)


@pytest.mark.parametrize(
    "arguments, message",
    [
        (("--netstring", "nonsense:1"), "--netstring: invalid endpoint 'nonsense:1'"),
        (tuple(arg for name in LISTENERS for arg in (f"--{name}", "off")), "every listener is off"),
        (("--deadline", "-1"), "--deadline: '-1' is not a positive number; see 'xform serve --help'\n"),
    ],
)
def test_serveUsageErrors(xformHere, arguments, message):
    status, out, err = xformHere("serve", *arguments)
    assert status == 2 and message in err


def test_helpDocumentsEveryOption(xformHere):
    status, out, err = xformHere("serve", "--help")
    assert status == 0
    for long, *_ in ServeOptions.optParameters:
        assert f"--{long}=" in out.decode()
    status, out, err = xformHere("--help")
    assert status == 0 and b"serve" in out and b"transform" in out


def test_clientCommandsImportNeitherReactorNorAutobahn():
    """
    C{xform --help} and the blocking commands, over every scheme, run
    without importing the reactor, Autobahn or treq: each command imports
    what it needs when it runs.
    """
    port = freePort()
    runs = [["--help"]]
    for name in SCHEMES:
        runs += [["transform", "rot13", "-s", f"{name}://127.0.0.1:{port}"]]
        runs += [["transforms", "-s", f"{name}://127.0.0.1:{port}"]]
    code = (
        "import sys\n"
        "from gateway.cli import main\n"
        f"for arguments in {runs!r}:\n"
        "    try:\n"
        "        main(arguments)\n"
        "    except SystemExit:\n"
        "        pass\n"
        "heavy = [name for name in ('autobahn', 'treq', 'twisted.internet.reactor') if name in sys.modules]\n"
        "print(heavy, file=sys.stderr)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, timeout=30, cwd=ROOT, stdin=subprocess.DEVNULL
    )
    assert done.stderr.splitlines()[-1] == b"[]", done.stderr


@pytest.fixture
def gatewayForTrial(request, gateway):
    """
    The module's gateway, for a trial test case: C{self.gateway}.
    """
    request.instance.gateway = gateway


@pytest.mark.usefixtures("gatewayForTrial")
class TransformProxyTests(TestCase):
    """
    The Part 13 client against the real gateway process.
    """

    def setUp(self):
        endpoint = TCP4ClientEndpoint(reactor, "127.0.0.1", self.gateway.ports["netstring"])
        self.proxy = TransformProxy(endpoint, reactor)

    async def test_xform(self):
        poem = POEMS["science"]
        self.assertEqual(
            await self.proxy.xform("piglatin|shuffle", poem), transforms.shuffle(transforms.piglatin(poem))
        )

    async def test_bigPoem(self):
        self.assertEqual(await self.proxy.xform("cummingsify", BIG_POEM), BIG_POEM.lower())

    async def test_refusal(self):
        await self.assertFailure(self.proxy.xform("nope", "poem"), NoReply)
