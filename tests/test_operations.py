"""
The gateway as an operator runs it, as real processes on loopback: under
C{twist} and C{twistd} (in the foreground and as a daemon, with a pid file
and a log file), a taken port under each runner, configuration from the
environment, and the log: JSON lines, no chatter of the libraries, a line
per request only at C{debug}, never a poem, and a bounded number of lines
under a flood of refused requests.
"""

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from urllib.request import Request, urlopen

import pytest

from gateway.server import LISTENERS
from protocols.common import Refusals
from protocols.netstring import encodeNetstring
from tests.helpers import ROOT, GatewayProcess, XformProcess, xform

BIN = Path(sys.executable).parent

#: The commands that run the gateway, each with what comes before its options.
RUNNERS = {
    "xform serve": (sys.executable, "-m", "gateway", "serve"),
    "twist": (str(BIN / "twist"), "--log-format", "text", "xform-gateway"),
    "twistd -n": (str(BIN / "twistd"), "-n", "--pidfile=", "xform-gateway"),
}

#: A poem that must never reach the log.
SECRET = "THE SECRET POEM TEXT"


def netcat(port: int, data: bytes) -> bytes:
    """
    Send C{data} to 127.0.0.1:C{port}, half-close, and read until the
    server closes.
    """
    with socket.create_connection(("127.0.0.1", port), timeout=20) as connection:
        connection.sendall(data)
        connection.shutdown(socket.SHUT_WR)
        received = b""
        while chunk := connection.recv(65536):
            received += chunk
        return received


def waitUntil(condition, what: str, timeout: float = 20.0) -> None:
    """
    Wait until C{condition()} holds, for a process this test does not hold
    the pipes of (a daemon).
    """
    end = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > end:
            raise AssertionError(f"no {what} within {timeout} s")
        time.sleep(0.05)


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def offExcept(*names: str) -> list[str]:
    return [argument for name in LISTENERS if name not in names for argument in (f"--{name}", "off")]


@pytest.fixture
def takenPort():
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        yield taken.getsockname()[1]


@pytest.mark.parametrize("runner", ["twist", "twistd -n"])
def test_runner(runner):
    """
    C{twist} and C{twistd -n} find the C{xform-gateway} plugin and run the
    gateway as C{xform serve} does, with its options; C{--log-level debug}
    turns on the line per HTTP request, which twistd writes (it writes
    every level) and twist does not (at its own level, C{info}); both
    write Twisted's lines about ports.  On SIGTERM they stop cleanly, and
    exit with 0, as C{xform serve} does.
    """
    listeners = ("netstring", "web")
    with GatewayProcess(
        "--max-poem-bytes", "5", "--log-level", "debug", listeners=listeners, command=RUNNERS[runner]
    ) as gateway:
        port = gateway.ports["netstring"]
        assert netcat(port, b"23:cummingsify.HELLO WORLD,") == b""  # over the 5 bytes of --max-poem-bytes
        assert netcat(port, b"17:cummingsify.HELLO,") == b"5:hello,"
        with urlopen(Request(gateway.url("http") + "/transform/cummingsify", data=b"HELLO")) as response:
            assert response.read() == b"hello"
        assert gateway.stop(signal.SIGTERM) == 0
    assert gateway.logged(f"netstring no longer listening on 127.0.0.1:{port}")
    assert not gateway.logged("Traceback")
    assert gateway.logged("POST /transform/cummingsify 200") == (runner == "twistd -n")
    assert gateway.logged(f"TransformFactory starting on {port}")


def test_logFormatUnderARunner():
    """
    Under twist, the gateway's C{--log-format} is not used: the plugin
    says so.
    """
    with GatewayProcess("--log-format", "json", command=RUNNERS["twist"]) as gateway:
        gateway.waitForLog(lambda: gateway.logged("--log-format json is for xform serve"))


@pytest.mark.parametrize("runner", RUNNERS)
def test_portTaken(runner, takenPort):
    """
    Under each runner, a listener whose port is taken ends the process
    with status 1 and one line, before anything else listens.
    """
    done = subprocess.run(
        [*RUNNERS[runner], "--netstring", f"tcp:{takenPort}:interface=127.0.0.1", *offExcept("netstring")],
        capture_output=True,
        timeout=30,
        cwd=ROOT,
    )
    output = (done.stdout + done.stderr).decode()
    line = f"netstring cannot listen: Couldn't listen on 127.0.0.1:{takenPort}: [Errno 98] Address already in use."
    assert done.returncode == 1, output
    assert [text for text in output.splitlines() if "cannot listen" in text] == [
        text for text in output.splitlines() if line in text
    ]
    assert output.count(line) == 1, output
    assert "Traceback" not in output and " listening on " not in output


def daemon(tmp_path, *options: str) -> subprocess.CompletedProcess:
    """
    Start the gateway with twistd as a daemon, with a pid file and a log
    file in C{tmp_path}; return once twistd has, which it does once the
    daemon has started (or failed to).
    """
    return subprocess.run(
        [
            str(BIN / "twistd"),
            "--pidfile",
            str(tmp_path / "gateway.pid"),
            "--logfile",
            str(tmp_path / "gateway.log"),
            "xform-gateway",
            *options,
        ],
        capture_output=True,
        timeout=30,
        cwd=tmp_path,
    )


def test_daemon(tmp_path):
    """
    As a daemon, the gateway detaches, writes its pid file, logs to its
    log file, serves, and stops on SIGTERM, removing its pid file.
    """
    started = daemon(tmp_path, "--netstring", "tcp:0:interface=127.0.0.1", *offExcept("netstring"))
    assert (started.returncode, started.stdout, started.stderr) == (0, b"", b"")
    pidFile, logFile = tmp_path / "gateway.pid", tmp_path / "gateway.log"
    pid = int(pidFile.read_text())
    try:
        waitUntil(lambda: XformProcess.listening.search(logFile.read_text()), "listening line in the log")
        port = int(XformProcess.listening.search(logFile.read_text()).group(3))
        assert netcat(port, b"17:cummingsify.HELLO,") == b"5:hello,"
        os.kill(pid, signal.SIGTERM)
        waitUntil(lambda: not alive(pid), "end of the daemon")
    finally:
        if alive(pid):
            os.kill(pid, signal.SIGKILL)
    assert not pidFile.exists()
    log = logFile.read_text()
    assert f"netstring no longer listening on 127.0.0.1:{port}" in log
    assert f"TransformFactory starting on {port}" in log  # twistd writes Twisted's own lines
    assert "Traceback" not in log


def test_daemonPortTaken(tmp_path, takenPort):
    """
    A daemon that cannot listen makes twistd exit with status 1 saying so;
    its log file says why, and no pid file is left.
    """
    started = daemon(tmp_path, "--netstring", f"tcp:{takenPort}:interface=127.0.0.1", *offExcept("netstring"))
    assert started.returncode == 1
    assert b"netstring cannot listen" in started.stderr
    line = f"netstring cannot listen: Couldn't listen on 127.0.0.1:{takenPort}"
    logFile = tmp_path / "gateway.log"
    # The daemon tells twistd first, then says why and removes its pid file
    # as it ends.
    waitUntil(lambda: line in logFile.read_text(), "reason in the log")
    waitUntil(lambda: not (tmp_path / "gateway.pid").exists(), "no pid file")
    assert logFile.read_text().count(line) == 1


ENVIRONMENT = {
    "XFORM_NETSTRING": "tcp:0:interface=127.0.0.1",
    "XFORM_AMP": "tcp:0:interface=127.0.0.1",
    "XFORM_WEB": "off",
    "XFORM_MAX_POEM_BYTES": "5",
    "XFORM_DEADLINE": "2.5",
}


def test_environment():
    """
    The real command takes its options from the environment; the command
    line wins.
    """
    with XformProcess("serve", "--amp", "off", expected=["netstring"], env=ENVIRONMENT) as gateway:
        port = gateway.ports["netstring"]
        assert netcat(port, b"17:cummingsify.HELLO,") == b"5:hello,"
        assert netcat(port, b"18:cummingsify.HELLO!,") == b""  # over XFORM_MAX_POEM_BYTES
        gateway.waitForLog(lambda: gateway.logged("poem-too-large"))
        assert gateway.stop() == 0
    assert not gateway.logged("amp listening")


def test_printConfig():
    """
    The real C{xform serve --print-config} prints the configuration with
    where each value came from, and exits 0 without listening (its
    default ports are not even free to listen on: this test holds them).
    """
    status, out, err = xform("serve", "--amp", "off", "--print-config", env=ENVIRONMENT)
    assert (status, err) == (0, "")
    lines = {line.split()[0]: line for line in out.decode().splitlines()}
    assert lines["amp"].split() == ["amp", "off", "(command", "line)"]
    assert lines["deadline"].split() == ["deadline", "2.5", "(environment", "XFORM_DEADLINE)"]
    assert lines["max-in-flight"].split() == ["max-in-flight", "256", "(default)"]


def exercise(gateway: GatewayProcess, xformHere) -> None:
    """
    Over every protocol of C{gateway}, one transform of L{SECRET} that
    succeeds and one refused.
    """
    for scheme in ("netstring", "amp", "ws", "http"):
        url = gateway.url(scheme)
        assert xformHere("transform", "reverse", "-s", url, input=SECRET.encode())[0] == 0
        assert xformHere("transform", "nope", "-s", url, input=SECRET.encode())[0] == 1


def test_jsonLog(xformHere):
    """
    With C{--log-format json}, every line of the log is one JSON object
    with a timestamp, level, namespace, the message and the event's fields;
    at C{info}: the listeners, the refusals of every protocol (client
    addresses as host:port), the stop, and nothing else: no chatter of
    Twisted's, no line per request, never the poem.
    """
    with GatewayProcess("--log-format", "json", listeners=tuple(LISTENERS)) as gateway:
        exercise(gateway, xformHere)
        gateway.waitForLog(lambda: sum("nope" in line for line in gateway.log) >= 4)
        assert gateway.stop() == 0
    lines = [json.loads(line) for line in gateway.log]
    for line in lines:
        assert {"timestamp", "level", "namespace", "message"} <= set(line), line
    listening = [
        line for line in lines if " listening on " in line["message"] and "no longer" not in line["message"]
    ]
    assert sorted(line["name"] for line in listening) == sorted(LISTENERS)
    refusals = [line for line in lines if line.get("error") == "unknown-transform"]
    assert sorted(line["message"].split()[0] for line in refusals) == ["amp", "http", "netstring", "ws"]
    for line in refusals:
        assert line["level"] == "info" and line["peer"].startswith("127.0.0.1:"), line
    stopped = [line for line in lines if "no longer listening" in line["message"]]
    assert len(stopped) == len(LISTENERS)
    drain = [line for line in lines if line["namespace"] == "gateway.drain.Gateway"]
    assert [line["message"] for line in drain] == [
        "SIGTERM: stopping; draining the connections for up to 10 s",
        "stopped listening; draining 0 connections",
        "drained: every connection is closed",
    ]
    everything = listening + refusals + stopped + drain
    assert len(lines) == len(everything), [line["message"] for line in lines]
    text = "\n".join(gateway.log)
    assert SECRET not in text and "IPv4Address" not in text


def test_debugLog(xformHere):
    """
    At C{debug}, each HTTP request is a line, and still no poem is.
    """
    with GatewayProcess("--log-level", "debug", listeners=tuple(LISTENERS)) as gateway:
        exercise(gateway, xformHere)
        gateway.waitForLog(lambda: gateway.logged("POST /transform/nope 404"))
        assert gateway.logged("POST /transform/reverse 200")
        assert gateway.stop() == 0
    assert not any(SECRET in line for line in gateway.log)


def test_floodOfRefusals():
    """
    2,000 requests for an unknown transform write a few lines: the first
    ones, a few a second after that, and one line saying how many more
    there were.
    """
    with GatewayProcess() as gateway:
        port = gateway.ports["netstring"]
        started = time.monotonic()
        for _ in range(2000):
            assert netcat(port, encodeNetstring(b"nope.HELLO")) == b""
        seconds = time.monotonic() - started
        assert gateway.stop() == 0
    refusals = [line for line in gateway.log if "closing without a reply: unknown-transform" in line]
    summaries = [line for line in gateway.log if "more 'unknown-transform' refusals in the last" in line]
    assert len(refusals) <= Refusals.burst + Refusals.perSecond * (seconds + 1)
    assert 1 <= len(summaries) <= seconds / Refusals.period + 1
    summed = sum(int(line.split(": ")[-1].split()[0].replace(",", "")) for line in summaries)
    assert len(refusals) + summed == 2000
    # and the listening lines, and the drain's three
    assert len(gateway.log) <= len(refusals) + len(summaries) + 2 + 3
