"""
The console examples of the docs, run as they are written.

Every fenced block marked C{console} in a Markdown file is a list of
commands, each with the output it shows:

    - a line starting with C{$ } is a command (a line ending in C{\\} goes
      on on the next one); the lines after it, up to the next command, are
      what it prints, standard output and standard error together;
    - a line that is only C{...} stands for any number of lines, and
      C{...} inside a line for any text on that line; a command that shows
      no output must print nothing;
    - a command ending in C{&} keeps running in the background, as in a
      shell: it is started, the lines it shows are waited for (they are
      the first lines it prints, such as the address it listens on), and
      it runs until the end of the document, or until a later
      C{kill [-SIGNAL] %N} stops job N, numbered as bash numbers them: a
      new job takes the number after the highest of those still running,
      so it is C{%1} again once every earlier job has been stopped;
    - every other command runs to its end in C{bash}, its output on a
      terminal, with C{xform} on the C{PATH}, in a directory holding the
      project's C{poems/};
    - an HTML comment that starts with C{<!-- console} holds a block that
      runs in its place like any other but that readers do not see: the
      README's examples assume a gateway is running, so a hidden block
      starts one.

Blocks run in the order of the document, so a server started in one block
serves the next ones.  Each document runs in a network namespace of its own
(C{unshare --net}, and a user namespace too when not run as root), so the
examples use the ports they show -- the gateway's defaults, 10001, 10002
and 8080, among them -- without ever meeting a gateway already running on
the machine, and the commands are run exactly as written.

A document that holds the line C{<!-- console-requires: compose -->} shows
examples against the compose system (docs/deploy.md): they run only in
C{make compose-test}, on the host's network, once the system is up, with
the system's published ports written for the defaults the document shows
(L{ConsoleSession}'s C{ports}).
"""

import os
import pty
import re
import select
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

#: C{kill [-SIGNAL] %N}: stop the N-th background command.
KILL = re.compile(r"kill(?:\s+-(\w+))?\s+%(\d+)$")

#: A terminal's style sequence: bold, colours, back to normal.
TERMINAL_STYLE = re.compile(r"\x1b\[[0-9;]*m")

#: Seconds a command may take, and a background command may take to show
#: its lines.
COMMAND_TIMEOUT = 60.0


@dataclass
class Command:
    """
    One command of a console block and the output it shows.

    @ivar line: where it is in its file (1-based), for messages.
    """

    text: str
    expected: list[str] = field(default_factory=list)
    line: int = 0

    @property
    def background(self) -> bool:
        return self.text.endswith("&") and not self.text.endswith("&&")


@dataclass
class Block:
    """
    One C{console} block: its commands, and the line it starts on.
    """

    line: int
    commands: list[Command]


def blockEnd(line: str) -> str | None:
    """
    The line that ends the block C{line} starts, or C{None} if it starts
    none: a shown block starts with C{```console}, a hidden one with
    C{<!-- console} (and maybe a word on why it is hidden).
    """
    line = line.strip()
    if line == "```console":
        return "```"
    hidden = line == "<!-- console" or (line.startswith("<!-- console ") and not line.endswith("-->"))
    return "-->" if hidden else None


def parseDocument(text: str) -> list[Block]:
    """
    The console blocks of a Markdown document, shown or hidden, in order.
    """
    blocks: list[Block] = []
    lines = text.split("\n")
    index = 0
    while index < len(lines):
        end = blockEnd(lines[index])
        if end is None:
            index += 1
            continue
        start, commands = index + 1, []
        index += 1
        while index < len(lines) and lines[index].strip() != end:
            line = lines[index]
            if line.startswith("$ "):
                text = line[2:]
                first = index + 1
                while text.endswith("\\") and index + 1 < len(lines):
                    index += 1
                    text += "\n" + lines[index]
                commands.append(Command(text.strip(), line=first))
            elif commands:
                commands[-1].expected.append(line)
            index += 1
        blocks.append(Block(start, commands))
        index += 1
    return blocks


def outputPattern(expected: list[str]) -> re.Pattern:
    """
    A pattern matching a whole output that the lines C{expected} describe,
    C{...} standing for any lines or any text.
    """
    while expected and not expected[-1].strip():
        expected = expected[:-1]
    parts = []
    for line in expected:
        if line.strip() == "...":
            parts.append(r"(?:[^\n]*\n)*?")
        else:
            parts.append(r"[^\n]*".join(map(re.escape, line.rstrip().split("..."))) + r"\n")
    return re.compile("".join(parts))


def normalise(output: str) -> str:
    """
    Output as the docs show it: Unix line ends, no terminal styles (curl
    writes header names in bold), no trailing blanks, one final newline
    when there is any output.
    """
    output = TERMINAL_STYLE.sub("", output.replace("\r\n", "\n"))
    lines = [line.rstrip() for line in output.split("\n")]
    while lines and not lines[-1]:
        lines.pop()
    return "".join(line + "\n" for line in lines)


def signalNumber(name: str) -> int:
    """
    The signal that C{kill -NAME} sends: C{9}, C{KILL}, C{SIGKILL}...
    """
    if name.isdigit():
        return int(name)
    return getattr(signal, name if name.startswith("SIG") else f"SIG{name}")


class BackgroundCommand:
    """
    A command left running, its output read line by line in a thread.
    """

    def __init__(self, command: str, session: "ConsoleSession") -> None:
        self.command = command
        self.output = ""
        self._changed = threading.Condition()
        self.process = subprocess.Popen(
            [*session.enter, "bash", "-c", f"exec {command.removesuffix('&').strip()}"],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            cwd=session.directory,
            env=session.environment,
            start_new_session=True,
        )
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        for line in self.process.stdout:
            with self._changed:
                self.output += line.decode("utf-8", "replace")
                self._changed.notify_all()
        with self._changed:
            self._changed.notify_all()

    def waitFor(self, pattern: re.Pattern, timeout: float) -> str | None:
        """
        Wait until the output so far starts with what C{pattern} matches.

        @return: C{None} once it does, else the output, after C{timeout}
            or once the command has ended without it.
        """
        end = time.monotonic() + timeout
        with self._changed:
            while not pattern.match(normalise(self.output)):
                left = end - time.monotonic()
                if left <= 0 or self.process.poll() is not None:
                    return self.output
                self._changed.wait(min(left, 0.2))
        return None

    def signal(self, number: int) -> None:
        if self.process.poll() is None:
            self.process.send_signal(number)

    def stop(self) -> None:
        self.signal(signal.SIGTERM)
        try:
            self.process.wait(10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


#: The line that marks a document whose examples need the compose system.
REQUIRES_COMPOSE = "<!-- console-requires: compose -->"


class ConsoleSession:
    """
    Runs the console blocks of one document, in order.

    @ivar directory: where the commands run: a directory with the
        project's C{poems/}.
    @ivar ports: the ports written for those the document shows, in its
        commands and outputs alike, or C{None} to run the document in a
        network namespace of its own with its ports as they are.
    """

    def __init__(self, root: Path, directory: Path, ports: dict[int, int] | None = None) -> None:
        self.directory = directory
        self.ports = ports
        (directory / "poems").symlink_to(root / "poems")
        binaries = str(Path(sys.executable).parent)
        self.environment = {
            **os.environ,
            "PATH": f"{binaries}{os.pathsep}{os.environ.get('PATH', '')}",
            "PYTHONUNBUFFERED": "1",
            "TERM": "dumb",
        }
        #: The jobs a reader's shell would list, by their numbers: every
        #: background command still running (an ended one is dropped).
        self.jobs: dict[int, BackgroundCommand] = {}
        self._namespace = None
        self.enter: list[str] = []
        if ports is None:
            self._isolate()

    def _isolate(self) -> None:
        """
        Run the commands in a network namespace of their own.
        """
        # A process that holds the namespace, its loopback up, until close().
        asRoot = os.geteuid() == 0
        self._namespace = subprocess.Popen(
            [
                "unshare",
                "--net",
                *([] if asRoot else ["--user", "--map-root-user"]),
                "sh",
                "-c",
                "ip link set lo up && echo up && exec sleep infinity",
            ],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
        )
        if self._namespace.stdout.readline() != b"up\n":
            raise RuntimeError("cannot make a network namespace for the console examples")
        pid = str(self._namespace.pid)
        #: The command prefix that runs a command in the namespace.
        self.enter = (
            ["nsenter", f"--net=/proc/{pid}/ns/net"]
            if asRoot
            else ["nsenter", "--target", pid, "--user", "--net", "--preserve-credentials"]
        )

    def run(self, command: Command, where: str) -> None:
        """
        Run one command and check what it prints.

        @param where: the file and line, for messages.
        @raise AssertionError: if the output is not what the docs show.
        """
        text = self._withPorts(command.text)
        pattern = outputPattern([self._withPorts(line) for line in command.expected])
        self._forgetEndedJobs()
        kill = KILL.match(text)
        if kill:
            name, number = kill.groups()
            job = self.jobs.get(int(number))
            if job is None:
                raise AssertionError(
                    f"{where}: no job %{number}: a shell would say so (jobs: {sorted(self.jobs)})"
                )
            job.signal(signalNumber(name or "TERM"))
            job.process.wait(COMMAND_TIMEOUT)
            return
        if command.background:
            job = BackgroundCommand(text, self)
            self.jobs[max(self.jobs, default=0) + 1] = job
            output = job.waitFor(pattern, COMMAND_TIMEOUT)
            if output is not None:
                raise AssertionError(self._mismatch(where, command, output))
            return
        output = self._runInTerminal(text)
        if not pattern.fullmatch(normalise(output)):
            raise AssertionError(self._mismatch(where, command, output))

    def _forgetEndedJobs(self) -> None:
        """
        Drop the jobs that have ended, as an interactive shell does before
        its next prompt: their numbers are free again.
        """
        for number, job in list(self.jobs.items()):
            if job.process.poll() is not None:
                del self.jobs[number]

    def _withPorts(self, text: str) -> str:
        """
        C{text} with the session's ports written for the document's.
        """
        for shown, actual in (self.ports or {}).items():
            text = re.sub(rf"(?<![\d.]){shown}(?!\d)", str(actual), text)
        return text

    def _runInTerminal(self, text: str) -> str:
        """
        Run C{text} to its end with a terminal for its output, as a reader
        would (curl shows no progress meter on a terminal, for one), and
        return what it printed.
        """
        controller, terminal = pty.openpty()
        try:
            process = subprocess.Popen(
                [*self.enter, "bash", "-c", text],
                stdin=subprocess.DEVNULL,
                stdout=terminal,
                stderr=terminal,
                cwd=self.directory,
                env=self.environment,
            )
        finally:
            os.close(terminal)
        output = bytearray()
        end = time.monotonic() + COMMAND_TIMEOUT
        try:
            while time.monotonic() < end:
                if select.select([controller], [], [], end - time.monotonic())[0]:
                    try:
                        data = os.read(controller, 65536)
                    except OSError:  # EIO: every writer has closed the terminal
                        data = b""
                    if not data:
                        break
                    output += data
            else:
                process.kill()
                raise AssertionError(f"{text!r} did not end within {COMMAND_TIMEOUT:g} s")
            process.wait(COMMAND_TIMEOUT)
        finally:
            os.close(controller)
        return output.decode("utf-8", "replace")

    def _mismatch(self, where: str, command: Command, output: str) -> str:
        shown = "\n".join(command.expected).rstrip() or "(nothing)"
        background = "".join(
            f"\n--- printed so far by {job.command.strip()!r} ---\n{job.output[-4000:]}"
            for job in self.jobs.values()
            if job.process.poll() is None
        )
        return (
            f"{where}: the example does not print what the docs show\n"
            f"$ {self._withPorts(command.text)}\n--- shown ---\n{shown}\n"
            f"--- printed ---\n{normalise(output) or '(nothing)'}{background}"
        )

    def close(self) -> None:
        for job in self.jobs.values():
            job.stop()
        if self._namespace is not None:
            self._namespace.kill()
            self._namespace.wait()
