"""
The built-in transforms: what the gateway can do to a poem.

Every function here takes a poem (C{str}) and returns the new poem.  All but
L{echo} are pure and thread-safe, so the service may run them in a worker
thread when a poem is large; L{echo} is asynchronous: it works through the
poem a few lines at a time, cooperatively, and answers through the reactor,
which proves that every protocol copes with a transform that returns a
L{Deferred} (Part 12's exercise 4).
"""

import codecs
import hashlib
import random
import re
from collections.abc import Callable, Iterator

from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IReactorTime
from twisted.internet.task import Cooperator, TaskStopped

# A word: a run of letters, with inner apostrophes ("what's", "swell'd").
_WORD = re.compile(r"[^\W\d_]+(?:['’][^\W\d_]+)*")
# A run of letters only, for pig latin, where apostrophes split syllables.
_LETTERS = re.compile(r"[^\W\d_]+")
_SPACE = re.compile(r"(\s+)")
_VOWELS = frozenset("aeiouàèéìíòóùú")

#: How many lines the asynchronous L{echo} transform handles in one step.
ECHO_LINES_PER_TURN = 100


def _mapLines(function, poem: str) -> str:
    return "\n".join(function(line) for line in poem.split("\n"))


def cummingsify(poem: str) -> str:
    """
    Lowercase the whole poem, exactly as the tutorial's transform does.
    """
    return poem.lower()


def reverse(poem: str) -> str:
    """
    Reverse the order of the lines; a final newline stays final.
    """
    body, newline = (poem[:-1], "\n") if poem.endswith("\n") else (poem, "")
    return "\n".join(reversed(body.split("\n"))) + newline


def mirror(poem: str) -> str:
    """
    Reverse the characters of every line, as a mirror would show them.
    """
    return _mapLines(lambda line: line[::-1], poem)


def _titleWord(match: re.Match) -> str:
    word = match.group()
    return word[:1].upper() + word[1:].lower()


def titlecase(poem: str) -> str:
    """
    Capitalise every word and lowercase the rest of it; unlike C{str.title},
    C{what's} becomes C{What's}, not C{What'S}.
    """
    return _WORD.sub(_titleWord, poem)


def _pigLatinWord(match: re.Match) -> str:
    word = match.group()
    lower = word.lower()
    if lower[0] in _VOWELS:
        latin = lower + "way"
    else:
        start = 1
        while start < len(lower) and lower[start] not in _VOWELS | {"y"}:
            start += 1
        if lower[start - 1 : start + 1] == "qu":
            start += 1
        latin = lower[start:] + lower[:start] + "ay"
    if len(word) > 1 and word.isupper():
        return latin.upper()
    if word[0].isupper():
        return latin[0].upper() + latin[1:]
    return latin


def piglatin(poem: str) -> str:
    """
    Translate every word into pig latin (C{science} -> C{iencescay},
    C{old} -> C{oldway}), keeping capitals where they were.
    """
    return _LETTERS.sub(_pigLatinWord, poem)


def shuffle(poem: str) -> str:
    """
    Shuffle the words within each line.  The shuffle is seeded by the poem
    itself, so the same poem always gives the same result.
    """
    seed = hashlib.sha256(poem.encode("utf-8")).digest()
    rng = random.Random(seed)

    def shuffleLine(line: str) -> str:
        tokens = _SPACE.split(line)
        wordSlots = [i for i, token in enumerate(tokens) if token and not token.isspace()]
        words = [tokens[i] for i in wordSlots]
        rng.shuffle(words)
        for slot, word in zip(wordSlots, words, strict=True):
            tokens[slot] = word
        return "".join(tokens)

    return _mapLines(shuffleLine, poem)


def rot13(poem: str) -> str:
    """
    Rotate every Latin letter by thirteen places; applying it twice gives the
    poem back.
    """
    return codecs.encode(poem, "rot13")


def echoLine(line: str) -> str:
    """
    Follow a line with its last word twice, fading, like an echo.
    """
    words = _WORD.findall(line)
    if not words:
        return line
    last = words[-1].lower()
    return f"{line} … {last} … {last}"


def echo(clock: IReactorTime) -> Callable[[str], "Deferred[str]"]:
    """
    Make the asynchronous echo transform: L{echoLine} on every line, worked
    through a few lines per turn of the reactor by a L{Cooperator}, so that a
    large poem never holds the reactor for long.  It returns a L{Deferred}
    that the reactor fires later; cancelling it stops the work.

    @param clock: schedules the turns (the reactor, or a test clock).
    """
    cooperator = Cooperator(scheduler=lambda work: clock.callLater(0, work))

    def echoCooperatively(poem: str) -> "Deferred[str]":
        lines = poem.split("\n")

        def echoInTurns() -> Iterator[None]:
            for start in range(0, len(lines), ECHO_LINES_PER_TURN):
                stop = start + ECHO_LINES_PER_TURN
                lines[start:stop] = map(echoLine, lines[start:stop])
                yield None

        task = cooperator.cooperate(echoInTurns())
        result: Deferred[str] = Deferred(lambda _: task.stop())
        task.whenDone().addCallbacks(
            lambda _: result.callback("\n".join(lines)),
            lambda failure: None if failure.check(TaskStopped) else result.errback(failure),
        )
        return result

    return echoCooperatively
