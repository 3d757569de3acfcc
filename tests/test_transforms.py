"""
Every built-in transform, on every bundled poem.
"""

import re

from twisted.internet import reactor
from twisted.internet.defer import CancelledError
from twisted.internet.task import Clock, deferLater
from twisted.trial.unittest import SynchronousTestCase, TestCase

from service import builtinCatalogue, transforms
from tests.helpers import POEMS, echoed


def words(text: str) -> list[str]:
    return text.split()


class EveryTransformOnEveryPoemTests(SynchronousTestCase):
    def test_everyTransformChangesEveryPoem(self):
        """
        Every catalogue entry turns every bundled poem into a different,
        non-empty poem with as many lines.
        """
        clock = Clock()
        catalogue = builtinCatalogue(clock)
        self.assertGreaterEqual(len(catalogue), 6)
        for entry in catalogue:
            for name, poem in POEMS.items():
                result = self.successResultOf(_run(entry.function, poem, clock))
                self.assertIsInstance(result, str)
                self.assertNotEqual(result, poem, f"{entry.name} on {name}")
                self.assertEqual(result.count("\n"), poem.count("\n"), f"{entry.name} on {name}")

    def test_descriptionsAreOneLine(self):
        for entry in builtinCatalogue(Clock()):
            self.assertTrue(entry.description)
            self.assertNotIn("\n", entry.description)


def _run(function, poem, clock):
    from twisted.internet.defer import maybeDeferred

    result = maybeDeferred(function, poem)
    clock.advance(0)
    return result


class TransformTests(SynchronousTestCase):
    def test_cummingsifyIsTheTutorials(self):
        self.assertEqual(transforms.cummingsify("HELLO World"), "hello world")
        for poem in POEMS.values():
            self.assertEqual(transforms.cummingsify(poem), poem.lower())

    def test_reverseLines(self):
        self.assertEqual(transforms.reverse("one\ntwo\nthree\n"), "three\ntwo\none\n")
        self.assertEqual(transforms.reverse("one\ntwo"), "two\none")
        for poem in POEMS.values():
            self.assertEqual(transforms.reverse(transforms.reverse(poem)), poem)

    def test_mirror(self):
        self.assertEqual(transforms.mirror("abc\ndef"), "cba\nfed")
        for poem in POEMS.values():
            self.assertEqual(transforms.mirror(transforms.mirror(poem)), poem)

    def test_titlecase(self):
        self.assertEqual(
            transforms.titlecase("the fascination of what's DIFFICULT"),
            "The Fascination Of What's Difficult",
        )
        self.assertEqual(transforms.titlecase("perché l’immago"), "Perché L’immago")

    def test_piglatin(self):
        self.assertEqual(transforms.piglatin("science"), "iencescay")
        self.assertEqual(transforms.piglatin("old"), "oldway")
        self.assertEqual(transforms.piglatin("Science! true"), "Iencescay! uetray")
        self.assertEqual(transforms.piglatin("quiet rhythm"), "ietquay ythmrhay")
        self.assertEqual(transforms.piglatin("HEART"), "EARTHAY")

    def test_shuffleIsADeterministicPermutationOfEachLine(self):
        for poem in POEMS.values():
            shuffled = transforms.shuffle(poem)
            self.assertEqual(shuffled, transforms.shuffle(poem))
            for before, after in zip(poem.split("\n"), shuffled.split("\n"), strict=True):
                self.assertEqual(sorted(words(before)), sorted(words(after)))
                self.assertEqual(re.match(r"\s*", before).group(), re.match(r"\s*", after).group())

    def test_rot13(self):
        self.assertEqual(transforms.rot13("Hello"), "Uryyb")
        for poem in POEMS.values():
            self.assertEqual(transforms.rot13(transforms.rot13(poem)), poem)

    def test_echoAnswersLater(self):
        """
        C{echo} is asynchronous: nothing until the reactor turns, then every
        line with words is followed by its last word twice.
        """
        clock = Clock()
        result = transforms.echo(clock)("Science! true daughter\n\nthou art!")
        self.assertNoResult(result)
        clock.advance(0)
        self.assertEqual(
            self.successResultOf(result),
            "Science! true daughter … daughter … daughter\n\nthou art! … art … art",
        )

    def test_echoCancelledBeforeItStarts(self):
        clock = Clock()
        result = transforms.echo(clock)("poem")
        result.cancel()
        self.failureResultOf(result, CancelledError)
        clock.advance(0)
        self.assertEqual(clock.getDelayedCalls(), [])


class SlicedTwinTests(SynchronousTestCase):
    """
    Each synchronous transform has a twin that makes the same poem a group
    of lines at a time.
    """

    def assertSameInSlices(self, entry, poem):
        slices = {}
        for sliceChars in [1, 2, 7, 100, 10**6]:
            work = entry.slicing.run(poem, sliceChars)
            slices[sliceChars] = 0
            while True:
                try:
                    next(work)
                    slices[sliceChars] += 1
                except StopIteration as done:
                    self.assertEqual(done.value, entry.function(poem), f"{entry.name} by {sliceChars}")
                    break
        if poem.count("\n") > 1:
            self.assertGreater(slices[1], slices[10**6], entry.name)

    def test_everyPoem(self):
        for entry in builtinCatalogue(Clock()):
            if entry.slicing is not None:
                for poem in POEMS.values():
                    self.assertSameInSlices(entry, poem)

    def test_finalSigma(self):
        """
        C{str.lower} writes a capital sigma at the end of a word as a final
        sigma, looking at the letters around it; a newline ends a word, so
        slices of whole lines lowercase as the whole poem does.
        """
        poem = "ΟΔΟΣ\nΣ\nΑΣ\u0345\nΣΑ\n'Σ'\nΑ\u0301Σ"
        self.assertEqual(
            transforms.cummingsify(poem), "οδος\nσ\nας\u0345\nσα\n'σ'\nά\u0301ς".replace("ά", "α")
        )
        self.assertSameInSlices(builtinCatalogue(Clock()).lookup("cummingsify"), poem)

    def test_shuffleSeededByTheWholePoem(self):
        """
        The sliced shuffle hashes the whole poem for its seed, and draws
        from one generator across the groups.
        """
        poem = "\n".join(f"one two three four five {n}" for n in range(50))
        self.assertSameInSlices(builtinCatalogue(Clock()).lookup("shuffle"), poem)

    def test_longLines(self):
        """
        A line longer than a slice is cut after white space by the
        transforms that work word by word, and shuffled a few words at a
        time: the same poem as in one call.
        """
        line = " ".join(f"word{n}  and\tmore" for n in range(300))
        for poem in [line, f"  {line}\nshort\n{line} \n"]:
            for entry in builtinCatalogue(Clock()):
                if entry.slicing is not None:
                    self.assertSameInSlices(entry, poem)


class EchoOnTheReactorTests(TestCase):
    """
    The echo transform on the real reactor.
    """

    LONG_POEM = "a line of a long poem\n" * 100_000

    async def test_echoLetsTheReactorTurn(self):
        """
        A long poem is echoed over several turns of the reactor: a call
        scheduled just after the work started runs before the work ends.
        """
        result = transforms.echo(reactor)(self.LONG_POEM)
        self.assertFalse(await deferLater(reactor, 0, lambda: result.called))
        self.assertEqual(await result, echoed(self.LONG_POEM))

    async def test_cancelStopsTheWork(self):
        """
        Cancelling stops the work; trial fails the test if a turn is still
        scheduled afterwards.
        """
        result = transforms.echo(reactor)(self.LONG_POEM)
        await deferLater(reactor, 0, lambda: None)
        result.cancel()
        self.failureResultOf(result, CancelledError)
        await deferLater(reactor, 0, lambda: None)
