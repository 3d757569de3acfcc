"""
The parts of C{xform serve --workers} that run without processes: the
restart policy, each worker's number in its log lines, and every worker's
metrics summed -- gateways in memory (L{tests.memory}) as workers, their
control channels joined to a supervisor's with L{twisted.test.iosim}.
The processes themselves are tested in L{tests.test_workers_process}.
"""

import json

from prometheus_client.parser import text_string_to_metric_families
from twisted.internet.endpoints import clientFromString
from twisted.internet.error import ProcessDone, ProcessTerminated
from twisted.internet.protocol import Factory, Protocol
from twisted.logger import LogLevel
from twisted.python.failure import Failure
from twisted.test import iosim

from gateway.clients import transformClient
from gateway.logs import jsonLine, textLine
from gateway.server import ServeOptions
from gateway.urls import parseServerURL
from gateway.workers import (
    FIRST_RESTART_DELAY,
    MAX_RESTART_DELAY,
    Supervisor,
    SupervisorChannel,
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
