"""
The open connections of a gateway, over all its listeners: the caps on how
many it holds (in all, and per client address), and the drain that ends
them gracefully when the gateway stops.

Every server protocol of the gateway registers its connection here when it
is made and removes it when it is lost; its factory asks L{refusal} before
it builds one, and closes the connection at once (HTTP: answers 503 first)
when there is a reason to refuse it.

Twisted's C{twisted.protocols.policies} has C{LimitTotalConnectionsFactory}
and C{LimitConnectionsByPeer}, which put a wrapping protocol between the
transport and the real protocol of every connection, so that every read and
write of every connection pays an extra call; C{LimitConnectionsByPeer}
also still reads addresses as tuples, which they no longer are.  Counting
in the factories and the protocols themselves costs nothing per byte, and
the same registry knows what to drain.
"""

from twisted.internet.defer import Deferred, succeed
from twisted.internet.interfaces import ITransport
from twisted.logger import Logger
from zope.interface import Attribute, Interface

#: Seconds a connection that has sent nothing yet is given, once the gateway
#: drains, to send its request: a client that connected just before, and
#: whose request is on its way, is served rather than cut.
FIRST_BYTES_GRACE = 1.0

#: The reasons L{Connections.refusal} gives.
TOO_MANY = "connections"
TOO_MANY_FROM_PEER = "connections-per-peer"
DRAINING = "draining"


class IDrainable(Interface):
    """
    A connection the gateway can end gracefully.
    """

    transport: ITransport = Attribute("The connection's transport, to abort it when the drain is over.")

    def drain() -> None:
        """
        The gateway is stopping: finish what is in flight, take on nothing
        that would outlast it, and close the connection once nothing is
        left in flight (at once if nothing is, but after
        L{FIRST_BYTES_GRACE} if the client has sent nothing yet).  Called
        once.
        """


class Connections:
    """
    The connections a gateway serves, by client address.

    @ivar maxConnections: how many it may hold at once, or C{None} for no
        cap.
    @ivar maxPerPeer: how many one client address may hold at once, or
        C{None} for no cap.
    @ivar draining: whether the gateway is stopping.
    """

    log = Logger()

    def __init__(self, maxConnections: int | None = None, maxPerPeer: int | None = None) -> None:
        self.maxConnections = maxConnections
        self.maxPerPeer = maxPerPeer
        self.draining = False
        self._peers: dict[IDrainable, str] = {}
        self._byPeer: dict[str, int] = {}
        self._whenEmpty: list[Deferred[None]] = []

    def __len__(self) -> int:
        return len(self._peers)

    def full(self) -> bool:
        """
        Whether the gateway holds as many connections as it may.
        """
        return self.maxConnections is not None and len(self._peers) >= self.maxConnections

    def refusal(self, peer: str) -> str | None:
        """
        Why a new connection from C{peer} must be refused, if it must:
        L{DRAINING}, L{TOO_MANY} or L{TOO_MANY_FROM_PEER}; else C{None}.
        """
        if self.draining:
            return DRAINING
        if self.full():
            return TOO_MANY
        if self.maxPerPeer is not None and self._byPeer.get(peer, 0) >= self.maxPerPeer:
            return TOO_MANY_FROM_PEER
        return None

    def add(self, connection: IDrainable, peer: str) -> None:
        """
        Count C{connection}, from the client address C{peer}; during a
        drain it is told to drain at once.
        """
        self._peers[connection] = peer
        self._byPeer[peer] = self._byPeer.get(peer, 0) + 1
        if self.draining:
            connection.drain()

    def replace(self, old: IDrainable, new: IDrainable) -> None:
        """
        C{new} serves the connection C{old} served (a WebSocket taking over
        its HTTP channel): it keeps the same place in the counts.
        """
        peer = self._peers.pop(old, None)
        if peer is None:
            return
        self._peers[new] = peer
        if self.draining:
            new.drain()

    def remove(self, connection: IDrainable) -> None:
        """
        Forget C{connection}, which is closed; forgetting one not counted,
        or twice, does nothing.
        """
        peer = self._peers.pop(connection, None)
        if peer is None:
            return
        left = self._byPeer[peer] - 1
        if left:
            self._byPeer[peer] = left
        else:
            del self._byPeer[peer]
        if not self._peers:
            waiting, self._whenEmpty = self._whenEmpty, []
            for waiter in waiting:
                waiter.callback(None)

    def drain(self) -> None:
        """
        Refuse every new connection from now on, and tell each open one to
        drain.
        """
        self.draining = True
        for connection in list(self._peers):
            try:
                connection.drain()
            except Exception:
                self.log.failure("while draining {connection!r}; aborting it", connection=connection)
                connection.transport.abortConnection()

    def abortAll(self) -> None:
        """
        Abort every connection still open: the drain is over.
        """
        for connection in list(self._peers):
            if connection.transport is None:  # handed over to a protocol not counted
                self.remove(connection)
            else:
                connection.transport.abortConnection()

    def whenEmpty(self) -> "Deferred[None]":
        """
        A L{Deferred} firing once no connection is left.
        """
        if not self._peers:
            return succeed(None)
        waiter: Deferred[None] = Deferred()
        self._whenEmpty.append(waiter)
        return waiter
