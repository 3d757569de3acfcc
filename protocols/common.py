"""
What the protocol adapters do the same way: the factory that hands the
shared service to each connection, how loudly to log a refused request,
listing the transforms as JSON (WebSocket and HTTP), and releasing a client
that keeps no connection open.
"""

from twisted.internet.defer import Deferred, succeed
from twisted.internet.interfaces import IReactorTime
from twisted.internet.protocol import Factory
from twisted.logger import Logger, LogLevel

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


def transformsListing(service: TransformService) -> list[dict[str, str]]:
    """
    The service's transforms as the WebSocket and HTTP faces list them, in
    catalogue order: C{[{"name": ..., "description": ...}, ...]}.
    """
    return [{"name": entry.name, "description": entry.description} for entry in service.transforms()]


def listedTransforms(listing: object) -> list[tuple[str, str]]:
    """
    The C{(name, description)} of each transform of a listing made by
    L{transformsListing} and decoded from JSON.

    @raise ValueError: if C{listing} is not such a list.
    """
    if not isinstance(listing, list) or not all(
        isinstance(entry, dict)
        and isinstance(entry.get("name"), str)
        and isinstance(entry.get("description"), str)
        for entry in listing
    ):
        raise ValueError(f"not a list of transforms: {str(listing)[:200]!r}")
    return [(entry["name"], entry["description"]) for entry in listing]


class ConnectionPerCall:
    """
    A mixin for the clients that open one connection per call and close it
    when the call is over: they keep nothing open between calls, so
    releasing them has nothing to do.  It gives them the C{disconnect()} of
    the clients that do keep a connection open (the AMP client), so that
    whoever is done with any client releases it the same way.
    """

    def disconnect(self) -> "Deferred[None]":
        """
        Release the client: nothing to close, since each call's connection
        closes when the call is over; calls still in flight carry on.

        @return: a L{Deferred} that has already fired.
        """
        return succeed(None)
