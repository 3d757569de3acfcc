"""
The mechanics of the benchmarks, for L{run}: the servers under test and how
to start them pinned to their core, and the load generators that drive
them -- loadgen (netstring, AMP, WebSocket), C{amp_load.py} (AMP with split
poems) and wrk (HTTP) -- each run giving one L{Measure}.
"""

import json
import math
import os
import shutil
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
PYTHON = sys.executable
BUILD = HERE / ".build"
LOADGEN = BUILD / "loadgen"
LOADGEN_SOURCE = Path(os.environ.get("LOADGEN_SOURCE", ROOT.parent / "shared" / "tools" / "loadgen"))

#: The load generators run on this core, the servers on the other.
LOADGEN_CORES = "0"
SERVER_CORES = "1"

#: Every server runs with the same malloc settings, as loadgen's README
#: advises: otherwise glibc's trimming makes a Python server's speed on
#: ~100 KB poems depend on its history.
MALLOC = {"MALLOC_MMAP_THRESHOLD_": "262144", "MALLOC_TRIM_THRESHOLD_": "1048576"}


def pinned(cores: str | None, command: list[str]) -> list[str]:
    """
    C{command} run on C{cores} through C{taskset}, which replaces itself by
    the command (so the process id is the command's); as it is without
    C{taskset} or cores.
    """
    if cores and shutil.which("taskset"):
        return ["taskset", "-c", cores, *command]
    return command


def slug(name: str) -> str:
    """
    C{name} fit for a file name: C{"bare Twisted AMP"} -> C{"bare-twisted-amp"}.
    """
    return "-".join("".join(c if c.isalnum() else " " for c in name.lower()).split())


def freePort() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def buildLoadgen() -> Path:
    """
    Build loadgen from its source into C{bench/.build/} unless the build is
    newer than the source.
    """
    source = LOADGEN_SOURCE / "loadgen.c"
    if not source.exists():
        raise SystemExit(
            f"bench: no loadgen source at {source}: set LOADGEN_SOURCE to the directory"
            " that holds loadgen.c and build.sh (../shared/tools/loadgen next to this checkout)"
        )
    if not LOADGEN.exists() or LOADGEN.stat().st_mtime < source.stat().st_mtime:
        BUILD.mkdir(exist_ok=True)
        subprocess.run(["sh", str(LOADGEN_SOURCE / "build.sh"), str(LOADGEN)], check=True)
    return LOADGEN


# -- servers ---------------------------------------------------------------


@dataclass(frozen=True)
class Server:
    """
    A server under test.

    @ivar name: what the tables call it.
    @ivar argv: its command, with C{{port}} where the port goes.
    @ivar cores: the cores it is pinned to (L{None}: not pinned).
    """

    name: str
    argv: tuple[str, ...]
    cores: str | None = SERVER_CORES

    def command(self, port: int) -> list[str]:
        return [part.format(port=port) for part in self.argv]


def gateway(listener: str, *options: str, name: str = "gateway", cores: str | None = SERVER_CORES) -> Server:
    """
    The gateway with one listener (C{netstring}, C{amp} or C{web}) and the
    others off, logging warnings only.
    """
    endpoints = []
    for each in ("netstring", "amp", "web"):
        endpoints += [f"--{each}", "tcp:{port}:interface=127.0.0.1" if each == listener else "off"]
    return Server(
        name, (PYTHON, "-m", "gateway", "serve", *endpoints, "--log-level", "warn", *options), cores
    )


def baseline(script: str, name: str, *options: str) -> Server:
    """
    One of the baselines of C{bench/baselines/}.
    """
    return Server(name, (PYTHON, str(HERE / "baselines" / script), "{port}", *options))


class ServerFailed(Exception):
    """
    A server did not start, or died while measured.
    """


class RunningServer:
    """
    A server's process, on a free port, its output in a log file.

    @ivar server: the L{Server}.
    @ivar port: its port.
    @ivar process: its C{Popen}; its pid is the server's own (see L{pinned}).
    """

    def __init__(self, server: Server, logPath: Path) -> None:
        self.server = server
        self.port = freePort()
        self.logPath = logPath
        logPath.parent.mkdir(parents=True, exist_ok=True)
        with open(logPath, "wb") as log:
            self.process = subprocess.Popen(
                pinned(server.cores, server.command(self.port)),
                cwd=ROOT,
                env={**os.environ, **MALLOC},
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
            )

    def logTail(self) -> str:
        return "\n".join(self.logPath.read_text("utf-8", "replace").splitlines()[-15:])

    def check(self) -> None:
        if self.process.poll() is not None:
            raise ServerFailed(
                f"{self.server.name} exited with status {self.process.returncode}; its log ends:\n{self.logTail()}"
            )

    def waitUntilListening(self, timeout: float = 30.0) -> None:
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            self.check()
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                return
            except OSError:
                time.sleep(0.05)
        raise ServerFailed(f"{self.server.name} does not listen on {self.port} after {timeout:g} s")

    def residentKB(self) -> int:
        """
        The process's resident set size (C{VmRSS}), in KiB.
        """
        for line in Path(f"/proc/{self.process.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
        raise ServerFailed(f"no VmRSS for {self.server.name}")

    def openFiles(self) -> int:
        return len(os.listdir(f"/proc/{self.process.pid}/fd"))

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


class Running:
    """
    A context manager: the given servers started at once, each on its own
    port, and stopped on exit.
    """

    def __init__(self, servers: list[Server], logs: Path) -> None:
        self.servers = servers
        self.logs = logs
        self.running: list[RunningServer] = []

    def __enter__(self) -> list[RunningServer]:
        try:
            for server in self.servers:
                self.running.append(RunningServer(server, self.logs / f"{slug(server.name)}.log"))
            for each in self.running:
                each.waitUntilListening()
        except BaseException:
            self.__exit__()
            raise
        return self.running

    def __exit__(self, *exc) -> None:
        for each in self.running:
            each.stop()


# -- loads -----------------------------------------------------------------


@dataclass
class Measure:
    """
    What one load run measured.

    @ivar requests: requests answered correctly within the measured time.
    @ivar requestsPerSecond: the same per second.
    @ivar megabytesPerSecond: poem bytes per second (one direction), in MB.
    @ivar p50: median latency, in milliseconds.
    @ivar p99: 99th percentile latency, in milliseconds.
    @ivar errors: failed requests by kind (loadgen's kinds; wrk's C{status},
        C{read}, ...).
    @ivar raw: the load generator's own report.
    """

    requests: int
    requestsPerSecond: float
    megabytesPerSecond: float
    p50: float
    p99: float
    errors: dict[str, int]
    raw: dict = field(repr=False)

    @property
    def errorCount(self) -> int:
        return sum(self.errors.values())

    @classmethod
    def fromLoadgen(cls, report: dict) -> "Measure":
        """
        From the JSON of loadgen or of C{amp_load.py} (the same keys).
        """
        return cls(
            requests=report["requests"],
            requestsPerSecond=report["req_per_s"],
            megabytesPerSecond=report["MB_per_s"],
            p50=report["latency_us"]["p50"] / 1e3,
            p99=report["latency_us"]["p99"] / 1e3,
            errors={kind: count for kind, count in report["errors"].items() if kind != "total" and count},
            raw=report,
        )


class LoadRun:
    """
    A load generator running in the background, pinned to the load
    generators' core; L{finish} waits for its report.
    """

    def __init__(self, command: list[str], timeout: float) -> None:
        self.command = command
        self.timeout = timeout
        self.process = subprocess.Popen(
            pinned(LOADGEN_CORES, command), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )

    def output(self) -> str:
        try:
            out, err = self.process.communicate(timeout=self.timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            out, err = self.process.communicate()
            raise RuntimeError(f"{self.command[0]} took over {self.timeout:g} s") from None
        # Exit status 1: nothing succeeded, which the report shows as errors.
        if self.process.returncode not in (0, 1):
            raise RuntimeError(f"{' '.join(self.command)} failed ({self.process.returncode}): {err.strip()}")
        return out


class Loadgen:
    """
    loadgen in one of its modes, every reply verified.
    """

    def __init__(self, mode: str, *, conns: int, poemBytes: int, inflight: int = 1) -> None:
        self.mode = mode
        self.conns = conns
        self.poemBytes = poemBytes
        self.inflight = inflight

    def describe(self) -> str:
        shape = f"{self.conns} x {self.inflight}" if self.inflight > 1 else f"{self.conns} connections"
        return f"loadgen {self.mode}, {shape}"

    def start(self, port: int, duration: float, warmup: float) -> LoadRun:
        command = [str(LOADGEN), self.mode, "--verify", *self.loadArguments(port, duration, warmup)]
        return LoadRun(command, timeout=warmup + duration + 60)

    def loadArguments(self, port: int, duration: float, warmup: float) -> list[str]:
        """
        The port and the shape of the load, as loadgen and
        C{bench/amp_load.py} both take them.
        """
        return [
            "--port",
            str(port),
            "--conns",
            str(self.conns),
            "--inflight",
            str(self.inflight),
            "--poem-bytes",
            str(self.poemBytes),
            "--warmup",
            f"{warmup:g}",
            "--duration",
            f"{duration:g}",
        ]

    def finish(self, run: LoadRun) -> Measure:
        return Measure.fromLoadgen(json.loads(run.output()))

    def measure(self, port: int, duration: float, warmup: float) -> Measure:
        return self.finish(self.start(port, duration, warmup))


class AMPSplitLoad(Loadgen):
    """
    C{amp_load.py}: AMP questions with poems split across C{poem},
    C{poem.2}, ..., for poems over loadgen's 65,535 bytes.
    """

    def __init__(self, *, conns: int, poemBytes: int, inflight: int) -> None:
        super().__init__("amp", conns=conns, poemBytes=poemBytes, inflight=inflight)

    def describe(self) -> str:
        return f"bench/amp_load.py, {self.conns} x {self.inflight}"

    def start(self, port: int, duration: float, warmup: float) -> LoadRun:
        command = [PYTHON, str(HERE / "amp_load.py"), *self.loadArguments(port, duration, warmup)]
        return LoadRun(command, timeout=warmup + duration + 60)


class WrkLoad:
    """
    wrk with C{bench/http_post.lua}: C{POST /transform/cummingsify} on
    keep-alive connections, one request in flight on each, every answer
    verified.  wrk has no warm-up of its own: a first, shorter run warms the
    server up.  It takes whole seconds.
    """

    def __init__(self, *, conns: int, poemBytes: int) -> None:
        self.conns = conns
        self.poemBytes = poemBytes

    def describe(self) -> str:
        return f"wrk, {self.conns} connections"

    def _run(self, port: int, seconds: int) -> dict:
        command = [
            "wrk",
            "-t1",
            f"-c{self.conns}",
            f"-d{seconds}s",
            "--timeout",
            "5s",
            "-s",
            str(HERE / "http_post.lua"),
            f"http://127.0.0.1:{port}/transform/cummingsify",
            "--",
            str(self.poemBytes),
        ]
        output = LoadRun(command, timeout=seconds + 60).output()
        for line in output.splitlines():
            if line.startswith("wrk-result "):
                return json.loads(line.removeprefix("wrk-result "))
        raise RuntimeError(f"wrk printed no result:\n{output}")

    def measure(self, port: int, duration: float, warmup: float) -> Measure:
        if warmup > 0:
            self._run(port, math.ceil(warmup))
        report = self._run(port, max(1, round(duration)))
        errors = {kind: count for kind, count in report["errors"].items() if count}
        good = report["requests"] - errors.get("status", 0) - errors.get("mismatch", 0)
        seconds = report["duration_us"] / 1e6
        return Measure(
            requests=good,
            requestsPerSecond=good / seconds,
            megabytesPerSecond=good * self.poemBytes / seconds / 1e6,
            p50=report["latency_us"]["p50"] / 1e3,
            p99=report["latency_us"]["p99"] / 1e3,
            errors=errors,
            raw=report,
        )
