"""
What every protocol adapter does the same way: choosing how loudly to log a
refused request, and releasing a client that keeps no connection open.
"""

from twisted.internet.defer import Deferred, succeed
from twisted.logger import LogLevel

from service.errors import Overloaded, TransformError, TransformFailed, TransformTimeout


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
