"""
Listeners that say where they listen, and a tree of them that starts like
a program: all of them listen, or it stops.

L{ListeningService} is Twisted's L{StreamServerEndpointService} with a
name, a log line and a way to wait until it listens.  L{ListeningTree} is
the root of C{xform serve}, of the twistd plugin and of C{xform
poetry-server}: if one of its listeners cannot listen when it starts, it
raises L{CannotListen}, which ends C{twist}, C{twistd} and C{xform serve}
alike with one line and exit status 1.
"""

from twisted.application.internet import StreamServerEndpointService
from twisted.application.service import MultiService
from twisted.internet.defer import CancelledError, Deferred, FirstError, fail, gatherResults, succeed
from twisted.internet.error import ReactorNotRunning
from twisted.internet.interfaces import IListeningPort, IReactorCore, IStreamServerEndpoint
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

    and, once stopped, C{<name> no longer listening on <host>:<port>}.
    Failing to listen is kept in L{failure} and reported by
    L{whenListening}; saying so is left to the owner (L{ListeningTree}).
    Stopping the service while it is still setting up to listen cancels
    that, as L{StreamServerEndpointService} does.

    @ivar port: the listening port while listening, else C{None}.
    @ivar failure: why it cannot listen, once known (a L{CancelledError}
        if it stopped first), else C{None}.
    @ivar quiet: whether it leaves out its log lines (a worker's listener
        on another worker's socket, L{gateway.workers}).
    """

    log = Logger()

    def __init__(
        self, name: str, endpoint: IStreamServerEndpoint, factory: Factory, quiet: bool = False
    ) -> None:
        super().__init__(_ReportingEndpoint(endpoint, self), factory)
        self.setName(name)
        self.quiet = quiet
        self.port: IListeningPort | None = None
        self.failure: Failure | None = None
        self._waiting: list[Deferred[IListeningPort]] = []

    def _listening(self, port: IListeningPort) -> IListeningPort:
        self.port = port
        if not self.quiet:
            self.log.info(
                "{name} listening on {address}", name=self.name, address=describeAddress(port.getHost())
            )
        self._notify(succeed, port)
        return port

    def _cannotListen(self, failure: Failure) -> None:
        """
        Keep and report why it cannot listen; the failure is handled here,
        so that Twisted does not log it as well.
        """
        self.failure = failure
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
        if self.failure is not None:
            return fail(self.failure)
        waiter: Deferred[IListeningPort] = Deferred()
        self._waiting.append(waiter)
        return waiter

    def stopService(self) -> "Deferred[None]":
        port, self.port = self.port, None
        stopped = super().stopService()
        if port is not None and not self.quiet:
            address = describeAddress(port.getHost())
            stopped.addCallback(
                lambda _: self.log.info(
                    "{name} no longer listening on {address}", name=self.name, address=address
                )
            )
        return stopped


class CannotListen(SystemExit, Exception):
    """
    A listener of a L{ListeningTree} cannot listen.

    It is a C{SystemExit} whose code is its one line, so that wherever
    nothing catches it -- C{twist}, C{twistd -n}, L{task.react
    <twisted.internet.task.react>} under C{xform serve} -- Python prints that
    line and exits with status 1; and it is an C{Exception}, so that
    C{twistd} as a daemon, which reports only those from its start to the
    parent process that waits for it and then removes its pid file, does
    so.

    @ivar name: the listener's name.
    @ivar reason: why it cannot listen.
    """

    def __init__(self, name: str, reason: str) -> None:
        super().__init__(f"{name} cannot listen: {reason}")
        self.name = name
        self.reason = reason


class ListeningTree(MultiService):
    """
    The root of a program's services: once started, all of its listeners
    listen, or it stops.

    Starting it (L{privilegedStartService} under twistd, else
    L{startService}) starts every child; if a listener then knows it cannot
    listen -- a port in use, a certificate that cannot be read: every
    endpoint of Twisted's knows at once -- the tree stops what it started and
    raises L{CannotListen}.  An endpoint that finds out later (one that
    listens asynchronously) has the tree log that line as an error and
    stop the reactor: there is no public way to give twistd an exit status
    once its reactor runs (Twisted issue #11335), so the process ends with
    status 0 under twistd, 1 under C{xform serve}, which waits for
    L{whenListening}.

    @ivar reactor: stopped when a listener finds out late that it cannot
        listen.
    """

    log = Logger()

    def __init__(self, reactor: IReactorCore) -> None:
        super().__init__()
        self.reactor = reactor

    def privilegedStartService(self) -> None:
        super().privilegedStartService()
        self._raiseIfCannotListen()

    def startService(self) -> None:
        super().startService()
        self._raiseIfCannotListen()
        self.whenListening().addErrback(self._cannotListenLater)

    def _raiseIfCannotListen(self) -> None:
        for listener in listeners(self):
            if listener.failure is not None and not listener.failure.check(CancelledError):
                # Nothing was served: the children stop as a plain
                # MultiService's do, without what a subclass does on a
                # normal stop (the gateway's drain).
                MultiService.stopService(self)
                raise CannotListen(listener.name, listener.failure.getErrorMessage())

    def whenListening(self) -> "Deferred[None]":
        """
        A L{Deferred} firing once every listener listens, or failing with
        L{CannotListen} for the first that cannot (L{CancelledError} if the
        tree stopped first).
        """

        def cannotListen(failure: Failure) -> Failure:
            failure.trap(FirstError)
            reason = failure.value.subFailure
            if reason.check(CancelledError):
                return reason
            name = listeners(self)[failure.value.index].name
            return Failure(CannotListen(name, reason.getErrorMessage()))

        waiting = gatherResults(
            [listener.whenListening() for listener in listeners(self)], consumeErrors=True
        )
        return waiting.addCallbacks(lambda _: None, cannotListen)

    def _cannotListenLater(self, failure: Failure) -> None:
        if failure.check(CancelledError):
            return  # stopped before it listened
        self.log.error("{name} cannot listen: {reason}", name=failure.value.name, reason=failure.value.reason)
        try:
            self.reactor.stop()
        except ReactorNotRunning:
            pass


def listeners(root: MultiService) -> list[ListeningService]:
    """
    The listening services of a tree (made by L{gateway.server.makeService}
    or L{gateway.poetryserver.makePoetryService}).
    """
    return [child for child in root if isinstance(child, ListeningService)]
