"""
Stopping the gateway gracefully: the drain.

L{Gateway} is the root of the gateway's service tree.  Every runner --
C{xform serve}, C{twist xform-gateway}, C{twistd xform-gateway} -- stops
that tree before the reactor shuts down, and waits for the L{Deferred} its
C{stopService} returns; so the drain happens there, the same under each:

    0. with C{--drain-delay}, turn C{/readyz} unready and go on serving
       for that long, so that a load balancer's health checks see it and
       send new connections elsewhere before any is refused or reset;
    1. stop listening on every protocol's endpoint (a load balancer's new
       connections are refused, and it tries another replica), and turn
       C{/readyz} unready; the connections the kernel had already accepted
       for a listener are taken first, to be served rather than reset
       (those it accepts in the moment before the socket closes are
       reset: what step 0 is for);
    2. tell every open connection to drain (L{IDrainable}): it finishes
       what it has in flight, then closes -- WebSocket with 1001, HTTP
       with C{Connection: close}, idle ones at once;
    3. once none is left, or after the drain timeout, whichever comes
       first, abort the connections still open;
    4. stop the rest: the upstreams' clients and the C{--metrics}
       listener, which served the drain's progress until then.

The gateway takes SIGINT and SIGTERM from the reactor once it runs: the
first stops the reactor, which stops the tree as above, and the process
exits 0; a second one cuts the delay and the drain short at once (step 3
without the wait).
"""

import signal
import threading
from collections.abc import Iterable

from twisted.application.service import IService, Service
from twisted.internet.defer import Deferred, DeferredList, maybeDeferred
from twisted.internet.interfaces import IReadDescriptor
from twisted.logger import Logger

from gateway.listening import ListeningService, ListeningTree
from protocols.connections import Connections
from service.transformer import TransformService

#: What the drain ended with.
DRAINED, TIMED_OUT, CUT_SHORT = "drained", "timed out", "cut short"


class DrainingRoot:
    """
    A root service whose stop is a drain, L{_stop}, run once however often
    it is stopped, and which takes SIGINT and SIGTERM from the reactor once
    it runs (in the main thread only): the first stops the reactor, which
    stops the tree, which drains; a second one calls L{_cutShort}.  The
    gateway of one process (L{Gateway}) and the supervisor of its workers
    (L{gateway.workers.Supervisor}) are both one.

    @ivar reactor: the reactor stopped by the first signal.
    @ivar drainTimeout: seconds the drain may take, for the log.
    """

    log = Logger()
    reactor: object
    drainTimeout: float
    _signalled = False
    _stopping: "Deferred[None] | None" = None

    def stopService(self) -> "Deferred[None]":
        """
        Drain, once: a L{Deferred} firing when the drain is over (a failure
        of it is logged).
        """
        if self._stopping is None:
            self._stopping = Deferred.fromCoroutine(self._stop())
            self._stopping.addErrback(lambda failure: self.log.failure("while stopping", failure))
        return self._stopping

    async def _stop(self) -> None:
        """
        Drain, then stop every service.
        """
        raise NotImplementedError()

    def takeStopSignalsWhenRunning(self) -> None:
        """
        Take the signals once the reactor runs, since the reactor installs
        its own handlers as it starts.
        """
        self.reactor.callWhenRunning(self._takeStopSignals)

    def _takeStopSignals(self) -> None:
        if threading.current_thread() is not threading.main_thread():
            return
        for signum in (signal.SIGINT, signal.SIGTERM):
            signal.signal(signum, self._received)

    def _received(self, signum: int, frame: object) -> None:
        """
        The signal handler: the work is done in the reactor thread.
        """
        self.reactor.callFromThread(self._stopSignal, signal.Signals(signum).name)

    def _stopSignal(self, name: str) -> None:
        if not self._signalled:
            self._signalled = True
            self.log.info(
                "{signal}: stopping; draining the connections for up to {seconds:g} s",
                signal=name,
                seconds=self.drainTimeout,
            )
            self.reactor.stop()
            return
        self.log.warn("{signal} again: cutting the drain short", signal=name)
        self._cutShort()

    def _cutShort(self) -> None:
        """
        End the drain at once.
        """
        raise NotImplementedError()


class Gateway(DrainingRoot, ListeningTree):
    """
    The gateway's service tree; stopping it drains the connections.

    @ivar service: the shared transform service.
    @ivar connections: every connection the protocols serve.
    @ivar listeners: the protocols' listeners, stopped first.
    @ivar drainTimeout: seconds the connections have to finish once the
        gateway stops.
    @ivar drainDelay: seconds the gateway serves on, unready, once stopping
        and before its listeners close.
    @ivar metrics: what the gateway counts (a L{gateway.metrics.GatewayMetrics}),
        once L{gateway.server.makeService} has made it, else C{None}.
    """

    log = Logger()

    def __init__(
        self,
        reactor,
        service: TransformService,
        connections: Connections,
        drainTimeout: float,
        handleSignals: bool = True,
        drainDelay: float = 0.0,
    ) -> None:
        """
        @param handleSignals: take SIGINT and SIGTERM once the reactor runs
            (in the main thread only).
        @param drainDelay: seconds to go on serving, unready, once stopping
            and before the listeners close.
        """
        super().__init__(reactor)
        self.service = service
        self.connections = connections
        self.drainTimeout = drainTimeout
        self.drainDelay = drainDelay
        self.listeners: list[ListeningService] = []
        self.metrics = None
        self._handleSignals = handleSignals
        self._cutRequested = False
        self._endDelay: Deferred[None] | None = None
        self._endDrain: Deferred[str] | None = None

    def addListener(self, listener: ListeningService) -> None:
        """
        Add a protocol's listener: it stops before the drain starts.
        """
        self.listeners.append(listener)
        listener.setServiceParent(self)

    def readiness(self) -> list[str]:
        """
        Why the gateway is not ready for more work, if it is not: it is
        stopping, a listener does not listen (yet), or it is at its
        overload threshold -- as many requests in flight as C{--max-in-flight}
        (the next would be refused as overloaded) or as many connections as
        C{--max-connections}.
        """
        reasons = []
        if not self.running or self.connections.draining:
            reasons.append("stopping")
        reasons += [
            f"{listener.name} is not listening" for listener in self.listeners if listener.port is None
        ]
        limits = self.service.limits
        if self.service.inFlight >= limits.maxInFlight:
            reasons.append(f"{self.service.inFlight} requests in flight, the most it takes (--max-in-flight)")
        if self.connections.full():
            reasons.append(f"{len(self.connections)} connections open, the most it takes (--max-connections)")
        return reasons

    def startService(self) -> None:
        super().startService()
        if self._handleSignals:
            self.takeStopSignalsWhenRunning()

    def _cutShort(self) -> None:
        self._cutRequested = True
        if self._endDelay is not None and not self._endDelay.called:
            self._endDelay.callback(None)
        if self._endDrain is not None:
            self._end(CUT_SHORT)

    async def _stop(self) -> None:
        """
        Drain, then stop every service; see the module's docstring.
        """
        Service.stopService(self)
        if self.drainDelay and not self._cutRequested:
            self.log.info("unready; serving {seconds:g} s more before the drain", seconds=self.drainDelay)
            self._endDelay = Deferred()
            delay = self.reactor.callLater(self.drainDelay, self._endDelay.callback, None)
            await self._endDelay
            if delay.active():
                delay.cancel()
        self._endDrain = Deferred()
        for listener in self.listeners:
            if IReadDescriptor.providedBy(listener.port):
                listener.port.doRead()  # accept what waits in the backlog, which closing resets
        listening = stopAll(self.listeners)
        open = len(self.connections)
        self.connections.drain()
        self.log.info("stopped listening; draining {count} connections", count=open)
        self.connections.whenEmpty().addCallback(lambda _: self._end(DRAINED))
        timer = self.reactor.callLater(self.drainTimeout, self._end, TIMED_OUT)
        if self._cutRequested:  # a second signal came before the tree was stopped
            self._end(CUT_SHORT)
        how = await self._endDrain
        if timer.active():
            timer.cancel()
        if how != DRAINED:
            self.log.warn(
                "drain {how}; cutting the connections left ({count})", how=how, count=len(self.connections)
            )
            self.connections.abortAll()
            await self.connections.whenEmpty()
        else:
            self.log.info("drained: every connection is closed")
        await listening
        rest = stopAll(reversed([child for child in self if child not in self.listeners]))
        if how != CUT_SHORT:
            await rest

    def _end(self, how: str) -> None:
        if not self._endDrain.called:
            self._endDrain.callback(how)


def stopAll(services: Iterable[IService]) -> "Deferred[object]":
    """
    Stop C{services}, all at once; the L{Deferred} fires once each has
    stopped.
    """
    return DeferredList([maybeDeferred(child.stopService) for child in services], consumeErrors=True)
