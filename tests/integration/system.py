"""
The compose system as the integration suite sees it: HAProxy's address for
each protocol, the Docker engine behind it, and how to tell from a replica's
log that it served a request.
"""

import os
import re
import signal
import subprocess
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass

import pytest

from gateway import schemes, syncclient
from gateway.urls import ServerURL

#: The protocols HAProxy serves, by the scheme of their URLs: those in the
#: clear.
SCHEMES = {name: scheme for name, scheme in schemes.SCHEMES.items() if not scheme.tls}

#: The replicas of the compose file.
REPLICAS = ("gateway-1", "gateway-2")

#: The poem of most requests, and what C{cummingsify} makes of it.
POEM = "Science! True daughter of Old Time thou art!\nWho alterest all things with thy peering eyes."


def waitUntil(condition: Callable[[], object], timeout: float, what: str, interval: float = 0.2):
    """
    Ask C{condition} until it returns something true, and return that.

    Fail the test (with L{pytest.fail}, which no C{xfail(raises=...)} takes
    for the failure it expects) saying that C{what} did not happen, after
    C{timeout} seconds.
    """
    end = time.monotonic() + timeout
    while not (result := condition()):
        if time.monotonic() > end:
            pytest.fail(f"{what}: not within {timeout:g} seconds")
        time.sleep(interval)
    return result


@dataclass(frozen=True)
class System:
    """
    The compose system as seen by the tests.

    @ivar servers: HAProxy's URL for each scheme.
    @ivar poetryServers: the poetry servers, C{HOST:PORT}, if reachable.
    @ivar stats: HAProxy's stats, C{http://HOST:PORT}, if reachable.
    """

    servers: dict[str, ServerURL]
    poetryServers: tuple[str, ...]
    stats: str | None

    def transform(self, scheme: str, name: str, poem: str, timeout: float = 10.0) -> str:
        """
        Transform C{poem} through HAProxy over C{scheme}, on a new
        connection.
        """
        return SCHEMES[scheme].transform(self.servers[scheme], name, poem, timeout)

    def answers(self) -> bool:
        """
        Whether a request over each scheme gets its answer.
        """
        try:
            return all(self.transform(scheme, "cummingsify", POEM, 2.0) == POEM.lower() for scheme in SCHEMES)
        except syncclient.ClientError:
            return False


class Engine:
    """
    The Docker engine running the system, through its command-line clients.

    @ivar compose: the compose command of the system.
    @ivar docker: the docker client.
    """

    def __init__(self, compose: list[str], docker: list[str]) -> None:
        self.compose = compose
        self.docker = docker
        self._containers: dict[str, str] = {}

    def _run(self, *command: str) -> str:
        return subprocess.run(command, check=True, capture_output=True, text=True, timeout=60).stdout

    def container(self, service: str) -> str:
        """
        The id of the container of C{service} (the same container once
        stopped, started or restarted).
        """
        if service not in self._containers:
            found = self._run(*self.compose, "ps", "-q", service).split()
            assert len(found) == 1, f"{service} has {len(found)} containers"
            self._containers[service] = found[0]
        return self._containers[service]

    def inspect(self, service: str, template: str) -> str:
        """
        The Go C{template} (such as C{{{.RestartCount}}}) applied to the
        container of C{service}.
        """
        return self._run(*self.docker, "inspect", "--format", template, self.container(service)).strip()

    def logs(self, service: str, since: float) -> str:
        """
        What the container of C{service} has logged since C{since} (a
        C{time.time()}), standard output and error together.
        """
        done = subprocess.run(
            [*self.docker, "logs", "--since", f"{since:.6f}", self.container(service)],
            check=True,
            capture_output=True,
            text=True,
            timeout=60,
        )
        return done.stdout + done.stderr

    def signal(self, service: str, name: str) -> float:
        """
        Send the signal C{name} (such as C{SIGTERM}) to C{service} through
        the engine. The engine counts this as stopping the container on
        purpose: it does not restart it.

        @return: when it was sent (a C{time.time()} just before the engine
            was asked to send it): a request still running then was in
            flight when it arrived.
        """
        container = self.container(service)
        sent = time.time()
        self._run(*self.docker, "kill", "--signal", name, container)
        return sent

    def crash(self, service: str) -> float:
        """
        Kill the process of C{service} with SIGKILL from the host, as the
        kernel's out-of-memory killer would: the engine sees it die, and
        restarts it by its restart policy.

        @return: when it was killed (a C{time.time()}).
        """
        pid = int(self.inspect(service, "{{.State.Pid}}"))
        killed = time.time()
        os.kill(pid, signal.SIGKILL)
        return killed

    def start(self, service: str) -> None:
        """
        Start the stopped C{service}.
        """
        self._run(*self.compose, "start", service)

    def healthy(self, service: str) -> bool:
        """
        Whether C{service} runs and passes its health check.
        """
        return self.inspect(service, "{{.State.Status}} {{.State.Health.Status}}") == "running healthy"


@dataclass(frozen=True)
class Probe:
    """
    Requests over one scheme that a replica's log shows.

    @ivar send: sends one request through HAProxy with a token in it.
    @ivar logged: the pattern of the line that the replica serving it logs,
        given the token.
    """

    send: Callable[[System, str], None]
    logged: Callable[[str], str]


def _refusedProbe(system: System, scheme: str, token: str) -> None:
    """
    Ask for the unknown transform C{probe-TOKEN}, which the replica logs
    with its name.
    """
    with pytest.raises(syncclient.ClientError) as refusal:
        system.transform(scheme, f"probe-{token}", POEM)
    if scheme != "netstring":  # which closes without saying why
        assert "unknown-transform" in str(refusal.value)


def _answeredProbe(system: System, scheme: str) -> None:
    assert system.transform(scheme, "cummingsify", POEM) == POEM.lower()


#: How to see a request of each scheme in the log of the replica that served
#: it: netstring and AMP log a refused request with the transform's name;
#: at debug, the level the compose test runs the replicas at, HTTP logs
#: every request with its path, and WebSocket every connection.
PROBES = {
    "netstring": Probe(
        lambda system, token: _refusedProbe(system, "netstring", token),
        lambda token: (
            rf"netstring \S+: closing without a reply: unknown-transform: unknown transform 'probe-{token}'"
        ),
    ),
    "amp": Probe(
        lambda system, token: _refusedProbe(system, "amp", token),
        lambda token: rf"amp \S+: answering unknown-transform: unknown transform 'probe-{token}'",
    ),
    "http": Probe(
        lambda system, token: _refusedProbe(system, "http", token),
        lambda token: rf"http \S+: POST /transform/probe-{token} 404",
    ),
    "ws": Probe(lambda system, token: _answeredProbe(system, "ws"), lambda token: r"ws \S+: connected"),
}


def served(engine: Engine, replica: str, scheme: str, token: str, since: float) -> int:
    """
    How many probes of C{scheme} with C{token} C{replica} has logged since
    C{since}.
    """
    return len(re.findall(PROBES[scheme].logged(token), engine.logs(replica, since)))


def waitUntilServing(
    system: System, engine: Engine, replica: str, timeout: float = 30.0, schemes=SCHEMES
) -> None:
    """
    Send probes over each of C{schemes} through HAProxy until C{replica}
    has logged one of each.
    """
    since, token = time.time(), uuid.uuid4().hex
    for scheme in schemes:

        def reached(scheme=scheme) -> int:
            PROBES[scheme].send(system, token)
            return served(engine, replica, scheme, token, since)

        waitUntil(reached, timeout, f"{replica} serving {scheme} through HAProxy")
