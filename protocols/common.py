"""
What the protocol adapters do the same way: the factories that hand the
shared service, the connection caps and the observer to each connection,
how loudly to log a refused request, and releasing a client that keeps no
connection open.
"""

from collections.abc import Coroutine
from typing import Any

from twisted.internet.defer import Deferred, succeed
from twisted.internet.interfaces import IAddress, IReactorTime
from twisted.internet.protocol import Factory, Protocol
from twisted.logger import Logger, LogLevel

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
        self.serve(connections, observer)

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


def logRefusal(log: Logger, error: TransformError, format: str, **fields: object) -> None:
    """
    Log a request refused with C{error}: a warning when the gateway could
    not serve a good request (the transform failed, timed out, or the
    gateway is overloaded), for information when the client asked for
    something wrong.  C{format} may use C{{error}} (the error's name) and
    C{{reason}} (its message) besides C{fields}.
    """
    level = (
        LogLevel.warn if isinstance(error, (TransformFailed, TransformTimeout, Overloaded)) else LogLevel.info
    )
    log.emit(level, format, error=error.name, reason=error.message, **fields)


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
