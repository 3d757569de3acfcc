"""
Asynchronous transform clients, chosen by the scheme of a server URL (see
L{gateway.schemes}): what the poetry client and the upstream transforms
talk to other servers with.  Every client provides
L{protocols.interfaces.ITransformClient}.
"""

from twisted.internet.error import ConnectionRefusedError
from twisted.python.failure import Failure

from gateway.schemes import SCHEMES
from gateway.urls import ServerURL
from protocols.interfaces import ITransformClient
from service.errors import TransformError


def transformClient(reactor, server: ServerURL, timeout: float = 10.0) -> ITransformClient:
    """
    A client for C{server}, over the protocol its scheme names.

    @param timeout: seconds each exchange may take, connecting included.
    @raise ValueError: if no client speaks that scheme.
    """
    try:
        scheme = SCHEMES[server.scheme]
    except KeyError:
        raise ValueError(f"the {server.scheme}:// scheme has no client; use {', '.join(SCHEMES)}") from None
    return scheme.makeClient(reactor, server, timeout)


def describeFailure(failure: Failure) -> str:
    """
    Why a client's call (or any connection) failed, in a few words for a
    user: the error's wire name and message for the errors of
    L{service.errors}, C{connection refused}, or the error's own message.
    """
    if failure.check(TransformError):
        return f"{failure.value.name}: {failure.value.message}"
    if failure.check(ConnectionRefusedError):
        return "connection refused"
    return failure.getErrorMessage()
