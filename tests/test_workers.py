"""
The parts of C{xform serve --workers} that run without processes: the
restart policy, each worker's number in its log lines, every worker's
metrics summed -- gateways in memory (L{tests.memory}) as workers, their
control channels joined to a supervisor's with L{twisted.test.iosim} --
and the supervisor's start, restarts and stop, with fake processes on a
fake clock.
The processes themselves are tested in L{tests.test_workers_process}.
"""

import json

from prometheus_client.parser import text_string_to_metric_families
from twisted.internet.defer import CancelledError
from twisted.internet.endpoints import clientFromString
from twisted.internet.error import ProcessDone, ProcessTerminated
from twisted.internet.interfaces import IProcessTransport
from twisted.internet.protocol import Factory, ProcessProtocol, Protocol
from twisted.internet.testing import MemoryReactorClock
from twisted.logger import LogLevel
from twisted.protocols import amp
from twisted.python.failure import Failure
from twisted.test import iosim
from twisted.trial.unittest import SynchronousTestCase
from zope.interface import implementer

from gateway.clients import transformClient
from gateway.listening import CannotListen
from gateway.logs import jsonLine, textLine
from gateway.server import ServeOptions
from gateway.urls import parseServerURL
from gateway.workers import (
    FIRST_RESTART_DELAY,
    MAX_RESTART_DELAY,
    Cover,
    Serving,
    Supervisor,
    SupervisorChannel,
    Uncover,
    WorkerChannel,
    describeEnd,
    restartDelay,
)
from tests.memory import HOST, MemoryTestCase, treqClient


def test_restartDelay():
    """
    A worker that ran long enough is started again at once; one that keeps
    ending soon after it started waits twice as long each time, up to a
    limit.
    """
    assert restartDelay(0) == 0
    assert [restartDelay(n) for n in (1, 2, 3)] == [
        FIRST_RESTART_DELAY,
        FIRST_RESTART_DELAY * 2,
        FIRST_RESTART_DELAY * 4,
    ]
    assert restartDelay(40) == MAX_RESTART_DELAY


def test_describeEnd():
    """
    How a worker ended reads as words, with the signal's name.
    """
    assert describeEnd(Failure(ProcessDone(0))) == "exited with status 0"
    assert describeEnd(Failure(ProcessTerminated(exitCode=3))) == "exited with status 3"
    assert describeEnd(Failure(ProcessTerminated(signal=9))) == "was killed by SIGKILL"


EVENT = {
    "log_format": "netstring listening on {address}",
    "address": "127.0.0.1:10001",
    "log_time": 0.0,
    "log_namespace": "gateway.listening.ListeningService",
    "log_level": LogLevel.info,
}


def test_workerNumberInText():
    """
    A worker's line of text says which worker wrote it before its text; the
    supervisor's lines, and those of a single process, do not.
    """
    assert textLine(EVENT).endswith(
        "[gateway.listening.ListeningService#info] netstring listening on 127.0.0.1:10001\n"
    )
    assert textLine(EVENT, worker=2).endswith(
        "[gateway.listening.ListeningService#info] worker 2: netstring listening on 127.0.0.1:10001\n"
    )


def test_workerNumberInJSON():
    """
    A worker's JSON line has its number in the field C{worker}; its message
    is the text alone.
    """
    line = json.loads(jsonLine(EVENT, worker=2))
    assert (line["worker"], line["message"]) == (2, "netstring listening on 127.0.0.1:10001")
    assert "worker" not in json.loads(jsonLine(EVENT))


def samples(text: str) -> dict[tuple[str, tuple], float]:
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def served(protocol: str, transform: str = "cummingsify", outcome: str = "ok") -> tuple:
    return ("xform_requests_total", (("outcome", outcome), ("protocol", protocol), ("transform", transform)))


class SummedMetricsTests(MemoryTestCase):
    """
    Two gateways in memory as a supervisor's two workers, each with its
    control channel joined to the supervisor's end.
    """

    def setUp(self):
        super().setUp()
        options = ServeOptions()
        options.parseOptions(["--workers", "2"])
        self.supervisor = Supervisor(self.reactor, options, {}, {})
        self.ports = []
        self.gateways = []
        for slot in self.supervisor.workers:
            ports = {"netstring": 10000 + slot.number, "amp": 10100 + slot.number, "web": 8080 + slot.number}
            gateway = self.gateway(ports=ports)
            slot.channel = SupervisorChannel(self.supervisor, slot)
            worker = WorkerChannel(gateway, self.reactor, {})
            pump = iosim.connect(
                worker,
                iosim.FakeTransport(worker, isServer=False),
                slot.channel,
                iosim.FakeTransport(slot.channel, isServer=True),
                greet=False,
                clock=self.reactor,
            )
            self.network.pumps.append(pump)
            self.ports.append(ports)
            self.gateways.append(gateway)
        self.network.flush()

    def transform(self, worker: int, poem: str = "HELLO") -> None:
        server = parseServerURL(f"netstring://{HOST}:{self.ports[worker - 1]['netstring']}")
        answer = self.network.run(transformClient(self.reactor, server).xform("cummingsify", poem))
        self.assertEqual(self.successResultOf(answer), poem.lower())

    def metrics(self, worker: int) -> tuple[int, dict]:
        """
        C{GET /metrics} from C{worker}'s web listener: its status and its
        samples.
        """
        url = f"http://{HOST}:{self.ports[worker - 1]['web']}/metrics"
        response = self.successResultOf(self.network.run(treqClient(self.reactor).get(url)))
        body = self.successResultOf(self.network.run(response.text()))
        return response.code, samples(body) if response.code == 200 else body

    def test_everyWorkerServes(self):
        """
        Each worker tells the supervisor once it serves.
        """
        self.assertEqual([slot.serving for slot in self.supervisor.workers], [True, True])

    def test_summedThroughAnyWorker(self):
        """
        Through either worker, C{/metrics} shows every worker's requests
        summed, by the same labels, and each worker's own count.
        """
        for worker in (1, 1, 1, 2, 2):
            self.transform(worker)
        for asked in (1, 2):
            status, found = self.metrics(asked)
            self.assertEqual(status, 200)
            self.assertEqual(found[served("netstring")], 5)
            self.assertEqual(found["xform_request_duration_seconds_count", (("protocol", "netstring"),)], 5)
            self.assertEqual(found["xform_worker_requests_total", (("worker", "1"),)], 3)
            self.assertEqual(found["xform_worker_requests_total", (("worker", "2"),)], 2)
            self.assertEqual(found["xform_workers", ()], 2)

    def test_endedWorkerStillCounted(self):
        """
        What a worker that ended had counted still counts, so counters never
        go back; its gauges (its open connections) are gone with it.
        """
        for worker in (1, 1, 2):
            self.transform(worker)
        idle = f"tcp:{HOST}:{self.ports[0]['netstring']}"
        clientFromString(self.reactor, idle).connect(Factory.forProtocol(Protocol))
        _, before = self.metrics(2)
        self.assertEqual(before["xform_connections_open", (("protocol", "netstring"),)], 1)
        slot = self.supervisor.workers[0]
        self.supervisor.workerEnded(slot, Failure(ProcessTerminated(signal=9)))
        _, after = self.metrics(2)
        self.assertEqual(after[served("netstring")], 3)
        self.assertEqual(after["xform_request_duration_seconds_count", (("protocol", "netstring"),)], 3)
        self.assertEqual(after["xform_worker_requests_total", (("worker", "1"),)], 2)
        self.assertEqual(after["xform_workers", ()], 1)
        self.assertEqual(after["xform_connections_open", (("protocol", "netstring"),)], 0)

    def test_supervisorGone(self):
        """
        A worker whose supervisor has gone answers C{/metrics} with 503 (it
        cannot sum every worker's), and stops.
        """
        self.supervisor.workers[1].channel.transport.loseConnection()
        self.network.flush()
        status, body = self.metrics(2)
        self.assertEqual(status, 503)
        self.assertIn("the metrics cannot be gathered", body)
        self.assertTrue(self.reactor.hasStopped)


@implementer(IProcessTransport)
class FakeWorkerProcess:
    """
    A worker's process as L{ProcessReactor} spawns it: it records the
    signals sent to it, and ends when the test says.

    @ivar signals: the names of the signals sent to it.
    """

    def __init__(self, protocol: ProcessProtocol, pid: int, arguments: list[str]) -> None:
        self.protocol = protocol
        self.pid = pid
        self.arguments = arguments
        self.signals: list[str] = []

    def signalProcess(self, name: str) -> None:
        self.signals.append(name)

    def end(self, reason: Exception) -> None:
        self.pid = None
        self.protocol.processEnded(Failure(reason))


class WorkerEnd(amp.AMP):
    """
    A worker's end of its control channel, recording what it is told.

    @ivar told: each command and the worker it was about.
    """

    def __init__(self) -> None:
        super().__init__()
        self.told: list[tuple[str, int]] = []

    @Cover.responder
    def cover(self, worker: int) -> dict:
        self.told.append(("cover", worker))
        return {}

    @Uncover.responder
    def uncover(self, worker: int) -> dict:
        self.told.append(("uncover", worker))
        return {}


class ProcessReactor(MemoryReactorClock):
    """
    A memory reactor that spawns L{FakeWorkerProcess}es, whose control
    channels it joins to L{WorkerEnd}s with L{iosim}.

    @ivar processes: the processes spawned, in turn.
    @ivar ends: the worker's end of each control channel, in turn.
    """

    def __init__(self) -> None:
        super().__init__()
        self.processes: list[FakeWorkerProcess] = []
        self.ends: list[WorkerEnd] = []
        self.pumps: list[iosim.IOPump] = []

    def spawnProcess(self, protocol, executable, args, env=None, childFDs=None, **ignored):
        process = FakeWorkerProcess(protocol, 1000 + len(self.processes), args)
        self.processes.append(process)
        protocol.makeConnection(process)
        return process

    def adoptStreamConnection(self, fileDescriptor, addressFamily, factory):
        supervisorEnd, workerEnd = factory.buildProtocol(None), WorkerEnd()
        self.ends.append(workerEnd)
        self.pumps.append(
            iosim.connect(
                workerEnd,
                iosim.FakeTransport(workerEnd, isServer=False),
                supervisorEnd,
                iosim.FakeTransport(supervisorEnd, isServer=True),
                greet=False,
            )
        )

    def flush(self) -> None:
        """
        Move what every control channel has to move, until none has more.
        """
        while any([pump.pump() for pump in self.pumps]):
            pass


class SupervisorTests(SynchronousTestCase):
    """
    A L{Supervisor} of two workers whose processes are fakes: what it
    starts, restarts and stops, on a fake clock.
    """

    def setUp(self):
        self.reactor = ProcessReactor()
        options = ServeOptions()
        options.parseOptions(["--workers", "2", "--drain-timeout", "10"])
        self.supervisor = Supervisor(self.reactor, options, {}, {})
        self.supervisor.startService()
        self.started = self.supervisor.whenListening()

    def serve(self, index: int) -> None:
        """
        The process spawned C{index}-th (from 0) says it serves.
        """
        self.reactor.ends[index].callRemote(Serving)
        self.reactor.flush()

    def test_startsEveryWorker(self):
        """
        One process per worker, each told its number; the gateway has
        started once each serves.
        """
        self.assertEqual(
            [process.arguments[1:4] for process in self.reactor.processes],
            [["-m", "gateway.workers", "1"], ["-m", "gateway.workers", "2"]],
        )
        self.serve(0)
        self.assertNoResult(self.started)
        self.serve(1)
        self.successResultOf(self.started)

    def test_endedWorkerStartedAgain(self):
        """
        A worker that ends after it has run a while is started again at once;
        meanwhile the other covers its sockets, and leaves them to the new
        one once it serves.
        """
        self.serve(0)
        self.serve(1)
        self.reactor.advance(60)
        self.reactor.processes[0].end(ProcessTerminated(signal=9))
        self.reactor.flush()
        self.assertEqual(self.reactor.ends[1].told, [("cover", 1)])
        self.assertEqual(len(self.reactor.processes), 2)
        self.reactor.advance(0)
        self.assertEqual(self.reactor.processes[2].arguments[3], "1")
        self.serve(2)
        self.assertEqual(self.reactor.ends[1].told, [("cover", 1), ("uncover", 1)])
        self.assertEqual(self.supervisor.workers[0].restarts, 1)
        self.assertEqual([slot.serving for slot in self.supervisor.workers], [True, True])

    def test_quickEndsWaitLonger(self):
        """
        A worker that keeps ending soon after it starts is started again
        after a delay that doubles each time.
        """
        self.serve(0)
        self.serve(1)
        for delay in (FIRST_RESTART_DELAY, FIRST_RESTART_DELAY * 2, FIRST_RESTART_DELAY * 4):
            spawned = len(self.reactor.processes)
            self.reactor.processes[-1].end(ProcessTerminated(exitCode=3))
            self.reactor.advance(delay - 0.01)
            self.assertEqual(len(self.reactor.processes), spawned)
            self.reactor.advance(0.01)
            self.assertEqual(len(self.reactor.processes), spawned + 1)
            self.assertEqual(self.reactor.processes[-1].arguments[3], "2")

    def test_endBeforeServingAtStart(self):
        """
        A worker that ends before it has ever served, as the gateway starts,
        fails the start, naming it; it is not started again.
        """
        self.serve(0)
        self.reactor.processes[1].end(ProcessTerminated(exitCode=3))
        failure = self.failureResultOf(self.started, CannotListen)
        self.assertEqual(
            failure.getErrorMessage(), "worker 2 cannot listen: it exited with status 3 before it served"
        )
        self.reactor.advance(MAX_RESTART_DELAY)
        self.assertEqual(len(self.reactor.processes), 2)

    def test_stopDrainsEveryWorker(self):
        """
        Stopping sends SIGTERM to every worker, and is done once each has
        ended; none is started again.
        """
        self.serve(0)
        self.serve(1)
        stopped = self.supervisor.stopService()
        self.assertEqual([process.signals for process in self.reactor.processes], [["TERM"], ["TERM"]])
        self.reactor.processes[0].end(ProcessDone(0))
        self.assertNoResult(stopped)
        self.reactor.processes[1].end(ProcessDone(0))
        self.successResultOf(stopped)
        self.reactor.advance(MAX_RESTART_DELAY)
        self.assertEqual(len(self.reactor.processes), 2)

    def test_hungWorkerKilled(self):
        """
        A worker still running its drain timeout and its stop margin
        (C{--stop-margin}, 5 s by default) after SIGTERM is killed.
        """
        self.serve(0)
        self.serve(1)
        stopped = self.supervisor.stopService()
        self.reactor.processes[0].end(ProcessDone(0))
        self.reactor.advance(10 + 5 - 0.01)
        self.assertEqual(self.reactor.processes[1].signals, ["TERM"])
        self.reactor.advance(0.01)
        self.assertEqual(self.reactor.processes[1].signals, ["TERM", "KILL"])
        self.reactor.processes[1].end(ProcessTerminated(signal=9))
        self.successResultOf(stopped)

    def test_stopCancelsARestart(self):
        """
        A worker waiting to be started again is not, once the gateway stops.
        """
        self.serve(0)
        self.serve(1)
        self.reactor.processes[0].end(ProcessTerminated(exitCode=1))
        stopped = self.supervisor.stopService()
        self.reactor.processes[1].end(ProcessDone(0))
        self.successResultOf(stopped)
        self.reactor.advance(MAX_RESTART_DELAY)
        self.assertEqual(len(self.reactor.processes), 2)

    def test_readiness(self):
        """
        The supervisor is ready once a worker serves, and while one does,
        until it stops.
        """
        self.assertEqual(self.supervisor.readiness(), ["no worker is serving"])
        self.serve(0)
        self.assertEqual(self.supervisor.readiness(), [])
        self.reactor.processes[0].end(ProcessTerminated(signal=9))
        self.assertEqual(self.supervisor.readiness(), ["no worker is serving"])
        self.serve(1)
        self.assertEqual(self.supervisor.readiness(), [])
        self.supervisor.stopService()
        self.assertEqual(self.supervisor.readiness(), ["stopping"])
        self.failureResultOf(self.started, CancelledError)  # stopped before worker 1 served again
