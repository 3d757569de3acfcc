"""
The behaviour every protocol of the gateway must show, written once.

L{TransformBehaviour} is a mixin for a L{twisted.trial.unittest.SynchronousTestCase}
that runs its cases over one protocol, in memory: the subclass's C{setUp}
sets C{self.network}, a L{tests.memory.MemoryNetwork} on which that
protocol's real server factory listens for L{serverService}, and the
subclass provides

    - C{transform(name, poem)}: a L{Deferred} of the new poem, asked over
      the protocol; the test runs the network until it fires;
    - C{assertRefused(result, errorName)}: run the network until the
      L{Deferred} C{result} fires, and check that it failed the way the
      protocol reports the error C{errorName}.

Time is the network's fake clock: the deadline of L{DEADLINE} seconds
passes only when nothing else is left to happen before it.
(L{tests.test_loopback} proves each protocol over real sockets too.)
"""

from twisted.internet.defer import gatherResults

from service import Limits, TransformService, transforms
from tests.helpers import POEMS, echoed, misbehavingCatalogue

#: The server's poem size limit, small enough to test cheaply.
MAX_POEM_BYTES = 64 * 1024

#: The server's deadline, in seconds of the fake clock.
DEADLINE = 1.0


def serverService(clock) -> TransformService:
    """
    The service behind every protocol's server in the behaviour tests, on
    C{clock}.
    """
    return TransformService(
        misbehavingCatalogue(clock), clock, Limits(maxPoemBytes=MAX_POEM_BYTES, deadline=DEADLINE)
    )


class TransformBehaviour:
    def resultOf(self, result):
        """
        The result of the L{Deferred} C{result}, once the network has run.
        """
        return self.successResultOf(self.network.run(result))

    def test_tutorialExample(self):
        self.assertEqual(self.resultOf(self.transform("cummingsify", "HELLO WORLD")), "hello world")

    def test_everyPoem(self):
        for name, poem in POEMS.items():
            self.assertEqual(self.resultOf(self.transform("piglatin", poem)), transforms.piglatin(poem), name)

    def test_pipelineWithAnAsynchronousStep(self):
        poem = POEMS["fascination"]
        expected = transforms.reverse(echoed(transforms.cummingsify(poem)))
        self.assertEqual(self.resultOf(self.transform("cummingsify|echo|reverse", poem)), expected)

    def test_nonASCII(self):
        poem = POEMS["alla_sera"]
        self.assertEqual(self.resultOf(self.transform("titlecase", poem)), transforms.titlecase(poem))

    def test_dotsAndPipesInThePoem(self):
        self.assertEqual(self.resultOf(self.transform("cummingsify", "A.B|C.")), "a.b|c.")

    def test_emptyPoem(self):
        self.assertEqual(self.resultOf(self.transform("reverse", "")), "")

    def test_largestPoem(self):
        poem = "É" * (MAX_POEM_BYTES // 2)
        self.assertEqual(self.resultOf(self.transform("cummingsify", poem)), "é" * (MAX_POEM_BYTES // 2))

    def test_unknownTransform(self):
        self.assertRefused(self.transform("nope", "poem"), "unknown-transform")

    def test_objectAttributesAreUnknown(self):
        self.assertRefused(self.transform("__class__", "poem"), "unknown-transform")

    def test_badPipeline(self):
        self.assertRefused(self.transform("cummingsify||reverse", "poem"), "bad-request")

    def test_poemTooLarge(self):
        self.assertRefused(self.transform("cummingsify", "É" * (MAX_POEM_BYTES // 2) + "!"), "poem-too-large")

    def test_transformFailed(self):
        self.assertRefused(self.transform("explode", "poem"), "transform-failed")
        self.assertEqual(len(self.flushLoggedErrors(ZeroDivisionError)), 1)

    def test_timeout(self):
        """
        A request that never finishes is refused once its deadline has
        passed, and not before.
        """
        stalled = self.transform("stall", "poem")
        self.network.run(stalled, patience=DEADLINE * 0.99)
        self.assertNoResult(stalled)
        self.assertRefused(stalled, "timeout")
        self.assertGreaterEqual(self.network.reactor.seconds(), DEADLINE)

    def test_concurrentRequests(self):
        poems = [f"POEM NUMBER {i}\nTHE END" for i in range(20)]
        results = self.resultOf(gatherResults([self.transform("cummingsify|echo", poem) for poem in poems]))
        self.assertEqual(results, [echoed(poem.lower()) for poem in poems])

    def test_aStalledRequestDoesNotHoldUpOthers(self):
        stalled = self.transform("stall", "poem")
        self.assertEqual(self.resultOf(self.transform("cummingsify", "FAST")), "fast")
        self.assertLess(self.network.reactor.seconds(), DEADLINE)
        self.assertNoResult(stalled)
        self.assertRefused(stalled, "timeout")
