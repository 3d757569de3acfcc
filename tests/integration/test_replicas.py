"""
HAProxy spreads the traffic of every protocol over the replicas: each
replica's own log, read through the Docker engine, shows requests of each.
"""

import time
import uuid

import pytest

from tests.integration.system import PROBES, SCHEMES, served, waitUntil


@pytest.mark.engine
@pytest.mark.parametrize("scheme", SCHEMES)
def test_trafficReachesEveryReplica(system, engine, scheme, capsys):
    """
    Of eight requests over one protocol, each on its own connection through
    HAProxy, each replica serves some.
    """
    replicas = engine.replicas()
    assert len(replicas) >= 2
    since, token = time.time(), uuid.uuid4().hex
    for _ in range(8):
        PROBES[scheme].send(system, token)

    def counts() -> dict[str, int] | None:
        found = {replica.name: served(engine, replica, scheme, token, since) for replica in replicas}
        return found if all(found.values()) else None

    found = waitUntil(
        counts, 10, f"{scheme} requests in the logs of {', '.join(found.name for found in replicas)}"
    )
    with capsys.disabled():
        print(f"\n{scheme} through HAProxy: " + ", ".join(f"{r} served {n}" for r, n in found.items()))
    assert sum(found.values()) == 8
