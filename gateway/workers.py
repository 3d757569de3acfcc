"""
Every core: C{xform serve --workers N} runs the gateway in N worker
processes, all serving the same listening addresses.

The parent, the L{Supervisor}, listens on each listener's endpoint, but
never accepts a connection: it makes one listening socket per worker on the
endpoint's address (C{SO_REUSEPORT}: the kernel spreads new connections
over them, by a hash of their addresses), takes them out of its reactor and
hands them all to N children, each started as::

    python -m gateway.workers NUMBER NAME=FD:FD:...,... SERVE-ARGUMENT...

with the sockets at the descriptors named (C{4} and up; the first of a
listener is worker 1's) and a control channel, one end of a UNIX socket
pair, at descriptor L{CONTROL_FD}.  A worker parses the same arguments of
C{xform serve}, in the same environment, so it runs with the same
configuration; it builds the gateway of one process on its own sockets
(C{reactor.adoptStreamPort}, the factory wrapped in TLS for an C{ssl:}
endpoint) and serves until told to stop.  It also adopts the other
workers' sockets, without reading them: while a worker does not serve
(it is starting, or has ended and is not yet replaced), the others accept
the connections on its sockets (L{Cover}, L{Uncover}).  Sockets of their
own keep the workers even: had they all read one socket, the first awake
would take a whole burst of new connections (Twisted's ports accept up to
a hundred at a time), and leave the others idle.

Over the control channel, an AMP connection, a worker says when it serves
(L{Serving}), the supervisor asks each worker for its own metrics
(L{Snapshot}) and tells it whose sockets to serve, and a worker asks the
supervisor for every worker's metrics, summed (L{Gather}), for its
C{/metrics}.

The supervisor starts a worker again when one ends (at once if it had run
for L{STEADY} seconds, else after a delay that doubles up to
L{MAX_RESTART_DELAY}); its listening sockets stay open in the supervisor
and the other workers meanwhile, which serve them, so no connection is
refused.  On SIGTERM or SIGINT it closes its own sockets, sends SIGTERM to
every worker, each of which drains as one gateway does (L{gateway.drain}),
waits for them up to their drain delay and timeout and C{--stop-margin}
more (then kills those left), and exits with 0; a second signal is passed
on to the workers, which cut their drain short.  A worker whose supervisor
has gone stops by itself.  Workers run in process groups of their own, so
that Ctrl-C reaches the supervisor alone, which passes it on once.
"""

import gc
import os
import signal
import socket
import sys
from collections.abc import Iterable
from dataclasses import dataclass, field

from prometheus_client import generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.registry import Collector, CollectorRegistry
from twisted.application.service import Service
from twisted.internet.abstract import isIPv6Address
from twisted.internet.defer import CancelledError, Deferred, DeferredList, gatherResults, succeed
from twisted.internet.endpoints import SSL4ServerEndpoint, TCP4ServerEndpoint, TCP6ServerEndpoint
from twisted.internet.error import CannotListenError, ProcessDone, ReactorNotRunning
from twisted.internet.interfaces import IListeningPort, IProcessTransport
from twisted.internet.protocol import Factory, ProcessProtocol, ServerFactory
from twisted.logger import Logger
from twisted.protocols import amp
from twisted.protocols.tls import TLSMemoryBIOFactory
from twisted.python.failure import Failure

from gateway.drain import DrainingRoot, Gateway, stopAll
from gateway.listening import CannotListen, ListeningService, ListeningTree
from gateway.metrics import MetricSums, stateMetrics
from gateway.options import OptionError, serverEndpoint
from gateway.server import LISTENERS, OFF, ServeOptions, listenerEndpoint, makeService
from gateway.web import makeMetricsSite
from protocols.amp.commands import Split

#: The descriptor of a worker's end of its control channel; its sockets
#: follow.
CONTROL_FD = 3

#: The endpoints whose sockets workers can share: those of C{tcp:},
#: C{tcp6:} and C{ssl:} endpoint strings.
SHAREABLE = (TCP4ServerEndpoint, TCP6ServerEndpoint, SSL4ServerEndpoint)

#: Seconds a worker must have run for its end to be followed by a new one
#: at once; one that ends sooner is started again after a delay.
STEADY = 10.0

#: The first and the longest delay before starting again a worker that
#: keeps ending soon after it started, in seconds.
FIRST_RESTART_DELAY = 0.5
MAX_RESTART_DELAY = 30.0

#: Seconds the supervisor waits for a worker's own metrics.
SNAPSHOT_TIMEOUT = 5.0

#: The families of the workers' metrics that say what the supervisor says
#: for the whole gateway instead.
SUPERVISOR_STATE = frozenset({"xform_ready", "xform_draining"})

#: The metric types that keep counting across a worker's restarts.
CUMULATIVE = frozenset({"counter", "histogram"})


class Serving(amp.Command):
    """
    Worker to supervisor: every listener of the worker is serving.
    """


class Gather(amp.Command):
    """
    Worker to supervisor: every worker's metrics, summed, in the Prometheus
    text format.
    """

    response = [(b"exposition", Split(amp.String()))]


class Snapshot(amp.Command):
    """
    Supervisor to worker: this worker's own metrics, in the Prometheus text
    format.
    """

    response = [(b"exposition", Split(amp.String()))]


class Cover(amp.Command):
    """
    Supervisor to worker: accept the connections on the sockets of worker
    C{worker}, which does not serve.
    """

    arguments = [(b"worker", amp.Integer())]


class Uncover(amp.Command):
    """
    Supervisor to worker: leave the sockets of worker C{worker} to it again.
    """

    arguments = [(b"worker", amp.Integer())]


def restartDelay(quickEnds: int) -> float:
    """
    Seconds to wait before starting a worker again after it has ended
    C{quickEnds} times in a row less than L{STEADY} seconds after it started.
    """
    if quickEnds == 0:
        return 0.0
    return min(FIRST_RESTART_DELAY * 2 ** (quickEnds - 1), MAX_RESTART_DELAY)


def describeEnd(reason: Failure) -> str:
    """
    How a worker's process ended, in words: C{exited with status 1}, C{was
    killed by SIGKILL}.
    """
    if reason.check(ProcessDone):
        return "exited with status 0"
    if reason.value.signal is not None:
        return f"was killed by {signal.Signals(reason.value.signal).name}"
    return f"exited with status {reason.value.exitCode}"


class _Refusing(ServerFactory):
    """
    The supervisor's factory on its listeners: it never accepts (it does not
    read its sockets), and would close any connection it did.
    """

    noisy = False

    def buildProtocol(self, addr: object) -> None:
        return None


@dataclass
class WorkerSlot:
    """
    One of the N workers, through the processes that serve as it in turn.

    @ivar number: its number, from 1.
    @ivar process: the transport of its process while it runs, else C{None}.
    @ivar pid: the id of its process while it runs.
    @ivar channel: its control channel while its process runs.
    @ivar serving: whether its process has said it serves.
    @ivar startedAt: when its process started, on the reactor's clock.
    @ivar quickEnds: how many of its processes in a row ended less than
        L{STEADY} seconds after they started.
    @ivar restarts: how many processes were started after one had ended.
    @ivar current: the metrics its process last sent.
    @ivar retired: what its ended processes counted (counters and
        histograms: their last metrics).
    """

    number: int
    process: IProcessTransport | None = None
    pid: int | None = None
    channel: "SupervisorChannel | None" = None
    serving: bool = False
    startedAt: float = 0.0
    quickEnds: int = 0
    restarts: int = 0
    current: list[Metric] = field(default_factory=list)
    retired: MetricSums = field(default_factory=MetricSums)
    _ended: list[Deferred] = field(default_factory=list)

    def whenEnded(self) -> "Deferred[None]":
        """
        A L{Deferred} firing once its process has ended (at once if none runs).
        """
        ended: Deferred[None] = Deferred()
        if self.process is None:
            ended.callback(None)
        else:
            self._ended.append(ended)
        return ended

    def signal(self, name: str) -> None:
        """
        Send signal C{name} (C{TERM}, C{KILL}) to its process, if it runs.
        """
        if self.process is not None:
            self.process.signalProcess(name)

    def tell(self, command: type[amp.Command], worker: int) -> None:
        """
        Send C{command} about worker C{worker} to its process, if it is
        serving; if the process is ending, never mind.
        """
        if self.serving:
            self.channel.callRemote(command, worker=worker).addErrback(lambda _: None)

    def processEnded(self) -> None:
        """
        Its process has ended: keep what it counted, forget the rest.
        """
        self.retired.add(self.current, CUMULATIVE)
        self.current = []
        self.process = self.pid = None
        self.serving = False
        if self.channel is not None and self.channel.transport is not None:
            self.channel.transport.loseConnection()
        self.channel = None
        ended, self._ended = self._ended, []
        for waiter in ended:
            waiter.callback(None)

    def snapshot(self, reactor) -> "Deferred[None]":
        """
        Ask its process for its metrics, and keep them in L{current}; if it
        does not answer within L{SNAPSHOT_TIMEOUT}, the last ones stay.
        """
        if self.channel is None:
            return succeed(None)
        asked = self.channel.callRemote(Snapshot).addTimeout(SNAPSHOT_TIMEOUT, reactor)

        def keep(answer: dict) -> None:
            self.current = list(text_string_to_metric_families(answer["exposition"].decode("utf-8")))

        return asked.addCallbacks(keep, lambda failure: None)

    def sums(self) -> MetricSums:
        """
        What it counted: its ended processes' counts and its current ones.
        """
        sums = MetricSums()
        sums.add(self.retired.metrics())
        sums.add(self.current)
        return sums


class SupervisorChannel(amp.AMP):
    """
    The supervisor's end of one worker's control channel.
    """

    def __init__(self, supervisor: "Supervisor", slot: WorkerSlot) -> None:
        super().__init__()
        self.supervisor = supervisor
        self.slot = slot

    @Serving.responder
    def serving(self) -> dict:
        self.supervisor.workerServing(self.slot)
        return {}

    @Gather.responder
    def gather(self) -> "Deferred[dict]":
        return self.supervisor.metrics.exposition().addCallback(lambda text: {"exposition": text})


class WorkersMetrics:
    """
    The metrics of every worker, summed: what C{/metrics} shows under
    C{--workers}, on the supervisor's C{--metrics} listener and through any
    worker.  A worker's counters and histograms keep counting across its
    restarts (what its ended processes last said is kept); its gauges are
    its current process's.  C{xform_ready} and C{xform_draining} are the
    supervisor's, and three families of its own say how the workers do.
    """

    def __init__(self, supervisor: "Supervisor") -> None:
        self.supervisor = supervisor

    def exposition(self) -> "Deferred[bytes]":
        """
        Ask every worker for its metrics, then sum them, in the Prometheus
        text format.
        """
        return Deferred.fromCoroutine(self._exposition())

    async def _exposition(self) -> bytes:
        slots = self.supervisor.workers
        await DeferredList([slot.snapshot(self.supervisor.reactor) for slot in slots])
        registry = CollectorRegistry(auto_describe=False)
        registry.register(_WorkersCollector(self.supervisor, [slot.sums() for slot in slots]))
        return generate_latest(registry)


class _WorkersCollector(Collector):
    """
    The families of L{WorkersMetrics}, from each worker's sums.
    """

    def __init__(self, supervisor: "Supervisor", sums: list[MetricSums]) -> None:
        self._supervisor = supervisor
        self._sums = sums

    def collect(self) -> Iterable[Metric]:
        supervisor = self._supervisor
        total = MetricSums()
        requests = CounterMetricFamily(
            "xform_worker_requests",
            "Transform requests answered, by worker (--workers).",
            labels=["worker"],
        )
        for slot, sums in zip(supervisor.workers, self._sums, strict=True):
            total.add(sums.metrics())
            requests.add_metric([str(slot.number)], sums.total("xform_requests_total"))
        yield from total.metrics(leaveOut=SUPERVISOR_STATE)
        yield from stateMetrics(ready=not supervisor.readiness(), draining=not supervisor.running)
        yield GaugeMetricFamily(
            "xform_workers",
            "Worker processes serving now (--workers).",
            value=sum(slot.serving for slot in supervisor.workers),
        )
        yield CounterMetricFamily(
            "xform_worker_restarts",
            "Worker processes started again after one had ended (--workers).",
            value=sum(slot.restarts for slot in supervisor.workers),
        )
        yield requests


class _WorkerProcess(ProcessProtocol):
    def __init__(self, supervisor: "Supervisor", slot: WorkerSlot) -> None:
        self.supervisor = supervisor
        self.slot = slot

    def processEnded(self, reason: Failure) -> None:
        self.supervisor.workerEnded(self.slot, reason)


class Supervisor(DrainingRoot, ListeningTree):
    """
    The parent process of C{xform serve --workers N}; see the module's
    docstring.

    @ivar options: the options of C{xform serve}, whose arguments the
        workers parse again.
    @ivar drainTimeout: seconds each worker has to drain once stopping.
    @ivar drainDelay: seconds each worker serves on, unready, before that.
    @ivar stopMargin: seconds past L{drainDelay} and L{drainTimeout} that a
        stopping worker has to end before it is killed.
    @ivar listeners: the listeners whose sockets the workers share.
    @ivar workers: the N workers.
    @ivar metrics: every worker's metrics, summed.
    """

    log = Logger()

    def __init__(
        self,
        reactor,
        options: ServeOptions,
        endpoints: dict[str, object],
        sockets: dict[str, "_SharedSockets"],
    ) -> None:
        """
        @param endpoints: the endpoint of each listener that is on, by name,
            and of C{--metrics} as C{metrics}.
        @param sockets: what makes the workers' sockets of each listener,
            by name: the reactor its endpoint listens with.
        """
        super().__init__(reactor)
        self.options = options
        self.drainTimeout = options["drain-timeout"]
        self.drainDelay = options["drain-delay"]
        self.stopMargin = options["stop-margin"]
        self.workers = [WorkerSlot(number) for number in range(1, options["workers"] + 1)]
        self.metrics = WorkersMetrics(self)
        self.listeners: list[ListeningService] = []
        for name in LISTENERS:
            if name in endpoints:
                listener = ListeningService(name, endpoints[name], _Refusing())
                self.listeners.append(listener)
                listener.setServiceParent(self)
        if "metrics" in endpoints:
            site = makeMetricsSite(self.metrics, self.readiness, reactor)
            ListeningService("metrics", endpoints["metrics"], site).setServiceParent(self)
        self._shared = sockets
        self._sockets: list[tuple[str, list[int]]] = []
        self._restarts: dict[int, object] = {}
        self._startWaiters: list[Deferred[None]] | None = []
        self._startFailure: Failure | None = None

    def readiness(self) -> list[str]:
        """
        Why the gateway is not ready, if it is not: it is stopping, a
        listener does not listen, or no worker serves.  (Each worker's own
        C{/readyz} says whether that worker is at its limits.)
        """
        reasons = []
        if not self.running:
            reasons.append("stopping")
        reasons += [
            f"{listener.name} is not listening" for listener in self.listeners if listener.port is None
        ]
        if not any(slot.serving for slot in self.workers):
            reasons.append("no worker is serving")
        return reasons

    def startService(self) -> None:
        """
        Listen on every listener (or raise L{CannotListen}), then start the
        workers on the sockets.
        """
        super().startService()
        self.takeStopSignalsWhenRunning()
        self._sockets = [
            (listener.name, [port.fileno() for port in self._shared[listener.name].ports])
            for listener in self.listeners
        ]
        for slot in self.workers:
            self._start(slot)

    def _start(self, slot: WorkerSlot) -> None:
        """
        Start a process for C{slot}, with the sockets and a control channel.
        """
        self._restarts.pop(slot.number, None)
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        with ours, theirs:
            ours.setblocking(False)
            slot.channel = channel = SupervisorChannel(self, slot)
            self.reactor.adoptStreamConnection(
                ours.fileno(), socket.AF_UNIX, Factory.forProtocol(lambda: channel)
            )
            descriptors = {0: 0, 1: 1, 2: 2, CONTROL_FD: theirs.fileno()}
            sockets = []
            for name, filenos in self._sockets:
                theirFilenos = range(len(descriptors), len(descriptors) + len(filenos))
                descriptors.update(zip(theirFilenos, filenos, strict=True))
                sockets.append(f"{name}={':'.join(map(str, theirFilenos))}")
            arguments = [
                sys.executable,
                "-m",
                "gateway.workers",
                str(slot.number),
                ",".join(sockets),
                *self.options.arguments,
            ]
            slot.process = self.reactor.spawnProcess(
                _WorkerProcess(self, slot), sys.executable, arguments, env=None, childFDs=descriptors
            )
        slot.pid = slot.process.pid
        slot.startedAt = self.reactor.seconds()

    def workerServing(self, slot: WorkerSlot) -> None:
        """
        C{slot}'s process says it serves: the others leave its sockets to
        it, and it covers those of the workers that do not serve.
        """
        slot.serving = True
        self.log.info("worker {worker} serving (pid {pid})", worker=slot.number, pid=slot.pid)
        for other in self.workers:
            if other is not slot:
                other.tell(Uncover, slot.number)
                if not other.serving:
                    slot.tell(Cover, other.number)
        if all(other.serving for other in self.workers) and self._startWaiters is not None:
            waiting, self._startWaiters = self._startWaiters, None
            self.log.info("{count} workers serving", count=len(self.workers))
            for waiter in waiting:
                waiter.callback(None)

    def workerEnded(self, slot: WorkerSlot, reason: Failure) -> None:
        """
        C{slot}'s process has ended: start another unless stopping, after a
        delay if it ended soon after it started.
        """
        pid, served = slot.pid, slot.serving
        ranFor = self.reactor.seconds() - slot.startedAt
        how = describeEnd(reason)
        if not self.running:
            self.log.info("worker {worker} (pid {pid}) {how}", worker=slot.number, pid=pid, how=how)
            slot.processEnded()
            return
        slot.processEnded()
        for other in self.workers:
            other.tell(Cover, slot.number)
        if self._startWaiters is not None and not served:
            self._failStart(CannotListen(f"worker {slot.number}", f"it {how} before it served"))
            return
        slot.quickEnds = slot.quickEnds + 1 if ranFor < STEADY else 0
        delay = restartDelay(slot.quickEnds)
        self.log.warn(
            "worker {worker} (pid {pid}) {how}; starting another{after}",
            worker=slot.number,
            pid=pid,
            how=how,
            after=f" in {delay:g} s" if delay else "",
        )
        slot.restarts += 1
        self._restarts[slot.number] = self.reactor.callLater(delay, self._start, slot)

    def _failStart(self, failure: Failure | Exception) -> None:
        waiting, self._startWaiters = self._startWaiters, None
        self._startFailure = failure if isinstance(failure, Failure) else Failure(failure)
        for waiter in waiting:
            waiter.errback(self._startFailure)

    def whenListening(self) -> "Deferred[None]":
        """
        A L{Deferred} firing once every listener listens and every worker
        has served, or failing with L{CannotListen} for the first listener
        or worker that cannot (L{CancelledError} if stopped first).
        """
        started: Deferred[None] = Deferred()
        if self._startFailure is not None:
            started.errback(self._startFailure)
        elif self._startWaiters is None:
            started.callback(None)
        else:
            self._startWaiters.append(started)
        both = gatherResults([ListeningTree.whenListening(self), started], consumeErrors=True)
        return both.addCallbacks(lambda _: None, lambda failure: failure.value.subFailure)

    async def _stop(self) -> None:
        """
        Stop listening, drain every worker, then stop the rest; see the
        module's docstring.
        """
        Service.stopService(self)
        if self._startWaiters is not None:
            self._failStart(CancelledError())
        for pending in self._restarts.values():
            pending.cancel()
        self._restarts.clear()
        await stopAll(self.listeners)
        await DeferredList(
            [port.stopListening() for shared in self._shared.values() for port in shared.ports[1:]]
        )
        running = [slot for slot in self.workers if slot.process is not None]
        self.log.info("stopped listening; draining the workers ({count} running)", count=len(running))
        ended = DeferredList([slot.whenEnded() for slot in running])
        for slot in running:
            slot.signal("TERM")
        timer = self.reactor.callLater(self.drainDelay + self.drainTimeout + self.stopMargin, self._kill)
        await ended
        if timer.active():
            timer.cancel()
        self.log.info("every worker has stopped")
        await stopAll([child for child in self if child not in self.listeners])

    def _kill(self) -> None:
        left = [slot for slot in self.workers if slot.process is not None]
        self.log.warn(
            "killing the workers still running {seconds:g} s after SIGTERM ({count})",
            count=len(left),
            seconds=self.drainDelay + self.drainTimeout + self.stopMargin,
        )
        for slot in left:
            slot.signal("KILL")

    def _cutShort(self) -> None:
        for slot in self.workers:
            slot.signal("TERM")


def makeSupervisor(options: ServeOptions, reactor) -> Supervisor:
    """
    The supervisor of C{options["workers"]} workers, listening where the
    options say.

    @raise OptionError: if a listener's endpoint is not one whose socket
        workers can share.
    """
    endpoints, sockets = {}, {}
    for name in LISTENERS:
        if options[name] == OFF:
            continue
        sockets[name] = _SharedSockets(reactor, options["workers"])
        endpoints[name] = listenerEndpoint(sockets[name], options[name], name)
        if not isinstance(endpoints[name], SHAREABLE):
            raise OptionError(
                name, f"{options[name]!r}: --workers shares only tcp:, tcp6: and ssl: listeners' sockets"
            )
    if options["metrics"] != OFF:
        endpoints["metrics"] = listenerEndpoint(reactor, options["metrics"], "metrics")
    return Supervisor(reactor, options, endpoints, sockets)


class _SharedSockets:
    """
    A reactor for Twisted's endpoint parser (C{serverFromString}), whose
    C{listenTCP} and C{listenSSL} make the listening sockets of one
    listener's workers, one per worker, on the endpoint's address, as
    Twisted's own port would make one; then each is adopted by the reactor
    and taken out of it at once, so that the supervisor never accepts a
    connection.  An adopted port closes its socket without shutting it
    down, which would stop every copy of it (the workers') listening too.

    The sockets share their address through C{SO_REUSEPORT}, which would
    let any other process of the same user join them on that address: so
    the address is first bound without it, to find out whether it is free
    (and which port C{tcp:0} gets).

    @ivar count: how many sockets to make.
    @ivar ports: the sockets, as ports, once listening.
    """

    def __init__(self, reactor, count: int) -> None:
        self.reactor = reactor
        self.count = count
        self.ports: list[IListeningPort] = []

    def listenTCP(
        self, port: int, factory: Factory, backlog: int = 50, interface: str = ""
    ) -> IListeningPort:
        family = socket.AF_INET6 if isIPv6Address(interface) else socket.AF_INET
        with socket.socket(family, socket.SOCK_STREAM) as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                probe.bind((interface, port))
            except OSError as error:
                raise CannotListenError(interface, port, error) from None
            port = probe.getsockname()[1]
        for _ in range(self.count):
            with socket.socket(family, socket.SOCK_STREAM) as listening:
                listening.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                listening.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
                try:
                    listening.bind((interface, port))
                except OSError as error:
                    for made in self.ports:
                        made.stopListening()
                    raise CannotListenError(interface, port, error) from None
                listening.listen(backlog)
                listening.setblocking(False)
                shared = self.reactor.adoptStreamPort(listening.fileno(), family, factory)
            self.reactor.removeReader(shared)
            self.ports.append(shared)
        return self.ports[0]

    def listenSSL(
        self, port: int, factory: Factory, contextFactory, backlog: int = 50, interface: str = ""
    ) -> IListeningPort:
        return self.listenTCP(port, factory, backlog, interface)


class _InheritedSocket:
    """
    A reactor for Twisted's endpoint parser (C{serverFromString}), whose
    C{listenTCP} and C{listenSSL} adopt a listening socket this worker
    inherited instead of making one: so a worker's listener is built from
    the very endpoint string the supervisor listens on, an C{ssl:} one's
    certificate and options included, through Twisted's public API.  Like
    Twisted's own C{listenSSL}, it serves TLS by wrapping the factory in a
    L{TLSMemoryBIOFactory} with the endpoint's context factory.

    @ivar paused: whether the port starts paused (another worker's socket).
    """

    def __init__(self, reactor, fileno: int, paused: bool = False) -> None:
        self.reactor = reactor
        self.fileno = fileno
        self.paused = paused

    def listenTCP(
        self, port: int, factory: Factory, backlog: int = 50, interface: str = ""
    ) -> IListeningPort:
        with socket.socket(fileno=self.fileno) as inherited:
            adopted = self.reactor.adoptStreamPort(inherited.fileno(), inherited.family, factory)
        if self.paused:
            adopted.pauseProducing()
        return adopted

    def listenSSL(
        self, port: int, factory: Factory, contextFactory, backlog: int = 50, interface: str = ""
    ) -> IListeningPort:
        return self.listenTCP(port, TLSMemoryBIOFactory(contextFactory, False, factory), backlog, interface)


class WorkerChannel(amp.AMP):
    """
    A worker's end of its control channel.  Once it is connected, the
    worker's C{/metrics} shows every worker's, which it asks the supervisor
    for, and the supervisor is told when the worker serves.  If the
    supervisor goes away while the worker runs, the worker stops.

    @ivar root: the worker's gateway.
    """

    log = Logger()

    def __init__(self, root: Gateway, reactor, covers: dict[int, list[ListeningService]]) -> None:
        """
        @param covers: this worker's listeners on each other worker's
            sockets, by that worker's number.
        """
        super().__init__()
        self.root = root
        self.reactor = reactor
        self.covers = covers

    def connectionMade(self) -> None:
        super().connectionMade()
        self.root.metrics.gather = self.gather
        self.root.whenListening().addCallbacks(lambda _: self.callRemote(Serving), lambda _: None)

    @Snapshot.responder
    def snapshot(self) -> dict:
        return {"exposition": self.root.metrics.ownExposition()}

    @Cover.responder
    def cover(self, worker: int) -> dict:
        for listener in self.covers.get(worker, []):
            if listener.port is not None:
                listener.port.resumeProducing()
        return {}

    @Uncover.responder
    def uncover(self, worker: int) -> dict:
        for listener in self.covers.get(worker, []):
            if listener.port is not None:
                listener.port.pauseProducing()
        return {}

    def gather(self) -> "Deferred[bytes]":
        """
        Every worker's metrics, summed by the supervisor.
        """
        return self.callRemote(Gather).addCallback(lambda answer: answer["exposition"])

    def connectionLost(self, reason: Failure) -> None:
        super().connectionLost(reason)
        if self.root.running:
            self.log.warn("the supervisor has gone; stopping")
            try:
                self.reactor.stop()
            except ReactorNotRunning:
                pass


def makeWorker(options: ServeOptions, reactor, number: int, sockets: dict[str, list[int]]) -> Gateway:
    """
    Worker C{number}'s gateway: the gateway of one process, its listeners
    on its own inherited sockets, and quiet listeners, paused, on the other
    workers' (C{sockets}: the descriptors of every worker's, by listener);
    its C{/metrics} every worker's, through the control channel at
    L{CONTROL_FD}.
    """
    endpoints = {
        name: serverEndpoint(_InheritedSocket(reactor, filenos[number - 1]), options[name], name)
        for name, filenos in sockets.items()
    }
    root = makeService(options, reactor, endpoints=endpoints)
    covers: dict[int, list[ListeningService]] = {}
    for own in list(root.listeners):
        for other, fileno in enumerate(sockets[own.name], start=1):
            if other != number:
                paused = _InheritedSocket(reactor, fileno, paused=True)
                endpoint = serverEndpoint(paused, options[own.name], own.name)
                cover = ListeningService(f"{own.name} of worker {other}", endpoint, own.factory, quiet=True)
                root.addListener(cover)
                covers.setdefault(other, []).append(cover)
    channel = WorkerChannel(root, reactor, covers)
    with socket.socket(fileno=CONTROL_FD) as control:
        reactor.adoptStreamConnection(control.fileno(), socket.AF_UNIX, Factory.forProtocol(lambda: channel))
    return root


def runWorker(arguments: list[str]) -> None:
    """
    Run a worker: C{arguments} are its number, its sockets (C{NAME=FD,...})
    and the arguments of C{xform serve}.
    """
    from gateway.cli import serveUntilStopped
    from gateway.logs import startLogging

    number, sockets, serveArguments = int(arguments[0]), arguments[1], arguments[2:]
    os.setpgrp()  # Ctrl-C reaches the supervisor alone
    options = ServeOptions()
    options.parseOptions(serveArguments)
    from twisted.internet import reactor
    from twisted.internet.task import react

    sockets = {
        name: [int(fileno) for fileno in filenos.split(":")]
        for name, _, filenos in (pair.partition("=") for pair in sockets.split(","))
    }
    root = makeWorker(options, reactor, number, sockets)
    startLogging(options["log-level"], options["log-format"], worker=number)
    gc.freeze()  # as xform serve does (gateway.cli.main)
    react(serveUntilStopped, [root])


if __name__ == "__main__":
    runWorker(sys.argv[1:])
