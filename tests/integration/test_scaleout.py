"""
Scale-out under steady mixed load through HAProxy: a replica stopped with
SIGTERM, or killed, while clients of every protocol keep asking. Each test
prints how many requests were sent, answered and failed.
"""

import time

import pytest

from tests.integration.load import Load, sessionsOnEveryReplica, show
from tests.integration.system import waitUntil, waitUntilServing

#: Seconds of load before the replica goes, and after.
BEFORE, AFTER = 2.0, 6.0

#: Seconds for the death of a replica to reach its clients through HAProxy:
#: a request sent on one of its connections within this time after it was
#: killed was in flight on it too.
DYING = 0.25


@pytest.mark.engine
def test_sigtermLosesNoRequest(system, engine, capsys):
    """
    A replica sent SIGTERM while it serves requests finishes them and gets
    no new ones: under steady load on every protocol, with a slow request in
    flight on each replica when the signal comes, no request fails.
    """
    replicas = engine.replicas()
    victim = replicas[0]
    load = Load(system)
    signalled = None
    try:
        sessions = list(sessionsOnEveryReplica(system, engine, load, replicas).values())
        load.addPerCallClients()
        time.sleep(BEFORE)
        for session in sessions:
            session.sendSlow()
        for session in sessions:
            if not session.slowSent.wait(10):
                pytest.fail("a slow request was not sent")
        signalled = engine.signal(victim, "SIGTERM")
        time.sleep(AFTER)
        load.stop()
        show(capsys, load.report(f"SIGTERM to {victim.name} under load", signalled))
        slow = [outcome for outcome in load.outcomes if outcome.slow]
        if len(slow) != len(sessions) or not all(outcome.ended > signalled for outcome in slow):
            pytest.fail(f"the slow requests were not all in flight when the signal came: {slow}")
        assert load.failures() == []
    finally:
        load.stop()
        if signalled is not None:
            back = engine.bringBack(victim, signalled)
            waitUntil(lambda: engine.healthy(back), 60, f"{back.name} healthy again")
            waitUntilServing(system, engine, back)


@pytest.mark.engine
def test_sigkillFailsOnlyRequestsInFlight(system, engine, capsys):
    """
    A replica killed with SIGKILL under steady load fails only the requests
    it had in flight, each with an error its client can tell; every request
    sent after goes to the survivors. The restart policy brings the replica
    back (compose restarts its container, a Swarm starts a new task in its
    place), and it gets traffic again over every protocol.
    """
    replicas = engine.replicas()
    victim = replicas[0]
    load = Load(system)
    try:
        sessionsOnEveryReplica(system, engine, load, replicas)
        load.addPerCallClients()
        time.sleep(BEFORE)
        killed = engine.crash(victim)
        time.sleep(AFTER)
    finally:
        load.stop()
    show(capsys, load.report(f"SIGKILL to {victim.name} under load", killed))
    for failure in load.failures():
        assert failure.inFlightDuring(killed, killed + DYING), f"not in flight on {victim.name}: {failure}"
        assert failure.ended < killed + 2 and not failure.error.startswith("wrong answer"), (
            f"not a prompt, clean error: {failure}"
        )
    after = [outcome for outcome in load.outcomes if outcome.started > killed + DYING]
    assert len(after) > 100 and all(outcome.error is None for outcome in after)

    back = engine.replacement(victim, killed)
    waitUntil(lambda: engine.healthy(back), 60, f"{back.name} healthy again")
    waitUntilServing(system, engine, back)
