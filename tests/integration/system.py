"""
The system as the integration suite sees it: HAProxy's address for each
protocol, the Docker engine behind it (compose's, or a Swarm's), and how to
tell from a replica's log that it served a request.
"""

import os
import re
import signal
import subprocess
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime

import pytest

from gateway import schemes, syncclient
from gateway.urls import ServerURL

#: The protocols HAProxy serves, by the scheme of their URLs: those in the
#: clear.
SCHEMES = {name: scheme for name, scheme in schemes.SCHEMES.items() if not scheme.tls}

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


@dataclass(frozen=True)
class Replica:
    """
    One replica of the gateway: a container of its service.

    @ivar id: the container's id.
    @ivar name: its name in reports: the container's under compose
        (C{xform-test_gateway_1}); in a Swarm, its task's slot
        (C{xform-test_gateway.1}), which the task that replaces it keeps.
    @ivar task: its Swarm task's id; C{None} under compose.
    """

    id: str
    name: str
    task: str | None = None


@dataclass(frozen=True)
class Event:
    """
    Something that happened to a container, as the engine tells it.

    @ivar time: when (a C{time.time()}).
    @ivar container: the container's id.
    @ivar action: what: C{kill} (a signal sent), C{health_status: healthy}...
    """

    time: float
    container: str
    action: str


def _dockerTime(text: str) -> float:
    """
    A time as C{docker inspect} shows it (RFC 3339, UTC, in nanoseconds), as
    a C{time.time()}.
    """
    return datetime.fromisoformat(text).timestamp()


class Engine:
    """
    The Docker engine running the system, through the docker client: what
    the tests do the same whether compose runs the system (L{Compose}) or a
    Swarm (L{Stack}).

    @ivar docker: the docker client.
    """

    def __init__(self, docker: list[str]) -> None:
        self.docker = docker

    def _run(self, *command: str) -> str:
        return subprocess.run(command, check=True, capture_output=True, text=True, timeout=60).stdout

    def replicas(self) -> list[Replica]:
        """
        The replicas that run, by name.
        """
        raise NotImplementedError

    def inspect(self, replica: Replica, template: str) -> str:
        """
        The Go C{template} (such as C{{{.RestartCount}}}) applied to the
        container of C{replica}.
        """
        return self._run(*self.docker, "inspect", "--format", template, replica.id).strip()

    def logs(self, replica: Replica, since: float) -> str:
        """
        What C{replica} has logged since C{since} (a C{time.time()}),
        standard output and error together.
        """
        done = subprocess.run(
            [*self.docker, "logs", "--since", f"{since:.6f}", replica.id],
            check=True,
            capture_output=True,
            text=True,
            timeout=60,
        )
        return done.stdout + done.stderr

    def signal(self, replica: Replica, name: str) -> float:
        """
        Send the signal C{name} (such as C{SIGTERM}) to C{replica} through
        the engine, which counts this as stopping the container on purpose.

        @return: when it was sent (a C{time.time()} just before the engine
            was asked to send it): a request still running then was in
            flight when it arrived.
        """
        sent = time.time()
        self._run(*self.docker, "kill", "--signal", name, replica.id)
        return sent

    def crash(self, replica: Replica) -> float:
        """
        Kill the process of C{replica} with SIGKILL from the host, as the
        kernel's out-of-memory killer would: the engine sees it die, and
        restarts or replaces it by its restart policy.

        @return: when it was killed (a C{time.time()}).
        """
        pid = int(self.inspect(replica, "{{.State.Pid}}"))
        killed = time.time()
        os.kill(pid, signal.SIGKILL)
        return killed

    def healthy(self, replica: Replica) -> bool:
        """
        Whether C{replica} runs and passes its health check.
        """
        return self.inspect(replica, "{{.State.Status}} {{.State.Health.Status}}") == "running healthy"

    def replacement(self, replica: Replica, since: float, timeout: float = 60.0) -> Replica:
        """
        Wait until the restart policy has brought back C{replica}, which
        ended at C{since} without being stopped through the engine, and
        return the replica that took its place (healthy or not yet).
        """
        raise NotImplementedError

    def bringBack(self, replica: Replica, since: float, timeout: float = 60.0) -> Replica:
        """
        Bring back C{replica}, stopped through the engine at C{since} (with
        L{signal}), and return the replica that took its place.
        """
        raise NotImplementedError


class Compose(Engine):
    """
    The engine of a system that compose runs: the replicas are the
    containers of its C{gateway} service, which Docker restarts in place.

    @ivar compose: the compose command of the system.
    """

    def __init__(self, compose: list[str], docker: list[str]) -> None:
        super().__init__(docker)
        self.compose = compose

    def replicas(self) -> list[Replica]:
        containers = self._run(*self.compose, "ps", "-q", "gateway").split()
        if not containers:
            return []
        described = self._run(
            *self.docker, "inspect", "--format", "{{.Id}} {{.Name}} {{.State.Running}}", *containers
        )
        found = [line.split() for line in described.splitlines()]
        return sorted(
            (Replica(id, name.lstrip("/")) for id, name, running in found if running == "true"),
            key=lambda replica: replica.name,
        )

    def replacement(self, replica: Replica, since: float, timeout: float = 60.0) -> Replica:
        """
        Docker restarts a container that dies in place: C{replica} itself,
        once it runs again.
        """

        def restarted() -> bool:
            running, started = self.inspect(replica, "{{.State.Running}} {{.State.StartedAt}}").split()
            return running == "true" and _dockerTime(started) > since

        waitUntil(restarted, timeout, f"{replica.name} restarted by its restart policy")
        return replica

    def bringBack(self, replica: Replica, since: float, timeout: float = 60.0) -> Replica:
        """
        Docker never restarts a container stopped on purpose: start it.
        """
        self._run(*self.docker, "start", replica.id)
        return replica


class Stack(Engine):
    """
    The engine of a system deployed as a Swarm stack, on one node: the
    replicas are the running tasks of its C{gateway} service, and the Swarm
    replaces one that ends, whatever ends it, with a new task in its slot.

    @ivar service: the name of the gateway service (C{STACK_gateway}).
    """

    def __init__(self, stack: str, docker: list[str]) -> None:
        super().__init__(docker)
        self.service = f"{stack}_gateway"

    def replicas(self) -> list[Replica]:
        listed = self._run(
            *self.docker,
            "ps",
            "--no-trunc",
            "--filter",
            f"label=com.docker.swarm.service.name={self.service}",
            "--format",
            '{{.ID}} {{.Label "com.docker.swarm.task.name"}} {{.Label "com.docker.swarm.task.id"}}',
        )
        found = [line.split() for line in listed.splitlines()]
        return sorted(
            (Replica(id, taskName.removesuffix(f".{task}"), task) for id, taskName, task in found),
            key=lambda replica: replica.name,
        )

    def replacement(self, replica: Replica, since: float, timeout: float = 60.0) -> Replica:
        """
        A new task in the slot of C{replica}.
        """

        def replaced() -> Replica | None:
            return next(
                (found for found in self.replicas() if found.name == replica.name and found.id != replica.id),
                None,
            )

        return waitUntil(replaced, timeout, f"a new task in the place of {replica.name}")

    # A Swarm replaces a task however it ended.
    bringBack = replacement

    def scale(self, replicas: int) -> None:
        """
        Ask the Swarm for C{replicas} replicas, and return at once.
        """
        self._run(*self.docker, "service", "scale", "--detach", f"{self.service}={replicas}")

    def update(self, image: str) -> None:
        """
        Start a rolling update of the gateway to C{image}, and return at
        once: the Swarm replaces the replicas one by one, as the service's
        update settings say.
        """
        self._run(*self.docker, "service", "update", "--detach", "--image", image, self.service)

    def setting(self, template: str) -> str:
        """
        The Go C{template} (such as C{{{.Spec.Mode.Replicated.Replicas}}})
        applied to the gateway service.
        """
        return self._run(*self.docker, "service", "inspect", "--format", template, self.service).strip()

    def desiredStates(self, replicas: list[Replica]) -> dict[Replica, str]:
        """
        What the Swarm wants of the task of each of C{replicas} now: that it
        runs (C{running}), or that it stops (C{shutdown}).
        """
        states = dict(
            line.split()
            for line in self._run(
                *self.docker,
                "inspect",
                "--type",
                "task",
                "--format",
                "{{.ID}} {{.DesiredState}}",
                *(replica.task for replica in replicas),
            ).splitlines()
        )
        return {replica: states[replica.task] for replica in replicas}

    @contextmanager
    def events(self, *names: str) -> Iterator[list[Event]]:
        """
        Record the events C{names} (such as C{kill}, the engine sending a
        signal, or C{health_status}) of the gateway's containers while the
        C{with} block runs: the engine keeps only its last few events, and
        health checks every few seconds push them out.

        @return: a list that holds the events in order once the block is
            over.
        """
        filters = [f"--filter=event={name}" for name in names]
        recording = subprocess.Popen(
            [
                *self.docker,
                "events",
                f"--since={time.time():.6f}",
                *filters,
                f"--filter=label=com.docker.swarm.service.name={self.service}",
                "--format={{.TimeNano}} {{.Actor.ID}} {{.Action}}",
            ],
            stdout=subprocess.PIPE,
            text=True,
        )
        recorded: list[Event] = []
        try:
            yield recorded
        finally:
            recording.terminate()
            lines = recording.communicate(timeout=10)[0].splitlines()
            recorded += [
                Event(int(nanoseconds) / 1e9, container, action)
                for nanoseconds, container, action in (line.split(" ", 2) for line in lines)
            ]


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


#: How to see a request of each scheme in the log of the replica that served
#: it: each asks for the unknown transform C{probe-TOKEN}, and a replica logs
#: every request it refuses with the transform's name (a few a second at most
#: of each kind: L{protocols.common.Refusals}).
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
        lambda token: rf"http \S+: answering 404 unknown-transform: unknown transform 'probe-{token}'",
    ),
    "ws": Probe(
        lambda system, token: _refusedProbe(system, "ws", token),
        lambda token: rf"ws \S+: answering unknown-transform: unknown transform 'probe-{token}'",
    ),
}


def served(engine: Engine, replica: Replica, scheme: str, token: str, since: float) -> int:
    """
    How many probes of C{scheme} with C{token} C{replica} has logged since
    C{since}.
    """
    return len(re.findall(PROBES[scheme].logged(token), engine.logs(replica, since)))


def waitUntilServing(
    system: System, engine: Engine, *replicas: Replica, timeout: float = 30.0, schemes=SCHEMES
) -> None:
    """
    Send probes over each of C{schemes} through HAProxy until each of
    C{replicas} has logged one of each.
    """
    since, token = time.time(), uuid.uuid4().hex
    for scheme in schemes:
        waiting = list(replicas)

        def reached(scheme: str = scheme, waiting: list[Replica] = waiting) -> bool:
            PROBES[scheme].send(system, token)
            waiting[:] = [replica for replica in waiting if not served(engine, replica, scheme, token, since)]
            return not waiting

        names = ", ".join(replica.name for replica in replicas)
        waitUntil(reached, timeout, f"{names} serving {scheme} through HAProxy")
