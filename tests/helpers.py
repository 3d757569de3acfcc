"""
Shared pieces of the tests: the bundled poems, a catalogue with misbehaving
transforms, log capture, and real C{xform} processes: the gateway, poetry
servers, any other command.
"""

import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

from twisted.internet.defer import Deferred, gatherResults
from twisted.logger import globalLogPublisher

from gateway.schemes import SCHEMES
from gateway.server import LISTENERS
from protocols.amp.server import TransformAMP, TransformAMPFactory
from service import Catalogue, Transform, builtinCatalogue, transforms

ROOT = Path(__file__).resolve().parent.parent

#: The schemes in the clear, which the gateways of the process tests serve
#: (their listeners are on tcp:), and those over TLS, tested against a
#: gateway whose listeners are on ssl: (tests/test_tls.py).
PLAIN_SCHEMES = [name for name, scheme in SCHEMES.items() if not scheme.tls]
TLS_SCHEMES = [name for name, scheme in SCHEMES.items() if scheme.tls]
POEMS = {path.stem: path.read_text("utf-8") for path in sorted((ROOT / "poems").glob("*.txt"))}


def echoed(poem: str) -> str:
    """
    What the C{echo} transform makes of C{poem}.
    """
    return "\n".join(map(transforms.echoLine, poem.split("\n")))


def explode(poem: str) -> str:
    raise ZeroDivisionError("a transform with a bug")


def misbehavingCatalogue(clock) -> Catalogue:
    """
    The built-in transforms, plus C{explode} (raises), C{stall} (never
    answers) and C{number} (answers something that is not a poem).
    """
    catalogue = builtinCatalogue(clock)
    catalogue.add(Transform("explode", "raises ZeroDivisionError", explode))
    catalogue.add(Transform("stall", "never answers", lambda poem: Deferred()))
    catalogue.add(Transform("number", "answers 42", lambda poem: 42))
    return catalogue


class _TrackedAMP(TransformAMP):
    def connectionMade(self):
        super().connectionMade()
        self.factory.open[self] = Deferred()

    def connectionLost(self, reason):
        super().connectionLost(reason)
        self.factory.open.pop(self).callback(None)


class TrackingAMPFactory(TransformAMPFactory):
    """
    Knows its open connections, so that a test can wait until the server's
    side of each has closed.
    """

    protocol = _TrackedAMP

    def __init__(self, *arguments, **keywords):
        super().__init__(*arguments, **keywords)
        self.open: dict[_TrackedAMP, Deferred] = {}

    def whenAllClosed(self) -> Deferred:
        return gatherResults(list(self.open.values()))


def captureLogs(testCase) -> list[dict]:
    """
    Collect the log events emitted until the end of C{testCase}.
    """
    events: list[dict] = []
    globalLogPublisher.addObserver(events.append)
    testCase.addCleanup(globalLogPublisher.removeObserver, events.append)
    return events


def freePort() -> int:
    """
    A loopback port that nothing listens on: free to listen on, refused to
    connect to.
    """
    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))
        return closed.getsockname()[1]


def silentServer() -> socket.socket:
    """
    A socket listening on a free loopback port that accepts connections
    (into its backlog) and never answers.  Close it when done; it is a
    context manager.
    """
    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen()
    return silent


def accepted(listening: socket.socket) -> Iterator[socket.socket]:
    """
    Each connection that C{listening} accepts, until it is closed.
    """
    while True:
        try:
            connection, _ = listening.accept()
        except OSError:
            return  # closed
        yield connection


class HeldUpstream(threading.Thread):
    """
    A netstring transform server on a free loopback port that holds every
    request it reads until L{release}, then answers each with its poem in
    capitals: a request in flight for as long as a test needs, without
    work or wall-clock time.  A gateway given L{arguments} sends it the
    requests for C{held:<anything>}.  A context manager, which L{close}s
    it on leaving.

    @ivar received: set once a request has arrived whole.
    """

    def __init__(self) -> None:
        super().__init__(daemon=True)
        self.listening = socket.create_server(("127.0.0.1", 0))
        self.arguments = ("--upstream", f"held=netstring://127.0.0.1:{self.listening.getsockname()[1]}")
        self.received = threading.Event()
        self._released = threading.Event()
        self.start()

    def run(self) -> None:
        for connection in accepted(self.listening):
            threading.Thread(target=self._hold, args=(connection,), daemon=True).start()

    def _hold(self, connection: socket.socket) -> None:
        with connection, connection.makefile("rb") as reader:
            try:
                header = b""
                while not header.endswith(b":"):
                    byte = reader.read(1)
                    if not byte:
                        return
                    header += byte
                _, _, poem = reader.read(int(header[:-1]) + 1)[:-1].partition(b".")
                self.received.set()
                self._released.wait()
                answer = poem.upper()
                connection.sendall(b"%d:%s," % (len(answer), answer))
            except (OSError, ValueError):
                pass  # the gateway gave up on it

    def release(self) -> None:
        """
        Answer the requests held and those to come.
        """
        self._released.set()

    def close(self) -> None:
        """
        Release what it holds, and stop listening.
        """
        self.release()
        self.listening.close()

    def __enter__(self) -> "HeldUpstream":
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()


def xform(*arguments, input=None, timeout=30, env=None):
    """
    Run the C{xform} command as a process, with C{env} added to its
    environment; return its exit status, output and errors.  (The
    C{xformHere} fixture runs it in this process.)
    """
    done = subprocess.run(
        [sys.executable, "-m", "gateway", *arguments],
        input=input,
        capture_output=True,
        timeout=timeout,
        cwd=ROOT,
        env={**os.environ, **(env or {})},
    )
    return done.returncode, done.stdout, done.stderr.decode()


class XformProcess:
    """
    A real C{xform} command running as a process, its log read in a thread
    line by line.  Its standard output goes into the log too, unless
    C{separateOutput} is set: then it is kept whole in L{output}.

    @ivar ports: listener name -> port number, from the lines matching
        L{listening}.
    @ivar log: every line it has written to its log so far.
    @ivar output: its standard output, once it has ended, with
        C{separateOutput}.
    """

    #: The command that starts it; its arguments follow.
    command = (sys.executable, "-m", "gateway")

    #: A line saying where a listener listens: its name, host and port (in
    #: a line of text or of JSON).
    listening = re.compile(r'(?:^|\] |")(\w+) listening on ([^\s"]+):(\d+)(?:$|")')

    def __init__(self, *arguments: str, expected=(), command=None, separateOutput=False, env=None) -> None:
        """
        @param expected: the names of the listeners L{start} waits for.
        @param env: variables added to its environment.
        """
        if command is not None:
            self.command = command
        self.env = env or {}
        self.arguments = list(arguments)
        self.expected = set(expected)
        self.separateOutput = separateOutput
        self.ports: dict[str, int] = {}
        self.log: list[str] = []
        self.output = b""
        self._changed = threading.Condition()

    def start(self, timeout: float = 20.0):
        """
        Start it and wait until every expected listener says where it
        listens.
        """
        self.process = subprocess.Popen(
            [*self.command, *self.arguments],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE if self.separateOutput else subprocess.STDOUT,
            cwd=ROOT,
            env={**os.environ, "PYTHONUNBUFFERED": "1", **self.env},
            # Whoever started the tests may ignore SIGINT; the process must not.
            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
        )
        logStream = self.process.stderr if self.separateOutput else self.process.stdout
        self._readers = [threading.Thread(target=self._readLog, args=(logStream,), daemon=True)]
        if self.separateOutput:
            self._readers.append(threading.Thread(target=self._readOutput, daemon=True))
        for reader in self._readers:
            reader.start()
        self.waitForLog(lambda: set(self.ports) >= self.expected, timeout, "listening")
        return self

    def _readLog(self, stream) -> None:
        for line in stream:
            with self._changed:
                self.log.append(line.decode("utf-8", "replace").rstrip("\n"))
                match = self.listening.search(self.log[-1])
                if match:
                    self.ports[match.group(1)] = int(match.group(3))
                self._changed.notify_all()
        with self._changed:
            self._changed.notify_all()

    def _readOutput(self) -> None:
        self.output = self.process.stdout.read()

    def waitForLog(self, condition, timeout: float = 20.0, what: str = "a log line") -> None:
        """
        Wait until C{condition()} holds, checked whenever a line arrives.
        """
        end = time.monotonic() + timeout
        with self._changed:
            while not condition():
                left = end - time.monotonic()
                if left <= 0 or (self.process.poll() is not None and not condition()):
                    raise AssertionError(f"{self.command[-1]}: no {what}; its log:\n" + "\n".join(self.log))
                self._changed.wait(min(left, 0.2))

    def logged(self, text: str) -> bool:
        return any(text in line for line in self.log)

    def stop(self, signum: int = signal.SIGTERM, timeout: float = 20.0) -> int:
        """
        Send C{signum} and return the exit status, once everything it wrote
        has been read (so L{log} is whole).
        """
        if self.process.poll() is None:
            self.process.send_signal(signum)
        try:
            return self.wait(timeout)
        finally:
            if self.process.poll() is None:
                self.process.kill()
                self.process.wait()

    def wait(self, timeout: float = 30.0) -> int:
        """
        Wait until it ends by itself and everything it wrote has been read;
        return its exit status.
        """
        status = self.process.wait(timeout)
        for reader in self._readers:
            reader.join(timeout)
        return status

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc_info) -> None:
        self.stop()


def eachScheme(*checks: str, schemes=PLAIN_SCHEMES):
    """
    A class decorator for trial test cases, which pytest cannot
    parametrize: for each method C{assertSomething(self, scheme)} named in
    C{checks} and each scheme of C{schemes} (by default those in the
    clear: L{PLAIN_SCHEMES}), a test C{test_assertSomething_<scheme>} that
    calls it, so that each scheme passes or fails on its own.
    """

    def decorate(testCase: type) -> type:
        for check in checks:
            for scheme in schemes:

                def test(self, check=check, scheme=scheme):
                    return getattr(self, check)(scheme)

                test.__doc__ = getattr(testCase, check).__doc__
                name = check.removeprefix("assert")
                setattr(testCase, f"test_{name[:1].lower()}{name[1:]}_{scheme}", test)
        return testCase

    return decorate


def listenersFor(*schemes: str) -> tuple[str, ...]:
    """
    The gateway's listeners that serve C{schemes}, each once.
    """
    return tuple(dict.fromkeys(SCHEMES[scheme].listener for scheme in schemes))


class GatewayProcess(XformProcess):
    """
    A real C{xform serve} on free loopback ports.  The listeners named in
    C{listeners} are on, on free ports; the others are off, unless the
    arguments say.
    """

    command = (*XformProcess.command, "serve")

    def __init__(self, *arguments: str, listeners=("netstring",), command=None, env=None) -> None:
        arguments = list(arguments)
        for name in LISTENERS:
            if f"--{name}" not in arguments:
                arguments += [f"--{name}", "tcp:0:interface=127.0.0.1" if name in listeners else "off"]
        super().__init__(*arguments, expected=listeners, command=command, env=env)

    def url(self, scheme: str) -> str:
        """
        The URL that reaches this gateway over C{scheme}
        (C{ws://127.0.0.1:PORT/ws}, ...); its listener must be on, on an
        C{ssl:} endpoint for a scheme over TLS.
        """
        return f"{scheme}://127.0.0.1:{self.ports[SCHEMES[scheme].listener]}{SCHEMES[scheme].path}"


class PoetryServerProcess(XformProcess):
    """
    A real C{xform poetry-server}, serving the poems at C{paths} (relative
    to the project) on free ports unless the arguments say.  L{ports} maps
    each path to its port.
    """

    command = (*XformProcess.command, "poetry-server")
    listening = re.compile(r"^poetry (.+) listening on (\S+):(\d+)$")

    def __init__(self, paths, *arguments: str) -> None:
        super().__init__(*paths, *arguments, expected=paths)
