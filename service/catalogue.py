"""
The catalogue: the whitelist of transforms a client may call, and the parser
of transform names into pipelines.

A client only ever names a transform; the catalogue looks that name up in a
dictionary of entries registered in code.  No attribute lookup is ever done
on client input, so C{__class__} or C{__init__} are simply unknown names.

A name may chain several transforms with C{|}: C{cummingsify|reverse} applies
C{cummingsify}, then C{reverse}.

Names are matched without regard to case (C{Cummingsify} and C{CUMMINGSIFY}
are C{cummingsify}; so are delegated prefixes), so no two entries may differ
only by case.  An unknown name is answered with the closest names of the
catalogue as a hint (C{unknown transform 'cumingsify'; did you mean
'cummingsify'?}).

A name prefix may be delegated to a resolver: with C{remote} delegated,
C{remote:cummingsify} is whatever the resolver makes of C{cummingsify} (the
gateway resolves it to a call to another transform server).  Only the
prefixes delegated in code are ever resolved, and the rest of the name must
still be a usable name.
"""

import difflib
import re
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass

from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IReactorTime

from service import transforms
from service.errors import BadRequest, UnknownTransform, quoted
from service.slicing import Slicing

#: The separator of pipeline steps in a transform name.
PIPE = "|"

#: Separates a delegated prefix from the rest of a transform name.
PREFIX_SEPARATOR = ":"

#: What a delegated prefix may be made of.
_PREFIX = re.compile(r"[A-Za-z0-9_-]+")

#: The longest transform name (pipeline included) a client may send, in
#: characters.
MAX_NAME_LENGTH = 256

#: The most steps one pipeline may have.
MAX_PIPELINE_STEPS = 16

#: How many parsed pipelines the catalogue remembers, so as not to parse
#: the same name again for every request; past that it starts afresh.
MAX_PARSED_PIPELINES = 1024

#: How many of the closest names an unknown name is answered with, at most.
MAX_HINTS = 3


@dataclass(frozen=True)
class Transform:
    """
    One entry of the catalogue.

    @ivar name: the name clients call it by.
    @ivar description: one line saying what it does to a poem.
    @ivar function: takes the poem and returns the new poem, or a L{Deferred}
        firing with it.
    @ivar slicing: for a C{function} that is synchronous and pure, how to
        run it a slice at a time and what it costs (L{Slicing}), so that the
        service can answer a small poem at once and work through a large
        one without holding the reactor long; C{None} for a transform whose
        cost is unknown, which then runs in one call.
    """

    name: str
    description: str
    function: Callable[[str], "str | Deferred[str]"]
    slicing: Slicing | None = None


#: Makes the catalogue entry for the rest of a delegated name.
Resolver = Callable[[str], Transform]

#: Lists the transforms under a delegated prefix: a L{Deferred} firing with
#: C{(name, description)} pairs, the names with the prefix.
Lister = Callable[[], "Deferred[list[tuple[str, str]]]"]


class Catalogue:
    """
    The named transforms a service offers, in the order they were added.
    """

    def __init__(self, entries: Iterable[Transform] = ()) -> None:
        self._entries: dict[str, Transform] = {}  # by case-folded name
        self._resolvers: dict[str, Resolver] = {}  # by case-folded prefix
        self._prefixes: dict[str, str] = {}  # as delegated, by case-folded prefix
        self.listers: dict[str, Lister] = {}  # by prefix as delegated, in order
        # The pipelines of catalogue entries parsed lately, by name as given.
        self._pipelines: dict[str, tuple[Transform, ...]] = {}
        for entry in entries:
            self.add(entry)

    def add(self, entry: Transform) -> None:
        """
        Register C{entry}.

        @raise ValueError: if the name is taken, whatever its case, or could
            not be called (empty, or containing the pipeline separator, the
            prefix separator or white space).
        """
        if PREFIX_SEPARATOR in entry.name or not _usableName(entry.name):
            raise ValueError(f"unusable transform name {entry.name!r}")
        key = entry.name.casefold()
        if key in self._entries:
            raise ValueError(f"transform {self._entries[key].name!r} is already registered")
        self._entries[key] = entry
        self._pipelines.clear()

    def delegate(self, prefix: str, resolver: Resolver, lister: Lister | None = None) -> None:
        """
        Resolve every name C{<prefix>:<rest>} to C{resolver(rest)}.  The rest
        may hold further C{:} (an upstream may delegate in turn) but must
        otherwise be a usable name; the resolver is not asked about any
        other.  Delegated names are not listed by iterating the catalogue:
        C{lister}, if given, lists them (see L{TransformService.listing}).

        @raise ValueError: if the prefix is delegated already, whatever its
            case, or is not made of ASCII letters, digits, C{-} and C{_}.
        """
        if not _PREFIX.fullmatch(prefix):
            raise ValueError(f"unusable prefix {prefix!r}: use letters, digits, '-' and '_'")
        key = prefix.casefold()
        if key in self._resolvers:
            raise ValueError(f"prefix {prefix!r} is already delegated")
        self._resolvers[key] = resolver
        self._prefixes[key] = prefix
        if lister is not None:
            self.listers[prefix] = lister
        self._pipelines.clear()

    def __iter__(self) -> Iterator[Transform]:
        return iter(self._entries.values())

    def __len__(self) -> int:
        return len(self._entries)

    def lookup(self, name: str) -> Transform:
        """
        The entry called C{name}, whatever its case.

        @raise UnknownTransform: if there is none, and C{name} is not a
            usable name under a delegated prefix; its message names the
            closest names there are, if any are close.
        """
        entry = self._entries.get(name.casefold())
        if entry is not None:
            return entry
        prefix, separator, rest = name.partition(PREFIX_SEPARATOR)
        resolver = self._resolvers.get(prefix.casefold()) if separator else None
        if resolver is not None and _usableName(rest):
            return resolver(rest)
        raise UnknownTransform.forName(name, self.closest(name))

    def closest(self, name: str) -> list[str]:
        """
        The names closest to C{name} (an entry's, or C{name} with the
        delegated prefix closest to its own), best first, at most
        L{MAX_HINTS} of them; none when nothing is close.
        """
        prefix, separator, rest = name.partition(PREFIX_SEPARATOR)
        if separator and _usableName(rest):
            delegated = [f"{prefix}{PREFIX_SEPARATOR}{rest}" for prefix in self._prefixes.values()]
            return difflib.get_close_matches(name, delegated, MAX_HINTS)
        keys = difflib.get_close_matches(name.casefold(), self._entries, MAX_HINTS)
        return [self._entries[key].name for key in keys]

    def pipeline(self, name: str) -> tuple[Transform, ...]:
        """
        Parse a transform name into the entries it chains, left to right.
        Spaces around C{|} are ignored.  Every step is checked before
        anything runs.

        @raise BadRequest: for an empty name, an empty step, a name over
            L{MAX_NAME_LENGTH} characters or more than L{MAX_PIPELINE_STEPS}
            steps.
        @raise UnknownTransform: for a step that is not in the catalogue.
        """
        parsed = self._pipelines.get(name)
        if parsed is not None:
            return parsed
        if not name:
            raise BadRequest("the transform name is empty")
        if len(name) > MAX_NAME_LENGTH:
            raise BadRequest(f"the transform name is longer than {MAX_NAME_LENGTH} characters")
        steps = [step.strip() for step in name.split(PIPE)]
        if len(steps) > MAX_PIPELINE_STEPS:
            raise BadRequest(f"a pipeline has at most {MAX_PIPELINE_STEPS} steps")
        if not all(steps):
            raise BadRequest(f"empty step in pipeline {quoted(name)}")
        parsed = tuple(self.lookup(step) for step in steps)
        if all(step.casefold() in self._entries for step in steps):  # none delegated
            if len(self._pipelines) >= MAX_PARSED_PIPELINES:
                self._pipelines.clear()
            self._pipelines[name] = parsed
        return parsed


def _usableName(name: str) -> bool:
    """
    Whether C{name} could be called: not empty, without the pipeline
    separator or white space.
    """
    return bool(name) and PIPE not in name and name == "".join(name.split())


def builtinCatalogue(clock: IReactorTime) -> Catalogue:
    """
    The transforms every gateway offers.

    @param clock: schedules the asynchronous transforms.
    """

    def sliced(function, run, charsPerMillisecond, asciiCharsPerMillisecond=None):
        # In the reactor thread, in slices when large: the slices hold the
        # reactor for about a millisecond at a time, a worker thread holding
        # the GIL for 5 ms or more (see the measures in docs/performance.md).
        slicing = Slicing(run, charsPerMillisecond, asciiCharsPerMillisecond)
        return {"function": function, "slicing": slicing}

    # The costs: what each handles per millisecond of the worst content that
    # `bench/stall.py calibrate` measures (a MiB of short lines, of Greek,
    # CJK or emoji), with a margin.  str.lower and the rot13 codec have a
    # much faster path for ASCII.
    return Catalogue(
        [
            Transform(
                "cummingsify",
                "lowercase everything, as e. e. cummings might",
                **sliced(transforms.cummingsify, transforms.cummingsifyInSlices, 80_000, 2_000_000),
            ),
            Transform(
                "reverse",
                "the same lines, last line first",
                **sliced(transforms.reverse, transforms.reverseInSlices, 30_000),
            ),
            Transform(
                "mirror",
                "every line written backwards, as in a mirror",
                **sliced(transforms.mirror, transforms.mirrorInSlices, 30_000),
            ),
            Transform(
                "titlecase",
                "Every Word Starts With A Capital",
                **sliced(transforms.titlecase, transforms.titlecaseInSlices, 3_000),
            ),
            Transform(
                "piglatin",
                "every word in pig latin: science becomes iencescay",
                **sliced(transforms.piglatin, transforms.piglatinInSlices, 1_500),
            ),
            Transform(
                "shuffle",
                "the words of each line shuffled, the same way every time",
                **sliced(transforms.shuffle, transforms.shuffleInSlices, 1_000),
            ),
            Transform(
                "rot13",
                "every letter rotated thirteen places; twice gives the poem back",
                **sliced(transforms.rot13, transforms.rot13InSlices, 12_000, 500_000),
            ),
            Transform(
                "echo",
                "each line echoed by its last word (asynchronous, a few lines per turn)",
                transforms.echo(clock),
            ),
        ]
    )
