"""
Deadlines for Deferreds, reported as L{TransformTimeout}.
"""

from typing import TypeVar

from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IReactorTime
from twisted.python.failure import Failure

from service.errors import TransformTimeout

_T = TypeVar("_T")


def withDeadline(
    deferred: "Deferred[_T]", seconds: float, clock: IReactorTime, waitingFor: str
) -> "Deferred[_T]":
    """
    Cancel C{deferred} if it has not fired after C{seconds}, and fail it then
    with L{TransformTimeout}, whatever failure the cancelled operation chose
    to report (a C{HostnameEndpoint} cancelled while it resolves a name says
    C{DNSLookupError}).  Cancelling it first still fails it with
    L{CancelledError}, as usual.

    @param waitingFor: what was awaited, for the error message ("no reply").
    @return: C{deferred}.
    """

    def timedOut(result: "_T | Failure", timeout: float) -> "_T | Failure":
        if isinstance(result, Failure):
            raise TransformTimeout(f"{waitingFor} within {timeout:g} seconds")
        return result

    return deferred.addTimeout(seconds, clock, timedOut)
