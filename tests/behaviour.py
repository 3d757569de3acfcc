"""
The behaviour every protocol of the gateway must show, written once.

L{TransformBehaviour} is a mixin for a L{twisted.trial.unittest.TestCase}
that runs its cases over one protocol, through real sockets on loopback: its
C{setUp} starts that protocol's server for L{serverService} and it provides

    - C{transform(name, poem)}: a L{Deferred} firing with the new poem, got
      over the protocol from the server;
    - C{assertRefused(result, errorName)}: a L{Deferred} that succeeds if
      C{result} failed the way the protocol reports the error C{errorName}.
"""

from twisted.internet import reactor
from twisted.internet.defer import ensureDeferred, gatherResults

from service import Limits, TransformService, transforms
from tests.helpers import POEMS, echoed, misbehavingCatalogue

#: The server's poem size limit, small enough to test cheaply.
MAX_POEM_BYTES = 64 * 1024

#: The server's deadline: long enough for loopback, short for the tests.
DEADLINE = 1.0


def serverService() -> TransformService:
    """
    The service behind every protocol's server in the behaviour tests.
    """
    return TransformService(
        misbehavingCatalogue(reactor), reactor, Limits(maxPoemBytes=MAX_POEM_BYTES, deadline=DEADLINE)
    )


class TransformBehaviour:
    async def test_tutorialExample(self):
        self.assertEqual(await self.transform("cummingsify", "HELLO WORLD"), "hello world")

    async def test_everyPoem(self):
        for name, poem in POEMS.items():
            self.assertEqual(await self.transform("piglatin", poem), transforms.piglatin(poem), name)

    async def test_pipelineWithAnAsynchronousStep(self):
        poem = POEMS["fascination"]
        expected = transforms.reverse(echoed(transforms.cummingsify(poem)))
        self.assertEqual(await self.transform("cummingsify|echo|reverse", poem), expected)

    async def test_nonASCII(self):
        poem = POEMS["alla_sera"]
        self.assertEqual(await self.transform("titlecase", poem), transforms.titlecase(poem))

    async def test_dotsAndPipesInThePoem(self):
        self.assertEqual(await self.transform("cummingsify", "A.B|C."), "a.b|c.")

    async def test_emptyPoem(self):
        self.assertEqual(await self.transform("reverse", ""), "")

    async def test_largestPoem(self):
        poem = "É" * (MAX_POEM_BYTES // 2)
        self.assertEqual(await self.transform("cummingsify", poem), "é" * (MAX_POEM_BYTES // 2))

    async def test_unknownTransform(self):
        await self.assertRefused(self.transform("nope", "poem"), "unknown-transform")

    async def test_objectAttributesAreUnknown(self):
        await self.assertRefused(self.transform("__class__", "poem"), "unknown-transform")

    async def test_badPipeline(self):
        await self.assertRefused(self.transform("cummingsify||reverse", "poem"), "bad-request")

    async def test_poemTooLarge(self):
        await self.assertRefused(
            self.transform("cummingsify", "É" * (MAX_POEM_BYTES // 2) + "!"), "poem-too-large"
        )

    async def test_transformFailed(self):
        await self.assertRefused(self.transform("explode", "poem"), "transform-failed")
        self.assertEqual(len(self.flushLoggedErrors(ZeroDivisionError)), 1)

    async def test_timeout(self):
        await self.assertRefused(self.transform("stall", "poem"), "timeout")

    async def test_concurrentRequests(self):
        poems = [f"POEM NUMBER {i}\nTHE END" for i in range(20)]
        results = await gatherResults([self.transform("cummingsify|echo", poem) for poem in poems])
        self.assertEqual(results, [echoed(poem.lower()) for poem in poems])

    async def test_aStalledRequestDoesNotHoldUpOthers(self):
        stalled = ensureDeferred(self.assertRefused(self.transform("stall", "poem"), "timeout"))
        self.assertEqual(await self.transform("cummingsify", "FAST"), "fast")
        self.assertFalse(stalled.called)
        await stalled
