"""
Shared pieces of the tests: the bundled poems, a catalogue with misbehaving
transforms, log capture, and a real C{xform serve} process.
"""

import os
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

from twisted.internet.defer import Deferred
from twisted.logger import globalLogPublisher

from gateway.server import LISTENERS
from service import Catalogue, Transform, builtinCatalogue, transforms

ROOT = Path(__file__).resolve().parent.parent
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
    catalogue.add(Transform("stall", "never answers", lambda poem: Deferred(), offloadable=False))
    catalogue.add(Transform("number", "answers 42", lambda poem: 42))
    return catalogue


def captureLogs(testCase) -> list[dict]:
    """
    Collect the log events emitted until the end of C{testCase}.
    """
    events: list[dict] = []
    globalLogPublisher.addObserver(events.append)
    testCase.addCleanup(globalLogPublisher.removeObserver, events.append)
    return events


_LISTENING = re.compile(r"(\w+) listening on (\S+):(\d+)$")


class GatewayProcess:
    """
    A real C{xform serve} on free loopback ports, its log (standard output
    and error) read in a thread.  The listeners named in C{listeners} are
    on, on free ports; the others are off, unless the arguments say.

    @ivar ports: listener name -> port number, once started.
    @ivar log: every line it has written to standard error so far.
    """

    #: The command that starts the gateway; its arguments follow.
    command = (sys.executable, "-m", "gateway", "serve")

    def __init__(self, *arguments: str, listeners=("netstring",), command=None) -> None:
        if command is not None:
            self.command = command
        self.arguments = list(arguments)
        for name in LISTENERS:
            if f"--{name}" not in self.arguments:
                self.arguments += [f"--{name}", "tcp:0:interface=127.0.0.1" if name in listeners else "off"]
        self.expected = set(listeners)
        self.ports: dict[str, int] = {}
        self.log: list[str] = []
        self._changed = threading.Condition()

    def start(self, timeout: float = 20.0) -> "GatewayProcess":
        """
        Start it and wait until every listener says where it listens.
        """
        self.process = subprocess.Popen(
            [*self.command, *self.arguments],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            cwd=ROOT,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
            # Whoever started the tests may ignore SIGINT; the gateway must not.
            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
        )
        threading.Thread(target=self._readLog, daemon=True).start()
        self.waitForLog(lambda: set(self.ports) >= self.expected, timeout, "listening")
        return self

    def _readLog(self) -> None:
        for line in self.process.stdout:
            with self._changed:
                self.log.append(line.rstrip("\n"))
                match = _LISTENING.search(self.log[-1])
                if match:
                    self.ports[match.group(1)] = int(match.group(3))
                self._changed.notify_all()
        with self._changed:
            self._changed.notify_all()

    def waitForLog(self, condition, timeout: float = 20.0, what: str = "a log line") -> None:
        """
        Wait until C{condition()} holds, checked whenever a line arrives.
        """
        end = time.monotonic() + timeout
        with self._changed:
            while not condition():
                left = end - time.monotonic()
                if left <= 0 or (self.process.poll() is not None and not condition()):
                    raise AssertionError(f"gateway: no {what}; its log:\n" + "\n".join(self.log))
                self._changed.wait(min(left, 0.2))

    def logged(self, text: str) -> bool:
        return any(text in line for line in self.log)

    def stop(self, signum: int = signal.SIGTERM, timeout: float = 20.0) -> int:
        """
        Send C{signum} and return the exit status.
        """
        if self.process.poll() is None:
            self.process.send_signal(signum)
        try:
            return self.process.wait(timeout)
        finally:
            if self.process.poll() is None:
                self.process.kill()
                self.process.wait()

    def __enter__(self) -> "GatewayProcess":
        return self.start()

    def __exit__(self, *exc_info) -> None:
        self.stop()
