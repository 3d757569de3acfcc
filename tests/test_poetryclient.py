"""
C{xform get-poetry}'s client (L{PoetryClient}) in memory, on a fake clock:
against poetry servers and gateways built as C{xform poetry-server} and
C{xform serve} build them, on a L{MemoryNetwork}, over every scheme of
L{gateway.schemes.SCHEMES}; with a gateway that is down, silent or dies
mid-run and poetry servers that send nothing or die mid-poem.  The real
commands, as processes: L{tests.test_poetry_process}.
"""

from io import BytesIO, StringIO

from twisted.internet.defer import Deferred
from twisted.internet.endpoints import TCP4ClientEndpoint, connectProtocol
from twisted.internet.protocol import Protocol

from gateway.poetryclient import GetPoetryOptions, PoetryClient
from service import transforms
from tests.helpers import POEMS, ROOT, captureLogs, eachScheme
from tests.memory import GATEWAY, HOST, MemoryTestCase, url

SCIENCE, ECSTASY = str(ROOT / "poems" / "science.txt"), str(ROOT / "poems" / "ecstasy.txt")

#: Where the poetry servers listen: the fast one, the slow one, and a port
#: where nothing answers at all.
FAST, SLOW, SILENT = 10003, 10004, 10005

#: A slow server's pace, as in the tutorial's scenario.
PACE = ("--num-bytes", "300", "--delay", "0.05")


def printed(*poems) -> bytes:
    """
    What get-poetry prints for C{(port, poem)} pairs.
    """
    return "\n".join(f"==> 127.0.0.1:{port} <==\n{poem}" for port, poem in poems).encode()


def refused(port: int, server: str) -> str:
    """
    What get-poetry says when the transform server at C{server} refuses
    the poem of C{port}.
    """
    return (
        f"xform: 127.0.0.1:{port}: cannot transform with 'cummingsify' at {server} "
        "(connection refused); printing the original poem"
    )


class GetPoetryTestCase(MemoryTestCase):
    """
    Get-poetry runs on a L{MemoryNetwork}, with log capture.
    """

    def setUp(self):
        super().setUp()
        self.events = captureLogs(self)

    def fastAndSlow(self):
        """
        The tutorial's two poetry servers: science.txt at once on L{FAST},
        ecstasy.txt 300 bytes every 0.05 s on L{SLOW}.
        """
        self.poetryServer(SCIENCE, FAST)
        self.poetryServer(ECSTASY, SLOW, *PACE)

    def start(self, *arguments):
        """
        Start C{xform get-poetry ARGUMENTS...}.

        @return: its exit status (a L{Deferred}), its output and its errors.
        """
        options = GetPoetryOptions()
        options.parseOptions(list(arguments))
        out, err = BytesIO(), StringIO()
        status = Deferred.fromCoroutine(PoetryClient(self.reactor, options, out, err).run())
        return status, out, err

    def getPoetry(self, *arguments):
        """
        Run C{xform get-poetry ARGUMENTS...} to its end.

        @return: its exit status, its output and its errors.
        """
        status, out, err = self.start(*arguments)
        return self.successResultOf(self.network.run(status)), out.getvalue(), err.getvalue()


@eachScheme("assertTutorialScenario", "assertPipeline", "assertTransformServerDown")
@eachScheme("assertTransformServerDiesDuringTheRun", "assertTransformServerThatNeverAnswers")
class GetPoetryTests(GetPoetryTestCase):
    def assertTutorialScenario(self, scheme):
        """
        Two poetry servers, one slow, and a gateway reached over C{scheme}:
        both poems come back cummingsified, in command-line order, with
        progress in bytes as each piece arrives.
        """
        self.fastAndSlow()
        self.gateway()
        status, out, err = self.getPoetry("--transform-server", url(scheme), str(FAST), str(SLOW))
        self.assertEqual(
            (status, out),
            (0, printed((FAST, POEMS["science"].lower()), (SLOW, POEMS["ecstasy"].lower()))),
        )
        pieces = [f"127.0.0.1:{SLOW}: {size} bytes" for size in [*range(300, 3003, 300), 3003]]
        self.assertEqual(
            err.splitlines(),
            [
                f"127.0.0.1:{FAST}: 653 bytes",
                pieces[0],
                f"127.0.0.1:{FAST}: transformed by {url(scheme)}",
                *pieces[1:],
                f"127.0.0.1:{SLOW}: transformed by {url(scheme)}",
            ],
        )

    def assertPipeline(self, scheme):
        self.poetryServer(SCIENCE, FAST)
        self.gateway()
        status, out, err = self.getPoetry(
            "-q", "--transform", "titlecase|reverse", "--transform-server", url(scheme), str(FAST)
        )
        self.assertEqual((status, err), (0, ""))
        self.assertEqual(out, printed((FAST, transforms.reverse(transforms.titlecase(POEMS["science"])))))

    def assertTransformServerDown(self, scheme):
        """
        With no transform server listening, each poem falls back to the
        original, with a warning; every poem arrived, so the exit status is 0.
        """
        self.fastAndSlow()
        server = f"{scheme}://127.0.0.1:{GATEWAY['netstring']}"
        status, out, err = self.getPoetry("-q", "--transform-server", server, str(FAST), str(SLOW))
        self.assertEqual((status, out), (0, printed((FAST, POEMS["science"]), (SLOW, POEMS["ecstasy"]))))
        self.assertEqual(err.splitlines(), [refused(FAST, server), refused(SLOW, server)])

    def assertTransformServerDiesDuringTheRun(self, scheme):
        """
        The gateway transforms the fast poem, then dies while the slow one
        is still arriving: the first comes back transformed, the second
        falls back to the original.  Over AMP, the connection the first
        poem opened is gone, and the client connects again, to find the
        gateway down.
        """
        self.poetryServer(SCIENCE, FAST)
        self.poetryServer(ECSTASY, SLOW, "--num-bytes", "100", "--delay", "0.05")
        self.gateway()
        status, out, err = self.start("--transform-server", url(scheme), str(FAST), str(SLOW))
        arrived = f"127.0.0.1:{SLOW}: 300 bytes\n"
        self.assertTrue(self.network.runUntil(lambda: arrived in err.getvalue()))
        self.assertIn(f"127.0.0.1:{FAST}: transformed by {url(scheme)}\n", err.getvalue())
        for port in set(GATEWAY.values()):
            self.network.kill(port)
        self.assertEqual(self.successResultOf(self.network.run(status)), 0)
        self.assertEqual(out.getvalue(), printed((FAST, POEMS["science"].lower()), (SLOW, POEMS["ecstasy"])))
        reports = [line for line in err.getvalue().splitlines() if line.startswith("xform:")]
        self.assertEqual(reports, [refused(SLOW, url(scheme))])

    def assertTransformServerThatNeverAnswers(self, scheme):
        """
        A transform server that accepts the connection and never answers is
        given up on after C{--transform-timeout}.
        """
        self.poetryServer(SCIENCE, FAST)
        self.silentServer(GATEWAY["netstring"])
        server = f"{scheme}://127.0.0.1:{GATEWAY['netstring']}"
        status, out, err = self.getPoetry(
            "-q", "--transform-server", server, "--transform-timeout", "0.5", str(FAST)
        )
        self.assertEqual((status, out), (0, printed((FAST, POEMS["science"]))))
        self.assertEqual(
            err,
            f"xform: 127.0.0.1:{FAST}: cannot transform with 'cummingsify' at {server} "
            "(timeout: no reply within 0.5 seconds); printing the original poem\n",
        )
        self.assertEqual(self.reactor.seconds(), 0.5)


class PoetryServerTests(GetPoetryTestCase):
    """
    get-poetry against poetry servers that behave and that do not, without
    a transform server.
    """

    def test_commandLineOrderNotArrivalOrder(self):
        self.fastAndSlow()
        self.gateway()
        status, out, err = self.getPoetry(
            f"127.0.0.1:{SLOW}", "--quiet", str(FAST), "--transform-server", url("netstring")
        )
        self.assertEqual(
            (status, out, err),
            (0, printed((SLOW, POEMS["ecstasy"].lower()), (FAST, POEMS["science"].lower())), ""),
        )

    def test_noTransformServerNoTransform(self):
        self.fastAndSlow()
        status, out, err = self.getPoetry("--quiet", str(FAST), str(SLOW))
        self.assertEqual(
            (status, out, err), (0, printed((FAST, POEMS["science"]), (SLOW, POEMS["ecstasy"])), "")
        )

    def test_netstringPoems(self):
        self.poetryServer(SCIENCE, FAST, "--netstring", "--num-bytes", "500", "--delay", "0.02")
        self.poetryServer(ECSTASY, SLOW, "--netstring", "--num-bytes", "500", "--delay", "0.02")
        self.gateway()
        status, out, err = self.getPoetry(
            "--netstring", "-q", "--transform-server", url("netstring"), str(FAST), str(SLOW)
        )
        self.assertEqual(
            (status, out, err),
            (0, printed((FAST, POEMS["science"].lower()), (SLOW, POEMS["ecstasy"].lower())), ""),
        )
        # A netstring poem read as a plain one shows its framing.
        status, out, err = self.getPoetry("-q", str(FAST))
        self.assertEqual(out, printed((FAST, f"653:{POEMS['science']},\n")))

    def test_poetryServerDown(self):
        """
        A poem that cannot be fetched is reported; the others are printed; the
        exit status is 1.
        """
        self.poetryServer(SCIENCE, FAST)
        status, out, err = self.getPoetry("-q", str(SILENT), str(FAST))
        self.assertEqual((status, out), (1, printed((FAST, POEMS["science"]))))
        self.assertEqual(err, f"xform: 127.0.0.1:{SILENT}: no poem: connection refused\n")

    def test_poetryServerThatSendsNothing(self):
        self.silentServer(SILENT)
        status, out, err = self.getPoetry("--download-timeout", "0.5", str(SILENT))
        self.assertEqual((status, out), (1, b""))
        self.assertEqual(
            err,
            f"xform: 127.0.0.1:{SILENT}: no poem: the server sent nothing for 0.5 seconds (after 0 bytes)\n",
        )
        self.assertEqual(self.reactor.seconds(), 0.5)

    def dieMidPoem(self, *options):
        """
        A slow server of ecstasy.txt dies once 300 bytes have arrived.

        @return: the get-poetry run's exit status, output and errors.
        """
        self.poetryServer(ECSTASY, SLOW, "--num-bytes", "100", "--delay", "0.05", *options)
        status, out, err = self.start(*options, str(SLOW))
        self.assertTrue(self.network.runUntil(lambda: f"127.0.0.1:{SLOW}: 300 bytes" in err.getvalue()))
        self.network.kill(SLOW)
        return self.successResultOf(self.network.run(status)), out.getvalue(), err.getvalue()

    def test_plainPoemServerDiesMidPoem(self):
        """
        Without netstrings a poem cut short looks whole (the tutorial's point):
        the client prints what came and cannot tell.
        """
        status, out, err = self.dieMidPoem()
        self.assertEqual((status, out), (0, printed((SLOW, POEMS["ecstasy"][:300] + "\n"))))
        self.assertNotIn("xform:", err)

    def test_netstringPoemServerDiesMidPoem(self):
        status, out, err = self.dieMidPoem("--netstring")
        self.assertEqual((status, out), (1, b""))
        [report] = [line for line in err.splitlines() if line.startswith("xform:")]
        self.assertEqual(
            report,
            f"xform: 127.0.0.1:{SLOW}: no poem: the poem is truncated: the connection closed after "
            "300 bytes, before the end of its netstring",
        )

    def test_clientLeavesASlowServerMidPoem(self):
        """
        A client that disconnects mid-poem is let go and logged in one line,
        and the server keeps serving the others.
        """
        self.poetryServer(ECSTASY, SLOW, "--num-bytes", "100", "--delay", "0.05")
        status, out, err = self.start("-q", str(SLOW))
        leaving = Protocol()
        connectProtocol(TCP4ClientEndpoint(self.reactor, HOST, SLOW), leaving)
        self.network.flush()
        leaving.transport.loseConnection()
        self.assertEqual(self.successResultOf(self.network.run(status)), 0)
        self.assertEqual(out.getvalue(), printed((SLOW, POEMS["ecstasy"])))
        [left] = [event for event in self.events if "a client left" in event.get("log_format", "")]
        self.assertEqual((left["poem"], left["sent"]), (ECSTASY, 100))
