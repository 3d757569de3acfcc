"""
The integration suite: the compose system of docker-compose.yml, tested from
outside through HAProxy, the way its users reach it.

It runs in the compose file's C{tests} service (C{docker compose --profile
test run --rm tests}), against the services by their compose names, and from
the host against HAProxy's published ports (C{make compose-test} does both).
The environment says where the system is:

    XFORM_HOST             HAProxy's address (default 127.0.0.1)
    XFORM_NETSTRING_PORT   its netstring port (10001), and likewise
    XFORM_AMP_PORT         AMP (10002) and
    XFORM_WEB_PORT         the web port (8080)
    XFORM_POETRY_SERVERS   the poetry servers, HOST:PORT separated by spaces
    XFORM_HAPROXY_STATS    HAProxy's stats, http://HOST:PORT
    XFORM_COMPOSE          the compose command of the running system, such
                           as "docker compose -p xform"
    XFORM_DOCKER           the docker client (default docker)

The tests marked C{network} reach the poetry servers and HAProxy's stats,
which only the compose network reaches: they are skipped unless the
environment names them. The tests marked C{engine} drive the Docker engine
(they read each replica's log, and stop or kill a replica): they are skipped
without C{XFORM_COMPOSE}, and run on the engine's host, as root. So the
C{tests} service runs C{-m "not engine"}, and C{make compose-test} runs the
rest from the host with C{-m "not network"}.
"""

import os
import shlex

import pytest

from gateway.urls import ServerURL
from tests.integration.system import SCHEMES, Engine, System, waitUntil


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "engine: drives the Docker engine behind the system (needs XFORM_COMPOSE)"
    )
    config.addinivalue_line(
        "markers", "network: reaches services that only the compose network reaches (the tests service)"
    )


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if os.environ.get("XFORM_COMPOSE"):
        return
    skip = pytest.mark.skip(reason="XFORM_COMPOSE does not name the compose command of the system")
    for item in items:
        if "engine" in item.keywords:
            item.add_marker(skip)


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
    return Engine(
        shlex.split(os.environ["XFORM_COMPOSE"]), shlex.split(os.environ.get("XFORM_DOCKER", "docker"))
    )
