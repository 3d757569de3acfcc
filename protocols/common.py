"""
What every protocol adapter does the same way: naming the peer in log
lines, and choosing how loudly to log a refused request.
"""

from twisted.logger import LogLevel

from service.errors import Overloaded, TransformError, TransformFailed, TransformTimeout


def describePeer(address: object) -> str:
    """
    C{host:port} for an IP address, or the address's own text otherwise.
    """
    host, port = getattr(address, "host", None), getattr(address, "port", None)
    return f"{host}:{port}" if host is not None else str(address)


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
