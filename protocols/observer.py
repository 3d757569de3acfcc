"""
What the server half of each protocol reports as it serves: connections
opened, closed and refused, bytes in and out, requests served and how they
ended.  The protocols call an L{IServerObserver} and know nothing of what it
does with the news; L{gateway.metrics} counts it for Prometheus, and
L{UNOBSERVED}, the default, forgets it.

An observer belongs to one protocol (the gateway makes one per protocol,
its labels bound once), so its methods take no protocol name.  Every method
is called in the reactor thread, and must be cheap: it runs for every
request and every read and write.
"""

from collections.abc import Callable

from twisted.internet.interfaces import IReactorTime
from zope.interface import Interface, implementer

#: The outcome of a request that was answered with a poem; the others are
#: the names of the service's errors (C{unknown-transform}, ...).
OK = "ok"


class IServerObserver(Interface):
    """
    Told what one protocol's server does.
    """

    def connectionOpened() -> None:
        """
        A connection was accepted and is served.
        """

    def connectionClosed() -> None:
        """
        A connection served is gone.
        """

    def connectionRefused(limit: str) -> None:
        """
        A connection was closed as soon as it was accepted, because of
        C{limit}: C{"connections"} (the gateway holds as many as it may),
        C{"connections-per-peer"} (its address does) or C{"draining"}.
        """

    def idleTimedOut() -> None:
        """
        A connection was closed because its client stayed silent too long.
        """

    def received(size: int) -> None:
        """
        C{size} bytes arrived on a connection.
        """

    def sent(size: int) -> None:
        """
        C{size} bytes were written to a connection.
        """

    def requestServed(transform: str, outcome: str, seconds: float) -> None:
        """
        A transform request was answered (or refused) after C{seconds}.

        @param transform: the name the client asked for, as it asked: a
            transform, a pipeline, or anything at all; the observer bounds
            what it keeps of it.
        @param outcome: L{OK}, or the name of the error answered.
        """


@implementer(IServerObserver)
class Unobserved:
    """
    An observer that forgets everything: what a server reports to when
    nobody asked to know.
    """

    def connectionOpened(self) -> None:
        pass

    def connectionClosed(self) -> None:
        pass

    def connectionRefused(self, limit: str) -> None:
        pass

    def idleTimedOut(self) -> None:
        pass

    def received(self, size: int) -> None:
        pass

    def sent(self, size: int) -> None:
        pass

    def requestServed(self, transform: str, outcome: str, seconds: float) -> None:
        pass


#: The observer of servers that were given none.
UNOBSERVED = Unobserved()


def stopwatch(clock: IReactorTime | None) -> Callable[[], float]:
    """
    What times requests for an observer: C{clock}'s seconds, or always 0
    without a clock.
    """
    return clock.seconds if clock is not None else lambda: 0.0
