"""
The built-in transforms: what the gateway can do to a poem.

Every function here takes a poem (C{str}) and returns the new poem.  All but
L{echo} are pure and thread-safe, so the service may run them in a worker
thread when a poem is large, and each has a sliced twin (C{mirrorInSlices},
...: see L{service.slicing}) that makes the same poem a group of lines at a
time, so the service can also run a large poem in the reactor thread without
holding it long.  L{echo} is asynchronous: it works through the poem a few
lines at a time, cooperatively, and answers through the reactor, which
proves that every protocol copes with a transform that returns a
L{Deferred} (Part 12's exercise 4).
"""

import codecs
import hashlib
import random
import re
from collections.abc import Callable

from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IReactorTime

from service.slicing import SlicedWork, lineGroups, mapInSlices, pieces, runInSlices, turnCooperator

# A word: a run of letters, with inner apostrophes ("what's", "swell'd").
_WORD = re.compile(r"[^\W\d_]+(?:['’][^\W\d_]+)*")
# A run of letters only, for pig latin, where apostrophes split syllables.
_LETTERS = re.compile(r"[^\W\d_]+")
_SPACE = re.compile(r"(\s+)")
# What _SPACE.split makes of a line, less its empty strings: words and spaces.
_TOKEN = re.compile(r"\s+|\S+")
_VOWELS = frozenset("aeiouàèéìíòóùú")

#: How many characters of a poem the asynchronous L{echo} transform handles
#: in one unit of work: under a millisecond of the worst content measured
#: (short lines of two words, 5,000 characters per millisecond).
ECHO_CHARS_PER_SLICE = 4096

#: How many characters L{shuffleInSlices} hashes per slice of work, for each
#: character it shuffles in one: hashing is hundreds of times cheaper.
_HASHED_PER_SHUFFLED = 256


def _mapLines(function: Callable[[str], str], poem: str) -> str:
    return "\n".join(map(function, poem.split("\n")))


def cummingsify(poem: str) -> str:
    """
    Lowercase the whole poem, exactly as the tutorial's transform does.
    """
    return poem.lower()


def cummingsifyInSlices(poem: str, sliceChars: int) -> SlicedWork:
    """
    L{cummingsify}, a few lines, or words of a long line, at a time.
    C{str.lower} is local: the one rule of it that looks at the neighbours
    of a letter (a final sigma) stops at white space.
    """
    return mapInSlices(cummingsify, poem, sliceChars, atSpaces=True)


def _reverseLines(text: str) -> str:
    return "\n".join(reversed(text.split("\n")))


def _splitFinalNewline(poem: str) -> tuple[str, str]:
    return (poem[:-1], "\n") if poem.endswith("\n") else (poem, "")


def reverse(poem: str) -> str:
    """
    Reverse the order of the lines; a final newline stays final.
    """
    body, newline = _splitFinalNewline(poem)
    return _reverseLines(body) + newline


def reverseInSlices(poem: str, sliceChars: int) -> SlicedWork:
    """
    L{reverse}, a group of lines at a time: each group's lines reversed,
    then the groups put together last first.
    """
    body, newline = _splitFinalNewline(poem)
    done = []
    for group in lineGroups(body, sliceChars):
        done.append(_reverseLines(group))
        yield None
    done.reverse()
    return "\n".join(done) + newline


def mirror(poem: str) -> str:
    """
    Reverse the characters of every line, as a mirror would show them.
    """
    # Reversing the whole poem reverses every line and their order; putting
    # the lines back in order is then all done in C, however many lines.
    return _reverseLines(poem[::-1])


def mirrorInSlices(poem: str, sliceChars: int) -> SlicedWork:
    """
    L{mirror}, a group of lines at a time.
    """
    return mapInSlices(mirror, poem, sliceChars)


def _titleWord(match: re.Match) -> str:
    word = match.group()
    return word[:1].upper() + word[1:].lower()


def titlecase(poem: str) -> str:
    """
    Capitalise every word and lowercase the rest of it; unlike C{str.title},
    C{what's} becomes C{What's}, not C{What'S}.
    """
    return _WORD.sub(_titleWord, poem)


def titlecaseInSlices(poem: str, sliceChars: int) -> SlicedWork:
    """
    L{titlecase}, a few lines, or words of a long line, at a time (no word
    holds white space).
    """
    return mapInSlices(titlecase, poem, sliceChars, atSpaces=True)


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


def piglatinInSlices(poem: str, sliceChars: int) -> SlicedWork:
    """
    L{piglatin}, a few lines, or words of a long line, at a time (no word
    holds white space).
    """
    return mapInSlices(piglatin, poem, sliceChars, atSpaces=True)


class _LineShuffler:
    """
    Shuffles the words within each line of the text it is given, drawing
    from one random generator: lines given in order, in one call or over
    several, get the same shuffles.
    """

    def __init__(self, seed: bytes) -> None:
        self._rng = random.Random(seed)

    def __call__(self, text: str) -> str:
        return _mapLines(self._shuffleLine, text)

    def _shuffleLine(self, line: str) -> str:
        if not line:  # nothing to shuffle, and nothing drawn
            return line
        tokens = _SPACE.split(line)
        wordSlots = [i for i, token in enumerate(tokens) if token and not token.isspace()]
        words = [tokens[i] for i in wordSlots]
        self._rng.shuffle(words)
        for slot, word in zip(wordSlots, words, strict=True):
            tokens[slot] = word
        return "".join(tokens)

    def inSlices(self, line: str, perSlice: int) -> SlicedWork:
        """
        Shuffle the words of one long line, C{perSlice} words or spaces at a
        time, the same way as in one call: a Fisher-Yates shuffle with the
        same draws as C{random.shuffle}.  The tokens are kept in lists of
        C{perSlice}, and every list is dropped a piece at a time, so that no
        step copies, joins or frees the whole line at once.
        """
        chunks: list[list[str]] = [[]]
        words: list[str] = []
        wordSlots: list[int] = []  # where each word is, among the tokens
        order: list[int] = []  # which word goes where, once shuffled
        for slot, match in enumerate(_TOKEN.finditer(line)):
            token = match.group()
            if not token.isspace():
                order.append(len(words))
                words.append(token)
                wordSlots.append(slot)
            chunks[-1].append(token)
            if len(chunks[-1]) == perSlice:
                chunks.append([])
                yield None
        for count, i in enumerate(range(len(order) - 1, 0, -1), 1):
            j = self._rng.randrange(i + 1)  # what random.shuffle draws
            order[i], order[j] = order[j], order[i]
            if count % perSlice == 0:
                yield None
        for count, (slot, word) in enumerate(zip(wordSlots, order, strict=True), 1):
            chunks[slot // perSlice][slot % perSlice] = words[word]
            if count % perSlice == 0:
                yield None
        done = []
        for index, chunk in enumerate(chunks):
            done.append("".join(chunk))
            chunks[index] = []
            yield None
        for big in [words, wordSlots, order]:
            while big:
                del big[-perSlice:]
                yield None
        return "".join(done)


def shuffle(poem: str) -> str:
    """
    Shuffle the words within each line.  The shuffle is seeded by the poem
    itself, so the same poem always gives the same result.
    """
    return _LineShuffler(hashlib.sha256(poem.encode("utf-8")).digest())(poem)


def shuffleInSlices(poem: str, sliceChars: int) -> SlicedWork:
    """
    L{shuffle}, a slice at a time: the seed hashed from the whole poem a
    piece at a time first, then the lines shuffled a few at a time with one
    random generator, and a long line a few words at a time.
    """
    digest = hashlib.sha256()
    hashChars = sliceChars * _HASHED_PER_SHUFFLED
    for start in range(0, len(poem), hashChars):
        digest.update(poem[start : start + hashChars].encode("utf-8"))
        yield None
    shuffler = _LineShuffler(digest.digest())
    done = []
    for piece in pieces(poem, sliceChars):
        if len(piece) > sliceChars:  # one long line, and its newline
            line, newline = _splitFinalNewline(piece)
            done.append((yield from shuffler.inSlices(line, sliceChars)) + newline)
        else:
            done.append(shuffler(piece))
            yield None
    return "".join(done)


def rot13(poem: str) -> str:
    """
    Rotate every Latin letter by thirteen places; applying it twice gives the
    poem back.
    """
    return codecs.encode(poem, "rot13")


def rot13InSlices(poem: str, sliceChars: int) -> SlicedWork:
    """
    L{rot13}, a few lines, or words of a long line, at a time.
    """
    return mapInSlices(rot13, poem, sliceChars, atSpaces=True)


def echoLine(line: str) -> str:
    """
    Follow a line with its last word twice, fading, like an echo.
    """
    # A word read backwards is a word, and the words of a line are the same
    # whichever way it is read: the last is the first of the line reversed,
    # found without going through every word of a long line.
    reversedWord = _WORD.search(line[::-1])
    if reversedWord is None:
        return line
    last = reversedWord.group()[::-1].lower()
    return f"{line} … {last} … {last}"


def echo(clock: IReactorTime) -> Callable[[str], "Deferred[str]"]:
    """
    Make the asynchronous echo transform: L{echoLine} on every line, worked
    through L{ECHO_CHARS_PER_SLICE} characters of lines per unit of work of
    a L{service.slicing.turnCooperator}, so that a large poem never holds
    the reactor for long.  It returns a L{Deferred} that the reactor fires
    later; cancelling it stops the work.

    @param clock: schedules the turns (the reactor, or a test clock).
    """
    cooperator = turnCooperator(clock)

    def echoLines(text: str) -> str:
        return _mapLines(echoLine, text)

    return lambda poem: runInSlices(cooperator, mapInSlices(echoLines, poem, ECHO_CHARS_PER_SLICE))
