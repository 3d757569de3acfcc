"""
The integration suite: the system of docker-compose.yml, run by compose or
deployed as a Swarm stack, tested from outside through HAProxy, the way its
users reach it.

It runs in the compose file's C{tests} service (C{docker compose --profile
test run --rm tests}), or in a container of the tests image on the stack's
network, against the services by their names; and from the host against
HAProxy's published ports (C{make compose-test} and C{make swarm-test} do
both). The environment says where the system is:

    XFORM_HOST             HAProxy's address (default 127.0.0.1)
    XFORM_NETSTRING_PORT   its netstring port (10001), and likewise
    XFORM_AMP_PORT         AMP (10002) and
    XFORM_WEB_PORT         the web port (8080)
    XFORM_POETRY_SERVERS   the poetry servers, HOST:PORT separated by spaces
    XFORM_HAPROXY_STATS    HAProxy's stats, http://HOST:PORT
    XFORM_COMPOSE          the compose command of the running system, such
                           as "docker compose -p xform"
    XFORM_STACK            or the name of the Swarm stack it runs as
    XFORM_DOCKER           the docker client (default docker)
    XFORM_NEXT_IMAGE       an image for the stack's rolling update

The tests marked C{network} reach the poetry servers and HAProxy's stats,
which only the system's network reaches: they are skipped unless the
environment names them. The tests marked C{engine} drive the Docker engine
(they read each replica's log, and stop or kill a replica): they are skipped
unless C{XFORM_COMPOSE} or C{XFORM_STACK} says what runs the system, and run
on the engine's host, as root; those marked C{swarm} too, and only for a
stack (they scale the gateway and update it). So the C{tests} service runs
C{-m "not engine"}, and C{make compose-test} runs the rest from the host with
C{-m "not network"}; C{make swarm-test} does the same against the stack.
"""

import os
import shlex

import pytest

from gateway.urls import ServerURL
from tests.integration.system import SCHEMES, Compose, Engine, Stack, System, waitUntil


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "engine: drives the Docker engine behind the system (needs XFORM_COMPOSE or XFORM_STACK)"
    )
    config.addinivalue_line("markers", "swarm: drives the Swarm behind the system (needs XFORM_STACK)")
    config.addinivalue_line(
        "markers", "network: reaches services that only the system's network reaches (the tests service)"
    )


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    stack = os.environ.get("XFORM_STACK")
    skips = {
        "swarm": None if stack else "XFORM_STACK does not name the Swarm stack of the system",
        "engine": None
        if stack or os.environ.get("XFORM_COMPOSE")
        else "neither XFORM_COMPOSE nor XFORM_STACK says what runs the system",
    }
    for item in items:
        reason = next(
            (reason for marker, reason in skips.items() if reason and marker in item.keywords), None
        )
        if reason:
            item.add_marker(pytest.mark.skip(reason=reason))


@pytest.fixture(scope="session")
def system() -> System:
    """
    The system, once HAProxy reaches the replicas over every protocol (it
    may still be finding them when the suite starts).
    """
    host = os.environ.get("XFORM_HOST", "127.0.0.1")
    ports = {
        "netstring": int(os.environ.get("XFORM_NETSTRING_PORT", "10001")),
        "amp": int(os.environ.get("XFORM_AMP_PORT", "10002")),
        "ws": int(os.environ.get("XFORM_WEB_PORT", "8080")),
    }
    ports["http"] = ports["ws"]
    servers = {
        scheme: ServerURL(scheme, host, port, "/ws" if scheme == "ws" else "")
        for scheme, port in ports.items()
    }
    found = System(
        servers=servers,
        poetryServers=tuple(os.environ.get("XFORM_POETRY_SERVERS", "").split()),
        stats=os.environ.get("XFORM_HAPROXY_STATS"),
    )
    waitUntil(found.answers, 60, f"HAProxy at {host} answering over {', '.join(SCHEMES)}", interval=0.5)
    return found


@pytest.fixture(scope="session")
def engine() -> Engine:
    """
    The engine running the system: a Swarm's if C{XFORM_STACK} names a
    stack, compose's otherwise.
    """
    docker = shlex.split(os.environ.get("XFORM_DOCKER", "docker"))
    if os.environ.get("XFORM_STACK"):
        return Stack(os.environ["XFORM_STACK"], docker)
    return Compose(shlex.split(os.environ["XFORM_COMPOSE"]), docker)
