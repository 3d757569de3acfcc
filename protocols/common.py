"""
What every protocol adapter does the same way: choosing how loudly to log a
refused request.
"""

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
