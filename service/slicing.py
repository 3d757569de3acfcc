"""
Work on a large poem a slice at a time, so that the reactor never waits long.

A transform done in one call holds the reactor thread for as long as it
takes: a few milliseconds on a megabyte for C{str.lower}, seconds for a
regular expression.  The transforms whose result for a poem is the result
for its lines put together (or its words, for some) can instead be run on a
few lines (or words of a long line) at a time, one such slice per unit of
work, with a L{Cooperator} running the units of every request in turn
within a budget of reactor time per turn (L{turnCooperator}); between turns
the reactor serves everyone else, fires deadlines and notices that a client
went away.

A piece of sliced work is a generator (L{SlicedWork}): it does one slice of
the work each time it is resumed and yields, and returns the new poem.
L{runInSlices} drives one on a L{Cooperator} and gives the result as a
L{Deferred} whose cancellation stops the work.
"""

import re
import time
from collections.abc import Callable, Generator, Iterator
from dataclasses import dataclass

from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IReactorTime
from twisted.internet.task import Cooperator, TaskStopped

#: Work done a slice at a time: each C{next()} does one slice and yields
#: C{None}; the generator returns the new poem.
SlicedWork = Generator[None, None, str]

#: The reactor time, in seconds, that one turn of inline work may take:
#: the transforms run in one call when they cost less, in slices of about
#: that cost otherwise.
TURN_BUDGET = 0.001

#: How many characters of the worst text measured (CJK) are encoded in UTF-8
#: per millisecond, with a margin: the size of a poem is checked in slices
#: above a turn's budget of them.
UTF8_CHARS_PER_MILLISECOND = 300_000


@dataclass(frozen=True)
class Slicing:
    """
    How to run a synchronous, pure transform a slice at a time, and what it
    costs.

    @ivar run: C{run(poem, sliceChars)} is the L{SlicedWork} that makes the
        same poem as the transform's function, for any C{sliceChars} of 1 or
        more, in slices of about C{sliceChars} characters each (whole lines,
        or the words of a line longer than that, as the transform allows).
    @ivar charsPerMillisecond: how many characters of the worst content
        measured (see C{bench/stall.py calibrate}) the transform handles in
        a millisecond, with some margin: it sizes the slices and decides
        whether a poem is small enough to be done in one call.
    @ivar asciiCharsPerMillisecond: the same for a poem that is pure ASCII,
        when the transform has a faster path for it (C{str.lower} has).
    """

    run: Callable[[str, int], SlicedWork]
    charsPerMillisecond: int
    asciiCharsPerMillisecond: int | None = None

    def __post_init__(self) -> None:
        ascii = self.asciiCharsPerMillisecond
        if self.charsPerMillisecond < 1 or (ascii is not None and ascii < 1):
            raise ValueError("a transform handles at least one character per millisecond")

    def seconds(self, poem: str) -> float:
        """
        About how long the transform takes on C{poem}, at worst.
        """
        return len(poem) / self._charsPerSecond(poem)

    def sliceChars(self, poem: str, budget: float) -> int:
        """
        How many characters of C{poem} make a slice that costs C{budget}
        seconds, at least one.
        """
        return max(1, int(budget * self._charsPerSecond(poem)))

    def _charsPerSecond(self, poem: str) -> int:
        if self.asciiCharsPerMillisecond is not None and poem.isascii():
            return 1000 * self.asciiCharsPerMillisecond
        return 1000 * self.charsPerMillisecond


def lineGroups(text: str, sliceChars: int) -> Iterator[str]:
    """
    Cut C{text} at newlines into groups of whole lines of at most
    C{sliceChars} characters each, except that a line longer than that is a
    group of its own.  The newlines at the cuts are left out, so that
    C{"\\n".join(lineGroups(text, n)) == text} for every C{n}.
    """
    start = 0
    while len(text) - start > sliceChars:
        cut = text.rfind("\n", start, start + sliceChars + 1)
        if cut < 0:
            cut = text.find("\n", start + sliceChars)
            if cut < 0:
                break
        yield text[start:cut]
        start = cut + 1
    yield text[start:]


#: White space, after which a word-local transform may be cut.
_WHITE_SPACE = re.compile(r"\s")


def pieces(text: str, sliceChars: int, atSpaces: bool = False) -> Iterator[str]:
    """
    Cut C{text} into pieces of whole lines of at most C{sliceChars}
    characters each, every piece but the last ending with its newline, so
    that C{"".join(pieces(text, n)) == text} for every C{n}.  A line longer
    than that is a piece of its own, or, with C{atSpaces}, is cut after the
    first white space past C{sliceChars} characters.
    """
    start = 0
    while len(text) - start > sliceChars:
        limit = start + sliceChars
        cut = text.rfind("\n", start, limit)
        if cut < 0:
            if atSpaces:
                space = _WHITE_SPACE.search(text, limit)
                cut = space.start() if space else -1
            else:
                cut = text.find("\n", limit)
            if cut < 0:
                break
        yield text[start : cut + 1]
        start = cut + 1
    yield text[start:]


def utf8LengthInSlices(text: str, sliceChars: int) -> Generator[None, None, int]:
    """
    The size of C{text} in UTF-8, measured C{sliceChars} characters at a
    time.

    @raise UnicodeEncodeError: if C{text} holds a lone surrogate.
    """
    size = 0
    for start in range(0, len(text), sliceChars):
        size += len(text[start : start + sliceChars].encode("utf-8"))
        yield None
    return size


def mapInSlices(
    function: Callable[[str], str], text: str, sliceChars: int, atSpaces: bool = False
) -> SlicedWork:
    """
    Apply a line-local C{function} (one with C{function(a + b) ==
    function(a) + function(b)} whenever C{a} ends with a newline; with
    C{atSpaces}, whenever C{a} ends with any white space) to C{text} one
    piece at a time (L{pieces}).
    """
    done = []
    for piece in pieces(text, sliceChars, atSpaces):
        done.append(function(piece))
        yield None
    return "".join(done)


class _Budget:
    """
    The termination predicate of one turn of a L{Cooperator}: true once the
    turn has taken its budget of time.  At least one unit of work runs per
    turn, so a budget of 0 runs exactly one.
    """

    def __init__(self, budget: float) -> None:
        self._end = time.perf_counter() + budget

    def __call__(self) -> bool:
        return time.perf_counter() >= self._end


def turnCooperator(clock: IReactorTime, budget: float = TURN_BUDGET) -> Cooperator:
    """
    A L{Cooperator} that runs units of work, round robin among its tasks, on
    turns of C{clock} scheduled as soon as possible, each turn ending once
    it has taken C{budget} seconds (at least one unit runs per turn).
    """
    return Cooperator(
        terminationPredicateFactory=lambda: _Budget(budget),
        scheduler=lambda turn: clock.callLater(0, turn),
    )


def runInSlices(cooperator: Cooperator, work: SlicedWork) -> "Deferred[str]":
    """
    Run C{work} one slice per unit of work of C{cooperator}.

    @return: a L{Deferred} firing with what C{work} returns, or failing with
        what it raises; cancelling it stops the work before its next slice.
    """
    result: list[str] = []

    def keepingTheResult() -> Iterator[None]:
        result.append((yield from work))

    task = cooperator.cooperate(keepingTheResult())
    done: Deferred[str] = Deferred(lambda _: task.stop())
    task.whenDone().addCallbacks(
        lambda _: done.callback(result[0]),
        lambda failure: None if failure.check(TaskStopped) else done.errback(failure),
    )
    return done
