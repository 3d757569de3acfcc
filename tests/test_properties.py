"""
Properties of the transforms and the service, for any text (Hypothesis).
"""

import re

from hypothesis import given, settings
from hypothesis import strategies as st
from twisted.internet.task import Clock
from twisted.python.failure import Failure
from twisted.trial.unittest import SynchronousTestCase

from service import (
    BadRequest,
    Limits,
    PoemTooLarge,
    TransformService,
    UnknownTransform,
    builtinCatalogue,
    transforms,
)
from service.catalogue import Transform
from service.slicing import lineGroups, pieces

#: Characters that the transforms treat specially, or that Unicode does:
#: line breaks that are not newlines, a final sigma, letters that change
#: length when lowercased, apostrophes, combining marks, an emoji.
TRICKY = st.sampled_from("\n\n\n  \t\u3000\xa0\x1c\r\u2028\u0085\x0bΣσςİıAaEeQqUuYy'’-\u0345\u0307\u0301É😀")
VALID_TEXT = st.text(st.one_of(st.characters(exclude_categories=["Cs"]), TRICKY), max_size=120)
#: Any text, lone surrogates (which a JSON string can carry) included.
ANY_TEXT = st.text(st.one_of(st.characters(), TRICKY, st.characters(categories=["Cs"])), max_size=120)

CATALOGUE = builtinCatalogue(Clock())
NAMES = [entry.name for entry in CATALOGUE]
SLICED = [entry for entry in CATALOGUE if entry.slicing is not None]

#: Pipeline-like names: catalogue names in any case, separators, spaces,
#: prefixes, and anything else.
NAME_PARTS = st.one_of(
    st.sampled_from(NAMES).map(str.upper),
    st.sampled_from(NAMES),
    st.sampled_from(["|", " | ", ":", "up:", " ", "", "\t", "__class__"]),
    st.text(max_size=5),
)
NAMES_OR_NOT = st.one_of(st.lists(NAME_PARTS, max_size=20).map("".join), st.text(max_size=300))


def outcome(service: TransformService, clock: Clock, name: str, poem: str) -> "str | Failure":
    """
    What the service answers, once every turn it takes has run.
    """
    outcomes = []
    service.transform(name, poem).addBoth(outcomes.append)
    clock.advance(0)
    [answer] = outcomes
    return answer


def runSliced(entry: Transform, poem: str, sliceChars: int) -> str:
    work = entry.slicing.run(poem, sliceChars)
    while True:
        try:
            next(work)
        except StopIteration as done:
            return done.value


class TransformProperties(SynchronousTestCase):
    @settings(deadline=None)
    @given(poem=ANY_TEXT, name=st.sampled_from(NAMES), turnBudget=st.sampled_from([0, 0.001]))
    def test_aPoemOrATypedError(self, poem, name, turnBudget):
        """
        Every transform, at once or in slices of a line, answers any text
        with a poem, the same every time, and a lone surrogate with
        L{BadRequest}, the same every time.
        """
        clock = Clock()
        service = TransformService(builtinCatalogue(clock), clock, Limits(turnBudget=turnBudget))
        first, second = (outcome(service, clock, name, poem) for _ in range(2))
        if any("\ud800" <= character <= "\udfff" for character in poem):
            self.assertIsInstance(first, Failure)
            self.assertTrue(first.check(BadRequest), first)
            self.assertEqual((second.type, second.value.message), (first.type, first.value.message))
        else:
            self.assertIsInstance(first, str)
            self.assertEqual(second, first)

    @settings(deadline=None)
    @given(poem=ANY_TEXT, sliceChars=st.integers(1, 64), entry=st.sampled_from(SLICED))
    def test_slicedIsOneCall(self, poem, sliceChars, entry):
        """
        In slices of any size, every transform makes the same poem as in one
        call, or raises the same error.
        """
        try:
            expected = entry.function(poem)
        except Exception as error:
            self.assertRaises(type(error), runSliced, entry, poem, sliceChars)
        else:
            self.assertEqual(runSliced(entry, poem, sliceChars), expected)

    @given(ANY_TEXT)
    def test_involutions(self, poem):
        """
        C{rot13} and C{mirror} twice give the poem back; so does C{reverse}
        when the poem ends with a newline (which it keeps final).
        """
        for transform in [transforms.rot13, transforms.mirror]:
            self.assertEqual(transform(transform(poem)), poem)
        poem += "\n"
        self.assertEqual(transforms.reverse(transforms.reverse(poem)), poem)

    @given(VALID_TEXT)
    def test_linesKept(self, poem):
        """
        Every transform but C{reverse} keeps each line where it was, and
        they all keep the number of lines.
        """
        for entry in SLICED:
            result = entry.function(poem)
            self.assertEqual(result.count("\n"), poem.count("\n"), entry.name)

    @given(st.one_of(ANY_TEXT, st.text(st.sampled_from("ab'’ 1_é-"), max_size=30)))
    def test_echoedByTheLastWord(self, line):
        """
        C{echo} follows a line with the last of the words found reading it
        forwards.
        """
        words = re.findall(r"[^\W\d_]+(?:['’][^\W\d_]+)*", line)
        expected = f"{line} … {words[-1].lower()} … {words[-1].lower()}" if words else line
        self.assertEqual(transforms.echoLine(line), expected)

    @given(ANY_TEXT, st.integers(1, 64))
    def test_lineGroups(self, text, sliceChars):
        """
        The groups put together with newlines are the text; each is at most
        the slice size, or one line.
        """
        groups = list(lineGroups(text, sliceChars))
        self.assertEqual("\n".join(groups), text)
        for group in groups:
            self.assertTrue(len(group) <= sliceChars or "\n" not in group, group)

    @given(ANY_TEXT, st.integers(1, 64), st.booleans())
    def test_pieces(self, text, sliceChars, atSpaces):
        """
        The pieces put together are the text; each but the last ends with a
        newline (or, cut at spaces, with white space), and is at most the
        slice size or holds one line (or, cut at spaces, one word more).
        """
        cut = list(pieces(text, sliceChars, atSpaces))
        self.assertEqual("".join(cut), text)
        for piece in cut[:-1]:
            self.assertTrue(piece[-1].isspace() if atSpaces else piece.endswith("\n"), piece)
            inside = piece[:-1]
            self.assertTrue(len(piece) <= sliceChars or "\n" not in inside, piece)


class PipelineProperties(SynchronousTestCase):
    @given(NAMES_OR_NOT)
    def test_entriesOrATypedError(self, name):
        """
        Any name parses into catalogue entries, one per step, or fails with
        L{BadRequest} or L{UnknownTransform}.
        """
        try:
            steps = CATALOGUE.pipeline(name)
        except (BadRequest, UnknownTransform) as error:
            self.assertTrue(error.message)
        else:
            self.assertIsInstance(steps, tuple)
            self.assertEqual(len(steps), name.count("|") + 1)
            for step in steps:
                self.assertIn(step, list(CATALOGUE))

    @given(st.integers(0, 10**12), st.integers(1, 10**12), st.booleans())
    def test_sizeMessage(self, size, limit, exact):
        message = PoemTooLarge.forSize(size, limit, exact).message
        self.assertIn(f"{size:,} bytes;", message)
        self.assertTrue(message.endswith(f"at most {limit:,} (--max-poem-bytes)"))
        self.assertEqual("over " in message, not exact)
