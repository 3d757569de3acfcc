"""
The log an operator reads, in memory: L{gateway.logs} (text or JSON lines,
levels, no chatter of the libraries below C{debug}) and
L{protocols.common.Refusals} (refusals at most a few a second per kind, the
rest summed up) on a fake clock.
"""

import io
import json

from twisted.internet.address import IPv4Address
from twisted.internet.task import Clock
from twisted.logger import Logger, LogLevel, LogPublisher
from twisted.python import log as legacyLog
from twisted.trial.unittest import SynchronousTestCase

from gateway.logs import gatewayObserver, jsonLine
from protocols.common import ForbiddenOrigin, Refusals, logRefusal, refusalLevel
from service.errors import (
    BadRequest,
    Overloaded,
    PoemTooLarge,
    TransformFailed,
    TransformTimeout,
    UnknownTransform,
)
from tests.helpers import captureLogs


class GatewayObserverTests(SynchronousTestCase):
    """
    L{gatewayObserver}: what reaches the log, and how it is written.
    """

    def write(self, level: str, format: str = "text") -> tuple[io.StringIO, Logger]:
        """
        A stream that an observer of C{level} and C{format} writes to, and a
        logger of the gateway's that publishes to it alone.
        """
        stream = io.StringIO()
        publisher = LogPublisher(gatewayObserver(level, format, stream))
        return stream, Logger(namespace="gateway.listening.ListeningService", observer=publisher)

    def chatter(self, log: Logger) -> None:
        """
        Publish what Twisted and Autobahn say about each port, factory and
        connection, through C{log}'s observer.
        """
        observer = log.observer
        Logger(namespace="log_legacy", observer=observer).info("TransformFactory starting on 10001")
        Logger(namespace="log_legacy", observer=observer).info("(TCP Port 10001 Closed)")
        Logger(namespace="twisted.web.http.HTTPChannel", observer=observer).info("Timing out client: {peer}")
        Logger(namespace="autobahn.websocket.protocol", observer=observer).warn("dropping connection to peer")

    def test_jsonLines(self):
        """
        Each event is one line of JSON: timestamp, level, namespace, the
        rendered message and the event's own fields, an address written
        C{host:port}.
        """
        stream, log = self.write("info", "json")
        log.info("{name} listening", name="netstring", address=IPv4Address("TCP", "127.0.0.1", 10001))
        log.warn("a second line, with a \N{SNOWMAN} in it")
        first, second = map(json.loads, stream.getvalue().splitlines())
        self.assertEqual(
            {key: first[key] for key in ("level", "namespace", "message", "name", "address")},
            {
                "level": "info",
                "namespace": "gateway.listening.ListeningService",
                "message": "netstring listening",
                "name": "netstring",
                "address": "127.0.0.1:10001",
            },
        )
        self.assertRegex(first["timestamp"], r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")
        self.assertEqual((second["level"], second["message"]), ("warn", "a second line, with a ☃ in it"))

    def test_jsonFailure(self):
        """
        A failure's line holds its traceback.
        """
        stream, log = self.write("info", "json")
        try:
            raise ZeroDivisionError("a bug")
        except ZeroDivisionError:
            log.failure("while answering {peer}", peer="127.0.0.1:5")
        [line] = map(json.loads, stream.getvalue().splitlines())
        self.assertEqual((line["level"], line["message"]), ("critical", "while answering 127.0.0.1:5"))
        self.assertIn("ZeroDivisionError", line["traceback"])

    def test_jsonLegacyEvent(self):
        """
        An event of C{twisted.python.log} is a line of JSON like any other.
        """
        event = {}
        legacyLog.addObserver(event.update)
        self.addCleanup(legacyLog.removeObserver, event.update)
        legacyLog.msg("Received SIGTERM", system="-")
        line = json.loads(jsonLine(event))
        self.assertEqual((line["message"], line["level"]), ("Received SIGTERM", "info"))

    def test_level(self):
        """
        Events below the level are left out.
        """
        stream, log = self.write("warn")
        log.info("not this")
        log.warn("this")
        self.assertEqual(len(stream.getvalue().splitlines()), 1)
        self.assertIn("this", stream.getvalue())

    def test_quietLibrariesBelowDebug(self):
        """
        At C{info}, the libraries' lines about each port, factory and
        connection are left out; an error of theirs is kept.
        """
        stream, log = self.write("info")
        self.chatter(log)
        Logger(namespace="log_legacy", observer=log.observer).error("Unhandled error in Deferred")
        Logger(namespace="twisted.internet.base", observer=log.observer).warn("a warning")
        Logger(namespace="autobahn.websocket.protocol", observer=log.observer).error("a bug")
        [legacy, twisted, autobahn] = stream.getvalue().splitlines()
        self.assertIn("Unhandled error in Deferred", legacy)
        self.assertIn("a warning", twisted)
        self.assertIn("a bug", autobahn)

    def test_everythingAtDebug(self):
        """
        At C{debug}, the libraries have their say.
        """
        stream, log = self.write("debug")
        self.chatter(log)
        self.assertEqual(len(stream.getvalue().splitlines()), 4)


class RefusalsTests(SynchronousTestCase):
    """
    L{Refusals} and L{logRefusal}: each kind of refusal (protocol and error
    name) is written at most L{Refusals.burst} times at once, then
    L{Refusals.perSecond} times a second; one line sums up the others.
    """

    def setUp(self):
        self.clock = Clock()
        self.refusals = Refusals(self.clock)
        self.events = captureLogs(self)
        self.log = Logger(namespace="protocols.netstring.TransformProtocol")

    def refuse(self, error=None, protocol="netstring", times=1):
        for _ in range(times):
            logRefusal(
                self.log,
                error or Overloaded("too many requests"),
                "{protocol} {peer}: closing without a reply: {error}: {reason}",
                refusals=self.refusals,
                protocol=protocol,
                peer="127.0.0.1:5",
            )

    def lines(self) -> list[str]:
        lines = [event["log_format"].format(**event) for event in self.events]
        del self.events[:]
        return lines

    def test_burstThenRate(self):
        """
        A flood writes the burst at once, then two lines a second, and ten
        seconds after the first line left out, how many were left out.
        """
        self.refuse(times=5 + 1234)
        self.assertEqual(
            self.lines(),
            ["netstring 127.0.0.1:5: closing without a reply: overloaded: too many requests"] * 5,
        )
        for _ in range(9):
            self.clock.advance(1)
            self.refuse(times=100)
        self.assertEqual(len(self.lines()), 2 * 9)
        self.clock.advance(1)
        self.assertEqual(
            self.lines(), [f"netstring: {1234 + 9 * 98:,} more 'overloaded' refusals in the last 10 s"]
        )

    def test_summaryLevel(self):
        """
        The summary has the level of the refusals it sums up: a warning for
        C{overloaded}, information for a client's mistake.
        """
        self.refuse(times=6)
        self.refuse(UnknownTransform("unknown transform 'nope'"), times=6)
        self.clock.advance(10)
        summaries = [event for event in self.events if "count" in event]
        self.assertEqual(
            [(event["error"], event["count"], event["log_level"]) for event in summaries],
            [("overloaded", 1, LogLevel.warn), ("unknown-transform", 1, LogLevel.info)],
        )

    def test_kindsApart(self):
        """
        Each protocol and each error has its own allowance.
        """
        self.refuse(times=5)
        self.refuse(BadRequest("malformed netstring"), times=5)
        self.refuse(protocol="amp", times=5)
        self.assertEqual(len(self.lines()), 15)
        self.refuse(protocol="amp")
        self.assertEqual(self.lines(), [])

    def test_quietAfterwards(self):
        """
        Refusals that come slowly are all written, and nothing is summed up.
        """
        for _ in range(20):
            self.refuse()
            self.clock.advance(0.5)
        self.clock.advance(60)
        self.assertEqual(len(self.lines()), 20)
        self.assertEqual(self.clock.getDelayedCalls(), [])

    def test_flush(self):
        """
        L{Refusals.flush} (the listener stops) sums up at once what was left
        out, over the time since the first of them.
        """
        self.refuse(times=8)
        self.clock.advance(2.5)
        self.refuse(times=2)  # written: 2.5 s refill 5 lines
        del self.events[:]
        self.refusals.flush()
        self.assertEqual(self.lines(), ["netstring: 3 more 'overloaded' refusals in the last 2.5 s"])
        self.assertEqual(self.clock.getDelayedCalls(), [])
        self.refusals.flush()
        self.assertEqual(self.lines(), [])

    def test_withoutRefusals(self):
        """
        Without a L{Refusals}, every refusal is written.
        """
        for _ in range(10):
            logRefusal(self.log, Overloaded("busy"), "{error}: {reason}")
        self.assertEqual(self.lines(), ["overloaded: busy"] * 10)


class RefusalLevelTests(SynchronousTestCase):
    def test_levels(self):
        """
        A refusal is a warning when the gateway could not serve a good
        request, information when the client asked for something wrong.
        """
        self.assertEqual(
            {
                error.name: refusalLevel(error("why"))
                for error in (Overloaded, TransformTimeout, TransformFailed)
            },
            dict.fromkeys(["overloaded", "timeout", "transform-failed"], LogLevel.warn),
        )
        self.assertEqual(
            {
                error.name: refusalLevel(error("why"))
                for error in (UnknownTransform, BadRequest, PoemTooLarge, ForbiddenOrigin)
            },
            dict.fromkeys(
                ["unknown-transform", "bad-request", "poem-too-large", "forbidden-origin"], LogLevel.info
            ),
        )
