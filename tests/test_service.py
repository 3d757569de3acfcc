"""
The transform service: catalogue, pipelines, limits, deadlines and errors,
on a fake clock.
"""

from twisted.internet import reactor
from twisted.internet.defer import CancelledError, Deferred
from twisted.internet.error import DNSLookupError
from twisted.internet.task import Clock, deferLater
from twisted.trial.unittest import SynchronousTestCase, TestCase

from service import (
    BadRequest,
    Caller,
    Catalogue,
    Limits,
    Overloaded,
    PoemTooLarge,
    Slicing,
    Transform,
    TransformFailed,
    TransformService,
    TransformTimeout,
    UnknownTransform,
    builtinCatalogue,
    transforms,
)
from service.catalogue import MAX_NAME_LENGTH, MAX_PIPELINE_STEPS
from service.deadline import withDeadline
from service.slicing import mapInSlices
from tests.helpers import POEMS, captureLogs, echoed, explode, misbehavingCatalogue


class ServiceTestCase(SynchronousTestCase):
    def setUp(self):
        self.clock = Clock()
        self.service = self.makeService()

    def makeService(self, **limits):
        return TransformService(misbehavingCatalogue(self.clock), self.clock, Limits(**limits))

    def failsWith(self, result, *errorTypes):
        return self.failureResultOf(result, *errorTypes).value


class CatalogueTests(SynchronousTestCase):
    def test_onlyCatalogueEntriesCanBeCalled(self):
        """
        Names that are attributes of Python objects are just unknown names.
        """
        catalogue = builtinCatalogue(Clock())
        for name in ["__class__", "__init__", "lookup", "_entries", "pipeline", "transforms", "upper"]:
            self.assertRaises(UnknownTransform, catalogue.lookup, name)

    def test_duplicateOrUnusableNames(self):
        catalogue = Catalogue([Transform("a", "A", str.upper)])
        self.assertRaises(ValueError, catalogue.add, Transform("a", "again", str.lower))
        for bad in ["", "a|b", "a b"]:
            self.assertRaises(ValueError, catalogue.add, Transform(bad, "bad", str.lower))

    def test_pipelineParsing(self):
        catalogue = builtinCatalogue(Clock())
        steps = catalogue.pipeline("cummingsify | reverse|echo")
        self.assertEqual([step.name for step in steps], ["cummingsify", "reverse", "echo"])

    def test_badPipelines(self):
        catalogue = builtinCatalogue(Clock())
        for name in ["", "|", "cummingsify|", "|reverse", "a||b", "x" * (MAX_NAME_LENGTH + 1)]:
            self.assertRaises(BadRequest, catalogue.pipeline, name)
        self.assertRaises(BadRequest, catalogue.pipeline, "|".join(["reverse"] * (MAX_PIPELINE_STEPS + 1)))
        self.assertEqual(len(catalogue.pipeline("|".join(["reverse"] * MAX_PIPELINE_STEPS))), 16)


class TransformServiceTests(ServiceTestCase):
    def test_transform(self):
        result = self.service.transform("cummingsify", "HELLO WORLD")
        self.assertEqual(self.successResultOf(result), "hello world")
        self.assertEqual(self.service.inFlight, 0)

    def test_listsTheCatalogue(self):
        names = [entry.name for entry in self.service.transforms()]
        self.assertIn("cummingsify", names)
        self.assertIn("echo", names)

    def test_pipelineMixingSyncAndAsyncSteps(self):
        """
        Steps run left to right, asynchronous ones included.
        """
        result = self.service.transform("cummingsify|echo|reverse", "ONE TWO\nTHREE")
        self.assertNoResult(result)
        self.clock.advance(0)
        self.assertEqual(self.successResultOf(result), "three … three … three\none two … two … two")

    def test_everyPoemThroughALongPipeline(self):
        name = "cummingsify|shuffle|piglatin|titlecase|mirror|reverse|rot13|echo"
        for poem in POEMS.values():
            result = self.service.transform(name, poem)
            self.clock.advance(0)
            self.assertIsInstance(self.successResultOf(result), str)

    def test_unknownStepRunsNothing(self):
        """
        A pipeline with an unknown step fails before any step runs.
        """
        calls = []
        catalogue = Catalogue([Transform("count", "counts", lambda poem: calls.append(poem) or poem)])
        service = TransformService(catalogue, self.clock)
        error = self.failsWith(service.transform("count|nope", "poem"), UnknownTransform)
        self.assertEqual(error.message, "unknown transform 'nope'")
        self.assertEqual(calls, [])

    def test_badNames(self):
        for name in ["", "__class__", "a||b", "cummingsify.reverse"]:
            error = self.failsWith(self.service.transform(name, "poem"), BadRequest, UnknownTransform)
            self.assertIn(error.name, {"bad-request", "unknown-transform"})

    def test_sizeLimitInUTF8Bytes(self):
        service = self.makeService(maxPoemBytes=10)
        self.assertEqual(self.successResultOf(service.transform("cummingsify", "A" * 10)), "a" * 10)
        self.failsWith(service.transform("cummingsify", "A" * 11), PoemTooLarge)
        self.assertEqual(self.successResultOf(service.transform("cummingsify", "É" * 5)), "é" * 5)
        error = self.failsWith(service.transform("cummingsify", "É" * 6), PoemTooLarge)
        self.assertEqual(
            error.message, "the poem is 12 bytes; this gateway accepts at most 10 (--max-poem-bytes)"
        )

    def test_loneSurrogateIsABadRequest(self):
        self.failsWith(self.service.transform("cummingsify", "a\ud800b"), BadRequest)

    def test_resultOverTheLimitFails(self):
        service = self.makeService(maxPoemBytes=20)
        result = service.transform("echo", "a few words")
        self.clock.advance(0)
        error = self.failsWith(result, TransformFailed)
        self.assertIn("transformed poem", error.message)

    def test_raisingTransformFailsAndIsLogged(self):
        """
        A transform that raises gives L{TransformFailed}; the cause is logged
        with its traceback, not swallowed.
        """
        events = captureLogs(self)
        error = self.failsWith(self.service.transform("cummingsify|explode", "poem"), TransformFailed)
        self.assertEqual(error.message, "transform 'explode' failed")
        self.assertEqual(len(self.flushLoggedErrors(ZeroDivisionError)), 1)
        self.assertTrue(any(event.get("transform") == "explode" for event in events))

    def test_answerThatIsNotAPoemFails(self):
        events = captureLogs(self)
        self.failsWith(self.service.transform("number", "poem"), TransformFailed)
        self.assertTrue(any(event.get("kind") == "int" for event in events))

    def test_deadline(self):
        """
        A request still running at its deadline fails with
        L{TransformTimeout}; the late result is discarded.
        """
        late = Deferred()
        catalogue = Catalogue([Transform("slow", "slow", lambda poem: late)])
        service = TransformService(catalogue, self.clock, Limits(deadline=2.0))
        result = service.transform("slow", "poem")
        self.clock.advance(1.9)
        self.assertNoResult(result)
        self.clock.advance(0.1)
        error = self.failsWith(result, TransformTimeout)
        self.assertEqual(error.message, "no result within 2 seconds")
        self.assertEqual(service.inFlight, 0)
        late.callback("too late")  # discarded, raises nothing

    def test_deadlineCoversTheWholePipeline(self):
        catalogue = Catalogue(
            [Transform("second", "takes a second", lambda poem: deferLater(self.clock, 1, str.upper, poem))]
        )
        service = TransformService(catalogue, self.clock, Limits(deadline=2.5))
        result = service.transform("second|second|second", "poem")
        self.clock.advance(2)
        self.assertNoResult(result)
        self.clock.advance(0.5)
        self.failsWith(result, TransformTimeout)
        self.assertEqual(self.clock.getDelayedCalls(), [])

    def test_overloaded(self):
        service = self.makeService(maxInFlight=2)
        first, second = service.transform("stall", "1"), service.transform("echo", "2")
        self.failsWith(service.transform("cummingsify", "3"), Overloaded)
        self.clock.advance(0)
        self.successResultOf(second)
        self.assertEqual(self.successResultOf(service.transform("cummingsify", "A")), "a")
        first.cancel()
        self.failsWith(first, CancelledError)
        self.assertEqual(service.inFlight, 0)

    def test_callerCancels(self):
        """
        Cancelling a request cancels the running step and frees its slot.
        """
        result = self.service.transform("echo", "poem")
        result.cancel()
        self.failureResultOf(result, CancelledError)
        self.assertEqual(self.service.inFlight, 0)
        self.assertEqual(self.clock.getDelayedCalls(), [])


class LimitsTests(SynchronousTestCase):
    def test_mustBePositive(self):
        for bad in [dict(maxPoemBytes=0), dict(deadline=0), dict(maxInFlight=0), dict(deadline=float("nan"))]:
            self.assertRaises(ValueError, Limits, **bad)


class DelegationTests(ServiceTestCase):
    """
    A prefix delegated to a resolver: C{up:NAME} is what the resolver makes
    of C{NAME}, and joins pipelines like any entry.
    """

    def setUp(self):
        super().setUp()
        self.asked = []
        self.upstream = {}
        self.service.catalogue.delegate("up", self.resolve)

    def resolve(self, name):
        self.asked.append(name)

        def call(poem):
            self.upstream[name] = Deferred()
            return self.upstream[name]

        return Transform(f"up:{name}", f"{name}, upstream", call)

    def test_resolved(self):
        self.assertEqual(self.service.catalogue.lookup("up:cummingsify").name, "up:cummingsify")
        self.assertEqual(self.asked, ["cummingsify"])

    def test_restMayHoldThePrefixSeparator(self):
        """
        An upstream may delegate in turn: the rest of the name is passed on
        whole.
        """
        self.service.catalogue.lookup("up:further:reverse")
        self.assertEqual(self.asked, ["further:reverse"])

    def test_joinsPipelines(self):
        result = self.service.transform("cummingsify|up:mirror|reverse", "A\nB")
        self.upstream["mirror"].callback("b\na")
        self.clock.advance(0)
        self.assertEqual(self.successResultOf(result), "a\nb")

    def test_prefixWhateverItsCase(self):
        """
        A delegated prefix is matched without regard to case; the rest of
        the name is passed on as it is.
        """
        self.assertEqual(self.service.catalogue.lookup("UP:Cummingsify").name, "up:Cummingsify")
        self.assertEqual(self.asked, ["Cummingsify"])
        self.assertRaises(ValueError, self.service.catalogue.delegate, "Up", self.resolve)

    def test_closestPrefixAsAHint(self):
        error = self.failsWith(self.service.transform("uq:cummingsify", "poem"), UnknownTransform)
        self.assertEqual(error.message, "unknown transform 'uq:cummingsify'; did you mean 'up:cummingsify'?")

    def test_onlyDelegatedPrefixes(self):
        """
        The whitelist holds: an undelegated prefix, or an unusable name after
        a delegated one, is an unknown transform and the resolver is not
        asked.
        """
        for name in ["down:cummingsify", "up:", "up: x", "up:a b", ":cummingsify", "up|x:cummingsify"]:
            self.failsWith(self.service.transform(name, "poem"), UnknownTransform)
        self.assertEqual(self.asked, [])

    def test_upstreamStepsHaveTheDeadline(self):
        result = self.service.transform("up:stall", "poem")
        self.clock.advance(Limits.deadline)
        self.failsWith(result, TransformTimeout)
        self.assertTrue(self.upstream["stall"].called)  # cancelled
        self.assertEqual(self.service.inFlight, 0)

    def test_unusablePrefixes(self):
        catalogue = self.service.catalogue
        self.assertRaises(ValueError, catalogue.delegate, "up", self.resolve)
        for prefix in ["", "a:b", "a.b", "a|b", "a b", "é"]:
            self.assertRaises(ValueError, catalogue.delegate, prefix, self.resolve)

    def test_entriesCannotLookDelegated(self):
        self.assertRaises(ValueError, self.service.catalogue.add, Transform("up:x", "x", str.upper))


class WithDeadlineTests(SynchronousTestCase):
    def setUp(self):
        self.clock = Clock()

    def test_whateverTheCancelledOperationReports(self):
        """
        At the deadline the failure is a timeout, even when the cancelled
        operation fails with an error of its own, as C{HostnameEndpoint}
        does with C{DNSLookupError} while it resolves.
        """
        connecting = Deferred(lambda d: d.errback(DNSLookupError("127.0.0.1")))
        withDeadline(connecting, 3, self.clock, "no connection")
        self.clock.advance(3)
        error = self.failureResultOf(connecting, TransformTimeout).value
        self.assertEqual(error.message, "no connection within 3 seconds")

    def test_failuresBeforeTheDeadlineStayAsTheyAre(self):
        connecting = withDeadline(Deferred(), 3, self.clock, "no connection")
        connecting.errback(DNSLookupError("nowhere.invalid"))
        self.failureResultOf(connecting, DNSLookupError)
        self.assertEqual(self.clock.getDelayedCalls(), [])

    def test_cancelledByTheCaller(self):
        connecting = withDeadline(Deferred(), 3, self.clock, "no connection")
        connecting.cancel()
        self.failureResultOf(connecting, CancelledError)


def upperInSlices(slices: list[str]):
    """
    A sliced C{str.upper} that records each group of lines it is given.
    """

    def upper(group: str) -> str:
        slices.append(group)
        return group.upper()

    return lambda poem, sliceChars: mapInSlices(upper, poem, sliceChars)


class AtOnceTests(ServiceTestCase):
    """
    A request whose steps are all of known cost, and cost less than a turn's
    budget together, is answered at once.
    """

    PIPELINE = "cummingsify|reverse|mirror|rot13|titlecase|piglatin|shuffle"

    def test_answeredAtOnce(self):
        """
        The answer is an already-fired L{Deferred}; no deadline was set and
        the request never counted as in flight.
        """
        poem = "ONE TWO THREE\nFOUR FIVE"
        expected = poem
        for name in self.PIPELINE.split("|"):
            expected = getattr(transforms, name)(expected)
        result = self.service.transform(self.PIPELINE, poem)
        self.assertEqual(self.successResultOf(result), expected)
        self.assertEqual(self.clock.getDelayedCalls(), [])

    def test_sameErrors(self):
        """
        A transform of known cost that raises fails at once, is logged, and
        gives L{TransformFailed}; one whose answer is over the limit too.
        """
        slicing = Slicing(lambda poem, sliceChars: mapInSlices(explode, poem, sliceChars), 1000)
        catalogue = Catalogue(
            [
                Transform("explode", "raises", explode, slicing=slicing),
                Transform("double", "doubles", lambda poem: poem * 2, slicing=slicing),
            ]
        )
        service = TransformService(catalogue, self.clock, Limits(maxPoemBytes=10))
        captureLogs(self)
        error = self.failsWith(service.transform("explode", "poem"), TransformFailed)
        self.assertEqual(error.message, "transform 'explode' failed")
        self.assertEqual(len(self.flushLoggedErrors(ZeroDivisionError)), 1)
        error = self.failsWith(service.transform("double", "123456"), TransformFailed)
        self.assertEqual(
            error.message,
            "the transformed poem is 12 bytes; this gateway accepts at most 10 (--max-poem-bytes)",
        )

    def test_refusedPastTheCap(self):
        """
        A cheap request is refused when the service is full, as any other.
        """
        service = self.makeService(maxInFlight=1)
        stalled = service.transform("stall", "poem")
        self.failsWith(service.transform("cummingsify", "A"), Overloaded)
        stalled.cancel()
        self.failsWith(stalled, CancelledError)
        self.assertEqual(self.successResultOf(service.transform("cummingsify", "A")), "a")

    def test_overTheBudget(self):
        """
        A poem that would cost more than a turn's budget is not answered at
        once, but through the reactor, in slices; the steps before it that
        fit the budget run at once.
        """
        slices = []
        catalogue = Catalogue(
            [Transform("upper", "upper", str.upper, slicing=Slicing(upperInSlices(slices), 10))]
        )
        service = TransformService(catalogue, self.clock, Limits(turnBudget=0.001))
        self.assertEqual(self.successResultOf(service.transform("upper", "a" * 10)), "A" * 10)
        self.assertEqual(slices, [])
        result = service.transform("upper", "a\nb\nc" * 4)
        self.assertNoResult(result)
        self.assertEqual(service.inFlight, 1)
        self.clock.advance(0)
        self.assertEqual(self.successResultOf(result), "A\nB\nC" * 4)
        self.assertEqual(slices, ["a\nb\nca\nb\n", "ca\nb\nca\nb\n", "c"])  # 10 characters at most
        self.assertEqual(service.inFlight, 0)

    def test_unknownCostIsNeverAtOnce(self):
        """
        A transform of unknown cost runs as it always did: through the
        coroutine, counted in flight, even if it answers at once.
        """
        seen = []
        catalogue = Catalogue(
            [Transform("upper", "upper", lambda poem: seen.append(service.inFlight) or poem.upper())]
        )
        service = TransformService(catalogue, self.clock)
        self.assertEqual(self.successResultOf(service.transform("upper", "a")), "A")
        self.assertEqual(seen, [1])
        self.assertEqual(service.inFlight, 0)


class SlicedTests(SynchronousTestCase):
    """
    Large poems for transforms of known cost are worked through a group of
    lines at a time, turn after turn of the reactor.
    """

    def setUp(self):
        self.clock = Clock()
        self.slices = []

        def upper(group: str) -> str:
            self.slices.append(group)
            self.clock.rightNow += 0.5  # each slice takes half a second
            return group.upper()

        slicing = Slicing(lambda poem, sliceChars: mapInSlices(upper, poem, sliceChars), 1)
        catalogue = Catalogue([Transform("upper", "upper", str.upper, slicing=slicing)])
        # A budget of 0: slices of one character (so, one line) and one
        # slice per turn.
        self.service = TransformService(catalogue, self.clock, Limits(deadline=2, turnBudget=0))

    def test_deadlineBetweenSlices(self):
        """
        The deadline applies between slices: once it has passed, the
        request fails with L{TransformTimeout} and no other slice runs.
        """
        result = self.service.transform("upper", "a\nb\nc\nd\ne\nf")
        self.clock.advance(0)
        self.assertEqual(
            self.failureResultOf(result, TransformTimeout).value.message, "no result within 2 seconds"
        )
        self.assertEqual(self.slices, ["a\n", "b\n", "c\n", "d\n"])
        self.clock.advance(10)
        self.assertEqual(self.slices, ["a\n", "b\n", "c\n", "d\n"])
        self.assertEqual(self.clock.getDelayedCalls(), [])
        self.assertEqual(self.service.inFlight, 0)

    def test_cancelStopsTheWork(self):
        result = self.service.transform("upper", "a\nb\nc")
        result.cancel()
        self.failureResultOf(result, CancelledError)
        self.clock.advance(0)
        self.assertEqual(self.slices, [])
        self.assertEqual(self.service.inFlight, 0)

    def test_everyBuiltinTransformInSlices(self):
        """
        In slices of one line, every built-in transform makes the same poem
        as in one call.
        """
        service = TransformService(builtinCatalogue(self.clock), self.clock, Limits(turnBudget=0))
        for entry in service.transforms():
            for name, poem in POEMS.items():
                result = service.transform(entry.name, poem)
                self.assertNoResult(result)
                self.clock.advance(0)
                expected = echoed(poem) if entry.name == "echo" else entry.function(poem)
                self.assertEqual(self.successResultOf(result), expected, f"{entry.name} on {name}")


class MeasuredInSlicesTests(ServiceTestCase):
    """
    The size of a long poem that is not ASCII is measured in slices too
    (with a budget of 0, any such poem of two characters or more).
    """

    def setUp(self):
        super().setUp()
        self.service = self.makeService(maxPoemBytes=10, turnBudget=0)

    def test_overTheLimit(self):
        result = self.service.transform("cummingsify", "É" * 6)
        self.assertNoResult(result)
        self.clock.advance(0)
        error = self.failsWith(result, PoemTooLarge)
        self.assertEqual(
            error.message, "the poem is 12 bytes; this gateway accepts at most 10 (--max-poem-bytes)"
        )
        self.assertEqual(self.service.inFlight, 0)

    def test_moreCharactersThanBytesAllowed(self):
        """
        A poem of more characters than the limit has bytes is refused at
        once, unmeasured.
        """
        error = self.failsWith(self.service.transform("cummingsify", "É" * 11), PoemTooLarge)
        self.assertEqual(
            error.message, "the poem is over 11 bytes; this gateway accepts at most 10 (--max-poem-bytes)"
        )

    def test_withinTheLimit(self):
        result = self.service.transform("cummingsify", "É" * 5)
        self.clock.advance(0)
        self.assertEqual(self.successResultOf(result), "é" * 5)

    def test_loneSurrogate(self):
        result = self.service.transform("cummingsify", "ab\ud800")
        self.clock.advance(0)
        self.failsWith(result, BadRequest)

    def test_resultOverTheLimit(self):
        result = self.service.transform("echo", "éé")
        self.clock.advance(0)
        error = self.failsWith(result, TransformFailed)
        self.assertEqual(
            error.message,
            "the transformed poem is 22 bytes; this gateway accepts at most 10 (--max-poem-bytes)",
        )


class SlicedOnTheReactorTests(TestCase):
    """
    The slices on the real reactor, with the real budget of a turn.
    """

    async def test_otherWorkRunsBetweenSlices(self):
        """
        Sixteen C{mirror} steps on a MiB of newlines (about 0.4 s of work)
        leave the reactor free to run a call scheduled after they started,
        long before they end.
        """
        service = TransformService(builtinCatalogue(reactor), reactor, Limits(deadline=60))
        poem = "\n" * (1 << 20)
        result = service.transform("|".join(["mirror"] * 16), poem)
        self.assertFalse(await deferLater(reactor, 0, lambda: result.called))
        self.assertEqual(await result, poem)


class CallerTests(ServiceTestCase):
    """
    A L{Caller} is held to its connection's and its address's share of the
    requests in flight.
    """

    def setUp(self):
        super().setUp()
        self.service = self.makeService(maxInFlight=6, maxInFlightPerConnection=2, maxInFlightPerPeer=4)

    def stall(self, caller):
        return self.service.transform("stall", "poem", caller)

    def test_connectionCap(self):
        connection = Caller("192.0.2.1", object())
        stalled = [self.stall(connection), self.stall(connection)]
        error = self.failsWith(self.stall(connection), Overloaded)
        self.assertEqual(
            error.message,
            "this connection already has 2 requests in flight, the most one connection may have; "
            "wait for an answer before asking again",
        )
        self.failsWith(self.service.transform("cummingsify", "A", connection), Overloaded)
        self.assertNoResult(self.stall(Caller("192.0.2.1", object())))  # another connection
        stalled[0].cancel()
        self.failsWith(stalled[0], CancelledError)
        self.assertNoResult(self.stall(connection))

    def test_peerCap(self):
        """
        The connections of one address share its cap; other addresses, and
        requests of no caller, still get the rest.
        """
        for _ in range(2):
            connection = Caller("192.0.2.1", object())
            self.stall(connection), self.stall(connection)
        error = self.failsWith(self.stall(Caller("192.0.2.1", object())), Overloaded)
        self.assertEqual(
            error.message,
            "address 192.0.2.1 already has 4 requests in flight, the most one address may have; try again later",
        )
        self.assertNoResult(self.stall(Caller("192.0.2.2", object())))
        self.assertNoResult(self.stall(None))
        error = self.failsWith(self.stall(Caller("192.0.2.3", object())), Overloaded)
        self.assertEqual(
            error.message,
            "the gateway already has 6 requests in flight, the most it takes at once (--max-in-flight); "
            "try again later",
        )

    def test_slotsAreGivenBack(self):
        """
        However requests end (an answer, an error, a timeout, a
        cancellation), their slots are free again.
        """
        connection = Caller("192.0.2.1", object())
        echoed = self.service.transform("echo", "poem", connection)
        failed = self.service.transform("explode|echo", "poem", connection)
        self.flushLoggedErrors(ZeroDivisionError)
        self.clock.advance(0)
        self.successResultOf(echoed)
        self.failsWith(failed, TransformFailed)
        timedOut, cancelled = self.stall(connection), self.stall(connection)
        cancelled.cancel()
        self.failsWith(cancelled, CancelledError)
        self.clock.advance(Limits.deadline)
        self.failsWith(timedOut, TransformTimeout)
        self.assertEqual(self.service.inFlight, 0)
        for _ in range(2):
            self.assertNoResult(self.stall(connection))

    def test_defaultShares(self):
        """
        By default a connection may have an eighth of the requests in
        flight, an address half, and always at least one.
        """
        self.assertEqual((Limits().maxInFlightPerConnection, Limits().maxInFlightPerPeer), (32, 128))
        limits = Limits(maxInFlight=16)
        self.assertEqual((limits.maxInFlightPerConnection, limits.maxInFlightPerPeer), (2, 8))
        limits = Limits(maxInFlight=1)
        self.assertEqual((limits.maxInFlightPerConnection, limits.maxInFlightPerPeer), (1, 1))
        for bad in [dict(maxInFlightPerConnection=0), dict(maxInFlightPerPeer=0), dict(turnBudget=-1)]:
            self.assertRaises(ValueError, Limits, **bad)


class WordingTests(ServiceTestCase):
    """
    Each error is worded once, in the service, for every protocol.
    """

    def test_poemTooLarge(self):
        error = PoemTooLarge.forSize(5_242_905, 1_048_576)
        self.assertEqual(
            error.message,
            "the poem is 5,242,905 bytes; this gateway accepts at most 1,048,576 (--max-poem-bytes)",
        )
        self.assertEqual(error.name, "poem-too-large")

    def test_poemTooLargeWithOnlyALowerBound(self):
        """
        A protocol that stops reading a poem once it is over the limit knows
        only that.
        """
        self.assertEqual(
            PoemTooLarge.forSize(1_048_576, 1_048_576, exact=False).message,
            "the poem is over 1,048,576 bytes; this gateway accepts at most 1,048,576 (--max-poem-bytes)",
        )

    def test_closestNamesAsAHint(self):
        for name, message in [
            ("cumingsify", "unknown transform 'cumingsify'; did you mean 'cummingsify'?"),
            ("reverse|mirorr", "unknown transform 'mirorr'; did you mean 'mirror'?"),
            ("nope", "unknown transform 'nope'"),
            ("x" * 100, f"unknown transform '{'x' * 64}…'"),
        ]:
            error = self.failsWith(self.service.transform(name, "poem"), UnknownTransform)
            self.assertEqual(error.message, message)

    def test_namesWhateverTheirCase(self):
        """
        Names are matched without regard to case; so no two entries may
        differ only by case.
        """
        self.assertEqual(self.successResultOf(self.service.transform("CUMMINGSIFY|Reverse", "A\nB")), "b\na")
        self.assertEqual(self.service.catalogue.lookup("Echo").name, "echo")
        self.assertRaises(ValueError, self.service.catalogue.add, Transform("ECHO", "again", str.upper))

    def test_loneSurrogate(self):
        error = self.failsWith(self.service.transform("cummingsify", "a\ud800b"), BadRequest)
        self.assertEqual(error.message, "the poem is not valid Unicode text (it holds a lone surrogate)")
