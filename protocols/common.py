"""
What the protocol adapters do the same way: the factory that hands the
shared service to each connection, and how loudly to log a refused request.
"""

from twisted.internet.interfaces import IReactorTime
from twisted.internet.protocol import Factory
from twisted.logger import LogLevel

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


def refusalLevel(error: TransformError) -> LogLevel:
    """
    The level at which to log a request refused with C{error}: a warning
    when the gateway could not serve a good request (the transform failed,
    timed out, or the gateway is overloaded), for information when the
    client asked for something wrong.
    """
    if isinstance(error, (TransformFailed, TransformTimeout, Overloaded)):
        return LogLevel.warn
    return LogLevel.info
