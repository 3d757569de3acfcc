"""
The gateway's metrics, in the Prometheus text format (C{GET /metrics}).

The protocols report to an L{IServerObserver}; here each protocol gets a
L{ProtocolMetrics}, which keeps plain counters that cost an attribute
increment or a dict update per event, in the reactor thread.  At a scrape,
L{GatewayCollector} reads them, and the service's own counters, and hands
them to C{prometheus_client} as metric families; C{prometheus_client}
writes the text.  Nothing is counted twice and nothing is locked: every
count is made, and read, in the reactor thread.

Labels are bounded whatever the clients send: C{transform} is one of the
catalogue's names, C{pipeline} for a pipeline of several, or C{other} (an
unknown name, or an upstream's); C{outcome} is C{ok} or one of the error
names the gateway answers with; C{upstream} is a configured prefix, the
first L{MAX_UPSTREAM_LABELS} of them, or C{other}.  docs/operations.md lists
every metric.
"""

from bisect import bisect_left
from collections.abc import Callable, Iterable, Iterator

from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.registry import Collector, CollectorRegistry
from twisted.internet.defer import CancelledError, Deferred
from twisted.python.failure import Failure
from twisted.web.server import NOT_DONE_YET, Request
from zope.interface import implementer

from protocols.connections import Connections
from protocols.http import APIResource, errorBody
from protocols.interfaces import ITransformClient, ITransformLister
from protocols.observer import OK, IServerObserver
from service.errors import TransformError
from service.transformer import TransformService

#: The upper bounds of the request duration histograms, in seconds.
DURATION_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)

#: The C{transform} label of a pipeline, and of any name not in the
#: catalogue.
PIPELINE = "pipeline"
OTHER = "other"

#: Upstreams past this many share the C{upstream} label L{OTHER}.
MAX_UPSTREAM_LABELS = 16

#: The protocols the gateway counts, in the order they are listed.
PROTOCOLS = ("netstring", "amp", "http", "ws")


def transformLabels(names: Iterable[str]) -> Callable[[str], str]:
    """
    The C{transform} label of a requested name: the name itself if it is
    one of C{names}, L{PIPELINE} for a pipeline, else L{OTHER}.
    """
    known = {name: name for name in names}

    def label(name: str) -> str:
        found = known.get(name)
        if found is not None:
            return found
        return PIPELINE if "|" in name else OTHER

    return label


@implementer(IServerObserver)
class ProtocolMetrics:
    """
    What one protocol's server reported, as plain counts.

    @ivar protocol: the protocol's name, its C{protocol} label.
    @ivar openConnections: the connections open now.
    @ivar refused: connections refused, by the limit that refused them.
    @ivar idleTimeouts: connections closed for their silence.
    @ivar bytesIn: bytes received.
    @ivar bytesOut: bytes sent.
    @ivar durations: how many request durations fell in each bucket of
        L{DURATION_BUCKETS} (not cumulative), and past the last.
    @ivar durationSum: the sum of all request durations, in seconds.
    """

    def __init__(self, protocol: str, label: Callable[[str], str]) -> None:
        self.protocol = protocol
        self._label = label
        self._byLabel: dict[str, dict[str, int]] = {}
        self.openConnections = 0
        self.refused: dict[str, int] = {}
        self.idleTimeouts = 0
        self.bytesIn = 0
        self.bytesOut = 0
        self.durations = [0] * (len(DURATION_BUCKETS) + 1)
        self.durationSum = 0.0

    def connectionOpened(self) -> None:
        self.openConnections += 1

    def connectionClosed(self) -> None:
        self.openConnections -= 1

    def connectionRefused(self, limit: str) -> None:
        self.refused[limit] = self.refused.get(limit, 0) + 1

    def idleTimedOut(self) -> None:
        self.idleTimeouts += 1

    def received(self, size: int) -> None:
        self.bytesIn += size

    def sent(self, size: int) -> None:
        self.bytesOut += size

    @property
    def requests(self) -> dict[tuple[str, str], int]:
        """
        The requests served, by C{(transform label, outcome)}.
        """
        return {
            (label, outcome): count
            for label, outcomes in self._byLabel.items()
            for outcome, count in outcomes.items()
        }

    def requestServed(self, transform: str, outcome: str, seconds: float) -> None:
        label = self._label(transform)
        outcomes = self._byLabel.get(label)
        if outcomes is None:
            outcomes = self._byLabel[label] = {}
        outcomes[outcome] = outcomes.get(outcome, 0) + 1
        self.durations[bisect_left(DURATION_BUCKETS, seconds)] += 1
        self.durationSum += seconds


@implementer(ITransformClient)
class ObservedClient:
    """
    A transform client whose calls are counted by outcome: C{ok}, the
    name of the error the upstream answered, C{cancelled}, or
    C{connection-failed} for any other failure (refused, unreachable,
    garbled).

    @ivar client: the client that makes the calls.
    @ivar calls: the calls made, by outcome.
    """

    def __init__(self, client: ITransformClient) -> None:
        self.client = client
        self.calls: dict[str, int] = {}

    @property
    def timeout(self) -> float:
        return self.client.timeout

    def xform(self, transform: str, poem: str) -> "Deferred[str]":
        return self.client.xform(transform, poem).addBoth(self._count)

    def disconnect(self) -> "Deferred[None]":
        return self.client.disconnect()

    def _count(self, result: object) -> object:
        if not isinstance(result, Failure):
            outcome = OK
        elif isinstance(result.value, TransformError):
            outcome = result.value.name
        elif isinstance(result.value, CancelledError):
            outcome = "cancelled"
        else:
            outcome = "connection-failed"
        self.calls[outcome] = self.calls.get(outcome, 0) + 1
        return result


@implementer(ITransformLister)
class ObservedLister(ObservedClient):
    """
    An L{ObservedClient} of a client that can list the server's
    transforms; listings are not counted.
    """

    def listTransforms(self) -> "Deferred[list[tuple[str, str]]]":
        return self.client.listTransforms()


class GatewayMetrics:
    """
    Every count of one gateway, and the registry that exposes them.

    @ivar protocols: the L{ProtocolMetrics} of each protocol, by name.
    @ivar upstreams: the L{ObservedClient} of each upstream, by prefix.
    @ivar registry: the C{prometheus_client} registry to scrape.
    @ivar gather: if set, where L{exposition} gets its text from instead:
        in a worker of C{xform serve --workers}, every worker's metrics
        summed by the supervisor (L{gateway.workers}), a L{Deferred}.
    """

    def __init__(
        self,
        service: TransformService,
        connections: Connections,
        ready: Callable[[], bool],
    ) -> None:
        """
        @param service: the service whose requests in flight and slices
            are counted.
        @param connections: the gateway's connections.
        @param ready: says whether the gateway is ready (C{/readyz}).
        """
        label = transformLabels(entry.name for entry in service.catalogue)
        self.protocols = {name: ProtocolMetrics(name, label) for name in PROTOCOLS}
        self.upstreams: dict[str, ObservedClient] = {}
        self.registry = CollectorRegistry(auto_describe=False)
        self.registry.register(GatewayCollector(self, service, connections, ready))
        self.gather: Callable[[], Deferred[bytes]] | None = None

    def observeUpstream(self, prefix: str, client: ITransformClient) -> ObservedClient:
        """
        Count the calls of the upstream C{prefix}, made through C{client}.
        """
        observed = (ObservedLister if ITransformLister.providedBy(client) else ObservedClient)(client)
        self.upstreams[prefix] = observed
        return observed

    def exposition(self) -> "bytes | Deferred[bytes]":
        """
        What C{/metrics} shows: every metric, in the Prometheus text format;
        those that L{gather} gives, if it is set.
        """
        if self.gather is not None:
            return self.gather()
        return self.ownExposition()

    def ownExposition(self) -> bytes:
        """
        This process's metrics alone, in the Prometheus text format.
        """
        return generate_latest(self.registry)


class GatewayCollector(Collector):
    """
    Turns the counts of a L{GatewayMetrics} into metric families at each
    scrape.
    """

    def __init__(
        self,
        metrics: GatewayMetrics,
        service: TransformService,
        connections: Connections,
        ready: Callable[[], bool],
    ) -> None:
        self._metrics = metrics
        self._service = service
        self._connections = connections
        self._ready = ready

    def collect(self) -> Iterator[Metric]:
        protocols = self._metrics.protocols.values()
        requests = CounterMetricFamily(
            "xform_requests",
            "Transform requests answered, by protocol, transform and outcome.",
            labels=["protocol", "transform", "outcome"],
        )
        durations = HistogramMetricFamily(
            "xform_request_duration_seconds",
            "Seconds from a whole request to its answer, by protocol.",
            labels=["protocol"],
        )
        opened = GaugeMetricFamily(
            "xform_connections_open", "Connections open, by protocol.", labels=["protocol"]
        )
        refused = CounterMetricFamily(
            "xform_connections_refused",
            "Connections closed as soon as accepted, by protocol and the limit that refused them.",
            labels=["protocol", "limit"],
        )
        idle = CounterMetricFamily(
            "xform_idle_timeouts",
            "Connections closed because their client stayed silent too long, by protocol.",
            labels=["protocol"],
        )
        bytesIn = CounterMetricFamily(
            "xform_received_bytes", "Bytes received, by protocol.", labels=["protocol"]
        )
        bytesOut = CounterMetricFamily("xform_sent_bytes", "Bytes sent, by protocol.", labels=["protocol"])
        for metrics in protocols:
            name = metrics.protocol
            for (transform, outcome), count in sorted(metrics.requests.items()):
                requests.add_metric([name, transform, outcome], count)
            cumulative, buckets = 0, []
            for bound, count in zip([*map(str, DURATION_BUCKETS), "+Inf"], metrics.durations, strict=True):
                cumulative += count
                buckets.append((bound, cumulative))
            durations.add_metric([name], buckets, metrics.durationSum)
            opened.add_metric([name], metrics.openConnections)
            for limit, count in sorted(metrics.refused.items()):
                refused.add_metric([name, limit], count)
            idle.add_metric([name], metrics.idleTimeouts)
            bytesIn.add_metric([name], metrics.bytesIn)
            bytesOut.add_metric([name], metrics.bytesOut)
        yield from (requests, durations, opened, refused, idle, bytesIn, bytesOut)
        yield from self._serviceMetrics()
        yield from self._upstreamMetrics()
        yield from self._stateMetrics()

    def _serviceMetrics(self) -> Iterator[Metric]:
        service = self._service
        yield GaugeMetricFamily(
            "xform_transforms_in_flight", "Transform requests running now.", value=service.inFlight
        )
        overloaded = CounterMetricFamily(
            "xform_overloaded",
            "Requests refused as overloaded, by the cap on requests in flight that refused them.",
            labels=["limit"],
        )
        for limit, count in service.refusals.items():
            overloaded.add_metric([limit], count)
        yield overloaded
        yield CounterMetricFamily(
            "xform_sliced_steps",
            "Transform steps run in slices on the reactor thread.",
            value=service.slicedSteps,
        )

    def _upstreamMetrics(self) -> Iterator[Metric]:
        calls = CounterMetricFamily(
            "xform_upstream_calls",
            "Calls to upstream servers, by upstream and outcome.",
            labels=["upstream", "outcome"],
        )
        totals: dict[tuple[str, str], int] = {}
        for index, (prefix, client) in enumerate(self._metrics.upstreams.items()):
            label = prefix if index < MAX_UPSTREAM_LABELS else OTHER
            for outcome, count in client.calls.items():
                totals[label, outcome] = totals.get((label, outcome), 0) + count
        for (upstream, outcome), count in sorted(totals.items()):
            calls.add_metric([upstream, outcome], count)
        yield calls

    def _stateMetrics(self) -> Iterator[Metric]:
        return stateMetrics(self._ready(), self._connections.draining)


def stateMetrics(ready: bool, draining: bool) -> Iterator[Metric]:
    """
    The gauges of the gateway's state: C{xform_ready} and C{xform_draining}.
    """
    yield GaugeMetricFamily(
        "xform_ready", "1 while the gateway is ready for more work (GET /readyz), else 0.", value=ready
    )
    yield GaugeMetricFamily(
        "xform_draining", "1 once the gateway is stopping and draining its connections.", value=draining
    )


class MetricSums:
    """
    Metric families of several processes, added up sample by sample: the
    same name and labels make one sample, whose value is the sum.  Counters,
    histograms and gauges alike: the sum of the workers' open connections
    is the gateway's.

    @ivar families: each family's help, type and summed samples (by sample
        name and labels), by family name, in the order first seen.
    """

    def __init__(self) -> None:
        self.families: dict[str, tuple[str, str, dict[tuple[str, tuple[tuple[str, str], ...]], float]]] = {}

    def add(self, families: Iterable[Metric], types: frozenset[str] | None = None) -> None:
        """
        Add C{families} (of the types in C{types}, if given).
        """
        for family in families:
            if types is not None and family.type not in types:
                continue
            _, _, samples = self.families.setdefault(family.name, (family.documentation, family.type, {}))
            for sample in family.samples:
                key = (sample.name, tuple(sorted(sample.labels.items())))
                samples[key] = samples.get(key, 0.0) + sample.value

    def metrics(self, leaveOut: Iterable[str] = ()) -> Iterator[Metric]:
        """
        The summed families, but those named in C{leaveOut}.
        """
        for name, (documentation, kind, samples) in self.families.items():
            if name in leaveOut:
                continue
            family = Metric(name, documentation, kind)
            for (sampleName, labels), value in samples.items():
                family.add_sample(sampleName, dict(labels), value)
            yield family

    def total(self, sampleName: str) -> float:
        """
        The sum of every sample called C{sampleName}, whatever its labels.
        """
        return sum(
            value
            for _, _, samples in self.families.values()
            for (name, _), value in samples.items()
            if name == sampleName
        )


class MetricsPage(APIResource):
    """
    C{GET /metrics}: every metric, in the Prometheus text format, made in
    the reactor thread when asked -- at once, or once a worker's supervisor
    has summed every worker's (C{503} if it cannot).

    @ivar metrics: the gateway's metrics: anything whose C{exposition()}
        returns the text, or a L{Deferred} of it.
    """

    def __init__(self, metrics: GatewayMetrics) -> None:
        super().__init__()
        self.metrics = metrics

    def render_GET(self, request: Request) -> bytes | int:
        request.setHeader(b"Content-Type", CONTENT_TYPE_LATEST.encode("ascii"))
        text = self.metrics.exposition()
        if isinstance(text, bytes):
            return text
        finished = request.notifyFinish()
        finished.addErrback(lambda _: None)  # the client went away: nothing to write to

        def answer(body: bytes) -> None:
            if not finished.called:
                request.write(body)
                request.finish()

        def unavailable(failure: Failure) -> None:
            answer(errorBody(request, 503, "unavailable", f"the metrics cannot be gathered: {failure.value}"))

        text.addCallbacks(answer, unavailable)
        return NOT_DONE_YET
