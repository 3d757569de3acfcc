"""
Listeners that say where they listen: Twisted's
L{StreamServerEndpointService}, with a name, a log line and a way to wait
until it listens.
"""

from twisted.application.internet import StreamServerEndpointService
from twisted.application.service import MultiService
from twisted.internet.defer import CancelledError, Deferred, fail, succeed
from twisted.internet.interfaces import IListeningPort, IStreamServerEndpoint
from twisted.internet.protocol import Factory
from twisted.logger import Logger
from twisted.python.failure import Failure
from zope.interface import implementer

from protocols.addresses import describeAddress


@implementer(IStreamServerEndpoint)
class _ReportingEndpoint:
    """
    An endpoint that tells a L{ListeningService} how listening went, on the
    very L{Deferred} its own endpoint returned, so that the service can
    still cancel it.
    """

    def __init__(self, endpoint: IStreamServerEndpoint, service: "ListeningService") -> None:
        self.endpoint = endpoint
        self.service = service

    def listen(self, factory: Factory) -> "Deferred[IListeningPort | None]":
        return self.endpoint.listen(factory).addCallbacks(self.service._listening, self.service._cannotListen)


class ListeningService(StreamServerEndpointService):
    """
    Listen with a factory on an endpoint while running, and log the address
    actually bound (so C{tcp:0} tells which port it got) as::

        <name> listening on <host>:<port>

    Failing to listen is logged as one line, C{<name> cannot listen:
    <reason>}, and reported by L{whenListening}.  Stopping the service while
    it is still setting up to listen cancels that, as
    L{StreamServerEndpointService} does.

    @ivar port: the listening port while listening, else C{None}.
    """

    log = Logger()

    def __init__(self, name: str, endpoint: IStreamServerEndpoint, factory: Factory) -> None:
        super().__init__(_ReportingEndpoint(endpoint, self), factory)
        self.setName(name)
        self.port: IListeningPort | None = None
        self._failure: Failure | None = None
        self._waiting: list[Deferred[IListeningPort]] = []

    def _listening(self, port: IListeningPort) -> IListeningPort:
        self.port = port
        self.log.info(
            "{name} listening on {address}", name=self.name, address=describeAddress(port.getHost())
        )
        self._notify(succeed, port)
        return port

    def _cannotListen(self, failure: Failure) -> None:
        """
        Keep and report why it cannot listen; the failure is handled here,
        so that it is logged once, as one line.
        """
        self._failure = failure
        if not failure.check(CancelledError):
            self.log.error("{name} cannot listen: {reason}", name=self.name, reason=failure.getErrorMessage())
        self._notify(fail, failure)

    def _notify(self, outcome, result) -> None:
        waiting, self._waiting = self._waiting, []
        for waiter in waiting:
            outcome(result).chainDeferred(waiter)

    def whenListening(self) -> "Deferred[IListeningPort]":
        """
        A new L{Deferred} firing with the listening port once there is one,
        or failing with the reason there cannot be (L{CancelledError} if the
        service stopped first).
        """
        if self.port is not None:
            return succeed(self.port)
        if self._failure is not None:
            return fail(self._failure)
        waiter: Deferred[IListeningPort] = Deferred()
        self._waiting.append(waiter)
        return waiter

    def stopService(self) -> "Deferred[None]":
        self.port = None
        return super().stopService()


def listeners(root: MultiService) -> list[ListeningService]:
    """
    The listening services of a tree (made by L{gateway.server.makeService}
    or L{gateway.poetryserver.makePoetryService}).
    """
    return [child for child in root if isinstance(child, ListeningService)]
