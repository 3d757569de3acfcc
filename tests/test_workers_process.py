"""
C{xform serve --workers 2} as real processes on loopback: both workers
serve, and the metrics sum them; a killed worker is replaced while clients
keep connecting, none refused, and while it is down the other serves its
sockets; SIGTERM drains every worker, requests in flight included, a
worker that does not end is killed, and a second signal cuts that short;
each worker's own limits; TLS; a supervisor killed outright leaves no
worker behind; a worker that cannot start stops the whole; and the usage
errors of C{--workers}.
"""

import json
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from gateway.schemes import SCHEMES
from gateway.syncclient import tlsContext
from gateway.urls import parseServerURL
from tests.certificates import makeTLSFiles
from tests.helpers import ROOT, GatewayProcess, HeldUpstream, xform
from tests.test_operations_process import POEM, HeldRequest, get, metricsGateway, requests, samples

REQUEST, ANSWER = b"23:cummingsify.HELLO WORLD,", b"11:hello world,"


def workersGateway(*arguments: str, listeners=("netstring",)) -> GatewayProcess:
    """
    C{xform serve --workers 2} with a C{--metrics} listener, once both
    workers serve.
    """
    process = metricsGateway("--workers", "2", *arguments, listeners=listeners)
    process.waitForLog(lambda: process.logged("2 workers serving"), what="both workers serving")
    return process


def workerPid(process: GatewayProcess, number: int) -> int:
    """
    The process id of the latest worker C{number}, as the supervisor said.
    """
    serving = re.compile(rf"worker {number} serving \(pid (\d+)\)")
    return [int(found.group(1)) for found in map(serving.search, process.log) if found][-1]


def ask(port: int, timeout: float = 10) -> bytes:
    """
    One netstring request on a connection of its own: the answer, or
    whatever came before the gateway closed.
    """
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as connection:
        connection.sendall(REQUEST)
        received = b""
        while chunk := connection.recv(100):
            received += chunk
        return received


def answeredBy(found: dict, worker: int) -> float:
    return found.get(("xform_worker_requests_total", (("worker", str(worker)),)), 0)


@pytest.fixture(scope="module")
def tlsFiles(tmp_path_factory):
    return makeTLSFiles(tmp_path_factory.mktemp("tls"))


@pytest.fixture(scope="module")
def gateway(tlsFiles):
    """
    C{xform serve --workers 2}, its log in JSON, netstrings and the web face
    in the clear, AMP over TLS.
    """
    process = workersGateway(
        "--log-format", "json", "--amp", tlsFiles.endpoint(), listeners=("netstring", "amp", "web")
    )
    yield process
    assert process.stop() == 0


def untilBothAnswer(process: GatewayProcess, ask) -> tuple[dict, int]:
    """
    Call C{ask()} ten times at a time, until each worker has answered one
    of those calls at least.

    @return: the metrics once they have, and how many calls it took.
    """
    before, sent = samples(process.ports["metrics"]), 0
    while sent < 1000:
        for _ in range(10):
            ask()
        sent += 10
        found = samples(process.ports["metrics"])
        if all(answeredBy(found, worker) > answeredBy(before, worker) for worker in (1, 2)):
            break
    answered = [answeredBy(found, worker) - answeredBy(before, worker) for worker in (1, 2)]
    assert all(answered) and sum(answered) == sent, (answered, sent)
    return found, sent


def test_bothWorkersServe(gateway):
    """
    New connections go to both workers; C{/metrics}, from the supervisor's
    listener or through a worker's, sums them, and counts each worker's
    answers.  Each worker's JSON log lines carry its number.
    """
    before = requests(samples(gateway.ports["metrics"]), "netstring", "cummingsify", "ok")
    found, sent = untilBothAnswer(gateway, lambda: ask(gateway.ports["netstring"]) == ANSWER or pytest.fail())
    assert requests(found, "netstring", "cummingsify", "ok") - before == sent
    assert found["xform_workers", ()] == 2
    throughWorker = samples(gateway.ports["web"])
    assert requests(throughWorker, "netstring", "cummingsify", "ok") - before == sent
    lines = [json.loads(line) for line in gateway.log]
    for worker in (1, 2):
        mine = [line["message"] for line in lines if line.get("worker") == worker]
        assert f"netstring listening on 127.0.0.1:{gateway.ports['netstring']}" in mine
        pid = workerPid(gateway, worker)
        assert os.getpgid(pid) == pid  # a process group of its own: Ctrl-C reaches the supervisor alone


def test_workersOverTLS(gateway, tlsFiles):
    """
    A listener on an C{ssl:} endpoint is shared as well: each worker speaks
    TLS with the endpoint's certificate.
    """
    server, tls = parseServerURL(gateway.url("amps")), tlsContext(str(tlsFiles.ca))

    def askOverTLS():
        assert SCHEMES["amps"].transform(server, "cummingsify", "HELLO", 10, tls) == "hello"

    found, sent = untilBothAnswer(gateway, askOverTLS)
    assert requests(found, "amp", "cummingsify", "ok") >= sent


class Hammer(threading.Thread):
    """
    A client sending netstring requests, each on a new connection, one
    after the other, until stopped.

    @ivar answered: the requests answered.
    @ivar refused: the connections that could not be made.
    @ivar lost: what came back for each request not answered.
    """

    def __init__(self, port: int) -> None:
        super().__init__(daemon=True)
        self.port = port
        self.answered = self.refused = 0
        self.lost: list[object] = []
        self.stopped = threading.Event()

    def run(self) -> None:
        while not self.stopped.is_set():
            try:
                answer = ask(self.port)
            except ConnectionRefusedError as error:
                self.refused += 1
                self.lost.append(error)
                continue
            except OSError as error:
                answer = error
            if answer == ANSWER:
                self.answered += 1
            else:
                self.lost.append(answer)


def test_killedWorkerReplaced(gateway):
    """
    A worker killed while clients keep connecting is replaced, and no
    connection is refused meanwhile: the other worker takes them.  Only a
    request the killed worker had accepted is lost with it.
    """
    process = gateway
    hammers = [Hammer(process.ports["netstring"]) for _ in range(2)]
    try:
        for hammer in hammers:
            hammer.start()
        until(lambda: all(hammer.answered > 20 for hammer in hammers))
        killed = workerPid(process, 1)
        os.kill(killed, signal.SIGKILL)
        process.waitForLog(
            lambda: len([line for line in process.log if "worker 1 serving (pid" in line]) == 2,
            what="a new worker 1",
        )
        answered = sum(hammer.answered for hammer in hammers)
        until(lambda: sum(hammer.answered for hammer in hammers) > answered + 40)
    finally:
        for hammer in hammers:
            hammer.stopped.set()
            hammer.join(10)
    assert [hammer.refused for hammer in hammers] == [0, 0]
    assert all(len(hammer.lost) <= 1 for hammer in hammers), [hammer.lost for hammer in hammers]
    assert process.logged(f"worker 1 (pid {killed}) was killed by SIGKILL; starting another")
    assert workerPid(process, 1) != killed
    assert samples(process.ports["metrics"])["xform_worker_restarts_total", ()] == 1


def test_othersServeWhileAWorkerIsDown(tmp_path):
    """
    While a worker is down, and its replacements keep ending as they start
    (here Python's site customization ends them while a file exists), the
    other workers take the connections on its sockets: every request is
    answered at once.  The replacements are started after longer and
    longer delays; once one starts, it serves.  (The workers from
    C{XFORM_WORKERS}, which the workers see too.)
    """
    down = tmp_path / "down"
    (tmp_path / "sitecustomize.py").write_text(
        "import os, sys\n"
        f"if sys.orig_argv[1:4] == ['-m', 'gateway.workers', '1'] and os.path.exists({str(down)!r}):\n"
        "    os._exit(3)\n"
    )
    path = os.pathsep.join(filter(None, [str(tmp_path), os.environ.get("PYTHONPATH")]))
    process = GatewayProcess(env={"PYTHONPATH": path, "XFORM_WORKERS": "2"})
    process.start()
    try:
        process.waitForLog(lambda: process.logged("2 workers serving"), what="both workers serving")
        down.touch()
        os.kill(workerPid(process, 1), signal.SIGKILL)
        process.waitForLog(lambda: process.logged("exited with status 3; starting another in 1 s"))
        for _ in range(40):
            assert ask(process.ports["netstring"], timeout=5) == ANSWER
        down.unlink()
        process.waitForLog(
            lambda: len([line for line in process.log if "worker 1 serving (pid" in line]) == 2,
            what="a new worker 1",
        )
        assert ask(process.ports["netstring"]) == ANSWER
    finally:
        assert process.stop() == 0


def until(condition, timeout: float = 30.0) -> None:
    """
    Wait until C{condition()} holds, checking often: the clients of these
    tests run in threads.
    """
    end = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < end, "timed out"
        time.sleep(0.01)


def refused(port: int) -> bool:
    """
    Whether a connection to C{port} is refused.  One reset while connecting
    (taken into the backlog of a listening socket that closed under it) is
    not refused yet.
    """
    try:
        socket.create_connection(("127.0.0.1", port), timeout=5).close()
    except ConnectionRefusedError:
        return True
    except ConnectionResetError:
        pass
    return False


def stoppedListening(process: GatewayProcess) -> int:
    return len([line for line in process.log if ": stopped listening; draining" in line])


@pytest.mark.parametrize("stop", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_drainEveryWorker(stop):
    """
    On SIGTERM or SIGINT the supervisor stops listening and every worker
    drains: no new connection is taken, the request in flight gets its
    answer, then the supervisor exits 0.
    """
    upstream = HeldUpstream()
    process = workersGateway("--deadline", "60", *upstream.arguments, listeners=("netstring", "web"))
    try:
        slow = HeldRequest(process, upstream).startInFlight()
        process.process.send_signal(stop)
        closed = f": netstring no longer listening on 127.0.0.1:{process.ports['netstring']}"
        process.waitForLog(
            lambda: len([line for line in process.log if closed in line]) == 2, what="both workers closed"
        )
        assert get(process.ports["metrics"], "/readyz")[0] == 503
        # A worker logs that it no longer listens once its own socket is
        # closed; the other worker's, which it also held, closes just after.
        until(lambda: refused(process.ports["netstring"]))
        upstream.release()
        slow.join(60)
        assert slow.outcome == POEM.upper()
        assert process.wait(30) == 0
        assert process.logged("stopped listening; draining the workers (2 running)")
        assert process.logged("every worker has stopped")
    finally:
        upstream.close()
        process.stop()


def test_hungWorkerKilled():
    """
    A worker still running its drain timeout and C{--stop-margin} after
    SIGTERM (here a stopped one) is killed, and the supervisor exits 0.
    (The other worker, which drains nothing, has those 1.5 s to end.)
    """
    process = workersGateway("--drain-timeout", "0.5", "--stop-margin", "1")
    try:
        os.kill(workerPid(process, 1), signal.SIGSTOP)
        process.process.send_signal(signal.SIGTERM)
        assert process.wait(30) == 0
        assert process.logged("killing the workers still running 1.5 s after SIGTERM (1)")
        assert process.logged("was killed by SIGKILL")
    finally:
        process.stop()


def test_limitsPerWorker():
    """
    Each worker has the limits the options give: two workers with
    C{--max-connections 1} hold two connections, one each.
    """
    process = workersGateway("--max-connections", "1")
    held = []
    try:
        for _ in range(200):
            held.append(socket.create_connection(("127.0.0.1", process.ports["netstring"]), timeout=10))
            found = samples(process.ports["metrics"])
            if found["xform_connections_open", (("protocol", "netstring"),)] == 2:
                break
        assert found["xform_connections_open", (("protocol", "netstring"),)] == 2
    finally:
        for connection in held:
            connection.close()
        assert process.stop() == 0


def test_secondSignalCutsEveryDrainShort():
    """
    A second signal to the supervisor is passed on to the workers, which
    cut their drains short: it exits 0 at once, though the drain timeout is
    far off.
    """
    upstream = HeldUpstream()
    process = workersGateway(
        "--deadline", "60", "--drain-timeout", "30", *upstream.arguments, listeners=("amp",)
    )
    try:
        slow = HeldRequest(process, upstream, "amp").startInFlight()
        process.process.send_signal(signal.SIGTERM)
        process.waitForLog(lambda: stoppedListening(process) == 2, what="both workers draining")
        signalled = time.monotonic()
        process.process.send_signal(signal.SIGINT)
        assert process.wait(20) == 0
        assert time.monotonic() - signalled < 15  # far less than the drain timeout, even on a busy machine
        slow.join(20)
        assert process.logged("SIGINT again: cutting the drain short")
        assert process.logged("SIGTERM again: cutting the drain short")  # a worker's
    finally:
        upstream.close()
        process.stop()


def test_workersStopWithoutSupervisor():
    """
    Workers whose supervisor was killed outright stop by themselves.
    """
    process = workersGateway()
    process.process.kill()
    process.wait(30)  # and until every worker has closed the log
    for worker in (1, 2):
        assert process.logged(f"worker {worker}: the supervisor has gone; stopping")
    assert process.logged("every connection is closed")


def test_workerThatCannotStart(tmp_path):
    """
    A worker that ends before it serves stops the gateway with one line and
    exit status 1.  (Here Python's site customization ends the workers'
    processes as they start.)
    """
    (tmp_path / "sitecustomize.py").write_text(
        "import os, sys\nif sys.orig_argv[1:3] == ['-m', 'gateway.workers']:\n    os._exit(3)\n"
    )
    path = os.pathsep.join(filter(None, [str(tmp_path), os.environ.get("PYTHONPATH")]))
    status, _, err = xform(
        "serve", "--workers", "2", "--netstring", "tcp:0:interface=127.0.0.1", "--amp", "off", "--web", "off",
        env={"PYTHONPATH": path},
    )  # fmt: skip
    assert status == 1
    assert "worker 1 cannot listen: it exited with status 3 before it served" in err or (
        "worker 2 cannot listen: it exited with status 3 before it served" in err
    ), err


BIN = Path(sys.executable).parent


def test_notUnderTwistedRunners():
    """
    C{twist} owns its one process: C{--workers} above 1 is a usage error.
    """
    status, _, err = runTwist("xform-gateway", "--workers", "2")
    assert status == 2
    assert err == (
        "twist xform-gateway: --workers: twist and twistd run one process; for several, use xform serve "
        "--workers; see 'twist xform-gateway --help'\n"
    )


def runTwist(*arguments: str) -> tuple[int, str, str]:
    done = subprocess.run(
        [str(BIN / "twist"), *arguments], capture_output=True, text=True, timeout=60, cwd=ROOT
    )
    return done.returncode, done.stdout, done.stderr


def test_unixEndpointRefused(xformHere):
    """
    Workers share only TCP sockets (over TLS or not): another endpoint is one
    line at start-up, exit status 2.
    """
    status, _, err = xformHere("serve", "--workers", "2", "--web", "unix:/tmp/gateway.sock")
    assert status == 2
    assert err == (
        "xform serve: --web: 'unix:/tmp/gateway.sock': --workers shares only tcp:, tcp6: and ssl: "
        "listeners' sockets; see 'xform serve --help'\n"
    )
