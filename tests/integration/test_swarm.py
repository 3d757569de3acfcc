"""
The gateway as a Swarm service, under steady mixed load through HAProxy:
scaled from two replicas to four, then updated to a new image one replica at
a time. Each test prints how many requests were sent, answered and failed.
(A replica killed, or sent SIGTERM, under load: test_scaleout.py, which runs
against the stack too.)
"""

import os
import time
from collections.abc import Iterable

import pytest

from tests.integration.load import Load, WebSocketSession, sessionsOnEveryReplica, show
from tests.integration.system import Engine, Event, Replica, Stack, waitUntil, waitUntilServing

pytestmark = [pytest.mark.engine, pytest.mark.swarm]

#: The replicas the gateway is scaled to.
SCALED = 4

#: Seconds of steady load before the change, and once it is over.
BEFORE, AFTER = 2.0, 4.0

#: A session sends its slow requests one right after the other: a signal
#: that falls between two of them, the second starting less than this many
#: seconds after it, counts as one that came with a slow request in flight.
BETWEEN = 0.1


def _ready(engine: Engine, count: int, leaving: Iterable[Replica] = ()) -> list[Replica] | None:
    """
    The replicas, once C{count} of them run and pass their health checks,
    and none of C{leaving} runs any more.
    """
    replicas = engine.replicas()
    if len(replicas) != count or set(replicas) & set(leaving):
        return None
    return replicas if all(engine.healthy(replica) for replica in replicas) else None


def _scaled(system, engine: Stack, count: int) -> list[Replica]:
    """
    Scale the gateway to C{count} replicas, and return them once they are
    healthy and HAProxy gives each work over every protocol.
    """
    engine.scale(count)
    replicas = waitUntil(lambda: _ready(engine, count), 90, f"{count} healthy replicas")
    waitUntilServing(system, engine, *replicas)
    return replicas


@pytest.fixture(scope="module", autouse=True)
def replicasAtStart(engine: Stack):
    """
    The replicas the gateway had before the scenarios; it is scaled back to
    as many after them.
    """
    replicas = engine.replicas()
    yield replicas
    engine.scale(len(replicas))
    waitUntil(lambda: _ready(engine, len(replicas)), 90, f"{len(replicas)} healthy replicas again")


@pytest.fixture
def nextImage() -> str:
    """
    The image the rolling update goes to (C{XFORM_NEXT_IMAGE}).
    """
    image = os.environ.get("XFORM_NEXT_IMAGE")
    if not image:
        pytest.skip("XFORM_NEXT_IMAGE names no image to update the gateway to")
    return image


@pytest.mark.timeout(300)
def test_scaleOutUnderLoad(system, engine: Stack, replicasAtStart: list[Replica], capsys):
    """
    Scaled from two replicas to four under steady load on every protocol,
    the gateway loses no request, and HAProxy gives each new replica work
    over every protocol within seconds of its start.
    """
    if len(replicasAtStart) >= SCALED:
        pytest.fail(f"the gateway runs {len(replicasAtStart)} replicas already")
    load = Load(system)
    try:
        sessionsOnEveryReplica(system, engine, load, replicasAtStart)
        load.addPerCallClients()
        time.sleep(BEFORE)
        ordered = time.time()
        engine.scale(SCALED)
        scaled = waitUntil(lambda: _ready(engine, SCALED), 90, f"{SCALED} healthy replicas")
        healthy = time.time()
        added = [replica for replica in scaled if replica not in replicasAtStart]
        waitUntilServing(system, engine, *added)
        serving = time.time()
        time.sleep(AFTER)
    finally:
        load.stop()
    show(
        capsys,
        load.report(f"scaled from {len(replicasAtStart)} to {SCALED} replicas under load", ordered)
        + f"\n    {' and '.join(replica.name for replica in added)} healthy {healthy - ordered:.1f} s after "
        f"the order, serving every protocol through HAProxy {serving - ordered:.1f} s after",
    )
    assert load.failures() == []


def _slowWhileStopping(engine: Stack, sessions: dict[Replica, WebSocketSession], timeout: float) -> None:
    """
    As the Swarm decides to stop each of the replicas of C{sessions}, make
    the session it holds send slow requests until its connection ends.

    The Swarm first takes a task it stops out of DNS, and sends it SIGTERM
    a moment later (two seconds, in Docker 20.10): time for a slow request
    to be under way when the signal comes.
    """
    end = time.monotonic() + timeout
    running = list(sessions)
    while running:
        for replica, state in engine.desiredStates(running).items():
            if state != "running":
                sessions[replica].keepSlow()
                running.remove(replica)
        if time.monotonic() > end:
            pytest.fail(f"the Swarm did not stop {', '.join(replica.name for replica in running)}")
        time.sleep(0.05)


def _startFirst(
    events: list[Event], old: list[Replica], new: list[Replica], ordered: float
) -> tuple[dict[str, float], str]:
    """
    Check from the engine's C{events} of a rolling update, ordered at
    C{ordered}, that the Swarm signalled each of C{old} once one more of
    C{new} had passed its health check.

    @return: when each of C{old} was first signalled, by container id, and
        the events as lines to show.
    """
    names = {
        replica.id: f"{replica.name} ({age})"
        for age, replicas in (("old", old), ("new", new))
        for replica in replicas
    }
    timeline = "\n".join(
        f"    {event.time - ordered:+7.3f} s  {names.get(event.container, event.container[:12])}: {event.action}"
        for event in events
    )
    signals: dict[str, float] = {}
    healthy: dict[str, float] = {}
    for event in events:
        if event.action == "kill" and event.container in {replica.id for replica in old}:
            signals.setdefault(event.container, event.time)
        if event.action == "health_status: healthy" and event.container in {replica.id for replica in new}:
            healthy.setdefault(event.container, event.time)
    if len(signals) != len(old) or len(healthy) != len(new):
        pytest.fail(
            f"of the update's replicas, {len(signals)} of {len(old)} old ones were signalled and "
            f"{len(healthy)} of {len(new)} new ones became healthy:\n{timeline}"
        )
    for stopped, started in zip(sorted(signals.values()), sorted(healthy.values()), strict=True):
        if started > stopped:
            pytest.fail(
                f"the Swarm stopped an old replica before a new one was healthy in its place:\n{timeline}"
            )
    return signals, timeline


@pytest.mark.timeout(300)
def test_rollingUpdateLosesNoRequest(system, engine: Stack, nextImage: str, capsys):
    """
    Updated to a new image one replica at a time under steady load on every
    protocol, the gateway loses no request. For each replica, the Swarm
    starts a new one and waits until it passes its health check, then takes
    the old one out of DNS (HAProxy gives it no new work) and sends it
    SIGTERM; the old one finishes what it has in flight -- slow requests on
    a WebSocket session it holds, sent from the moment the Swarm decides to
    stop it, among them -- and stops.
    """
    old = _scaled(system, engine, SCALED)
    load = Load(system)
    try:
        sessions = sessionsOnEveryReplica(system, engine, load, old)
        load.addPerCallClients()
        time.sleep(BEFORE)
        ordered = time.time()
        with engine.events("kill", "health_status") as events:
            engine.update(nextImage)
            _slowWhileStopping(engine, sessions, 120)
            new = waitUntil(lambda: _ready(engine, SCALED, old), 120, f"{SCALED} healthy replicas, all new")
        time.sleep(AFTER)
    finally:
        load.stop()
    show(capsys, load.report(f"rolling update of {SCALED} replicas to {nextImage} under load", ordered))

    images = {engine.inspect(replica, "{{.Config.Image}}") for replica in new}
    if images != {nextImage}:
        pytest.fail(f"the new replicas run {images}, not {nextImage}")
    waitUntil(lambda: engine.setting("{{.UpdateStatus.State}}") == "completed", 60, "the update completed")
    signals, timeline = _startFirst(events, old, new, ordered)
    for replica, session in sessions.items():
        signalled = signals[replica.id]
        if not any(
            outcome.started <= signalled + BETWEEN and outcome.ended >= signalled
            for outcome in session.slowOutcomes
        ):
            pytest.fail(f"no slow request was in flight on {replica.name} when its signal came:\n{timeline}")
    assert load.failures() == []
