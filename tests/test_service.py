"""
The transform service: catalogue, pipelines, limits, deadlines and errors,
on a fake clock.
"""

from twisted.internet.defer import CancelledError, Deferred, succeed
from twisted.internet.error import DNSLookupError
from twisted.internet.task import Clock, deferLater
from twisted.trial.unittest import SynchronousTestCase

from service import (
    BadRequest,
    Catalogue,
    Limits,
    Overloaded,
    PoemTooLarge,
    Transform,
    TransformFailed,
    TransformService,
    TransformTimeout,
    UnknownTransform,
    builtinCatalogue,
)
from service.catalogue import MAX_NAME_LENGTH, MAX_PIPELINE_STEPS
from service.deadline import withDeadline
from tests.helpers import POEMS, captureLogs, misbehavingCatalogue


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
        catalogue = Catalogue([Transform("slow", "slow", lambda poem: late, offloadable=False)])
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


class OffloadTests(SynchronousTestCase):
    def setUp(self):
        self.clock = Clock()
        self.offloaded = []

        def offload(function, poem):
            self.offloaded.append(poem)
            return succeed(function(poem))

        self.service = TransformService(
            misbehavingCatalogue(self.clock), self.clock, Limits(offloadBytes=100), offload=offload
        )

    def test_largePoemsAreOffloaded(self):
        self.successResultOf(self.service.transform("titlecase|piglatin", "a " * 50))
        self.assertEqual(self.offloaded, ["a " * 50, "A " * 50])

    def test_smallPoemsAreNot(self):
        self.successResultOf(self.service.transform("piglatin", "a" * 99))
        self.assertEqual(self.offloaded, [])

    def test_cheapTransformsAreNot(self):
        """
        Transforms that are cheap even on the largest poem stay in the
        caller's thread.
        """
        self.successResultOf(self.service.transform("cummingsify|reverse|mirror|rot13", "A" * 100))
        self.assertEqual(self.offloaded, [])

    def test_asynchronousTransformsAreNot(self):
        result = self.service.transform("echo", "A" * 100)
        self.clock.advance(0)
        self.successResultOf(result)
        self.assertEqual(self.offloaded, [])


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

        return Transform(f"up:{name}", f"{name}, upstream", call, offloadable=False)

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
