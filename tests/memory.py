"""
A network in memory, on a fake clock: real servers and real clients, no
socket and no wall clock.

A L{MemoryNetwork} keeps a L{MemoryReactorClock} whose listeners and
connections it joins with L{twisted.test.iosim}: a server factory listens
on it (C{listenTCP}, or any TCP endpoint string through
C{serverFromString}), a client connects through it with any of Twisted's
TCP client endpoints (C{HostnameEndpoint}, as the clients of
L{gateway.clients} do), and L{MemoryNetwork.flush} makes each connection --
refused when nothing listens on its port -- and moves the bytes both ways
until nothing moves.  Time passes only when a test says so:
L{MemoryNetwork.run} flushes and moves the clock to each next timer in
turn until a L{Deferred} has its result, so a deadline of seconds fires at
once, and only after everything that could happen before it has happened.

Autobahn runs its WebSocket timers on txaio's event loop, the global
reactor unless told otherwise; L{MemoryNetwork.install} points txaio at
the network's clock for the length of a test, before any WebSocket factory
is made.
"""

import http.client
import itertools
from collections.abc import Callable
from io import BytesIO

import txaio
from treq.client import HTTPClient
from twisted.application.service import IService
from twisted.internet.address import IPv4Address
from twisted.internet.defer import Deferred, maybeDeferred
from twisted.internet.error import ConnectionRefusedError
from twisted.internet.interfaces import IListeningPort, IProtocolFactory
from twisted.internet.protocol import Factory, Protocol
from twisted.internet.testing import MemoryReactorClock
from twisted.python.failure import Failure
from twisted.test import iosim
from twisted.trial.unittest import SynchronousTestCase
from twisted.web.client import Agent
from zope.interface import implementer

from gateway.poetryserver import PoetryServerOptions, makePoetryService
from gateway.schemes import SCHEMES
from gateway.server import LISTENERS, ServeOptions, makeService
from protocols.http import httpClient

#: The host every server of the network listens on and every client comes from.
HOST = "127.0.0.1"

#: Where an in-memory gateway's listeners listen, by default.
GATEWAY = {"netstring": 10001, "amp": 10002, "web": 8080}

#: The fake seconds after which L{MemoryNetwork.run} stops waiting: longer
#: than any timeout of the code under test.
PATIENCE = 3600.0


@implementer(IListeningPort)
class _ListeningPort:
    """
    A port of L{_NetworkReactor}: stopping it removes its listener, so that
    connections to it are refused from then on.
    """

    def __init__(self, reactor: "_NetworkReactor", listener: tuple, address: IPv4Address) -> None:
        self._reactor = reactor
        self._listener = listener
        self._address = address

    def startListening(self) -> None:
        """
        It listens from the start.
        """

    def stopListening(self) -> None:
        if self._listener in self._reactor.tcpServers:
            self._reactor.tcpServers.remove(self._listener)

    def getHost(self) -> IPv4Address:
        return self._address


class _NetworkReactor(MemoryReactorClock):
    """
    A L{MemoryReactorClock} whose listening ports tell where they listen
    and can stop.  Like C{MemoryReactor}, it does not start or stop the
    factories (C{doStart}, C{doStop}): a web site would start its access
    log's timer, which never ends.
    """

    def listenTCP(self, port, factory, backlog=50, interface=""):
        listener = (port, factory, backlog, interface)
        self.tcpServers.append(listener)
        return _ListeningPort(self, listener, IPv4Address("TCP", interface or "0.0.0.0", port))


class MemoryNetwork:
    """
    Servers and clients joined in memory, on one fake clock.

    @ivar reactor: listens, connects and keeps the time: pass it wherever
        the code under test wants a reactor or a clock.
    @ivar pumps: the L{iosim.IOPump} of each connection not yet closed on
        both sides, oldest first.
    """

    def __init__(self) -> None:
        self.reactor = _NetworkReactor()
        self.pumps: list[iosim.IOPump] = []
        self._clientPorts = itertools.count(40000)

    def install(self, testCase) -> "MemoryNetwork":
        """
        Have txaio (so Autobahn) schedule its timers on L{reactor} until the
        end of C{testCase}.  Call it before making any WebSocket factory.
        """
        testCase.patch(txaio.config, "loop", self.reactor)
        return self

    def assertGlobalReactorUntouched(self, testCase):
        """
        A function asserting that the global reactor has no timer that it
        did not have now: one to call at the end of C{testCase}, to prove
        that the code under test kept to the network's clock.
        """
        from twisted.internet import reactor

        before = set(reactor.getDelayedCalls())

        def check() -> None:
            added = [call for call in reactor.getDelayedCalls() if call not in before]
            testCase.assertEqual(added, [], "timers on the global reactor")

        return check

    def listen(self, port: int, factory: IProtocolFactory) -> None:
        """
        Have C{factory} serve the connections to C{port}.
        """
        self.reactor.listenTCP(port, factory, interface=HOST)

    def stopListening(self, port: int) -> None:
        """
        Refuse the connections to C{port} from now on, whoever listens
        there; those already made stay open.
        """
        self.reactor.tcpServers[:] = [server for server in self.reactor.tcpServers if server[0] != port]

    def connectionsTo(self, port: int) -> list[iosim.IOPump]:
        """
        The open connections to C{port}.
        """
        return [pump for pump in self.pumps if pump.serverIO.getHost().port == port]

    def flush(self) -> None:
        """
        Make or refuse every connection asked for, and move the bytes of
        every connection (running what is due now) until nothing moves.
        """
        moved = True
        while moved:
            moved = self._connect()
            for pump in list(self.pumps):
                moved = pump.flush() or moved
                if pump.clientIO.disconnected and pump.serverIO.disconnected:
                    self.pumps.remove(pump)

    def run(self, result: Deferred, patience: float = PATIENCE) -> Deferred:
        """
        Flush, and move the clock to the next timer, again and again until
        C{result} has its result, nothing is left to happen, or
        C{patience} fake seconds have passed.

        @return: C{result}, for C{successResultOf} and the like.
        """
        done = []
        result.addBoth(lambda outcome: done.append(True) or outcome)
        self.runUntil(lambda: done, patience)
        return result

    def runUntil(self, condition: Callable[[], bool], patience: float = PATIENCE) -> bool:
        """
        Flush, and move the clock to the next timer, again and again until
        C{condition()} holds, nothing is left to happen, or C{patience}
        fake seconds have passed.

        @return: whether C{condition()} holds.
        """
        end = self.reactor.seconds() + patience
        self.flush()
        while not condition():
            timers = [call.getTime() for call in self.reactor.getDelayedCalls()]
            if not timers or min(timers) > end:
                return False
            self.reactor.advance(max(0.0, min(timers) - self.reactor.seconds()))
            self.flush()
        return True

    def kill(self, port: int) -> None:
        """
        What killing the process that listens on C{port} does: nothing
        listens there any more, and each connection to it is closed, as
        the system closes the sockets of a process that dies.
        """
        self.stopListening(port)
        for pump in self.connectionsTo(port):
            pump.serverIO.loseConnection()

    def _connect(self) -> bool:
        """
        Make or refuse the connections asked for since last time.

        @return: whether there were any.
        """
        asked = list(zip(self.reactor.tcpClients, self.reactor.connectors, strict=True))
        del self.reactor.tcpClients[:], self.reactor.connectors[:]
        listening = {port: factory for port, factory, _backlog, _interface in self.reactor.tcpServers}
        for (_host, port, clientFactory, _timeout, _bindAddress), connector in asked:
            if connector.stoppedConnecting:
                continue  # given up before it was made
            serverFactory = listening.get(port)
            if serverFactory is None:
                clientFactory.clientConnectionFailed(connector, Failure(ConnectionRefusedError()))
                continue
            serverAddress = IPv4Address("TCP", HOST, port)
            clientAddress = IPv4Address("TCP", HOST, next(self._clientPorts))
            server = serverFactory.buildProtocol(clientAddress)
            client = clientFactory.buildProtocol(serverAddress)
            pump = iosim.connect(
                server,
                iosim.FakeTransport(
                    server, isServer=True, hostAddress=serverAddress, peerAddress=clientAddress
                ),
                client,
                iosim.FakeTransport(
                    client, isServer=False, hostAddress=clientAddress, peerAddress=serverAddress
                ),
                greet=False,
                clock=self.reactor,
            )
            self.pumps.append(pump)
        return bool(asked)


def serve(network: MemoryNetwork, testCase, root: IService) -> IService:
    """
    Start C{root}, a tree of services built on C{network}'s reactor (a
    gateway's, by L{gateway.server.makeService}, or the poetry servers'),
    until the end of C{testCase}, when it must stop cleanly (unless the
    test has stopped it).
    """
    root.startService()

    def stop() -> None:
        if root.running:
            testCase.successResultOf(network.run(maybeDeferred(root.stopService)))

    testCase.addCleanup(stop)
    return root


class Collector(Protocol):
    """
    Send some bytes as they are, then collect what comes back until the
    other side closes.

    @ivar done: fires with everything received, once the connection is
        closed.
    """

    def __init__(self, request: bytes) -> None:
        self.request = request
        self.received: list[bytes] = []
        self.done: Deferred[bytes] = Deferred()

    def connectionMade(self) -> None:
        self.transport.write(self.request)

    def dataReceived(self, data: bytes) -> None:
        self.received.append(data)

    def connectionLost(self, reason: Failure) -> None:
        self.done.callback(b"".join(self.received))


class _Received:
    """
    Bytes that came back on a connection, as a socket for L{http.client}
    to read a response from.
    """

    def __init__(self, data: bytes) -> None:
        self.data = data

    def makefile(self, mode: str) -> BytesIO:
        return BytesIO(self.data)


def readResponse(data: bytes) -> http.client.HTTPResponse:
    """
    The HTTP response in C{data} (what a L{Collector} got), read by
    L{http.client}, its status line and headers already read.
    """
    response = http.client.HTTPResponse(_Received(data))
    response.begin()
    return response


def treqClient(reactor) -> HTTPClient:
    """
    A treq client on a real L{Agent} on C{reactor}, which writes request
    bodies on C{reactor}'s clock too.
    """
    return httpClient(Agent(reactor), reactor)


def url(scheme: str, ports=GATEWAY) -> str:
    """
    The URL of an in-memory gateway on C{ports} over C{scheme}.
    """
    return f"{scheme}://{HOST}:{ports[SCHEMES[scheme].listener]}{SCHEMES[scheme].path}"


class MemoryTestCase(SynchronousTestCase):
    """
    A test on a L{MemoryNetwork} (Autobahn's timers on its clock too), on
    which gateways and poetry servers start the way their commands start
    them; the global reactor is left alone.
    """

    def setUp(self):
        self.network = MemoryNetwork().install(self)
        self.reactor = self.network.reactor
        self.addCleanup(self.network.assertGlobalReactorUntouched(self))

    def gateway(self, *arguments: str, ports=GATEWAY) -> IService:
        """
        C{xform serve ARGUMENTS...}, its listeners on C{ports}, running
        until the end of the test.
        """
        options = ServeOptions()
        listeners = [f"--{name}=tcp:{ports[name]}:interface={HOST}" for name in LISTENERS]
        options.parseOptions([*listeners, *arguments])
        return serve(self.network, self, makeService(options, self.reactor))

    def poetryServer(self, path: str, port: int, *arguments: str) -> IService:
        """
        C{xform poetry-server PATH --port PORT ARGUMENTS...}, running until
        the end of the test.
        """
        options = PoetryServerOptions()
        options.parseOptions([path, "--port", str(port), *arguments])
        return serve(self.network, self, makePoetryService(options, self.reactor))

    def silentServer(self, port: int) -> None:
        """
        A server on C{port} that accepts connections and never says a word.
        """
        self.network.listen(port, Factory.forProtocol(Protocol))
