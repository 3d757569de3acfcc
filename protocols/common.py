"""
What the protocol adapters do the same way: the factories that hand the
shared service, the connection caps and the observer to each connection,
how a refused request is logged (how loudly, and how often: L{Refusals}),
and releasing a client that keeps no
connection open.
"""

from collections.abc import Coroutine
from dataclasses import dataclass
from typing import Any

from twisted.internet.defer import Deferred, succeed
from twisted.internet.error import ConnectionDone, ConnectionLost
from twisted.internet.interfaces import IAddress, IDelayedCall, IReactorTime
from twisted.internet.protocol import Factory, Protocol
from twisted.logger import Logger, LogLevel
from twisted.python.failure import Failure

from protocols.addresses import describeAddress, peerOf
from protocols.connections import Connections, IDrainable
from protocols.observer import UNOBSERVED, IServerObserver
from service.deadline import withDeadline
from service.errors import Overloaded, TransformError, TransformFailed, TransformTimeout
from service.transformer import TransformService


class ServingFactory:
    """
    A mixin for the factories of server protocols: it refuses a connection
    over the caps of its L{Connections} before building a protocol for it,
    and counts the connections it serves, in the registry and for its
    observer.

    @ivar connections: the gateway's connections, shared by its factories.
    @ivar observer: told what this factory's protocol serves.
    """

    refusalLog = Logger()
    connections: Connections
    observer: IServerObserver
    protocolName = "?"

    def serve(self, connections: Connections | None, observer: IServerObserver | None) -> None:
        """
        Set L{connections} (by default, a registry of this factory's own
        with no caps) and L{observer} (by default, one that forgets).
        """
        self.connections = connections if connections is not None else Connections()
        self.observer = observer if observer is not None else UNOBSERVED

    def refused(self, addr: IAddress) -> bool:
        """
        Whether a connection from C{addr} is over a cap (or the gateway is
        draining): if so, it is counted and logged, and is to be closed at
        once.
        """
        reason = self.connections.refusal(peerOf(addr))
        if reason is None:
            return False
        self.observer.connectionRefused(reason)
        self.refusalLog.debug(
            "{protocol} {peer}: connection refused: {reason}",
            protocol=self.protocolName,
            peer=describeAddress(addr),
            reason=reason,
        )
        return True

    def opened(self, connection: IDrainable, peer: str) -> None:
        """
        C{connection}, from the client address C{peer}, is served.
        """
        self.connections.add(connection, peer)
        self.observer.connectionOpened()

    def closed(self, connection: IDrainable) -> None:
        """
        C{connection} is gone.
        """
        self.connections.remove(connection)
        self.observer.connectionClosed()


class TransformServerFactory(ServingFactory, Factory):
    """
    A factory of server protocols over the shared L{TransformService}; a
    subclass names its C{protocol}.

    @ivar service: the shared transform service.
    @ivar clock: schedules the idle timeouts, and times requests.
    @ivar idleTimeout: seconds a connection may stay silent while it owes
        the server nothing (each protocol says exactly when).
    @ivar refusals: the refusals of its connections, for L{logRefusal};
        what it has not written yet is summed up when the factory stops.
    """

    noisy = False

    def __init__(
        self,
        service: TransformService,
        clock: IReactorTime,
        idleTimeout: float = 30.0,
        connections: Connections | None = None,
        observer: IServerObserver | None = None,
    ) -> None:
        """
        @param connections: the gateway's connections, with their caps.
        @param observer: told what this protocol serves.
        """
        self.service = service
        self.clock = clock
        self.idleTimeout = idleTimeout
        self.refusals = Refusals(clock)
        self.serve(connections, observer)

    def stopFactory(self) -> None:
        self.refusals.flush()

    def buildProtocol(self, addr: IAddress) -> Protocol | None:
        """
        A protocol for the connection from C{addr}, or C{None} (close it)
        if it is over a cap.
        """
        if self.refused(addr):
            return None
        return self.makeProtocol(addr)

    def makeProtocol(self, addr: IAddress) -> Protocol:
        """
        The protocol of an accepted connection.
        """
        return Factory.buildProtocol(self, addr)


class ForbiddenOrigin(TransformError):
    """
    A page whose origin L{protocols.origins} does not allow asked the web
    face (a WebSocket handshake, a C{POST}); not an error of the service's,
    only logged as its refusals are.
    """

    name = "forbidden-origin"


def refusalLevel(error: TransformError) -> LogLevel:
    """
    How loudly to log a request refused with C{error}: a warning when the
    gateway could not serve a good request (the transform failed, timed
    out, or the gateway is overloaded), for information when the client
    asked for something wrong.
    """
    if isinstance(error, (TransformFailed, TransformTimeout, Overloaded)):
        return LogLevel.warn
    return LogLevel.info


@dataclass
class _Kind:
    """
    What L{Refusals} knows of one kind of refusal.

    @ivar tokens: how many lines may be written now (a token bucket).
    @ivar updated: when C{tokens} was last brought up to date.
    @ivar level: the level of its lines, and of their summary.
    @ivar skipped: refusals not written since C{since}.
    @ivar summary: the call that will sum them up.
    """

    tokens: float
    updated: float
    level: LogLevel
    skipped: int = 0
    since: float = 0.0
    summary: IDelayedCall | None = None


class Refusals:
    """
    The refusals of a listener, logged without flooding the log: for each
    kind (protocol and error name), L{burst} lines at once, then at most
    L{perSecond} a second; the refusals not written are summed up in one
    line L{period} seconds after the first of them::

        netstring: 1,234 more 'overloaded' refusals in the last 10 s

    or when the listener stops (L{flush}), whichever comes first.

    L{admit} sees every refusal: the place to count them.

    @ivar clock: measures the rates and schedules the summaries.
    """

    #: Lines written at once for one kind.
    burst = 5
    #: Lines a second for one kind, after the burst.
    perSecond = 2.0
    #: Seconds between the first refusal not written and its summary.
    period = 10.0

    log = Logger()

    def __init__(self, clock: IReactorTime) -> None:
        self.clock = clock
        self._kinds: dict[tuple[str, str], _Kind] = {}

    def admit(self, protocol: str, error: TransformError) -> bool:
        """
        Take note of a request refused with C{error} over C{protocol}.

        @return: whether to write its line.
        """
        now = self.clock.seconds()
        key = (protocol, error.name)
        kind = self._kinds.get(key)
        if kind is None:
            kind = self._kinds[key] = _Kind(tokens=self.burst, updated=now, level=refusalLevel(error))
        kind.tokens = min(self.burst, kind.tokens + (now - kind.updated) * self.perSecond)
        kind.updated = now
        if kind.tokens >= 1:
            kind.tokens -= 1
            return True
        if not kind.skipped:
            kind.since = now
            kind.summary = self.clock.callLater(self.period, self._summarize, key)
        kind.skipped += 1
        return False

    def _summarize(self, key: tuple[str, str]) -> None:
        kind = self._kinds[key]
        protocol, error = key
        self.log.emit(
            kind.level,
            "{protocol}: {count:,} more {error!r} refusals in the last {seconds:.3g} s",
            protocol=protocol,
            error=error,
            count=kind.skipped,
            seconds=self.clock.seconds() - kind.since,
        )
        kind.skipped = 0
        kind.summary = None

    def flush(self) -> None:
        """
        Sum up now the refusals not written yet.
        """
        for key, kind in self._kinds.items():
            if kind.summary is not None:
                kind.summary.cancel()
                self._summarize(key)


def logRefusal(
    log: Logger, error: TransformError, format: str, refusals: Refusals | None = None, **fields: object
) -> None:
    """
    Log a request refused with C{error}, at L{refusalLevel}.  C{format} may
    use C{{error}} (the error's name) and C{{reason}} (its message) besides
    C{fields}.

    @param refusals: the listener's L{Refusals}, which may leave the line
        out; C{fields} must then name the C{protocol}.
    """
    if refusals is not None and not refusals.admit(str(fields.get("protocol", "")), error):
        return
    log.emit(refusalLevel(error), format, error=error.name, reason=error.message, **fields)


def lostToAnError(reason: Failure) -> bool:
    """
    Whether a client's connection was lost to an error of its own rather
    than closed or reset by the server (C{ConnectionDone},
    C{ConnectionLost}): a TLS handshake that failed, say, which the client
    reports rather than its usual "closed without a reply".
    """
    return not reason.check(ConnectionDone, ConnectionLost)


#: The longest answer the clients accept from an upstream by default: an
#: answer announced as longer is refused as soon as its length is known.
MAX_REPLY_BYTES = 64 * 2**20


class ConnectionPerCall:
    """
    The base of the clients that open one connection per call and close it
    when the call is over: each exchange runs under the client's deadline,
    and since they keep nothing open between calls, releasing them has
    nothing to do.  It gives them the C{disconnect()} of the clients that do
    keep a connection open (the AMP client), so that whoever is done with
    any client releases it the same way.

    @ivar timeout: seconds for each exchange, connecting included.
    """

    def __init__(self, clock: IReactorTime, timeout: float = 10.0) -> None:
        """
        @param clock: measures C{timeout}.
        @param timeout: seconds for each exchange, connecting included.
        """
        self.timeout = timeout
        self._clock = clock

    def exchange(self, steps: Coroutine[Any, Any, str]) -> "Deferred[str]":
        """
        Run one call's C{steps}, failing with L{TransformTimeout} (C{no
        reply within ...}) and dropping its connection if they take longer
        than L{timeout}.
        """
        return withDeadline(Deferred.fromCoroutine(steps), self.timeout, self._clock, "no reply")

    def disconnect(self) -> "Deferred[None]":
        """
        Release the client: nothing to close, since each call's connection
        closes when the call is over; calls still in flight carry on.

        @return: a L{Deferred} that has already fired.
        """
        return succeed(None)
