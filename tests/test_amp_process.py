"""
AMP against the real thing: C{xform serve} as a process on free loopback
ports, talked to by a client written here from docs/protocols.md alone
(plain sockets and C{struct}), by L{AMPTransformClient} and by the C{xform}
command in this process (as a process, it runs in the docs' examples:
L{tests.test_docs}).
"""

import socket
import struct

import pytest
from twisted.internet import reactor
from twisted.internet.endpoints import TCP4ClientEndpoint
from twisted.internet.error import ConnectionRefusedError
from twisted.trial.unittest import TestCase

from protocols.amp.client import AMPTransformClient
from service import UnknownTransform, transforms
from tests.helpers import POEMS, ROOT, GatewayProcess

#: About 1 MB of UTF-8 (within the default limit of 1 MiB), multi-byte
#: characters included.
MEGABYTE_POEM = (POEMS["alla_sera"] * 2000)[:1_000_000]
while len(MEGABYTE_POEM.encode()) > 1024 * 1024:
    MEGABYTE_POEM = MEGABYTE_POEM[:-1000]

#: 5 MB and a bit.
FIVE_MEGABYTES = (POEMS["science"] * 20_000)[: 5 * 1000 * 1000 + 7]


@pytest.fixture
def gateway(fullGateway):
    """
    The run's gateway with every listener on, and the default options.
    """
    return fullGateway


def amp(gateway):
    return f"amp://127.0.0.1:{gateway.ports['amp']}"


class DocsClient:
    """
    An AMP client built from docs/protocols.md only: no Twisted, no code of
    this project.
    """

    def __init__(self, port: int) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=20)
        self.buffer = b""
        self.tags = iter(range(1, 1_000_000))

    def close(self) -> None:
        self.sock.close()

    def sendBox(self, pairs: list[tuple[bytes, bytes]]) -> None:
        self.sendBoxes([pairs])

    def sendBoxes(self, boxes: list[list[tuple[bytes, bytes]]]) -> None:
        data = []
        for pairs in boxes:
            for key, value in pairs:
                data += [struct.pack("!H", len(key)), key, struct.pack("!H", len(value)), value]
            data.append(b"\x00\x00")
        self.sock.sendall(b"".join(data))

    def _read(self, size: int) -> bytes:
        while len(self.buffer) < size:
            data = self.sock.recv(65536)
            if not data:
                raise EOFError("closed")
            self.buffer += data
        data, self.buffer = self.buffer[:size], self.buffer[size:]
        return data

    def readBox(self) -> dict[bytes, bytes]:
        box = {}
        while True:
            (keyLength,) = struct.unpack("!H", self._read(2))
            if keyLength == 0:
                return box
            key = self._read(keyLength)
            (valueLength,) = struct.unpack("!H", self._read(2))
            box[key] = self._read(valueLength)

    @staticmethod
    def split(name: bytes, value: bytes, size: int = 65535) -> list[tuple[bytes, bytes]]:
        pieces = [value[start : start + size] for start in range(0, len(value), size)] or [b""]
        return [(name if n == 1 else name + b".%d" % n, piece) for n, piece in enumerate(pieces, 1)]

    @staticmethod
    def join(box: dict[bytes, bytes], name: bytes) -> bytes:
        value, n = box[name], 2
        while name + b".%d" % n in box:
            value += box[name + b".%d" % n]
            n += 1
        return value

    def ask(self, command: bytes, arguments: list[tuple[bytes, bytes]]) -> tuple[bytes, dict]:
        tag = str(next(self.tags)).encode()
        self.sendBox([(b"_command", command), (b"_ask", tag), *arguments])
        return tag, self.readBox()

    def transform(self, name: str, poem: str, pieceSize: int = 65535) -> dict[bytes, bytes]:
        tag, answer = self.ask(
            b"Transform", [(b"transform", name.encode()), *self.split(b"poem", poem.encode(), pieceSize)]
        )
        assert tag in (answer.get(b"_answer"), answer.get(b"_error"))
        return answer

    def listTransforms(self) -> list[tuple[str, str]]:
        tag, answer = self.ask(b"ListTransforms", [])
        assert answer[b"_answer"] == tag
        data, entries = self.join(answer, b"transforms"), []
        while data:
            entry = {}
            while True:
                (keyLength,) = struct.unpack("!H", data[:2])
                if keyLength == 0:
                    data = data[2:]
                    break
                key = data[2 : 2 + keyLength]
                (valueLength,) = struct.unpack("!H", data[2 + keyLength : 4 + keyLength])
                entry[key] = data[4 + keyLength : 4 + keyLength + valueLength].decode()
                data = data[4 + keyLength + valueLength :]
            entries.append((entry[b"name"], entry[b"description"]))
        return entries


@pytest.fixture
def docsClient(gateway):
    client = DocsClient(gateway.ports["amp"])
    yield client
    client.close()


def test_docsClientListsTransforms(docsClient):
    listed = docsClient.listTransforms()
    assert listed[0] == ("cummingsify", "lowercase everything, as e. e. cummings might")
    assert [name for name, description in listed] == [
        "cummingsify",
        "reverse",
        "mirror",
        "titlecase",
        "piglatin",
        "shuffle",
        "rot13",
        "echo",
    ]


def test_docsClientTransforms(docsClient):
    answer = docsClient.transform("cummingsify", "HELLO WORLD")
    assert answer == {b"_answer": b"1", b"poem": b"hello world"}


def test_docsClientMegabytePoem(docsClient):
    """
    About 1 MB, cut every 65,535 bytes without regard for characters: the
    docs say the server joins the pieces before decoding.
    """
    answer = docsClient.transform("titlecase", MEGABYTE_POEM)
    assert docsClient.join(answer, b"poem").decode() == transforms.titlecase(MEGABYTE_POEM)
    assert all(len(value) <= 65535 for value in answer.values())


def test_docsClientOneBytePieces(docsClient):
    """
    The docs say pieces may be of any size: 100,000 bytes in pieces of one
    byte, some of them halves of a character, fit the default limit.
    """
    poem = "Émile " * 14_285  # 99,995 bytes
    answer = docsClient.transform("rot13", poem, pieceSize=1)
    assert docsClient.join(answer, b"poem").decode() == transforms.rot13(poem)


def test_docsClientErrorThenCarriesOn(docsClient):
    answer = docsClient.transform("nope", "HELLO")
    assert answer[b"_error_code"] == b"UNKNOWN_TRANSFORM"
    assert answer[b"_error_description"] == b"unknown transform 'nope'"
    answer = docsClient.transform("cummingsify|explode", "HELLO")
    assert answer[b"_error_code"] == b"UNKNOWN_TRANSFORM"
    assert docsClient.transform("reverse", "A\nB")[b"poem"] == b"B\nA"


def test_docsClientPoemTooLarge(docsClient):
    """
    The box is refused, with the description that docs/protocols.md shows.
    """
    answer = docsClient.transform("cummingsify", "A" * (2 * 1024 * 1024))
    assert answer[b"_error_code"] == b"POEM_TOO_LARGE"
    assert answer[b"_error_description"] == (
        b"the poem is 2,097,152 bytes; this gateway accepts at most 1,048,576 (--max-poem-bytes)"
    )
    assert docsClient.transform("cummingsify", "STILL OPEN")[b"poem"] == b"still open"


def test_docsClientAnswersComeAsEachFinishes(docsClient):
    """
    C{echo} answers on a later turn of the reactor, C{rot13} at once: asked
    in one write, the second question is answered first.
    """
    slow = [(b"_command", b"Transform"), (b"_ask", b"slow"), (b"transform", b"echo"), (b"poem", b"A")]
    fast = [(b"_command", b"Transform"), (b"_ask", b"fast"), (b"transform", b"rot13"), (b"poem", b"A")]
    docsClient.sendBoxes([slow, fast])
    assert [docsClient.readBox()[b"_answer"] for _ in range(2)] == [b"fast", b"slow"]


def test_sameAnswerOverNetstringAndAMP(gateway, xformHere):
    poem = str(ROOT / "poems" / "ecstasy.txt")
    netstring = xformHere(
        "transform", "piglatin|shuffle", poem, "-s", f"netstring://127.0.0.1:{gateway.ports['netstring']}"
    )
    overAMP = xformHere("transform", "piglatin|shuffle", poem, "-s", amp(gateway))
    assert netstring == overAMP
    assert netstring[0] == 0 and netstring[1].decode() == transforms.shuffle(
        transforms.piglatin(POEMS["ecstasy"])
    )


def test_syncClientMegabytePoem(gateway, xformHere):
    status, out, err = xformHere("transform", "cummingsify", "-s", amp(gateway), input=MEGABYTE_POEM.encode())
    assert (status, err) == (0, "")
    assert out.decode() == MEGABYTE_POEM.lower()


def test_syncClientErrors(gateway, xformHere):
    status, out, err = xformHere("transform", "nope", "-s", amp(gateway), input=b"poem")
    assert (status, out, err) == (
        1,
        b"",
        f"xform: {amp(gateway)}: unknown-transform: unknown transform 'nope'\n",
    )
    status, out, err = xformHere(
        "transform", "cummingsify", "-s", amp(gateway), input=b"A" * (2 * 1024 * 1024)
    )
    assert status == 1 and "poem-too-large: the poem is 2,097,152 bytes; this gateway accepts" in err


class _CountingEndpoint:
    """
    A real TCP endpoint that counts the connections it makes.
    """

    def __init__(self, port: int) -> None:
        self.endpoint = TCP4ClientEndpoint(reactor, "127.0.0.1", port)
        self.connections = 0

    def connect(self, factory):
        self.connections += 1
        return self.endpoint.connect(factory)


@pytest.fixture
def gatewayForTrial(request, gateway):
    """
    The module's gateway, for a trial test case: C{self.gateway}.
    """
    request.instance.gateway = gateway


@pytest.mark.usefixtures("gatewayForTrial")
class TwistedClientTests(TestCase):
    """
    L{AMPTransformClient} against the real gateway process: the module's,
    or one of its own for a test that needs other options or stops it.
    """

    def connect(self, gateway):
        self.endpoint = _CountingEndpoint(gateway.ports["amp"])
        self.client = AMPTransformClient(self.endpoint, reactor, timeout=30)
        self.addCleanup(self.client.disconnect)

    def startGateway(self, *arguments):
        gateway = GatewayProcess(*arguments, listeners=("amp",)).start()
        self.addCleanup(gateway.stop)
        self.connect(gateway)
        return gateway

    async def test_hundredConcurrentQuestionsOnOneConnection(self):
        self.connect(self.gateway)
        poems = [f"POEM NUMBER {n}\nTHE END" for n in range(100)]
        names = ["cummingsify|shuffle", "reverse", "rot13", "mirror"]
        results = [self.client.xform(names[n % 4], poem) for n, poem in enumerate(poems)]
        answers = [await result for result in results]
        expected = {
            "cummingsify|shuffle": lambda poem: transforms.shuffle(poem.lower()),
            "reverse": transforms.reverse,
            "rot13": transforms.rot13,
            "mirror": transforms.mirror,
        }
        self.assertEqual(answers, [expected[names[n % 4]](poem) for n, poem in enumerate(poems)])
        self.assertEqual(self.endpoint.connections, 1)

    async def test_fiveMegabytePoem(self):
        self.startGateway("--max-poem-bytes", "6000000")
        self.assertEqual(await self.client.xform("cummingsify", FIVE_MEGABYTES), FIVE_MEGABYTES.lower())
        self.assertEqual(await self.client.xform("rot13|rot13", FIVE_MEGABYTES), FIVE_MEGABYTES)

    async def test_listAndErrors(self):
        self.connect(self.gateway)
        listed = await self.client.listTransforms()
        self.assertEqual(listed[1], ("reverse", "the same lines, last line first"))
        error = await self.assertFailure(self.client.xform("nope", "poem"), UnknownTransform)
        self.assertEqual(error.message, "unknown transform 'nope'")

    async def test_gatewayStops(self):
        """
        After the gateway has gone, a question fails with the connection
        error, whether or not the client has noticed the loss yet.
        """
        gateway = self.startGateway()
        self.assertEqual(await self.client.xform("cummingsify", "ONE"), "one")
        gateway.stop()
        await self.assertFailure(self.client.xform("cummingsify", "TWO"), ConnectionRefusedError)
        self.assertEqual(self.endpoint.connections, 2)
