"""
HAProxy spreads the traffic of every protocol over both replicas: each
replica's own log, read through the Docker engine, shows requests of each.
"""

import time
import uuid

import pytest

from tests.integration.system import PROBES, REPLICAS, SCHEMES, served, waitUntil


@pytest.mark.engine
@pytest.mark.parametrize("scheme", SCHEMES)
def test_trafficReachesBothReplicas(system, engine, scheme, capsys):
    """
    Of eight requests over one protocol, each on its own connection through
    HAProxy, each replica serves some.
    """
    since, token = time.time(), uuid.uuid4().hex
    for _ in range(8):
        PROBES[scheme].send(system, token)

    def counts() -> dict[str, int] | None:
        found = {replica: served(engine, replica, scheme, token, since) for replica in REPLICAS}
        return found if all(found.values()) else None

    found = waitUntil(counts, 10, f"{scheme} requests in the logs of {' and '.join(REPLICAS)}")
    with capsys.disabled():
        print(f"\n{scheme} through HAProxy: " + ", ".join(f"{r} served {n}" for r, n in found.items()))
    assert sum(found.values()) == 8
