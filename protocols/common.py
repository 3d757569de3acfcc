"""
What the protocol adapters do the same way: the factory that hands the
shared service to each connection, how loudly to log a refused request, and
releasing a client that keeps no connection open.
"""

from collections.abc import Coroutine
from typing import Any

from twisted.internet.defer import Deferred, succeed
from twisted.internet.interfaces import IReactorTime
from twisted.internet.protocol import Factory
from twisted.logger import Logger, LogLevel

from service.deadline import withDeadline
from service.errors import Overloaded, TransformError, TransformFailed, TransformTimeout
from service.transformer import TransformService


class TransformServerFactory(Factory):
    """
    A factory of server protocols over the shared L{TransformService}; a
    subclass names its C{protocol}.

    @ivar service: the shared transform service.
    @ivar clock: schedules the idle timeouts.
    @ivar idleTimeout: seconds a connection may stay silent while it owes
        the server nothing (each protocol says exactly when).
    """

    noisy = False

    def __init__(self, service: TransformService, clock: IReactorTime, idleTimeout: float = 30.0) -> None:
        self.service = service
        self.clock = clock
        self.idleTimeout = idleTimeout


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
