"""
A service that listens on an endpoint while it runs and says where.
"""

from twisted.application.service import Service
from twisted.internet.defer import Deferred, fail, succeed
from twisted.internet.interfaces import IListeningPort, IStreamServerEndpoint
from twisted.internet.protocol import Factory
from twisted.logger import Logger
from twisted.python.failure import Failure

from protocols.addresses import describeAddress


class ListeningService(Service):
    """
    Listen with a factory on an endpoint while running, and log the address
    actually bound (so C{tcp:0} tells which port it got) as::

        <name> listening on <host>:<port>

    Failing to listen is logged as an error and reported by
    L{whenListening}.

    @ivar endpoint: where to listen.
    @ivar factory: the protocol factory served there.
    @ivar port: the listening port once listening, else C{None}.
    """

    log = Logger()

    def __init__(self, name: str, endpoint: IStreamServerEndpoint, factory: Factory) -> None:
        self.setName(name)
        self.endpoint = endpoint
        self.factory = factory
        self.port: IListeningPort | None = None
        self._failure: Failure | None = None
        self._waiting: list[Deferred[IListeningPort]] = []

    def startService(self) -> None:
        super().startService()
        self.endpoint.listen(self.factory).addCallbacks(self._listening, self._cannotListen)

    def _listening(self, port: IListeningPort) -> None:
        self.port = port
        self.log.info(
            "{name} listening on {address}", name=self.name, address=describeAddress(port.getHost())
        )
        self._notify(succeed, port)

    def _cannotListen(self, failure: Failure) -> None:
        self._failure = failure
        self.log.error("{name} cannot listen: {reason}", name=self.name, reason=failure.getErrorMessage())
        self._notify(fail, failure)

    def _notify(self, outcome, result) -> None:
        waiting, self._waiting = self._waiting, []
        for waiter in waiting:
            outcome(result).chainDeferred(waiter)

    def whenListening(self) -> "Deferred[IListeningPort]":
        """
        A new L{Deferred} firing with the listening port once there is one,
        or failing with the reason there cannot be.
        """
        if self.port is not None:
            return succeed(self.port)
        if self._failure is not None:
            return fail(self._failure)
        waiter: Deferred[IListeningPort] = Deferred()
        self._waiting.append(waiter)
        return waiter

    def stopService(self) -> "Deferred[None] | None":
        super().stopService()
        port, self.port = self.port, None
        return port.stopListening() if port is not None else None
