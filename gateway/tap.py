"""
The target of the C{xform-gateway} twistd plugin:
C{twistd -n xform-gateway --netstring tcp:10001}.
"""

from twisted.internet import reactor

from gateway.server import ServeOptions as Options
from gateway.server import makeService as _makeService

__all__ = ["Options", "makeService"]


def makeService(options: Options):
    """
    The gateway's service tree, on the global reactor.
    """
    return _makeService(options, reactor)
