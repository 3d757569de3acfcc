"""
Steady mixed load through HAProxy, for the scale-out scenarios.

Two kinds of clients run in threads until the load stops, each asking one
request after another at a steady pace and recording every request's
L{Outcome}:

    - a client per protocol that opens a new connection for every request
      (the blocking clients of L{gateway.syncclient}), as the command-line
      tools do;
    - long-lived WebSocket sessions (L{WebSocketSession}), as the page does:
      one connection for request after request, opened again when the
      gateway closes it between two requests. A session can be told to send
      one slow request, or slow requests one after the other for as long as
      its connection lasts, to be sure of a request in flight at a given
      moment; L{sessionsOnEveryReplica} opens them so that every replica
      holds one.
"""

import json
import threading
import time
import uuid
from collections import Counter
from contextlib import ExitStack
from dataclasses import dataclass, field

import pytest
from websockets.exceptions import ConnectionClosed, ConnectionClosedOK, InvalidHandshake
from websockets.frames import CloseCode
from websockets.sync.client import ClientConnection, connect

from gateway import syncclient
from tests.integration.system import POEM, Engine, Replica, System, served, waitUntil

#: A request that takes the gateway about a second of work: six passes over
#: a poem of 600 kB, whose answer is still the poem in lower case.
SLOW_TRANSFORM = "|".join(["titlecase", "cummingsify"] * 3)
SLOW_POEM = (POEM + "\n") * (600_000 // (len(POEM) + 1))

#: The poem of the slow requests that a session sends one right after the
#: other (L{WebSocketSession.keepSlow}): a quarter of the slow one, each
#: request a quarter of a second of work, far below the gateway's deadline
#: even on a busy host.
BUSY_POEM = (POEM + "\n") * (150_000 // (len(POEM) + 1))

#: Seconds between the starts of two requests of one client.
PACE = 0.02

#: Seconds a request may take before it counts as failed.
TIMEOUT = 10.0

#: How a request of a WebSocket session fails: its connection lost or refused,
#: no answer in time (a L{TimeoutError}, an L{OSError}), or no JSON.
SESSION_ERRORS = (ConnectionClosed, InvalidHandshake, OSError, ValueError)


@dataclass(frozen=True)
class Outcome:
    """
    What became of one request.

    @ivar client: the client that sent it (C{netstring}, C{ws session}...).
    @ivar started: when it started (C{time.time()}), connecting included.
    @ivar ended: when its answer came, or it failed.
    @ivar error: why it failed, or C{None} if the right answer came.
    @ivar slow: whether it was a slow request.
    """

    client: str
    started: float
    ended: float
    error: str | None = None
    slow: bool = False

    def inFlightDuring(self, start: float, end: float) -> bool:
        """
        Whether the request was in flight at some moment from C{start} to
        C{end}.
        """
        return self.started <= end and self.ended >= start


@dataclass
class Load:
    """
    Clients sending requests through HAProxy until L{stop}.

    @ivar outcomes: the outcome of every request so far.
    @ivar stopping: set when the clients are to stop.
    """

    system: System
    outcomes: list[Outcome] = field(default_factory=list)
    stopping: threading.Event = field(default_factory=threading.Event)
    _threads: list[threading.Thread] = field(default_factory=list)

    def _spawn(self, target, name: str) -> None:
        thread = threading.Thread(target=target, name=name, daemon=True)
        self._threads.append(thread)
        thread.start()

    def addPerCallClients(self) -> None:
        """
        Start a client for each protocol that opens a connection per request.
        """
        for scheme in self.system.servers:
            self._spawn(lambda scheme=scheme: self._perCall(scheme), scheme)

    def _perCall(self, scheme: str) -> None:
        while not self.stopping.wait(PACE):
            started, error = time.time(), None
            try:
                answer = self.system.transform(scheme, "cummingsify", POEM, TIMEOUT)
                if answer != POEM.lower():
                    error = f"wrong answer {answer[:40]!r}"
            except syncclient.ClientError as failure:
                error = str(failure)
            self.outcomes.append(Outcome(scheme, started, time.time(), error))

    def addSession(self, probe: str | None = None) -> "WebSocketSession":
        """
        Open a long-lived WebSocket session and start its requests.

        @param probe: a token for a probe first (L{WebSocketSession.probe}).
        """
        session = WebSocketSession(self.system, self)
        session.connect()
        if probe is not None:
            session.probe(probe)
        self._spawn(session.run, "ws session")
        return session

    def stop(self) -> None:
        """
        Stop the clients, once their requests in flight are over.
        """
        self.stopping.set()
        for thread in self._threads:
            thread.join(TIMEOUT + 5)
            if thread.is_alive():
                pytest.fail(f"the {thread.name} client did not stop")

    def failures(self) -> list[Outcome]:
        return [outcome for outcome in self.outcomes if outcome.error is not None]

    def report(self, title: str, moment: float) -> str:
        """
        The counts of requests sent, answered and failed, in all and by
        client, and each failure, timed from C{moment}.
        """
        sent = Counter(outcome.client for outcome in self.outcomes)
        failed = Counter(outcome.client for outcome in self.failures())
        lines = [
            f"{title}: sent {sum(sent.values())}, answered {sum(sent.values()) - sum(failed.values())}, "
            f"failed {sum(failed.values())}"
        ]
        lines += [
            f"    {client:<10} sent {sent[client]:5}, answered {sent[client] - failed[client]:5}, "
            f"failed {failed[client]}"
            for client in sorted(sent)
        ]
        lines += [
            f"    failed: {outcome.client}{' (slow)' if outcome.slow else ''}, "
            f"{outcome.started - moment:+.3f} s to {outcome.ended - moment:+.3f} s: "
            f"{outcome.error.splitlines()[0]}"
            for outcome in self.failures()
        ]
        return "\n".join(lines)


class WebSocketSession:
    """
    A long-lived WebSocket JSON-RPC client: one connection kept open for
    request after request. When the gateway has closed it between two
    requests, the next request goes on a new connection; so does a request
    left without an answer when the gateway closes the connection as going
    away (1001), which a gateway that stops does only once it has answered
    every request it took: it never took this one. A request whose
    connection closes otherwise before its answer fails.

    @ivar slowSent: set once the slow request asked for by L{sendSlow} is
        sent.
    """

    def __init__(self, system: System, load: Load) -> None:
        self._url = str(system.servers["ws"])
        self._load = load
        self._connection: ClientConnection | None = None
        self._open = ExitStack()
        self._ids = 0
        self._slowWanted = threading.Event()
        self._keepSlow = threading.Event()
        self.slowSent = threading.Event()
        self.slowOutcomes: list[Outcome] = []

    def connect(self) -> None:
        """
        Open a new connection, closing the one before, if any.
        """
        self._close()
        self._keepSlow.clear()
        self._connection = self._open.enter_context(connect(self._url, open_timeout=TIMEOUT, max_size=None))

    def _close(self) -> None:
        self._open.close()
        self._connection = None
        self._keepSlow.clear()

    def sendSlow(self) -> None:
        """
        Make the next request a slow one.
        """
        self._slowWanted.set()

    def probe(self, token: str) -> None:
        """
        Ask, on the session's connection, for the unknown transform
        C{probe-TOKEN}, which the replica at its other end logs as
        L{tests.integration.system.PROBES} says.
        """
        reply = self._ask(f"probe-{token}", POEM, slow=False)
        if reply.get("error", {}).get("data") != "unknown-transform":
            pytest.fail(f"a probe over WebSocket was not refused as asked: {reply}")

    def keepSlow(self) -> None:
        """
        From the next request on, send slow requests (of L{BUSY_POEM}) one
        right after the other for as long as the connection lasts, so that
        one is in flight whenever it ends; on the next connection, the
        steady pace again.
        """
        self._keepSlow.set()

    def run(self) -> None:
        while not self._load.stopping.wait(0 if self._keepSlow.is_set() else PACE):
            busy = self._keepSlow.is_set()
            slow = busy or (self._slowWanted.is_set() and not self.slowSent.is_set())
            poem = BUSY_POEM if busy else SLOW_POEM if slow else POEM
            started, error = time.time(), None
            try:
                reply = self._ask(SLOW_TRANSFORM if slow else "cummingsify", poem, slow)
                if reply.get("id") != self._ids or reply.get("result") != {"poem": poem.lower()}:
                    error = f"wrong answer {str(reply)[:100]}"
            except SESSION_ERRORS as failure:
                error = f"{type(failure).__name__}: {failure}"
                self._close()
            outcome = Outcome("ws session", started, time.time(), error, slow)
            self._load.outcomes.append(outcome)
            if slow:
                self.slowOutcomes.append(outcome)
        self._close()

    def _ask(self, transform: str, poem: str, slow: bool) -> dict:
        """
        Send one request and return the reply to it.
        """
        self._ids += 1
        request = json.dumps(
            {"jsonrpc": "2.0", "method": "transform", "params": [transform, poem], "id": self._ids}
        )
        if self._connection is None:
            self.connect()
        try:
            self._connection.send(request)
        except ConnectionClosed:
            # Closed by the gateway before the request left: it never saw it.
            self.connect()
            self._connection.send(request)
        if slow:
            self.slowSent.set()
        try:
            return json.loads(self._connection.recv(TIMEOUT))
        except ConnectionClosedOK as closed:
            if closed.rcvd is None or closed.rcvd.code != CloseCode.GOING_AWAY:
                raise
        self.connect()
        self._connection.send(request)
        return json.loads(self._connection.recv(TIMEOUT))


def show(capsys: pytest.CaptureFixture, text: str) -> None:
    """
    Print C{text} in the test's output, on a line of its own.
    """
    with capsys.disabled():
        print("\n" + text)


def sessionsOnEveryReplica(
    system: System, engine: Engine, load: Load, replicas: list[Replica]
) -> dict[Replica, WebSocketSession]:
    """
    Open long-lived WebSocket sessions through HAProxy, one at a time, until
    each of C{replicas} holds one, as the replicas' logs show (each session
    sends a probe of its own first); a session that HAProxy gives to a
    replica holding one already stays open, and sends requests like the
    others.

    @return: the session each replica holds.
    """
    sessions: dict[Replica, WebSocketSession] = {}
    for _ in range(3 * len(replicas)):
        since, token = time.time(), uuid.uuid4().hex
        session = load.addSession(probe=token)

        def logged(since: float = since, token: str = token) -> list[Replica]:
            return [replica for replica in replicas if served(engine, replica, "ws", token, since)]

        holders = waitUntil(logged, 10, "a new WebSocket session in a replica's log")
        if len(holders) != 1:
            pytest.fail(f"one WebSocket session logged by {len(holders)} replicas")
        sessions.setdefault(holders[0], session)
        if len(sessions) == len(replicas):
            return sessions
    pytest.fail(
        f"HAProxy gave WebSocket sessions to {', '.join(replica.name for replica in sessions)} only, "
        f"of {', '.join(replica.name for replica in replicas)}"
    )
